"""Growing a tree of gates from one expert (``tree="grow"``).

The constructive HME of Waterhouse & Robinson (1996) and Fritsch, Finke &
Waibel (1997): start from a single expert; in every round, try splitting
each of the ``n_split_candidates`` leaves that explain their data worst into
a gate of ``max(n_experts, 2)`` new leaves, keep the split whose model
scores best, and stop when no split improves the score or the tree has
``max_leaves`` leaves.

- **Candidates.** The leaves of the largest shortfall, ``m_j L - sum_i
  w_i r_ij log p_j(y_i | x_i)`` (``m_j`` the leaf's mass, ``L`` the mean
  expert log-likelihood of all rows): the leaves whose experts fit their
  rows worse than the tree fits its rows on average, weighted by their
  mass; where the fit is worst, not merely where the mass is.
- **A split.** The leaf's rows, weighted by their responsibilities, are
  fit by a local mixture of the new leaves with the rest of the tree held
  fixed: its start cuts them by a weighted k-means of their standardised
  joint ``[x, y]`` (the start ``fit`` uses for the whole data, so the
  children divide the parent's data along the direction in which its joint
  varies most, the residuals included), then ``_SPLIT_ITER`` EM iterations.
  Only the leaf's rows are read, and of a leaf of more than
  ``_SPLIT_ROWS`` rows a sample of at most that many drawn by their
  weights, so a candidate costs a fraction of a pass per iteration. A
  leaf tried in an earlier round and not split continues that round's
  local mixture on its rows as they are weighted now, which
  takes a few iterations where a fresh start takes 5 to 20.
- **Score.** The split's gain is the change of the log-likelihood of the
  leaf's rows, weighted by their responsibilities, when the local mixture
  replaces the leaf's expert: on the training rows, less ``log(n) / 2`` per
  new free parameter (``"bic"``), or on ``validation_fraction`` of the rows
  held out from the fit (``"validation"``). The split of largest positive
  gain is grafted into the tree (the local gate becomes the leaf's gate, its
  experts the new leaves) and the whole tree is refit by EM from there
  before the next round.
- **Restructuring.** After every split's EM, a binary tree's gates around
  the new gate (the subtree of its highest ancestor over at most
  ``_PARTITION_LEAVES`` leaves) are rebuilt over the same experts: from
  the top, every gate parts its leaves into the two groups that one
  linear gate separates best, judged by a logistic fit to the rows'
  responsibilities (every partition tried). If that shape differs from
  the grown one, the tree is refit by EM from those gates and kept when
  it scores better: a split was chosen when fewer experts existed, and a
  region of four experts first split one from three may be one that a
  gate parts two from two. After the last round, every gate over four
  leaves in a chain (one against three) is tried as two pairs, which the
  search tells from a chain poorly.
- **A second cut before stopping.** When no candidate's split pays, every
  candidate is tried once more from a cut of its rows by how well its
  expert explains them (a weighted k-means of their log-likelihoods under
  it): another expert's small region inside a leaf is where the leaf's
  expert fits worst, which the spread of the joint ``[x, y]`` can hide.
  Growth stops when no gain is positive then either.
- **Pruning.** After the last round's EM, every gate over leaves only is
  tried merged back into one expert (fit to its rows, weighted by their
  responsibilities); the merge that raises the whole tree's score most is
  kept and the tree refit, until no merge raises it: a split paid when it
  was made, but later splits can take over its work.
- **Restarts.** ``n_init`` trees grow from the same single expert, with
  their own draws of the k-means starts, and the best scored is kept. With
  ``"validation"``, the kept tree is then refit on all rows.
"""

import copy
import functools
import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.special import xlogy
from sklearn.utils import check_random_state

from ._array_api import device, logsumexp, to_numpy, wide
from ._config import thread_limit
from ._em import e_step, statistics
from ._gates import GateTree
from ._init import GivenStart, _kmeans, joint_columns
from ._scaling import sample_rows
from ._solvers import _outer_rows, symmetric
from ._tree import Tree

# EM iterations of a candidate split's trial fit, before it is scored.
_SPLIT_ITER = 20
# Rows a candidate split's trial mixture reads at most: a sample of the
# leaf's rows by their weights (``_resampled``); its gain is scored on all
# of them. Growth at 100,000 rows 1.02-1.9x faster (three draws), at
# 16,000 1.03-1.09x, and trees as close to the truth as with all rows
# (benchmarks/study_growth.py, --split-rows); 2,048 rows left the
# soft-gated balanced truth of 4,000 rows further from the truth on 6 draws
# of 30 and closer on 2.
_SPLIT_ROWS = 4096
# Restructuring rebuilds the subtree of the new gate's highest ancestor over
# at most so many leaves: every partition of its leaves into two groups is
# tried at its root (2 ** (leaves - 1) - 1 partitions).
_PARTITION_LEAVES = 8
# Rows read by the partition search of one gate, at most (a strided subset
# of the rows that reach it): enough to rank partitions, which differ by
# whole regions of the input space.
_PARTITION_ROWS = 2048
# Newton steps of the search's trial gates, at most, and the gain per unit
# of the rows' weight below which they stop.
_PARTITION_STEPS = 30
_PARTITION_TOL = 1e-6


