"""Robust standardisation of the inputs and the regression target.

Every column is centred at its weighted median and divided by its weighted
standard deviation, capped at 3 times its interquartile range / 1.349 (the
standard deviation of Gaussian data), so that ordinary columns are scaled
as by scikit-learn's ``StandardScaler`` and a few outliers cannot inflate
the scale. The statistics come from a sample of the rows (all of them up
to ``SAMPLE_ROWS``, else an evenly strided subset: ``sample_rows``), so that
a fit on data larger than memory never gathers it. They are rounded to the
data's dtype, which then standardises exactly; values so far out that the
fit's sums of squares would overflow are refused with a clear error. Sample weights are
validated here too, and rescaled by a power of two when their sums could
overflow or underflow.
"""

import math
from dataclasses import dataclass
from numbers import Real

import numpy as np
from sklearn.utils import check_array

from ._array_api import add_intercept, device, is_numpy_namespace, wide
from ._placement import host
from ._validation import check_real

# Rows that standardisation and the k-means start read at most: beyond them,
# every k-th row (the same rows in memory and from Dask).
SAMPLE_ROWS = 2**16


def sample_rows(n_samples, limit=SAMPLE_ROWS):
    """The rows that standardisation and the start read: all of them up to
    ``limit`` (``SAMPLE_ROWS``), else every ``ceil(n / limit)``-th row."""
    return slice(0, n_samples, max(1, math.ceil(n_samples / limit)))


@dataclass
class Scaling:
    """Affine standardisation of the inputs and target: ``(v - mean) / scale``.

    ``y_mean`` and ``y_scale`` are floats, or for a multi-output target
    NumPy arrays of one value per target.
    """

    x_mean: object
    x_scale: object
    y_mean: float = 0.0
    y_scale: float = 1.0

    @property
    def log_y_scale(self):
        """``sum log y_scale``: the change of a density's log by the
        target's standardisation."""
        return float(np.sum(np.log(self.y_scale)))

    def target_arrays(self, xp, dev):
        """``y_mean`` and ``y_scale`` as float64 arrays of ``xp`` on ``dev``
        (0-d for a single target)."""
        return tuple(
            xp.asarray(np.asarray(v, dtype=np.float64), device=dev)
            for v in (self.y_mean, self.y_scale)
        )

    def design(self, X, xp):
        """Standardised inputs with the intercept column, in ``X``'s dtype
        (the statistics are exact in it: see ``round_to``)."""
        mean, scale = xp.astype(self.x_mean, X.dtype), xp.astype(self.x_scale, X.dtype)
        return add_intercept((X - mean) / scale, xp)

    def checked_design(self, X, xp, dtype_name):
        """``design(X)``, refusing inputs whose standardised squares would
        overflow in ``dtype_name`` (``_check_standardised``)."""
        _check_standardised(X, self.x_mean, self.x_scale, xp, "X", dtype_name)
        return self.design(X, xp)

    def standardise_target(self, y, xp, dtype_name):
        """The regression target standardised, refused as ``checked_design``
        refuses inputs."""
        mean, scale = self.target_arrays(xp, device(y))
        columns = y if y.ndim == 2 else y[:, None]
        _check_standardised(columns, mean, scale, xp, "y", dtype_name)
        return (y - xp.astype(mean, y.dtype)) / xp.astype(scale, y.dtype)

    def to_original(self, coef, xp, *, target=False):
        """Coefficients over standardised inputs to the data's units.

        ``coef`` has shape (n_models, n_features + 1, n_outputs), the last row
        the intercept; returns slopes (n_models, n_features, n_outputs) and
        intercepts (n_models, n_outputs), undoing the target's scaling too
        when ``target`` is True.
        """
        slopes = coef[:, :-1, :] / self.x_scale[:, None]
        intercept = coef[:, -1, :] - xp.sum(slopes * self.x_mean[:, None], axis=1)
        if target:
            mean, scale = self.target_arrays(xp, device(coef))
            return scale * slopes, scale * intercept + mean
        return slopes, intercept


