"""Whole-fit time before and after the speed work, side by side.

Each case runs in a subprocess of a checkout of the commit before the speed
work (``--before``, a ``git worktree``) and of the working tree, one after
the other for every repeat so that both see the same load; the fastest of
``--repeats`` is kept. Every run times the fit twice: the first fit in a
fresh process, which pays the process's one-time costs (imports inside
scikit-learn, the discovery of the BLAS and OpenMP libraries), and the
same fit again ("warm"). Printed per case: both times and the final
``lower_bound_`` before and after, the ratios before / after; with the
references measured in the same process after the fits (EM from
scikit-learn parts, ``sklearn_em.py``; one ``LogisticRegression`` fit) as
ratios to the warm times.

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
import math
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
    # the first fit in a fresh process, then the same fit again: the first
    # pays the process's one-time costs (imports inside scikit-learn, the
    # discovery of the BLAS and OpenMP libraries), the second does not
    times = []
    for _ in range(2):
        model = make()
        start = time.perf_counter()
        model.fit(X, y, sample_weight=w)
        times.append(time.perf_counter() - start)
    return times, model.lower_bound_

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
print(json.dumps({"seconds": seconds[0], "warm": seconds[1], "bound": bound,
                  "reference": reference}))
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
        f"{'case':14s} {'tol':>6s} | first fit: {'before':>7s} {'after':>7s} "
        f"{'ratio':>5s} | warm: {'before':>7s} {'after':>7s} {'ratio':>5s} | "
        f"{'before obj':>11s} {'after obj':>11s} | reference (warm)"
    )
    ratios = {"first": {}, "warm": {}}
    for case, tol in cases:
        best = {"before": {}, "after": {}}
        reference = None
        for r in range(args.repeats):
            for name, tree in (("before", args.before), ("after", str(HERE.parent))):
                result = run(
                    tree, case, tol, with_reference=(name == "after" and r == 0)
                )
                for key in ("seconds", "warm"):
                    best[name][key] = min(best[name].get(key, math.inf), result[key])
                best[name]["bound"] = result["bound"]
                if result["reference"] is not None:
                    reference = result["reference"]
        b, a = best["before"], best["after"]
        ratios["first"].setdefault(tol, []).append(b["seconds"] / a["seconds"])
        ratios["warm"].setdefault(tol, []).append(b["warm"] / a["warm"])
        note = ""
        if reference is not None:
            if case == "sklearn-parts":
                note = (
                    f"EM from scikit-learn parts {reference:.3f} s: "
                    f"{reference / b['warm']:.1f}x "
                    f"before's time, {reference / a['warm']:.1f}x after's"
                )
            else:
                note = (
                    f"one LogisticRegression {reference:.4f} s: before takes "
                    f"{b['warm'] / reference:.0f}x, after "
                    f"{a['warm'] / reference:.0f}x"
                )
        print(
            f"{case:14s} {tol:6.0e} |            {b['seconds']:7.3f} "
            f"{a['seconds']:7.3f} {b['seconds'] / a['seconds']:5.2f} |       "
            f"{b['warm']:7.3f} {a['warm']:7.3f} {b['warm'] / a['warm']:5.2f} | "
            f"{b['bound']:11.6f} {a['bound']:11.6f} | {note}",
            flush=True,
        )
    for kind, by_tol in ratios.items():
        for tol, values in by_tol.items():
            geo = statistics.geometric_mean(values)
            print(
                f"{kind} fit, tol={tol:g}: speed-up median "
                f"{statistics.median(values):.2f}, geometric mean {geo:.2f}"
            )


if __name__ == "__main__":
    main()
