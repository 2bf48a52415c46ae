"""``n_init``'s restarts on ``n_jobs`` processes: the same fit as one after
the other, warnings and progress included."""

import gc
import threading
import warnings
import weakref

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.svm import LinearSVR
from sklearn.tree import DecisionTreeRegressor

import hmexperts._base as base
from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe


@pytest.fixture
def parallel_runs(monkeypatch):
    """The number of starts of every run of ``_parallel_restarts``."""
    calls = []
    original = base._parallel_restarts

    def counted(data, runs, workers, em_options):
        calls.append(len(runs))
        return original(data, runs, workers, em_options)

    monkeypatch.setattr(base, "_parallel_restarts", counted)
    return calls


def _fits(make, X, y, **parallel):
    one_by_one = make(n_jobs=None).fit(X, y)
    with parallel_config(**parallel):
        side_by_side = make(n_jobs=2).fit(X, y)
    return one_by_one, side_by_side


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "estimator, task, keywords",
    [
        (MixtureOfExpertsRegressor, "regression", {}),
        (MixtureOfExpertsClassifier, "classification", {}),
        (
            MixtureOfExpertsRegressor,
            "regression",
            {"expert": DecisionTreeRegressor(max_depth=2, random_state=0)},
        ),
        # its draws come from a seed drawn before the restarts, the pass and
        # the row: none from random_state during EM
        (MixtureOfExpertsRegressor, "regression", {"algorithm": "stochastic"}),
    ],
    ids=["regression", "classification", "learner", "stochastic"],
)
@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_parallel_restarts_give_the_same_fit(
    estimator, task, keywords, backend, parallel_runs
):
    # restarts end at different maxima (the objectives differ), so a start
    # run twice, dropped or kept out of order gives another fit
    X, y, _ = make_moe(600, 2, n_experts=3, task=task, random_state=3)

    def make(n_jobs):
        return estimator(
            3, n_init=4, max_iter=30, random_state=0, n_jobs=n_jobs, **keywords
        )

    one_by_one, side_by_side = _fits(make, X, y, backend=backend)
    assert parallel_runs == [4]
    np.testing.assert_array_equal(one_by_one.lower_bounds_, side_by_side.lower_bounds_)
    np.testing.assert_array_equal(one_by_one.predict(X), side_by_side.predict(X))
    np.testing.assert_array_equal(
        one_by_one.predict_gates(X), side_by_side.predict_gates(X)
    )


def test_the_restarts_end_apart():
    """What the test above relies on: these restarts do not all reach the
    same objective, so the kept one is a choice."""
    X, y, _ = make_moe(600, 2, n_experts=3, random_state=3)
    bounds = {
        round(
            MixtureOfExpertsRegressor(
                3, n_init=1, max_iter=30, random_state=seed, init_params=init
            )
            .fit(X, y)
            .lower_bound_,
            6,
        )
        for seed, init in [(0, "kmeans"), (0, "random"), (1, "random")]
    }
    assert len(bounds) > 1


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_one_start_or_one_job_runs_in_this_process(parallel_runs):
    X, y, _ = make_moe(300, 2, n_experts=2, random_state=0)
    MixtureOfExpertsRegressor(2, n_init=1, n_jobs=2, max_iter=5).fit(X, y)
    MixtureOfExpertsRegressor(2, n_init=3, n_jobs=None, max_iter=5).fit(X, y)
    assert parallel_runs == []


def test_a_warning_raised_in_a_worker_process_reaches_the_caller(parallel_runs):
    # LinearSVR stops after one iteration: liblinear warns in every M-step
    X, y, _ = make_moe(300, 2, n_experts=2, random_state=0)
    model = MixtureOfExpertsRegressor(
        2,
        n_init=2,
        n_jobs=2,
        max_iter=2,
        expert=LinearSVR(max_iter=1, random_state=0),
        random_state=0,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y)
    assert parallel_runs == [2]
    assert any(
        issubclass(w.category, ConvergenceWarning) and "Liblinear" in str(w.message)
        for w in caught
    ), [str(w.message) for w in caught]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_parallel_restarts_report_every_start(capsys):
    X, y, _ = make_moe(300, 2, n_experts=2, random_state=0)
    MixtureOfExpertsRegressor(
        2, n_init=3, n_jobs=2, max_iter=5, verbose=1, random_state=0
    ).fit(X, y)
    out = capsys.readouterr().out
    assert "Initialisations 1-3 on 2 joblib workers" in out
    for init in (1, 2, 3):
        assert f"Initialisation {init}/3: " in out
    assert "Kept initialisation" in out


class _LockedRidge(RegressorMixin, BaseEstimator):
    """A ridge regression that keeps a lock once fitted: it cannot be pickled
    back from a worker process."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def fit(self, X, y, sample_weight=None):
        self.lock_ = threading.Lock()
        self.ridge_ = Ridge(alpha=self.alpha).fit(X, y, sample_weight=sample_weight)
        return self

    def predict(self, X):
        return self.ridge_.predict(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_experts_that_do_not_pickle_get_a_clear_error():
    X, y, _ = make_moe(300, 2, n_experts=2, random_state=0)
    model = MixtureOfExpertsRegressor(
        2, n_init=2, n_jobs=2, expert=_LockedRidge(), max_iter=3, random_state=0
    )
    with pytest.raises(TypeError, match=r"pickle.*n_jobs=None.*threading"):
        model.fit(X, y)
    # one after the other, or on threads, nothing is pickled
    model.set_params(n_jobs=None).fit(X, y)
    with parallel_config(backend="threading"):
        model.set_params(n_jobs=2).fit(X, y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_one_after_the_other_only_the_best_restart_is_kept(monkeypatch):
    # a learner's fitted models may hold its rows: the restarts that lose
    # are let go of as soon as a better one ends, not held to the fit's end
    seen, alive = [], []
    original = base.run_em

    def recorded(data, gates, experts, **keywords):
        gc.collect()
        alive.append(sum(ref() is not None for ref in seen))
        seen.append(weakref.ref(experts))
        return original(data, gates, experts, **keywords)

    monkeypatch.setattr(base, "run_em", recorded)
    X, y, _ = make_moe(600, 2, n_experts=3, random_state=3)
    model = MixtureOfExpertsRegressor(3, n_init=4, max_iter=30, random_state=0)
    model.fit(X, y)
    # before every restart's EM, of the earlier ones only the best is alive
    assert alive == [0, 1, 1, 1]
    gc.collect()
    assert [ref() for ref in seen if ref() is not None] == [model._experts]
