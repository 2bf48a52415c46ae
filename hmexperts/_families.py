"""Expert families beyond the Gaussian: GLM experts and robust (Student-t) ones.

Every family is a bank of experts batched over all leaves, written once
against the component protocol (``_components``): EM hands it chunks of
rows with their responsibilities, it adds up sufficient statistics, and its
M-step reads only those sums, so the same code runs in memory, on Dask and
in ``partial_fit``'s stream.

- ``GLMExperts``: a generalised linear model per leaf, ``eta = x^T beta_j``,
  for the Poisson (log link), gamma (log link, a shape per expert) and
  binomial (logit link) families. Its statistics at the current
  coefficients are the score ``sum_i r_ij d_ij x_i`` and the expected
  curvature ``sum_i r_ij c_ij x_i x_i^T`` (Fisher scoring, which is
  iteratively reweighted least squares), and its M-step one Newton step per
  expert, which EM halves while its objective would go down (as the gates'
  Newton steps). The gamma shape is set first, exactly, from the same pass.
- ``StudentTExperts``: location-scale t regression per leaf, fit as a scale
  mixture of Gaussians (Peel & McLachlan, 2000): the E-step's weights
  ``u_ij = (nu_j + 1) / (nu_j + delta_ij^2)`` turn the M-step into a
  weighted least squares (the same sums as the linear-Gaussian experts,
  times ``u``) and a one-dimensional equation for the degrees of freedom
  ``nu_j``. Every sum comes from one pass at the current parameters, so the
  M-step is exact and EM monotone.

Every family also gives the derivatives of its log-density by the linear
predictor and its scale parameter (``eta_derivatives``), from which
``_inference`` builds the observed information matrix.
"""

import math
from abc import ABC, abstractmethod

import numpy as np
from scipy import special, stats
from scipy.optimize import brentq

from ._array_api import device, is_numpy_namespace, to_numpy, wide
from ._components import ExpertBank, add_stats, blend_stats, scale_stats
from ._experts import LinearGaussianExperts
from ._predictive import ScaledBinomial
from ._scaling import robust_center_scale
from ._solvers import (
    gram_sums,
    ridge_solve,
    symmetric,
    weighted_sums,
)

# Linear predictors are clipped to this magnitude before ``exp``: far
# beyond any fitted value, it keeps a wild Newton step (which EM then
# halves) from overflowing.
_MAX_ETA = 500.0
# Newton steps of the first M-step (on fixed responsibilities) and its stop.
_MAX_REFINE = 25
_REFINE_RTOL = 1e-10
# Bounds of the Student-t degrees of freedom: 1 (the Cauchy) to 200 (as good
# as Gaussian).
MIN_DF, MAX_DF = 1.0, 200.0


def _gammaln(x, xp):
    """``log Gamma(x)`` elementwise in ``xp`` (SciPy on NumPy, else via the host)."""
    if is_numpy_namespace(xp):
        return special.gammaln(x)
    return xp.asarray(special.gammaln(to_numpy(x, xp)), device=device(x))


def _clip(eta, xp):
    return xp.clip(eta, -_MAX_ETA, _MAX_ETA)


class Family(ABC):
    """A GLM family: its link, log-density, Fisher weights and target checks.

    The log-density of one sample, per unit of weight, is
    ``s * (y eta - b(eta)) + c(y, s)`` written in each subclass, where ``s``
    is ``1 / dispersion`` (1 without a dispersion).
    """

    name = None
    has_dispersion = False
    trials = False

    @abstractmethod
    def check_target(self, y):
        """Raise a ValueError naming what is wrong with the target ``y``
        (a NumPy array)."""

    @abstractmethod
    def start_target(self, y, xp):
        """The target as the k-means start clusters it, on the link scale."""

    @abstractmethod
    def link(self, mean):
        """The link of a (host, float) mean."""

    @abstractmethod
    def mean(self, eta, xp):
        """The mean of the law at the linear predictors ``eta``."""

    @abstractmethod
    def log_density(self, y, eta, shape, xp):
        """Log-density of every expert at every row, (n_leaves, n_rows)."""

    @abstractmethod
    def fisher(self, y, eta, xp):
        """Score and expected curvature by ``eta``, per unit of ``shape``."""

    @abstractmethod
    def derivatives(self, y, eta, shape, xp):
        """Observed derivatives of the log-density by ``eta`` (and, with a
        dispersion, by the log-shape), for the information matrix."""

    @abstractmethod
    def variance(self, mean, dispersion, xp):
        """The law's variance at its mean."""

    @abstractmethod
    def draw(self, mean, dispersion, random_state):
        """Draws of the target (host arrays)."""

    @abstractmethod
    def distribution(self, mean, shape, trials):
        """The SciPy law of the target (``leaf_distribution``)."""


