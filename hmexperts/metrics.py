"""Scoring a fitted mixture by its predictive distribution.

A mixture of experts models the conditional density ``p(y | x)``, so the
natural score of a model on held-out data is the mean of ``log p(y_i |
x_i)``: unlike R^2 or accuracy it rewards a model for knowing its own
uncertainty, and unlike AIC and BIC it needs no parameter count (learner
experts have none) and no asymptotics. The continuous ranked probability
score (``crps``) judges the whole predictive distribution in the units of
``y`` and is less sensitive than the log-likelihood to a few badly
predicted samples; ``interval_coverage`` checks the calibration of the
prediction intervals. The scorers (``log_likelihood_scorer``,
``crps_scorer``, ``make_interval_coverage_scorer``) have the signature of a
scikit-learn scorer, so they plug into ``cross_val_score``,
``GridSearchCV`` and friends, and they reach through a ``Pipeline`` to the
mixture at its end.
"""

import numpy as np
from array_api_compat import array_namespace
from sklearn.pipeline import Pipeline

from ._array_api import to_numpy
from ._predictive import _check_levels

__all__ = [
    "crps",
    "crps_scorer",
    "interval_coverage",
    "log_likelihood_scorer",
    "make_interval_coverage_scorer",
]


def log_likelihood_scorer(estimator, X, y, sample_weight=None):
    """Mean held-out log-likelihood ``log p(y | x)`` of a fitted mixture.

    A scorer in scikit-learn's sense (``scorer(estimator, X, y)``, higher is
    better): pass it as ``scoring=`` to ``cross_val_score`` or
    ``GridSearchCV`` to choose ``n_experts``, ``depth`` or the ``expert``
    by cross-validated log-likelihood. ``estimator`` may be a mixture or a
    ``Pipeline`` that ends in one (``Pipeline`` has no ``log_likelihood``
    method of its own: the scorer sends ``X`` through the pipeline's
    transformers, then asks the mixture).

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor, MixtureOfExpertsClassifier or Pipeline
        A fitted mixture, or a fitted pipeline whose last step is one.
    X : array-like of shape (n_samples, n_features)
        Held-out inputs.
    y : array-like of shape (n_samples,)
        Held-out targets.
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the samples in the mean.

    Returns
    -------
    score : float
        ``sum_i w_i log p(y_i | x_i) / sum_i w_i``, in nats per sample (for
        regression, in the units of ``y``: a density, so it changes by
        ``-log(c)`` when ``y`` is multiplied by ``c``).

    Examples
    --------
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> from hmexperts.datasets import make_moe
    >>> from hmexperts.metrics import log_likelihood_scorer
    >>> X, y, _ = make_moe(600, noise=0.2, random_state=0)
    >>> pipeline = make_pipeline(
    ...     StandardScaler(), MixtureOfExpertsRegressor(n_experts=2, random_state=0)
    ... )
    >>> scores = cross_val_score(pipeline, X, y, cv=3, scoring=log_likelihood_scorer)
    >>> scores.shape
    (3,)
    """
    mixture, X = _mixture(estimator, X, "log_likelihood_scorer", "log_likelihood")
    if mixture._has_trials():  # binomial: the weights are every row's trials
        log_likelihood = mixture.log_likelihood(X, y, sample_weight)
        sample_weight = None
    else:
        log_likelihood = mixture.log_likelihood(X, y)
    log_likelihood = to_numpy(log_likelihood, array_namespace(log_likelihood))
    return float(np.average(log_likelihood, weights=sample_weight))


def _mixture(estimator, X, name, method):
    """The mixture at the end of ``estimator`` (itself, or a Pipeline's last
    step) and ``X`` through the pipeline's transformers."""
    mixture = estimator
    if isinstance(estimator, Pipeline):
        if len(estimator) > 1:
            X = estimator[:-1].transform(X)
        mixture = estimator[-1]
    if not hasattr(mixture, method):
        raise TypeError(
            f"{name} needs a mixture of experts (or a Pipeline ending in one) "
            f"with a {method} method; got {type(mixture).__name__}."
        )
    return mixture, X


