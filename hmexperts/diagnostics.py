"""Diagnostics of a fitted mixture of experts: how the work is shared out.

Every function takes a fitted :class:`~hmexperts.MixtureOfExpertsRegressor`
or :class:`~hmexperts.MixtureOfExpertsClassifier` and data, and summarises
the routing of the data to the experts: how much of it each expert takes
(``expert_load``, ``effective_n_experts``), how hard the gates decide
(``gate_entropy``), and how well the experts specialise on known clusters or
classes (``dispatch_entropy``, ``specialisation_matrix``). Without ``y`` the
routing is the gates' prior ``pi_j(x)`` (``predict_gates``); with ``y`` it is
the posterior over leaves (``predict_responsibilities``), the weights EM
trains the experts with. Entropies are in nats.
"""

import numpy as np
from array_api_compat import array_namespace
from sklearn.utils.validation import check_is_fitted

from ._array_api import to_numpy
from ._placement import host

__all__ = [
    "dispatch_entropy",
    "effective_n_experts",
    "expert_load",
    "gate_entropy",
    "specialisation_matrix",
]

_ROUTINGS = ("hard", "soft")
_NORMALIZATIONS = ("expert", "label", "all", None)


# -- helpers shared with hmexperts.plotting -------------------------------------


def _check_estimator(estimator):
    """Raise unless ``estimator`` is a fitted mixture of experts."""
    if not hasattr(estimator, "predict_gates"):
        raise TypeError(
            f"{type(estimator).__name__} is not a mixture of experts; expected a "
            "fitted MixtureOfExpertsRegressor or MixtureOfExpertsClassifier."
        )
    check_is_fitted(estimator)


def _as_numpy(array):
    """A NumPy copy of an array of any array-API namespace."""
    return to_numpy(array, array_namespace(array))


def _tree(estimator):
    """A fitted estimator's gate tree (``tree_``, a ``Tree`` of any shape)."""
    return estimator.tree_


def _cut(tree, level):
    """The nodes that the gates above ``level`` choose among: every node of
    depth ``level`` and every leaf above it, in leaf order. Level 0 is the
    root alone, ``tree.max_depth`` the leaves; in a balanced tree, the
    nodes of ``level``."""
    nodes = [
        v
        for v in range(tree.n_nodes)
        if tree.depth[v] == level or (tree.depth[v] < level and not tree.children[v])
    ]
    return sorted(nodes, key=lambda v: tree.ranges[v][0])


def _node_mass(weights, tree, nodes):
    """Mass of every node of ``nodes`` from leaf weights of shape (...,
    n_leaves): the sum of the leaves below each, shape (..., len(nodes))."""
    weights = np.asarray(weights, dtype=float)
    return np.stack(
        [weights[..., slice(*tree.ranges[v])].sum(axis=-1) for v in nodes], axis=-1
    )


def _check_level(level, tree):
    """``level`` must be a gate level, 0 (the root) to ``max_depth - 1``."""
    depth = tree.max_depth
    if (
        isinstance(level, bool)
        or not isinstance(level, (int, np.integer))
        or not 0 <= level < depth
    ):
        raise ValueError(
            f"level={level!r}; expected None or an integer gate level from 0 (the "
            f"root) to {depth - 1} (depth - 1)."
        )


def _entropy(p, axis=-1):
    """Entropy ``-sum p log p`` in nats along ``axis``, with ``0 log 0 = 0``."""
    p = np.asarray(p, dtype=float)
    return -np.sum(p * np.log(np.where(p > 0, p, 1.0)), axis=axis)


def _routing(estimator, X, y=None):
    """Leaf weights of every sample, shape (n_samples, n_leaves): the gates'
    priors without ``y``, the posterior responsibilities with it."""
    _check_estimator(estimator)
    if y is None:
        return _as_numpy(estimator.predict_gates(X))
    return _as_numpy(estimator.predict_responsibilities(X, y))


