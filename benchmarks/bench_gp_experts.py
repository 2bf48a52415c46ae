"""Fit time and accuracy of a mixture of 4 Gaussian-process experts.

Draws ``--n`` training samples (and ``--n-test`` held-out ones) of a smooth,
non-stationary function of 1 or 2 inputs with Gaussian noise of standard
deviation ``--noise``, and fits

- ``MixtureOfExpertsRegressor(n_experts=4, expert=GaussianProcessRegressor(
  kernel=1.0 * RBF(), alpha=noise**2), max_samples_per_expert=cap)``, for
  every cap in ``--caps``: each GP expert is fit on at most ``cap`` samples
  (drawn in proportion to its responsibilities), and re-optimises its
  kernel at every M-step, starting from the previous M-step's, with its
  own noise variance on top of ``alpha`` (``results/learner_experts.txt``
  was measured before the experts learned it: ``alpha`` was their noise);
- one ``GaussianProcessRegressor`` with the same kernel and ``alpha`` on a
  random subset of ``cap`` samples, for comparison at the same cost per GP (a
  single GP on all ``--n`` samples is not fit: it is cubic in ``n``; the
  script times one evaluation of its log-marginal likelihood and gradient,
  of which the kernel search needs tens);
- the built-in linear-expert mixture (``expert=None``, ``n_experts=4``).

For each it prints the best wall-clock fit time over ``--repeats`` fits,
``n_iter_``, the held-out R^2 and mean log-likelihood (``log_likelihood`` for
the mixtures; the Gaussian predictive density with variance
``std**2 + alpha`` for the single GP), and ``cover``: the share of held-out
samples that lie inside the bounding box of the training inputs of the
expert ``apply`` routes them to (1.0 for a GP fit on a random subset).

Run from the repository root::

    python benchmarks/bench_gp_experts.py      # 1-D and 2-D, caps 250 500 1000
    python benchmarks/bench_gp_experts.py --dim 2 --caps 500
"""

import argparse
import time
import warnings

import numpy as np
from _common import print_machine
from scipy.stats import norm
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF

from hmexperts import MixtureOfExpertsRegressor

N_EXPERTS = 4


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dim", type=int, nargs="+", default=[1, 2], choices=[1, 2],
        help="input dimensions to run (default: 1 2)",
    )  # fmt: skip
    parser.add_argument(
        "--n", type=int, default=5000, help="training samples (default 5000)"
    )
    parser.add_argument(
        "--n-test", type=int, default=2000, help="held-out samples (default 2000)"
    )
    parser.add_argument(
        "--caps",
        type=int,
        nargs="+",
        default=[250, 500, 1000],
        help="max_samples_per_expert values (default: 250 500 1000)",
    )
    parser.add_argument(
        "--noise", type=float, default=0.1, help="noise std (default 0.1)"
    )
    parser.add_argument(
        "--max-iter", type=int, default=20, help="EM iterations at most (default 20)"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="fits per setting; the best is kept"
    )
    return parser.parse_args()


def target(X):
    """Smooth in some places, wiggly in others: no single length-scale fits."""
    x0 = X[:, 0]
    f = np.sin(2 * x0) + np.where(x0 > 0, np.sin(6 * x0), 0.0)
    if X.shape[1] > 1:
        f = f * np.cos(X[:, 1])
    return f


def make_data(n, dim, noise, rng):
    X = rng.uniform(-3, 3, size=(n, dim))
    return X, target(X) + noise * rng.normal(size=n)


def timed(estimator, X, y, repeats):
    """Best fit time over ``repeats`` fits of clones, and the last fitted one."""
    best = float("inf")
    for _ in range(repeats):
        model = clone(estimator)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            model.fit(X, y)
            best = min(best, time.perf_counter() - start)
    return best, model


