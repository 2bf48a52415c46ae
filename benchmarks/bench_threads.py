"""Fit time under BLAS threading, on an idle and on a loaded machine.

EM's matrix products are small, so BLAS threads gain nothing on them, and on
a machine whose cores are busy with other work they lose much: each product
waits for a thread the scheduler has not run. hmexperts therefore fits under
a limit of one BLAS/OpenMP thread (``hmexperts.config_context(n_threads=...)``,
default 1). This script fits the same model (n=1e5, 5 features, a depth-2
tree of 4 leaves, 20 EM iterations) in three settings, first on an idle
machine, then with one busy process per core (a pure-Python spin loop):

``default``
    hmexperts' default: the EM loop limited to one thread, whatever BLAS's
    own setting.
``unlimited``
    ``config_context(n_threads=None)``: BLAS's own number of threads (the
    number of cores for OpenBLAS), what the library did before the limit.
``one thread``
    The environment pinned to one thread (``OPENBLAS_NUM_THREADS=1``,
    ``OMP_NUM_THREADS=1``) before NumPy starts: the reference.

Each setting runs in a fresh process (the environment variables must be set
before NumPy loads), best of ``--repeats``. The ratio column is the time
over the ``one thread`` time of the same load.

Run from the repository root::

    python benchmarks/bench_threads.py --repeats 3
"""

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time

from _common import print_machine

CHILD = r"""
import json, sys, time, warnings
import hmexperts
from hmexperts import MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe
from sklearn.exceptions import ConvergenceWarning
setting, repeats, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
X, y, _ = make_moe(n, 5, n_experts=2, depth=2, random_state=0)
n_threads = None if setting == "unlimited" else 1
best = float("inf")
with hmexperts.config_context(n_threads=n_threads):
    for _ in range(repeats):
        model = MixtureOfExpertsRegressor(2, depth=2, max_iter=20, tol=0,
                                          random_state=0)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        best = min(best, time.perf_counter() - start)
print(json.dumps({"seconds": best, "lower_bound": model.lower_bound_}))
"""

SETTINGS = ("default", "unlimited", "one thread")


def _spin(stop):
    while not stop.is_set():
        pass


def run(setting, repeats, n):
    env = dict(os.environ)
    if setting == "one thread":
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    else:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, setting, str(repeats), str(n)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    print_machine()
    n_busy = os.cpu_count()
    print(f"n={args.n}, 5 features, 4 leaves (depth 2), 20 EM iterations")
    print(f"loaded: {n_busy} spinning processes, one per core\n")
    print(f"{'load':>7} {'setting':>11} {'fit (s)':>9} {'ratio':>7}  lower_bound_")
    for loaded in (False, True):
        stop = multiprocessing.Event()
        busy = []
        if loaded:
            busy = [
                multiprocessing.Process(target=_spin, args=(stop,))
                for _ in range(n_busy)
            ]
            for process in busy:
                process.start()
            time.sleep(1.0)
        try:
            results = {s: run(s, args.repeats, args.n) for s in SETTINGS}
        finally:
            stop.set()
            for process in busy:
                process.join()
        reference = results["one thread"]["seconds"]
        for setting in SETTINGS:
            seconds = results[setting]["seconds"]
            print(
                f"{'loaded' if loaded else 'idle':>7} {setting:>11} {seconds:9.2f} "
                f"{seconds / reference:7.2f}  {results[setting]['lower_bound']:.6f}"
            )


if __name__ == "__main__":
    main()
