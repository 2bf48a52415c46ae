"""The softmax models' Newton curvature against its dense formula.

``softmax_sums`` sums only the blocks that couple two classes, ``C_ab =
sum_i s_i g_ai g_bi x_i x_i^T`` for ``a < b``, and ``newton_direction``
rebuilds the whole negative Hessian ``sum_i s_i (diag(g_i) - g_i g_i^T) kron
x_i x_i^T`` from them (its diagonal blocks are the sums of the coupling
blocks of their row, since the probabilities sum to one). Here both are
checked against that formula written out sample by sample, for shared and
grouped rows, kept or fresh outer products, one to five classes and chunks
of a few rows.
"""

import array_api_compat.numpy as xp
import array_api_strict
import numpy as np
import pytest

from hmexperts import _solvers
from hmexperts._solvers import (
    _full_hessian,
    _outer_rows,
    newton_direction,
    softmax_sums,
)


def _problem(n_classes, n_models, grouped, seed=0, n=40, p=3):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_models, n, p) if grouped else (n, p))
    # soft targets whose mass varies by row (and is zero on some rows)
    targets = rng.uniform(size=(n_classes, n_models, n))
    targets[:, :, : n // 8] = 0.0
    coef = 2.0 * rng.normal(size=(n_models, p, n_classes))
    return X, targets, coef


def _dense_hessian(X, targets, coef):
    """``sum_i s_i (diag(g_i) - g_i g_i^T) kron x_i x_i^T`` of every model."""
    n_models, p, k = coef.shape
    hessian = np.zeros((n_models, k * p, k * p))
    for m in range(n_models):
        rows = X[m] if X.ndim == 3 else X
        for i, x in enumerate(rows):
            logits = x @ coef[m]
            g = np.exp(logits - logits.max())
            g /= g.sum()
            s = targets[:, m, i].sum()
            hessian[m] += s * np.kron(np.diag(g) - np.outer(g, g), np.outer(x, x))
    return hessian


@pytest.mark.parametrize("n_classes", [1, 2, 3, 5])
@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("keep_outer", [False, True])
@pytest.mark.parametrize("chunk_elements", [7, 2**17])
@pytest.mark.parametrize("n_params", [3, 6])
def test_newton_hessian_equals_the_dense_formula(
    n_classes, grouped, keep_outer, chunk_elements, n_params, monkeypatch
):
    # 3 parameters: a product per class (or group of classes) of the pairs'
    # weights; 6: one for all pairs, up to 5 classes (_class_groups)
    monkeypatch.setattr(_solvers, "_CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setattr(_solvers, "_MIN_CHUNK_ROWS", 1)
    n_models, alpha = 3, 0.25
    X, targets, coef = _problem(n_classes, n_models, grouped, p=n_params)
    outer = _outer_rows(X, xp) if keep_outer else None
    sums = softmax_sums(X, targets, coef, xp, outer)
    p = coef.shape[1]
    assert sums["coupling"].shape == (
        n_models,
        n_classes * (n_classes - 1) // 2,
        p * (p + 1) // 2,
    )
    expected = _dense_hessian(X, targets, coef)
    hessian = _full_hessian(sums["coupling"], n_classes, p, alpha, xp)
    eye = np.eye(n_classes * p)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(
        hessian - alpha * eye, expected, rtol=1e-12, atol=1e-13 * scale
    )
    # the Newton direction solves (H + alpha I) d = gradient - alpha W
    gradient = sums["gradient"] - alpha * coef  # (G, P, K)
    rhs = np.transpose(gradient, (0, 2, 1)).reshape(n_models, -1)
    step = np.linalg.solve(expected + alpha * eye, rhs[:, :, None])[:, :, 0]
    direction = newton_direction(sums, coef, alpha, xp)
    np.testing.assert_allclose(
        np.transpose(direction, (0, 2, 1)).reshape(n_models, -1), step, rtol=1e-9
    )


@pytest.mark.parametrize("grouped", [False, True])
def test_class_curvature_is_the_dense_diagonal_blocks(grouped, monkeypatch):
    monkeypatch.setattr(_solvers, "_CHUNK_ELEMENTS", 7)
    monkeypatch.setattr(_solvers, "_MIN_CHUNK_ROWS", 1)
    X, targets, coef = _problem(4, 2, grouped, seed=1)
    sums = softmax_sums(X, targets, coef, xp, per_class=True)
    p = coef.shape[1]
    iu = np.triu_indices(p)
    expected = _dense_hessian(X, targets, coef)
    for m in range(2):
        for c in range(4):
            block = expected[m, c * p : (c + 1) * p, c * p : (c + 1) * p]
            np.testing.assert_allclose(
                sums["class_curvature"][m, c], block[iu], rtol=1e-12, atol=1e-13
            )


@pytest.mark.parametrize("shape", [(50, 4), (3, 20, 5), (7, 1), (0, 3)])
@pytest.mark.parametrize("namespace", [xp, array_api_strict], ids=["numpy", "strict"])
def test_outer_rows_are_the_upper_triangles(shape, namespace):
    X = np.random.RandomState(0).normal(size=shape).astype(np.float32)
    p = shape[-1]
    iu = np.triu_indices(p)
    expected = np.einsum("...i,...j->...ij", X, X).astype(np.float64)[..., iu[0], iu[1]]
    outer = _outer_rows(namespace.asarray(X), namespace)
    assert outer.dtype == namespace.float64 and outer.shape == expected.shape
    np.testing.assert_allclose(np.asarray(outer), expected, rtol=1e-7)


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("per_class", [False, True])
def test_given_log_probabilities_give_the_same_sums(grouped, per_class, monkeypatch):
    """The E-step's log-probabilities of the gates, when handed over, stand
    in for the logits: the same sums to round-off."""
    monkeypatch.setattr(_solvers, "_CHUNK_ELEMENTS", 7)
    monkeypatch.setattr(_solvers, "_MIN_CHUNK_ROWS", 1)
    X, targets, coef = _problem(4, 3, grouped, seed=2)
    if grouped:
        logits = np.einsum("gnp,gpk->kgn", X, coef)
    else:
        logits = np.einsum("np,gpk->kgn", X, coef)
    log_prob = logits - np.log(np.exp(logits).sum(axis=0))
    fresh = softmax_sums(X, targets, coef, xp, per_class=per_class)
    given = softmax_sums(X, targets, coef, xp, per_class=per_class, log_prob=log_prob)
    assert fresh.keys() == given.keys()
    for key in fresh:
        np.testing.assert_allclose(given[key], fresh[key], rtol=1e-11, atol=1e-12)
