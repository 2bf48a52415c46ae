"""EM never decreases its penalised objective, on many random problems.

Each problem is drawn from a random mixture of experts (regression or
classification), the model has a random depth (1-3) and branching (2-4), and
EM is stepped one iteration at a time with ``warm_start=True, max_iter=1``.
"""

import numpy as np
import pytest
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
