"""Fits with and without the allocator settled (``hmexperts._memory``).

Every case runs in fresh processes, alternately settled (as ``fit`` does)
and unsettled (``settle_allocator`` replaced by a no-op), ``--repeats``
processes each; each process fits twice (the first fit pays the process's
one-time costs) and reports the second fit's time and minor page faults
(``getrusage``), and its peak resident memory. Printed: the fastest of the
repeats, the ratio, the faults and the peak memory of both.

With ``--predict``, instead: a fitted model of each case, pickled, is
loaded in fresh processes, settled and unsettled alike, and predicts its
training rows 20 times (``predict`` and ``log_likelihood``, ``predict_proba``
for a classifier): the mean time of one round and its page faults.

With ``--threads``, instead: two fits of a case one after the other and
side by side on two threads (``ThreadPoolExecutor``; hmexperts' BLAS limit
off, one BLAS thread from the environment), settled and unsettled: whether
two fits overlap on two cores, as running ``n_init`` restarts on threads
would need.

Run from the repository root, one BLAS thread::

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_allocator.py
"""

import argparse
import json
import subprocess
import sys

from _common import print_machine

CASES = {
    # name: (code making X, y and the estimator ``make``)
    "regression 4 leaves, n=1e5": (
        "X, y, _ = make_moe(100_000, 5, n_experts=4, random_state=0)\n"
        "make = lambda: MixtureOfExpertsRegressor(4, random_state=0)"
    ),
    "depth 3 (8 leaves), n=16,000": (
        "X, y, _ = make_moe(16_000, 3, n_experts=2, depth=3, random_state=0)\n"
        "make = lambda: MixtureOfExpertsRegressor(2, depth=3, random_state=0)"
    ),
    "grown tree, n=16,000": (
        "X, y, _ = make_moe(16_000, 3, n_experts=2, depth=3, random_state=0)\n"
        "make = lambda: MixtureOfExpertsRegressor(tree='grow', max_leaves=10, "
        "random_state=0)"
    ),
    "depth 2 (16 leaves), n=5,000": (
        "X, y, _ = make_moe(5_000, 5, n_experts=4, depth=2, random_state=0)\n"
        "make = lambda: MixtureOfExpertsRegressor(4, depth=2, random_state=0)"
    ),
    "classifier 4 experts, n=5,000": (
        "X, y, _ = make_moe(5_000, 5, n_experts=4, task='classification', "
        "random_state=0)\n"
        "make = lambda: MixtureOfExpertsClassifier(4, random_state=0)"
    ),
    "12 classes, n=1,617, n_init=3": (
        "X, y, _ = make_moe(1617, 5, n_experts=4, task='classification', "
        "n_classes=12, random_state=0)\n"
        "make = lambda: MixtureOfExpertsClassifier(4, n_init=3, random_state=0)"
    ),
    "regression 4 leaves, n=1e6": (
        "X, y, _ = make_moe(1_000_000, 5, n_experts=4, random_state=0)\n"
        "make = lambda: MixtureOfExpertsRegressor(4, max_iter=10, tol=0, "
        "random_state=0)"
    ),
}

SCRIPT = """
import json, resource, time, warnings
import hmexperts._base
from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe
from sklearn.exceptions import ConvergenceWarning
warnings.simplefilter("ignore", ConvergenceWarning)
if not {settled}:
    hmexperts._base.settle_allocator = lambda: None
{case}
for _ in range(2):
    model = make()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({{"seconds": seconds, "faults": faults,
    "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "objective": model.lower_bound_}}))
"""


THREADS = """
import json, time, warnings
from concurrent.futures import ThreadPoolExecutor
import hmexperts, hmexperts._base
from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts._memory import settle_allocator
from hmexperts.datasets import make_moe
from sklearn.exceptions import ConvergenceWarning
warnings.simplefilter("ignore", ConvergenceWarning)
hmexperts.set_config(n_threads=None)  # threadpoolctl's limits are not thread-safe
if {settled}:
    settle_allocator()
else:
    hmexperts._base.settle_allocator = lambda: None
{case}
fit = lambda: make().fit(X, y)
fit()
serial, threads = [], []
for _ in range(3):
    start = time.perf_counter()
    fit(), fit()
    serial.append(time.perf_counter() - start)
    with ThreadPoolExecutor(2) as pool:
        start = time.perf_counter()
        list(pool.map(lambda _: fit(), range(2)))
        threads.append(time.perf_counter() - start)
print(json.dumps({{"serial": min(serial), "threads": min(threads)}}))
"""


