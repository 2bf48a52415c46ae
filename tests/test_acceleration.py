"""SQUAREM, EM's accelerator (``acceleration="squarem"``, the default).

Its promises: the objective never decreases (an extrapolation is kept only
if it does not lower it), the fit reaches plain EM's maximum, in fewer
passes over the data where EM is slow, for every family of experts; it is
off where EM is not monotone (learner experts, stochastic EM), and its
coordinates (``free_parameters``) map every bank onto itself.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import SVR
from test_em import _random_problem
from test_families import FAMILIES, _random_family_problem, assert_never_decreases

import hmexperts._base as base
import hmexperts._em as em
from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe, make_vowels


@pytest.fixture
def squarem_calls(monkeypatch):
    """Counts of the accelerators made, of the proposals they made and of
    those rejected (every proposal is either kept or ``reject``ed)."""
    counts = {"created": 0, "proposed": 0, "rejected": 0}
    init, propose, reject = em.Squarem.__init__, em.Squarem.propose, em.Squarem.reject

    def counted_init(self, *args):
        counts["created"] += 1
        return init(self, *args)

    def counted_propose(self, step):
        counts["proposed"] += 1
        return propose(self, step)

    def counted_reject(self, step):
        counts["rejected"] += 1
        return reject(self, step)

    monkeypatch.setattr(em.Squarem, "__init__", counted_init)
    monkeypatch.setattr(em.Squarem, "propose", counted_propose)
    monkeypatch.setattr(em.Squarem, "reject", counted_reject)
    return counts


def kept(counts):
    return counts["proposed"] - counts["rejected"]


def _fit_counting_passes(model, X, y, sample_weight=None):
    """Fit; the EM monitor's passes after the first M-step."""
    monitors = []
    run_em = base.run_em

    def keep(*args, **kwargs):
        monitors.append(run_em(*args, **kwargs))
        return monitors[-1]

    base.run_em = keep
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y, sample_weight=sample_weight)
    finally:
        base.run_em = run_em
    monitor = monitors[-1]
    return len(monitor.passes) - monitor.initial_passes


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore:.*free parameters:UserWarning")
@pytest.mark.parametrize("seed", range(20))
def test_accelerated_em_never_decreases(seed, squarem_calls):
    model, X, y = _random_problem(seed)
    model.set_params(tol=0, max_iter=60, acceleration="squarem")
    model.fit(X, y)
    assert_never_decreases(model.lower_bounds_)
    assert kept(squarem_calls) > 0


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("family", FAMILIES)
def test_accelerated_em_never_decreases_for_every_family(family, seed):
    model, X, y, weight = _random_family_problem(seed, family)
    model.set_params(max_iter=60, tol=0, acceleration="squarem")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y, sample_weight=weight)
    assert not [w for w in caught if "decreased" in str(w.message)]
    assert_never_decreases(model.lower_bounds_)


def test_slow_em_reaches_the_same_maximum_in_under_half_the_passes():
    # make_vowels' four vowels: plain EM creeps (550 passes to tol=1e-8);
    # SQUAREM gets to the same objective in 198 (benchmarks/bench_acceleration.py).
    X, y = make_vowels(random_state=0, return_X_y=True)
    passes, bounds = {}, {}
    for how in (None, "squarem"):
        model = MixtureOfExpertsClassifier(
            n_experts=4, tol=1e-8, max_iter=5000, acceleration=how, random_state=0
        )
        passes[how] = _fit_counting_passes(model, X, y)
        bounds[how] = model.lower_bound_
    assert abs(bounds["squarem"] - bounds[None]) < 1e-6
    assert passes["squarem"] < 0.5 * passes[None]


@pytest.mark.parametrize(
    "family, keywords",
    [
        ("student_t", {}),
        ("poisson", {}),
        ("gamma", {}),
        ("linear", {"depth": 2}),
    ],
)
def test_each_family_reaches_plain_ems_maximum(family, keywords):
    model, X, y, weight = _random_family_problem(0, family)
    fits = {
        how: model.set_params(tol=1e-9, max_iter=3000, acceleration=how, **keywords)
        .fit(X, y, sample_weight=weight)
        .lower_bound_
        for how in (None, "squarem")
    }
    assert fits["squarem"] >= fits[None] - 1e-6


def test_multi_output_experts_accelerate_and_stay_monotone(squarem_calls):
    rng = np.random.default_rng(0)
    X, y, _ = make_moe(600, 2, n_experts=2, random_state=0)
    Y = np.column_stack([y, 0.5 * y + rng.normal(scale=0.3, size=len(y))])
    plain = MixtureOfExpertsRegressor(2, tol=1e-9, max_iter=2000, acceleration=None)
    fast = MixtureOfExpertsRegressor(2, tol=1e-9, max_iter=2000)
    plain.fit(X, Y)
    fast.fit(X, Y)
    assert_never_decreases(fast.lower_bounds_)
    assert fast.lower_bound_ >= plain.lower_bound_ - 1e-6
    assert kept(squarem_calls) > 0


def test_float32_and_float64_reach_the_same_maximum():
    # the accelerator's decisions may differ between the dtypes; the
    # maximum they converge to does not
    X, y, _ = make_moe(2000, 3, n_experts=3, task="classification", random_state=1)
    bounds = [
        MixtureOfExpertsClassifier(3, tol=1e-9, max_iter=3000, random_state=0)
        .fit(X.astype(dtype), y)
        .lower_bound_
        for dtype in (np.float32, np.float64)
    ]
    assert bounds[0] == pytest.approx(bounds[1], abs=1e-5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "model",
    [
        MixtureOfExpertsRegressor(2, expert=SVR(), max_iter=5),
        MixtureOfExpertsRegressor(2, algorithm="stochastic", max_iter=5),
    ],
    ids=["learner", "stochastic"],
)
def test_no_acceleration_where_em_is_not_monotone(model, squarem_calls):
    X, y, _ = make_moe(300, 2, n_experts=2, random_state=0)
    model.fit(X, y)
    assert squarem_calls["created"] == 0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", [*FAMILIES, "multi"])
def test_free_parameters_map_each_bank_onto_itself(family):
    X, y, _ = make_moe(300, 2, n_experts=2, random_state=0)
    if family == "multi":
        y, family = np.column_stack([y, -y]), "linear"
    elif family in ("poisson",):
        y = np.round(np.exp(0.3 * y - y.min() * 0.3))
    elif family == "gamma":
        y = np.exp(0.3 * y)
    elif family == "binomial":
        y = (y > np.median(y)).astype(float)
    model = MixtureOfExpertsRegressor(2, depth=2, expert=family, max_iter=3).fit(X, y)
    for component in (model._gates, model._experts):
        state = component.get_state()
        before = [np.array(a, copy=True) for a in component.free_parameters(np)]
        component.set_free_parameters(component.free_parameters(np), np)
        after = component.free_parameters(np)
        for a, b in zip(before, after, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        component.set_state(state)


def test_unknown_acceleration_is_refused():
    X, y, _ = make_moe(100, 2, n_experts=2, random_state=0)
    with pytest.raises(ValueError, match="acceleration='aitken'; expected one of"):
        MixtureOfExpertsRegressor(2, acceleration="aitken").fit(X, y)
