"""Routing: which leaves pool every sample, and reports of the load.

Dense pooling weighs every leaf by its prior. Sparse routing keeps the ``k``
leaves of largest prior of every sample, their priors renormalised; hard
routing is ``k = 1``. With a capacity, leaves take the samples greedily in
priority order, up to ``ceil(capacity_factor * n_samples * k / n_leaves)``
each, and a sample whose choices are full moves on to its next choice with
room, or is dropped. Pure functions over an array namespace ``xp``, with the
summaries of the routing at prediction and in training.
"""

import math
from dataclasses import dataclass

import numpy as np
from sklearn.utils import Bunch, check_random_state

from ._array_api import device, logsumexp, to_numpy
from ._gates import importance_cv2, share_cv2


def top_k_mask(scores, k, xp):
    """The ``k`` largest entries of every column of ``scores`` (ties: lowest
    index first), as a boolean array of the shape of ``scores``."""
    if k == 1:  # argmax returns the first of tied maxima, as the sort does
        leaves = xp.arange(scores.shape[0], device=device(scores))[:, None]
        return leaves == xp.argmax(scores, axis=0)[None, :]
    order = xp.argsort(scores, axis=0, descending=True, stable=True)
    rank = xp.argsort(order, axis=0, stable=True)
    return rank < k


def leaves_per_sample(top_k, hard, n_leaves=None):
    """Leaves ``k`` that pool (or train) every sample: 1 under hard routing,
    else ``top_k``; None for all of them (no ``top_k``, or at least
    ``n_leaves`` when given)."""
    k = 1 if hard else top_k
    if k is None or (n_leaves is not None and k >= n_leaves):
        return None
    return k


@dataclass(frozen=True)
class PredictionRouting:
    """How prediction routes the samples.

    Attributes
    ----------
    k : int or None
        Leaves pooled per sample (``leaves_per_sample``); None for all.
    capacity_factor : float or None
        Every leaf takes at most ``ceil(capacity_factor * n_samples * k /
        n_leaves)`` samples; None for no limit.
    priority : {"gate", "random", "order"}
        Which samples claim room at a full leaf first: the surest (largest
        top prior), a random order drawn from ``random_state``, or the
        order of the rows.
    random_state : int, RandomState instance or None
        Source of the random order.
    """

    k: int | None
    capacity_factor: float | None
    priority: str
    random_state: object


def route(log_prior, routing, xp):
    """Log pooling weights of the leaves, where experts are needed, and
    which samples no expert could take.

    Dense (``routing.k`` None): the priors, and masks None. Otherwise the ``k``
    largest priors of every sample, or with ``capacity_factor`` the leaves
    ``assign`` gives it, renormalised, ``-inf`` elsewhere; ``mask`` of shape
    (n_leaves, n_samples) marks them. ``dropped`` (n_samples,) marks samples
    without a leaf (or is None); their weights point at leaf 0 as a
    placeholder, and the estimator predicts them from the target's marginal.
    """
    if routing.k is None:
        return log_prior, None, None
    if routing.capacity_factor is None:
        mask = top_k_mask(log_prior, routing.k, xp)
        return _renormalised(log_prior, mask, xp), mask, None
    mask, _, _ = assign(log_prior, routing, xp)
    dropped = ~xp.any(mask, axis=0)
    if not bool(xp.any(dropped)):
        return _renormalised(log_prior, mask, xp), mask, None
    first = xp.arange(log_prior.shape[0], device=device(log_prior))[:, None] == 0
    zero = xp.zeros_like(log_prior[:, :1])
    placeholder = xp.where(first, zero, xp.full_like(zero, -xp.inf))
    log_prior = xp.where(dropped[None, :], placeholder, log_prior)
    mask_for_weights = mask | (first & dropped[None, :])
    return _renormalised(log_prior, mask_for_weights, xp), mask, dropped


def _renormalised(log_prior, mask, xp):
    """The priors where ``mask`` holds, renormalised over them; ``-inf``
    elsewhere."""
    kept = xp.where(mask, log_prior, xp.full_like(log_prior, -xp.inf))
    return kept - logsumexp(kept, 0, xp)[None, :]


def _priority_order(log_prior, priority, random_state, xp):
    """Samples in the order in which they claim room at the experts."""
    n = log_prior.shape[1]
    if priority == "gate":  # batch prioritised routing: surest first
        score = xp.max(log_prior, axis=0)
        return xp.argsort(score, descending=True, stable=True)
    if priority == "random":
        order = check_random_state(random_state).permutation(n)
        return xp.asarray(order, device=device(log_prior))
    return xp.arange(n, device=device(log_prior))


