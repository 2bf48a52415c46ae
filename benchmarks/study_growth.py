"""Growing a tree (``tree="grow"``) on data from known trees.

Draws ``--draws`` data sets from each of two known trees of linear-Gaussian
experts on ``--features`` inputs, ``--n`` rows to fit and as many held out:

- ``balanced``: a balanced binary tree of depth 3 (8 leaves);
- ``unbalanced``: one branch of depth 3, the other a single expert
  (``[[[0, 1], [2, 3]], 4]``, 5 leaves).

drawn by ``make_moe(tree=...)`` (gates of norm ``--gate-scale``, 4 by
default, along random directions,
experts' coefficients N(0, 1), noise standard deviation 0.1). Fit with
``n_init=1``: the grown tree (``tree="grow"``, ``max_leaves`` the truth's
plus 2; with ``--grow-n-init``, that many trees grown and the best kept)
and the balanced tree of the truth's number of leaves (a depth-3 binary
tree; a flat mixture of 5), and printed per draw: the held-out mean
log-likelihood of each relative to the true model's (``(true - model) /
|true|``, in %), the same gap of the grown tree on the rows it was fit to
(negative where it fits them better than the truth does), the grown
tree's leaves and shape, and the fit times;
and, as the reference of what any fit reaches on the draw, the truth's
own shape fit from ``--reference-starts`` starts (``tree=<the truth's
shape>, n_init=...``; 0 leaves it out), timed too: for the balanced
truth it is the balanced depth-3 tree from so many starts, what a user
who knows the depth runs to get near the best tree of that shape.
Summary: draws within 0.5% of the truth, grown trees with at most the
truth's leaves plus one, and the median time ratios grown / balanced and
grown / true shape (with ``--repeats``, each fit timed as the fastest of
so many).
``--split-rows`` sets the rows a candidate split's trial fit reads at most
(``hmexperts._grow._SPLIT_ROWS``; a large number: all of the leaf's).

Run from the repository root, one BLAS thread::

    OPENBLAS_NUM_THREADS=1 python benchmarks/study_growth.py
"""

import argparse
import math
import statistics
import time
import warnings

from _common import print_machine
from sklearn.exceptions import ConvergenceWarning

from hmexperts import MixtureOfExpertsRegressor, _grow
from hmexperts._tree import Tree
from hmexperts.datasets import make_moe

TRUTHS = {
    "balanced": [[[0, 1], [2, 3]], [[4, 5], [6, 7]]],
    "unbalanced": [[[0, 1], [2, 3]], 4],
}