# The interquartile range of the standard normal: IQR / this estimates the
# standard deviation of Gaussian data.
_IQR_PER_SD = 1.3489795003921634
# The scale of a column is its standard deviation, at most this many times
# IQR / 1.349: 1 for Gaussian data, 0.8 for uniform, 1.5 for Student's t
# with 3 degrees of freedom; a single outlier of 1e12 among 300 standard
# normal values would make it 6e10.
_MAX_SD_PER_IQR = 3.0
# Weights whose mean is within 2 ** +-this are used as given; others are
# rescaled by a power of two (exactly) so that sums of weights cannot
# overflow or underflow.
_WEIGHT_EXPONENT_RANGE = 16
# A standardised value beyond this (float64; float32: its own entry) would
# overflow the fit's sums of squares: a clear error instead.
_MAX_STANDARDISED = {"float64": 1e100, "float32": 1e30}


def make_scaling(X, sample_weight, target, dtype_name, xp):
    """The standardisation of the inputs, from robust statistics
    (``robust_center_scale``) rounded to the data's dtype, and of the
    target by ``target = (mean, scale)``, which the estimator gives."""
    center, scale = robust_center_scale(X, sample_weight, xp)
    return Scaling(
        round_to(center, dtype_name, xp), round_to(scale, dtype_name, xp), *target
    )


def _weighted_quantiles(v, weight, quantiles, xp, unit=False):
    """Weighted quantiles of the 1-D ``v``: for every ``q``, the smallest
    value whose cumulative weight reaches ``q`` times the total (the inverse
    of the weighted empirical distribution function), so that a weight of
    ``k`` gives what ``k`` repeated rows give.

    ``unit``: every weight is 1 and ``v`` a NumPy array. The cumulative
    weight of the ``k``-th smallest value (from 0) is then ``k + 1``
    exactly, so the ``q``-quantile is the ``ceil(q n) - 1``-th smallest,
    which one partial sort finds for all ``quantiles`` (linear time; a full
    sort of every column took a tenth of a fit of 1e5 rows)."""
    if unit:
        n = v.shape[0]
        index = [min(max(math.ceil(q * n) - 1, 0), n - 1) for q in quantiles]
        return np.partition(v, index)[index]
    order = xp.argsort(v, stable=True)
    cumulative = xp.cumulative_sum(xp.take(weight, order))
    total = float(cumulative[-1])
    targets = xp.asarray(
        [q * total for q in quantiles], dtype=cumulative.dtype, device=device(v)
    )
    index = xp.searchsorted(cumulative, targets, side="left")
    index = xp.clip(index, 0, v.shape[0] - 1)
    return xp.take(xp.take(v, order), index)


def robust_center_scale(V, weight, xp):
    """Weighted median and outlier-proof scale of every column of ``V``, float64.

    The scale is the weighted standard deviation, capped at
    ``_MAX_SD_PER_IQR`` times the interquartile range over 1.349 (the
    standard deviation for Gaussian data): ordinary columns are scaled as
    by scikit-learn's ``StandardScaler``, and a few outliers cannot inflate
    the scale beyond what the bulk of the data gives. A column whose
    quartiles coincide (mostly one value: binary or sparse data) keeps its
    standard deviation. A column whose spread is below 10 machine epsilons
    of its largest magnitude is constant up to round-off: scale 1.

    Parameters
    ----------
    V : array of shape (n_samples, n_columns)
    weight : array of shape (n_samples,), float64

    Returns
    -------
    center, scale : arrays of shape (n_columns,), float64
    """
    eps = float(xp.finfo(V.dtype).eps)
    total = xp.sum(weight)
    unit = is_numpy_namespace(xp) and bool(xp.all(weight == 1.0))
    centers, scales = [], []
    for column in range(V.shape[1]):
        v = wide(V[:, column], xp)
        low, center, high = (
            float(q)
            for q in _weighted_quantiles(v, weight, (0.25, 0.5, 0.75), xp, unit)
        )
        # the standard deviation, from values divided by the largest
        # deviation so that squares cannot overflow
        largest = float(xp.max(xp.abs(v - center)))
        scale = 0.0
        if largest > 0:
            u = (v - center) / largest
            mean = xp.sum(weight * u) / total
            scale = largest * math.sqrt(float(xp.sum(weight * (u - mean) ** 2) / total))
        robust = (high - low) / _IQR_PER_SD
        if robust > 10 * eps * max(abs(low), abs(high)):
            scale = min(scale, _MAX_SD_PER_IQR * robust)
        if not scale > 10 * eps * float(xp.max(xp.abs(v))):
            scale = 1.0
        centers.append(center)
        scales.append(scale)
    dev = device(V)
    return (
        xp.asarray(centers, dtype=xp.float64, device=dev),
        xp.asarray(scales, dtype=xp.float64, device=dev),
    )