@dataclass
class GrowthStep:
    """One step of a grown tree's history (``growth_history_``).

    A fitted estimator with ``tree="grow"`` records one step for the
    starting single expert, one for every round of growth (the split kept,
    or none when no split paid), and one for every change after the last
    round (a chain of four leaves rebuilt as two pairs, a merge of
    pruning). The estimator makes them; they are read, not built.

    Parameters
    ----------
    n_leaves : int
        Leaves of the tree kept after the round.
    split : int or None
        The leaf that was split (its number in the tree before the round),
        None for the starting single expert, when no split paid, and for
        the steps after the last round.
    score : float
        The kept tree's score (higher is better).
    candidates : dict
        The score of every leaf tried in the round.
    merged : tuple of int or None
        Pruning, after the growth's last EM: the leaves ``(first, last)``
        (the range ``first`` to ``last - 1``, numbered in the tree before
        the round) of the gate merged back into one expert; None in a
        round of growth.
    restructured : bool
        True when, after the round's split, the gates were rebuilt over
        the same experts in another shape (``split`` is then the leaf
        split before it), because that shape scored better; after the last
        round (``split`` None), when a gate over four leaves in a chain
        was rebuilt as two pairs.

    See Also
    --------
    MixtureOfExpertsRegressor : ``tree="grow"`` and ``growth_history_``.

    Examples
    --------
    >>> import numpy as np
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-3, 3, size=(400, 1))
    >>> y = np.abs(X[:, 0]) + 0.1 * rng.normal(size=400)
    >>> grown = MixtureOfExpertsRegressor(tree="grow", random_state=0).fit(X, y)
    >>> start, first_split, stop = grown.growth_history_
    >>> first_split.n_leaves, first_split.split, first_split.restructured
    (2, 0, False)
    >>> bool(first_split.score > start.score), stop.split
    (True, None)
    """

    n_leaves: int
    split: int | None
    score: float
    candidates: dict
    merged: tuple | None = None
    restructured: bool = False


def _reporter(estimator):
    """A function that prints the last step of a growth history (with
    ``verbose``): what it did, the leaves, the score, the leaves tried and
    their splits' gains as their local fits estimated them, and the
    seconds since the last step it printed."""
    clock = [time.perf_counter()]
    name = {"bic": "BIC score", "validation": "held-out log-likelihood"}

    def report(history):
        if not estimator.verbose:
            return
        now = time.perf_counter()
        step = history[-1]
        if len(history) == 1:
            what = "one expert"
        elif step.merged is not None:
            first, last = step.merged
            what = f"leaves {first} to {last - 1} merged into one expert"
        elif step.split is not None:
            what = f"leaf {step.split} split"
            if step.restructured:
                what += ", its gates rebuilt"
        elif step.restructured:
            what = "a chain of four leaves rebuilt as two pairs"
        else:
            what = "no split raises the score: growth stops"
        leaves = "leaf" if step.n_leaves == 1 else "leaves"
        line = (
            f"  step {len(history) - 1}: {what}; {step.n_leaves} {leaves}, "
            f"{name[estimator.split_criterion]} {step.score:.6f}"
        )
        print(f"{line}; {now - clock[0]:.2f} s", flush=True)
        if step.candidates:
            before = history[-2].score
            gains = ", ".join(
                f"{leaf} ({value - before:+.3f})"
                for leaf, value in step.candidates.items()
            )
            print(f"    leaves tried (estimated gain): {gains}", flush=True)
        clock[0] = now

    return report


def _score(estimator, data, gates, experts, xp, weight_factor, criterion, stats=None):
    """The criterion of a fitted model on ``data`` (higher is better), from
    ``stats``, the statistics of a pass over ``data`` at its parameters, if
    given, or from a pass of its own."""
    if stats is None:
        with thread_limit():
            stats = statistics(data, gates, experts, xp)
    log_likelihood = float(stats["log_likelihood"]) / weight_factor
    if criterion == "validation":
        return log_likelihood
    n_params = estimator._n_free_params(gates.n_design, gates.n_leaves)
    total = float(stats["weight"]) / weight_factor
    return log_likelihood - 0.5 * n_params * math.log(total)


