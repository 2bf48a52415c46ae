"""The largest decrease of EM's objective, float64 and float32, in long runs.

EM with the built-in experts cannot decrease its objective in exact
arithmetic; ``hmexperts._em._DROP_RTOL`` (1e-9 of the objective's size) is
the decrease it takes for round-off: a Newton step of a gate that lowers the
objective by more is shrunk, and a decrease that survives the shrinks stops
EM with a warning. This study measures what round-off actually gives: the
random problems of ``tests/test_em.py`` (every other seed of ``--seeds``),
each fit for ``--max-iter`` iterations with ``tol=0``, once in float64 and
once in float32 with a collinear column and log-normal sample weights (sigma
3 to 5). It prints the largest relative decrease seen for each dtype, the
problem it came from, and how many fits the drop watch stopped.

Run from the repository root::

    python benchmarks/study_monotonicity.py --seeds 200 --max-iter 100
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from _common import print_machine

from hmexperts import _em

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_em import _float32_problem, _random_problem  # noqa: E402


def largest_relative_decrease(values):
    values = np.asarray(values)
    return float(
        np.max((values[:-1] - values[1:]) / np.maximum(1, np.abs(values[:-1])))
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--max-iter", type=int, default=100)
    args = parser.parse_args()
    print_machine()
    print(f"drop tolerance: {_em.drop_tolerance():.0e} of the objective's size")
    worst = {"float64": (-np.inf, None), "float32": (-np.inf, None)}
    stopped = dict.fromkeys(worst, 0)
    for seed in range(0, args.seeds, 2):
        for dtype in worst:
            if dtype == "float64":
                model, X, y = _random_problem(seed)
                weight = None
            else:
                model, X, y, weight = _float32_problem(seed)
            model.set_params(max_iter=args.max_iter, tol=0)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model.fit(X, y, sample_weight=weight)
            stopped[dtype] += any("decreased" in str(w.message) for w in caught)
            drop = largest_relative_decrease(model.lower_bounds_)
            if drop > worst[dtype][0]:
                worst[dtype] = (drop, seed)
    n_problems = len(range(0, args.seeds, 2))
    print(f"{n_problems} problems, {args.max_iter} iterations each, tol=0")
    for dtype, (drop, seed) in worst.items():
        print(
            f"{dtype}: largest relative decrease {drop:.2e} (seed {seed}); "
            f"{stopped[dtype]} fit(s) stopped by the drop watch"
        )


if __name__ == "__main__":
    main()
