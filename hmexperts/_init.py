"""Initial responsibilities: where EM starts.

A start is a small object that gives any chunk of rows its initial
responsibilities (n_leaves, n_rows), so that it works where the chunk lies
(in memory, on a GPU, on a Dask worker). Given responsibilities
(``GivenStart``) travel with the chunks and are normalised. Otherwise
(``ClusterStart``) every sample goes wholly to the leaf of its nearest
centre: centres found by weighted k-means on the standardised joint
``[x, y]`` for the first initialisation, or ``n_leaves`` samples drawn by
weight (``init_params="random"``, and every restart after the first, since
k-means restarts mostly land on the same partition). The centres come from
a sample of the rows (all of them up to ``_scaling.SAMPLE_ROWS``, else an
evenly strided subset), so that the data never has to be gathered. The
clusters are placed at the leaves so that siblings are neighbours in input
space. The k-means start depends neither on the order of the samples nor
on whether a weight of ``k`` is given as ``k`` copies of a sample.
"""

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array

from ._array_api import device, to_numpy, wide
from ._placement import host

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


class GivenStart:
    """Initial responsibilities given by the user (``init_params``): every
    chunk carries its rows of them (``Chunk.init``), normalised here."""

    def __call__(self, chunk, xp):
        resp = wide(xp.asarray(chunk.init, device=device(chunk.X)), xp)
        resp = resp / xp.sum(resp, axis=1, keepdims=True)
        return xp.matrix_transpose(resp)


class ClusterStart:
    """Initial responsibilities from clusters of the standardised joint
    ``[x, y]``: every row wholly to the leaf of its nearest centre.

    Only the centres are kept (a few numbers, sent to wherever a chunk
    lies); every chunk finds its rows' nearest centres itself.

    Parameters
    ----------
    centers : ndarray of shape (n_leaves, n_features + n_target_columns)
    leaf_of_cluster : ndarray of shape (n_leaves,)
        The leaf each cluster is placed at.
    n_classes : int or None
        Classification: the target enters the joint one-hot; regression
        (None): as its standardised value.
    transform : callable or None
        ``transform(y, xp)``: the target as it enters the joint, for targets
        that are not standardised (counts, proportions: on the link's scale).
    """

    def __init__(self, centers, leaf_of_cluster, n_classes=None, transform=None):
        self.centers = centers
        self.leaf_of_cluster = leaf_of_cluster
        self.n_classes = n_classes
        self.transform = transform

    def __call__(self, chunk, xp):
        dev = device(chunk.X)
        joint = xp.concat(
            [
                wide(chunk.X[:, :-1], xp),
                target_columns(chunk.y, self.n_classes, xp, self.transform),
            ],
            axis=1,
        )
        centers = xp.asarray(self.centers, device=dev)
        sq_dist = xp.sum(centers**2, axis=1)[None, :] - 2 * joint @ centers.T
        cluster = xp.argmin(sq_dist, axis=1)
        leaf = xp.take(xp.asarray(self.leaf_of_cluster, device=dev), cluster)
        leaves = xp.arange(self.centers.shape[0], device=dev)
        return xp.astype(leaves[:, None] == leaf[None, :], xp.float64)


def target_columns(y, n_classes, xp, transform=None):
    """The target's columns in the joint ``[x, y]`` that the start clusters:
    the standardised value (regression, ``n_classes`` None; ``transform(y,
    xp)`` if given), or the one-hot class."""
    if n_classes is None:
        values = wide(y if transform is None else transform(y, xp), xp)
        return values if values.ndim == 2 else values[:, None]
    classes = xp.arange(n_classes, device=device(y))
    return xp.astype(y[:, None] == classes[None, :], xp.float64)


def joint_columns(X, y, n_classes, xp, transform=None):
    """The standardised joint ``[x, y]`` the starts cluster, on the host:
    the design's columns without the intercept, then the target's
    (``target_columns``)."""
    return np.hstack(
        [
            to_numpy(wide(X[:, :-1], xp), xp),
            to_numpy(target_columns(y, n_classes, xp, transform), xp),
        ]
    )


