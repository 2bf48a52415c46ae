"""Diagnostics of the routing: loads, entropies and specialisation.

Properties that hold for any fit (loads sum to 1, entropies within their
bounds, the levels' gate entropies sum to the leaf entropy), known answers
on models whose gates are known (uniform gates from ``make_moe`` with
``gate_scale=0``; two far-apart clusters that two experts split), and the
per-level entropy against a direct computation from ``gate_coef_``, in a
balanced tree and in one with leaves at several depths and gates of two and
three children.
"""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe
from hmexperts.diagnostics import (
    _expert_predictions,
    dispatch_entropy,
    effective_n_experts,
    expert_load,
    gate_entropy,
    specialisation_matrix,
)


@pytest.fixture(scope="module")
def hme():
    """A depth-2 regression tree fit to data from a known one, and its data."""
    X, y, truth = make_moe(400, n_experts=2, depth=2, random_state=0)
    model = MixtureOfExpertsRegressor(n_experts=2, depth=2, random_state=0)
    return model.fit(X, y), X, y, truth


@pytest.fixture(scope="module")
def unbalanced():
    """A tree of any shape: the root's three children are a gate (of leaf 0
    and a gate of leaves 1, 2), leaf 3 and a gate of leaves 4-6."""
    X, y, _ = make_moe(400, n_experts=2, depth=3, random_state=0)
    model = MixtureOfExpertsRegressor(tree=[[0, [1, 2]], 3, [4, 5, 6]], random_state=0)
    return model.fit(X, y), X, y


@pytest.fixture(scope="module")
def classifier():
    X, y, truth = make_moe(
        300, task="classification", n_classes=3, n_experts=3, random_state=0
    )
    model = MixtureOfExpertsClassifier(n_experts=3, random_state=0).fit(X, y)
    return model, X, y, truth


@pytest.fixture(scope="module")
def clusters():
    """Two far-apart clusters of x with opposite slopes: two experts split them."""
    rng = np.random.RandomState(0)
    x = np.r_[rng.uniform(-6, -4, 100), rng.uniform(4, 6, 100)]
    cluster = np.repeat([0, 1], 100)
    y = np.where(cluster == 0, 2 * x, -3 * x) + 0.1 * rng.normal(size=200)
    X = x[:, None]
    model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    return model, X, y, cluster


def _softmax(logits):
    logits = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=-1, keepdims=True)


# -- expert_load and effective_n_experts --------------------------------------


@pytest.mark.parametrize("with_y", [False, True])
def test_load_is_a_distribution_over_leaves(hme, with_y):
    model, X, y, _ = hme
    load = expert_load(model, X, y if with_y else None)
    assert load.shape == (4,)
    assert np.all(load >= 0)
    assert load.sum() == pytest.approx(1.0)
    routing = model.predict_responsibilities(X, y) if with_y else model.predict_gates(X)
    np.testing.assert_allclose(load, routing.mean(axis=0))


@pytest.mark.parametrize("with_y", [False, True])
def test_effective_n_experts_within_bounds(hme, with_y):
    model, X, y, _ = hme
    n_effective = effective_n_experts(model, X, y if with_y else None)
    # the truth spreads its samples over all four leaves (shares 0.19-0.31):
    # the fit uses them all, not one or two
    assert 3.0 < n_effective <= 4.0
    load = expert_load(model, X, y if with_y else None)
    assert n_effective == pytest.approx(np.exp(-np.sum(load * np.log(load))))


def test_uniform_gates_use_every_expert():
    """Zero gate weights: every leaf has prior 1 / n_leaves everywhere."""
    X, _, truth = make_moe(100, n_experts=3, depth=2, gate_scale=0, random_state=0)
    model = truth.model
    np.testing.assert_allclose(expert_load(model, X), np.full(9, 1 / 9))
    assert effective_n_experts(model, X) == pytest.approx(9.0)
    assert gate_entropy(model, X) == pytest.approx(np.log(9))
    for level in (0, 1):
        assert gate_entropy(model, X, level=level) == pytest.approx(np.log(3))


