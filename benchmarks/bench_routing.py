"""Sparse and hard routing at 64 leaves: what it saves and what it costs.

Four measurements, each with a held-out test split (parts 2 and 4 on data
drawn from a known 64-leaf model with ``hmexperts.datasets.make_moe``):

1. Prediction with costly experts: a 64-leaf tree (``depth=3``,
   ``n_experts=4``) of ``SVR`` experts trained with ``top_k=2`` on a bumpy
   2-D surface, dense prediction against ``top_k=2`` and ``top_k=1`` (every
   SVR called only on the samples routed to it): seconds and test R^2.
2. Training at 64 leaves with linear-Gaussian experts: soft EM, hard
   (classification) EM and stochastic EM over several seeds: seconds, EM
   iterations and held-out mean log-likelihood next to the true model's.
3. Load balancing: importance CV^2 and test R^2 against ``load_balance``.
4. Capacity: with ``top_k=1`` and ``capacity_factor=1.0`` on skewed inputs,
   the largest load against the capacity, and the dropped, partial and
   rerouted counts.

Run from the repository root (one BLAS thread gives stable timings)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_routing.py

``--parts 2 3`` runs only those measurements.
"""

import argparse
import time
import warnings

import numpy as np
from _common import print_machine
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.svm import SVR

from hmexperts import MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--n-test", type=int, default=20000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--parts", type=int, nargs="+", default=[1, 2, 3, 4], help="which to run"
    )
    return parser.parse_args()


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def _data(n_train, n_test, seed=0):
    X, y, truth = make_moe(
        n_train + n_test, 4, n_experts=4, depth=3, noise=0.3, random_state=seed
    )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, train_size=n_train, random_state=0
    )
    return X_train, X_test, y_train, y_test, truth


def _bumpy(n, rng):
    """A smooth 2-D surface with many bumps: local SVRs fit it well."""
    X = rng.uniform(-3, 3, size=(n, 2))
    f = np.sin(2 * X[:, 0]) + np.cos(2 * X[:, 1]) + 0.5 * np.abs(X[:, 0] + X[:, 1])
    return X, f + 0.1 * rng.normal(size=n)


def _r2(y, prediction):
    return 1 - np.sum((y - prediction) ** 2) / np.sum((y - y.mean()) ** 2)


def costly_experts(args):
    print("1. Prediction with 64 SVR experts (depth 3, branching 4)")
    rng = np.random.RandomState(0)
    X_train, y_train = _bumpy(args.n_train, rng)
    X_test, y_test = _bumpy(args.n_test, rng)
    # Trained as it will predict: the truncated E-step keeps each sample's
    # two most probable leaves, so every SVR is fit on its own samples only.
    model = MixtureOfExpertsRegressor(
        n_experts=4,
        depth=3,
        expert=SVR(C=10.0),
        top_k=2,
        max_iter=10,
        random_state=0,
    )
    _, seconds = _timed(_fit, model, X_train, y_train)
    print(
        f"   fit: {len(X_train)} samples, {model.n_iter_} EM iterations, {seconds:.1f}s"
    )
    rows = []
    for top_k in (None, 2, 1):
        model.set_params(top_k=top_k)
        prediction, seconds = _timed(model.predict, X_test)
        rows.append((top_k, seconds, _r2(y_test, prediction)))
    dense_seconds, dense_r2 = rows[0][1], rows[0][2]
    print(f"   predict {len(X_test)} samples:")
    for top_k, seconds, r2 in rows:
        name = "dense" if top_k is None else f"top_k={top_k}"
        print(
            f"   {name:>8}: {seconds:7.2f}s ({dense_seconds / seconds:5.1f}x faster), "
            f"R^2 {r2:.4f} (loss {dense_r2 - r2:+.4f})"
        )
    print()