def initial_start(
    X_sample,
    y_sample,
    weight_sample,
    xp,
    *,
    tree,
    n_classes,
    random_state,
    method,
    transform=None,
):
    """The start of one initialisation from a sample of the rows (all of
    them up to ``_scaling.SAMPLE_ROWS``): clusters of their standardised
    joint ``[x, y]``, by ``method`` ("kmeans" or "random"), placed at the
    leaves (``initial_labels``).

    Parameters
    ----------
    X_sample : array of shape (n_sample, n_params)
        The sampled rows of the design matrix (with the intercept column).
    y_sample, weight_sample : arrays of shape (n_sample,)
    transform : callable or None
        The target's transform for the joint (``ClusterStart``).

    Returns
    -------
    start : ClusterStart
    """
    joint = joint_columns(X_sample, y_sample, n_classes, xp, transform)
    weight = to_numpy(weight_sample, xp)
    n_leaves = tree.n_leaves
    if method == "kmeans":
        labels, centers = _kmeans(joint, weight, n_leaves, random_state)
    else:
        labels, centers = _nearest_drawn(joint, weight, n_leaves, random_state)
    leaf_of_cluster = _leaf_of_cluster(
        centers, labels, weight, X_sample.shape[1] - 1, tree
    )
    return ClusterStart(centers, leaf_of_cluster, n_classes, transform)


def check_given(init_params, n, n_leaves):
    """``init_params`` as responsibilities (n_samples, n_leaves), validated
    (a Dask array's values are checked as the passes read them)."""
    if hasattr(init_params, "dask"):
        if init_params.shape != (n, n_leaves):
            raise ValueError(_SHAPE.format(init_params.shape, n, n_leaves))
        return init_params
    return _given_resp(init_params, n, n_leaves)


def _given_resp(init_params, n, n_leaves):
    """``init_params`` as responsibilities (n_samples, n_leaves), validated."""
    # on the host: responsibilities of another library (those of
    # predict_responsibilities after a fit on PyTorch arrays) included
    resp = check_array(host(init_params), dtype=np.float64, input_name="init_params")
    if resp.shape != (n, n_leaves):
        raise ValueError(_SHAPE.format(resp.shape, n, n_leaves))
    if np.any(resp < 0) or np.any(resp.sum(axis=1) <= 0):
        raise ValueError(
            "init_params responsibilities must be >= 0 with a positive sum "
            "in every row."
        )
    return resp


_SHAPE = (
    "init_params has shape {}; responsibilities must have shape (n_samples, "
    "n_leaves) = ({}, {})."
)


def _leaf_of_cluster(centers, labels, weight, n_features, tree):
    """The leaf of every cluster: placed so that siblings are neighbours in
    input space. At every gate the clusters are sorted along the leading
    principal axis of their centres in ``x`` and cut into consecutive
    groups, one per child, as many clusters as the child has leaves: a split
    the gate can draw."""
    n_leaves = tree.n_leaves
    mass = np.bincount(labels, weights=weight, minlength=n_leaves)
    leaf_of_cluster = np.empty(n_leaves, dtype=np.intp)
    tree_order = _tree_order(centers[:, :n_features], mass, tree)
    leaf_of_cluster[tree_order] = np.arange(n_leaves)
    return leaf_of_cluster


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


def _tree_order(centers, mass, tree, node=0):
    """Order of the clusters along the leaves of ``tree`` under ``node``
    (one cluster per leaf).

    Recursively sorts the clusters along the leading principal axis of their
    (mass-weighted) centres and cuts them into consecutive groups, one per
    child of the node, of the sizes of the children's leaf ranges.
    """
    ids = np.arange(len(centers))
    if len(ids) <= 1:
        return ids
    w = mass + 1e-12
    mean = w @ centers / w.sum()
    centred = centers - mean
    _, _, vt = np.linalg.svd(np.sqrt(w)[:, None] * centred, full_matrices=False)
    ids = ids[np.argsort(centred @ vt[0], kind="stable")]
    children = tree.children[node]
    sizes = [tree.ranges[c][1] - tree.ranges[c][0] for c in children]
    groups = np.split(ids, np.cumsum(sizes)[:-1])
    return np.concatenate(
        [
            g[_tree_order(centers[g], mass[g], tree, child)]
            for g, child in zip(groups, children, strict=True)
        ]
    )
