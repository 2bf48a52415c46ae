"""Banks of built-in experts, each batched over all leaves.

Both are components (``_components``): EM hands them chunks of rows with
their responsibilities, they add up sufficient statistics, and their M-step
reads only those sums.

- Linear-Gaussian experts: the weighted Gram matrices ``X^T R X``, the
  sums ``X^T R y`` and ``sum r y^2`` and the masses; the M-step is exact (a
  ridge solve, then the variance from the residual sum of squares, which
  the same sums give).
- Softmax experts: the sums of a weighted multinomial logistic regression
  with targets ``r_ij * onehot(y_i)``, shared with the gates; the M-step is
  a Newton step (``NewtonComponent``).

``X`` always carries the intercept column; targets are standardised for
regression and integer-coded for classification. Parameters are float64
whatever the data's dtype.
"""

import math

import numpy as np
from scipy import stats

from ._array_api import device, log_softmax, to_numpy, wide
from ._components import ExpertBank, NewtonComponent, add_stats
from ._solvers import (
    gram_sums,
    group_rows,
    ridge_solve,
    softmax_logits,
    softmax_sums,
    symmetric,
    weighted_sums,
)


class LinearGaussianExperts(ExpertBank):
    """Linear-Gaussian experts: ``y | x, leaf j ~ N(x^T beta_j, sigma_j^2)``.

    The penalty is ``alpha ||beta_j||^2 / (2 sigma_j^2)``, the log of a
    Gaussian prior ``beta_j ~ N(0, sigma_j^2 / alpha)`` conjugate to the
    noise: the ridge of every expert's weighted least squares is ``alpha``
    whatever its variance, so a small variance floor cannot remove it.
    Its M-step never decreases EM's objective (``monotone``).

    Parameters
    ----------
    n_leaves : int
    alpha : float
        Ridge of every expert's weighted least squares.
    min_variance : float
        Floor on every ``sigma_j^2`` (in the units of the standardised target).
    """

    def __init__(self, n_leaves, alpha, min_variance):
        self.n_leaves = n_leaves
        self.alpha = alpha
        self.min_variance = min_variance
        self.coef = None
        self.variance = None

    def init_params(self, n_params, like, xp):
        """Zero coefficients (the target's centre) and unit variance."""
        shape = (self.n_leaves, n_params)
        self.coef = xp.zeros(shape, dtype=xp.float64, device=device(like))
        self.variance = xp.ones((self.n_leaves,), dtype=xp.float64, device=device(like))

    def accumulate(self, stats, chunk, resp, xp):
        """Add the chunk's ``X^T R X`` (packed), ``X^T R y``, ``sum r y^2``
        and ``sum r`` of every expert."""
        y = wide(chunk.y, xp)
        X = self.design(chunk.X, xp)
        new = {
            "gram": gram_sums(X, resp, xp, self.outer(chunk)),
            "xy": weighted_sums(X, y, resp, xp),
            "yy": wide(resp, xp) @ y**2,
            "mass": xp.sum(wide(resp, xp), axis=1),
        }
        return add_stats(stats, new)

    def m_step(self, stats, xp):
        """Conditional M-step: coefficients given the current variances, then
        the variances given the new coefficients (each an exact maximiser,
        so the penalised objective cannot decrease)."""
        # (X^T R X + alpha I) beta = X^T R y: the s2 of the likelihood and of
        # the prior cancel. Below the ridge floor, a proximal step from the
        # current coefficients, which cannot decrease the objective either.
        p = self.coef.shape[1]
        gram = symmetric(stats["gram"], p, xp)
        ridge = xp.full_like(self.variance, self.alpha)
        self.coef = ridge_solve(gram, stats["xy"], ridge, xp, self.coef)
        # s2 = (RSS + alpha ||beta||^2) / mass maximises the objective in s2,
        # RSS = sum r y^2 - 2 beta^T X^T R y + beta^T X^T R X beta
        fitted = xp.sum((gram @ self.coef[:, :, None])[:, :, 0] * self.coef, axis=1)
        rss = stats["yy"] - 2 * xp.sum(self.coef * stats["xy"], axis=1) + fitted
        rss = xp.maximum(rss, xp.zeros_like(rss))  # round-off below an exact fit
        shrinkage = self.alpha * xp.sum(self.coef**2, axis=1)
        mass = stats["mass"]
        tiny = 10 * xp.finfo(xp.float64).eps
        variance = (rss + shrinkage) / xp.maximum(mass, xp.full_like(mass, tiny))
        self.variance = xp.maximum(variance, xp.full_like(variance, self.min_variance))

    def predict(self, X, xp):
        """Each expert's mean, shape (n_leaves, n_samples), float64."""
        return self.coef @ xp.matrix_transpose(wide(self.design(X, xp), xp))

    def predict_mean_variance(self, X, xp, mask=None):
        """Each expert's mean (n_leaves, n_samples) and variance (n_leaves, 1).

        All experts are evaluated (one matrix product): ``mask`` is ignored.
        """
        return self.predict(X, xp), self.variance[:, None]

    def log_likelihood(self, X, y, xp):
        """``log N(y_i; x_i^T beta_j, sigma_j^2)``, shape (n_leaves, n_samples)."""
        resid2 = (wide(y, xp)[None, :] - self.predict(X, xp)) ** 2
        variance = self.variance[:, None]
        return -0.5 * (math.log(2 * math.pi) + xp.log(variance) + resid2 / variance)

    def leaf_distribution(self, X, xp, trials=None):
        """Every expert's law of the standardised target at every row: a
        SciPy normal with parameters of shape (n_leaves, n_rows, 1)."""
        mean = to_numpy(self.predict(X, xp), xp)[:, :, None]
        scale = np.sqrt(to_numpy(self.variance, xp))[:, None, None]
        return stats.norm(loc=mean, scale=scale)

    def draw(self, X, leaves, random_state, xp):
        """One target per row from the expert of its leaf (host, standardised)."""
        rows = np.arange(len(leaves))
        mean = to_numpy(self.predict(X, xp), xp)[leaves, rows]
        scale = np.sqrt(to_numpy(self.variance, xp))[leaves]
        return mean + scale * random_state.normal(size=len(leaves))

    def eta_derivatives(self, X, y, xp):
        """Derivatives of every expert's log-density by its mean ``eta`` and
        ``tau = log sigma^2``, shape (n_leaves, n_rows) each."""
        resid = wide(y, xp)[None, :] - self.predict(X, xp)
        inv = 1.0 / self.variance[:, None]
        return {
            "d_eta": resid * inv,
            "d_eta2": -inv * xp.ones_like(resid),
            "d_tau": -0.5 + 0.5 * resid**2 * inv,
            "d_tau2": -0.5 * resid**2 * inv,
            "d_eta_tau": -resid * inv,
        }

    def penalty(self, xp):
        """``alpha / 2 * sum_j ||beta_j||^2 / sigma_j^2``."""
        squares = xp.sum(self.coef**2, axis=1)
        return 0.5 * self.alpha * float(xp.sum(squares / self.variance))

    def n_free_params(self, n_params):
        return self.n_leaves * (n_params + 1)

    def get_state(self):
        return self.coef, self.variance

    def set_state(self, state):
        self.coef, self.variance = state

    def free_parameters(self, xp):
        """Coefficients and log-variances."""
        return [self.coef, xp.log(self.variance)]

    def set_free_parameters(self, free, xp):
        variance = xp.exp(free[1])
        self.coef = free[0]
        self.variance = xp.maximum(variance, xp.full_like(variance, self.min_variance))

    def attributes(self, scaling, xp):
        coef = self.expand(self.coef[:, :, None], xp)
        slopes, intercept = scaling.to_original(coef, xp, target=True)
        return {
            "expert_coef_": slopes[:, :, 0],
            "expert_intercept_": intercept[:, 0],
            "expert_variance_": scaling.y_scale**2 * self.variance,
        }


