"""Routed prediction: ``top_k`` and ``pooling="max"``.

Dense pooling is the mixture over all leaves; ``top_k`` keeps the ``k``
largest leaf priors of every sample, renormalised; ``pooling="max"`` routes
every sample to its most trusted leaf, the one ``apply`` returns. Learner
experts must then be called only on the samples routed to them.
"""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.linear_model import LinearRegression

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe


def _fit(task, **params):
    X, y, _ = make_moe(
        400, 2, n_experts=2, depth=2, task=task, n_classes=3, random_state=0
    )
    Model = (
        MixtureOfExpertsRegressor
        if task == "regression"
        else (MixtureOfExpertsClassifier)
    )
    return Model(n_experts=2, depth=2, random_state=0, **params).fit(X, y), X


def _output(model, X):
    if isinstance(model, MixtureOfExpertsRegressor):
        return np.column_stack(model.predict(X, return_std=True))
    return model.predict_proba(X)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_top_k_of_all_leaves_is_the_dense_model(task):
    model, X = _fit(task)
    dense = _output(model, X)
    model.set_params(top_k=model.n_leaves_)
    np.testing.assert_array_equal(_output(model, X), dense)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_top_k_renormalises_the_k_largest_priors(task):
    model, X = _fit(task)
    prior = model.predict_gates(X)
    keep = np.argsort(-prior, axis=1, kind="stable")[:, :2]
    weight = np.zeros_like(prior)
    np.put_along_axis(weight, keep, np.take_along_axis(prior, keep, axis=1), axis=1)
    weight /= weight.sum(axis=1, keepdims=True)
    model.set_params(top_k=2)
    if task == "regression":
        means = np.column_stack(
            [
                X @ coef + b
                for coef, b in zip(
                    model.expert_coef_, model.expert_intercept_, strict=True
                )
            ]
        )
        np.testing.assert_allclose(
            model.predict(X), (weight * means).sum(axis=1), rtol=1e-10
        )
    else:
        routed = model.predict_proba(X)
        np.testing.assert_allclose(routed.sum(axis=1), 1.0)
        assert not np.allclose(routed, model.set_params(top_k=None).predict_proba(X))


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_max_pooling_routes_every_sample_to_apply(task):
    model, X = _fit(task)
    leaves = model.apply(X)
    hard = _output(model.set_params(pooling="max"), X)
    top_one = _output(model.set_params(pooling="mean", top_k=1), X)
    np.testing.assert_array_equal(hard, top_one)
    if task == "regression":
        chosen = np.einsum("nf,nf->n", X, model.expert_coef_[leaves])
        np.testing.assert_allclose(hard[:, 0], chosen + model.expert_intercept_[leaves])
        # With one expert per sample, the predictive sd is that expert's.
        np.testing.assert_allclose(hard[:, 1], np.sqrt(model.expert_variance_[leaves]))
    else:
        logits = np.einsum("nf,nfc->nc", X, model.expert_coef_[leaves])
        logits += model.expert_intercept_[leaves]
        proba = np.exp(logits - logits.max(axis=1, keepdims=True))
        np.testing.assert_allclose(
            hard, proba / proba.sum(axis=1, keepdims=True), rtol=1e-10
        )


class CountingRegressor(RegressorMixin, BaseEstimator):
    """A linear regression that records how many rows it predicted."""

    def fit(self, X, y, sample_weight=None):
        self.model_ = LinearRegression().fit(X, y, sample_weight=sample_weight)
        self.predicted_rows_ = []
        return self

    def predict(self, X):
        self.predicted_rows_.append(len(X))
        return self.model_.predict(X)


@pytest.mark.parametrize(
    "params, calls", [({"top_k": 1}, 1), ({"pooling": "max"}, 1), ({"top_k": 2}, 2)]
)
def test_learners_see_only_the_samples_routed_to_them(params, calls):
    X, y, _ = make_moe(300, 2, n_experts=2, depth=2, random_state=0)
    model = MixtureOfExpertsRegressor(
        n_experts=2, depth=2, expert=CountingRegressor(), random_state=0, **params
    ).fit(X, y)
    for expert in model.experts_:
        expert.predicted_rows_ = []
    X_new = X[:100]
    model.predict(X_new)
    rows = [sum(expert.predicted_rows_) for expert in model.experts_]
    # Each sample reaches exactly `calls` experts, each expert in one batch.
    assert sum(rows) == calls * len(X_new)
    assert all(len(expert.predicted_rows_) <= 1 for expert in model.experts_)
    dense = clone(model).set_params(top_k=None, pooling="mean").fit(X, y)
    for expert in dense.experts_:
        expert.predicted_rows_ = []
    dense.predict(X_new)
    assert [sum(e.predicted_rows_) for e in dense.experts_] == [len(X_new)] * 4


@pytest.mark.parametrize(
    "params, message",
    [
        ({"top_k": 5}, "top_k=5 is larger than the number of leaves"),
        ({"top_k": 0}, "top_k == 0, must be >= 1"),
        ({"pooling": "median"}, "pooling='median'; expected 'mean' or 'max'"),
    ],
)
def test_bad_routing_parameters(params, message):
    X, y, _ = make_moe(100, 2, n_experts=2, depth=2, random_state=0)
    with pytest.raises(ValueError, match=message):
        MixtureOfExpertsRegressor(n_experts=2, depth=2, **params).fit(X, y)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"top_k": 5}, "top_k=5 is larger than the number of leaves"),
        ({"pooling": "median"}, "pooling='median'; expected 'mean' or 'max'"),
    ],
)
def test_routing_set_after_fit_is_validated_at_prediction(params, message):
    # top_k and pooling act at prediction: set_params after fit must not be
    # silently ignored (dense) when the value is invalid.
    X, y, _ = make_moe(100, 2, n_experts=2, depth=2, random_state=0)
    model = MixtureOfExpertsRegressor(n_experts=2, depth=2, random_state=0).fit(X, y)
    model.set_params(**params)
    with pytest.raises(ValueError, match=message):
        model.predict(X)