class Poisson(Family):
    """Counts: ``y ~ Poisson(exp(eta))``."""

    name = "poisson"

    def check_target(self, y):
        if np.any(y < 0) or np.any(y != np.floor(y)):
            bad = y[(y < 0) | (y != np.floor(y))][:3]
            raise ValueError(
                f"expert='poisson' needs counts: non-negative integers; y has "
                f"values such as {bad.tolist()}. Use expert='gamma' for positive "
                "continuous targets, or 'linear'."
            )

    def start_target(self, y, xp):
        return xp.log(wide(y, xp) + 0.5)

    def values(self, y):
        """The targets as a row, (1, n_rows)."""
        return y[None, :]

    def link(self, mean):
        return math.log(max(mean, 1e-8))

    def mean(self, eta, xp):
        return xp.exp(_clip(eta, xp))

    def log_density(self, y, eta, shape, xp):
        y = self.values(y)
        return y * eta - self.mean(eta, xp) - _gammaln(y + 1.0, xp)

    def fisher(self, y, eta, xp):
        """Score and expected curvature by ``eta``, per unit of ``shape``."""
        mean = self.mean(eta, xp)
        return self.values(y) - mean, mean

    def derivatives(self, y, eta, shape, xp):
        mean = self.mean(eta, xp)
        return {"d_eta": self.values(y) - mean, "d_eta2": -mean}

    def variance(self, mean, dispersion, xp):
        return mean

    def draw(self, mean, dispersion, random_state):
        return random_state.poisson(mean).astype(np.float64)

    def distribution(self, mean, shape, trials):
        return stats.poisson(mean)


class Binomial(Family):
    """Proportions of successes: ``y ~ Binomial(m, expit(eta)) / m``.

    The number of trials ``m`` is part of every expert's density (a row is
    one observation of ``m`` trials, which all belong to one leaf), so EM
    carries it with the target: the target is ``(n_rows, 2)``, the
    proportion and the trials.
    """

    name = "binomial"
    trials = True

    def check_target(self, y):
        if np.any(y < 0) or np.any(y > 1):
            bad = y[(y < 0) | (y > 1)][:3]
            raise ValueError(
                "expert='binomial' needs proportions in [0, 1] (successes / "
                f"trials, with the trials as sample_weight); y has values such as "
                f"{bad.tolist()}."
            )

    def start_target(self, y, xp):
        p = xp.clip(wide(y[:, 0], xp), 0.025, 0.975)
        return xp.log(p / (1.0 - p))

    def link(self, mean):
        p = min(max(mean, 1e-8), 1 - 1e-8)
        return math.log(p / (1 - p))

    def mean(self, eta, xp):
        return 1.0 / (1.0 + xp.exp(-_clip(eta, xp)))

    def log_density(self, y, eta, shape, xp):
        # m (y eta - log(1 + exp(eta))) + log C(m, m y), stable for both
        # signs of eta
        p, m = y[None, :, 0], y[None, :, 1]
        eta = _clip(eta, xp)
        softplus = xp.maximum(eta, xp.zeros_like(eta)) + xp.log1p(xp.exp(-xp.abs(eta)))
        k = m * p
        log_choose = (
            _gammaln(m + 1.0, xp) - _gammaln(k + 1.0, xp) - _gammaln(m - k + 1.0, xp)
        )
        return m * (p * eta - softplus) + log_choose

    def fisher(self, y, eta, xp):
        p, m = y[None, :, 0], y[None, :, 1]
        mean = self.mean(eta, xp)
        return m * (p - mean), m * mean * (1.0 - mean)

    def derivatives(self, y, eta, shape, xp):
        score, curvature = self.fisher(y, eta, xp)
        return {"d_eta": score, "d_eta2": -curvature}

    def variance(self, mean, dispersion, xp):
        return mean * (1.0 - mean)

    def draw(self, mean, dispersion, random_state):
        return random_state.binomial(1, mean).astype(np.float64)

    def distribution(self, mean, shape, trials):
        return ScaledBinomial(trials, mean)