def test_one_cluster_goes_to_one_expert(clusters):
    model, X, y, cluster = clusters
    for c in (0, 1):
        rows = cluster == c
        load = expert_load(model, X[rows], y[rows])
        assert load.max() > 0.99
        assert effective_n_experts(model, X[rows], y[rows]) == pytest.approx(
            1.0, abs=0.05
        )
    # Both clusters together: two experts in equal use.
    assert effective_n_experts(model, X, y) == pytest.approx(2.0, abs=0.02)


# -- gate_entropy -------------------------------------------------------------


def test_gate_entropy_bounds_and_chain_rule(hme):
    model, X, _, _ = hme
    total = gate_entropy(model, X)
    assert 0.0 <= total <= np.log(4)
    levels = [gate_entropy(model, X, level=level) for level in (0, 1)]
    assert all(0.0 <= h <= np.log(2) for h in levels)
    assert sum(levels) == pytest.approx(total)


def test_gate_entropy_per_level_matches_the_gates(hme):
    """``sum_v P(v | x) H(g_v(. | x))`` computed from ``gate_coef_`` directly."""
    model, X, _, _ = hme
    prior = model.predict_gates(X)
    for level in (0, 1):
        coef, intercept = model.gate_coef_[level], model.gate_intercept_[level]
        gates = _softmax(np.einsum("nf,vfc->nvc", X, coef) + intercept)
        entropy = -np.sum(gates * np.log(gates), axis=2)  # (n, n_gates)
        reach = prior.reshape(len(X), 2**level, -1).sum(axis=2)
        expected = np.mean(np.sum(reach * entropy, axis=1))
        assert gate_entropy(model, X, level=level) == pytest.approx(expected)


def test_gate_entropy_per_level_of_a_tree_of_any_shape(unbalanced):
    """Every level's gates, from ``gate_coef_`` by batch (``tree_.batches``),
    weighted by the prior of reaching them; leaf 3, at depth 1, takes no
    part below level 0. The levels sum to the entropy of the leaf prior."""
    model, X, _ = unbalanced
    tree = model.tree_
    assert tree.max_depth == 3
    assert [len(tree.children[v]) for v in tree.gates] == [3, 2, 3, 2]
    prior = model.predict_gates(X)
    levels = []
    for level in range(3):
        expected = np.zeros(len(X))
        for b, batch in enumerate(tree.batches):
            if batch.depth != level:
                continue
            coef, intercept = model.gate_coef_[b], model.gate_intercept_[b]
            gates = _softmax(np.einsum("nf,vfc->nvc", X, coef) + intercept)
            for g, node in enumerate(batch.nodes):
                lo, hi = tree.ranges[node]
                reach = prior[:, lo:hi].sum(axis=1)
                expected -= reach * np.sum(gates[:, g] * np.log(gates[:, g]), axis=1)
        levels.append(gate_entropy(model, X, level=level))
        assert levels[-1] == pytest.approx(expected.mean())
        assert 0 < levels[-1] <= np.log(3)
    assert sum(levels) == pytest.approx(gate_entropy(model, X))
    with pytest.raises(ValueError, match=r"gate level from 0 \(the root\) to 2"):
        gate_entropy(model, X, level=3)


def test_sharp_gates_route_hard():
    X, _, truth = make_moe(200, n_experts=2, depth=2, gate_scale=1e4, random_state=0)
    assert gate_entropy(truth.model, X) < 1e-3


def test_gate_entropy_of_the_leaf_prior(classifier):
    model, X, _, _ = classifier
    prior = model.predict_gates(X)
    expected = np.mean(-np.sum(prior * np.log(prior), axis=1))
    assert gate_entropy(model, X) == pytest.approx(expected)
    assert gate_entropy(model, X, level=0) == pytest.approx(expected)


@pytest.mark.parametrize("level", [-1, 2, 1.0, True, "root"])
def test_gate_entropy_rejects_bad_levels(hme, level):
    model, X, _, _ = hme
    with pytest.raises(ValueError, match="gate level from 0"):
        gate_entropy(model, X, level=level)


# -- dispatch_entropy ---------------------------------------------------------


