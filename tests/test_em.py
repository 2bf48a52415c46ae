"""EM never decreases its penalised objective, on many random problems.

Each problem is drawn from a random mixture of experts (regression or
classification), the model has a random depth (1-3) and branching (2-4), and
EM is stepped one iteration at a time with ``warm_start=True, max_iter=1``.
The same problems run again in float32, with a collinear column and
log-normal sample weights, held to the same tolerance (every sum is
float64), and float32 fits are compared with float64 fits of the same data.
"""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe

N_PROBLEMS = 200
N_STEPS = 6


def assert_log_likelihood_increasing(values, rtol=1e-10):
    """No step of ``values`` goes down by more than round-off."""
    values = np.asarray(values)
    drops = values[:-1] - values[1:]
    slack = rtol * np.maximum(1.0, np.abs(values[:-1]))
    assert np.all(drops <= slack), f"objective decreased: {values}"


def _random_problem(seed):
    rng = np.random.RandomState(seed)
    task = "regression" if seed % 2 == 0 else "classification"
    depth = int(rng.randint(1, 4))
    n_experts = int(rng.randint(2, 5))
    while n_experts**depth > 64:
        depth -= 1
    n_leaves = n_experts**depth
    n_samples = int(max(2 * n_leaves, rng.randint(40, 200)))
    X, y, _ = make_moe(
        n_samples,
        int(rng.randint(1, 5)),
        n_experts=int(rng.randint(1, 4)),
        depth=int(rng.randint(1, 3)),
        task=task,
        n_classes=int(rng.randint(2, 5)),
        noise=float(rng.uniform(0.05, 1.0)),
        gate_scale=float(rng.uniform(0.5, 8.0)),
        coef_scale=float(rng.uniform(0.5, 4.0)),
        random_state=rng,
    )
    X = X * rng.uniform(0.1, 100.0, size=X.shape[1]) + rng.normal(size=X.shape[1])
    params = dict(
        n_experts=n_experts,
        depth=depth,
        gate_alpha=float(10 ** rng.uniform(-4, 0)),
        expert_alpha=float(10 ** rng.uniform(-4, 0)),
        init_params=str(rng.choice(["kmeans", "random"])),
        random_state=seed,
    )
    if task == "regression":
        model = MixtureOfExpertsRegressor(
            min_variance=float(10 ** rng.uniform(-4, -1)), **params
        )
    else:
        model = MixtureOfExpertsClassifier(**params)
    return model, X, y


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
# deep trees on little data, on purpose: the warning about it is tested elsewhere
@pytest.mark.filterwarnings("ignore:.*free parameters:UserWarning")
@pytest.mark.parametrize("seed", range(N_PROBLEMS))
def test_em_objective_never_decreases(seed):
    model, X, y = _random_problem(seed)
    model.set_params(warm_start=True, max_iter=1)
    stepped = []
    for _ in range(N_STEPS):
        model.fit(X, y)
        assert_log_likelihood_increasing(model.lower_bounds_)
        stepped.append(model.lower_bound_)
    assert_log_likelihood_increasing(stepped)
    assert np.all(np.isfinite(model.predict(X)))


def _float32_problem(seed):
    """``_random_problem`` in float32, with a collinear column (the sum of the
    first and last) and log-normal weights of sigma 3 to 5."""
    model, X, y = _random_problem(seed)
    rng = np.random.RandomState(seed + 1000)
    X = np.column_stack([X, X[:, 0] + X[:, -1]]).astype(np.float32)
    weight = np.exp(rng.uniform(3, 5) * rng.normal(size=len(X)))
    if y.dtype.kind == "f":
        y = y.astype(np.float32)
    return model, X, y, weight


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore:.*free parameters:UserWarning")
@pytest.mark.parametrize("seed", range(N_PROBLEMS))
def test_float32_em_never_decreases(seed):
    # Every sum is float64, so float32 data are held to the float64 sweep's
    # tolerance; and probabilities sum to 1 to float32's precision.
    model, X, y, weight = _float32_problem(seed)
    model.set_params(warm_start=True, max_iter=1)
    stepped = []
    for _ in range(N_STEPS):
        model.fit(X, y, sample_weight=weight)
        assert_log_likelihood_increasing(model.lower_bounds_)
        stepped.append(model.lower_bound_)
    assert_log_likelihood_increasing(stepped)
    assert np.all(np.isfinite(model.predict(X)))
    rows = [model.predict_gates(X)]
    if hasattr(model, "predict_proba"):
        rows.append(model.predict_proba(X))
    for probabilities in rows:
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore:.*free parameters:UserWarning")
@pytest.mark.parametrize("seed", range(50))
def test_float32_fit_agrees_with_float64(seed):
    # The same data (float32 values) fit in float32 and float64 give the same
    # predictions to 5e-4 of y's spread (or of a probability): only the
    # standardised design differs, by its float32 rounding. Measured on seeds
    # 0-49: at most 1.6e-4 (seed 12, a depth-3 tree of 27 leaves), else
    # below 5e-6, with equal numbers of iterations. Plain EM: the
    # accelerator's accept-or-reject decisions are discrete, so float32
    # rounding may flip one and stop the two fits at different points of a
    # slow ascent (tests/test_acceleration.py compares its fits at
    # convergence).
    model, X, y = _random_problem(seed)
    model.set_params(acceleration=None)
    X32 = X.astype(np.float32)
    y32 = y.astype(np.float32) if y.dtype.kind == "f" else y
    fits = [
        clone(model).fit(X_, y_)
        for X_, y_ in [(X32, y32), (X32.astype(np.float64), y32.astype(y.dtype))]
    ]
    if hasattr(model, "predict_proba"):
        predictions = [fit.predict_proba(X32) for fit in fits]
        scale = 1.0
    else:
        predictions = [fit.predict(X32) for fit in fits]
        scale = np.std(y)
    assert predictions[0].dtype == np.float32
    np.testing.assert_allclose(predictions[0], predictions[1], atol=5e-4 * scale)


def test_full_fit_history_is_monotone():
    X, y, _ = make_moe(500, 3, n_experts=3, depth=2, noise=0.5, random_state=1)
    model = MixtureOfExpertsRegressor(
        n_experts=3, depth=2, tol=0, max_iter=60, random_state=0
    )
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        model.fit(X, y)
    assert len(model.lower_bounds_) == 61
    assert_log_likelihood_increasing(model.lower_bounds_)
    assert model.lower_bounds_[-1] > model.lower_bounds_[0]


def test_assert_log_likelihood_increasing_catches_a_drop():
    with pytest.raises(AssertionError, match="decreased"):
        assert_log_likelihood_increasing([-1.0, -0.5, -0.6])