def _responsibilities(data, gates, experts, xp):
    """On the host, for every row of ``data``: every leaf's posterior and its
    expert's log-likelihood, (n_leaves, n_rows) each; and every leaf's
    shortfall, how much worse its expert fits its rows than the tree's
    experts fit theirs on average: ``m_j L - sum_i w_i r_ij log p_j(y_i |
    x_i)``, with ``m_j = sum_i w_i r_ij`` the leaf's mass and ``L`` the
    mean of the expert log-likelihood over all rows and leaves. Unlike the
    expected negative log-likelihood itself, it does not change with the
    unit of ``y`` (which shifts every log-likelihood by one constant): a
    large leaf whose expert fits well has a negative shortfall, one that
    fits two experts' rows badly a large positive one."""
    resp, log_expert = [], []
    mass, fit = np.zeros(gates.n_leaves), np.zeros(gates.n_leaves)
    with thread_limit():
        for chunk in data.chunks():
            log_j = wide(experts.log_likelihood(chunk.X, chunk.y, xp), xp)
            log_joint = gates.log_prior(chunk.X, xp) + log_j
            r = xp.exp(log_joint - logsumexp(log_joint, 0, xp)[None, :])
            weighted = r * chunk.weight[None, :]
            mass += to_numpy(xp.sum(weighted, axis=1), xp)
            fit += to_numpy(xp.sum(weighted * log_j, axis=1), xp)
            resp.append(to_numpy(r, xp))
            log_expert.append(to_numpy(log_j, xp))
    return (
        np.concatenate(resp, axis=1),
        np.concatenate(log_expert, axis=1),
        mass * (fit.sum() / mass.sum()) - fit,
    )


def _local_start(estimator, data, weight, n_children, xp, random_state):
    """Responsibilities (n_rows, n_children) cutting ``data``'s rows (with
    the weights ``weight``) by a weighted k-means of their standardised
    joint ``[x, y]``, as ``fit``'s start cuts the whole data."""
    n_classes = None if estimator._is_regression else len(estimator.classes_)
    transform = estimator._start_transform(data.y, data.sample_weight, xp)
    joint = joint_columns(data.X, data.y, n_classes, xp, transform)
    _, centers = _kmeans(joint, weight, n_children, random_state)
    nearest = np.argmin(
        (centers**2).sum(axis=1)[None, :] - 2 * joint @ centers.T, axis=1
    )
    start = (nearest[:, None] == np.arange(n_children)[None, :]).astype(float)
    # an empty child would stall the first M-step: every row keeps a trace
    return start + 1e-6


def _mixture_log_likelihood(data, gates, experts, xp):
    """Every row's log-likelihood under a fitted (local) mixture (host)."""
    with thread_limit():
        parts = [
            to_numpy(e_step(chunk, gates, experts, xp)[1], xp)
            for chunk in data.chunks()
        ]
    return np.concatenate(parts)


def _split_gain(local, data, expert_ll, weight, xp):
    """The change of the weighted log-likelihood of ``data``'s rows (weights
    ``weight``, a leaf's) when the local mixture ``local`` replaces the
    leaf's expert, whose log-likelihoods are ``expert_ll``."""
    change = _mixture_log_likelihood(data, *local, xp) - expert_ll
    return float(weight @ change)


def _split_leaf(
    estimator,
    train,
    leaf_resp,
    n_children,
    scaling,
    start_sample,
    xp,
    weight_factor,
    random_state,
    warm=None,
    fit_values=None,
):
    """A mixture of ``n_children`` experts fit by EM to the rows of a leaf
    weighted by their responsibilities ``leaf_resp`` (n_rows,), the other
    leaves held fixed: the gate and experts that would replace the leaf
    (one expert, when pruning merges the leaves of a gate).

    It starts from the k-means cut of the rows (``_local_start``); given
    ``fit_values`` (every row's log-likelihood under the leaf's expert),
    from their weighted k-means instead: the rows the expert fits worst
    apart; or, given ``warm`` (the leaf's local mixture of an earlier
    round), EM continues from a copy of that mixture on the rows as they
    are weighted now: the leaf's weights move little between rounds, so it
    stops after a few iterations instead of starting over.

    A mixture reads at most ``_SPLIT_ROWS`` of the leaf's rows, drawn by
    their weights (``_resampled``); one expert reads them all (one
    M-step)."""
    weight = leaf_resp * to_numpy(train.sample_weight, xp)
    rows = np.flatnonzero(weight > 1e-4 * weight.max())
    if n_children > 1 and len(rows) > _SPLIT_ROWS:
        rows, weight = _resampled(rows, weight, _SPLIT_ROWS)
    local = train.subset(rows, weight=weight[rows])
    if warm is not None:
        gates, experts = copy.deepcopy(warm)
        estimator._continue_em(
            local, gates, experts, scaling, xp, max_iter=_SPLIT_ITER, quiet=True
        )
        return gates, experts
    if n_children == 1:  # one expert: every row is its own
        start = np.ones((len(rows), 1))
    elif fit_values is not None:
        with thread_limit():
            labels, _ = _kmeans(
                fit_values[rows, None], weight[rows], n_children, random_state
            )
        start = (labels[:, None] == np.arange(n_children)[None, :]) + 1e-6
    else:
        with thread_limit():
            start = _local_start(
                estimator, local, weight[rows], n_children, xp, random_state
            )
    local.init = xp.asarray(start, device=device(local.X))
    gates, experts, _ = estimator._run_restarts(
        local,
        scaling,
        start_sample,
        xp,
        False,
        weight_factor,
        Tree.balanced(n_children, 1),
        given=GivenStart(),
        max_iter=_SPLIT_ITER,
        quiet=True,
    )
    return gates, experts