def _check_labels(labels, n_samples, name="labels"):
    """``labels`` (or another per-sample array called ``name``) as a 1-D array
    with one entry per sample."""
    labels = np.asarray(host(labels))
    if labels.ndim != 1:
        raise ValueError(
            f"{name} has shape {labels.shape}; expected a 1-D array with one "
            "entry per row of X."
        )
    if labels.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {labels.shape[0]} entries but X has {n_samples} rows; "
            f"pass one entry of {name} per row of X."
        )
    return labels


def _check_routing(routing):
    if routing not in _ROUTINGS:
        raise ValueError(f"routing={routing!r}; expected 'hard' or 'soft'.")


def _expert_predictions(estimator, X):
    """Every expert's own prediction, whatever the gates say.

    Parameters
    ----------
    estimator : fitted mixture of experts
    X : ndarray of shape (n_samples, n_features)
        Inputs in the data's units, as NumPy.

    Returns
    -------
    predictions : ndarray
        Regressor: means of shape (n_samples, n_leaves). Classifier: class
        probabilities of shape (n_samples, n_leaves, n_classes), columns
        ordered as ``classes_``.
    """
    _check_estimator(estimator)
    X = np.asarray(host(X), dtype=float)
    is_classifier = hasattr(estimator, "classes_")
    if hasattr(estimator, "experts_"):
        if not is_classifier:
            return np.column_stack(
                [learner.predict(X) for learner in estimator.experts_]
            )
        n_classes = len(estimator.classes_)
        proba = np.zeros((X.shape[0], len(estimator.experts_), n_classes))
        for leaf, learner in enumerate(estimator.experts_):
            # The learners are fit on class indices into classes_.
            columns = np.asarray(learner.classes_, dtype=np.intp)
            proba[:, leaf, columns] = learner.predict_proba(X)
        return proba
    coef = _as_numpy(estimator.expert_coef_)
    intercept = _as_numpy(estimator.expert_intercept_)
    if not is_classifier:
        return X @ coef.T + intercept  # mu_j(x) = beta_j^T x + b_j
    logits = np.einsum("nf,lfc->nlc", X, coef) + intercept
    logits -= logits.max(axis=2, keepdims=True)
    proba = np.exp(logits)
    return proba / proba.sum(axis=2, keepdims=True)


# -- public diagnostics -------------------------------------------------------


def expert_load(estimator, X, y=None):
    """Share of the data that each expert takes.

    The mean over samples of the leaf priors ``pi_j(x_i)``
    (``predict_gates``), or of the posterior responsibilities ``r_ij``
    (``predict_responsibilities``) when ``y`` is given.

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor or MixtureOfExpertsClassifier
        A fitted mixture of experts.
    X : array-like of shape (n_samples, n_features)
        Inputs.
    y : array-like of shape (n_samples,), default=None
        Targets. ``None`` measures the gates' routing; given, the posterior
        routing that EM trains the experts with.

    Returns
    -------
    load : ndarray of shape (n_leaves,)
        Share of every leaf's expert; non-negative, sums to 1.

    Examples
    --------
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> from hmexperts.datasets import make_moe
    >>> from hmexperts.diagnostics import expert_load
    >>> X, y, _ = make_moe(200, random_state=0)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    >>> load = expert_load(model, X, y)
    >>> load.shape, round(float(load.sum()), 6)
    ((2,), 1.0)
    """
    return _routing(estimator, X, y).mean(axis=0)


def effective_n_experts(estimator, X, y=None):
    """Number of experts in effective use: the perplexity of the load.

    With the load ``l_j`` of ``expert_load``, the effective number of experts
    is ``exp(H(l)) = exp(-sum_j l_j log l_j)``: ``n_leaves`` when every expert
    takes the same share, 1 when one expert takes all the data, and ``k`` when
    ``k`` experts share it evenly and the others take nothing.

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor or MixtureOfExpertsClassifier
        A fitted mixture of experts.
    X : array-like of shape (n_samples, n_features)
        Inputs.
    y : array-like of shape (n_samples,), default=None
        Targets; given, the load is of the posterior responsibilities instead
        of the gates' priors.

    Returns
    -------
    n_effective : float
        In ``[1, n_leaves]``.

    Examples
    --------
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> from hmexperts.datasets import make_moe
    >>> from hmexperts.diagnostics import effective_n_experts
    >>> X, y, _ = make_moe(200, random_state=0)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    >>> n_effective = effective_n_experts(model, X)
    >>> bool(1.0 <= n_effective <= 2.0)
    True
    """
    load = expert_load(estimator, X, y)
    return float(np.exp(_entropy(load)))


