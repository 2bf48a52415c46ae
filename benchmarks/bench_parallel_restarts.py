"""``n_init``'s restarts one after the other and on ``n_jobs=2`` processes.

Whole fits with ``n_init=--n-init``: ``n_jobs=None`` (the restarts one
after the other) against ``n_jobs=2`` (their EMs on two joblib worker
processes, ``_base._parallel_restarts``), fastest of ``--repeats``, the
worker processes already started; and, first, the very first ``n_jobs=2``
fit of the process, which starts them (joblib's loky workers, which then
import the library) and which a session pays once (the workers stay for
the next fits, until idle for 300 s). Both must give the same fit
(``same``: equal ``lower_bound_``).

As context, ``--n-init`` independent fits of ``n_init=1`` each (different
random states) one after the other, on two threads and on two processes:
what two threads could give instead (NumPy releases the GIL in its array
operations, but a fit of a few thousand rows is mostly Python between
short ones).

Cases: ``small-12cls`` (1,617 rows, 5 features, 12 classes, 4 experts:
``speed_before_after.py``'s small-data case), ``pb-vowels`` (Peterson &
Barney's vowels, log F1-F3, 4 experts), ``moe-4`` (5,000 rows, 5
features, 4 experts, regression: ``bench_acceleration.py``'s),
``moe-4-1e5`` (the same at 100,000 rows).

Run from the repository root, on an otherwise idle machine, one BLAS
thread::

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \\
        python benchmarks/bench_parallel_restarts.py
"""

import argparse
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
from _common import print_machine
from joblib import Parallel, delayed

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import load_peterson_barney, make_moe

CASES = ["small-12cls", "pb-vowels", "moe-4", "moe-4-1e5"]


def case(name):
    """The data of case ``name``, and its model from keyword arguments."""
    if name == "small-12cls":
        X, y, _ = make_moe(
            1617, 5, n_experts=4, task="classification", n_classes=12, random_state=0
        )
        return X, y, lambda **kw: MixtureOfExpertsClassifier(4, **kw)
    if name == "pb-vowels":
        X, y = load_peterson_barney(formants=("F1", "F2", "F3"), return_X_y=True)
        return np.log(X), y, lambda **kw: MixtureOfExpertsClassifier(4, **kw)
    n = 100_000 if name == "moe-4-1e5" else 5000
    X, y, _ = make_moe(n, 5, n_experts=4, random_state=0)
    return X, y, lambda **kw: MixtureOfExpertsRegressor(4, **kw)


def fit(make, X, y, **keywords):
    """``lower_bound_`` of the model fit, and the seconds it took."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bound = make(**keywords).fit(X, y).lower_bound_
    return bound, time.perf_counter() - start


def fit_seed(make, X, y, seed):
    """``fit`` of one start, ``random_state=seed``."""
    return fit(make, X, y, random_state=seed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-init", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=CASES)
    args = parser.parse_args()
    print_machine()
    k = args.n_init
    X, y, make = case(args.cases[0])
    fit(make, X, y, n_init=k, random_state=0)  # this process's one-time costs
    _, first = fit(make, X, y, n_init=k, random_state=0, n_jobs=2)
    print(
        f"the process's first n_jobs=2 fit ({args.cases[0]}, n_init={k}), which "
        f"starts the workers: {first:.2f} s\n"
    )
    print(f"seconds, fastest of {args.repeats}; n_init={k}, or {k} fits of n_init=1")
    print(
        f"{'case':>12s} {'n_jobs=None':>11s} {'n_jobs=2':>9s} {'ratio':>6s} "
        f"{'same':>5s} | {k} fits: {'one by one':>10s} {'2 threads':>9s} "
        f"{'ratio':>6s} {'2 processes':>11s} {'ratio':>6s}"
    )
    seeds = range(k)
    with Parallel(n_jobs=2) as processes:
        for name in args.cases:
            X, y, make = case(name)
            fit(make, X, y, n_init=k, random_state=0)
            times = {key: [] for key in ("one", "two", "seq", "threads", "procs")}
            for _ in range(args.repeats):
                one, seconds = fit(make, X, y, n_init=k, random_state=0)
                times["one"].append(seconds)
                two, seconds = fit(make, X, y, n_init=k, random_state=0, n_jobs=2)
                times["two"].append(seconds)
                start = time.perf_counter()
                for seed in seeds:
                    fit_seed(make, X, y, seed)
                times["seq"].append(time.perf_counter() - start)
                start = time.perf_counter()
                with ThreadPoolExecutor(2) as pool:
                    list(pool.map(partial(fit_seed, make, X, y), seeds))
                times["threads"].append(time.perf_counter() - start)
                start = time.perf_counter()
                processes(delayed(fit_seed)(make, X, y, seed) for seed in seeds)
                times["procs"].append(time.perf_counter() - start)
            t = {key: min(v) for key, v in times.items()}
            print(
                f"{name:>12s} {t['one']:11.3f} {t['two']:9.3f} "
                f"{t['one'] / t['two']:6.2f} {str(one == two):>5s} | "
                f"{'':>7s}{t['seq']:10.3f} {t['threads']:9.3f} "
                f"{t['seq'] / t['threads']:6.2f} {t['procs']:11.3f} "
                f"{t['seq'] / t['procs']:6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
