"""How many restarts a depth-2 tree needs to reach the true model.

For each of six data sets drawn from a known depth-2 tree of 4 leaves
(``make_moe(16000, 2, n_experts=2, depth=2, noise=0.5, random_state=seed)``,
the first 8000 samples to fit, the rest held out), fits
``MixtureOfExpertsRegressor(n_experts=2, depth=2, n_init=k)`` for every
``k`` in ``--n-init`` and prints the held-out mean log-likelihood against
the true model's (``truth.model``), the gap relative to the true value and
the fit time. The last row counts, for every ``k``, the data sets on which
the fit came within 1% of the truth.

Run from the repository root::

    python benchmarks/study_restarts.py --n-init 1 5 10 20
"""

import argparse
import time
import warnings

from _common import print_machine
from sklearn.exceptions import ConvergenceWarning

from hmexperts import MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-init", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--seeds", type=int, default=6)
    args = parser.parse_args()
    print_machine()
    print(
        f"{'seed':>4} {'n_init':>6} {'held-out ll':>12} {'true ll':>9} "
        f"{'gap':>7} {'fit (s)':>8}"
    )
    within = dict.fromkeys(args.n_init, 0)
    for seed in range(args.seeds):
        X, y, truth = make_moe(
            16000, 2, n_experts=2, depth=2, noise=0.5, random_state=seed
        )
        X_fit, y_fit, X_test, y_test = X[:8000], y[:8000], X[8000:], y[8000:]
        true_ll = truth.model.log_likelihood(X_test, y_test).mean()
        for n_init in args.n_init:
            model = MixtureOfExpertsRegressor(2, depth=2, n_init=n_init, random_state=0)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X_fit, y_fit)
            seconds = time.perf_counter() - start
            held_out = model.log_likelihood(X_test, y_test).mean()
            gap = (true_ll - held_out) / abs(true_ll)
            within[n_init] += gap < 0.01
            print(
                f"{seed:4d} {n_init:6d} {held_out:12.4f} {true_ll:9.4f} "
                f"{gap:7.2%} {seconds:8.2f}"
            )
    counts = ", ".join(f"n_init={k}: {v}" for k, v in within.items())
    print(f"\nwithin 1% of the truth, of {args.seeds}: {counts}")


if __name__ == "__main__":
    main()
