"""EM's passes on threads (``n_jobs``): the same fit, chunk sums in order."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import hmexperts._em as em
from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe


@pytest.fixture
def pools(monkeypatch):
    """The thread counts of the pools EM's passes opened."""
    opened = []

    class Counted(ThreadPoolExecutor):
        def __init__(self, max_workers):
            opened.append(max_workers)
            super().__init__(max_workers)

    monkeypatch.setattr(em, "ThreadPoolExecutor", Counted)
    return opened


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "estimator, task",
    [
        (MixtureOfExpertsRegressor, "regression"),
        (MixtureOfExpertsClassifier, "classification"),
    ],
)
def test_threads_give_the_same_fit(estimator, task, pools):
    # 16 leaves: chunks of 2**17 / 18 rows, so 30,000 rows make 5 chunks
    X, y, _ = make_moe(30_000, 3, n_experts=4, depth=2, task=task, random_state=0)
    fits = [
        estimator(4, depth=2, max_iter=5, tol=0, random_state=0, n_jobs=n_jobs).fit(
            X, y
        )
        for n_jobs in (None, 2)
    ]
    assert pools and all(n == 2 for n in pools)
    np.testing.assert_array_equal(fits[0].lower_bounds_, fits[1].lower_bounds_)
    np.testing.assert_array_equal(fits[0].predict_gates(X), fits[1].predict_gates(X))
    np.testing.assert_array_equal(fits[0].expert_coef_, fits[1].expert_coef_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_one_chunk_opens_no_pool(pools):
    X, y, _ = make_moe(500, 2, n_experts=2, random_state=0)
    MixtureOfExpertsRegressor(2, n_jobs=2, max_iter=3, tol=0).fit(X, y)
    assert pools == []


@pytest.mark.parametrize("n_jobs", [0, 1.5, True])
def test_bad_n_jobs_is_refused(n_jobs):
    X, y, _ = make_moe(100, 2, n_experts=2, random_state=0)
    with pytest.raises((ValueError, TypeError), match="n_jobs"):
        MixtureOfExpertsRegressor(2, n_jobs=n_jobs).fit(X, y)