def crps(estimator, X, y, sample_weight=None):
    """Compute the continuous ranked probability score of every sample.

    Lower is better.

    ``CRPS(F, y) = int (F(z) - 1[z >= y])^2 dz`` for the predictive
    distribution ``F`` of ``y`` given ``x``: the mean absolute error of a
    point prediction, generalised to a distribution (it equals the absolute
    error for a point mass), in the units of ``y``. Closed form for
    mixtures of Gaussians (linear and learner experts; Grimit et al.,
    2006), numerical otherwise (the exact sum over the support for
    Poisson and binomial experts).

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor or Pipeline
        A fitted regressor, or a fitted pipeline ending in one.
    X : array-like of shape (n_samples, n_features)
        Inputs.
    y : array-like of shape (n_samples,)
        Targets.
    sample_weight : array-like of shape (n_samples,), default=None
        Binomial experts: the trials of every row. Ignored otherwise.

    Returns
    -------
    crps : ndarray of shape (n_samples,)
        The score of every sample, in the units of ``y``.

    References
    ----------
    E. P. Grimit, T. Gneiting, V. J. Berrocal and N. A. Johnson (2006). The
    continuous ranked probability score for circular variables and its
    application to mesoscale forecast ensemble verification. Quarterly
    Journal of the Royal Meteorological Society 132, 2925-2942.

    Examples
    --------
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> from hmexperts.datasets import make_moe
    >>> from hmexperts.metrics import crps
    >>> X, y, _ = make_moe(400, noise=0.2, random_state=0)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    >>> single = MixtureOfExpertsRegressor(n_experts=1, random_state=0).fit(X, y)
    >>> bool(crps(model, X, y).mean() < crps(single, X, y).mean())
    True
    """
    mixture, X = _mixture(estimator, X, "crps", "predict_quantiles")
    return mixture._crps(X, y, sample_weight)


def crps_scorer(estimator, X, y, sample_weight=None):
    """Score a model by minus its mean CRPS (``crps``); higher is better.

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor or Pipeline
        A fitted regressor, or a fitted pipeline ending in one.
    X : array-like of shape (n_samples, n_features)
        Held-out inputs.
    y : array-like of shape (n_samples,)
        Held-out targets.
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the samples in the mean (binomial experts: the trials).

    Returns
    -------
    score : float
        ``-sum_i w_i CRPS_i / sum_i w_i``, in the units of ``y``.

    Examples
    --------
    >>> from sklearn.model_selection import cross_val_score
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> from hmexperts.datasets import make_moe
    >>> from hmexperts.metrics import crps_scorer
    >>> X, y, _ = make_moe(300, noise=0.2, random_state=0)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0)
    >>> bool((cross_val_score(model, X, y, cv=3, scoring=crps_scorer) < 0).all())
    True
    """
    mixture, X = _mixture(estimator, X, "crps_scorer", "predict_quantiles")
    if mixture._has_trials():
        return -float(np.mean(mixture._crps(X, y, sample_weight)))
    return -float(np.average(mixture._crps(X, y), weights=sample_weight))


def interval_coverage(estimator, X, y, coverage=0.9, sample_weight=None):
    """Share of the samples inside their central prediction interval.

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor or Pipeline
        A fitted regressor, or a fitted pipeline ending in one.
    X : array-like of shape (n_samples, n_features)
        Held-out inputs.
    y : array-like of shape (n_samples,)
        Held-out targets.
    coverage : float, default=0.9
        The nominal coverage of the intervals (``predict_interval``).
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the samples in the share (binomial experts: the trials).

    Returns
    -------
    share : float
        ``sum_i w_i 1[low_i <= y_i <= high_i] / sum_i w_i``: close to
        ``coverage`` for a calibrated model.

    Examples
    --------
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> from hmexperts.datasets import make_moe
    >>> from hmexperts.metrics import interval_coverage
    >>> X, y, _ = make_moe(4000, noise=0.2, random_state=0)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0)
    >>> model = model.fit(X[:2000], y[:2000])
    >>> share = interval_coverage(model, X[2000:], y[2000:], coverage=0.9)
    >>> bool(abs(share - 0.9) < 0.02)  # 0.0067: the binomial error of 2000
    True
    """
    mixture, X = _mixture(estimator, X, "interval_coverage", "predict_interval")
    trials = sample_weight if mixture._has_trials() else None
    bounds = mixture.predict_interval(X, coverage, sample_weight=trials)
    bounds = to_numpy(bounds, array_namespace(bounds))
    y = np.asarray(y, dtype=float)
    inside = (bounds[:, 0] <= y) & (y <= bounds[:, 1])
    weights = None if mixture._has_trials() else sample_weight
    return float(np.average(inside, weights=weights))


def make_interval_coverage_scorer(coverage=0.9):
    """Make a scorer of the calibration of the central intervals.

    The scorer is minus the distance of ``interval_coverage`` from
    ``coverage``.

    Parameters
    ----------
    coverage : float, default=0.9
        The nominal coverage of the central intervals.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y, sample_weight=None)``, higher is better,
        0 for intervals that cover exactly ``coverage`` of the samples.

    Examples
    --------
    >>> from sklearn.model_selection import cross_val_score
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> from hmexperts.datasets import make_moe
    >>> from hmexperts.metrics import make_interval_coverage_scorer
    >>> X, y, _ = make_moe(600, noise=0.2, random_state=0)
    >>> scorer = make_interval_coverage_scorer(0.8)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0)
    >>> bool((cross_val_score(model, X, y, cv=3, scoring=scorer) > -0.1).all())
    True
    """
    _check_levels(coverage, "coverage")

    def scorer(estimator, X, y, sample_weight=None):
        share = interval_coverage(estimator, X, y, coverage, sample_weight)
        return -abs(share - coverage)

    scorer.__name__ = f"interval_coverage_scorer_{coverage}"
    return scorer