def _resampled(rows, weight, size):
    """At most ``size`` of ``rows`` standing for all of them, and their new
    weights (an array like ``weight``, zero elsewhere): a systematic sample
    by weight, deterministic. ``size`` points evenly spaced through the
    rows' cumulative weight, ``(k + 1/2) M / size`` for the total ``M``,
    each take the row whose share of the weight holds it; a row weighs
    ``M / size`` per point it took (the systematic resampling of particle
    filters). Every row's new weight is within ``M / size`` of its own, so
    every row heavier than that is kept, and the total is ``M``.

    Under soft gates most of a leaf's rows weigh little; a strided subset
    spends most of its rows on them. On ``benchmarks/study_growth.py``'s
    sharp-gated data (150 draws, 16,000 rows), with at most 4,096 rows,
    this sample left 7 grown trees closer to the truth than all rows did
    and 3 further; a strided subset 9 and 7."""
    cumulative = np.cumsum(weight[rows])
    total = cumulative[-1]
    points = (np.arange(size) + 0.5) * (total / size)
    taken = np.minimum(np.searchsorted(cumulative, points), len(rows) - 1)
    kept, counts = np.unique(taken, return_counts=True)
    new = np.zeros_like(weight)
    new[rows[kept]] = counts * (total / size)
    return rows[kept], new


def _grafted(estimator, tree, gates, experts, leaf, local, scaling, xp, random_state):
    """The components of ``tree`` with ``leaf`` replaced by the local
    mixture ``local`` (its gate and experts), all else as they were."""
    new_tree, _ = tree.split(leaf, local[0].n_leaves)  # node ids kept
    rows = _gate_rows(tree, gates)
    rows[tree.leaves[leaf]] = local[0].coefs[0]
    state = _spliced(experts.get_state(), local[1].get_state(), leaf, 1, xp)
    return (
        new_tree,
        *_components(
            estimator, new_tree, gates, experts, rows, state, scaling, xp, random_state
        ),
    )


def _merged(estimator, tree, gates, experts, node, single, scaling, xp, random_state):
    """The components of ``tree`` with gate ``node``, over leaves only,
    and its leaves replaced by the one expert ``single``, all else as they
    were."""
    new_tree, new_id = tree.merge(node)
    rows = {new_id[v]: row for v, row in _gate_rows(tree, gates).items() if v != node}
    first, last = tree.ranges[node]
    state = _spliced(experts.get_state(), single.get_state(), first, last - first, xp)
    return (
        new_tree,
        *_components(
            estimator, new_tree, gates, experts, rows, state, scaling, xp, random_state
        ),
    )


def _gate_rows(tree, gates):
    """Every gate's coefficients, (1, n_params, n_children), by its node id
    in ``tree``."""
    return {
        v: gates.coefs[b][i : i + 1, ...]
        for b, batch in enumerate(tree.batches)
        for i, v in enumerate(batch.nodes)
    }


def _spliced(old, new, first, count, xp):
    """The experts' leaf-first state ``old`` with its ``count`` leaves from
    ``first`` on replaced by the leaves of ``new``."""

    def splice(a, b):
        return xp.concat([a[:first, ...], b, a[first + count :, ...]], axis=0)

    if isinstance(old, tuple):
        return tuple(splice(a, b) for a, b in zip(old, new, strict=True))
    return splice(old, new)


def _components(
    estimator, tree, gates, experts, rows, state, scaling, xp, random_state
):
    """Gates and experts of ``tree``, like ``gates`` and ``experts``: gate
    ``v`` with the coefficients ``rows[v]``, the experts with the
    leaf-first ``state``."""
    coefs = []
    for batch in tree.batches:
        kept = [rows[v] for v in batch.nodes]
        coefs.append(kept[0] if len(kept) == 1 else xp.concat(kept, axis=0))
    new_gates = GateTree(tree, gates.alpha).select(gates.columns, gates.n_design)
    new_gates.coefs = coefs
    new_experts = estimator._make_experts(
        tree.n_leaves, scaling, random_state, experts.alpha
    ).select(experts.columns, experts.n_design)
    new_experts.set_state(state)
    return new_gates, new_experts