class Gamma(Family):
    """Positive continuous targets: ``y ~ Gamma(shape k, mean exp(eta))``,
    dispersion ``1 / k`` (the squared coefficient of variation)."""

    name = "gamma"
    has_dispersion = True

    def check_target(self, y):
        if np.any(y <= 0):
            bad = y[y <= 0][:3]
            raise ValueError(
                "expert='gamma' needs positive targets; y has values such as "
                f"{bad.tolist()}. Shift the target, or use expert='poisson' for "
                "counts with zeros."
            )

    def start_target(self, y, xp):
        return xp.log(wide(y, xp))

    def values(self, y):
        return y[None, :]

    def link(self, mean):
        return math.log(max(mean, 1e-300))

    def mean(self, eta, xp):
        return xp.exp(_clip(eta, xp))

    def log_density(self, y, eta, shape, xp):
        # k log(k y / mu) - k y / mu - log y - log Gamma(k)
        k = shape[:, None]
        y = self.values(y)
        ratio = y * xp.exp(-_clip(eta, xp))
        log_k = xp.log(k)
        lgamma_k = xp.asarray(
            special.gammaln(to_numpy(shape, xp)), device=device(shape)
        )[:, None]
        return k * (log_k + xp.log(ratio) - ratio) - xp.log(y) - lgamma_k

    def fisher(self, y, eta, xp):
        ratio = self.values(y) * xp.exp(-_clip(eta, xp))
        return ratio - 1.0, xp.ones_like(ratio)

    def dispersion_sums(self, y, eta, resp, xp):
        """``sum_i r_ij (y/mu - log(y/mu) - 1)``: the half deviance, which
        the shape's equation reads."""
        ratio = self.values(y) * xp.exp(-_clip(eta, xp))
        return xp.sum(resp * (ratio - xp.log(ratio) - 1.0), axis=1)

    def update_shape(self, deviance, mass, max_shape):
        """The shape ``k`` maximising the likelihood given the means: the
        root of ``log k - digamma(k) = mean half deviance`` (Newton's method
        from the approximation ``k ~ 1 / (2 D)``), at most ``max_shape``."""
        deviance = np.maximum(to_numpy(deviance, np), 0.0)
        mass = np.maximum(to_numpy(mass, np), np.finfo(np.float64).tiny)
        mean = deviance / mass
        shape = np.empty_like(mean)
        for j, d in enumerate(mean):
            if d <= 1.0 / (2.0 * max_shape):
                shape[j] = max_shape
                continue
            k = (3.0 - 2.0 * d + math.sqrt((2.0 * d - 3.0) ** 2 + 24.0 * d)) / (
                12.0 * d
            )  # Minka's start
            for _ in range(50):
                f = math.log(k) - special.digamma(k) - d
                step = f / (1.0 / k - special.polygamma(1, k))
                k_new = k - step
                if k_new <= 0:
                    k_new = k / 2
                if abs(k_new - k) <= 1e-12 * k:
                    k = k_new
                    break
                k = k_new
            shape[j] = min(k, max_shape)
        return shape

    def derivatives(self, y, eta, shape, xp):
        """By ``eta`` and ``rho = log k``."""
        k = shape[:, None]
        ratio = self.values(y) * xp.exp(-_clip(eta, xp))
        host = to_numpy(shape, xp)
        digamma = xp.asarray(special.digamma(host), device=device(shape))[:, None]
        trigamma = xp.asarray(special.polygamma(1, host), device=device(shape))[:, None]
        d_rho = k * (xp.log(k) + 1.0 + xp.log(ratio) - ratio - digamma)
        return {
            "d_eta": k * (ratio - 1.0),
            "d_eta2": -k * ratio,
            "d_tau": d_rho,
            "d_tau2": d_rho + k - k**2 * trigamma,
            "d_eta_tau": k * (ratio - 1.0),
        }

    def variance(self, mean, dispersion, xp):
        return dispersion * mean**2

    def draw(self, mean, dispersion, random_state):
        shape = 1.0 / dispersion
        return random_state.gamma(shape, mean / shape)

    def distribution(self, mean, shape, trials):
        return stats.gamma(a=shape, scale=mean / shape)


