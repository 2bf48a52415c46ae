"""The numeric core against naive implementations.

Log-space reductions, batched weighted Gram matrices and ridge solves, the
batched softmax Newton solver, the gate tree's path priors and node
posteriors, and a whole depth-1 fit against an independent, loop-based EM for
a flat mixture of experts.
"""

import itertools
import math

import array_api_compat.numpy as xp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import logsumexp as scipy_logsumexp
from scipy.special import softmax
from sklearn.exceptions import ConvergenceWarning

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor, _solvers
from hmexperts._array_api import log_softmax, logsumexp
from hmexperts._gates import GateTree
from hmexperts._scaling import robust_center_scale
from hmexperts._solvers import (
    fit_softmax,
    softmax_objective,
    solve_weighted_ridge,
    weighted_gram,
)
from hmexperts.datasets import make_moe


def test_logsumexp_matches_scipy_and_keeps_minus_inf():
    rng = np.random.RandomState(0)
    a = rng.normal(scale=300, size=(4, 5))
    a[2] = -np.inf
    with np.errstate(divide="ignore"):  # NumPy's warning for log(0)
        result = logsumexp(a, 1, xp)
    np.testing.assert_allclose(result, scipy_logsumexp(a, axis=1))
    assert result[2] == -np.inf
    np.testing.assert_allclose(logsumexp(a[:2], 0, xp), scipy_logsumexp(a[:2], axis=0))
    np.testing.assert_allclose(
        np.exp(log_softmax(a[:2], 0, xp)), softmax(a[:2], axis=0), atol=1e-15
    )


@pytest.mark.parametrize("chunk_elements", [7, 2**22])
def test_weighted_gram_matches_naive(monkeypatch, chunk_elements):
    monkeypatch.setattr(_solvers, "_CHUNK_ELEMENTS", chunk_elements)
    rng = np.random.RandomState(0)
    X, weights = rng.normal(size=(23, 4)), rng.uniform(size=(3, 23))
    expected = np.stack([X.T @ np.diag(w) @ X for w in weights])
    np.testing.assert_allclose(weighted_gram(X, weights, xp), expected, rtol=1e-12)


def test_solve_weighted_ridge_matches_naive():
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(30, 3)), rng.normal(size=30)
    weights, ridge = rng.uniform(size=(4, 30)), np.array([0.0, 0.1, 1.0, 10.0])
    coef = solve_weighted_ridge(X, y, weights, ridge, xp)
    for w, lam, beta in zip(weights, ridge, coef, strict=True):
        expected = np.linalg.solve(
            X.T @ (w[:, None] * X) + lam * np.eye(3), X.T @ (w * y)
        )
        np.testing.assert_allclose(beta, expected, rtol=1e-10)


def _soft_targets(rng, n_classes, n_models, n_samples):
    raw = rng.gamma(0.3, size=(n_classes, n_models, n_samples))
    return raw / raw.sum(axis=0) * rng.uniform(0.2, 1, size=(n_models, n_samples))


@pytest.mark.parametrize("chunk_elements", [50, 2**22])
def test_fit_softmax_matches_scipy_optimum(monkeypatch, chunk_elements):
    monkeypatch.setattr(_solvers, "_CHUNK_ELEMENTS", chunk_elements)
    rng = np.random.RandomState(0)
    n, p, k, g, alpha = 200, 3, 3, 2, 0.5
    X = np.column_stack([rng.normal(size=(n, p - 1)), np.ones(n)])
    targets = _soft_targets(rng, k, g, n)
    coef = fit_softmax(X, targets, np.zeros((g, p, k)), alpha, xp, max_steps=50)

    for model in range(g):

        def negative_objective(w, model=model):
            return -softmax_objective(
                X, targets[:, model : model + 1], w.reshape(1, p, k), alpha, xp
            )[0]

        best = minimize(
            negative_objective, np.zeros(p * k), method="BFGS", options={"gtol": 1e-10}
        )
        np.testing.assert_allclose(coef[model], best.x.reshape(p, k), atol=1e-5)


def test_fit_softmax_never_decreases_its_objective():
    rng = np.random.RandomState(1)
    n, p, k, g = 60, 3, 4, 5
    X = np.column_stack([rng.normal(size=(n, p - 1)) * 5, np.ones(n)])
    for _ in range(20):
        targets = _soft_targets(rng, k, g, n)
        start = rng.normal(scale=10, size=(g, p, k))  # far from the optimum
        before = softmax_objective(X, targets, start, 1e-3, xp)
        after = softmax_objective(
            X, targets, fit_softmax(X, targets, start, 1e-3, xp, max_steps=1), 1e-3, xp
        )
        assert np.all(after >= before)