def _separation(X, targets, weight, alpha):
    """How well one linear gate sends rows to two groups of leaves, for a
    batch of groupings.

    For every row of ``targets`` (n_groupings, n_rows), each row's share of
    the first group, a weighted logistic regression on the design ``X``
    (n_rows, n_params), the rows' weights ``weight``, penalised as a gate
    of two children is (``alpha / 2`` times the squares of both children's
    coefficients, ``w / 2`` and ``-w / 2``: ``alpha / 4 ||w||^2``), fit by
    Newton steps with step halving, until no fit gains more than
    ``_PARTITION_TOL`` nats per unit of weight (enough to rank them).

    Returns
    -------
    coef : ndarray of shape (n_groupings, n_params)
        ``w``: the first group's probability is ``expit(x w)``.
    excess : ndarray of shape (n_groupings,)
        The weighted Kullback-Leibler divergence from the targets to the
        fitted probabilities, plus the penalty: what the gate's being
        linear costs the routing (0 for targets it matches exactly).
    """
    n_groupings, p = targets.shape[0], X.shape[1]
    outer = _outer_rows(X, np)
    X_t = np.ascontiguousarray(X.T)
    ridge = 0.5 * alpha
    tol = _PARTITION_TOL * weight.sum()
    # sum_i w_i t_gi x_i: the targets' part of every objective and gradient
    # (sum_i w_i t_gi z_gi = coef_g . that), made once
    target_sums = (targets * weight) @ X

    def fitted(coef, part=slice(None)):
        """The objective at ``coef`` of the groupings ``part``, and their
        probabilities."""
        logits = coef @ X_t
        # d = 1 + exp(-|z|): log(1 + e^z) = max(z, 0) + log(d), and 1 / d is
        # the probability where z >= 0, one minus it where z < 0 (to 1e-16):
        # in place and without ``np.where``, which alone took as long as
        # three exponentials
        d = np.abs(logits)
        np.negative(d, out=d)
        np.exp(d, out=d)
        d += 1.0
        softplus = np.log(d) @ weight + np.maximum(logits, 0.0) @ weight
        value = np.sum(coef * target_sums[part], axis=1) - softplus
        np.reciprocal(d, out=d)
        d -= 0.5
        d *= np.sign(logits)
        d += 0.5
        return value - 0.5 * ridge * np.sum(coef**2, axis=1), d

    coef = np.zeros((n_groupings, p))
    value, prob = fitted(coef)
    # the fits still gaining, and their probabilities (only theirs: the
    # rows of the others are never gathered or copied again)
    active = np.arange(n_groupings)
    for _ in range(_PARTITION_STEPS):
        a_coef = coef[active]
        weighted = prob * weight
        grad = target_sums[active] - weighted @ X - ridge * a_coef
        weighted -= weighted * prob  # w p (1 - p)
        curvature = symmetric(weighted @ outer, p, np)
        step = np.linalg.solve(curvature + ridge * np.eye(p), grad[..., None])[..., 0]
        new, new_prob = fitted(a_coef + step, active)
        old = value[active]
        for _ in range(30):  # halve the steps that lower their objective
            lower = np.flatnonzero(new < old)
            if not lower.size:
                break
            step[lower] /= 2
            new[lower], new_prob[lower] = fitted(
                a_coef[lower] + step[lower], active[lower]
            )
        kept = new >= old  # a step still lowering it after 30 halvings: none
        coef[active[kept]] += step[kept]
        value[active[kept]] = new[kept]
        gaining = kept & (new - old > tol)
        active = active[gaining]
        if not active.size:
            break
        prob = new_prob if gaining.all() else new_prob[gaining]
    own = (xlogy(targets, targets) + xlogy(1 - targets, 1 - targets)) @ weight
    return coef, own - value


def _shape(X, resp, weight, alpha, leaves, coefs, halves=False):
    """A binary tree over ``leaves`` whose gates route the rows to them as
    their responsibilities ``resp`` (n_leaves, n_rows) do, built from the
    top: every gate splits its leaves into the two groups that a linear
    gate separates best (``_separation``), among all partitions (with
    ``halves``, at the top, among those into two halves). Returns the tree
    as nested lists of leaf numbers; ``coefs`` maps ``id`` of every list to
    its gate's ``w``."""
    if len(leaves) == 1:
        return leaves[0]
    mass = resp[leaves].sum(axis=0)
    full = weight * mass
    rows = np.flatnonzero(full > 0)
    if not rows.size:  # leaves no row reaches: any shape routes them alike
        rows = np.arange(len(full))
        mass = np.ones(len(full))
    rows = rows[sample_rows(len(rows), _PARTITION_ROWS)]
    # the strided rows stand for all: the penalty keeps its weight
    row_weight = full[rows] * (full.sum() / max(full[rows].sum(), 1e-300))
    groupings = [
        [leaves[0], *rest]
        for k in range(len(leaves) - 1)
        for rest in itertools.combinations(leaves[1:], k)
        if not halves or 2 * (k + 1) == len(leaves)
    ]
    # every grouping's share of the rows: the sum of its leaves'
    # responsibilities, as one product with the groupings' memberships
    member = np.zeros((len(groupings), len(leaves)))
    for i, grouping in enumerate(groupings):
        member[i, [leaves.index(leaf) for leaf in grouping]] = 1.0
    targets = member @ resp[np.ix_(leaves, rows)]
    coef, excess = _separation(X[rows], targets / mass[rows], row_weight, alpha)
    best = int(np.argmin(excess))
    first = groupings[best]
    second = [leaf for leaf in leaves if leaf not in first]
    shape = [
        _shape(X, resp, weight, alpha, first, coefs),
        _shape(X, resp, weight, alpha, second, coefs),
    ]
    coefs[id(shape)] = coef[best]
    return shape


