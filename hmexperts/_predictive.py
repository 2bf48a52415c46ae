"""Predictive distributions of the regressor: quantiles, intervals, densities.

Given ``x``, the target's law is the mixture ``F(y | x) = sum_j pi_j(x)
F_j(y | x)`` of the experts' laws, weighted by the gates' priors (the dense
mixture, as ``log_likelihood`` and ``sample`` use it). Every expert bank
gives its laws for a set of rows as one SciPy distribution whose
parameters have shape (n_leaves, n_rows, 1) (the last axis for the points
it is evaluated at), in the standardised units of the fit
(``leaf_distribution``): Gaussian for linear and learner experts (their
predictive mean and variance), Student t, gamma, Poisson, or the binomial
proportion of ``m`` trials.

A quantile of a mixture has no closed form. It lies between the smallest
and the largest of the experts' quantiles (the mixture CDF is an average of
the experts' CDFs), so it is found in that bracket for every row and every
level at once: safeguarded Newton steps on ``F(y) - q`` (a step that leaves
the bracket is a bisection), until a step moves less than 1e-12 of the
bracket's width. For a
discrete family the quantile is the smallest value ``k`` with ``F(k) >=
q``, found by bisection on the integers of the bracket.
"""

import array_api_compat.numpy
import numpy as np
from scipy import stats

from ._array_api import to_numpy
from ._dask import is_dask_array
from ._scaling import check_sample_weight

# Newton iterations of a quantile search at most, and its tolerance in units
# of the bracket's width and of the target's scale.
_MAX_ITER = 100
_XTOL = 1e-12
# The grid of the highest-density region: points between the mixture's
# quantiles _HDR_TAIL and 1 - _HDR_TAIL (the region's level is then found
# from the mixture's CDF, not the grid).
_HDR_POINTS = 2048
_HDR_TAIL = 1e-4


class ScaledBinomial:
    """The proportion ``K / m`` of ``K ~ Binomial(m, p)``: a discrete law on
    ``0, 1/m, ..., 1`` with SciPy's ``cdf``, ``pmf`` and ``ppf``; ``trials``
    and ``p`` broadcast as SciPy's parameters do."""

    discrete = True

    def __init__(self, trials, p):
        self.trials = trials
        self.binomial = stats.binom(trials, p)

    def cdf(self, y):
        return self.binomial.cdf(np.floor(y * self.trials + 1e-9))

    def pdf(self, y):
        k = y * self.trials
        on_grid = np.abs(k - np.round(k)) < 1e-9
        return np.where(on_grid, self.binomial.pmf(np.round(k)), 0.0)

    def ppf(self, q):
        return self.binomial.ppf(q) / self.trials

    def step(self):
        """The spacing of the support."""
        return 1.0 / self.trials


def is_discrete(dist):
    """Whether a leaf distribution is discrete (Poisson, binomial)."""
    if isinstance(dist, ScaledBinomial):
        return True
    return isinstance(getattr(dist, "dist", None), stats.rv_discrete)


def density(dist, y):
    """The pdf (continuous) or pmf (discrete) of ``dist`` at ``y``."""
    if isinstance(dist, ScaledBinomial):
        return dist.pdf(y)
    if is_discrete(dist):
        return np.where(y == np.round(y), dist.pmf(np.round(y)), 0.0)
    return dist.pdf(y)


def mixture_cdf(dist, prior, y):
    """``sum_j prior[j, i] F_j(y[i, ...])``: ``prior`` (n_leaves, n_rows),
    ``y`` (n_rows, n_points); returns (n_rows, n_points)."""
    return np.einsum("ji,jik->ik", prior, dist.cdf(y[None, :, :]))


def mixture_density(dist, prior, y):
    """The mixture's pdf (pmf) at ``y`` (n_rows, n_points)."""
    return np.einsum("ji,jik->ik", prior, density(dist, y[None, :, :]))


