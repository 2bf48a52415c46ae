"""Coverage of the 95% Wald intervals of ``summary``, a small simulation.

The CI version of ``benchmarks/study_coverage.py`` (whose 200- and
5000-data-set runs are in ``benchmarks/results/coverage.txt``): the same two
known 2-expert mixtures (Poisson experts on ``x0`` with the gate on a
concomitant ``x1``; linear-Gaussian experts and gate on one ``x``), 500 rows
per data set, maximum likelihood (penalties ``1e-8``, ``tol=1e-8``), EM
started from the true model's responsibilities so that the fit's leaf ``j``
is the true leaf ``j`` (the intervals are tested, not EM's local optima).

The band, with ``N_SIMS = 100`` data sets per model: a correct 95% interval
covers in ``Binomial(100, 0.95)`` of them, whose standard error is
``sqrt(0.95 * 0.05 / 100) = 2.18`` points.

- every coefficient: coverage >= 86%, 4.1 standard errors below 95%
  (``P(Binomial(100, 0.95) <= 85) = 1.4e-4`` for each of the 12). Standard
  errors half their size cover about 67% (``P(|Z| < 0.98)``).
- the 6 coefficients of a model pooled (600 intervals; the pooled standard
  error is about ``sqrt(0.95 * 0.05 / 600) = 0.89`` points, the intervals of
  one data set being nearly independent: 1.10 against 1.07 for 2 slopes in
  the 200-data-set study): between 91% and 99%, 4.5 standard errors either
  side. Standard errors 0.8 times their size cover about 88%; twice their
  size, 99.99%.

The seeds are fixed, so the test is deterministic; the probabilities above
say how unlikely a correct implementation is to land outside the band for
an arbitrary choice of seeds.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from hmexperts import MixtureOfExpertsRegressor

pytest.importorskip("pandas")

N_SIMS = 100
N_ROWS = 500

# gate: child 1 relative to child 0, per column and intercept; experts: per
# column and intercept. summary's rows: the gate's columns then intercept,
# then each expert's columns then intercept.
MODELS = {
    "poisson": {
        "gate": ([0.0, 2.0], 0.3),
        "experts": ([[0.8, 0.0], [-0.5, 0.0]], [1.0, 2.0]),
        "params": {"expert": "poisson", "gate_features": [1], "expert_features": [0]},
        "extra": {},
        "truth": [2.0, 0.3, 0.8, 1.0, -0.5, 2.0],
    },
    "gaussian": {
        "gate": ([-2.0], 0.5),
        "experts": ([[1.0], [-0.8]], [1.0, -1.0]),
        "params": {"expert": "linear"},
        "extra": {"expert_variance": np.array([0.25, 0.5])},
        "truth": [-2.0, 0.5, 1.0, 1.0, -0.8, -1.0],
    },
}


def _coverage(spec):
    (gate_coef, gate_intercept), (expert_coef, expert_intercept) = (
        spec["gate"],
        spec["experts"],
    )
    n_features = len(gate_coef)
    gate = np.zeros((1, n_features, 2))
    gate[0, :, 1] = gate_coef
    truth = MixtureOfExpertsRegressor.from_parameters(
        gate_coef=[gate],
        gate_intercept=[np.array([[0.0, gate_intercept]])],
        expert_coef=np.array(expert_coef),
        expert_intercept=np.array(expert_intercept),
        **spec["params"],
        **spec["extra"],
    )
    true_values = np.array(spec["truth"])
    covered = []
    for seed in range(N_SIMS):
        rng = np.random.RandomState(seed)
        X = rng.uniform(-2, 2, size=(N_ROWS, n_features))
        y = truth.sample(X, random_state=rng)
        model = MixtureOfExpertsRegressor(
            2,
            gate_alpha=1e-8,
            expert_alpha=1e-8,
            tol=1e-8,
            max_iter=1000,
            init_params=truth.predict_responsibilities(X, y),
            **spec["params"],
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        table = model.summary(X, y)
        assert len(table) == len(true_values)
        covered.append(
            (table["ci_low"] <= true_values) & (true_values <= table["ci_high"])
        )
    return np.array(covered, dtype=float)


@pytest.mark.parametrize("name", list(MODELS))
def test_wald_intervals_cover_the_truth(name):
    covered = _coverage(MODELS[name])
    per_coefficient = 100 * covered.mean(axis=0)
    pooled = 100 * covered.mean()
    assert (per_coefficient >= 86).all(), per_coefficient
    assert 91 <= pooled <= 99, (pooled, per_coefficient)