def _nested_with(tree, node, shape, kept, v=0):
    """``tree`` as nested lists of leaf numbers, with the subtree of
    ``node`` replaced by ``shape``; ``kept`` maps ``id`` of every other
    list to its node in ``tree``."""
    if v == node:
        return shape
    if not tree.children[v]:
        return tree.leaf_of[v]
    nested = [_nested_with(tree, node, shape, kept, c) for c in tree.children[v]]
    kept[id(nested)] = v
    return nested


def _canonical(shape):
    """A binary tree's nested lists up to the order of every gate's
    children."""
    if isinstance(shape, list):
        return frozenset(_canonical(child) for child in shape)
    return shape


def _leaves_of(shape):
    """The leaves of nested lists, left to right."""
    if isinstance(shape, list):
        return [leaf for child in shape for leaf in _leaves_of(child)]
    return [shape]


def _restructured(
    estimator,
    train,
    tree,
    gates,
    experts,
    split,
    score,
    current,
    scaling,
    xp,
    random_state,
):
    """The binary ``tree``, just split at leaf ``split``, with the subtree
    around the new gate rebuilt over its experts under the gates that route
    their rows best (``_shape``, from the rows' responsibilities) and
    refit by EM, if that shape differs from the subtree's and the tree
    then scores better than ``current``: its tree, gates, experts,
    monitor, score, and the old number of every new leaf; else None.

    The subtree is that of the new gate's highest ancestor over at most
    ``_PARTITION_LEAVES`` leaves (every partition of its leaves into two
    groups is tried at its root): the rest of the tree, restructured when
    its own splits were made, keeps its gates.

    Growth adds one gate at a time, each chosen when fewer experts
    existed: the first split of a region of four experts parts it into the
    two halves its two experts fit best, which need not be the two halves
    a linear gate separates. Once the experts are there, their
    responsibilities show which of their groups a gate can part."""
    node = tree.parent[tree.leaves[split]]
    while tree.parent[node] != -1:
        first, last = tree.ranges[tree.parent[node]]
        if last - first > _PARTITION_LEAVES:
            break
        node = tree.parent[node]
    first, last = tree.ranges[node]
    if last - first < 3:  # two leaves have one shape
        return None
    return _regated(
        estimator,
        train,
        (tree, gates, experts),
        node,
        score,
        current,
        scaling,
        xp,
        random_state,
    )


def _regated(
    estimator,
    train,
    model,
    node,
    score,
    current,
    scaling,
    xp,
    random_state,
    halves=False,
):
    """The tree of ``model`` (its tree, gates and experts) with the subtree
    of ``node`` rebuilt in the shape whose gates route the rows to its
    leaves best (``_shape``, with ``halves``), its other gates kept and the
    experts in the new order, refit by EM, if that shape differs from the
    subtree's and the tree then scores better than ``current``: its tree,
    gates, experts, monitor, score, and the old number of every new leaf;
    else None."""
    tree, gates, experts = model
    resp, _, _ = _responsibilities(train, gates, experts, xp)
    X = to_numpy(wide(gates.design(train.X, xp), xp), xp)
    weight = to_numpy(wide(train.sample_weight, xp), xp)
    coefs, kept = {}, {}
    leaves = list(range(*tree.ranges[node]))
    sub = _shape(X, resp, weight, gates.alpha, leaves, coefs, halves)
    if _canonical(sub) == _canonical(tree.to_nested(node)):
        return None
    shape = _nested_with(tree, node, sub, kept)
    new_tree = Tree.from_nested(shape)
    old_rows, rows, queue = _gate_rows(tree, gates), {}, [shape]
    for v, item in enumerate(queue):  # numbered as from_nested numbers them
        if isinstance(item, list):
            if id(item) in kept:
                rows[v] = old_rows[kept[id(item)]]
            else:
                half = 0.5 * coefs[id(item)]
                rows[v] = xp.asarray(
                    np.stack([half, -half], axis=1)[None], device=device(train.X)
                )
            queue.extend(item)
    order = _leaves_of(shape)
    state = experts.get_state()
    index = xp.asarray(order, device=device(train.X))
    state = (
        tuple(xp.take(a, index, axis=0) for a in state)
        if isinstance(state, tuple)
        else xp.take(state, index, axis=0)
    )
    new_gates, new_experts = _components(
        estimator, new_tree, gates, experts, rows, state, scaling, xp, random_state
    )
    monitor = estimator._continue_em(train, new_gates, new_experts, scaling, xp)
    new_score = score(new_gates, new_experts, monitor)
    if not new_score > current:
        return None
    return new_tree, new_gates, new_experts, monitor, new_score, order


def _renumbered(tried, order):
    """Every leaf's trial (``tried``, by leaf number) under the leaf's new
    number after a restructuring that numbers the leaves ``order`` (new
    leaf ``i`` is old leaf ``order[i]``)."""
    new = {old: i for i, old in enumerate(order)}
    return {new[leaf]: local for leaf, local in tried.items()}


