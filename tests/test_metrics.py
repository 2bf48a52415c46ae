"""The held-out log-likelihood scorer, directly and through a Pipeline."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe
from hmexperts.metrics import log_likelihood_scorer


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_scorer_reaches_the_mixture_at_the_end_of_a_pipeline(task):
    X, y, _ = make_moe(300, task=task, n_classes=3, random_state=0)
    Model = (
        MixtureOfExpertsRegressor
        if task == "regression"
        else (MixtureOfExpertsClassifier)
    )
    pipeline = make_pipeline(StandardScaler(), Model(n_experts=2, random_state=0))
    pipeline.fit(X, y)
    mixture = pipeline[-1]
    expected = mixture.log_likelihood(pipeline[0].transform(X), y).mean()
    assert log_likelihood_scorer(pipeline, X, y) == pytest.approx(expected)
    weights = np.arange(300.0)
    weighted = np.average(
        mixture.log_likelihood(pipeline[0].transform(X), y), weights=weights
    )
    assert log_likelihood_scorer(
        pipeline, X, y, sample_weight=weights
    ) == pytest.approx(weighted)


def test_cross_validated_log_likelihood_prefers_the_true_number_of_experts():
    # Data from 3 experts: a grid search by held-out log-likelihood picks 3
    # over 1 (a single expert cannot fit the regimes).
    X, y, _ = make_moe(900, n_experts=3, noise=0.1, gate_scale=6.0, random_state=1)
    search = GridSearchCV(
        MixtureOfExpertsRegressor(n_init=2, random_state=0),
        {"n_experts": [1, 3]},
        scoring=log_likelihood_scorer,
        cv=3,
    ).fit(X, y)
    assert search.best_params_ == {"n_experts": 3}
    assert np.all(
        np.isfinite(
            cross_val_score(
                search.best_estimator_, X, y, cv=3, scoring=log_likelihood_scorer
            )
        )
    )


def test_scorer_refuses_an_estimator_without_log_likelihood():
    X, y, _ = make_moe(100, random_state=0)
    pipeline = make_pipeline(StandardScaler()).fit(X)
    with pytest.raises(TypeError, match="needs a mixture of experts"):
        log_likelihood_scorer(pipeline, X, y)
