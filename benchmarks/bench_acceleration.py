"""EM with and without SQUAREM: passes over the data, iterations, time and
the log-likelihood reached, on a suite of problems.

Each problem is fit twice from the same start (``random_state=0``, one
initialisation), with ``acceleration=None`` (plain EM) and
``acceleration="squarem"``, at a tight tolerance (``--tol``, default 1e-8,
so that both reach the maximum they converge to) and at the default 1e-4.
A *pass* reads every row once (an EM step, a step-halving, an
extrapolation, accepted or not); the passes of the first M-step (from the
k-means start, the same for both) are left out. Printed per problem: passes,
iterations (``n_iter_``), fit time (the fastest of ``--repeats``), the final
penalised mean log-likelihood (``lower_bound_``) and the ratios plain /
SQUAREM; then the median and geometric mean of the pass ratios.

The suite:

- ``fx-poisson``, ``fx-binomial``, ``fx-gaussian``: the flexmix-parity data
  sets of ``flexmix_agreement.py`` (n=1500, no penalty, as flexmix);
- ``moe-4``, ``hme-2x2``, ``hme-4x2``: ``make_moe`` regression data from a
  flat 4-expert mixture and depth-2 trees (n=5000, 5 features; 3 seeds);
- ``clf-4``: ``make_moe`` classification, 3 classes, 4 experts (3 seeds);
- ``vowels``: ``make_vowels`` (4 vowels from F1, F2; 4 experts) and
  ``pb-vowels``: Peterson & Barney's log F1-F3 to the vowel (10 classes,
  4 experts);
- ``student-t``: 3 Student-t experts on ``make_moe`` data with 5% outliers.

Run from the repository root, one BLAS thread::

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_acceleration.py
"""

import argparse
import math
import statistics
import time
import warnings

import numpy as np
from _common import print_machine
from flexmix_agreement import problem, simulate
from sklearn.exceptions import ConvergenceWarning

import hmexperts._base as base
from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import load_peterson_barney, make_moe, make_vowels


def suite():
    """``(name, estimator class, keywords, X, y, sample_weight)`` per problem."""
    problems = []
    flexmix = simulate(1500, 0)
    for name in ("poisson", "binomial", "gaussian"):
        X, y, weight, keywords = problem(name, flexmix[name])
        keywords = {**keywords, "gate_alpha": 1e-8, "expert_alpha": 1e-8}
        keywords["n_experts"] = 2
        problems.append(
            (f"fx-{name}", MixtureOfExpertsRegressor, keywords, X, y, weight)
        )
    for seed in range(3):
        X, y, _ = make_moe(5000, 5, n_experts=4, random_state=seed)
        problems.append(
            (f"moe-4/{seed}", MixtureOfExpertsRegressor, {"n_experts": 4}, X, y, None)
        )
        X, y, _ = make_moe(5000, 5, n_experts=2, depth=2, random_state=seed)
        problems.append(
            (
                f"hme-2x2/{seed}",
                MixtureOfExpertsRegressor,
                {"n_experts": 2, "depth": 2},
                X,
                y,
                None,
            )
        )
        X, y, _ = make_moe(5000, 5, n_experts=4, depth=2, random_state=seed)
        problems.append(
            (
                f"hme-4x2/{seed}",
                MixtureOfExpertsRegressor,
                {"n_experts": 4, "depth": 2},
                X,
                y,
                None,
            )
        )
        X, y, _ = make_moe(
            5000, 5, n_experts=4, task="classification", n_classes=3, random_state=seed
        )
        problems.append(
            (f"clf-4/{seed}", MixtureOfExpertsClassifier, {"n_experts": 4}, X, y, None)
        )
    X, y = make_vowels(random_state=0, return_X_y=True)
    problems.append(
        ("vowels", MixtureOfExpertsClassifier, {"n_experts": 4}, X, y, None)
    )
    X, y = load_peterson_barney(formants=("F1", "F2", "F3"), return_X_y=True)
    problems.append(
        ("pb-vowels", MixtureOfExpertsClassifier, {"n_experts": 4}, np.log(X), y, None)
    )
    rng = np.random.default_rng(0)
    X, y, _ = make_moe(3000, 3, n_experts=3, random_state=0)
    outliers = rng.uniform(size=len(y)) < 0.05
    y = np.where(outliers, y + rng.normal(scale=10.0, size=len(y)), y)
    problems.append(
        (
            "student-t",
            MixtureOfExpertsRegressor,
            {"n_experts": 3, "expert": "student_t"},
            X,
            y,
            None,
        )
    )
    return problems


