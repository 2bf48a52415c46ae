"""The largest decrease of EM's objective, float64 and float32, in long runs.

EM with the built-in experts cannot decrease its objective in exact
arithmetic; ``hmexperts._em._DROP_RTOL`` (1e-9 of the objective's size) is
the decrease it takes for round-off: a Newton step of a gate or a GLM expert
that lowers the objective by more is shrunk, and a decrease that survives
the shrinks stops EM with a warning. This study measures what round-off
actually gives, for every expert family:

- ``gaussian``: the random problems of ``tests/test_em.py`` (every other
  seed of ``--seeds``: its regression problems, linear-Gaussian experts);
- ``linear``, ``poisson``, ``gamma``, ``binomial``, ``student_t``: the
  random problems of ``tests/test_families.py`` (``_random_family_problem``,
  the same seeds): data drawn from a random mixture of the family, depth 1
  or 2, the gates and experts reading all columns, random subsets, or one
  column and none (constant experts).

Each is fit for ``--max-iter`` iterations with ``tol=0``, once in float64
and once in float32 with a collinear column and log-normal sample weights
(sigma 3 to 5; binomial experts keep their trials as weights). It prints
the largest relative decrease seen for each family and dtype, the problem it
came from, and how many fits the drop watch stopped.

Run from the repository root::

    python benchmarks/study_monotonicity.py --seeds 200 --max-iter 100
    python benchmarks/study_monotonicity.py --families poisson gamma
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from _common import print_machine

from hmexperts import _em

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_em import _float32_problem, _random_problem  # noqa: E402
from test_families import FAMILIES, _random_family_problem  # noqa: E402

PROBLEMS = ["gaussian", *FAMILIES]


def largest_relative_decrease(values):
    values = np.asarray(values)
    return float(
        np.max((values[:-1] - values[1:]) / np.maximum(1, np.abs(values[:-1])))
    )


def family_problem(seed, family, dtype):
    """``_random_family_problem`` in float64, or in float32 with a
    collinear column (the sum of the first and last) and log-normal weights
    of sigma 3 to 5 (binomial experts: their trials)."""
    model, X, y, weight = _random_family_problem(seed, family)
    if dtype == "float64":
        return model, X, y, weight
    rng = np.random.RandomState(seed + 1000)
    X = np.column_stack([X, X[:, 0] + X[:, -1]]).astype(np.float32)
    if weight is None:
        weight = np.exp(rng.uniform(3, 5) * rng.normal(size=len(X)))
    return model, X, y.astype(np.float32), weight


def problem(seed, kind, dtype):
    if kind != "gaussian":
        return family_problem(seed, kind, dtype)
    if dtype == "float64":
        model, X, y = _random_problem(seed)
        return model, X, y, None
    return _float32_problem(seed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument(
        "--families",
        nargs="+",
        choices=PROBLEMS,
        default=PROBLEMS,
        help="problem families to sweep (default: all)",
    )
    args = parser.parse_args()
    print_machine()
    print(f"drop tolerance: {_em.drop_tolerance():.0e} of the objective's size")
    seeds = range(0, args.seeds, 2)
    print(f"{len(seeds)} problems per family, {args.max_iter} iterations each, tol=0")
    for kind in args.families:
        start = time.perf_counter()
        worst = {"float64": (-np.inf, None), "float32": (-np.inf, None)}
        stopped = dict.fromkeys(worst, 0)
        for seed in seeds:
            for dtype in worst:
                model, X, y, weight = problem(seed, kind, dtype)
                model.set_params(max_iter=args.max_iter, tol=0)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    model.fit(X, y, sample_weight=weight)
                stopped[dtype] += any("decreased" in str(w.message) for w in caught)
                drop = largest_relative_decrease(model.lower_bounds_)
                if drop > worst[dtype][0]:
                    worst[dtype] = (drop, seed)
        seconds = time.perf_counter() - start
        for dtype, (drop, seed) in worst.items():
            print(
                f"{kind:>9} {dtype}: largest relative decrease {drop:.2e} (seed "
                f"{seed}); {stopped[dtype]} fit(s) stopped by the drop watch"
            )
        print(f"{kind:>9}: {seconds:.0f} s")


if __name__ == "__main__":
    main()
