"""Known answers: fits of data drawn from known mixtures recover the truth.

The data come from ``make_moe``, whose ``truth.model`` carries the generating
parameters, so the fitted coefficients, variances, gate directions and
held-out log-likelihood are compared with the truth. Experts are matched to
the true ones up to permutation (Hungarian matching on their coefficients).
EM finds local optima: the tests use ``n_init`` restarts, as a user should.
"""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe


def _match_leaves(fitted, true):
    """Permutation ``perm`` with ``fitted[perm[j]]`` matching ``true[j]``."""
    cost = ((fitted[:, None, :] - true[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(cols), dtype=int)
    perm[cols] = rows
    return perm


def _gate_direction(coef, intercept, first, second):
    """Unit vector of the logit difference between two children of a gate."""
    w = np.append(
        coef[:, second] - coef[:, first], intercept[second] - intercept[first]
    )
    return w / np.linalg.norm(w)


def _split(X, y, n_train):
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _root_gate_cosine(model, truth, perm):
    """Cosine between fitted and true root-gate directions of a 2-expert MoE."""
    direction = _gate_direction(
        model.gate_coef_[0][0], model.gate_intercept_[0][0], perm[0], perm[1]
    )
    true_direction = _gate_direction(
        truth.gate_coef[0][0], truth.gate_intercept[0][0], 0, 1
    )
    return direction @ true_direction


def _held_out_gap(model, truth, X_test, y_test):
    """Relative gap between fitted and true held-out mean log-likelihoods."""
    fit_ll = model.log_likelihood(X_test, y_test).mean()
    true_ll = truth.model.log_likelihood(X_test, y_test).mean()
    return abs(fit_ll - true_ll) / abs(true_ll)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_expert_regression_recovers_truth(seed):
    X, y, truth = make_moe(6000, 2, n_experts=2, noise=0.3, random_state=seed)
    X_train, y_train, X_test, y_test = _split(X, y, 4000)
    model = MixtureOfExpertsRegressor(n_experts=2, n_init=2, random_state=0)
    model.fit(X_train, y_train)

    fitted = np.column_stack([model.expert_coef_, model.expert_intercept_])
    true = np.column_stack([truth.expert_coef, truth.expert_intercept])
    perm = _match_leaves(fitted, true)
    # 4000 samples, noise sd 0.3: coefficients within 0.1, variances within 15%.
    np.testing.assert_allclose(fitted[perm], true, atol=0.1)
    np.testing.assert_allclose(
        model.expert_variance_[perm], truth.expert_variance, rtol=0.15
    )
    # The gate's direction (logit of child 1 over child 0), up to the permutation.
    assert _root_gate_cosine(model, truth, perm) > 0.98
    assert _held_out_gap(model, truth, X_test, y_test) < 0.01


@pytest.mark.parametrize("seed", [0, 1])
def test_two_expert_classification_recovers_truth(seed):
    X, y, truth = make_moe(
        12000,
        2,
        n_experts=2,
        task="classification",
        n_classes=3,
        coef_scale=3.0,
        random_state=seed,
    )
    X_train, y_train, X_test, y_test = _split(X, y, 8000)
    model = MixtureOfExpertsClassifier(n_experts=2, n_init=2, random_state=0)
    model.fit(X_train, y_train)

    # Softmax weights are identified up to a shift shared by all classes:
    # compare the class-centred weights (the penalty centres the fitted ones).
    def centred(coef, intercept):
        full = np.concatenate([coef, intercept[:, None, :]], axis=1)
        return (full - full.mean(axis=2, keepdims=True)).reshape(len(full), -1)

    fitted = centred(model.expert_coef_, model.expert_intercept_)
    true = centred(truth.expert_coef, truth.expert_intercept)
    perm = _match_leaves(fitted, true)

    # Large softmax weights are weakly identified (a change barely moves
    # probabilities near 0 or 1), so compare what the experts say: each
    # expert's class probabilities where the true gate routes data to it.
    def expert_proba(coef, intercept):
        logits = np.einsum("nf,lfc->lnc", X_test, coef) + intercept[:, None, :]
        logits -= logits.max(axis=2, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=2, keepdims=True)

    fitted_proba = expert_proba(model.expert_coef_, model.expert_intercept_)[perm]
    true_proba = expert_proba(truth.expert_coef, truth.expert_intercept)
    true_prior = truth.model.predict_gates(X_test).T  # (n_leaves, n_test)
    gap = np.abs(fitted_proba - true_proba).sum(axis=2)  # total variation x 2
    weighted_gap = (true_prior * gap).sum(axis=1) / true_prior.sum(axis=1)
    assert np.all(weighted_gap < 0.1), weighted_gap
    assert _root_gate_cosine(model, truth, perm) > 0.95
    assert _held_out_gap(model, truth, X_test, y_test) < 0.01


@pytest.fixture(scope="module", params=[0, 1])
def hme_fits(request):
    """Data from a known depth-2, branching-2 HME, and a tree and a flat fit."""
    X, y, truth = make_moe(
        12000, 2, n_experts=2, depth=2, noise=0.3, random_state=request.param
    )
    data = _split(X, y, 8000)
    tree = MixtureOfExpertsRegressor(n_experts=2, depth=2, n_init=5, random_state=0)
    flat = MixtureOfExpertsRegressor(n_experts=4, depth=1, n_init=5, random_state=0)
    return data, truth, tree.fit(data[0], data[1]), flat.fit(data[0], data[1])


def test_depth_two_hme_recovers_truth(hme_fits):
    (_, _, X_test, y_test), truth, model, _ = hme_fits
    fitted = np.column_stack([model.expert_coef_, model.expert_intercept_])
    true = np.column_stack([truth.expert_coef, truth.expert_intercept])
    perm = _match_leaves(fitted, true)
    np.testing.assert_allclose(fitted[perm], true, atol=0.15)
    np.testing.assert_allclose(
        model.expert_variance_[perm], truth.expert_variance, rtol=0.2
    )

    # The matching must respect the tree: true siblings are fitted siblings.
    assert perm[0] // 2 == perm[1] // 2 and perm[2] // 2 == perm[3] // 2
    root = _gate_direction(
        model.gate_coef_[0][0], model.gate_intercept_[0][0], perm[0] // 2, perm[2] // 2
    )
    true_root = _gate_direction(truth.gate_coef[0][0], truth.gate_intercept[0][0], 0, 1)
    assert root @ true_root > 0.95
    for node in (0, 1):
        first, second = perm[2 * node], perm[2 * node + 1]
        fitted_node = first // 2
        direction = _gate_direction(
            model.gate_coef_[1][fitted_node],
            model.gate_intercept_[1][fitted_node],
            first % 2,
            second % 2,
        )
        true_direction = _gate_direction(
            truth.gate_coef[1][node], truth.gate_intercept[1][node], 0, 1
        )
        assert direction @ true_direction > 0.9
    assert _held_out_gap(model, truth, X_test, y_test) < 0.01


def test_tree_not_worse_than_flat_on_tree_data(hme_fits):
    (_, _, X_test, y_test), _, tree, flat = hme_fits
    # Same number of leaves (4) and of gate parameters; the data come from a
    # tree, so the tree must fit them at least as well as the flat softmax.
    assert tree.n_leaves_ == flat.n_leaves_ == 4
    tree_ll = tree.log_likelihood(X_test, y_test).mean()
    flat_ll = flat.log_likelihood(X_test, y_test).mean()
    assert tree_ll >= flat_ll - 1e-3


def test_regressor_beats_linear_regression_on_piecewise_data():
    rng = np.random.RandomState(0)
    X = rng.uniform(-3, 3, size=(1500, 1))
    x = X[:, 0]
    y = np.where(x < -1, -2 * x - 3, np.where(x < 1, 0.5 * x - 0.5, 3 * x - 3))
    y = y + 0.2 * rng.normal(size=len(x))
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    moe = MixtureOfExpertsRegressor(n_experts=3, n_init=3, random_state=0).fit(
        X_train, y_train
    )
    linear = LinearRegression().fit(X_train, y_train)
    moe_r2, linear_r2 = moe.score(X_test, y_test), linear.score(X_test, y_test)
    # A single line explains about half the variance; three experts all of it.
    assert moe_r2 > 0.97
    assert moe_r2 - linear_r2 > 0.3


def test_classifier_beats_logistic_regression_on_overlapping_clusters():
    # Vowel-like data: every class is two clusters, and classes overlap in
    # pairs, so no single linear boundary separates them.
    rng = np.random.RandomState(0)
    centres = {0: [(-2, -2), (2, 2)], 1: [(-2, 2), (2, -2)], 2: [(0, 0), (0, 4)]}
    X, y = [], []
    for label, points in centres.items():
        for centre in points:
            X.append(rng.normal(centre, 0.9, size=(250, 2)))
            y.append(np.full(250, label))
    X, y = np.vstack(X), np.concatenate(y)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, random_state=0, stratify=y
    )
    moe = MixtureOfExpertsClassifier(n_experts=4, n_init=3, random_state=0).fit(
        X_train, y_train
    )
    logistic = LogisticRegression().fit(X_train, y_train)
    moe_acc, logistic_acc = moe.score(X_test, y_test), logistic.score(X_test, y_test)
    assert moe_acc - logistic_acc > 0.2