def _paired(estimator, train, grown, score, scaling, xp, random_state, report):
    """After the last round: every gate over four leaves shaped as a chain
    (one leaf against three) tried as two pairs instead, the two halves
    that a linear gate separates best, each pair under its own gate, refit
    by EM and kept when the tree scores better. ``grown``: the tree, its
    gates, experts, monitor, score and history; returns them.

    A binary tree over four leaves has these two shapes, and the search
    tells them apart poorly: the chain's second gate takes up what its
    first leaves, so their excesses can differ by 1 in 1,000."""
    tree, gates, experts, monitor, current, history = grown
    identity = np.arange(tree.n_leaves)  # every leaf's expert, as first numbered
    tried = set()
    while True:
        chains = [
            v
            for v in tree.gates
            if np.ptp(tree.ranges[v]) == 4
            and not all(tree.children[c] for c in tree.children[v])
            and frozenset(identity[range(*tree.ranges[v])]) not in tried
        ]
        if not chains:
            return tree, gates, experts, monitor, current, history
        node = chains[0]
        tried.add(frozenset(identity[range(*tree.ranges[node])]))
        paired = _regated(
            estimator,
            train,
            (tree, gates, experts),
            node,
            score,
            current,
            scaling,
            xp,
            random_state,
            halves=True,
        )
        if paired is not None:
            tree, gates, experts, monitor, current, order = paired
            identity = identity[order]
            history.append(
                GrowthStep(tree.n_leaves, None, current, {}, restructured=True)
            )
            report(history)


def grow_tree(estimator, data, scaling, start_sample, xp, weight_factor):
    """Grow ``n_init`` trees on ``data`` (``InMemoryData``) and keep the one
    of the best score: its gates, experts, EM monitor (of the last fit) and
    growth history.

    Every growth starts from the same single expert, fit once (every start
    of one leaf is the same); they differ by their candidates' k-means
    starts, drawn one after the other from ``random_state``, and, with
    ``"validation"``, share the held-out rows, so that their scores
    compare."""
    criterion = estimator.split_criterion
    random_state = check_random_state(estimator.random_state)
    train, held_out = data, None
    if criterion == "validation":
        order = random_state.permutation(data.n_samples)
        n_held = max(1, int(round(estimator.validation_fraction * data.n_samples)))
        train, held_out = data.subset(order[n_held:]), data.subset(order[:n_held])

    # The last pass of soft EM (no top-k, no noise) on the training rows is
    # one at the fitted parameters: a BIC needs no pass of its own after it.
    reuse = (
        held_out is None
        and estimator.algorithm == "em"
        and estimator.top_k is None
        and not estimator.gate_noise
    )

    def score(gates, experts, monitor=None):
        """The criterion of ``gates`` and ``experts``; ``monitor``: that of
        the EM on ``train`` that fitted them, if they were."""
        stats = monitor.stats if reuse and monitor is not None else None
        scored = held_out if held_out is not None else train
        return _score(
            estimator, scored, gates, experts, xp, weight_factor, criterion, stats=stats
        )

    root = estimator._run_restarts(
        train, scaling, start_sample, xp, False, weight_factor, Tree([[]]), n_runs=1
    )
    # a trial split of a leaf (its responsibilities) into so many children
    split = functools.partial(
        _split_leaf,
        estimator,
        train,
        scaling=scaling,
        start_sample=start_sample,
        xp=xp,
        weight_factor=weight_factor,
        random_state=random_state,
    )
    best = None
    for run in range(estimator.n_init):
        start = root if run == estimator.n_init - 1 else copy.deepcopy(root)
        grown = _grow(
            estimator,
            train,
            held_out,
            start,
            score,
            split,
            scaling,
            xp,
            weight_factor,
            random_state,
        )
        kept = grown[3][-1]
        if estimator.verbose:
            print(
                f"Growth {run + 1}/{estimator.n_init}: {kept.n_leaves} leaves, "
                f"score {kept.score:.6f}",
                flush=True,
            )
        if best is None or kept.score > best[3][-1].score:
            best = grown
    gates, experts, monitor, history = best
    if held_out is not None:
        monitor = estimator._continue_em(data, gates, experts, scaling, xp)
    experts.bind(data, xp)
    return gates, experts, monitor, history


