"""Fit time of a flat 4-expert mixture against the number of samples.

For each task (regression, classification) and each ``n``, draws data from a
known 4-expert mixture with ``hmexperts.datasets.make_moe`` (5 features, 3
classes for classification), fits a ``depth=1``, ``n_experts=4`` model and
prints the best wall-clock fit time over ``--repeats`` runs, the number of EM
iterations, the time per iteration and the final ``lower_bound_`` (penalised
mean log-likelihood per sample).

Run from the repository root::

    python benchmarks/bench_fit.py --n 1000 10000 100000 --repeats 3
"""

import argparse
import time
import warnings

from _common import print_machine
from sklearn.exceptions import ConvergenceWarning

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe

N_EXPERTS = 4
N_FEATURES = 5
N_CLASSES = 3
ESTIMATORS = {
    "regression": MixtureOfExpertsRegressor,
    "classification": MixtureOfExpertsClassifier,
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n",
        type=int,
        nargs="+",
        default=[1000, 10000, 100000],
        help="numbers of samples (default: 1000 10000 100000)",
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="fits per setting; the best is kept"
    )
    parser.add_argument(
        "--max-iter", type=int, default=100, help="EM iterations at most (default 100)"
    )
    return parser.parse_args()


def time_fit(estimator_class, X, y, max_iter, repeats):
    """Best fit time over ``repeats`` fits, and the last fitted model."""
    best = float("inf")
    for _ in range(repeats):
        model = estimator_class(
            n_experts=N_EXPERTS, depth=1, max_iter=max_iter, random_state=0
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            model.fit(X, y)
            best = min(best, time.perf_counter() - start)
    return best, model


def main():
    args = parse_args()
    print_machine()
    header = (
        f"{'task':<15}{'n':>9}{'fit (s)':>10}{'n_iter_':>9}"
        f"{'s/iter':>10}{'lower_bound_':>14}  converged_"
    )
    print(header)
    print("-" * len(header))
    for task, estimator_class in ESTIMATORS.items():
        for n in args.n:
            X, y, _ = make_moe(
                n_samples=n,
                n_features=N_FEATURES,
                n_experts=N_EXPERTS,
                depth=1,
                task=task,
                n_classes=N_CLASSES,
                random_state=0,
            )
            seconds, model = time_fit(
                estimator_class, X, y, args.max_iter, args.repeats
            )
            per_iter = seconds / max(model.n_iter_, 1)
            print(
                f"{task:<15}{n:>9}{seconds:>10.3f}{model.n_iter_:>9}"
                f"{per_iter:>10.4f}{model.lower_bound_:>14.4f}  {model.converged_}",
                flush=True,
            )


if __name__ == "__main__":
    main()