def _quantiles(dist, prior, levels):
    """Quantiles of the mixture of every row at every level.

    Parameters
    ----------
    dist : distribution of shape (n_leaves, n_rows)
    prior : ndarray of shape (n_leaves, n_rows)
    levels : ndarray of shape (n_levels,), in (0, 1)

    Returns
    -------
    quantiles : ndarray of shape (n_rows, n_levels)
    """
    q = np.broadcast_to(levels[None, None, :], (1, prior.shape[1], len(levels)))
    expert = dist.ppf(q)  # (L, n, Q): every expert's quantile
    # experts with no prior mass do not bound the mixture's quantile
    weighted = prior[:, :, None] > 0
    low = np.min(np.where(weighted, expert, np.inf), axis=0)
    high = np.max(np.where(weighted, expert, -np.inf), axis=0)
    target = np.broadcast_to(levels[None, :], low.shape)
    if is_discrete(dist):
        return _discrete_quantiles(dist, prior, target, low, high)
    return _continuous_quantiles(dist, prior, target, low, high)


def _discrete_quantiles(dist, prior, target, low, high):
    """The smallest support point ``k`` with ``F(k) >= q``: bisection on
    the support points of the bracket ``(low - step, high]``."""
    step = dist.step() if isinstance(dist, ScaledBinomial) else 1.0
    step = np.broadcast_to(np.reshape(step, (-1,)), (prior.shape[1],))[:, None]
    lo = np.round(low / step) - 1  # in units of the support's spacing
    hi = np.round(high / step)
    for _ in range(64):
        active = hi - lo > 1
        if not active.any():
            break
        mid = np.floor((lo + hi) / 2)
        above = mixture_cdf(dist, prior, mid * step) >= target - 1e-12
        hi = np.where(active & above, mid, hi)
        lo = np.where(active & ~above, mid, lo)
    return hi * step


def _continuous_quantiles(dist, prior, target, low, high):
    """Safeguarded Newton in the bracket ``[low, high]``."""
    x = 0.5 * (low + high)
    scale = np.maximum(high - low, 1e-300)
    for _ in range(_MAX_ITER):
        value = mixture_cdf(dist, prior, x) - target
        low = np.where(value < 0, x, low)
        high = np.where(value > 0, x, high)
        slope = mixture_density(dist, prior, x)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = x - value / slope
        inside = np.isfinite(newton) & (newton > low) & (newton < high)
        new = np.where(inside, newton, 0.5 * (low + high))
        done = np.abs(new - x) <= _XTOL * (scale + np.abs(x))
        x = new
        if done.all():
            break
    return x


def _level_set(g, f, level):
    """The intervals where the density ``f`` (on the grid ``g``) is at least
    ``level``, their ends interpolated linearly between grid points."""
    inside = f >= level
    edges = np.flatnonzero(np.diff(np.concatenate([[0], inside, [0]])))
    starts, ends = edges[::2], edges[1::2] - 1
    low, high = g[starts].copy(), g[ends].copy()
    for k, (s, e) in enumerate(zip(starts, ends, strict=True)):
        if s > 0:
            t = (level - f[s - 1]) / (f[s] - f[s - 1])
            low[k] = g[s - 1] + t * (g[s] - g[s - 1])
        if e < len(g) - 1:
            t = (level - f[e + 1]) / (f[e] - f[e + 1])
            high[k] = g[e + 1] + t * (g[e] - g[e + 1])
    return np.column_stack([low, high])


def highest_density_regions(dist, prior, coverage):
    """The smallest set of every row's mixture holding ``coverage`` of its
    mass, as a list of arrays of intervals (n_intervals, 2).

    The region is ``{y : p(y) >= level}``; its intervals' ends are found on
    a fine grid of the density (linear interpolation between its points),
    and the level by bisection, so that the mixture's CDF gives the
    region's mass, ``sum (F(high) - F(low))``, equal to ``coverage``."""
    bounds = _quantiles(dist, prior, np.array([_HDR_TAIL, 1 - _HDR_TAIL]))
    t = np.linspace(0.0, 1.0, _HDR_POINTS)
    grid = bounds[:, :1] + (bounds[:, 1:] - bounds[:, :1]) * t[None, :]
    values = mixture_density(dist, prior, grid)
    n = grid.shape[0]
    low, high = np.zeros(n), values.max(axis=1)
    for _ in range(50):
        level = 0.5 * (low + high)
        sets = [_level_set(grid[i], values[i], level[i]) for i in range(n)]
        width = max(len(region) for region in sets)
        # ends padded with the grid's start: a pad adds F(a) - F(a) = 0
        ends = np.repeat(grid[:, :1], 2 * width, axis=1)
        for i, region in enumerate(sets):
            ends[i, : 2 * len(region)] = region.ravel()
        cdf = mixture_cdf(dist, prior, ends)
        mass = np.sum(cdf[:, 1::2] - cdf[:, 0::2], axis=1)
        low = np.where(mass > coverage, level, low)
        high = np.where(mass > coverage, high, level)
    return sets


