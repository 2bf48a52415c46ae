"""Gaussian-process experts whose noise is fit by the weighted marginal
likelihood: fit time and held-out log-likelihood, before and after.

**Before and after** (``--part compare``). Each case is fit by the
``hmexperts`` of this checkout ("after") and, with ``--before DIR``, by that
of another checkout (run in a subprocess from that directory, which puts it
first on ``sys.path``), on the same data, seeds 0-2, ``random_state=0``:

- ``moe-1000``: 1,000 training samples from a known mixture of 2 linear
  experts (``make_moe(noise=0.4)``, 2 features), ``n_experts=2``,
  ``expert=GaussianProcessRegressor()`` (scikit-learn's defaults);
- ``regimes-150``: 150 samples of one input on [0, 3], flat and quiet
  (noise sd 0.05), a deep dip (sd 0.5), a small bump (sd 0.2), like the
  motorcycle-crash data (``tests/test_gp_experts.py``), ``n_experts=3``,
  the default GP;
- ``regimes-150-white``: the same with ``GaussianProcessRegressor(C() *
  RBF() + WhiteKernel(), alpha=1e-3)``, the set-up the user guide advised
  before (a ``WhiteKernel`` for each expert's noise, ``alpha / r`` for the
  weights).

Columns: best fit time of ``--repeats`` (s), ``n_iter_``, held-out mean
log-likelihood (2,000 samples); ``truth`` is the true model's, ``1 GP`` that
of one ``GaussianProcessRegressor(C() * RBF() + WhiteKernel())`` on the same
training data (its predictive variance includes the white noise), and ``1
GP (s)`` its fit time, in the "after" process: an M-step of the mixture
costs about one such fit on each leaf's samples.

**Design** (``--part design``). One leaf (the true model's posteriors of
expert 0 as its responsibilities, those below 1e-3 of the largest left
out) of the ``moe-1000`` data at 150, 500 and 1,000 samples: its noise
``sigma^2`` fit (A) as a kernel hyper-parameter with the kernel's, one
L-BFGS run (what ``hmexperts`` does), or (B) through ``alpha = (sigma^2 +
alpha) / r`` with a bounded 1-D search of ``log sigma^2`` in [1e-5, 1e5],
each step a GP fit whose kernel starts from the previous step's. Both
maximise the same weighted marginal likelihood (printed).

    git worktree add /tmp/gp-before <commit before the change>
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_gp_noise.py --before /tmp/gp-before
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
from _common import print_machine

CASE = r"""
import json, sys, time, warnings
import numpy as np
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, WhiteKernel
from sklearn.gaussian_process.kernels import ConstantKernel as C
from hmexperts import MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe


def regimes(n, rng):
    x = rng.uniform(0, 3, size=n)
    mean = np.where(
        x < 1,
        0.0,
        np.where(x < 2, -2 * np.sin(np.pi * (x - 1)), 0.5 * np.sin(np.pi * (x - 2))),
    )
    sd = np.where(x < 1, 0.05, np.where(x < 2, 0.5, 0.2))
    return x[:, None], mean + sd * rng.normal(size=n), mean, sd


def data(case, seed):
    if case == "moe-1000":
        X, y, truth = make_moe(n_samples=3000, noise=0.4, random_state=seed)
        true_ll = truth.model.log_likelihood(X[1000:], y[1000:]).mean()
        return X[:1000], y[:1000], X[1000:], y[1000:], true_ll, 2
    rng = np.random.RandomState(seed)
    X, y, _, _ = regimes(150, rng)
    X_test, y_test, mean, sd = regimes(2000, rng)
    z = (y_test - mean) / sd
    true_ll = np.mean(-0.5 * np.log(2 * np.pi * sd**2) - 0.5 * z**2)
    return X, y, X_test, y_test, true_ll, 3


case, seed, repeats = json.loads(sys.argv[1])
X, y, X_test, y_test, true_ll, n_experts = data(case, seed)
if case.endswith("white"):
    expert = GaussianProcessRegressor(C() * RBF() + WhiteKernel(), alpha=1e-3)
else:
    expert = GaussianProcessRegressor()
best = float("inf")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for _ in range(repeats):
        start = time.perf_counter()
        model = MixtureOfExpertsRegressor(
            n_experts=n_experts, expert=expert, random_state=0
        ).fit(X, y)
        best = min(best, time.perf_counter() - start)
    one = GaussianProcessRegressor(C() * RBF() + WhiteKernel(), random_state=0)
    start = time.perf_counter()
    one.fit(X, y)
    one_time = time.perf_counter() - start