def test_gate_tree_log_prior_is_the_product_along_paths():
    rng = np.random.RandomState(0)
    k, depth, n, p = 3, 3, 7, 3
    tree = GateTree(k, depth, alpha=1.0)
    tree.coef = [rng.normal(size=(k**d, p, k)) for d in range(depth)]
    X = np.column_stack([rng.normal(size=(n, p - 1)), np.ones(n)])
    log_prior = tree.log_prior(X, xp)
    assert log_prior.shape == (k**depth, n)
    for leaf, path in enumerate(itertools.product(range(k), repeat=depth)):
        expected, node = np.zeros(n), 0
        for level, child in enumerate(path):
            expected += np.log(softmax(X @ tree.coef[level][node], axis=1)[:, child])
            node = node * k + child
        np.testing.assert_allclose(log_prior[leaf], expected, rtol=1e-12)
    np.testing.assert_allclose(np.exp(log_prior).sum(axis=0), 1.0)


def test_node_posteriors_sum_the_leaves_below():
    rng = np.random.RandomState(0)
    tree = GateTree(2, 3, alpha=1.0)
    resp = rng.uniform(size=(8, 5))
    np.testing.assert_allclose(
        tree.node_posteriors(resp, 1, xp), [resp[:4].sum(0), resp[4:].sum(0)]
    )
    np.testing.assert_allclose(tree.node_posteriors(resp, 2, xp)[1], resp[2:4].sum(0))
    np.testing.assert_allclose(tree.node_posteriors(resp, 3, xp), resp)


def _reference_flat_moe(X, y, resp, *, gate_alpha, expert_alpha, min_variance, n_iter):
    """Loop-based EM for a flat mixture of linear-Gaussian experts.

    Written independently of the library: one expert at a time, the gate's
    M-step by BFGS over the same penalised objective. ``X`` and ``y`` are
    already standardised, ``X`` has the intercept column, ``resp`` is
    (n_samples, n_experts).
    """
    n, p = X.shape
    k = resp.shape[1]
    variance = np.ones(k)
    gate = np.zeros((p, k))
    for _ in range(n_iter):

        def gate_loss(w, resp=resp):
            w = w.reshape(p, k)
            logits = X @ w
            log_gate = logits - scipy_logsumexp(logits, axis=1, keepdims=True)
            return -(resp * log_gate).sum() + 0.5 * gate_alpha * (w**2).sum()

        gate = minimize(
            gate_loss, gate.ravel(), method="BFGS", options={"gtol": 1e-9}
        ).x.reshape(p, k)
        coef = np.zeros((k, p))
        for j in range(k):
            # penalty alpha ||beta||^2 / (2 sigma^2): ridge alpha, and the
            # shrinkage term in the variance
            r = resp[:, j]
            A = X.T @ (r[:, None] * X) + expert_alpha * np.eye(p)
            coef[j] = np.linalg.solve(A, X.T @ (r * y))
            rss = (r * (y - X @ coef[j]) ** 2).sum()
            variance[j] = max(
                (rss + expert_alpha * coef[j] @ coef[j]) / r.sum(), min_variance
            )
        log_joint = np.empty((n, k))
        for j in range(k):
            log_gate_j = X @ gate[:, j] - scipy_logsumexp(X @ gate, axis=1)
            log_density = -0.5 * (
                math.log(2 * math.pi * variance[j])
                + (y - X @ coef[j]) ** 2 / variance[j]
            )
            log_joint[:, j] = log_gate_j + log_density
        resp = np.exp(log_joint - scipy_logsumexp(log_joint, axis=1, keepdims=True))
    return coef, variance, scipy_logsumexp(log_joint, axis=1).mean()


