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

    def attributes(self, scaling, xp):
        coef = self.expand(self.coef[:, :, None], xp)
        slopes, intercept = scaling.to_original(coef, xp, target=True)
        return {
            "expert_coef_": slopes[:, :, 0],
            "expert_intercept_": intercept[:, 0],
            "expert_variance_": scaling.y_scale**2 * self.variance,
        }


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

    def __init__(self, n_leaves, n_classes, alpha):
        self.n_leaves = n_leaves
        self.n_classes = n_classes
        self.alpha = alpha
        self.coefs = None

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

    def accumulate(self, stats, chunk, resp, xp):
        """Add the chunk's ``softmax_sums`` of every expert at its current
        coefficients (every expert on its own rows, when few are: hard or
        truncated EM)."""
        X, outer = self.design(chunk.X, xp), self.outer(chunk)
        targets = (
            self._one_hot(chunk.y, X, xp, resp.dtype)[:, None, :] * resp[None, :, :]
        )
        grouped = group_rows(X, resp, xp, outer)
        if grouped is not None:
            take, X, outer = grouped
            targets = take(targets)
        return add_stats(stats, [softmax_sums(X, targets, self.coef, xp, outer)])

    def predict_log_proba(self, X, xp, mask=None):
        """Each expert's class log-probabilities, (n_classes, n_leaves, n_samples).

        All experts are evaluated (one matrix product): ``mask`` is ignored.
        """
        return log_softmax(softmax_logits(self.design(X, xp), self.coef, xp), 0, xp)

    def log_likelihood(self, X, y, xp):
        one_hot = self._one_hot(y, X, xp, xp.float64)
        return xp.sum(self.predict_log_proba(X, xp) * one_hot[:, None, :], axis=0)

    def penalty(self, xp):
        return 0.5 * self.alpha * float(xp.sum(self.coef**2))

    def n_free_params(self, n_params):
        return self.n_leaves * (self.n_classes - 1) * n_params

    def get_state(self):
        return self.coef

    def set_state(self, state):
        self.coef = state

    def attributes(self, scaling, xp):
        slopes, intercept = scaling.to_original(self.expand(self.coef, xp), xp)
        return {"expert_coef_": slopes, "expert_intercept_": intercept}
