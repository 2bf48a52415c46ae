"""The softmax models' Newton curvature before and after it was built from the
class pairs alone (``_solvers.softmax_sums``), side by side in one process.

Before: every block of the negative Hessian, ``K (K + 1) / 2`` class pairs
gathered row by row with ``take``, and outer products from gathered column
pairs. After: the ``K (K - 1) / 2`` coupling blocks from slices and matrix
products, the diagonal blocks as their sums, outer products from contiguous
rows of ``X^T``.

The old ``_solvers`` module is read from git (``--before``, a commit) and
loaded beside the current one; for the "before" runs every function of it
replaces the current one wherever hmexperts imported it (the gates, the
experts, the EM loop, the Newton components), for the "after" runs the
current ones are put back. Everything else is the same code, so the ratio
is the change's alone. Runs alternate, best of ``--repeats``.

Two parts:

``scaling``
    ``bench_em.py``'s seconds per EM iteration (``time_iterations``: a
    fitted start, ``--iters`` iterations, regression) at the given
    configurations.
``classes``
    A whole fit of ``MixtureOfExpertsClassifier(n_experts=4, n_init=3,
    random_state=0)`` on 1,617 samples, 5 features and 12 classes (drawn as
    in ``tests/test_many_classes.py``: Gaussian inputs, weights 1.5 N(0, 1),
    Gumbel noise), against one ``LogisticRegression()`` fit on the same data.

Run from the repository root, one BLAS thread::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_newton_curvature.py
"""

import argparse
import importlib.util
import math
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import bench_em
import numpy as np
from _common import code_version, print_machine
from bench_em import time_iterations
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

import hmexperts
from hmexperts import MixtureOfExpertsClassifier, _solvers

# (n, leaves, features) of bench_em.py's scaling rows
GRID = [
    (100_000, 4, 5),
    (1_000_000, 4, 5),
    (100_000, 16, 32),
    (100_000, 64, 8),
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--before", default="0bf5ee9~1", help="commit of the old _solvers.py"
    )
    parser.add_argument(
        "--part",
        nargs="+",
        default=["scaling", "classes"],
        choices=["scaling", "classes"],
    )
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument(
        "--no-tracemalloc",
        action="store_true",
        help="time the iterations without bench_em.py's tracemalloc (which "
        "slows every allocation)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--grid",
        nargs="+",
        default=None,
        help="n:leaves:features triples (default: the four of GRID)",
    )
    return parser.parse_args()


def load_before(commit):
    """The ``_solvers`` module of ``commit``, as ``hmexperts._solvers_before``."""
    root = Path(hmexperts.__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "-C", str(root), "show", f"{commit}:hmexperts/_solvers.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "_solvers_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("hmexperts._solvers_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _consumers():
    """(module, name) of every function of ``_solvers`` imported elsewhere."""
    found = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("hmexperts.") or module is _solvers:
            continue
        if name == "hmexperts._solvers_before":
            continue
        for attr, value in vars(module).items():
            if (
                isinstance(value, types.FunctionType)
                and value.__module__ == "hmexperts._solvers"
            ):
                found.append((module, attr))
    return found


class Swap:
    """Put the old or the current solvers wherever hmexperts imported them."""

    def __init__(self, before):
        self.before = before
        self.sites = _consumers()
        self.current = {(m.__name__, a): getattr(m, a) for m, a in self.sites}

    def use(self, which):
        for module, attr in self.sites:
            if which == "before":
                setattr(module, attr, getattr(self.before, attr))
            else:
                setattr(module, attr, self.current[(module.__name__, attr)])


def twelve_classes(n=1617, n_features=5, n_classes=12, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    W = 1.5 * rng.normal(size=(n_features, n_classes))
    y = np.argmax(X @ W + rng.gumbel(size=(n, n_classes)), axis=1)
    return X, y


class _NoTrace:
    """Stands in for ``tracemalloc`` in ``bench_em`` (``--no-tracemalloc``)."""

    @staticmethod
    def start():
        pass

    @staticmethod
    def stop():
        pass

    @staticmethod
    def get_traced_memory():
        return 0, 0


def scaling(args, swap):
    if args.no_tracemalloc:
        bench_em.tracemalloc = _NoTrace
    grid = GRID
    if args.grid:
        grid = [tuple(int(v) for v in g.split(":")) for g in args.grid]
    print(
        f"Seconds per EM iteration (bench_em.py's time_iterations, {args.iters} "
        f"iterations from a fitted start, float64, host, "
        f"{'without' if args.no_tracemalloc else 'with'} its tracemalloc), "
        f"best of {args.repeats}"
    )
    print(
        f"{'n':>9}{'leaves':>7}{'feat':>5}{'before':>10}{'after':>10}{'speed-up':>10}"
    )
    for n, leaves, features in grid:
        best = {"before": math.inf, "after": math.inf}
        for _ in range(args.repeats):
            for which in ("before", "after"):
                swap.use(which)
                seconds = time_iterations(
                    n, leaves, features, args.iters, "float64", None
                )[0]
                best[which] = min(best[which], seconds)
        swap.use("after")
        print(
            f"{n:>9}{leaves:>7}{features:>5}{best['before']:>10.4f}"
            f"{best['after']:>10.4f}{best['before'] / best['after']:>9.2f}x",
            flush=True,
        )


def classes(args, swap):
    X, y = twelve_classes()
    best = {"before": math.inf, "after": math.inf, "lr": math.inf}
    n_iter = {}
    for _ in range(args.repeats):
        for which in ("before", "after"):
            swap.use(which)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                start = time.perf_counter()
                model = MixtureOfExpertsClassifier(
                    n_experts=4, n_init=3, random_state=0
                ).fit(X, y)
                best[which] = min(best[which], time.perf_counter() - start)
            n_iter[which] = (model.n_iter_, model.lower_bound_)
        swap.use("after")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            lr = LogisticRegression().fit(X, y)
            best["lr"] = min(best["lr"], time.perf_counter() - start)
    print(
        f"MixtureOfExpertsClassifier(n_experts=4, n_init=3, random_state=0), "
        f"{X.shape[0]} samples, {X.shape[1]} features, 12 classes; best of "
        f"{args.repeats}"
    )
    print(f"{'':<24}{'fit (s)':>9}{'x LR':>8}{'n_iter':>8}{'lower bound':>14}")
    for which in ("before", "after"):
        iters, bound = n_iter[which]
        print(
            f"{which:<24}{best[which]:>9.3f}{best[which] / best['lr']:>8.1f}"
            f"{iters:>8}{bound:>14.6f}"
        )
    print(
        f"{'LogisticRegression()':<24}{best['lr']:>9.3f}{1.0:>8.1f}"
        f"{int(np.max(lr.n_iter_)):>8}"
    )
    print(f"speed-up of the whole fit: {best['before'] / best['after']:.2f}x")


def main():
    args = parse_args()
    print_machine()
    print(f"command : python {' '.join(sys.argv)}")
    commit, dirty, root = code_version()
    print(
        f"hmexperts {hmexperts.__version__} from {root}, commit {commit}"
        f"{' (uncommitted changes in hmexperts/)' if dirty else ''}; "
        f"before = _solvers.py of {args.before}\n"
    )
    swap = Swap(load_before(args.before))
    if "scaling" in args.part:
        scaling(args, swap)
        print()
    if "classes" in args.part:
        classes(args, swap)


if __name__ == "__main__":
    main()