def gate_entropy(estimator, X, *, level=None):
    """Mean entropy of the gates' routing: low means hard, confident routing.

    ``level=None``: the mean over samples of the entropy of the leaf prior,
    ``H(pi(x)) = -sum_j pi_j(x) log pi_j(x)``, between 0 (every sample goes to
    one leaf) and ``log(n_leaves)`` (uniform priors).

    ``level=l``: the entropy of the choice made at level ``l`` of the tree,
    ``sum_v P(v | x) H(g_v(. | x))`` averaged over samples, where ``v`` runs
    over the gates of level ``l`` (depth ``l`` from the root; in a tree of
    any shape, ``tree_.depth``), ``P(v | x)`` is the prior of reaching gate
    ``v`` and ``g_v(. | x)`` is its softmax over its children. It lies
    between 0 and the log of the most children of a gate of that level
    (``log(n_experts)`` in a balanced tree); by the chain rule of entropy
    the levels' values sum to the value for ``level=None``.

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor or MixtureOfExpertsClassifier
        A fitted mixture of experts.
    X : array-like of shape (n_samples, n_features)
        Inputs.
    level : int, default=None
        Gate level, from 0 (the root) to ``tree_.max_depth - 1`` (``depth -
        1`` in a balanced tree); ``None`` for the leaf prior as a whole.

    Returns
    -------
    entropy : float
        Mean entropy in nats.

    Examples
    --------
    >>> import numpy as np
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> from hmexperts.datasets import make_moe
    >>> from hmexperts.diagnostics import gate_entropy
    >>> X, y, _ = make_moe(200, n_experts=2, depth=2, random_state=0)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, depth=2, random_state=0)
    >>> model = model.fit(X, y)
    >>> total = gate_entropy(model, X)
    >>> bool(0 <= total <= np.log(4))
    True
    >>> levels = gate_entropy(model, X, level=0) + gate_entropy(model, X, level=1)
    >>> bool(np.isclose(levels, total))
    True
    """
    prior = _routing(estimator, X)
    if level is None:
        return float(_entropy(prior).mean())
    tree = _tree(estimator)
    _check_level(level, tree)
    # H(level-l choice | path above) = H(nodes at l + 1) - H(nodes at l), the
    # leaves above level l in both
    above = _entropy(_node_mass(prior, tree, _cut(tree, level)))
    below = _entropy(_node_mass(prior, tree, _cut(tree, level + 1)))
    return float(np.maximum(below - above, 0.0).mean())