def test_dispatch_entropy_is_zero_for_the_routing_itself(classifier):
    """Every expert receives a single label when the label is its own index."""
    model, X, _, _ = classifier
    leaves = model.apply(X)
    entropy = dispatch_entropy(model, X, leaves)
    used = np.bincount(leaves, minlength=3) > 0
    np.testing.assert_allclose(entropy[used], 0.0, atol=1e-12)
    assert np.all(np.isnan(entropy[~used]))


@pytest.mark.parametrize("routing", ["hard", "soft"])
def test_dispatch_entropy_is_maximal_for_balanced_labels(classifier, routing):
    """Every sample twice, once per label: each expert gets both equally."""
    model, X, _, _ = classifier
    X2 = np.vstack([X, X])
    labels = np.repeat(["a", "b"], len(X))
    entropy = dispatch_entropy(model, X2, labels, routing=routing)
    used = ~np.isnan(entropy)
    assert used.any()
    np.testing.assert_allclose(entropy[used], np.log(2))


@pytest.mark.parametrize("routing", ["hard", "soft"])
def test_dispatch_entropy_within_bounds(classifier, routing):
    model, X, y, truth = classifier
    for labels in (y, truth.leaf):
        entropy = dispatch_entropy(model, X, labels, y, routing=routing)
        assert entropy.shape == (3,)
        finite = entropy[~np.isnan(entropy)]
        n_labels = len(np.unique(labels))
        assert np.all((finite >= -1e-12) & (finite <= np.log(n_labels) + 1e-12))


def test_experts_specialise_on_their_clusters(clusters):
    model, X, y, cluster = clusters
    for routing in ("hard", "soft"):
        entropy = dispatch_entropy(model, X, cluster, y, routing=routing)
        np.testing.assert_allclose(entropy, 0.0, atol=0.02)
    # Mixing the clusters' labels makes every expert see both: high entropy.
    rng = np.random.RandomState(0)
    assert np.all(dispatch_entropy(model, X, rng.permutation(cluster)) > 0.5)


def test_an_expert_that_receives_nothing_is_nan(clusters):
    model, X, _, cluster = clusters
    rows = cluster == 0
    entropy = dispatch_entropy(model, X[rows], cluster[rows])
    assert np.isnan(entropy).sum() == 1
    assert np.nanmax(entropy) == 0.0
    soft = dispatch_entropy(model, X[rows], cluster[rows], routing="soft")
    assert not np.isnan(soft).any()


# -- specialisation_matrix ----------------------------------------------------


def test_hard_counts_are_the_contingency_table(classifier):
    model, X, y, truth = classifier
    matrix, values = specialisation_matrix(
        model, X, truth.leaf, routing="hard", normalize=None
    )
    leaves = model.apply(X)
    expected = np.zeros((3, len(values)))
    np.add.at(expected, (leaves, np.searchsorted(values, truth.leaf)), 1)
    np.testing.assert_array_equal(matrix, expected)
    np.testing.assert_array_equal(values, np.unique(truth.leaf))


def test_hard_with_y_routes_by_the_posterior(classifier):
    model, X, y, _ = classifier
    matrix, _ = specialisation_matrix(model, X, y, y, routing="hard", normalize=None)
    leaves = model.predict_responsibilities(X, y).argmax(axis=1)
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(leaves, minlength=3))


@pytest.mark.parametrize("with_y", [False, True])
def test_normalisations(classifier, with_y):
    model, X, y, _ = classifier
    labels = np.array(["low", "mid", "high"])[y]
    target = y if with_y else None
    raw, values = specialisation_matrix(model, X, labels, target, normalize=None)
    assert values.tolist() == ["high", "low", "mid"]
    assert raw.sum() == pytest.approx(len(X))  # soft masses: one per sample
    for normalize, axis in (("expert", 1), ("label", 0)):
        matrix, _ = specialisation_matrix(model, X, labels, target, normalize=normalize)
        np.testing.assert_allclose(matrix.sum(axis=axis), 1.0)
        np.testing.assert_allclose(matrix, raw / raw.sum(axis=axis, keepdims=True))
    matrix, _ = specialisation_matrix(model, X, labels, target, normalize="all")
    np.testing.assert_allclose(matrix, raw / len(X))