def _grow(
    estimator,
    train,
    held_out,
    start,
    score,
    split,
    scaling,
    xp,
    weight_factor,
    random_state,
):
    """One growth from the single expert ``start`` (its gates, experts and
    monitor), with the trial splits ``split`` (``_split_leaf`` on ``train``):
    the grown tree's gates, experts, monitor and history."""
    n_children = max(estimator.n_experts, 2)
    total = float(xp.sum(train.sample_weight)) / weight_factor
    tree = Tree([[]])
    gates, experts, monitor = start
    current = score(gates, experts, monitor)
    history = [GrowthStep(1, None, current, {})]
    report = _reporter(estimator)
    report(history)
    tried = {}  # leaf: its local mixture of the last round that tried it
    while tree.n_leaves + n_children - 1 <= estimator.max_leaves:
        resp, log_expert, shortfall = _responsibilities(train, gates, experts, xp)
        if held_out is not None:
            held_resp, held_log_expert, _ = _responsibilities(
                held_out, gates, experts, xp
            )
            held_weight = to_numpy(held_out.sample_weight, xp) / weight_factor
        leaves = np.argsort(-shortfall, kind="stable")[: estimator.n_split_candidates]
        n_new = estimator._n_free_params(gates.n_design, n_children) - (
            estimator._n_free_params(gates.n_design, 1)
        )
        if held_out is None:  # the leaf's rows scored by their BIC
            scored, expert_ll = train, log_expert
            weights = resp * to_numpy(train.sample_weight, xp)[None, :] / weight_factor
            penalty = 0.5 * n_new * math.log(total)
        else:  # or on the held-out rows
            scored, expert_ll = held_out, held_log_expert
            weights = held_resp * held_weight[None, :]
            penalty = 0.0
        gains = {}
        for leaf in leaves.tolist():
            local = split(resp[leaf], n_children, warm=tried.get(leaf))
            tried[leaf] = local
            gain = _split_gain(local, scored, expert_ll[leaf], weights[leaf], xp)
            gains[leaf] = (gain - penalty, local)
        best = max(gains, key=lambda leaf: gains[leaf][0])
        if not gains[best][0] > 0:
            # before stopping, every candidate once more, cut by how well its
            # expert explains its rows
            for leaf in leaves.tolist():
                local = split(resp[leaf], n_children, fit_values=log_expert[leaf])
                gain = _split_gain(local, scored, expert_ll[leaf], weights[leaf], xp)
                if gain - penalty > gains[leaf][0]:
                    gains[leaf] = (gain - penalty, local)
                    tried[leaf] = local
            best = max(gains, key=lambda leaf: gains[leaf][0])
        candidates = {k: current + v[0] for k, v in gains.items()}
        if not gains[best][0] > 0:
            history.append(GrowthStep(tree.n_leaves, None, current, candidates))
            report(history)
            break
        tree, gates, experts = _grafted(
            estimator,
            tree,
            gates,
            experts,
            best,
            gains[best][1],
            scaling,
            xp,
            random_state,
        )
        # the split leaf's trial is spent; the leaves after it move up
        tried = {
            (k if k < best else k + n_children - 1): local
            for k, local in tried.items()
            if k != best
        }
        monitor = estimator._continue_em(train, gates, experts, scaling, xp)
        current = score(gates, experts, monitor)
        restructured = None
        if n_children == 2 and tree.n_leaves > 2:
            restructured = _restructured(
                estimator,
                train,
                tree,
                gates,
                experts,
                best,
                score,
                current,
                scaling,
                xp,
                random_state,
            )
        if restructured is not None:
            tree, gates, experts, monitor, current, order = restructured
            tried = _renumbered(tried, order)  # every trial goes with its expert
        history.append(
            GrowthStep(
                tree.n_leaves,
                best,
                current,
                candidates,
                restructured=restructured is not None,
            )
        )
        report(history)
    grown = (tree, gates, experts, monitor, current, history)
    if n_children == 2:
        grown = _paired(
            estimator, train, grown, score, scaling, xp, random_state, report
        )
    return _pruned(
        estimator, train, grown, score, split, scaling, xp, random_state, report
    )


def _pruned(estimator, train, grown, score, split, scaling, xp, random_state, report):
    """Prune a grown tree after its last EM: merge back into one expert,
    one at a time, the gate over leaves only whose merging raises the score
    most, and refit, until no merging raises it. ``grown``: the tree, its
    gates, experts, monitor, score and history; returns the gates, experts,
    monitor and history.

    A split paid when it was made, scored by its local fit; the splits
    after it and their refits can take over its work, and then the one
    expert it replaced scores better. The merged expert is fit to the
    gate's rows weighted by their responsibilities (``_split_leaf`` with
    one child), and the merged tree is scored as it is, before a refit."""
    tree, gates, experts, monitor, current, history = grown
    while True:
        twigs = [
            v for v in tree.gates if not any(tree.children[c] for c in tree.children[v])
        ]
        if not twigs:
            break
        resp, _, _ = _responsibilities(train, gates, experts, xp)
        best = None
        for node in twigs:
            first, last = tree.ranges[node]
            _, single = split(resp[first:last].sum(axis=0), 1)
            merged = _merged(
                estimator,
                tree,
                gates,
                experts,
                node,
                single,
                scaling,
                xp,
                random_state,
            )
            merged_score = score(*merged[1:])
            if merged_score > current and (best is None or merged_score > best[0]):
                best = (merged_score, (first, last), merged)
        if best is None:
            break
        _, leaves, (tree, gates, experts) = best
        monitor = estimator._continue_em(train, gates, experts, scaling, xp)
        current = score(gates, experts, monitor)
        history.append(GrowthStep(tree.n_leaves, None, current, {}, leaves))
        report(history)
    return gates, experts, monitor, history