FAMILIES = {"poisson": Poisson, "binomial": Binomial, "gamma": Gamma}


class StartTarget:
    """A GLM target as the k-means start clusters it: on the scale of the
    link (``Family.start_target``), standardised by its sample's robust
    centre and scale.

    Parameters
    ----------
    family : Family
    y, weight : arrays of shape (n_sample,)
        The sampled rows the start reads, and their weights.
    """

    def __init__(self, family, y, weight, xp):
        values = family.start_target(y, xp)[:, None]
        center, scale = robust_center_scale(values, wide(weight, xp), xp)
        self.family = family
        self.center, self.scale = float(center[0]), float(scale[0])

    def __call__(self, y, xp):
        return (self.family.start_target(y, xp) - self.center) / self.scale


def _predicted(bank, X, xp):
    """Linear predictors of every expert of ``bank``, (n_leaves, n_rows),
    float64, from the whole design ``X``."""
    return bank.coef @ xp.matrix_transpose(wide(bank.design(X, xp), xp))


class GLMExperts(ExpertBank):
    """Generalised linear experts of one family, batched over leaves.

    The penalty is ``alpha / 2 * ||beta_j||^2`` (intercept included, as the
    gates'). Its M-step never decreases EM's objective once EM has halved
    the Newton step where needed (``monotone``).

    Parameters
    ----------
    n_leaves : int
    family : Family
    alpha : float
        L2 penalty on every coefficient.
    min_variance : float
        Floor on the dispersion ``1 / k`` of gamma experts (their squared
        coefficient of variation); unused by the other families.
    start_eta : float
        Starting linear predictor of every expert (the link of the target's
        mean), so that the first Newton steps start near the data.
    """

    def __init__(self, n_leaves, family, alpha, min_variance, start_eta=0.0):
        self.n_leaves = n_leaves
        self.family = family
        self.alpha = alpha
        self.min_variance = min_variance
        self.start_eta = start_eta
        self.coef = None
        self.shape = None

    # -- parameters ------------------------------------------------------------

    def init_params(self, n_params, like, xp):
        """Every expert at the target's mean; gamma shape 1."""
        dev = device(like)
        coef = np.zeros((self.n_leaves, n_params))
        coef[:, -1] = self.start_eta
        self.coef = xp.asarray(coef, device=dev)
        self.shape = xp.ones((self.n_leaves,), dtype=xp.float64, device=dev)

    @property
    def dispersion(self):
        """``1 / shape`` (1 for the families without a dispersion)."""
        return 1.0 / self.shape

    def get_state(self):
        return self.coef, self.shape

    def set_state(self, state):
        self.coef, self.shape = state

    def free_parameters(self, xp):
        """Coefficients and log-shapes (zero for the families without a
        dispersion, which extrapolation keeps at zero)."""
        return [self.coef, xp.log(self.shape)]

    def set_free_parameters(self, free, xp):
        shape = xp.exp(free[1])
        self.coef = free[0]
        self.shape = xp.minimum(shape, xp.full_like(shape, 1.0 / self.min_variance))

    def n_free_params(self, n_params):
        return self.n_leaves * (n_params + self.family.has_dispersion)

    def penalty(self, xp):
        return 0.5 * self.alpha * float(xp.sum(self.coef**2))

    # -- E-step ------------------------------------------------------------------

    def log_likelihood(self, X, y, xp):
        eta = _predicted(self, X, xp)
        return self.family.log_density(wide(y, xp), eta, self.shape, xp)

    def accumulate(self, stats, chunk, resp, xp):
        """Add the chunk's score ``sum r d x``, curvature ``sum r c x x^T``
        (both per unit of shape), log-likelihood and mass per expert, and
        for the gamma family the half deviance."""
        y = wide(chunk.y, xp)
        eta = _predicted(self, chunk.X, xp)
        resp = wide(resp, xp)
        score, curvature = self.family.fisher(y, eta, xp)
        log_density = self.family.log_density(y, eta, self.shape, xp)
        X = self.design(chunk.X, xp)
        new = {
            "gradient": (resp * score) @ wide(X, xp),
            "curvature": gram_sums(X, resp * curvature, xp, self.outer(chunk)),
            "loglik": xp.sum(resp * log_density, axis=1),
            "mass": xp.sum(resp, axis=1),
        }
        if self.family.has_dispersion:
            new["deviance"] = self.family.dispersion_sums(y, eta, resp, xp)
        return add_stats(stats, new)

    # -- M-step --------------------------------------------------------------------

    def _direction(self, stats, shape, xp):
        """The penalised Newton (Fisher scoring) direction of every expert at
        the coefficients the statistics were taken at, for the shapes
        ``shape``."""
        p = self.coef.shape[1]
        s = shape[:, None]
        curvature = symmetric(stats["curvature"], p, xp) * s[:, :, None]
        gradient = s * stats["gradient"] - self.alpha * self.coef
        ridge = xp.full_like(shape, self.alpha)
        return ridge_solve(curvature, gradient, ridge, xp)

    def _update_shape(self, stats, xp):
        if self.family.has_dispersion:
            shape = self.family.update_shape(
                stats["deviance"], stats["mass"], 1.0 / self.min_variance
            )
            self.shape = xp.asarray(shape, device=device(self.coef))

    def m_step(self, stats, xp):
        """The gamma shape given the current coefficients (exact), then one
        Newton step of the coefficients, which ``shrink`` halves."""
        self._update_shape(stats, xp)
        self._start = self.coef
        self._step = self._direction(stats, self.shape, xp)
        self._fraction = 1.0
        self.coef = self._start + self._step

    def shrink(self):
        if getattr(self, "_start", None) is None or self._fraction < 2.0**-40:
            return False
        self._fraction *= 0.5
        self.coef = self._start + self._fraction * self._step
        return True

    def online_update(self, running, batch, gamma, xp):
        """Stepwise EM for a Newton step (as the gates'): running curvature
        and sums, but the batch's score times ``gamma``, the gradient of the
        blended objective at the current coefficients."""
        blended = blend_stats(running, batch, gamma)
        blended["gradient"] = gamma * batch["gradient"]
        return blended

    def online_m_step(self, running, total, gamma, xp):
        """The shape, then one Newton step on the stream's quadratic model:
        curvature ``total`` times the running one, gradient ``gamma (total
        g - alpha beta)``."""
        stats = scale_stats(running, total)
        self._update_shape(stats, xp)
        p = self.coef.shape[1]
        s = self.shape[:, None]
        curvature = symmetric(stats["curvature"], p, xp) * s[:, :, None]
        gradient = s * stats["gradient"] - gamma * self.alpha * self.coef
        ridge = xp.full_like(self.shape, self.alpha)
        self._start = None
        self.coef = self.coef + ridge_solve(curvature, gradient, ridge, xp)

    def refine(self, stats, xp):
        """Newton's method with halving per expert on fixed responsibilities
        (the first M-step); one pass per step. Returns whether another pass
        is worth making."""
        objective = stats["loglik"] - 0.5 * self.alpha * xp.sum(self.coef**2, axis=1)
        state = getattr(self, "_refined", None)
        if state is None:
            state = self._refined = {
                "coef": self.coef,
                "objective": None,
                "step": None,
                "fraction": np.ones(self.n_leaves),
                "steps": 0,
                "done": np.zeros(self.n_leaves, dtype=bool),
            }
            if self.family.has_dispersion:
                # the shape given the start, then the start's objective anew
                self._update_shape(stats, xp)
                return True
        if state["objective"] is None:
            state["objective"] = objective
            state["step"] = self._direction(stats, self.shape, xp)
        else:
            better = to_numpy(objective >= state["objective"], xp) & ~state["done"]
            gain = to_numpy(objective - state["objective"], xp)
            scale = to_numpy(xp.abs(state["objective"]), xp) + 1.0
            keep = xp.asarray(better, device=device(self.coef))
            state["coef"] = xp.where(keep[:, None], self.coef, state["coef"])
            state["objective"] = xp.where(keep, objective, state["objective"])
            fresh = self._direction(stats, self.shape, xp)
            state["step"] = xp.where(keep[:, None], fresh, state["step"])
            state["fraction"] = np.where(better, 1.0, 0.5 * state["fraction"])
            state["done"] |= (better & (gain <= _REFINE_RTOL * scale)) | (
                state["fraction"] < 2.0**-40
            )
            state["steps"] += 1
        if state["done"].all() or state["steps"] >= _MAX_REFINE:
            self.coef = state["coef"]
            self._refined = None
            return False
        fraction = xp.asarray(
            np.where(state["done"], 0.0, state["fraction"]), device=device(self.coef)
        )
        self.coef = state["coef"] + fraction[:, None] * state["step"]
        return True

    # -- prediction and inference -------------------------------------------------

    def predict(self, X, xp):
        """Each expert's mean, (n_leaves, n_samples)."""
        return self.family.mean(_predicted(self, X, xp), xp)

    def predict_mean_variance(self, X, xp, mask=None):
        """Each expert's mean and variance, (n_leaves, n_samples) both; for
        the binomial family, of one trial."""
        mean = self.predict(X, xp)
        dispersion = self.dispersion[:, None]
        return mean, self.family.variance(mean, dispersion, xp)

    def draw(self, X, leaves, random_state, xp):
        """One target per row from the expert of its leaf (host)."""
        mean = to_numpy(self.predict(X, xp), xp)[leaves, np.arange(len(leaves))]
        dispersion = to_numpy(self.dispersion, xp)[leaves]
        return self.family.draw(mean, dispersion, random_state)

    def leaf_distribution(self, X, xp, trials=None):
        """Every expert's law of the target at every row (SciPy, parameters
        of shape (n_leaves, n_rows, 1)); ``trials`` (n_rows,): the binomial
        trials (None: 1)."""
        mean = to_numpy(self.predict(X, xp), xp)[:, :, None]
        shape = to_numpy(self.shape, xp)[:, None, None]
        if trials is None:
            trials = np.ones(mean.shape[1])
        return self.family.distribution(mean, shape, np.asarray(trials)[None, :, None])

    def eta_derivatives(self, X, y, xp):
        """Derivatives of every expert's log-density by its linear predictor
        (and its log-shape, gamma): arrays of shape (n_leaves, n_rows)."""
        eta = _predicted(self, X, xp)
        return self.family.derivatives(wide(y, xp), eta, self.shape, xp)

    def attributes(self, scaling, xp):
        coef = self.expand(self.coef[:, :, None], xp)
        slopes, intercept = scaling.to_original(coef, xp)
        attributes = {
            "expert_coef_": slopes[:, :, 0],
            "expert_intercept_": intercept[:, 0],
        }
        if self.family.has_dispersion:
            attributes["expert_dispersion_"] = self.dispersion
        return attributes


