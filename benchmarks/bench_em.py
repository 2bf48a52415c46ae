"""Seconds per EM iteration against the machine's own matrix-multiply rate.

Three parts, each printing a table:

``rate``
    The machine's matrix-multiply rate: the best of 5 products of two square
    matrices of size 2048, in GFLOP/s, for float64 and float32.
``scaling``
    For each configuration (``n`` samples, a tree of ``n_leaves`` leaves,
    ``n_features`` features): seconds per EM iteration (E-step + M-step, the
    mean of ``--iters`` iterations from a fitted model's parameters), the
    peak memory those iterations allocate (``tracemalloc``, which sees
    NumPy's buffers) against the size of ``X``, the floating-point work of
    the iteration's matrix products (counted from the shapes every solver
    call receives), the time that work would take at the measured rate (the
    matrix-multiply bound) and the achieved fraction. ``us/1k`` is the time
    per 1000 samples: constant when the cost is linear in ``n``.
``baseline``
    The whole fit against ``sklearn_em.py`` (EM built from scikit-learn parts:
    ``LogisticRegression`` on replicated data for the gate,
    ``LinearRegression(sample_weight=...)`` per expert), both from a k-means
    start to ``tol=1e-4``: best time of ``--repeats``, EM iterations, final
    mean log-likelihood per sample, and the speed-up.

Regression (linear-Gaussian experts) throughout; data from
``hmexperts.datasets.make_moe``. ``--device cuda`` runs the scaling part on
the GPU (CuPy); its rate is then measured with CuPy.

Run from the repository root::

    python benchmarks/bench_em.py --part rate scaling baseline
    python benchmarks/bench_em.py --part scaling --n 1000 10000 --leaves 4 --features 5
"""

import argparse
import math
import time
import tracemalloc
import warnings

import numpy as np
from _common import print_machine
from sklearn.exceptions import ConvergenceWarning
from sklearn_em import sklearn_em

from hmexperts import MixtureOfExpertsRegressor
from hmexperts._em import InMemoryData, run_em
from hmexperts.datasets import make_moe

# (n_experts, depth) of the tree with each number of leaves
TREES = {2: (2, 1), 4: (4, 1), 8: (2, 3), 16: (4, 2), 32: (2, 5), 64: (4, 3)}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part",
        nargs="+",
        default=["rate", "scaling", "baseline"],
        choices=["rate", "scaling", "baseline"],
    )
    parser.add_argument("--n", type=int, nargs="+", default=None)
    parser.add_argument("--leaves", type=int, nargs="+", default=None)
    parser.add_argument("--features", type=int, nargs="+", default=None)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--device", default=None, help="None (host) or cuda")
    return parser.parse_args()


def _sync(xp_name):
    if xp_name == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()


def matmul_rate(dtype, device=None, size=2048, repeats=5):
    """Best GFLOP/s of ``A @ B`` for square matrices of ``size``."""
    if device == "cuda":
        import cupy as xp
    else:
        xp = np
    a = xp.asarray(np.random.default_rng(0).standard_normal((size, size)), dtype=dtype)
    best = math.inf
    for _ in range(repeats):
        _sync(xp.__name__)
        start = time.perf_counter()
        a @ a
        _sync(xp.__name__)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _pass_flops(n, p, n_experts, depth):
    """Multiply-adds of one pass over the data (E-step and statistics) of a
    tree of linear-Gaussian experts, from the shapes the solvers see: the
    gate logits of every level (in the E-step and again in the gates'
    sums), the gates' gradients and packed curvatures, the experts' means,
    Gram matrices and ``X^T R y``."""
    k, n_leaves, width = n_experts, n_experts**depth, p * (p + 1) // 2
    # the curvature's class pairs a < b (softmax_sums since commit 0bf5ee9;
    # K (K + 1) / 2 blocks before, so earlier results count more work)
    pairs = k * (k - 1) // 2
    gate_outputs = sum(k ** (d + 1) for d in range(depth))
    gate_sums = sum(k**d * (2 * k * p + pairs * width) for d in range(depth))
    experts = n_leaves * (p + width + p)
    return 2 * n * (gate_outputs * p + gate_sums + experts)