def cover(model, X_test):
    """Share of test samples inside the box of their expert's training inputs."""
    leaf = model.apply(X_test)
    inside = np.zeros(len(X_test), dtype=bool)
    for j, gp in enumerate(model.experts_):
        lo, hi = gp.X_train_.min(axis=0), gp.X_train_.max(axis=0)
        rows = leaf == j
        inside[rows] = np.all((X_test[rows] >= lo) & (X_test[rows] <= hi), axis=1)
    return inside.mean()


def gp_log_likelihood(gp, X, y):
    """Mean Gaussian predictive log-density; the noise ``alpha`` is added."""
    mean, std = gp.predict(X, return_std=True)
    return norm.logpdf(y, mean, np.sqrt(std**2 + gp.alpha)).mean()


def main():
    args = parse_args()
    print_machine()
    alpha = args.noise**2
    header = (
        f"{'model':<34}{'fit (s)':>9}{'n_iter_':>9}{'test R^2':>10}"
        f"{'test loglik':>13}{'cover':>7}"
    )
    for dim in args.dim:
        rng = np.random.RandomState(0)
        X, y = make_data(args.n, dim, args.noise, rng)
        X_test, y_test = make_data(args.n_test, dim, args.noise, rng)
        print(
            f"{dim}-D inputs, n={args.n} training / {args.n_test} held-out samples, "
            f"noise std {args.noise} (alpha={alpha:g}), max_iter={args.max_iter}, "
            f"best of {args.repeats}"
        )
        print(header)
        print("-" * len(header))

        def row(name, seconds, n_iter, r2, loglik, share):
            print(
                f"{name:<34}{seconds:>9.2f}{n_iter:>9}{r2:>10.4f}"
                f"{loglik:>13.4f}{share:>7.2f}",
                flush=True,
            )

        for cap in args.caps:
            expert = GaussianProcessRegressor(kernel=1.0 * RBF(), alpha=alpha)
            seconds, model = timed(
                MixtureOfExpertsRegressor(
                    n_experts=N_EXPERTS,
                    expert=expert,
                    max_samples_per_expert=cap,
                    max_iter=args.max_iter,
                    random_state=0,
                ),
                X,
                y,
                args.repeats,
            )
            row(
                f"4 GP experts, cap {cap}",
                seconds,
                str(model.n_iter_),
                model.score(X_test, y_test),
                model.log_likelihood(X_test, y_test).mean(),
                cover(model, X_test),
            )
            subset = np.random.RandomState(1).choice(args.n, cap, replace=False)
            seconds, gp = timed(
                GaussianProcessRegressor(kernel=1.0 * RBF(), alpha=alpha),
                X[subset],
                y[subset],
                args.repeats,
            )
            row(
                f"1 GP, random {cap} samples",
                seconds,
                "-",
                gp.score(X_test, y_test),
                gp_log_likelihood(gp, X_test, y_test),
                1.0,
            )
        seconds, model = timed(
            MixtureOfExpertsRegressor(
                n_experts=N_EXPERTS, max_iter=args.max_iter, random_state=0
            ),
            X,
            y,
            args.repeats,
        )
        row(
            "4 linear experts (expert=None)",
            seconds,
            str(model.n_iter_),
            model.score(X_test, y_test),
            model.log_likelihood(X_test, y_test).mean(),
            float("nan"),
        )
        # A single GP on all samples is not fit: time one evaluation of the
        # log-marginal likelihood and its gradient, of which its optimiser
        # needs tens.
        full = GaussianProcessRegressor(
            kernel=1.0 * RBF(), alpha=alpha, optimizer=None
        ).fit(X, y)
        start = time.perf_counter()
        full.log_marginal_likelihood(full.kernel_.theta, eval_gradient=True)
        print(
            f"1 GP on all {args.n} samples: not fit (cubic in n); one "
            "log-marginal-likelihood + gradient evaluation takes "
            f"{time.perf_counter() - start:.1f} s, and fitting its kernel takes "
            "tens of them.\n",
            flush=True,
        )


if __name__ == "__main__":
    main()
