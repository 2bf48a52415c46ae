"""Command line: ``python -m hmexperts demo``.

Fits a depth-2 hierarchical mixture of experts to data drawn from a known one
and prints what it learned next to the truth.
"""

import argparse
import time

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.linear_model import LinearRegression

from . import MixtureOfExpertsRegressor, __version__
from .datasets import make_moe


def demo(n_samples=6000, random_state=0):
    """Fit an HME to data from a known HME and print the comparison."""
    X, y, truth = make_moe(
        n_samples, 2, n_experts=2, depth=2, noise=0.3, random_state=random_state
    )
    n_train = 2 * n_samples // 3
    X_train, y_train, X_test, y_test = (
        X[:n_train],
        y[:n_train],
        X[n_train:],
        y[n_train:],
    )

    print(f"hmexperts {__version__}: a depth-2 hierarchical mixture of experts")
    print(f"Data: {n_train} training and {n_samples - n_train} test samples drawn from")
    print("a known tree of 3 gates (2 children each) and 4 linear-Gaussian experts.\n")

    model = MixtureOfExpertsRegressor(n_experts=2, depth=2, n_init=5, random_state=0)
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    state = "converged" if model.converged_ else "stopped at max_iter"
    print(f"Fit: {seconds:.2f}s, {model.n_iter_} EM iterations ({state}), n_init=5\n")

    fitted = np.column_stack([model.expert_coef_, model.expert_intercept_])
    true = np.column_stack([truth.expert_coef, truth.expert_intercept])
    rows, cols = linear_sum_assignment(
        ((fitted[:, None] - true[None]) ** 2).sum(axis=2)
    )
    print("Experts (matched to the truth):  y = a*x1 + b*x2 + c + noise(sd)")
    print("  leaf   fitted a, b, c, sd              true a, b, c, sd")
    for leaf, j in sorted(zip(rows, cols, strict=True), key=lambda pair: pair[1]):
        f = (*fitted[leaf], np.sqrt(model.expert_variance_[leaf]))
        t = (*true[j], np.sqrt(truth.expert_variance[j]))
        print(
            f"  {leaf}   "
            + " ".join(f"{v:6.2f}" for v in f)
            + "     "
            + " ".join(f"{v:6.2f}" for v in t)
        )

    share = model.predict_gates(X_test).mean(axis=0)
    print("\nShare of the test inputs each leaf's gates give it:")
    print("  " + "  ".join(f"leaf {leaf}: {s:.2f}" for leaf, s in enumerate(share)))

    fit_ll = model.score_samples(X_test, y_test).mean()
    true_ll = truth.model.score_samples(X_test, y_test).mean()
    linear = LinearRegression().fit(X_train, y_train)
    print("\nHeld-out results")
    print(f"  mean log-likelihood: fitted {fit_ll:.4f}, true model {true_ll:.4f}")
    print(
        f"  R^2: mixture {model.score(X_test, y_test):.3f}, "
        f"one linear model {linear.score(X_test, y_test):.3f}"
    )
    mean, std = model.predict(X_test, return_std=True)
    coverage = np.mean(np.abs(y_test - mean) <= 2 * std)
    print(f"  share of targets within 2 predictive sd: {coverage:.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hmexperts", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", help="fit an HME on built-in data and report")
    run.add_argument("--n-samples", type=int, default=6000)
    run.add_argument("--random-state", type=int, default=0)
    args = parser.parse_args(argv)
    demo(args.n_samples, args.random_state)


if __name__ == "__main__":
    main()