def assign(log_prior, routing, xp):
    """Up to ``k`` leaves per sample, no leaf above its capacity.

    ``capacity = ceil(capacity_factor * n_samples * k / n_leaves)``.
    Round ``r`` offers every sample that still lacks leaves its ``r``-th
    choice (by prior); each leaf takes the offers in priority order
    while it has room, so overflow moves on to the sample's next choice
    with room. Greedy, like GShard's and V-MoE's routers: with ``k > 1``
    a sample may end with fewer than ``k`` leaves although a perfect
    assignment exists.

    Returns
    -------
    mask : array of shape (n_leaves, n_samples) of bool
    capacity : int
    rerouted : array of shape (n_samples,) of bool
        Samples given a leaf outside their first ``k`` choices.
    """
    n_leaves, n = log_prior.shape
    k = routing.k
    capacity = math.ceil(routing.capacity_factor * n * k / n_leaves)
    dev = device(log_prior)
    preference = xp.argsort(log_prior, axis=0, descending=True, stable=True)
    order = _priority_order(log_prior, routing.priority, routing.random_state, xp)
    leaves = xp.arange(n_leaves, device=dev)[:, None]
    mask = xp.zeros((n_leaves, n), dtype=xp.bool, device=dev)
    rerouted = xp.zeros((n,), dtype=xp.bool, device=dev)
    taken = xp.zeros((n,), dtype=xp.int64, device=dev)
    room = xp.full((n_leaves,), capacity, dtype=xp.int64, device=dev)
    for rank in range(n_leaves):
        wanting = taken < k
        if not bool(xp.any(wanting)):
            break
        # offers[j, t]: the t-th sample in priority order offers itself to j
        choice = xp.take(preference[rank, :], order)
        offers = (choice[None, :] == leaves) & xp.take(wanting, order)[None, :]
        queue = xp.cumulative_sum(xp.astype(offers, xp.int64), axis=1)
        accepted = offers & (queue <= room[:, None])
        room = room - xp.sum(xp.astype(accepted, xp.int64), axis=1)
        inverse = xp.argsort(order)
        accepted = xp.take(accepted, inverse, axis=1)  # back to sample order
        got = xp.any(accepted, axis=0)
        mask = mask | accepted
        taken = taken + xp.astype(got, xp.int64)
        if rank >= k:
            rerouted = rerouted | got
    return mask, capacity, rerouted


def prediction_stats(log_prior, routing, xp):
    """The routing of ``route``, counted: the fields of ``routing_stats``."""
    n_leaves, n = log_prior.shape
    k = routing.k
    ones = xp.ones((n,), dtype=log_prior.dtype, device=device(log_prior))
    capacity, n_dropped, n_partial, n_rerouted = None, 0, 0, 0
    if k is None:
        load = np.full(n_leaves, n)
    else:
        if routing.capacity_factor is None:
            mask = top_k_mask(log_prior, k, xp)
        else:
            mask, capacity, rerouted = assign(log_prior, routing, xp)
            got = to_numpy(xp.sum(xp.astype(mask, xp.int64), axis=0), xp)
            n_dropped = int(np.sum(got == 0))
            n_partial = int(np.sum((got > 0) & (got < k)))
            n_rerouted = int(xp.sum(xp.astype(rerouted, xp.int64)))
        load = to_numpy(xp.sum(xp.astype(mask, xp.int64), axis=1), xp)
    return Bunch(
        load=load,
        capacity=capacity,
        n_dropped=n_dropped,
        n_partial=n_partial,
        n_rerouted=n_rerouted,
        importance=to_numpy(xp.exp(log_prior) @ ones / n, xp),
        importance_cv2=importance_cv2(log_prior, ones, xp),
    )


def training_stats(load, importance, dtype_name, xp):
    """The fields of ``routing_stats_`` from every leaf's share of the
    training responsibilities (``load``) and of the prior mass
    (``importance``), as NumPy of ``dtype_name``."""
    dtype = np.dtype(dtype_name)
    return Bunch(
        load=to_numpy(load, xp).astype(dtype),
        importance=to_numpy(importance, xp).astype(dtype),
        importance_cv2=share_cv2(importance, xp),
    )
