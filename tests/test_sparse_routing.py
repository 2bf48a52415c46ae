"""Sparse and hard routing in training and at prediction.

Training: ``top_k`` truncates the E-step, ``algorithm="hard"`` keeps one leaf
per sample, ``algorithm="stochastic"`` draws it, ``gate_noise`` perturbs the
top-k choice and ``load_balance`` penalises uneven expert importance.
Prediction: ``capacity_factor`` bounds every expert's load, with overflow
rerouted in ``priority`` order and counted by ``routing_stats``.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from test_em import assert_log_likelihood_increasing
from test_numerics import _SoftTargets

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts._array_api import get_namespace
from hmexperts._gates import GateTree
from hmexperts._routing import PredictionRouting, assign
from hmexperts._solvers import group_rows, outer_products
from hmexperts.datasets import make_moe


def _data(task="regression", n=600, seed=0, **kwargs):
    params = dict(n_experts=2, depth=2, noise=0.3, n_classes=3, random_state=seed)
    params.update(kwargs)
    return make_moe(n, 2, task=task, **params)


def _model(task, **params):
    Model = (
        MixtureOfExpertsRegressor
        if task == "regression"
        else MixtureOfExpertsClassifier
    )
    params.setdefault("random_state", 0)
    return Model(n_experts=2, depth=2, **params)


def _fit_quietly(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


# -- training ---------------------------------------------------------------------


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_top_k_of_all_leaves_trains_the_dense_model(task):
    X, y, _ = _data(task)
    dense = _model(task).fit(X, y)
    full = _model(task, top_k=4).fit(X, y)
    assert full.lower_bounds_ == dense.lower_bounds_
    np.testing.assert_array_equal(full.expert_coef_, dense.expert_coef_)


@pytest.mark.parametrize("task", ["regression", "classification"])
@pytest.mark.parametrize("params", [{"top_k": 2}, {"top_k": 1}, {"algorithm": "hard"}])
def test_truncated_em_increases_a_lower_bound_of_the_likelihood(task, params):
    X, y, _ = _data(task, seed=1)
    model = _fit_quietly(_model(task, tol=0, max_iter=30, **params), X, y)
    assert_log_likelihood_increasing(model.lower_bounds_)
    # the truncated bound (minus penalties) is below the mean log-likelihood
    assert model.lower_bound_ <= model.log_likelihood(X, y).mean()


def test_hard_em_is_truncated_em_with_one_leaf():
    X, y, _ = _data()
    hard = _model("regression", algorithm="hard").fit(X, y)
    top_one = _model("regression", top_k=1).fit(X, y)
    assert hard.lower_bounds_ == top_one.lower_bounds_
    # one leaf per sample: the training load is a share of whole samples
    counts = hard.routing_stats_.load * len(X)
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-8)


def test_hard_em_is_close_to_soft_em_on_known_answer_data():
    """Hard EM gives up a little held-out likelihood (its experts' variances
    ignore the overlap of their regions): at most 0.05 nats per sample here."""
    X, y, truth = make_moe(3000, 2, n_experts=2, noise=0.3, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    true_ll = truth.model.log_likelihood(X_test, y_test).mean()
    soft = MixtureOfExpertsRegressor(n_experts=2, n_init=3, random_state=0)
    hard = MixtureOfExpertsRegressor(
        n_experts=2, n_init=3, algorithm="hard", random_state=0
    )
    soft_ll = soft.fit(X_train, y_train).log_likelihood(X_test, y_test).mean()
    hard_ll = hard.fit(X_train, y_train).log_likelihood(X_test, y_test).mean()
    assert abs(soft_ll - true_ll) < 0.02
    assert hard_ll > soft_ll - 0.05


def test_grouped_gate_fit_equals_the_dense_fit():
    """Fitting each gate on its own rows gives the dense solver's answer."""
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.normal(size=(300, 3)), np.ones(300)])
    xp = get_namespace(X)
    leaf = rng.randint(0, 9, size=300)
    resp = np.zeros((9, 300))
    resp[leaf, np.arange(300)] = rng.uniform(0.5, 2.0, size=300)
    tree = GateTree.balanced(3, 2, alpha=0.1)
    tree.init_params(4, X, xp)
    # level 1: 3 gates, 3 children
    ((targets, node_mass),) = tree._level_targets(resp, 1, xp)
    dense = _SoftTargets(X, targets, tree.coef[1], 0.1).fit()
    outer = outer_products(X, xp)
    take, X_grouped, outer_grouped = group_rows(X, node_mass, xp, outer)
    assert X_grouped.shape[:2] == (3, int((node_mass > 0).sum(axis=1).max()))
    grouped = _SoftTargets(
        X_grouped, take(targets), tree.coef[1], 0.1, outer_grouped
    ).fit()
    np.testing.assert_allclose(grouped, dense, rtol=1e-9, atol=1e-12)
    # without the kept outer products too
    grouped = _SoftTargets(X_grouped, take(targets), tree.coef[1], 0.1).fit()
    np.testing.assert_allclose(grouped, dense, rtol=1e-9, atol=1e-12)


