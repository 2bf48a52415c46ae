"""Growing a tree of gates from one expert (``tree="grow"``).

The constructive HME of Waterhouse & Robinson (1996) and Fritsch, Finke &
Waibel (1997): start from a single expert; in every round, try splitting
each of the ``n_split_candidates`` leaves that explain their data worst into
a gate of ``max(n_experts, 2)`` new leaves, keep the split whose model
scores best, and stop when no split improves the score or the tree has
``max_leaves`` leaves.

- **Candidates.** The leaves with the largest share of the expected
  negative log-likelihood, ``-sum_i w_i r_ij log p_j(y_i | x_i)``: where the
  fit is worst, not merely where the mass is.
- **A split's start.** The new leaves start from the parent: every other
  leaf keeps its responsibilities, and the parent's are cut between its
  children by a weighted k-means of the standardised joint ``[x, y]`` of
  its rows (weights ``w_i r_ij``), the start ``fit`` uses for the whole data
  (``_init``): the children divide the parent's data along the direction
  in which its joint varies most, the residuals included. The first M-step
  turns these responsibilities into gates and experts (the new gate by
  Newton's method on its children's shares), then ``_SPLIT_ITER`` EM
  iterations refit the whole tree before it is scored.
- **Score.** ``"bic"``: minus half the BIC of the training data (the
  log-likelihood minus ``log(n) / 2`` per free parameter); ``"validation"``:
  the log-likelihood of ``validation_fraction`` of the rows, held out from
  the fit. The kept split's tree is then fit by EM to convergence before the
  next round; with ``"validation"``, the final tree is refit on all rows.
"""

import math
from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_random_state

from ._array_api import to_numpy, wide
from ._config import thread_limit
from ._em import e_step, run_em, statistics
from ._init import GivenStart, _kmeans, target_columns
from ._tree import Tree

# EM iterations of a candidate split's trial fit, before it is scored.
_SPLIT_ITER = 10


@dataclass
class GrowthStep:
    """One round of growth.

    Attributes
    ----------
    n_leaves : int
        Leaves of the tree kept after the round.
    split : int or None
        The leaf that was split (its number in the tree before the round),
        None for the starting single expert or when no split paid.
    score : float
        The kept tree's score (higher is better).
    candidates : dict
        The score of every leaf tried in the round.
    """

    n_leaves: int
    split: int | None
    score: float
    candidates: dict


def _score(estimator, data, gates, experts, xp, weight_factor, criterion):
    """The criterion of a fitted model on ``data`` (higher is better)."""
    with thread_limit():
        stats = statistics(data, gates, experts, xp)
    log_likelihood = float(stats["log_likelihood"]) / weight_factor
    if criterion == "validation":
        return log_likelihood
    n_params = estimator._n_free_params(gates.n_design, gates.n_leaves)
    total = float(stats["weight"]) / weight_factor
    return log_likelihood - 0.5 * n_params * math.log(total)


def _responsibilities(data, gates, experts, xp):
    """The posterior of every leaf for every row of ``data`` (host,
    (n_leaves, n_rows)) and every leaf's expected negative log-likelihood."""
    parts, badness = [], np.zeros(gates.n_leaves)
    with thread_limit():
        for chunk in data.chunks():
            resp, _, _ = e_step(chunk, gates, experts, xp)
            log_expert = experts.log_likelihood(chunk.X, chunk.y, xp)
            badness -= to_numpy(xp.sum(resp * wide(log_expert, xp), axis=1), xp)
            weight = to_numpy(chunk.weight, xp)
            parts.append(to_numpy(resp, xp) / np.maximum(weight, 1e-300)[None, :])
    return np.concatenate(parts, axis=1), badness


def _split_start(estimator, data, resp, leaf, n_children, tree, xp, random_state):
    """Responsibilities (n_rows, n_leaves + n_children - 1) of the tree with
    ``leaf`` split: the parent's cut between its children by a weighted
    k-means of its rows' standardised joint ``[x, y]``."""
    joint = np.hstack(
        [
            to_numpy(wide(data.X[:, :-1], xp), xp),
            to_numpy(
                target_columns(
                    data.y,
                    None if estimator._is_regression else len(estimator.classes_),
                    xp,
                    estimator._start_transform(data.y, data.sample_weight, xp),
                ),
                xp,
            ),
        ]
    )
    weight = resp[leaf] * to_numpy(data.sample_weight, xp)
    rows = weight > 1e-3 * weight.max()
    _, centers = _kmeans(joint[rows], weight[rows], n_children, random_state)
    nearest = np.argmin(
        (centers**2).sum(axis=1)[None, :] - 2 * joint @ centers.T, axis=1
    )
    new_tree, origin = tree.split(leaf, n_children)
    start = resp[origin].copy()
    children = np.flatnonzero(origin == leaf)
    for c, column in enumerate(children):
        start[column] = resp[leaf] * (nearest == c)
    # a child the k-means left empty, or rows of no leaf, would stall the
    # first M-step: every row keeps a trace of every leaf
    start = start + 1e-6 * start.sum(axis=0, keepdims=True) / start.shape[0]
    return new_tree, start.T


def grow_tree(estimator, data, scaling, start_sample, xp, weight_factor):
    """Grow a tree on ``data`` (``InMemoryData``): its gates, experts, EM
    monitor (of the last fit) and the growth history."""
    criterion = estimator.split_criterion
    random_state = check_random_state(estimator.random_state)
    train, held_out = data, None
    if criterion == "validation":
        order = random_state.permutation(data.n_samples)
        n_held = max(1, int(round(estimator.validation_fraction * data.n_samples)))
        train, held_out = data.subset(order[n_held:]), data.subset(order[:n_held])
    scored = held_out if held_out is not None else train
    n_children = max(estimator.n_experts, 2)

    def score(gates, experts):
        return _score(estimator, scored, gates, experts, xp, weight_factor, criterion)

    tree = Tree([[]])
    gates, experts, monitor = estimator._run_restarts(
        train, scaling, start_sample, xp, False, weight_factor, tree
    )
    current = score(gates, experts)
    history = [GrowthStep(1, None, current, {})]
    while tree.n_leaves + n_children - 1 <= estimator.max_leaves:
        resp, badness = _responsibilities(train, gates, experts, xp)
        leaves = np.argsort(-badness, kind="stable")[: estimator.n_split_candidates]
        trials = {}
        for leaf in leaves.tolist():
            new_tree, start = _split_start(
                estimator, train, resp, leaf, n_children, tree, xp, random_state
            )
            given = train.subset(np.arange(train.n_samples), init=start)
            fitted = estimator._run_restarts(
                given,
                scaling,
                start_sample,
                xp,
                False,
                weight_factor,
                new_tree,
                given=GivenStart(),
                max_iter=_SPLIT_ITER,
                quiet=True,
            )
            trials[leaf] = (score(*fitted[:2]), new_tree, fitted)
        best = max(trials, key=lambda leaf: trials[leaf][0])
        if not trials[best][0] > current:
            history.append(
                GrowthStep(tree.n_leaves, None, current, {k: v[0] for k, v in trials.items()})
            )
            break
        _, tree, (gates, experts, _) = trials[best]
        monitor = estimator._continue_em(train, gates, experts, scaling, xp)
        current = score(gates, experts)
        history.append(
            GrowthStep(tree.n_leaves, best, current, {k: v[0] for k, v in trials.items()})
        )
    if held_out is not None:
        monitor = estimator._continue_em(data, gates, experts, scaling, xp)
    experts.bind(data, xp)
    return gates, experts, monitor, history