# The number of classes from which softmax experts take per-class Newton
# steps (``benchmarks/bench_many_classes.py``).
PER_CLASS_FROM = 30


class SoftmaxExperts(NewtonComponent, ExpertBank):
    """Multinomial-logistic experts: ``p_j(c | x) = softmax(x^T W_j)_c``.

    They share the gates' batched Newton solver: expert ``j`` is a softmax
    model whose soft targets are ``resp[j, i] * onehot(y_i)``.

    Parameters
    ----------
    n_leaves : int
    n_classes : int
    alpha : float
        L2 penalty on every coefficient.
    """

    penalty_name = "expert_alpha"
    # the E-step's class probabilities serve the sums (``accumulate``)
    shares_probabilities = True

    def __init__(self, n_leaves, n_classes, alpha):
        self.n_leaves = n_leaves
        self.n_classes = n_classes
        self.alpha = alpha
        self.coefs = None
        # From PER_CLASS_FROM classes on, the Newton step solves every class
        # on its own, from its diagonal block of the Hessian (``softmax_sums``
        # with ``per_class``): the full Hessian's cost grows with the square
        # of the classes, and its system with their cube.
        self.per_class = n_classes >= PER_CLASS_FROM

    @property
    def coef(self):
        """The coefficients, (n_leaves, n_params, n_classes)."""
        return self.coefs[0]

    @coef.setter
    def coef(self, coef):
        self.coefs = [coef]

    def init_params(self, n_params, like, xp):
        """Zero coefficients: uniform class probabilities."""
        shape = (self.n_leaves, n_params, self.n_classes)
        self.coef = xp.zeros(shape, dtype=xp.float64, device=device(like))

    def _one_hot(self, y, X, xp, dtype=None):
        """Indicator of the class of every sample, shape (n_classes, n_samples),
        of ``X``'s dtype unless ``dtype`` is given."""
        classes = xp.arange(self.n_classes, device=device(X))
        return xp.astype(classes[:, None] == y[None, :], dtype or X.dtype)

    def accumulate(self, stats, chunk, resp, xp, kept=None):
        """Add the chunk's ``softmax_sums`` of every expert at its current
        coefficients (every expert on its own rows, when few are: hard or
        truncated EM). ``kept``: the experts' class log-probabilities and
        probabilities on the chunk, as ``log_likelihood(..., keep=)`` gives
        them (the E-step's), or None to make them here."""
        X, outer = self.design(chunk.X, xp), self.outer(chunk)
        targets = (
            self._one_hot(chunk.y, X, xp, resp.dtype)[:, None, :] * resp[None, :, :]
        )
        log_prob, prob = (None, None) if not kept else kept[0]
        grouped = group_rows(X, resp, xp, outer)
        if grouped is not None:
            take, X, outer = grouped
            targets = take(targets)
            if log_prob is not None:
                log_prob, prob = take(log_prob), take(prob)
        sums = softmax_sums(
            X,
            targets,
            self.coef,
            xp,
            outer,
            self.per_class,
            log_prob=log_prob,
            prob=prob,
        )
        return add_stats(stats, [sums])

    def predict_log_proba(self, X, xp, mask=None):
        """Each expert's class log-probabilities, (n_classes, n_leaves, n_samples).

        All experts are evaluated (one matrix product): ``mask`` is ignored.
        """
        return log_softmax(softmax_logits(self.design(X, xp), self.coef, xp), 0, xp)

    def log_likelihood(self, X, y, xp, keep=None):
        """``log p_j(y_i | x_i)``, (n_leaves, n_samples); with ``keep`` (a
        list), the class log-probabilities and probabilities are appended to
        it, for ``accumulate``."""
        log_prob = self.predict_log_proba(X, xp)
        if keep is not None:
            keep.append((log_prob, xp.exp(log_prob)))
        one_hot = self._one_hot(y, X, xp, xp.float64)
        return xp.sum(log_prob * one_hot[:, None, :], axis=0)

    def penalty(self, xp):
        return 0.5 * self.alpha * float(xp.sum(self.coef**2))

    def n_free_params(self, n_params):
        return self.n_leaves * (self.n_classes - 1) * n_params

    def get_state(self):
        return self.coef

    def set_state(self, state):
        self.coef = state

    def free_parameters(self, xp):
        """The coefficients (no constraints)."""
        return [self.coef]

    def set_free_parameters(self, free, xp):
        self.coef = free[0]

    def attributes(self, scaling, xp):
        slopes, intercept = scaling.to_original(self.expand(self.coef, xp), xp)
        return {"expert_coef_": slopes, "expert_intercept_": intercept}


