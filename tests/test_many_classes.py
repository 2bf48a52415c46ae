"""Softmax experts with many classes: per-class Newton steps.

From ``_experts.PER_CLASS_FROM`` classes on, a softmax expert's Newton step
solves every class on its own, from the blocks of ``sum_i s_i diag(g_i)
kron x_i x_i^T`` with ``g_i (1 - g_i)`` on the diagonal: the negative
Hessian without its coupling of classes; EM's step halving keeps the fit
monotone (``benchmarks/bench_many_classes.py`` measures the
speed).
"""

import array_api_compat.numpy as xp
import numpy as np
import pytest

from hmexperts import MixtureOfExpertsClassifier, _experts
from hmexperts._experts import PER_CLASS_FROM, SoftmaxExperts
from hmexperts._solvers import newton_direction, softmax_sums


def _data(n_classes, n=600, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3))
    W = 1.5 * rng.normal(size=(3, n_classes))
    y = np.argmax(X @ W + rng.gumbel(size=(n, n_classes)), axis=1)
    return X, y


def test_class_curvature_is_the_hessians_class_blocks():
    rng = np.random.RandomState(0)
    n, p, k, g = 50, 3, 4, 2
    X = rng.normal(size=(n, p))
    targets = rng.uniform(size=(k, g, n))
    coef = rng.normal(size=(g, p, k))
    sums = softmax_sums(X, targets, coef, xp, per_class=True)
    logits = np.einsum("np,gpk->kgn", X, coef)
    prob = np.exp(logits - logits.max(axis=0))
    prob /= prob.sum(axis=0)
    s = targets.sum(axis=0)
    iu = np.triu_indices(p)
    for m in range(g):
        for c in range(k):
            weight = s[m] * prob[c, m] * (1 - prob[c, m])
            block = np.einsum("n,np,nq->pq", weight, X, X)
            np.testing.assert_allclose(sums["class_curvature"][m, c], block[iu])
    full = softmax_sums(X, targets, coef, xp)
    np.testing.assert_allclose(sums["gradient"], full["gradient"])
    np.testing.assert_allclose(sums["objective"], full["objective"])
    # the per-class step solves (C_c + alpha I) d_c = g_c - alpha w_c
    alpha = 0.1
    step = newton_direction(sums, coef, alpha, xp)
    for m in range(g):
        for c in range(k):
            packed = sums["class_curvature"][m, c]
            block = np.zeros((p, p))
            block[iu] = packed
            block = block + block.T - np.diag(np.diag(block))
            rhs = sums["gradient"][m, :, c] - alpha * coef[m, :, c]
            expected = np.linalg.solve(block + alpha * np.eye(p), rhs)
            np.testing.assert_allclose(step[m, :, c], expected, rtol=1e-10)


def test_many_classes_take_per_class_steps():
    assert not MixtureOfExpertsClassifier(2).fit(*_data(3))._experts.per_class
    X, y = _data(_experts.PER_CLASS_FROM)
    assert MixtureOfExpertsClassifier(2, random_state=0).fit(X, y)._experts.per_class


@pytest.mark.parametrize("seed", [1])
def test_per_class_steps_keep_em_monotone_and_reach_the_full_steps_optimum(
    seed, monkeypatch
):
    X, y = _data(40, n=1000, seed=seed)
    params = dict(random_state=0, tol=1e-7, max_iter=3000)
    monkeypatch.setattr(_experts, "PER_CLASS_FROM", 2)
    per_class = MixtureOfExpertsClassifier(2, **params).fit(X, y)
    history = np.asarray(per_class.lower_bounds_)
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    monkeypatch.setattr(_experts, "PER_CLASS_FROM", 10**9)
    full = MixtureOfExpertsClassifier(2, **params).fit(X, y)
    assert not full._experts.per_class
    # the same start and the same objective: the same local optimum
    assert per_class.lower_bound_ == pytest.approx(full.lower_bound_, abs=2e-4)


@pytest.mark.parametrize("n_classes", [3, 12, PER_CLASS_FROM])
@pytest.mark.parametrize("hard", [False, True])
def test_expert_sums_from_the_e_steps_probabilities_equal_those_made_anew(
    n_classes, hard
):
    # the E-step's class probabilities (log_likelihood's keep) serve the
    # softmax experts' sums; with one leaf per sample every expert gathers
    # its rows, and the kept probabilities with them
    from hmexperts._components import Chunk

    rng = np.random.RandomState(4)
    n, n_leaves = 80, 4
    experts = SoftmaxExperts(n_leaves, n_classes, alpha=1.0)
    X = np.column_stack([rng.normal(size=(n, 2)), np.ones(n)])
    experts.init_params(3, X, np)
    experts.coef = rng.normal(size=experts.coef.shape)
    y = rng.randint(0, n_classes, size=n)
    resp = rng.uniform(size=(n_leaves, n))
    if hard:
        resp = (resp == resp.max(axis=0)).astype(float)
    chunk = Chunk(X, y, np.ones(n), slice(0, n))
    kept = []
    np.testing.assert_array_equal(
        experts.log_likelihood(X, y, np, keep=kept), experts.log_likelihood(X, y, np)
    )
    (expected,) = experts.accumulate(None, chunk, resp, np)
    (got,) = experts.accumulate(None, chunk, resp, np, kept=kept)
    assert expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-12, atol=1e-12)