def crps_gaussian_mixture(prior, mean, std, y):
    """CRPS of Gaussian mixtures in closed form (Grimit et al., 2006):
    ``sum_j w_j A(y - mu_j, s_j^2) - 1/2 sum_jk w_j w_k A(mu_j - mu_k,
    s_j^2 + s_k^2)`` with ``A(m, v) = 2 sqrt(v) phi(m / sqrt(v)) + m (2
    Phi(m / sqrt(v)) - 1)``. ``prior``, ``mean``, ``std``: (n_leaves, n)."""

    def a(m, v):
        s = np.sqrt(v)
        z = m / s
        return 2 * s * stats.norm.pdf(z) + m * (2 * stats.norm.cdf(z) - 1)

    first = np.sum(prior * a(y[None, :] - mean, std**2), axis=0)
    pair = a(mean[:, None, :] - mean[None, :, :], std[:, None, :] ** 2 + std[None] ** 2)
    second = np.einsum("ji,ki,jki->i", prior, prior, pair)
    return first - 0.5 * second


def crps_numerical(dist, prior, y, n_points=4001):
    """CRPS ``int (F(z) - 1[z >= y])^2 dz`` by the trapezoid rule on a grid
    from the mixture's 1e-7 to its 1 - 1e-7 quantile (and ``y``), for any
    family; for a discrete one, the exact sum over its support."""
    bounds = _quantiles(dist, prior, np.array([1e-7, 1 - 1e-7]))
    low = np.minimum(bounds[:, 0], y)
    high = np.maximum(bounds[:, 1], y)
    if is_discrete(dist):
        # F is constant between support points k: each contributes
        # (F(k) - 1[k >= y])^2 times the spacing to the next one
        step = dist.step() if isinstance(dist, ScaledBinomial) else 1.0
        step = np.broadcast_to(np.reshape(step, (-1,)), y.shape)
        first = np.floor(low / step)
        count = np.round((high - low) / step) + 2
        grid = (first[:, None] + np.arange(int(count.max()))[None, :]) * step[:, None]
        cdf = mixture_cdf(dist, prior, grid)
        below = (grid >= y[:, None] - 1e-12).astype(float)
        return np.sum((cdf - below) ** 2, axis=1) * step
    # F^2 below y and (1 - F)^2 above it, each by the trapezoid rule
    t = np.linspace(0.0, 1.0, n_points)[None, :]
    below = low[:, None] + (y - low)[:, None] * t
    above = y[:, None] + (high - y)[:, None] * t
    left = np.trapezoid(mixture_cdf(dist, prior, below) ** 2, below, axis=1)
    right = np.trapezoid((1 - mixture_cdf(dist, prior, above)) ** 2, above, axis=1)
    return left + right


def _check_levels(values, name):
    """A 1-D array of probabilities strictly inside (0, 1)."""
    levels = np.asarray(values, dtype=float)
    if levels.ndim == 0:
        levels = levels[None]
    if levels.ndim != 1 or levels.size == 0:
        raise ValueError(f"{name} must be a number or a 1-D list of numbers.")
    if not np.all((levels > 0) & (levels < 1)):
        raise ValueError(
            f"{name}={values!r}: every value must be strictly between 0 and 1."
        )
    return levels


