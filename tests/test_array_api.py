"""The numeric core and the estimators under ``array-api-strict``.

``array-api-strict`` implements nothing beyond the array API standard, so a
run through it shows that the EM loop, the gate tree, the expert banks and
the solvers use only the standard; the results must equal NumPy's at
dtype-aware tolerances. GPU namespaces are the GPU backend's to test.
"""

import array_api_compat.numpy as xp_numpy
import array_api_strict as xp_strict
import numpy as np
import pytest
import sklearn

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts._array_api import add_intercept
from hmexperts._em import run_em
from hmexperts._experts import LinearGaussianExperts, SoftmaxExperts
from hmexperts._gates import GateTree
from hmexperts.datasets import make_moe

TOLERANCE = {"float64": 1e-9, "float32": 2e-3}


def _run_core(xp, dtype_name, task):
    """Fit a depth-2 HME with the core alone, on namespace ``xp``."""
    X, y, _ = make_moe(
        300,
        2,
        n_experts=2,
        depth=2,
        task=task,
        n_classes=3,
        coef_scale=2.0,
        random_state=0,
    )
    rng = np.random.RandomState(0)
    resp = rng.dirichlet(np.ones(4), size=300).T
    dtype = getattr(xp, dtype_name)
    X = add_intercept(xp.asarray(X, dtype=dtype), xp)
    resp = xp.asarray(resp, dtype=dtype)
    weight = xp.ones((300,), dtype=dtype)
    gates = GateTree(2, 2, alpha=0.1)
    if task == "regression":
        y = xp.asarray(y, dtype=dtype)
        experts = LinearGaussianExperts(4, alpha=0.1, min_variance=1e-3)
    else:
        y = xp.asarray(y)
        experts = SoftmaxExperts(4, 3, alpha=0.1)
    gates.init_params(3, X, xp)
    experts.init_params(3, X, xp)
    monitor = run_em(
        X, y, weight, gates, experts, resp_init=resp, max_iter=15, tol=0, xp=xp
    )
    params = [*gates.coef, experts.coef] + (
        [experts.variance] if task == "regression" else []
    )
    return monitor.history, [np.asarray(xp_to_numpy(p)) for p in params]


def xp_to_numpy(array):
    return np.from_dlpack(array) if not isinstance(array, np.ndarray) else array


@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
@pytest.mark.parametrize("task", ["regression", "classification"])
def test_core_under_array_api_strict_matches_numpy(task, dtype_name):
    history_np, params_np = _run_core(xp_numpy, dtype_name, task)
    history_strict, params_strict = _run_core(xp_strict, dtype_name, task)
    tol = TOLERANCE[dtype_name]
    np.testing.assert_allclose(history_strict, history_np, rtol=tol, atol=tol)
    for strict, numpy_ in zip(params_strict, params_np, strict=True):
        assert strict.dtype == np.dtype(dtype_name)
        np.testing.assert_allclose(strict, numpy_, rtol=tol, atol=tol)


def test_float32_and_float64_agree():
    history32, params32 = _run_core(xp_numpy, "float32", "regression")
    history64, params64 = _run_core(xp_numpy, "float64", "regression")
    np.testing.assert_allclose(history32, history64, rtol=1e-3)
    for p32, p64 in zip(params32, params64, strict=True):
        np.testing.assert_allclose(p32, p64, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize(
    "Estimator, task",
    [
        (MixtureOfExpertsRegressor, "regression"),
        (MixtureOfExpertsClassifier, "classification"),
    ],
)
def test_estimators_under_array_api_dispatch(Estimator, task):
    X, y, _ = make_moe(
        200, 2, n_experts=2, depth=2, task=task, n_classes=3, random_state=0
    )
    reference = Estimator(n_experts=2, depth=2, random_state=0).fit(X, y)
    with sklearn.config_context(array_api_dispatch=True):
        model = Estimator(n_experts=2, depth=2, random_state=0)
        model.fit(xp_strict.asarray(X), xp_strict.asarray(y))
        X_strict, y_strict = xp_strict.asarray(X), xp_strict.asarray(y)
        outputs = {
            "predict_gates": model.predict_gates(X_strict),
            "score_samples": model.score_samples(X_strict, y_strict),
            "predict_responsibilities": model.predict_responsibilities(
                X_strict, y_strict
            ),
        }
        if task == "regression":
            outputs["predict"] = model.predict(X_strict)
        else:
            outputs["predict_proba"] = model.predict_proba(X_strict)
    for name, output in outputs.items():
        assert isinstance(output, type(X_strict)), name
        expected = (
            getattr(reference, name)(X, y)
            if "score" in name or "resp" in name
            else (getattr(reference, name)(X))
        )
        np.testing.assert_allclose(xp_to_numpy(output), expected, rtol=1e-9, atol=1e-12)
    assert model.lower_bound_ == pytest.approx(reference.lower_bound_, rel=1e-12)


@pytest.mark.filterwarnings("ignore:.*found no expert with room:UserWarning")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "params",
    [
        {"algorithm": "hard", "pooling": "max", "capacity_factor": 1.0},
        {"top_k": 2, "gate_noise": 0.5, "capacity_factor": 0.3, "priority": "order"},
        {"algorithm": "stochastic", "load_balance": 1.0, "top_k": 1},
    ],
)
@pytest.mark.parametrize(
    "Estimator, task",
    [
        (MixtureOfExpertsRegressor, "regression"),
        (MixtureOfExpertsClassifier, "classification"),
    ],
)
def test_sparse_routing_under_array_api_dispatch(Estimator, task, params):
    """Truncated, hard and stochastic EM, grouped gate fits, the load-balanced
    M-step and capacity routing use only the standard, and match NumPy."""
    X, y, _ = make_moe(
        200, 2, n_experts=2, depth=2, task=task, n_classes=3, random_state=0
    )
    params = dict(n_experts=2, depth=2, random_state=0, max_iter=15, **params)
    reference = Estimator(**params).fit(X, y)
    with sklearn.config_context(array_api_dispatch=True):
        model = Estimator(**params).fit(xp_strict.asarray(X), xp_strict.asarray(y))
        X_strict = xp_strict.asarray(X)
        if task == "regression":
            output, expected = model.predict(X_strict), reference.predict(X)
        else:
            output, expected = model.predict_proba(X_strict), reference.predict_proba(X)
        stats = model.routing_stats(X_strict)
    np.testing.assert_allclose(xp_to_numpy(output), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(stats.load, reference.routing_stats(X).load)
    assert model.lower_bound_ == pytest.approx(reference.lower_bound_, rel=1e-12)