def _check_standardised(V, center, scale, xp, name, dtype_name):
    """Refuse values so far from their column's centre, in its scales, that
    sums of their squares would overflow."""
    limit = _MAX_STANDARDISED[dtype_name]
    largest = xp.max(xp.abs(wide(V, xp) - center) / scale, axis=0)
    if bool(xp.all(largest <= limit)):
        return
    column = int(xp.argmax(largest))
    where = f"{name} column {column}" if name == "X" else name
    raise ValueError(
        f"{where} has a value {float(largest[column]):.3g} scales (its standard "
        "deviation, at most 3 times its interquartile range / 1.349) from its "
        "median, beyond the "
        f"{limit:.0e} the fit can square without overflow in {dtype_name}. "
        "Rescale or transform it (e.g. a logarithm), clip it, or remove the "
        "samples with such values."
    )


def round_to(value, dtype_name, xp):
    """``value`` (float64) rounded to ``dtype_name``'s precision, kept float64:
    standardisation statistics that float32 data are standardised with
    exactly."""
    dtype = getattr(xp, dtype_name)
    return wide(xp.astype(value, dtype), xp)


def check_sample_weight(sample_weight, n_samples, xp, dev):
    """Validate ``sample_weight``: a scalar (every sample that weight) or
    finite, non-negative, shape (n_samples,), with a positive sum.

    Returns
    -------
    sample_weight : array of shape (n_samples,), float64
        The weights; if their mean over the samples of positive weight is
        beyond ``2 ** +-_WEIGHT_EXPONENT_RANGE``, rescaled by a power of two,
        exactly, to a mean near 1.
    factor : float
        That power of two: the fit multiplies its penalties by it too, so
        that the objective, and the fit, are the same as with the weights
        given.
    total : float
        The sum of the weights as given.
    """
    if sample_weight is None:
        return xp.ones((n_samples,), dtype=xp.float64, device=dev), 1.0, n_samples
    if isinstance(sample_weight, Real):
        value = check_real(
            sample_weight, "sample_weight", min_val=0, include_boundaries="neither"
        )
        sample_weight = xp.full(
            (n_samples,), float(value), dtype=xp.float64, device=dev
        )
    else:
        # validated on the host, then moved to the data's namespace and device
        sample_weight = check_array(
            host(sample_weight),
            ensure_2d=False,
            dtype=np.float64,
            input_name="sample_weight",
        )
        sample_weight = xp.asarray(sample_weight, device=dev)
    if sample_weight.ndim != 1 or sample_weight.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight.shape == {tuple(sample_weight.shape)}, expected "
            f"({n_samples},): one weight per sample."
        )
    if bool(xp.any(sample_weight < 0)):
        raise ValueError(NEGATIVE_WEIGHTS)
    total = float(xp.sum(sample_weight))
    n_positive = int(xp.sum(xp.astype(sample_weight > 0, xp.int64)))
    factor = weight_factor(total, n_positive)
    return (sample_weight if factor == 1.0 else sample_weight * factor), factor, total


NEGATIVE_WEIGHTS = "sample_weight has negative values; weights must be >= 0."


def weight_factor(total, n_positive):
    """The power of two that rescales weights summing to ``total`` over
    ``n_positive`` samples to a mean near 1, if their mean is beyond
    ``2 ** +-_WEIGHT_EXPONENT_RANGE`` (else 1); errors for weights that sum
    to zero or do not add up."""
    if not total > 0:
        raise ValueError("sample_weight sums to zero; at least one weight must be > 0.")
    if not math.isfinite(total):
        raise ValueError(
            f"sample_weight sums to {total} in float64: the weights are too large "
            "to add up. Divide them by a common factor."
        )
    exponent = round(math.log2(n_positive / total))
    if abs(exponent) <= _WEIGHT_EXPONENT_RANGE:
        return 1.0
    return 2.0**exponent
