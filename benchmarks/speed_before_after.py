"""Whole-fit time before and after the speed work, side by side.

Each case runs in a subprocess of a checkout of the commit before the speed
work (``--before``, a ``git worktree``) and of the working tree, one after
the other for every repeat so that both see the same load; the fastest of
``--repeats`` is kept. Printed per case: fit time and final
``lower_bound_`` before and after, and the ratio before / after; with the
references measured in the same process (EM from scikit-learn parts,
``sklearn_em.py``; one ``LogisticRegression`` fit) as ratios.

Cases (default ``tol=1e-4``, ``random_state=0``):

- ``sklearn-parts``: n=1e5, 4 experts, 5 features (``bench_em.py``'s
  baseline), regression;
- ``small-12cls``: 1,617 samples, 5 features, 12 classes, 4 experts,
  ``n_init=3``: against one ``LogisticRegression`` fit;
- ``many-classes``: 2 experts, 1,000 classes, n=2,000, 5 features, 20
  iterations: against one ``LogisticRegression`` fit;
- the problems of ``bench_acceleration.py`` (flexmix-parity data, flat and
  depth-2 mixtures, classification, vowels, Student-t), fit to ``tol=1e-4``
  and to ``tol=1e-8``.

Run from the repository root, one BLAS thread::

    git worktree add /tmp/before b196d30
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \\
        python benchmarks/speed_before_after.py --before /tmp/before
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _common import print_machine

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time, warnings
sys.path.insert(0, BENCHMARKS)
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe
warnings.simplefilter("ignore")
case, tol = sys.argv[1], float(sys.argv[2])

def timed(make, X, y, w=None):
    model = make()
    start = time.perf_counter()
    model.fit(X, y, sample_weight=w)
    return time.perf_counter() - start, model.lower_bound_

reference = None
if case == "sklearn-parts":
    X, y, _ = make_moe(100_000, 5, n_experts=4, random_state=0)
    model = lambda: MixtureOfExpertsRegressor(4, tol=tol, random_state=0)
    seconds, bound = timed(model, X, y)
    if WITH_REFERENCE:
        from sklearn_em import sklearn_em
        start = time.perf_counter()
        sklearn_em(X, y, 4, tol=tol)
        reference = time.perf_counter() - start
elif case in ("small-12cls", "many-classes"):
    if case == "small-12cls":
        X, y, _ = make_moe(
            1617, 5, n_experts=4, task="classification", n_classes=12, random_state=0
        )
        make = lambda: MixtureOfExpertsClassifier(4, n_init=3, tol=tol, random_state=0)
    else:
        rng = np.random.default_rng(0)
        X = rng.normal(size=(2000, 5))
        y = rng.integers(0, 1000, size=2000)
        y[:1000] = np.arange(1000)
        make = lambda: MixtureOfExpertsClassifier(2, max_iter=20, tol=0, random_state=0)
    seconds, bound = timed(make, X, y)
    if WITH_REFERENCE:
        start = time.perf_counter()
        LogisticRegression(max_iter=1000).fit(X, y)
        reference = time.perf_counter() - start
else:
    from bench_acceleration import suite
    problem = {p[0]: p for p in suite()}[case]
    _, estimator, keywords, X, y, w = problem
    model = lambda: estimator(**keywords, tol=tol, max_iter=5000, random_state=0)
    seconds, bound = timed(model, X, y, w)
print(json.dumps({"seconds": seconds, "bound": bound, "reference": reference}))
"""


def run(tree, case, tol, with_reference):
    code = CHILD.replace("BENCHMARKS", repr(str(HERE))).replace(
        "WITH_REFERENCE", str(with_reference)
    )
    env = dict(os.environ, PYTHONPATH=str(Path(tree) / "src") + os.pathsep + str(tree))
    out = subprocess.run(
        [sys.executable, "-c", code, case, str(tol)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="checkout of the commit before")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=None)
    args = parser.parse_args()
    print_machine()
    sys.path.insert(0, str(HERE))
    from bench_acceleration import suite

    cases = [("sklearn-parts", 1e-4), ("small-12cls", 1e-4), ("many-classes", 0.0)]
    cases += [(p[0], tol) for tol in (1e-4, 1e-8) for p in suite()]
    if args.cases:
        cases = [c for c in cases if c[0].startswith(tuple(args.cases))]
    print(
        f"{'case':14s} {'tol':>6s} | {'before s':>9s} {'after s':>9s} "
        f"{'speed-up':>8s} | "
        f"{'before obj':>11s} {'after obj':>11s} | reference"
    )
    ratios = {}
    for case, tol in cases:
        best = {"before": None, "after": None}
        reference = None
        for r in range(args.repeats):
            for name, tree in (("before", args.before), ("after", str(HERE.parent))):
                result = run(
                    tree, case, tol, with_reference=(name == "after" and r == 0)
                )
                if best[name] is None or result["seconds"] < best[name]["seconds"]:
                    best[name] = result
                if result["reference"] is not None:
                    reference = result["reference"]
        b, a = best["before"], best["after"]
        ratios.setdefault(tol, []).append(b["seconds"] / a["seconds"])
        note = ""
        if reference is not None:
            if case == "sklearn-parts":
                note = (
                    f"EM from scikit-learn parts {reference:.3f} s: "
                    f"{reference / b['seconds']:.1f}x "
                    f"before's time, {reference / a['seconds']:.1f}x after's"
                )
            else:
                note = (
                    f"one LogisticRegression {reference:.4f} s: before takes "
                    f"{b['seconds'] / reference:.0f}x, after "
                    f"{a['seconds'] / reference:.0f}x"
                )
        print(
            f"{case:14s} {tol:6.0e} | {b['seconds']:9.3f} {a['seconds']:9.3f} "
            f"{b['seconds'] / a['seconds']:8.2f} | {b['bound']:11.6f} "
            f"{a['bound']:11.6f} | {note}",
            flush=True,
        )
    for tol, values in ratios.items():
        geo = statistics.geometric_mean(values)
        print(
            f"tol={tol:g}: speed-up median {statistics.median(values):.2f}, geometric "
            f"mean {geo:.2f}"
        )


if __name__ == "__main__":
    main()
