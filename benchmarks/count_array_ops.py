"""Array operations per EM iteration: the GPU's cost model, counted on the CPU.

On a GPU every array operation costs its launch and its Python, tens of
microseconds, whatever its size; at the sizes of a chunk that, not the
arithmetic, sets the time of an EM iteration (``results/gpu_nvidia_h200.txt``).
This script counts those operations without a GPU: it runs EM on
``array-api-strict`` arrays, whose functions and array methods are Python,
and counts every call of them (the same code runs on CuPy): those of a run
of 3 EM iterations less those of a run of 1, halved. ``--sizing gpu``
sizes the chunks as on a GPU (``_solvers._GPU_CHUNK_ELEMENTS``; ``on_gpu``
answered True), ``cpu`` as on the host.

Printed per row: the chunks of a pass, the operations of one EM iteration
(all; "compute", those that are not views, reshapes or scalar reads; host
reads, ``float``/``int``/``bool`` of an array, each a synchronisation on a
GPU), and the most frequent operations.

Run from the repository root (SCIPY_ARRAY_API is set here)::

    OPENBLAS_NUM_THREADS=1 python benchmarks/count_array_ops.py --n 1000000
"""

import argparse
import collections
import functools
import os
import warnings

os.environ.setdefault("SCIPY_ARRAY_API", "1")

import array_api_strict as xp_strict  # noqa: E402
import sklearn  # noqa: E402
from _common import print_machine  # noqa: E402
from array_api_strict._array_object import Array  # noqa: E402

from hmexperts import MixtureOfExpertsRegressor, _em, _solvers  # noqa: E402
from hmexperts._em import InMemoryData, run_em  # noqa: E402
from hmexperts.datasets import make_moe  # noqa: E402

# (n_experts, depth) of the tree with each number of leaves (as bench_em.py)
TREES = {4: (4, 1), 16: (4, 2), 64: (4, 3)}
# array methods that run a kernel on a GPU, or read a value to the host
METHODS = [
    "__abs__", "__add__", "__and__", "__bool__", "__eq__", "__float__",
    "__ge__", "__getitem__", "__gt__", "__iadd__", "__imul__", "__int__",
    "__invert__", "__isub__", "__itruediv__", "__le__", "__lt__",
    "__matmul__", "__mul__", "__ne__", "__neg__", "__or__", "__pow__",
    "__radd__", "__rmul__", "__rpow__", "__rsub__", "__rtruediv__",
    "__setitem__", "__sub__", "__truediv__",
]  # fmt: skip
HOST_READS = {"__bool__", "__float__", "__int__"}
# no kernel on a GPU: views, and arrays made from host values
NOT_COMPUTE = HOST_READS | {
    "__getitem__", "asarray", "matrix_transpose", "permute_dims", "reshape",
}  # fmt: skip


class Counter:
    """Counts the calls of array-api-strict's functions and array methods
    while ``active``."""

    def __init__(self):
        self.counts = collections.Counter()
        self.active = False
        for module, prefix in ((xp_strict, ""), (xp_strict.linalg, "linalg.")):
            for name, function in list(vars(module).items()):
                if callable(function) and not isinstance(function, type):
                    if not name.startswith("_"):
                        wrapped = self._wrap(prefix + name, function)
                        setattr(module, name, wrapped)
        for name in METHODS:
            setattr(Array, name, self._wrap(name, getattr(Array, name)))

    def _wrap(self, name, function):
        @functools.wraps(function)
        def counted(*args, **kwargs):
            if self.active:
                self.counts[name] += 1
            return function(*args, **kwargs)

        return counted


def count(counter, n, n_leaves, n_features, sizing):
    """Chunks a pass, and the counts of two EM iterations from a fitted start."""
    gpu = sizing == "gpu"
    _em.on_gpu = _solvers.on_gpu = lambda x: gpu
    n_experts, depth = TREES[n_leaves]
    X, y, _ = make_moe(n, n_features, n_experts=n_experts, depth=depth, random_state=0)
    with warnings.catch_warnings(), sklearn.config_context(array_api_dispatch=True):
        warnings.simplefilter("ignore")
        X, y = xp_strict.asarray(X), xp_strict.asarray(y)
        model = MixtureOfExpertsRegressor(
            n_experts, depth=depth, max_iter=2, random_state=0
        ).fit(X, y)
        xp = model._placement.xp
        Xd = model._scaling.design(X, xp)
        y_fit = (y - model._scaling.y_mean) / model._scaling.y_scale
        weight = xp.ones((n,), dtype=xp.float64)
        data = InMemoryData(Xd, y_fit, weight, xp, model._chunk_width(n_leaves))

        def iterations(count):
            gates, experts = model._gates, model._experts
            run_em(data, gates, experts, resp_init=None, max_iter=count, tol=0, xp=xp)

        iterations(1)  # as bench_em.py: a warm-up, then the iterations counted
        counts = []
        for count in (1, 3):  # a run's start (its first E-step), then 2 more
            counter.counts.clear()
            counter.active = True
            iterations(count)
            counter.active = False
            counts.append(counter.counts.copy())
    ops = counts[1]
    ops.subtract(counts[0])
    return len(data.slices), collections.Counter(
        {name: value / 2 for name, value in ops.items() if value}
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000])
    parser.add_argument("--leaves", type=int, nargs="+", default=[16])
    parser.add_argument("--features", type=int, nargs="+", default=[32])
    parser.add_argument("--sizing", nargs="+", default=["cpu", "gpu"])
    args = parser.parse_args()
    print_machine()
    counter = Counter()
    print("Array operations of one EM iteration under array-api-strict")
    print(
        f"{'n':>9}{'leaves':>7}{'feat':>5}{'sizing':>7}{'chunks':>7}"
        f"{'ops':>9}{'compute':>9}{'host':>6}  most frequent"
    )
    for n in args.n:
        for leaves in args.leaves:
            for features in args.features:
                for sizing in args.sizing:
                    chunks, ops = count(counter, n, leaves, features, sizing)
                    compute = sum(v for k, v in ops.items() if k not in NOT_COMPUTE)
                    host = sum(ops[k] for k in HOST_READS)
                    top = ", ".join(f"{k} {v:.0f}" for k, v in ops.most_common(4))
                    print(
                        f"{n:>9}{leaves:>7}{features:>5}{sizing:>7}{chunks:>7}"
                        f"{sum(ops.values()):>9.0f}{compute:>9.0f}{host:>6.0f}  {top}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
