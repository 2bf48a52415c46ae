"""Softmax experts with many classes: the full Newton step against per-class steps.

A softmax expert over ``K`` classes and ``P`` inputs has ``K * P``
coefficients. The full Newton step sums the ``K (K + 1) / 2`` class pairs
of the Hessian and solves a ``K P`` system per expert; the per-class step
(``softmax_sums(..., per_class=True)``) sums the Hessian's ``K`` diagonal
blocks and solves ``K`` systems of size ``P``: cheaper steps that ignore
the coupling of the classes, so EM may need more of them. This script fits
``MixtureOfExpertsClassifier(n_experts=2)`` to data from a multinomial
logistic model with ``K`` classes, both ways (the switch is
``hmexperts._experts.PER_CLASS_FROM``), and prints for each

- ``20 it``: the time of 20 EM iterations (``tol=0``), as a multiple of
  one ``LogisticRegression`` fit on the same data;
- ``conv``: the time and iterations to convergence (``tol=1e-6``) and the
  mean log-likelihood reached;

so that the class count from which per-class steps pay can be read off.

Run from the repository root::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_many_classes.py
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_many_classes.py \\
        --classes 1000 --n 2000 --skip-full
"""

import argparse
import time
import warnings

import numpy as np
from _common import print_machine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from hmexperts import MixtureOfExpertsClassifier, _experts


def data(n_classes, n, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5))
    W = rng.normal(size=(5, n_classes))
    y = np.argmax(X @ W + rng.gumbel(size=(n, n_classes)), axis=1)
    return X, y


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def fit(X, y, per_class, **params):
    _experts.PER_CLASS_FROM = 2 if per_class else 10**9
    model = MixtureOfExpertsClassifier(2, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return timed(lambda: model.fit(X, y))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--classes", type=int, nargs="+", default=[3, 5, 10, 20, 50, 100]
    )
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--skip-full", action="store_true")
    args = parser.parse_args()
    print_machine()
    default = _experts.PER_CLASS_FROM
    print(
        f"n={args.n}, 5 features, 2 experts; library default PER_CLASS_FROM={default}"
    )
    header = (
        f"{'K':>5} {'step':>9} {'LR (s)':>7} {'20 it (s)':>9} {'x LR':>6} "
        f"{'conv (s)':>8} {'iters':>5} {'loglik':>8}"
    )
    print(header)
    for k in args.classes:
        X, y = data(k, args.n)
        _, lr_time = timed(lambda X=X, y=y: LogisticRegression(max_iter=1000).fit(X, y))
        for per_class in (False, True):
            if not per_class and args.skip_full:
                continue
            _, fixed = fit(X, y, per_class, max_iter=20, tol=0)
            model, conv = fit(X, y, per_class, max_iter=2000, tol=1e-6)
            name = "per-class" if per_class else "full"
            print(
                f"{k:>5} {name:>9} {lr_time:>7.3f} {fixed:>9.2f} "
                f"{fixed / lr_time:>6.1f} {conv:>8.2f} {model.n_iter_:>5} "
                f"{model.log_likelihood(X, y).mean():>8.4f}",
                flush=True,
            )
    _experts.PER_CLASS_FROM = default


if __name__ == "__main__":
    main()
