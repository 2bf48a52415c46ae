"""Data passes per EM iteration and peak memory, before and after the
component protocol.

**Passes** (``--part passes``).
A *pass* reads every row of the data once. The EM core before the component
protocol (commit 9bac52f) made one pass per E-step, one per evaluation of a
gate level's objective (the start of a Newton M-step and every step-halving
candidate), one per Newton direction, and two per M-step of the Gaussian
experts (the weighted Gram matrix and right-hand side, then the residuals
for the variances). It is counted by wrapping those functions of a checkout
of that commit, given with ``--before`` (run in a subprocess from that
directory, which puts it first on ``sys.path``). The current core counts its own passes
(``ConvergenceMonitor.passes``).

Each setting is a whole regression fit from the k-means start
(``random_state=0``, ``tol=1e-4``) on ``make_moe`` data (5 features); the
passes of the first M-step are left out, and the rest are divided by the EM
iterations.

**Memory** (``--part memory``). A process makes the data (``make_moe``,
float64), resets its peak resident memory (``VmHWM``, through
``/proc/self/clear_refs``) and fits the data in memory for ``max_iter=5``
iterations, at the size the issue measured before (n = 2e6, 10 features, 16
leaves: ``n_experts=4, depth=2``), with each core: the resident memory
before the fit, the peak during it, and the size of the data.

    git worktree add /tmp/before 9bac52f
    OPENBLAS_NUM_THREADS=1 python benchmarks/before_after.py --before /tmp/before
"""

import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

from _common import print_machine

SETTINGS = [(4, 1), (2, 2), (4, 2), (2, 4)]  # (n_experts, depth)

BEFORE = r"""
import json, sys, warnings
import numpy as np
import hmexperts._em as em, hmexperts._solvers as solvers, hmexperts._experts as experts
from hmexperts import MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe

counts = {"e_step": 0, "gate": 0, "experts": 0}
first = {}

def counted(module, name, key, passes=1):
    function = getattr(module, name)
    def wrapper(*args, **kwargs):
        if key == "e_step" and not first:
            first.update(counts)  # the passes of the first M-step
        counts[key] += passes
        return function(*args, **kwargs)
    setattr(module, name, wrapper)

counted(em, "e_step", "e_step")
counted(solvers, "softmax_objective", "gate")
counted(solvers, "_newton_direction", "gate")
# the Gram matrix and right-hand side, then the residuals for the variances
counted(experts.LinearGaussianExperts, "fit", "experts", 2)
n_experts, depth, n = json.loads(sys.argv[1])
X, y, _ = make_moe(n, 5, n_experts=n_experts, depth=depth, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model = MixtureOfExpertsRegressor(
        n_experts, depth=depth, random_state=0, tol=1e-4
    ).fit(X, y)
n_iter = model.n_iter_
after = {k: counts[k] - first[k] for k in counts}
after["e_step"] -= 1  # the E-step after the first M-step
print(json.dumps({"n_iter": n_iter, **{k: v / n_iter for k, v in after.items()},
                  "lower_bound": model.lower_bound_}))
"""


MEMORY = r"""
import gc, json, sys, warnings
from hmexperts import MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe


def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024


n, n_features, n_experts, depth = json.loads(sys.argv[1])
X, y, _ = make_moe(n, n_features, n_experts=n_experts, depth=depth, random_state=0)
gc.collect()
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # resets VmHWM, the peak, to the current resident size
before = status("VmRSS")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    MixtureOfExpertsRegressor(
        n_experts, depth=depth, random_state=0, max_iter=5
    ).fit(X, y)
print(json.dumps({"before": before, "peak": status("VmHWM"),
                  "data": X.nbytes + y.nbytes}))
"""

ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PATH": ""}


def in_checkout(code, argument, checkout):
    """Run ``code`` with the ``hmexperts`` of ``checkout``; its last line, as
    JSON."""
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(argument)],
        capture_output=True,
        text=True,
        check=True,
        cwd=checkout,
        env=ENV,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def after(n_experts, depth, n):
    import hmexperts._base as base
    from hmexperts import MixtureOfExpertsRegressor
    from hmexperts.datasets import make_moe

    monitors = []
    run_em = base.run_em

    def kept(*args, **kwargs):
        monitors.append(run_em(*args, **kwargs))
        return monitors[-1]

    base.run_em = kept
    try:
        X, y, _ = make_moe(n, 5, n_experts=n_experts, depth=depth, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = MixtureOfExpertsRegressor(
                n_experts, depth=depth, random_state=0, tol=1e-4
            ).fit(X, y)
    finally:
        base.run_em = run_em
    monitor = monitors[-1]
    total = (len(monitor.passes) - monitor.initial_passes - 1) / monitor.n_iter
    return {"n_iter": monitor.n_iter, "total": total, "lower_bound": model.lower_bound_}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="checkout of commit 9bac52f")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument(
        "--part", nargs="+", default=["passes", "memory"], choices=["passes", "memory"]
    )
    args = parser.parse_args()
    print_machine()
    if "passes" in args.part:
        passes(args)
    if "memory" in args.part:
        memory(args)


def memory(args):
    setting = [2_000_000, 10, 4, 2]
    here = str(Path(__file__).resolve().parent.parent)
    print(
        f"\npeak memory of an in-memory fit, n={setting[0]}, {setting[1]} "
        f"features, {setting[2] ** setting[3]} leaves, max_iter=5 (MiB)"
    )
    for name, checkout in (("before", args.before), ("after", here)):
        result = in_checkout(MEMORY, setting, checkout)
        before, peak = result["before"] / 2**20, result["peak"] / 2**20
        print(
            f"{name:>8}: before the fit {before:6.0f}   peak {peak:6.0f}   "
            f"fit's own {peak - before:6.0f}   data (X and y) "
            f"{result['data'] / 2**20:5.0f}",
            flush=True,
        )


def passes(args):
    print(f"passes per EM iteration, n={args.n}, 5 features, regression")
    print(
        f"{'experts':>8}{'depth':>6}{'leaves':>7} | {'iters':>6}{'E':>6}{'gates':>7}"
        f"{'experts':>8}{'total':>7}{'objective':>11} | {'iters':>6}{'total':>7}"
        f"{'objective':>11}"
    )
    print(f"{'':21} | {'before':^45} | {'after':^24}")
    for n_experts, depth in SETTINGS:
        old = in_checkout(BEFORE, [n_experts, depth, args.n], args.before)
        old_total = old["e_step"] + old["gate"] + old["experts"]
        new = after(n_experts, depth, args.n)
        print(
            f"{n_experts:>8}{depth:>6}{n_experts**depth:>7} | {old['n_iter']:>6}"
            f"{old['e_step']:>6.2f}{old['gate']:>7.2f}{old['experts']:>8.2f}"
            f"{old_total:>7.2f}{old['lower_bound']:>11.5f} | {new['n_iter']:>6}"
            f"{new['total']:>7.2f}{new['lower_bound']:>11.5f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
