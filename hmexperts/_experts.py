"""Banks of built-in experts, each batched over all leaves.

Every bank offers the same operations over all ``n_leaves`` experts at
once, which is all the EM loop needs:

- ``fit(X, y, resp, xp, outer)``: the M-step, with ``resp`` of shape
  (n_leaves, n_samples) and ``outer`` the kept outer products of ``X``'s rows
  (or None);
- ``log_likelihood(X, y)``: ``log p_j(y_i | x_i)`` of shape (n_leaves,
  n_samples), for any chunk of rows;
- ``penalty()``: the log-prior of the coefficients, subtracted from the
  log-likelihood in the objective that EM increases;
- ``get_state()`` / ``set_state(state)``: a snapshot of the parameters, for
  EM to return its best iterate.

``X`` always carries the intercept column; targets are standardised for
regression and integer-coded for classification. Parameters are float64
whatever the data's dtype.
"""

import math

from ._array_api import device, log_softmax, wide
from ._solvers import (
    fit_softmax,
    group_rows,
    softmax_logits,
    solve_weighted_ridge,
    weighted_residual_ss,
)


class LinearGaussianExperts:
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

    monotone = True

    def __init__(self, n_leaves, alpha, min_variance):
        self.n_leaves = n_leaves
        self.alpha = alpha
        self.min_variance = min_variance
        self.coef = None
        self.variance = None

    def init_params(self, n_params, X, xp):
        """Zero coefficients (the target's mean) and unit variance."""
        shape = (self.n_leaves, n_params)
        self.coef = xp.zeros(shape, dtype=xp.float64, device=device(X))
        self.variance = xp.ones((self.n_leaves,), dtype=xp.float64, device=device(X))

    def fit(self, X, y, resp, xp, outer=None):
        """Conditional M-step: coefficients given the current variances, then
        the variances given the new coefficients (each an exact maximiser,
        so the penalised objective cannot decrease)."""
        # (X^T R X + alpha I) beta = X^T R y: the s2 of the likelihood and of
        # the prior cancel. Below the ridge floor, a proximal step from the
        # current coefficients, which cannot decrease the objective either.
        ridge = xp.full_like(self.variance, self.alpha)
        self.coef = solve_weighted_ridge(X, y, resp, ridge, xp, outer, self.coef)
        # s2 = (RSS + alpha ||beta||^2) / mass maximises the objective in s2
        rss, mass = weighted_residual_ss(X, y, self.coef, resp, xp)
        shrinkage = self.alpha * xp.sum(self.coef**2, axis=1)
        tiny = 10 * xp.finfo(xp.float64).eps
        variance = (rss + shrinkage) / xp.maximum(mass, xp.full_like(mass, tiny))
        self.variance = xp.maximum(variance, xp.full_like(variance, self.min_variance))

    def predict(self, X, xp):
        """Each expert's mean, shape (n_leaves, n_samples), float64."""
        return self.coef @ xp.matrix_transpose(wide(X, xp))

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

    def penalty(self, xp):
        """``alpha / 2 * sum_j ||beta_j||^2 / sigma_j^2``."""
        return (
            0.5
            * self.alpha
            * float(xp.sum(xp.sum(self.coef**2, axis=1) / self.variance))
        )

    def n_free_params(self, n_params):
        return self.n_leaves * (n_params + 1)

    def get_state(self):
        return self.coef, self.variance

    def set_state(self, state):
        self.coef, self.variance = state


class SoftmaxExperts:
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

    monotone = True

    def __init__(self, n_leaves, n_classes, alpha):
        self.n_leaves = n_leaves
        self.n_classes = n_classes
        self.alpha = alpha
        self.coef = None

    def init_params(self, n_params, X, xp):
        """Zero coefficients: uniform class probabilities."""
        shape = (self.n_leaves, n_params, self.n_classes)
        self.coef = xp.zeros(shape, dtype=xp.float64, device=device(X))

    def _one_hot(self, y, X, xp, dtype=None):
        """Indicator of the class of every sample, shape (n_classes, n_samples),
        of ``X``'s dtype unless ``dtype`` is given."""
        classes = xp.arange(self.n_classes, device=device(X))
        return xp.astype(classes[:, None] == y[None, :], dtype or X.dtype)

    def fit(self, X, y, resp, xp, outer=None):
        targets = self._one_hot(y, X, xp)[:, None, :] * resp[None, :, :]
        # Under hard or truncated EM an expert sees only its own samples.
        grouped = group_rows(X, resp, xp, outer)
        if grouped is not None:
            take, X, outer = grouped
            targets = take(targets)
        self.coef = fit_softmax(
            X,
            targets,
            self.coef,
            self.alpha,
            xp,
            outer=outer,
            penalty_name="expert_alpha",
        )

    def predict_log_proba(self, X, xp, mask=None):
        """Each expert's class log-probabilities, (n_classes, n_leaves, n_samples).

        All experts are evaluated (one matrix product): ``mask`` is ignored.
        """
        return log_softmax(softmax_logits(X, self.coef, xp), 0, xp)

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