def specialisation_matrix(
    estimator, X, labels, y=None, *, routing="soft", normalize="expert"
):
    """Mass of every expert on every value of a cluster or class label.

    Entry ``(j, k)`` is the total routing weight of expert ``j`` on the
    samples with label value ``k``: ``sum_i w_ij [labels_i = k]``. The
    weights ``w_ij`` are the gates' priors (``predict_gates``) or, with
    ``y``, the posterior responsibilities (``predict_responsibilities``);
    with ``routing="hard"`` they are 1 for the most trusted expert of each
    sample and 0 elsewhere.

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor or MixtureOfExpertsClassifier
        A fitted mixture of experts.
    X : array-like of shape (n_samples, n_features)
        Inputs.
    labels : array-like of shape (n_samples,)
        A cluster or class label of every sample (any values ``np.unique``
        can sort), e.g. the true leaf of data from
        :func:`~hmexperts.datasets.make_moe`, or the classes.
    y : array-like of shape (n_samples,), default=None
        Targets; given, the routing is the posterior over leaves.
    routing : {"soft", "hard"}, default="soft"
        ``"soft"``: weights are the probabilities. ``"hard"``: every sample
        counts once, for its most probable leaf (``apply`` without ``y``,
        the arg-max of the responsibilities with it).
    normalize : {"expert", "label", "all"} or None, default="expert"
        ``"expert"``: every row sums to 1, the distribution of labels an
        expert receives (a row of NaN for an expert that receives nothing).
        ``"label"``: every column sums to 1, how a label's samples are shared
        among the experts. ``"all"``: the matrix sums to 1. ``None``: the
        raw masses, in samples.

    Returns
    -------
    matrix : ndarray of shape (n_leaves, n_labels)
        Experts in rows, label values in columns.
    label_values : ndarray of shape (n_labels,)
        The sorted label values of the columns.

    Examples
    --------
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> from hmexperts.datasets import make_moe
    >>> from hmexperts.diagnostics import specialisation_matrix
    >>> X, y, truth = make_moe(200, random_state=0)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    >>> matrix, values = specialisation_matrix(model, X, truth.leaf, y)
    >>> matrix.shape, values.tolist()
    ((2, 2), [0, 1])
    >>> matrix.sum(axis=1).round(6).tolist()
    [1.0, 1.0]
    """
    _check_routing(routing)
    if normalize not in _NORMALIZATIONS:
        raise ValueError(
            f"normalize={normalize!r}; expected 'expert', 'label', 'all' or None."
        )
    weights = _routing(estimator, X, y)
    labels = _check_labels(labels, weights.shape[0])
    if routing == "hard":
        leaf = _as_numpy(estimator.apply(X)) if y is None else weights.argmax(axis=1)
        weights = np.zeros_like(weights)
        weights[np.arange(weights.shape[0]), leaf] = 1.0
    label_values, codes = np.unique(labels, return_inverse=True)
    one_hot = codes.reshape(-1)[:, None] == np.arange(len(label_values))
    matrix = weights.T @ one_hot.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "expert":
            matrix = matrix / matrix.sum(axis=1, keepdims=True)
        elif normalize == "label":
            matrix = matrix / matrix.sum(axis=0, keepdims=True)
        elif normalize == "all":
            matrix = matrix / matrix.sum()
    return matrix, label_values


def dispatch_entropy(estimator, X, labels, y=None, *, routing="hard"):
    """Entropy of the labels each expert receives (Chen et al., 2022).

    For every expert, the entropy of the distribution of cluster or class
    ``labels`` among the samples routed to it: 0 when all of them share one
    label (the expert specialises on one cluster), ``log(n_labels)`` when it
    receives every label equally often. The distribution is a row of
    ``specialisation_matrix(..., normalize="expert")``.

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor or MixtureOfExpertsClassifier
        A fitted mixture of experts.
    X : array-like of shape (n_samples, n_features)
        Inputs.
    labels : array-like of shape (n_samples,)
        A cluster or class label of every sample.
    y : array-like of shape (n_samples,), default=None
        Targets; given, samples are routed by their posterior over leaves
        instead of the gates' prior.
    routing : {"hard", "soft"}, default="hard"
        ``"hard"``: top-1 routing, as in the paper; every sample goes to its
        most trusted expert (``apply``, or the arg-max of the
        responsibilities when ``y`` is given). ``"soft"``: every sample
        counts for every expert with its gate probability (or
        responsibility).

    Returns
    -------
    entropy : ndarray of shape (n_leaves,)
        Entropy in nats, in ``[0, log(n_labels)]``; NaN for an expert that
        receives no sample (possible only with hard routing).

    References
    ----------
    Z. Chen, Y. Deng, Y. Wu, Q. Gu and Y. Li (2022). Towards understanding
    mixture of experts in deep learning. NeurIPS 35.

    Examples
    --------
    >>> import numpy as np
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> from hmexperts.datasets import make_moe
    >>> from hmexperts.diagnostics import dispatch_entropy
    >>> X, y, truth = make_moe(200, random_state=0)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    >>> entropy = dispatch_entropy(model, X, truth.leaf)
    >>> entropy.shape
    (2,)
    >>> bool(np.all(entropy < np.log(2)))  # each expert mostly gets one true leaf
    True
    """
    matrix, _ = specialisation_matrix(
        estimator, X, labels, y, routing=routing, normalize="expert"
    )
    entropy = _entropy(matrix, axis=1)
    return np.where(np.isnan(matrix).any(axis=1), np.nan, entropy)