def test_depth_one_equals_reference_flat_moe(monkeypatch):
    rng = np.random.RandomState(0)
    X = rng.uniform(-2, 2, size=(300, 2))
    y = np.where(X[:, 0] > 0, X @ [2.0, -1.0], X @ [-1.0, 0.5] + 1) + 0.2 * rng.normal(
        size=300
    )
    # standardised as the estimator does, so that it keeps them as they are
    # and both penalise the same coefficients
    weight = np.ones(len(X))
    center, scale = robust_center_scale(X, weight, xp)
    X = (X - center) / scale
    center, scale = robust_center_scale(y[:, None], weight, xp)
    y = (y - center) / scale
    resp = rng.dirichlet(np.ones(3) * 0.5, size=300)
    params = dict(gate_alpha=0.1, expert_alpha=0.1, min_variance=1e-3)

    # Both take exact M-steps from the same responsibilities, so their
    # iterates agree step by step, converged or not. The gates' Newton loop
    # normally stops once a step gains little (a generalised EM step), and
    # this trajectory, where the middle expert loses its data, amplifies the
    # difference to 5e-3 after 40 iterations: here it runs to convergence
    # (measured: 1.3e-6 apart in the coefficients, 4e-7 in the variances).
    monkeypatch.setattr(_solvers, "_NEWTON_RTOL", 0.0)
    monkeypatch.setattr(_solvers, "_NEWTON_RELATIVE", 0.0)
    monkeypatch.setattr(_solvers, "_MAX_NEWTON_STEPS", 50)
    model = MixtureOfExpertsRegressor(
        n_experts=3, init_params=resp, max_iter=40, tol=0, **params
    )
    with pytest.warns(ConvergenceWarning):
        model.fit(X, y)
    Xd = np.column_stack([X, np.ones(len(X))])
    coef, variance, log_likelihood = _reference_flat_moe(
        Xd, y, resp, n_iter=41, **params
    )

    fitted = np.column_stack([model.expert_coef_, model.expert_intercept_])
    np.testing.assert_allclose(fitted, coef, atol=1e-5)
    np.testing.assert_allclose(model.expert_variance_, variance, rtol=1e-4)
    np.testing.assert_allclose(
        model.log_likelihood(X, y).mean(), log_likelihood, rtol=1e-6
    )


@settings(max_examples=60, deadline=None)
@given(
    n_experts=st.integers(1, 4),
    depth=st.integers(1, 3),
    scale=st.floats(0.0, 200.0),
    seed=st.integers(0, 2**16),
)
def test_gate_priors_form_a_consistent_tree(n_experts, depth, scale, seed):
    # For any weights, however extreme: leaf priors are a distribution, and
    # the prior of every node is the sum of its children's (marginalisation).
    rng = np.random.RandomState(seed)
    tree = GateTree(n_experts, depth, alpha=1.0)
    tree.coef = [
        scale * rng.normal(size=(n_experts**d, 3, n_experts)) for d in range(depth)
    ]
    X = np.column_stack([rng.normal(size=(9, 2)), np.ones(9)])
    prior = np.exp(tree.log_prior(X, xp))
    assert np.all(np.isfinite(prior)) and np.all(prior >= 0)
    np.testing.assert_allclose(prior.sum(axis=0), 1.0, rtol=1e-12)
    if depth > 1:
        shallower = GateTree(n_experts, depth - 1, alpha=1.0)
        shallower.coef = tree.coef[:-1]
        np.testing.assert_allclose(
            tree.node_posteriors(prior, depth - 1, xp),
            np.exp(shallower.log_prior(X, xp)),
            atol=1e-12,
        )


def test_kept_outer_products_give_the_chunked_results(monkeypatch):
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.normal(size=(50, 3)), np.ones(50)])
    weights = rng.uniform(size=(3, 50))
    outer = _solvers.outer_products(X, xp)
    monkeypatch.setattr(_solvers, "_CHUNK_ELEMENTS", 40)  # many small chunks
    np.testing.assert_allclose(
        weighted_gram(X, weights, xp, outer), weighted_gram(X, weights, xp), rtol=1e-12
    )
    targets = _soft_targets(rng, 3, 2, 50)
    start = np.zeros((2, 4, 3))
    np.testing.assert_allclose(
        fit_softmax(X, targets, start, 0.1, xp, outer=outer),
        fit_softmax(X, targets, start, 0.1, xp),
        rtol=1e-10,
        atol=1e-12,
    )


@pytest.mark.parametrize(
    "Model", [MixtureOfExpertsRegressor, MixtureOfExpertsClassifier]
)
def test_fit_is_the_same_with_and_without_kept_outer_products(monkeypatch, Model):
    task = "regression" if Model is MixtureOfExpertsRegressor else "classification"
    X, y, _ = make_moe(300, 3, n_experts=2, depth=2, task=task, random_state=0)
    kept = Model(n_experts=2, depth=2, random_state=0).fit(X, y)
    monkeypatch.setattr(_solvers, "_CACHE_ELEMENTS", 0)  # never keep them
    assert _solvers.outer_products(X, xp) is None
    chunked = Model(n_experts=2, depth=2, random_state=0).fit(X, y)
    np.testing.assert_allclose(kept.lower_bounds_, chunked.lower_bounds_, rtol=1e-10)