def test_soft_mass_is_the_routing_per_label(hme):
    model, X, y, truth = hme
    matrix, values = specialisation_matrix(model, X, truth.leaf, y, normalize=None)
    resp = model.predict_responsibilities(X, y)
    for k, value in enumerate(values):
        np.testing.assert_allclose(matrix[:, k], resp[truth.leaf == value].sum(axis=0))


# -- experts' own predictions (shared with the plots) --------------------------------


def test_builtin_expert_predictions_pool_to_the_mixture(hme, classifier):
    model, X, _, _ = hme
    means = _expert_predictions(model, X)
    assert means.shape == (len(X), 4)
    pooled = np.sum(model.predict_gates(X) * means, axis=1)
    np.testing.assert_allclose(pooled, model.predict(X), rtol=1e-8, atol=1e-8)
    model, X, _, _ = classifier
    proba = _expert_predictions(model, X)
    assert proba.shape == (len(X), 3, 3)
    pooled = np.einsum("nl,nlc->nc", model.predict_gates(X), proba)
    np.testing.assert_allclose(pooled, model.predict_proba(X), atol=1e-8)


def test_learner_expert_predictions_pool_to_the_mixture():
    X, y, _ = make_moe(200, random_state=0)
    model = MixtureOfExpertsRegressor(
        n_experts=2, expert=LinearRegression(), random_state=0
    ).fit(X, y)
    pooled = np.sum(model.predict_gates(X) * _expert_predictions(model, X), axis=1)
    np.testing.assert_allclose(pooled, model.predict(X), rtol=1e-8, atol=1e-8)

    X, y, _ = make_moe(200, task="classification", n_classes=3, random_state=0)
    labels = np.array(["c", "a", "b"])[y]  # classes_ sorted: learners see indices
    model = MixtureOfExpertsClassifier(
        n_experts=2, expert=LogisticRegression(), tol=1e-2, random_state=0
    ).fit(X, labels)
    proba = _expert_predictions(model, X)
    pooled = np.einsum("nl,nlc->nc", model.predict_gates(X), proba)
    np.testing.assert_allclose(pooled, model.predict_proba(X), atol=1e-5)


# -- input validation ---------------------------------------------------------


FUNCTIONS = {
    "expert_load": lambda model, X, labels: expert_load(model, X),
    "effective_n_experts": lambda model, X, labels: effective_n_experts(model, X),
    "gate_entropy": lambda model, X, labels: gate_entropy(model, X),
    "dispatch_entropy": dispatch_entropy,
    "specialisation_matrix": specialisation_matrix,
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_unfitted_estimator_raises(name):
    X = np.zeros((5, 2))
    with pytest.raises(NotFittedError):
        FUNCTIONS[name](MixtureOfExpertsRegressor(), X, np.zeros(5))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_not_a_mixture_raises(name):
    X, y = np.random.RandomState(0).normal(size=(20, 2)), np.arange(20.0)
    with pytest.raises(TypeError, match="not a mixture of experts"):
        FUNCTIONS[name](LinearRegression().fit(X, y), X, y)


@pytest.mark.parametrize("function", [dispatch_entropy, specialisation_matrix])
def test_labels_must_match_X(classifier, function):
    model, X, y, _ = classifier
    with pytest.raises(ValueError, match="labels has 299 entries but X has 300 rows"):
        function(model, X, y[:-1])
    with pytest.raises(ValueError, match="labels has shape"):
        function(model, X, y[:, None])


def test_bad_options_raise(classifier):
    model, X, y, _ = classifier
    with pytest.raises(ValueError, match="routing='top1'"):
        dispatch_entropy(model, X, y, routing="top1")
    with pytest.raises(ValueError, match="normalize='rows'"):
        specialisation_matrix(model, X, y, normalize="rows")


def test_feature_names_pass_through():
    pd = pytest.importorskip("pandas")
    X, y, _ = make_moe(200, random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b"])
    model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(frame, y)
    load = expert_load(model, frame, y)  # no warning about feature names
    np.testing.assert_allclose(load, model.predict_responsibilities(frame, y).mean(0))
