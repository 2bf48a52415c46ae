"""The allocator settled at the start of a fit (``hmexperts._memory``)."""

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import hmexperts._base
from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe

# A pass's temporaries, made and freed again and again: four written 1 MiB
# arrays a round. The minor page faults of 30 rounds, in a fresh process,
# with or without the allocator settled first.
_ROUNDS = """
import resource
import numpy as np
from hmexperts._memory import settle_allocator
if {settle}:
    settle_allocator()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    blocks = [np.ones(2**17) for _ in range(4)]
    del blocks
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(settle):
    # without glibc's tunables from the environment: a threshold set there
    # turns glibc's adjustment off (and Dask's LocalCluster, started by
    # test_large_data.py, sets MALLOC_TRIM_THRESHOLD_ in this process's
    # environment for its workers)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    code = _ROUNDS.format(settle=settle)
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return int(run.stdout)


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc",
    reason="the thresholds settle_allocator moves are glibc's malloc's",
)
def test_settled_allocator_keeps_temporaries_mapped():
    # Unsettled, every round maps its 4 MiB afresh (1,024 pages a round);
    # settled, only the first round does.
    unsettled, settled = _faults(False), _faults(True)
    assert unsettled > 10 * 1024
    assert settled < 0.1 * unsettled


@pytest.mark.parametrize("method", ["fit", "partial_fit"], ids=["fit", "partial_fit"])
def test_fits_settle_the_allocator(monkeypatch, method):
    X, y, _ = make_moe(200, random_state=0)  # make_moe predicts: not counted
    calls = []
    monkeypatch.setattr(hmexperts._base, "settle_allocator", lambda: calls.append(1))
    model = MixtureOfExpertsRegressor(2, random_state=0)
    getattr(model, method)(X, y)
    assert calls == [1]
    labels = (y > np.median(y)).astype(int)
    classifier = MixtureOfExpertsClassifier(2, random_state=0)
    if method == "fit":
        classifier.fit(X, labels)
    else:
        classifier.partial_fit(X, labels, classes=[0, 1])
    assert calls == [1, 1]


def test_methods_that_read_x_settle_the_allocator(monkeypatch):
    # a model loaded in a fresh process predicts with the allocator settled
    X, y, _ = make_moe(200, random_state=0)
    regressor = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    labels = (y > np.median(y)).astype(int)
    classifier = MixtureOfExpertsClassifier(2, random_state=0).fit(X, labels)
    calls = []
    monkeypatch.setattr(hmexperts._base, "settle_allocator", lambda: calls.append(1))
    regressor.predict(X)
    regressor.log_likelihood(X, y)
    regressor.predict_interval(X)
    classifier.predict_proba(X)
    classifier.predict_gates(X)
    assert len(calls) == 5
