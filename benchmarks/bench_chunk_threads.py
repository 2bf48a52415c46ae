"""EM on one and on two threads (``n_jobs``): the chunks of a pass spread
over a thread pool.

Every pass of EM reads the data in chunks of rows; with ``n_jobs=2`` two
threads take the chunks (NumPy releases the GIL in its array operations),
and their statistics are summed in the chunks' order, so both settings give
the same fit (checked here: equal ``lower_bounds_``). Each setting fits
``make_moe`` regression data for ``--iters`` plain EM iterations
(``acceleration=None``, ``tol=0``) and the time of the EM loop alone
(``run_em``, the k-means start and the first M-step left out) is divided
by the passes it made over all rows; the fastest of ``--repeats``. BLAS is
held at one thread per chunk (the library's default), so the two threads
are the only parallelism.

It first measures what two cores give on this machine at all: two processes
of pure Python (no shared GIL) against one; on two free cores that is 2.0.

Run from the repository root, on an otherwise idle machine::

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_chunk_threads.py
"""

import argparse
import multiprocessing
import time
import warnings

from _common import print_machine
from sklearn.exceptions import ConvergenceWarning

import hmexperts._base as base
import hmexperts._em as em
from hmexperts import MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe

SHAPES = [
    (4, 1, 5),
    (2, 4, 32),
    (4, 3, 8),
]  # (n_experts, depth, features): 4, 16, 64 leaves


def em_seconds_per_pass(X, y, n_experts, depth, n_jobs, iters, repeats):
    """The fastest EM loop's seconds per pass over all rows, and its lower
    bounds. The first M-step is left out: its Newton refinement reads a
    sample of at most 8192 rows (``_em._REFINE_ROWS``), in one chunk."""
    best, bounds = float("inf"), None
    run_em, initial_m_step = base.run_em, em.initial_m_step

    def timed_start(*args, **kwargs):
        start = time.perf_counter()
        initial_m_step(*args, **kwargs)
        timed_start.seconds = time.perf_counter() - start

    def timed(*args, **kwargs):
        start = time.perf_counter()
        monitor = run_em(*args, **kwargs)
        seconds = time.perf_counter() - start - timed_start.seconds
        timed.seconds = seconds / (len(monitor.passes) - monitor.initial_passes)
        return monitor

    base.run_em, em.initial_m_step = timed, timed_start
    try:
        for _ in range(repeats):
            model = MixtureOfExpertsRegressor(
                n_experts,
                depth=depth,
                max_iter=iters,
                tol=0,
                acceleration=None,
                random_state=0,
                n_jobs=n_jobs,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X, y)
            best = min(best, timed.seconds)
            bounds = model.lower_bounds_
    finally:
        base.run_em, em.initial_m_step = run_em, initial_m_step
    return best, bounds


def _spin(n):
    start, total = time.perf_counter(), 0
    for i in range(n):
        total += i
    return time.perf_counter() - start


def machine_parallelism(n=20_000_000):
    """How much two processes of pure Python gain over one on this machine:
    the most any two threads can gain here (2.0 on two free cores)."""
    start = time.perf_counter()
    _spin(n)
    one = time.perf_counter() - start
    with multiprocessing.Pool(2) as pool:
        start = time.perf_counter()
        pool.map(_spin, [n, n])
        two = time.perf_counter() - start
    return 2 * one / two


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, nargs="+", default=[1e5, 1e6])
    parser.add_argument("--iters", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print_machine()
    print(
        "two processes of pure Python (no NumPy, no GIL shared) do "
        f"{machine_parallelism():.2f}x the work of one here\n"
    )
    print(
        f"{args.iters} EM iterations, seconds per pass of the EM loop, fastest of "
        f"{args.repeats}"
    )
    print(
        f"{'n':>9s} {'leaves':>6s} {'feat':>4s} {'1 thread':>9s} {'2 threads':>9s} "
        f"{'speed-up':>8s}  same fit"
    )
    for n in map(int, args.n):
        for n_experts, depth, features in SHAPES:
            X, y, _ = make_moe(
                n, features, n_experts=n_experts, depth=depth, random_state=0
            )
            one, bounds_one = em_seconds_per_pass(
                X, y, n_experts, depth, None, args.iters, args.repeats
            )
            two, bounds_two = em_seconds_per_pass(
                X, y, n_experts, depth, 2, args.iters, args.repeats
            )
            print(
                f"{n:9d} {n_experts**depth:6d} {features:4d} {one:9.4f} {two:9.4f} "
                f"{one / two:8.2f}  {bounds_one == bounds_two}",
                flush=True,
            )


if __name__ == "__main__":
    main()