def training_algorithms(args):
    print("2. Training at 64 leaves: soft, hard and stochastic EM")
    X_train, X_test, y_train, y_test, truth = _data(args.n_train, args.n_test)
    true_ll = truth.model.log_likelihood(X_test, y_test).mean()
    print(
        f"   {len(X_train)} training samples; true held-out mean log-lik {true_ll:.4f}"
    )

    def run(**params):
        model = MixtureOfExpertsRegressor(
            n_experts=4, depth=3, max_iter=300, random_state=0
        ).set_params(**params)
        _, seconds = _timed(_fit, model, X_train, y_train)
        return seconds, model.n_iter_, model.log_likelihood(X_test, y_test).mean()

    for name, params in [
        ("soft EM", {}),
        ("top_k=2 EM", {"top_k": 2}),
        ("hard EM", {"algorithm": "hard"}),
    ]:
        seconds, n_iter, ll = run(**params)
        print(
            f"   {name:>12}: {seconds:6.1f}s, {n_iter:3d} iterations, "
            f"held-out log-lik {ll:.4f} (truth - fit: {true_ll - ll:.4f})"
        )
    results = [
        run(algorithm="stochastic", random_state=seed) for seed in range(args.seeds)
    ]
    seconds, n_iter, ll = (np.array(column) for column in zip(*results, strict=True))
    print(
        f"   {'stochastic':>12}: {seconds.mean():6.1f}s, {n_iter.mean():5.1f} "
        f"iterations, held-out log-lik {ll.mean():.4f} +- {ll.std():.4f} "
        f"(mean +- sd over {args.seeds} seeds; min {ll.min():.4f}, max {ll.max():.4f})"
    )
    print()


def load_balance(args):
    print("3. Load balancing: importance CV^2 against load_balance")
    rng = np.random.RandomState(0)
    X = rng.uniform(-3, 3, size=(4000, 2))
    y = X @ [1.0, -0.5] + 0.3 * rng.normal(size=4000)
    y[X[:, 0] > 2.5] += 2.0  # one linear trend explains almost everything
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    for weight in (0.0, 0.1, 1.0, 10.0):
        model = _fit(
            MixtureOfExpertsRegressor(n_experts=8, load_balance=weight, random_state=0),
            X_train,
            y_train,
        )
        train_cv2 = model.routing_stats_.importance_cv2
        test_cv2 = model.routing_stats(X_test).importance_cv2
        print(
            f"   load_balance={weight:5.1f}: importance CV^2 train "
            f"{train_cv2:.4f}, test {test_cv2:.4f}; "
            f"test R^2 {model.score(X_test, y_test):.4f}"
        )
    print()


def capacity(args):
    print("4. Capacity: top_k=1, capacity_factor=1.0 on skewed inputs")
    X_train, X_test, y_train, y_test, _ = _data(args.n_train // 4, args.n_test)
    model = _fit(
        MixtureOfExpertsRegressor(n_experts=4, depth=3, top_k=1, random_state=0),
        X_train,
        y_train,
    )
    leaves = model.apply(X_test)
    busiest = np.bincount(leaves, minlength=64).argmax()
    X_skewed = np.vstack([X_test[leaves == busiest]] * 5 + [X_test[:2000]])
    for priority in ("gate", "random", "order"):
        model.set_params(capacity_factor=None)
        free = model.routing_stats(X_skewed)
        model.set_params(capacity_factor=1.0, priority=priority)
        stats = model.routing_stats(X_skewed)
        _, seconds = _timed(model.predict, X_skewed)
        print(
            f"   priority={priority!r:8}: {len(X_skewed)} samples, largest load "
            f"{free.load.max()} uncapped -> {stats.load.max()} (capacity "
            f"{stats.capacity}); routed {stats.load.sum()}, dropped {stats.n_dropped}, "
            f"rerouted {stats.n_rerouted}; predict {seconds:.2f}s"
        )
    print()


def main():
    args = parse_args()
    print_machine()
    parts = [costly_experts, training_algorithms, load_balance, capacity]
    for part in args.parts:
        parts[part - 1](args)


if __name__ == "__main__":
    main()