class StudentTExperts(LinearGaussianExperts):
    """Robust linear experts: ``y | x, leaf j ~ t_nu_j(x^T beta_j, sigma_j^2)``.

    Fit as a scale mixture of Gaussians (Peel & McLachlan, 2000): given the
    E-step's weights ``u_ij = (nu_j + 1) / (nu_j + (y_i - x_i^T beta_j)^2 /
    sigma_j^2)``, the coefficients are a ridge regression weighted by
    ``r_ij u_ij``, the scale its weighted residual variance, and ``nu_j``
    the root of ``log(nu/2) - digamma(nu/2) + 1 + mean_r(E[log u] - u) = 0``
    (within ``[MIN_DF, MAX_DF]``): all from one pass at the current
    parameters, an exact M-step of the complete-data likelihood, so EM is
    monotone. (ECME would instead maximise the observed likelihood in
    ``nu``, which needs a pass over the data per trial value.) An outlier
    gets a small ``u`` and cannot drag its expert. Given the ``u``, the
    bank is a linear-Gaussian one (its M-step, penalty ``alpha ||beta_j||^2
    / (2 sigma_j^2)``, prediction and attributes are inherited), with the
    degrees of freedom besides.

    Parameters
    ----------
    n_leaves : int
    alpha : float
    min_variance : float
        Floor on every ``sigma_j^2`` (standardised units).
    """

    def __init__(self, n_leaves, alpha, min_variance):
        super().__init__(n_leaves, alpha, min_variance)
        self.df = None

    def init_params(self, n_params, like, xp):
        """Zero coefficients, unit scale, 10 degrees of freedom."""
        super().init_params(n_params, like, xp)
        self.df = xp.full((self.n_leaves,), 10.0, dtype=xp.float64, device=device(like))

    def get_state(self):
        return self.coef, self.variance, self.df

    def set_state(self, state):
        self.coef, self.variance, self.df = state

    def free_parameters(self, xp):
        """Coefficients, log-variances and log degrees of freedom."""
        return [*super().free_parameters(xp), xp.log(self.df)]

    def set_free_parameters(self, free, xp):
        super().set_free_parameters(free[:2], xp)
        df = xp.exp(free[2])
        df = xp.maximum(df, xp.full_like(df, MIN_DF))
        self.df = xp.minimum(df, xp.full_like(df, MAX_DF))

    def n_free_params(self, n_params):
        return super().n_free_params(n_params) + self.n_leaves

    def _standard_residuals(self, X, y, xp):
        """``delta^2 = (y - x^T beta)^2 / sigma^2`` of every expert."""
        resid = wide(y, xp)[None, :] - self.predict(X, xp)
        return resid**2 / self.variance[:, None]

    def _constants(self, xp):
        """``log Gamma((nu+1)/2) - log Gamma(nu/2) - log(nu pi sigma^2) / 2``."""
        nu = to_numpy(self.df, xp)
        constant = (
            special.gammaln((nu + 1) / 2)
            - special.gammaln(nu / 2)
            - 0.5 * np.log(nu * math.pi)
        )
        constant = xp.asarray(constant, device=device(self.df))
        return constant - 0.5 * xp.log(self.variance)

    def log_likelihood(self, X, y, xp):
        nu = self.df[:, None]
        delta2 = self._standard_residuals(X, y, xp)
        return self._constants(xp)[:, None] - 0.5 * (nu + 1) * xp.log1p(delta2 / nu)

    def accumulate(self, stats, chunk, resp, xp):
        """Add the ``r u``-weighted sums of the linear-Gaussian experts and
        ``sum r (log u - u)`` for the degrees of freedom."""
        nu = self.df[:, None]
        u = (nu + 1) / (nu + self._standard_residuals(chunk.X, chunk.y, xp))
        weights = wide(resp, xp) * u
        y = wide(chunk.y, xp)
        X = self.design(chunk.X, xp)
        new = {
            "gram": gram_sums(X, weights, xp, self.outer(chunk)),
            "xy": weighted_sums(X, y, weights, xp),
            "yy": weights @ y**2,
            "mass": xp.sum(wide(resp, xp), axis=1),
            "log_u": xp.sum(wide(resp, xp) * (xp.log(u) - u), axis=1),
        }
        return add_stats(stats, new)

    def m_step(self, stats, xp):
        """Coefficients and scale by the linear-Gaussian M-step on the
        ``u``-weighted sums, then the degrees of freedom: each an exact
        maximiser of the complete-data objective."""
        super().m_step(stats, xp)
        self.df = xp.asarray(
            self._update_df(stats["log_u"], stats["mass"], xp),
            device=device(self.coef),
        )

    def _update_df(self, log_u, mass, xp):
        """Peel & McLachlan's equation for every expert's ``nu``, from the
        sums at the current ``nu`` (``E[log u] = log u + digamma((nu+1)/2)
        - log((nu+1)/2)``)."""
        nu_old = to_numpy(self.df, xp)
        mass = np.maximum(to_numpy(mass, xp), np.finfo(np.float64).tiny)
        mean = to_numpy(log_u, xp) / mass + (
            special.digamma((nu_old + 1) / 2) - np.log((nu_old + 1) / 2)
        )
        new = np.empty_like(nu_old)
        for j, m in enumerate(mean):

            def equation(nu, m=m):
                return math.log(nu / 2) - special.digamma(nu / 2) + 1.0 + m

            if equation(MAX_DF) >= 0:
                new[j] = MAX_DF
            elif equation(MIN_DF) <= 0:
                new[j] = MIN_DF
            else:
                new[j] = brentq(equation, MIN_DF, MAX_DF, xtol=1e-10)
        return new

    def predict_mean_variance(self, X, xp, mask=None):
        """Each expert's location and variance ``sigma^2 nu / (nu - 2)``
        (infinite for ``nu <= 2``), (n_leaves, 1)."""
        nu = self.df
        finite = nu > 2
        factor = xp.where(finite, nu / xp.where(finite, nu - 2, 1.0), math.inf)
        return self.predict(X, xp), (self.variance * factor)[:, None]

    def leaf_distribution(self, X, xp, trials=None):
        """Every expert's Student t of the standardised target at every row
        (SciPy, parameters of shape (n_leaves, n_rows, 1))."""
        location = to_numpy(self.predict(X, xp), xp)[:, :, None]
        scale = np.sqrt(to_numpy(self.variance, xp))[:, None, None]
        return stats.t(
            df=to_numpy(self.df, xp)[:, None, None], loc=location, scale=scale
        )

    def draw(self, X, leaves, random_state, xp):
        rows = np.arange(len(leaves))
        location = to_numpy(self.predict(X, xp), xp)[leaves, rows]
        scale = np.sqrt(to_numpy(self.variance, xp))[leaves]
        nu = to_numpy(self.df, xp)[leaves]
        return location + scale * random_state.standard_t(nu)

    def eta_derivatives(self, X, y, xp):
        """Derivatives of the log-density by the location ``eta`` and
        ``tau = log sigma^2``, at the fitted ``nu`` (held fixed)."""
        nu = self.df[:, None]
        resid = wide(y, xp)[None, :] - self.predict(X, xp)
        inv = 1.0 / self.variance[:, None]
        q = resid**2 * inv / nu
        a = (nu + 1) / nu
        return {
            "d_eta": a * resid * inv / (1 + q),
            "d_eta2": a * inv * (q - 1) / (1 + q) ** 2,
            "d_tau": -0.5 + 0.5 * (nu + 1) * q / (1 + q),
            "d_tau2": -0.5 * (nu + 1) * q / (1 + q) ** 2,
            "d_eta_tau": -a * resid * inv / (1 + q) ** 2,
        }

    def attributes(self, scaling, xp):
        return {**super().attributes(scaling, xp), "expert_df_": self.df}
