"""Scoring a fitted mixture by its held-out log-likelihood.

A mixture of experts models the conditional density ``p(y | x)``, so the
natural score of a model on held-out data is the mean of ``log p(y_i |
x_i)``: unlike R^2 or accuracy it rewards a model for knowing its own
uncertainty, and unlike AIC and BIC it needs no parameter count (learner
experts have none) and no asymptotics. ``log_likelihood_scorer`` has the
signature of a scikit-learn scorer, so it plugs into ``cross_val_score``,
``GridSearchCV`` and friends, and it reaches through a ``Pipeline`` to the
mixture at its end.
"""

import numpy as np
from array_api_compat import array_namespace
from sklearn.pipeline import Pipeline

from ._array_api import to_numpy

__all__ = ["log_likelihood_scorer"]


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
    mixture = estimator
    if isinstance(estimator, Pipeline):
        if len(estimator) > 1:
            X = estimator[:-1].transform(X)
        mixture = estimator[-1]
    if not hasattr(mixture, "log_likelihood"):
        raise TypeError(
            f"log_likelihood_scorer needs a mixture of experts (or a Pipeline "
            f"ending in one); got {type(mixture).__name__}, which has no "
            "log_likelihood(X, y) method."
        )
    log_likelihood = mixture.log_likelihood(X, y)
    log_likelihood = to_numpy(log_likelihood, array_namespace(log_likelihood))
    return float(np.average(log_likelihood, weights=sample_weight))