def test_grouping_is_skipped_when_it_would_not_pay():
    X = np.ones((10, 2))
    xp = get_namespace(X)
    assert group_rows(X, np.ones((3, 10)), xp) is None  # every gate sees all
    assert group_rows(X, np.ones((1, 10)), xp) is None  # a single gate


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_stochastic_em_is_reproducible_and_returns_its_best_iterate(task):
    X, y, _ = _data(task)
    first = _fit_quietly(_model(task, algorithm="stochastic", random_state=3), X, y)
    again = _fit_quietly(_model(task, algorithm="stochastic", random_state=3), X, y)
    other = _fit_quietly(_model(task, algorithm="stochastic", random_state=4), X, y)
    assert first.lower_bounds_ == again.lower_bounds_
    assert first.lower_bounds_ != other.lower_bounds_
    assert first.lower_bound_ == max(first.lower_bounds_)
    # the best iterate is what the model holds: its objective is recomputed
    penalty_free = first.log_likelihood(X, y).mean()
    assert first.lower_bound_ <= penalty_free


def test_stochastic_em_spread_over_seeds_is_small_on_easy_data():
    X, y, truth = make_moe(1500, 2, n_experts=2, noise=0.3, random_state=2)
    true_ll = truth.model.log_likelihood(X, y).mean()
    scores = [
        _fit_quietly(
            MixtureOfExpertsRegressor(
                n_experts=2, algorithm="stochastic", random_state=seed
            ),
            X,
            y,
        )
        .log_likelihood(X, y)
        .mean()
        for seed in range(4)
    ]
    assert np.ptp(scores) < 0.05
    assert min(scores) > true_ll - 0.05


def test_gate_noise_is_seeded_and_keeps_the_best_iterate():
    X, y, _ = _data()
    params = dict(top_k=1, gate_noise=2.0, random_state=5)
    first = _fit_quietly(_model("regression", **params), X, y)
    again = _fit_quietly(_model("regression", **params), X, y)
    quiet = _fit_quietly(_model("regression", top_k=1, random_state=5), X, y)
    assert first.lower_bounds_ == again.lower_bounds_
    assert first.lower_bounds_ != quiet.lower_bounds_
    assert first.lower_bound_ == max(first.lower_bounds_)


def _skewed_regression(seed=0):
    """One linear trend explains almost all the data: left alone, EM gives
    most of it to few experts."""
    rng = np.random.RandomState(seed)
    X = rng.uniform(-3, 3, size=(1500, 2))
    y = X @ [1.0, -0.5] + 0.3 * rng.normal(size=1500)
    y[X[:, 0] > 2.5] += 2.0
    return train_test_split(X, y, random_state=0)


def test_load_balance_evens_out_the_importance_at_a_small_cost():
    X_train, X_test, y_train, y_test = _skewed_regression()
    free = MixtureOfExpertsRegressor(n_experts=4, random_state=0)
    balanced = MixtureOfExpertsRegressor(n_experts=4, load_balance=1.0, random_state=0)
    free.fit(X_train, y_train)
    balanced.fit(X_train, y_train)
    assert balanced.routing_stats_.importance_cv2 < 0.5 * (
        free.routing_stats_.importance_cv2
    )
    assert balanced.routing_stats(X_test).importance_cv2 < 0.5 * (
        free.routing_stats(X_test).importance_cv2
    )
    assert balanced.score(X_test, y_test) > free.score(X_test, y_test) - 0.02


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("seed", range(6))
def test_load_balanced_em_never_decreases_its_objective(seed):
    task = "regression" if seed % 2 == 0 else "classification"
    X, y, _ = _data(task, n=300, seed=seed, gate_scale=8.0)
    model = _model(task, load_balance=10.0 ** (seed - 3), tol=0, max_iter=25)
    model.set_params(n_experts=2 + seed % 2, depth=1 + seed % 2)
    model.fit(X, y)
    assert_log_likelihood_increasing(model.lower_bounds_)


def test_load_balance_penalty_is_in_the_objective():
    X, y, _ = _data()
    model = _model("regression", load_balance=5.0, max_iter=0).fit(X, y)
    free = _model("regression", max_iter=0).fit(X, y)
    cv2 = model.routing_stats_.importance_cv2
    assert cv2 > 0
    # same initial M-step for the experts; the penalty lowers the objective
    assert model.lower_bound_ < free.lower_bound_


# -- prediction: capacity ---------------------------------------------------------


def _assign(model, Xd, xp):
    """The capacity assignment of ``predict``, one leaf per sample."""
    routing = PredictionRouting(
        1, model.capacity_factor, model.priority, model.random_state
    )
    return assign(model._gates.log_prior(Xd, xp), routing, xp)