def fit(estimator, keywords, X, y, weight, acceleration, tol, repeats, max_iter):
    """The fastest of ``repeats`` fits: its time, model and EM monitor."""
    monitors = []
    run_em = base.run_em

    def kept(*args, **kwargs):
        monitors.append(run_em(*args, **kwargs))
        return monitors[-1]

    base.run_em = kept
    best = math.inf
    try:
        for _ in range(repeats):
            model = estimator(
                **keywords,
                acceleration=acceleration,
                tol=tol,
                max_iter=max_iter,
                random_state=0,
            )
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X, y, sample_weight=weight)
            best = min(best, time.perf_counter() - start)
    finally:
        base.run_em = run_em
    monitor = monitors[-1]
    return best, model, len(monitor.passes) - monitor.initial_passes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tol", type=float, nargs="+", default=[1e-8, 1e-4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=5000)
    parser.add_argument("--only", nargs="*", default=None, help="problem name prefixes")
    args = parser.parse_args()
    print_machine()
    problems = suite()
    if args.only:
        problems = [p for p in problems if p[0].startswith(tuple(args.only))]
    for tol in args.tol:
        print(f"tol={tol:g}, max_iter={args.max_iter}, fastest of {args.repeats}")
        print(
            f"{'problem':13s} | {'passes':>6s} {'iters':>5s} {'fit s':>6s} "
            f"{'objective':>11s} |"
            f" {'passes':>6s} {'iters':>5s} {'fit s':>6s} {'objective':>11s} |"
            f" {'passes':>6s} {'time':>5s} {'obj. diff':>9s}"
        )
        print(
            f"{'':13s} | {'plain EM':^32s} | {'SQUAREM':^32s} | "
            f"{'plain / SQUAREM':^22s}"
        )
        ratios, time_ratios = [], []
        for name, estimator, keywords, X, y, weight in problems:
            rows = [
                fit(
                    estimator,
                    keywords,
                    X,
                    y,
                    weight,
                    how,
                    tol,
                    args.repeats,
                    args.max_iter,
                )
                for how in (None, "squarem")
            ]
            (t0, m0, p0), (t1, m1, p1) = rows
            ratios.append(p0 / p1)
            time_ratios.append(t0 / t1)
            print(
                f"{name:13s} | {p0:6d} {m0.n_iter_:5d} {t0:6.3f} "
                f"{m0.lower_bound_:11.6f} |"
                f" {p1:6d} {m1.n_iter_:5d} {t1:6.3f} {m1.lower_bound_:11.6f} |"
                f" {p0 / p1:6.2f} {t0 / t1:5.2f} "
                f"{m1.lower_bound_ - m0.lower_bound_:+9.1e}",
                flush=True,
            )
        geo = math.exp(statistics.fmean(math.log(r) for r in ratios))
        geo_time = math.exp(statistics.fmean(math.log(r) for r in time_ratios))
        print(
            f"pass ratio: median {statistics.median(ratios):.2f}, geometric mean "
            f"{geo:.2f}, "
            f"min {min(ratios):.2f}, max {max(ratios):.2f}; time ratio: median "
            f"{statistics.median(time_ratios):.2f}, geometric mean {geo_time:.2f}\n"
        )


if __name__ == "__main__":
    main()