def fit(model, X, y, repeats=1):
    """``model`` fit to ``X, y``, and the fastest of ``repeats`` fits' times
    (every fit is the same: the random state is fixed)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        times.append(time.perf_counter() - start)
    return model, min(times)


def truth_draws(shape, args):
    """The first ``args.draws`` data sets, by random state, whose truth gives
    every leaf a mean gate probability of at least ``args.min_leaf_mass``
    (on the draw's own inputs): the state, ``X``, ``y``, the true model and
    its smallest leaf's share of the rows, in %."""
    found, state = 0, 0
    while found < args.draws:
        X, y, truth = make_moe(
            2 * args.n,
            args.features,
            tree=shape,
            gate_scale=args.gate_scale,
            random_state=state,
        )
        smallest = truth.model.predict_gates(X).mean(axis=0).min()
        if smallest >= args.min_leaf_mass:
            found += 1
            yield state, X, y, truth.model, 100 * smallest
        state += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--features", type=int, default=2)
    parser.add_argument("--criterion", default="bic")
    parser.add_argument("--truths", nargs="*", default=list(TRUTHS))
    parser.add_argument("--reference-starts", type=int, default=10)
    parser.add_argument(
        "--gate-scale", type=float, default=4.0, help="make_moe's gate_scale"
    )
    parser.add_argument(
        "--grow-n-init", type=int, default=1, help="trees grown, the best kept"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="time every fit as the fastest of so many",
    )
    parser.add_argument(
        "--min-leaf-mass",
        type=float,
        default=0.0,
        help="keep only truths whose every leaf has this mean gate probability",
    )
    parser.add_argument(
        "--split-rows",
        type=int,
        default=None,
        help="rows a trial split reads at most (hmexperts._grow._SPLIT_ROWS)",
    )
    args = parser.parse_args()
    if args.split_rows is not None:
        _grow._SPLIT_ROWS = args.split_rows
    print_machine()
    for name in args.truths:
        shape = TRUTHS[name]
        n_true = Tree.from_nested(shape).n_leaves
        print(
            f"truth {name}: {shape}, {n_true} leaves; n={args.n} to fit and to "
            f"score; {args.features} features; gate scale {args.gate_scale:g}; "
            f"smallest leaf's mass at least {args.min_leaf_mass:g}"
        )
        print(
            f"{'draw':>4s} {'grown gap %':>11s} {'train gap %':>11s} {'leaves':>6s} "
            f"{'balanced gap %':>14s} "
            f"{'true shape gap %':>16s} {'grown s':>7s} {'balanced s':>10s} "
            f"{'true shape s':>12s} "
            f"{'min leaf %':>10s}  grown tree"
        )
        within, small, ratios, gaps_b, gaps_t, ref_ratios = 0, 0, [], [], [], []
        for draw, X, y, truth, smallest in truth_draws(shape, args):
            X_fit, y_fit, X_test, y_test = (
                X[: args.n],
                y[: args.n],
                X[args.n :],
                y[args.n :],
            )
            true_ll = truth.log_likelihood(X_test, y_test).mean()
            grown, t_grown = fit(
                MixtureOfExpertsRegressor(
                    tree="grow",
                    n_init=args.grow_n_init,
                    max_leaves=n_true + 2,
                    split_criterion=args.criterion,
                    random_state=draw,
                ),
                X_fit,
                y_fit,
                args.repeats,
            )
            if name == "balanced":
                balanced = MixtureOfExpertsRegressor(2, depth=3, random_state=draw)
            else:
                balanced = MixtureOfExpertsRegressor(n_true, random_state=draw)
            balanced, t_bal = fit(balanced, X_fit, y_fit, args.repeats)
            gap = (
                100
                * (true_ll - grown.log_likelihood(X_test, y_test).mean())
                / abs(true_ll)
            )
            true_train = truth.log_likelihood(X_fit, y_fit).mean()
            train_gap = (
                100
                * (true_train - grown.log_likelihood(X_fit, y_fit).mean())
                / abs(true_train)
            )
            gap_b = (
                100
                * (true_ll - balanced.log_likelihood(X_test, y_test).mean())
                / abs(true_ll)
            )
            gap_t, t_ref = math.nan, math.nan
            if args.reference_starts:
                reference, t_ref = fit(
                    MixtureOfExpertsRegressor(
                        tree=shape, n_init=args.reference_starts, random_state=draw
                    ),
                    X_fit,
                    y_fit,
                    args.repeats,
                )
                gap_t = (
                    100
                    * (true_ll - reference.log_likelihood(X_test, y_test).mean())
                    / abs(true_ll)
                )
            gaps_t.append(gap_t)
            within += gap <= 0.5
            small += grown.n_leaves_ <= n_true + 1
            ratios.append(t_grown / t_bal)
            ref_ratios.append(t_grown / t_ref)
            gaps_b.append(gap_b)
            print(
                f"{draw:4d} {gap:11.2f} {train_gap:11.3f} {grown.n_leaves_:6d} "
                f"{gap_b:14.2f} "
                f"{gap_t:16.2f} {t_grown:7.2f} "
                f"{t_bal:10.2f} {t_ref:12.2f} {smallest:10.1f}  "
                f"{grown.tree_.to_nested()}",
                flush=True,
            )
        reference = (
            f"true shape ({args.reference_starts} starts) within 0.5%: "
            f"{sum(g <= 0.5 for g in gaps_t)}/{args.draws}; time grown / true "
            f"shape: median {statistics.median(ref_ratios):.2f}; "
            if args.reference_starts
            else ""
        )
        print(
            f"grown within 0.5%: {within}/{args.draws}; at most {n_true + 1} leaves: "
            f"{small}/{args.draws}; balanced within 0.5%: "
            f"{sum(g <= 0.5 for g in gaps_b)}/{args.draws}; {reference}"
            f"time grown / balanced: median {statistics.median(ratios):.1f}\n"
        )


if __name__ == "__main__":
    main()