class PredictiveMixin:
    """The regressor's predictive distribution: quantiles, intervals and
    densities of the mixture ``p(y | x)`` (see the module's docstring)."""

    def _laws(self, X, method, sample_weight=None):
        """The experts' laws at the rows of ``X`` (standardised units), the
        gates' priors (n_leaves, n_rows), and ``xp``."""
        Xd, xp = self._prepare(X, method)
        experts = self._experts
        if getattr(experts, "n_targets", None) is not None:
            raise ValueError(
                f"{method} describes the law of one target; this model has "
                f"{experts.n_targets}. Use sample(X, n_draws=...) for the joint "
                "law, or fit one model per target."
            )
        prior = to_numpy(xp.exp(self._gates.log_prior(Xd, xp)), xp)
        trials = None
        if self._has_trials():
            trials, factor, _ = check_sample_weight(
                sample_weight, Xd.shape[0], array_api_compat.numpy, "cpu"
            )
            trials = np.asarray(trials) / factor
        if hasattr(experts, "leaf_distribution"):
            return experts.leaf_distribution(Xd, xp, trials), prior, xp
        mean, variance = experts.predict_mean_variance(Xd, xp)
        mean = to_numpy(mean, xp)
        std = np.sqrt(np.broadcast_to(to_numpy(variance, xp), mean.shape))
        return stats.norm(loc=mean[:, :, None], scale=std[:, :, None]), prior, xp

    def _crps(self, X, y, sample_weight=None):
        """Every row's CRPS in the units of ``y``: closed form for Gaussian
        laws, else numerical (``crps_gaussian_mixture``, ``crps_numerical``)."""
        dist, prior, xp = self._laws(X, "crps", sample_weight)
        y = np.asarray(to_numpy(xp.asarray(y), xp), dtype=float)
        if y.shape != (prior.shape[1],):
            raise ValueError(
                f"y has shape {y.shape}; expected ({prior.shape[1]},), one target "
                "per row of X."
            )
        z = (y - self._scaling.y_mean) / self._scaling.y_scale
        law = getattr(dist, "dist", None)
        if isinstance(law, type(stats.norm)):
            mean, std = dist.mean()[:, :, 0], dist.std()[:, :, 0]
            crps = crps_gaussian_mixture(prior, mean, std, z)
        else:
            crps = crps_numerical(dist, prior, z)
        if isinstance(law, type(stats.t)):
            # a Student t of nu <= 1 has no mean: its CRPS is infinite
            heavy = np.reshape(dist.kwds["df"], (-1,)) <= 1
            crps = np.where(prior[heavy].sum(axis=0) > 0, np.inf, crps)
        return self._scaling.y_scale * crps

    def _data_units(self, z):
        return self._scaling.y_mean + self._scaling.y_scale * z

    def _output(self, values, xp):
        return self._placement.output(xp.asarray(values), xp)

    def predict_quantiles(self, X, quantiles=(0.05, 0.5, 0.95), sample_weight=None):
        """Compute quantiles of the predictive distribution ``p(y | x)``.

        Exact quantiles of the mixture: the root of ``sum_j pi_j(x)
        F_j(y | x) = q``, found for all rows and levels at once by
        safeguarded Newton steps between the experts' own quantiles (for
        Poisson and binomial experts, the smallest value of the support
        where the mixture's CDF reaches ``q``). The mixture is the dense
        one, weighted by the gates' priors as ``log_likelihood`` weighs it,
        whatever ``top_k`` and ``pooling`` say.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        quantiles : float or array-like of shape (n_quantiles,), \
                default=(0.05, 0.5, 0.95)
            Levels, strictly between 0 and 1.
        sample_weight : array-like of shape (n_samples,), default=None
            Binomial experts: the trials of every row (None: 1), for the
            law of its proportion of successes. Ignored otherwise.

        Returns
        -------
        quantiles : ndarray of shape (n_samples, n_quantiles)
            In the units of ``y``.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(400, noise=0.2, random_state=0)
        >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
        >>> q = model.predict_quantiles(X[:3], quantiles=[0.1, 0.5, 0.9])
        >>> q.shape, bool((q[:, 0] < q[:, 1]).all() and (q[:, 1] < q[:, 2]).all())
        ((3, 3), True)
        """
        levels = _check_levels(quantiles, "quantiles")
        if is_dask_array(X):
            return self._lazy(
                lambda block: self.predict_quantiles(block, levels),
                X,
                n_columns=len(levels),
            )
        dist, prior, xp = self._laws(X, "predict_quantiles", sample_weight)
        return self._output(self._data_units(_quantiles(dist, prior, levels)), xp)

    def predict_interval(self, X, coverage=0.9, kind="central", sample_weight=None):
        """Prediction intervals holding ``coverage`` of ``p(y | x)``.

        ``kind="central"``: between the ``(1 - coverage) / 2`` and ``(1 +
        coverage) / 2`` quantiles (``predict_quantiles``). ``kind="hdr"``:
        the highest-density region, the shortest set holding ``coverage``:
        for a multimodal mixture it may be several intervals, one around
        every mode that holds enough mass, where the central interval would
        also cover the improbable gap between the modes. It is found on a
        grid of 2048 points between the mixture's 0.0001 and 0.9999
        quantiles (continuous experts only).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        coverage : float, default=0.9
            The probability the interval holds, strictly between 0 and 1.
        kind : {"central", "hdr"}, default="central"
            The central interval, or the highest-density region.
        sample_weight : array-like of shape (n_samples,), default=None
            Binomial experts: the trials of every row (None: 1).

        Returns
        -------
        interval : ndarray of shape (n_samples, 2), or list of ndarray
            ``kind="central"``: the lower and upper bounds. ``kind="hdr"``:
            for every row an array of shape (n_intervals, 2), the intervals
            of its region in increasing order.

        Examples
        --------
        >>> import numpy as np
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> model = MixtureOfExpertsRegressor.from_parameters(
        ...     gate_coef=[np.zeros((1, 1, 2))],
        ...     gate_intercept=[np.zeros((1, 2))],
        ...     expert_coef=np.zeros((2, 1)),
        ...     expert_intercept=np.array([-3.0, 3.0]),
        ...     expert_variance=np.full(2, 0.25),
        ... )
        >>> model.predict_interval(np.zeros((1, 1)), coverage=0.9).round(2)
        array([[-3.64,  3.64]])
        >>> regions = model.predict_interval(np.zeros((1, 1)), kind="hdr")
        >>> regions[0].round(1)  # one interval around each mode
        array([[-3.8, -2.2],
               [ 2.2,  3.8]])
        """
        (level,) = _check_levels(coverage, "coverage")
        if kind not in ("central", "hdr"):
            raise ValueError(f"kind={kind!r}; expected 'central' or 'hdr'.")
        if kind == "central":
            levels = [(1 - level) / 2, (1 + level) / 2]
            return self.predict_quantiles(X, levels, sample_weight)
        dist, prior, xp = self._laws(X, "predict_interval", sample_weight)
        if is_discrete(dist):
            raise ValueError(
                "kind='hdr' is for continuous targets; the experts are discrete "
                f"(expert={self.expert!r}): use kind='central'."
            )
        return [
            self._data_units(region)
            for region in highest_density_regions(dist, prior, level)
        ]

    def predict_density(self, X, y_grid, sample_weight=None):
        """The predictive density ``p(y | x)`` of every row on a grid of ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y_grid : array-like of shape (n_grid,) or (n_samples, n_grid)
            Values of ``y``: one grid for every row, or a grid per row.
        sample_weight : array-like of shape (n_samples,), default=None
            Binomial experts: the trials of every row (None: 1).

        Returns
        -------
        density : ndarray of shape (n_samples, n_grid)
            The mixture's density (per unit of ``y``), or its probability
            mass at the grid's values for Poisson and binomial experts.

        Examples
        --------
        >>> import numpy as np
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(400, noise=0.2, random_state=0)
        >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
        >>> grid = np.linspace(-10, 10, 4001)
        >>> density = model.predict_density(X[:2], grid)
        >>> np.trapezoid(density, grid, axis=1).round(4)
        array([1., 1.])
        """
        grid = np.asarray(y_grid, dtype=float)
        dist, prior, xp = self._laws(X, "predict_density", sample_weight)
        n = prior.shape[1]
        if grid.ndim == 1:
            grid = np.broadcast_to(grid[None, :], (n, grid.shape[0]))
        if grid.ndim != 2 or grid.shape[0] != n or grid.shape[1] == 0:
            raise ValueError(
                f"y_grid has shape {np.shape(y_grid)}; expected (n_grid,) or "
                f"({n}, n_grid): one grid for every row, or a grid per row."
            )
        z = (grid - self._scaling.y_mean) / self._scaling.y_scale
        values = mixture_density(dist, prior, z)
        if not is_discrete(dist):
            values = values / self._scaling.y_scale
        return self._output(values, xp)