PREDICT = """
import json, pickle, resource, time
import hmexperts._base
if not {settled}:
    hmexperts._base.settle_allocator = lambda: None
with open({path!r}, "rb") as file:
    model, X, y = pickle.load(file)
def predict():
    if hasattr(model, "predict_proba"):
        model.predict_proba(X)
    else:
        model.predict(X)
    model.log_likelihood(X, y)
predict()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
start = time.perf_counter()
for _ in range(20):
    predict()
seconds = (time.perf_counter() - start) / 20
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({{"seconds": seconds, "faults": faults}}))
"""


def run_predict(case, settled, path):
    code = PREDICT.format(settled=settled, path=path)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def predict_part(args):
    """``--predict``: pickled models predicting in fresh processes."""
    import pickle
    import tempfile
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
    from hmexperts.datasets import make_moe

    print(
        f"\n{'a round of predictions':32s} | {'unsettled ms':>12s} {'settled ms':>10s} "
        f"{'ratio':>5s} | {'faults':>8s} {'settled':>7s}"
    )
    with tempfile.TemporaryDirectory() as folder:
        for case in args.cases:
            scope = {
                "make_moe": make_moe,
                "MixtureOfExpertsRegressor": MixtureOfExpertsRegressor,
                "MixtureOfExpertsClassifier": MixtureOfExpertsClassifier,
            }
            exec(CASES[case], scope)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = scope["make"]().fit(scope["X"], scope["y"])
            path = f"{folder}/model.pkl"
            with open(path, "wb") as file:
                pickle.dump((model, scope["X"], scope["y"]), file)
            best = {}
            for _ in range(args.repeats):
                for settled in (False, True):
                    result = run_predict(case, settled, path)
                    if (
                        settled not in best
                        or result["seconds"] < best[settled]["seconds"]
                    ):
                        best[settled] = result
            off, on = best[False], best[True]
            print(
                f"{case:32s} | {1e3 * off['seconds']:12.2f} "
                f"{1e3 * on['seconds']:10.2f} "
                f"{off['seconds'] / on['seconds']:5.2f} | {off['faults']:8d} "
                f"{on['faults']:7d}",
                flush=True,
            )


def run(case, settled, script=SCRIPT):
    code = script.format(settled=settled, case=CASES[case])
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--threads", action="store_true")
    parser.add_argument("--predict", action="store_true")
    args = parser.parse_args()
    print_machine()
    if args.predict:
        predict_part(args)
        return
    if args.threads:
        print(f"\n{'two fits':32s} | {'':9s}serial {'2 threads':>9s} {'ratio':>5s}")
        for case in args.cases:
            for settled in (False, True):
                t = run(case, settled, THREADS)
                label = "settled" if settled else "unsettled"
                print(
                    f"{case:32s} | {label:>9s} {t['serial']:6.3f} "
                    f"{t['threads']:9.3f} {t['serial'] / t['threads']:5.2f}",
                    flush=True,
                )
        return
    print(
        f"\n{'case':32s} | {'unsettled s':>11s} {'settled s':>9s} {'ratio':>5s} | "
        f"{'faults':>8s} {'settled':>7s} | {'peak MiB':>8s} {'settled':>7s} | same fit"
    )
    for case in args.cases:
        runs = {False: [], True: []}
        for _ in range(args.repeats):
            for settled in (False, True):
                runs[settled].append(run(case, settled))
        best = {s: min(r, key=lambda d: d["seconds"]) for s, r in runs.items()}
        off, on = best[False], best[True]
        print(
            f"{case:32s} | {off['seconds']:11.3f} {on['seconds']:9.3f} "
            f"{off['seconds'] / on['seconds']:5.2f} | {off['faults']:8d} "
            f"{on['faults']:7d} | {off['peak_mib']:8.0f} {on['peak_mib']:7.0f} | "
            f"{off['objective'] == on['objective']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
