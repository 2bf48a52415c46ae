"""The first M-step's Newton refinement on all rows and on a strided sample.

From the k-means start, the first M-step refines the Newton components (the
gates, softmax and GLM experts) by Newton's method on the start's fixed
responsibilities, one pass per step. For data in memory it reads at most
``_em._REFINE_ROWS`` rows (every k-th row, weights scaled to the same
total); this benchmark fits each problem with that cap and without it (the
cap set above ``n``), alternately in one process, and prints the fastest of
``--repeats`` whole fits and of their first M-steps (``initial_m_step``),
the EM iterations and the final objectives. The experts' exact M-step and
EM itself read every row either way.

Problems: ``make_moe`` regression from 4 experts (the ``bench_em.py``
baseline's data, 5 features), a depth-2 tree of 16 leaves, and 3-class
classification with 4 experts, at n = 1e5 and 1e6, ``random_state=0``.

Run from the repository root, one BLAS thread::

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_refine_rows.py
"""

import argparse
import time
import warnings

from _common import print_machine
from sklearn.exceptions import ConvergenceWarning

import hmexperts._em as em
from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe


def problems(n):
    """``(name, estimator, keywords, X, y)`` at ``n`` rows."""
    X, y, _ = make_moe(n, 5, n_experts=4, random_state=0)
    yield "moe-4", MixtureOfExpertsRegressor, {"n_experts": 4}, X, y
    X, y, _ = make_moe(n, 5, n_experts=4, depth=2, random_state=0)
    yield "hme-4x2", MixtureOfExpertsRegressor, {"n_experts": 4, "depth": 2}, X, y
    X, y, _ = make_moe(n, 5, n_experts=4, task="classification", random_state=0)
    yield "clf-4", MixtureOfExpertsClassifier, {"n_experts": 4}, X, y


def timed_first_m_step():
    """Wrap ``initial_m_step`` so that ``timed_first_m_step.seconds`` holds
    the time of its last call."""
    initial_m_step = em.initial_m_step

    def timed(*args, **kwargs):
        start = time.perf_counter()
        initial_m_step(*args, **kwargs)
        timed_first_m_step.seconds = time.perf_counter() - start

    em.initial_m_step = timed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, nargs="+", default=[1e5, 1e6])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print_machine()
    timed_first_m_step()
    cap = em._REFINE_ROWS
    print(
        f"whole fits and their first M-steps, seconds (fastest of {args.repeats}), "
        f"EM iterations and final objective; refinement on all rows, and on at "
        f"most {cap} rows"
    )
    print(
        f"{'problem':8s} {'n':>8s} | {'all rows':>8s} {'first':>6s} {'iter':>4s} "
        f"{'objective':>10s} | {'sample':>8s} {'first':>6s} {'iter':>4s} "
        f"{'objective':>10s} | speed-up: fit, first M-step"
    )
    for n in map(int, args.n):
        for name, estimator, keywords, X, y in problems(n):
            best, fits, first = {}, {}, {}
            for _ in range(args.repeats):
                for rows in (n + 1, cap):
                    em._REFINE_ROWS = rows
                    model = estimator(**keywords, random_state=0)
                    start = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        model.fit(X, y)
                    seconds = time.perf_counter() - start
                    best[rows] = min(best.get(rows, float("inf")), seconds)
                    first[rows] = min(
                        first.get(rows, float("inf")), timed_first_m_step.seconds
                    )
                    fits[rows] = model
            em._REFINE_ROWS = cap
            full, sample = fits[n + 1], fits[cap]
            print(
                f"{name:8s} {n:8d} | {best[n + 1]:8.3f} {first[n + 1]:6.3f} "
                f"{full.n_iter_:4d} {full.lower_bound_:10.6f} | {best[cap]:8.3f} "
                f"{first[cap]:6.3f} {sample.n_iter_:4d} {sample.lower_bound_:10.6f} | "
                f"{best[n + 1] / best[cap]:5.2f}, {first[n + 1] / first[cap]:5.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
