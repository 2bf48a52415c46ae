"""Fewer Lloyd iterations in the k-means start: does the fit get faster?

The start of every fit is a weighted k-means of the standardised joint
``[x, y]`` (``hmexperts._init._kmeans``, scikit-learn's ``KMeans`` with
``tol=0`` and at most ``_KMEANS_MAX_ITER`` iterations, 30). On data without
clear clusters it runs all 30, and on a flat fit of 5,000 rows it is about
a fifth of the fit. For every problem of the speed suite
(``bench_acceleration.suite``) and the issue's two reference cases (EM
from scikit-learn parts, n=100,000; 12 classes, ``n_init=3``), this fits
the model with every cap in ``--iters`` and prints the fastest of 3 warm
fits, the objective reached and the EM iterations.

Run from the repository root, one BLAS thread::

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
        python benchmarks/study_kmeans_iterations.py --iters 30 10 5
"""

import argparse
import time
import warnings

from _common import print_machine
from bench_acceleration import suite
from sklearn.exceptions import ConvergenceWarning

import hmexperts._init as init
from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, nargs="+", default=[30, 10, 5])
    args = parser.parse_args()
    print_machine()
    warnings.simplefilter("ignore", ConvergenceWarning)
    problems = suite()
    X, y, _ = make_moe(100_000, 5, n_experts=4, random_state=0)
    problems.append(
        ("sklearn-parts", MixtureOfExpertsRegressor, {"n_experts": 4}, X, y, None)
    )
    X, y, _ = make_moe(
        1617, 5, n_experts=4, task="classification", n_classes=12, random_state=0
    )
    problems.append(
        (
            "small-12cls",
            MixtureOfExpertsClassifier,
            {"n_experts": 4, "n_init": 3},
            X,
            y,
            None,
        )
    )
    print("problem        | per cap: fastest of 3 warm fits, objective, EM iterations")
    for name, estimator, keywords, X, y, w in problems:
        row = [f"{name:14s}"]
        for cap in args.iters:
            init._KMEANS_MAX_ITER = cap
            model = estimator(**keywords, tol=1e-4, max_iter=5000, random_state=0)
            model.fit(X, y, sample_weight=w)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                model.fit(X, y, sample_weight=w)
                times.append(time.perf_counter() - start)
            row.append(
                f"{cap:2d}: {min(times) * 1e3:7.1f} ms {model.lower_bound_:.6f} "
                f"({model.n_iter_:3d})"
            )
        print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