def _matrix_function(matrices, function, xp):
    """``function`` of symmetric matrices (n, T, T) through their
    eigenvalues: ``V function(Lambda) V^T``."""
    values, vectors = xp.linalg.eigh(matrices)
    return (vectors * function(values)[:, None, :]) @ xp.matrix_transpose(vectors)


class MultivariateGaussianExperts(ExpertBank):
    """Multi-output linear-Gaussian experts: ``y | x, leaf j ~ N(B_j^T x,
    Sigma_j)``, ``y`` of ``n_targets`` columns.

    The sums are those of the univariate experts with ``y`` a matrix:
    ``X^T R X``, ``X^T R Y`` and ``Y^T R Y``. The penalty ``alpha / 2
    tr(B_j Sigma_j^-1 B_j^T)`` is the log of the matrix-normal prior
    conjugate to the noise, so the coefficients are a ridge regression with
    ``alpha`` whatever ``Sigma_j``, and the M-step is exact (coefficients,
    then covariances). ``covariance_type="full"`` floors every covariance's
    eigenvalues at ``min_variance``; ``"diag"`` keeps only the variances,
    floored likewise (independent targets given the leaf).

    Parameters
    ----------
    n_leaves, n_targets : int
    alpha : float
    min_variance : float
        Floor on the eigenvalues (variances) of every ``Sigma_j``, in the
        units of the standardised targets.
    covariance_type : {"full", "diag"}
    """

    def __init__(self, n_leaves, n_targets, alpha, min_variance, covariance_type):
        self.n_leaves = n_leaves
        self.n_targets = n_targets
        self.alpha = alpha
        self.min_variance = min_variance
        self.covariance_type = covariance_type
        self.coef = None
        self.covariance = None

    def init_params(self, n_params, like, xp):
        """Zero coefficients and identity covariances."""
        dev = device(like)
        shape = (self.n_leaves, n_params, self.n_targets)
        self.coef = xp.zeros(shape, dtype=xp.float64, device=dev)
        eye = xp.eye(self.n_targets, dtype=xp.float64, device=dev)
        self.covariance = xp.broadcast_to(eye, (self.n_leaves, *eye.shape))

    def get_state(self):
        return self.coef, self.covariance

    def set_state(self, state):
        self.coef, self.covariance = state

    def free_parameters(self, xp):
        """Coefficients and the covariances' matrix logarithms (for one
        target, the log-variance of ``LinearGaussianExperts``)."""
        return [self.coef, _matrix_function(self.covariance, xp.log, xp)]

    def set_free_parameters(self, free, xp):
        log_covariance = 0.5 * (free[1] + xp.matrix_transpose(free[1]))
        self.coef = free[0]
        self.covariance = self._floored(
            _matrix_function(log_covariance, xp.exp, xp), xp
        )

    def n_free_params(self, n_params):
        t = self.n_targets
        noise = t * (t + 1) // 2 if self.covariance_type == "full" else t
        return self.n_leaves * (n_params * t + noise)

    def accumulate(self, stats, chunk, resp, xp):
        """Add the chunk's ``X^T R X`` (packed), ``X^T R Y``, ``Y^T R Y`` and
        ``sum r`` of every expert."""
        X = self.design(chunk.X, xp)
        Y = wide(chunk.y, xp)
        resp = wide(resp, xp)
        Xw = wide(X, xp)
        weighted = xp.matrix_transpose(resp[:, :, None] * Y[None, :, :])  # (L, T, n)
        new = {
            "gram": gram_sums(X, resp, xp, self.outer(chunk)),
            "xy": xp.matrix_transpose(weighted @ Xw),
            "yy": weighted @ Y,
            "mass": xp.sum(resp, axis=1),
        }
        return add_stats(stats, new)

    def m_step(self, stats, xp):
        """Coefficients by ridge regression (all targets at once), then the
        covariances from the residual sums, floored."""
        p = self.coef.shape[1]
        gram = symmetric(stats["gram"], p, xp)
        ridge = xp.full_like(stats["mass"], self.alpha)
        columns = [
            ridge_solve(gram, stats["xy"][:, :, t], ridge, xp, self.coef[:, :, t])
            for t in range(self.n_targets)
        ]
        B = xp.stack(columns, axis=2)  # (L, P, T)
        self.coef = B
        cross = xp.matrix_transpose(B) @ stats["xy"]  # B^T X^T R Y
        residual = (
            stats["yy"]
            - cross
            - xp.matrix_transpose(cross)
            + xp.matrix_transpose(B) @ gram @ B
            + self.alpha * xp.matrix_transpose(B) @ B
        )
        mass = stats["mass"]
        tiny = 10 * xp.finfo(xp.float64).eps
        covariance = (
            residual / xp.maximum(mass, xp.full_like(mass, tiny))[:, None, None]
        )
        self.covariance = self._floored(
            0.5 * (covariance + xp.matrix_transpose(covariance)), xp
        )

    def _floored(self, covariance, xp):
        eye = xp.eye(self.n_targets, dtype=xp.float64, device=device(covariance))
        if self.covariance_type == "diag":
            variances = xp.sum(covariance * eye, axis=2)
            floored = xp.maximum(variances, xp.full_like(variances, self.min_variance))
            return floored[:, :, None] * eye
        values, vectors = xp.linalg.eigh(covariance)
        values = xp.maximum(values, xp.full_like(values, self.min_variance))
        return (vectors * values[:, None, :]) @ xp.matrix_transpose(vectors)

    def _cholesky_inverse(self, xp):
        """``L_j^-1`` with ``Sigma_j = L_j L_j^T``, and ``log det Sigma_j``."""
        factor = xp.linalg.cholesky(self.covariance)
        eye = xp.eye(self.n_targets, dtype=xp.float64, device=device(factor))
        diagonal = xp.sum(factor * eye, axis=2)
        return xp.linalg.inv(factor), 2.0 * xp.sum(xp.log(diagonal), axis=1)

    def predict(self, X, xp):
        """Each expert's mean, (n_leaves, n_samples, n_targets)."""
        return wide(self.design(X, xp), xp)[None, :, :] @ self.coef

    def predict_mean_variance(self, X, xp, mask=None):
        """Each expert's mean (n_leaves, n_samples, n_targets) and its
        targets' variances (n_leaves, 1, n_targets)."""
        eye = xp.eye(self.n_targets, dtype=xp.float64, device=device(self.coef))
        return self.predict(X, xp), xp.sum(self.covariance * eye, axis=2)[:, None, :]

    def log_likelihood(self, X, y, xp):
        """``log N(y_i; B_j^T x_i, Sigma_j)``, shape (n_leaves, n_samples)."""
        inverse, log_det = self._cholesky_inverse(xp)
        resid = wide(y, xp)[None, :, :] - self.predict(X, xp)  # (L, n, T)
        z = resid @ xp.matrix_transpose(inverse)
        quadratic = xp.sum(z**2, axis=2)
        constant = self.n_targets * math.log(2 * math.pi)
        return -0.5 * (constant + log_det[:, None] + quadratic)

    def penalty(self, xp):
        """``alpha / 2 * sum_j tr(B_j Sigma_j^-1 B_j^T)``."""
        inverse, _ = self._cholesky_inverse(xp)
        whitened = self.coef @ xp.matrix_transpose(inverse)
        return 0.5 * self.alpha * float(xp.sum(whitened**2))

    @property
    def n_nuisance(self):
        """Noise parameters per expert in the information matrix: the
        log-variances (diagonal), or the precision's upper triangle."""
        t = self.n_targets
        return t * (t + 1) // 2 if self.covariance_type == "full" else t

    def leaf_derivatives(self, X, y, weight, xp):
        """Every expert's scores and weighted Hessian of its log-density
        (host arrays), for the observed information (``_inference``).

        Parameters per expert: the coefficients of target 0, 1, ..., then
        the noise: ``tau_a = log Sigma_aa`` (diagonal), or the precision
        ``Lambda = Sigma^-1``'s entries ``Lambda_cd``, ``c <= d`` (full).

        Returns
        -------
        scores : ndarray of shape (n_leaves, n_rows, n_params)
        hessian : ndarray of shape (n_leaves, n_params, n_params)
            ``sum_i weight[j, i]`` times the second derivatives.
        """
        x = to_numpy(wide(self.design(X, xp), xp), xp)
        resid = to_numpy(wide(y, xp)[None, :, :] - self.predict(X, xp), xp)
        sigma = to_numpy(self.covariance, xp)
        weight = np.asarray(weight)
        n_leaves, m, t = resid.shape
        p = x.shape[1]
        size = p * t + self.n_nuisance
        scores = np.zeros((n_leaves, m, size))
        hessian = np.zeros((n_leaves, size, size))
        pairs = [(c, d) for c in range(t) for d in range(c, t)]
        for j in range(n_leaves):
            w, r = weight[j], resid[j]
            if self.covariance_type == "diag":
                variance = np.diag(sigma[j])
                for a in range(t):
                    coef = slice(a * p, (a + 1) * p)
                    tau = p * t + a
                    inv = 1.0 / variance[a]
                    scores[j, :, coef] = (r[:, a] * inv)[:, None] * x
                    scores[j, :, tau] = -0.5 + 0.5 * r[:, a] ** 2 * inv
                    hessian[j, coef, coef] = -inv * (x * w[:, None]).T @ x
                    cross = -inv * x.T @ (w * r[:, a])
                    hessian[j, coef, tau] = hessian[j, tau, coef] = cross
                    hessian[j, tau, tau] = -0.5 * inv * (w @ r[:, a] ** 2)
                continue
            precision = np.linalg.inv(sigma[j])
            pr = r @ precision  # (m, T): Lambda r
            for a in range(t):
                scores[j, :, a * p : (a + 1) * p] = pr[:, a : a + 1] * x
            gram = (x * w[:, None]).T @ x
            for a in range(t):
                for b in range(t):
                    hessian[j, a * p : (a + 1) * p, b * p : (b + 1) * p] = (
                        -precision[a, b] * gram
                    )
            mass = w.sum()
            for k, (c, d) in enumerate(pairs):
                q = p * t + k
                factor = 1.0 if c == d else 2.0
                scores[j, :, q] = 0.5 * factor * (sigma[j][c, d] - r[:, c] * r[:, d])
                # d (Lambda r)_a / d Lambda_cd, then times x
                for a in range(t):
                    deriv = (r[:, d] if a == c else 0.0) + (
                        r[:, c] if (a == d and c != d) else 0.0
                    )
                    if np.ndim(deriv) == 0:
                        continue
                    cross = x.T @ (w * deriv)
                    hessian[j, a * p : (a + 1) * p, q] = cross
                    hessian[j, q, a * p : (a + 1) * p] = cross
                for k2, (e, f) in enumerate(pairs):
                    s = sigma[j]
                    if e == f:
                        dsigma = -s[c, e] * s[e, d]
                    else:
                        dsigma = -(s[c, e] * s[f, d] + s[c, f] * s[e, d])
                    hessian[j, q, p * t + k2] = 0.5 * factor * dsigma * mass
        return scores, hessian

    def draw(self, X, leaves, random_state, xp):
        """One target row per row of ``X`` from the expert of its leaf."""
        rows = np.arange(len(leaves))
        mean = to_numpy(self.predict(X, xp), xp)[leaves, rows]
        factor = np.linalg.cholesky(to_numpy(self.covariance, xp))[leaves]
        noise = random_state.normal(size=mean.shape)
        return mean + np.einsum("nab,nb->na", factor, noise)

    def attributes(self, scaling, xp):
        coef = self.expand(self.coef, xp)
        slopes, intercept = scaling.to_original(coef, xp, target=True)
        scale = xp.asarray(
            np.asarray(scaling.y_scale, dtype=np.float64), device=device(coef)
        )
        return {
            "expert_coef_": slopes,
            "expert_intercept_": intercept,
            "expert_covariance_": self.covariance
            * (scale**2 if scale.ndim == 0 else scale[:, None] * scale[None, :]),
        }