def time_iterations(n, n_leaves, n_features, iters, dtype, device):
    """Seconds per EM iteration, passes per iteration, peak memory and flops,
    from a fitted start."""
    n_experts, depth = TREES[n_leaves]
    X, y, _ = make_moe(n, n_features, n_experts=n_experts, depth=depth, random_state=0)
    X, y = X.astype(dtype), y.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MixtureOfExpertsRegressor(
            n_experts, depth=depth, max_iter=2, random_state=0, device=device
        ).fit(X, y)
    xp_name = type(model._scaling.x_mean).__module__.split(".")[0]
    from array_api_compat import array_namespace

    xp = array_namespace(model._scaling.x_mean)
    Xd = model._scaling.design(model._placement.to_compute(X), xp)
    y_fit = (y - model._scaling.y_mean) / model._scaling.y_scale
    y_fit = model._placement.to_compute(y_fit)
    w = xp.ones((n,), dtype=xp.float64, device=Xd.device)
    data = InMemoryData(Xd, y_fit, w, xp, model._chunk_width(n_leaves))
    gates, experts = model._gates, model._experts

    def iterations(count):
        return run_em(
            data, gates, experts, resp_init=None, max_iter=count, tol=0, xp=xp
        )

    iterations(1)  # warm-up
    if device is None:
        tracemalloc.start()
    _sync(xp_name)
    start = time.perf_counter()
    monitor = iterations(iters)
    _sync(xp_name)
    seconds = (time.perf_counter() - start) / iters
    passes = (len(monitor.passes) - 1) / iters  # the first is the start's E-step
    flops = passes * _pass_flops(n, n_features + 1, n_experts, depth)
    peak = 0
    if device is None:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return seconds, passes, peak, flops, X.nbytes


def scaling(args, rate):
    if args.n or args.leaves or args.features:
        grid = [
            (n, leaves, features)
            for n in args.n or [100_000]
            for leaves in args.leaves or [4]
            for features in args.features or [5]
        ]
    else:  # n at two tree sizes; then leaves; then features, at n = 1e5
        grid = [(n, 4, 5) for n in (1_000, 10_000, 100_000, 1_000_000)]
        grid += [(n, 16, 32) for n in (1_000, 10_000, 100_000, 1_000_000)]
        grid += [(100_000, leaves, 8) for leaves in (2, 4, 16, 64)]
        grid += [(100_000, 4, features) for features in (2, 8, 32, 64)]
    print(
        f"EM iterations ({args.dtype}, device={args.device or 'host'}), "
        f"matrix-multiply rate {rate:.1f} GFLOP/s"
    )
    print(
        f"{'n':>9}{'leaves':>7}{'feat':>5}{'s/iter':>10}{'passes':>7}{'us/1k':>9}"
        f"{'peak MiB':>10}{'X MiB':>8}{'GFLOP':>8}{'bound s':>10}{'fraction':>10}"
    )
    for n, leaves, features in grid:
        seconds, passes, peak, flops, x_bytes = time_iterations(
            n, leaves, features, args.iters, args.dtype, args.device
        )
        bound = flops / (rate * 1e9)
        print(
            f"{n:>9}{leaves:>7}{features:>5}{seconds:>10.4f}{passes:>7.2f}"
            f"{seconds / n * 1e9:>9.1f}{peak / 2**20:>10.1f}{x_bytes / 2**20:>8.1f}"
            f"{flops / 1e9:>8.2f}{bound:>10.4f}{bound / seconds:>10.1%}",
            flush=True,
        )


def baseline(args):
    n, n_experts, n_features = 100_000, 4, 5
    X, y, _ = make_moe(n, n_features, n_experts=n_experts, random_state=0)
    print(
        f"Whole fit, n={n}, {n_experts} experts, {n_features} features, tol=1e-4, "
        f"best of {args.repeats}"
    )
    print(f"{'method':<28}{'fit (s)':>9}{'n_iter':>8}{'mean log-lik':>14}")
    ours, theirs = math.inf, math.inf
    for _ in range(args.repeats):
        start = time.perf_counter()
        model = MixtureOfExpertsRegressor(n_experts, random_state=0).fit(X, y)
        ours = min(ours, time.perf_counter() - start)
    ll_ours = float(np.mean(model.log_likelihood(X, y)))
    print(
        f"{'hmexperts':<28}{ours:>9.3f}{model.n_iter_:>8}{ll_ours:>14.6f}", flush=True
    )
    for _ in range(args.repeats):
        start = time.perf_counter()
        ll_theirs, n_iter = sklearn_em(X, y, n_experts)
        theirs = min(theirs, time.perf_counter() - start)
    print(
        f"{'EM from scikit-learn parts':<28}{theirs:>9.3f}{n_iter:>8}{ll_theirs:>14.6f}"
    )
    print(
        f"speed-up {theirs / ours:.1f}x; log-likelihood difference "
        f"{ll_ours - ll_theirs:+.2e} (hmexperts minus baseline)"
    )


def main():
    args = parse_args()
    print_machine()
    rate = None
    if "rate" in args.part or "scaling" in args.part:
        rate64 = matmul_rate("float64", args.device)
        rate32 = matmul_rate("float32", args.device)
        if "rate" in args.part:
            print(
                f"matrix multiply (2048 x 2048, best of 5): float64 "
                f"{rate64:.1f} GFLOP/s, float32 {rate32:.1f} GFLOP/s\n"
            )
        rate = rate64 if args.dtype == "float64" else rate32
    if "scaling" in args.part:
        scaling(args, rate)
        print()
    if "baseline" in args.part:
        baseline(args)


if __name__ == "__main__":
    main()