def _skewed_router(task="regression"):
    """A fitted tree and inputs that most of its gates send to one leaf."""
    X, y, _ = _data(task, n=800)
    model = _model(task, top_k=1).fit(X, y)
    leaves = model.apply(X)
    favourite = np.bincount(leaves).argmax()
    X_skewed = np.vstack([X[leaves == favourite], X[:100]])
    return model, X_skewed


@pytest.mark.parametrize("task", ["regression", "classification"])
@pytest.mark.parametrize("k", [1, 2])
def test_capacity_is_never_exceeded_and_no_sample_is_lost(task, k):
    model, X = _skewed_router(task)
    model.set_params(top_k=k)
    uncapped = model.routing_stats(X)
    assert uncapped.load.max() > k * len(X) / 4  # the routing is skewed
    model.set_params(capacity_factor=1.0)
    stats = model.routing_stats(X)
    assert stats.capacity == int(np.ceil(len(X) * k / 4))
    assert stats.load.max() <= stats.capacity
    assert stats.n_dropped == 0
    assert stats.n_rerouted > 0
    # every sample got an expert; the counts add up to the slots filled
    if k == 1:
        assert stats.load.sum() == len(X) and stats.n_partial == 0
    else:
        assert len(X) + stats.n_partial <= stats.load.sum() <= k * len(X)
    output = model.predict(X)
    assert np.all(np.isfinite(output))


def test_capacity_predictions_use_the_assigned_experts():
    model, X = _skewed_router()
    model.set_params(capacity_factor=1.0)
    Xd, xp = model._prepare(X, "predict")
    mask, _, _ = _assign(model, Xd, xp)
    assigned = mask.argmax(axis=0)
    own = np.einsum("nf,nf->n", X, model.expert_coef_[assigned])
    np.testing.assert_allclose(
        model.predict(X), own + model.expert_intercept_[assigned], rtol=1e-10
    )


def test_gate_priority_keeps_the_most_confident_samples():
    model, X = _skewed_router()
    model.set_params(capacity_factor=1.0, priority="gate")
    prior = model.predict_gates(X)
    first = prior.argmax(axis=1)
    Xd, xp = model._prepare(X, "predict")
    mask, _, rerouted = _assign(model, Xd, xp)
    full = np.bincount(first, minlength=4).argmax()
    wanted = first == full
    kept = wanted & mask[full]
    moved = wanted & ~mask[full]
    assert moved.any() and np.all(rerouted[moved])
    assert prior[kept, full].min() >= prior[moved, full].max()


@pytest.mark.parametrize("priority", ["random", "order"])
def test_other_priorities_respect_capacity_too(priority):
    model, X = _skewed_router()
    model.set_params(capacity_factor=1.0, priority=priority)
    stats = model.routing_stats(X)
    assert stats.load.max() <= stats.capacity and stats.n_dropped == 0
    if priority == "order":  # the first rows keep their first choice
        Xd, xp = model._prepare(X, "predict")
        mask, capacity, _ = _assign(model, Xd, xp)
        first = model.apply(X[:capacity])
        assert np.all(mask[first, np.arange(capacity)])


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_dropped_samples_are_predicted_from_the_marginal_with_a_warning(task):
    model, X = _skewed_router(task)
    model.set_params(capacity_factor=0.5)
    stats = model.routing_stats(X)
    assert stats.n_dropped > 0
    assert stats.load.sum() + stats.n_dropped == len(X)
    with pytest.warns(UserWarning, match="found no expert with room"):
        if task == "regression":
            output = model.predict(X)
        else:
            output = model.predict_proba(X)
    assert np.all(np.isfinite(output))
    assert len(np.unique(output.round(12), axis=0)) < len(X)  # marginal repeated


# -- validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, match",
    [
        ({"algorithm": "gibbs"}, "algorithm='gibbs'"),
        ({"gate_noise": -1.0}, "gate_noise"),
        ({"gate_noise": 1.0}, "gate_noise=1.0 acts on the top-k choice"),
        ({"gate_noise": 1.0, "top_k": 4}, "gate_noise=1.0 acts on the top-k"),
        ({"load_balance": -0.5}, "load_balance"),
        ({"capacity_factor": 0.0, "top_k": 1}, "capacity_factor"),
        ({"capacity_factor": -1.0, "pooling": "max"}, "capacity_factor"),
        ({"capacity_factor": 1.0}, "dense pooling routes every sample"),
        ({"priority": "size", "top_k": 1}, "priority='size'"),
        ({"top_k": 5}, "top_k=5 is larger than the number of leaves"),
    ],
)
def test_bad_routing_parameters_are_named(params, match):
    X, y, _ = _data(n=100)
    with pytest.raises(ValueError, match=match):
        _model("regression", **params).fit(X, y)


def test_capacity_set_after_fit_is_checked_at_prediction():
    X, y, _ = _data(n=100)
    model = _model("regression").fit(X, y)
    with pytest.raises(ValueError, match="dense pooling"):
        model.set_params(capacity_factor=1.0).predict(X)
    with pytest.raises(ValueError, match="dense pooling"):
        model.routing_stats(X)