mean, std = one.predict(X_test, return_std=True)
var = std**2 + one.alpha
one_ll = np.mean(-0.5 * np.log(2 * np.pi * var) - 0.5 * (y_test - mean) ** 2 / var)
print(json.dumps({
    "time": best, "n_iter": int(model.n_iter_),
    "ll": float(model.log_likelihood(X_test, y_test).mean()),
    "truth": float(true_ll), "one": float(one_ll), "one_time": one_time,
}))
"""

CASES = ["moe-1000", "regimes-150", "regimes-150-white"]
ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PATH": ""}


def in_checkout(argument, checkout):
    """Run ``CASE`` with the ``hmexperts`` of ``checkout``; its last line, as
    JSON."""
    out = subprocess.run(
        [sys.executable, "-c", CASE, json.dumps(argument)],
        capture_output=True,
        text=True,
        check=True,
        cwd=checkout,
        env=ENV,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(args):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sides = [("before", args.before)] if args.before else []
    sides.append(("after", here))
    print(f"best of {args.repeats} fit(s); held-out mean log-likelihood")
    head = f"{'case':<19}{'seed':>5}{'truth':>8}{'1 GP':>8}{'1 GP (s)':>9} |"
    for name, _ in sides:
        head += f"{name + ' fit (s)':>15}{'n_iter':>7}{'loglik':>8} |"
    print(head)
    print("-" * len(head))
    for case in CASES:
        for seed in range(3):
            results = [
                in_checkout([case, seed, args.repeats], path) for _, path in sides
            ]
            line = f"{case:<19}{seed:>5}{results[0]['truth']:>8.3f}"
            line += f"{results[-1]['one']:>8.3f}{results[-1]['one_time']:>9.2f} |"
            for result in results:
                line += (
                    f"{result['time']:>15.2f}{result['n_iter']:>7}"
                    f"{result['ll']:>8.3f} |"
                )
            print(line, flush=True)
    print()


def design(args):
    import math

    from scipy.optimize import minimize_scalar
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF
    from sklearn.gaussian_process.kernels import ConstantKernel as C

    from hmexperts._learners import _OnColumns, _weighted_objective, _WeightedNoise
    from hmexperts.datasets import make_moe

    print("one leaf's noise: (A) kernel hyper-parameter, (B) 1-D search over alpha")
    head = (
        f"{'n':>6}{'rows':>6} |{'A (s)':>8}{'objective':>11}{'sigma^2':>9} |"
        f"{'B (s)':>8}{'GP fits':>8}{'objective':>11}{'sigma^2':>9}"
    )
    print(head)
    print("-" * len(head))
    alpha = 1e-10
    for n in (150, 500, 1000):
        X, y, truth = make_moe(n_samples=n, noise=0.4, random_state=0)
        gates = truth.model.predict_gates(X)
        means = X @ truth.expert_coef.T + truth.expert_intercept
        post = gates * np.exp(-0.5 * (y[:, None] - means) ** 2 / 0.16)
        r = post[:, 0] / post.sum(axis=1)
        rows = r >= 1e-3 * r.max()
        X, y, r = X[rows], y[rows], r[rows]
        extra = 0.5 * (len(r) - r.sum())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            kernel = _OnColumns(C() * RBF(), X.shape[1]) + _WeightedNoise(
                0.1 * np.average((y - np.average(y, weights=r)) ** 2, weights=r),
                (1e-5, 1e5),
            )
            a = GaussianProcessRegressor(
                kernel,
                alpha=alpha / r,
                optimizer=_weighted_objective("fmin_l_bfgs_b", extra, alpha),
            ).fit(np.column_stack([X, 1 / r]), y)
            seconds_a = time.perf_counter() - start
            state = {"kernel": C() * RBF(), "fits": 0}

            def negative(log_sigma2, state=state, X=X, y=y, r=r, extra=extra):
                v = math.exp(log_sigma2) + alpha
                gp = GaussianProcessRegressor(state["kernel"], alpha=v / r).fit(X, y)
                state["kernel"], state["fits"] = gp.kernel_, state["fits"] + 1
                return -(gp.log_marginal_likelihood_value_ + extra * math.log(v))

            start = time.perf_counter()
            found = minimize_scalar(
                negative,
                bounds=(math.log(1e-5), math.log(1e5)),
                method="bounded",
                options={"xatol": 1e-3},
            )
            seconds_b = time.perf_counter() - start
        print(
            f"{n:>6}{len(r):>6} |{seconds_a:>8.2f}"
            f"{a.log_marginal_likelihood_value_:>11.3f}"
            f"{a.kernel_.k2.noise_level:>9.4f} |{seconds_b:>8.2f}{state['fits']:>8}"
            f"{-found.fun:>11.3f}{math.exp(found.x):>9.4f}",
            flush=True,
        )
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a checkout to compare with")
    parser.add_argument(
        "--part",
        nargs="+",
        default=["compare", "design"],
        choices=["compare", "design"],
    )
    parser.add_argument("--repeats", type=int, default=1, help="fits per case")
    args = parser.parse_args()
    print_machine()
    if "compare" in args.part:
        compare(args)
    if "design" in args.part:
        design(args)


if __name__ == "__main__":
    main()
