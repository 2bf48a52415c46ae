"""Initial responsibilities: where EM starts.

Given responsibilities are checked and normalised. Otherwise every sample
goes wholly to one leaf: by weighted k-means on the standardised joint
``[x, y]`` for the first initialisation, or to the nearest of ``n_leaves``
samples drawn by weight (``init_params="random"``, and every restart after
the first, since k-means restarts mostly land on the same partition). The
clusters are then placed at the leaves so that siblings are neighbours in
input space. The k-means start depends neither on the order of the samples
nor on whether a weight of ``k`` is given as ``k`` copies of a sample.
"""

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array

from ._array_api import device, to_numpy

# Lloyd iterations of the k-means start: a fixed number (tol=0), because
# KMeans' tol is relative to the unweighted variance, which differs between
# weights and repeated rows. The start only needs to be rough.
_KMEANS_MAX_ITER = 30


def start_name(init_params, init):
    """How initialisation ``init`` starts (see ``init_params``)."""
    if not isinstance(init_params, str):
        return "given responsibilities"
    if init_params == "kmeans" and init == 0:
        return "k-means start"
    return "random start"


def initial_resp(
    Xs, y_init, sample_weight, xp, *, n_experts, depth, init_params, random_state, init
):
    """Initial responsibilities, shape (n_leaves, n_samples), on ``Xs``'s device.

    ``Xs``: the standardised inputs; ``y_init``: the target's columns in the
    clustering (NumPy); ``init``: the index of the initialisation, whose
    clustering ``start_name`` names.
    """
    n, n_leaves = Xs.shape[0], n_experts**depth
    if not isinstance(init_params, str):
        resp = _given_resp(init_params, n, n_leaves)
    else:
        resp = np.zeros((n, n_leaves))
        joint = np.hstack([to_numpy(Xs, xp), y_init])
        method = init_params if init == 0 else "random"
        weight = to_numpy(sample_weight, xp)
        labels = initial_labels(
            joint, weight, Xs.shape[1], n_experts, depth, random_state, method
        )
        resp[np.arange(n), labels] = 1.0
    resp = np.ascontiguousarray((resp / resp.sum(axis=1, keepdims=True)).T)
    return xp.asarray(resp, dtype=Xs.dtype, device=device(Xs))


def _given_resp(init_params, n, n_leaves):
    """``init_params`` as responsibilities (n_samples, n_leaves), validated."""
    resp = check_array(init_params, dtype=np.float64, input_name="init_params")
    if resp.shape != (n, n_leaves):
        raise ValueError(
            f"init_params has shape {resp.shape}; responsibilities must have "
            f"shape (n_samples, n_leaves) = ({n}, {n_leaves})."
        )
    if np.any(resp < 0) or np.any(resp.sum(axis=1) <= 0):
        raise ValueError(
            "init_params responsibilities must be >= 0 with a positive sum "
            "in every row."
        )
    return resp


def initial_labels(joint, weight, n_features, n_experts, depth, random_state, method):
    """Initial leaf of every row of ``joint`` = ``[x, y]`` (standardised).

    ``"kmeans"``: weighted k-means into ``n_leaves`` clusters, fit in
    lexicographic row order for a fixed number of Lloyd iterations, so
    that the result depends neither on the order of the samples nor on
    whether a weight of ``k`` is given as a weight or as ``k`` copies of
    the sample. ``"random"``: ``n_leaves`` samples drawn by weight as
    centres, every row going to the nearest; restarts then start from
    different local partitions.

    The clusters are then placed at the leaves so that siblings are
    neighbours in input space: at every node they are sorted along the
    leading principal axis of their centres in ``x`` and cut into
    ``n_experts`` consecutive groups, a split the node's gate can draw.
    """
    n_leaves = n_experts**depth
    if method == "kmeans":
        labels, centers = _kmeans(joint, weight, n_leaves, random_state)
    else:
        labels, centers = _nearest_drawn(joint, weight, n_leaves, random_state)
    mass = np.bincount(labels, weights=weight, minlength=n_leaves)
    leaf_of_cluster = np.empty(n_leaves, dtype=np.intp)
    tree_order = _tree_order(centers[:, :n_features], mass, n_experts)
    leaf_of_cluster[tree_order] = np.arange(n_leaves)
    return leaf_of_cluster[labels]


def _kmeans(joint, weight, n_clusters, random_state):
    """Weighted k-means of the rows of ``joint`` in lexicographic order:
    every row's cluster, and the centres."""
    order = _lexicographic_order(joint)
    with warnings.catch_warnings():
        # Fewer distinct points than leaves leaves some clusters empty;
        # EM copes (those experts start from their prior).
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        kmeans = KMeans(
            n_clusters=n_clusters,
            n_init=1,
            tol=0,
            max_iter=_KMEANS_MAX_ITER,
            random_state=random_state,
        )
        kmeans.fit(joint[order], sample_weight=weight[order])
    labels = np.empty_like(kmeans.labels_)
    labels[order] = kmeans.labels_
    return labels, kmeans.cluster_centers_


def _nearest_drawn(joint, weight, n_clusters, random_state):
    """``n_clusters`` rows of ``joint`` drawn by weight as centres: every
    row's nearest, and the centres."""
    chosen = random_state.choice(
        len(joint), size=n_clusters, replace=False, p=weight / weight.sum()
    )
    centers = joint[chosen]
    sq_dist = (centers**2).sum(axis=1) - 2 * joint @ centers.T
    return np.argmin(sq_dist, axis=1), centers


def _lexicographic_order(rows):
    """Order of ``rows`` sorted lexicographically, ties kept in place.

    A stable sort on the first column gives that order when the column has
    no ties (continuous data): 6x cheaper than a full ``np.lexsort``, which
    runs only otherwise.
    """
    order = np.argsort(rows[:, 0], kind="stable")
    if np.any(np.diff(rows[order, 0]) == 0):
        order = np.lexsort(rows.T[::-1])
    return order


def _tree_order(centers, mass, n_experts):
    """Order of clusters along the leaves of a tree with branching ``n_experts``.

    Recursively sorts the clusters along the leading principal axis of their
    (mass-weighted) centres and cuts them into ``n_experts`` equal groups.
    """
    ids = np.arange(len(centers))
    if len(ids) <= 1:
        return ids
    w = mass + 1e-12
    mean = w @ centers / w.sum()
    centred = centers - mean
    _, _, vt = np.linalg.svd(np.sqrt(w)[:, None] * centred, full_matrices=False)
    ids = ids[np.argsort(centred @ vt[0], kind="stable")]
    groups = np.split(ids, n_experts)
    return np.concatenate(
        [g[_tree_order(centers[g], mass[g], n_experts)] for g in groups]
    )
