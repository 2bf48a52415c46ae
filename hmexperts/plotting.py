"""Figures of a fitted mixture of experts, drawn with matplotlib.

Where the gates send the data (``plot_gate_regions``), what each expert
does in its own region (``plot_expert_boundaries``), how EM converged
(``plot_log_likelihood``), which clusters or classes each expert takes
(``plot_specialisation``) and how the data flow down the gate tree
(``plot_tree``). Every function draws on ``ax`` (a new figure when ``None``)
and returns it; expert ``j`` has the same colour in every figure.
matplotlib is an optional dependency: ``pip install "hmexperts[plot]"``.
"""

import warnings

import numpy as np

from ._array_api import device
from ._placement import host, to_namespace
from .diagnostics import (
    _as_numpy,
    _check_estimator,
    _check_labels,
    _check_level,
    _cut,
    _expert_predictions,
    _node_mass,
    _tree,
    expert_load,
    specialisation_matrix,
)

__all__ = [
    "plot_expert_boundaries",
    "plot_gate_regions",
    "plot_log_likelihood",
    "plot_specialisation",
    "plot_tree",
]

# Marker and fill of every class in scatter plots: colour is kept for the
# experts, so classes differ in shape and in a black, white or grey fill.
_CLASS_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_CLASS_FILLS = ("0.1", "w", "0.6")
# Margin of a plotting grid around the data, as a share of the data's range.
_MARGIN = 0.05


# -- helpers ------------------------------------------------------------------


def _pyplot():
    """``matplotlib.pyplot``, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        message = 'hmexperts.plotting needs matplotlib: pip install "hmexperts[plot]"'
        raise ImportError(message) from error
    return plt


def _new_ax(ax, figsize=None):
    """``ax``, or the axes of a new figure."""
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
    return ax


def _colors(n):
    """``n`` distinct RGBA colours; colour ``j`` is expert ``j``'s everywhere."""
    import matplotlib as mpl

    if n <= 10:
        return mpl.colormaps["tab10"](np.arange(n))
    if n <= 20:
        # The ten strong colours first, then their light partners.
        order = np.r_[np.arange(0, 20, 2), np.arange(1, 20, 2)]
        return mpl.colormaps["tab20"](order[:n])
    return mpl.colormaps["turbo"](np.linspace(0.05, 0.95, n))


def _subtree_colors(n):
    """Colours of the subtrees below a level of inner gates: another palette
    than the experts', so that no subtree looks like a single expert."""
    import matplotlib as mpl

    if n <= 7:
        # Set2 without its orange, which is close to tab10's.
        return mpl.colormaps["Set2"](np.array([0, 2, 3, 4, 5, 6, 7])[:n])
    return _colors(n)


def _pale(color, strength):
    """``color`` blended with white: ``strength`` 1 is the colour, 0 white."""
    strength = np.asarray(strength, dtype=float)[..., None]
    return 1.0 - strength * (1.0 - np.asarray(color)[..., :3])


def _dark(color, factor=0.65):
    """A darker shade of ``color`` (RGB)."""
    return np.asarray(color)[:3] * factor


def _call(method, X):
    """``method(X)`` as NumPy, on a NumPy array even when the estimator saw
    feature names: the grids are built column by column from the data. A
    model fit on arrays of another library (PyTorch, CuPy) gets the grid in
    that library and on that device, which its methods require."""
    placement = method.__self__._placement
    if placement.fit_input[0] != "numpy":
        X = to_namespace(X, placement.xp, device(placement.anchor))
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="X does not have valid feature names",
            category=UserWarning,
        )
        return _as_numpy(method(X))


def _data(estimator, X):
    """``X`` as a 2-D float array with the estimator's number of features."""
    X = np.asarray(host(X), dtype=float)
    if X.ndim != 2:
        raise ValueError(
            f"X has shape {X.shape}; expected a 2-D array (n_samples, n_features)."
        )
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} was fit "
            f"on {estimator.n_features_in_}."
        )
    return X


def _feature_names(estimator, n_features):
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return [f"feature {i}" for i in range(n_features)]
    return [str(name) for name in names]


def _feature_index(estimator, feature, n_features):
    names = getattr(estimator, "feature_names_in_", None)
    if isinstance(feature, str):
        if names is None:
            raise ValueError(
                f"features has the name {feature!r}, but the estimator was fit "
                "without feature names; pass column indices."
            )
        matches = np.flatnonzero(np.asarray(names) == feature)
        if len(matches) == 0:
            raise ValueError(
                f"features has the name {feature!r}, which is not among the "
                f"estimator's feature_names_in_ {list(names)}."
            )
        return int(matches[0])
    if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)):
        raise ValueError(
            f"features holds {feature!r}; expected column indices or names."
        )
    if not 0 <= feature < n_features:
        raise ValueError(
            f"features holds {feature}, out of range for X with {n_features} "
            f"features (indices 0 to {n_features - 1})."
        )
    return int(feature)


def _select_features(estimator, n_features, features, function):
    """The two plotted columns: ``features``, or all of X when it has two."""
    if features is None:
        if n_features == 2:
            return [0, 1]
        raise ValueError(
            f"X has {n_features} features and {function} draws a plane of two: "
            "pass features=(i, j), two column indices (or names), to choose "
            "them; the other features are held at their median."
        )
    if isinstance(features, (str, int, np.integer)) or len(features) != 2:
        raise ValueError(
            f"features={features!r}; expected a pair of column indices or names."
        )
    pair = [_feature_index(estimator, f, n_features) for f in features]
    if pair[0] == pair[1]:
        raise ValueError(f"features={features!r} names the same column twice.")
    return pair


def _axis_grid(values, resolution):
    lo, hi = float(values.min()), float(values.max())
    pad = _MARGIN * (hi - lo) if hi > lo else 0.5
    return np.linspace(lo - pad, hi + pad, resolution)


def _plane(X, pair, resolution):
    """A grid over the plane of columns ``pair`` spanning X (with a margin),
    the other columns at their median: the grid's axes and its rows."""
    u = _axis_grid(X[:, pair[0]], resolution)
    v = _axis_grid(X[:, pair[1]], resolution)
    uu, vv = np.meshgrid(u, v)
    rows = np.tile(np.median(X, axis=0), (uu.size, 1))
    rows[:, pair[0]], rows[:, pair[1]] = uu.ravel(), vv.ravel()
    return u, v, rows


def _plane_title(title, feature_names, pair):
    """``title``, with a second line naming the features held at their median."""
    others = [name for i, name in enumerate(feature_names) if i not in pair]
    if not others:
        return title
    if len(others) == 1:
        return f"{title}\n({others[0]} at its median)"
    return f"{title}\n(other features at their medians)"


def _check_resolution(resolution):
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, (int, np.integer))
        or resolution < 2
    ):
        raise ValueError(f"resolution={resolution!r}; expected an integer >= 2.")


def _regions(tree, level):
    """The subtrees that the gates of ``level`` (``None``: every gate) choose
    among, with their names and colours: ``"expert j"`` in expert ``j``'s
    colour for a node with one leaf below it, ``"experts a-b"`` in a
    subtree colour for a node with the leaves ``a`` to ``b`` below it. The
    leaves above ``level`` are regions of their own.

    Returns
    -------
    nodes : list of int
        The regions' nodes, in leaf order.
    names : list of str
    colors : ndarray of shape (n_regions, 4)
    """
    nodes = _cut(tree, tree.max_depth if level is None else level + 1)
    expert_colors = _colors(tree.n_leaves)
    spans = [tree.ranges[v] for v in nodes]
    subtrees = [i for i, (lo, hi) in enumerate(spans) if hi - lo > 1]
    subtree_colors = _subtree_colors(len(subtrees))
    names, colors = [], []
    for i, (lo, hi) in enumerate(spans):
        if hi - lo == 1:
            names.append(f"expert {lo}")
            colors.append(expert_colors[lo])
        else:
            names.append(f"experts {lo}\u2013{hi - 1}")
            colors.append(subtree_colors[subtrees.index(i)])
    return nodes, names, np.asarray(colors)


def _scatter_data(ax, estimator, x, y_values):
    """The data on top of a plot: black dots, one marker per class for a
    classifier's ``y``, or coloured by a regression target ``y``."""
    if y_values is None:
        ax.scatter(x[:, 0], x[:, 1], s=10, c="k", edgecolors="w", linewidths=0.4)
        return []
    y_values = _check_labels(y_values, len(x), name="y")
    if hasattr(estimator, "classes_"):
        handles = []
        for k, value in enumerate(np.unique(y_values)):
            rows = y_values == value
            handles.append(
                ax.scatter(
                    x[rows, 0],
                    x[rows, 1],
                    s=18,
                    marker=_CLASS_MARKERS[k % len(_CLASS_MARKERS)],
                    c=_CLASS_FILLS[k % len(_CLASS_FILLS)],
                    edgecolors="k",
                    linewidths=0.6,
                    label=f"class {value}",
                )
            )
        return handles
    points = ax.scatter(
        x[:, 0],
        x[:, 1],
        s=14,
        c=np.asarray(y_values, dtype=float),
        cmap="Greys",
        edgecolors="k",
        linewidths=0.4,
    )
    ax.figure.colorbar(points, ax=ax, label="y", shrink=0.8)
    return []


def _outside_legend(ax, handles, title):
    """A legend to the right of the axes, kept when another one is added."""
    legend = ax.legend(
        handles=handles,
        title=title,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize="small",
        title_fontsize="small",
        alignment="left",
    )
    ax.add_artist(legend)
    # add_artist clips to the axes, which would leave the legend out of the
    # figure's layout.
    legend.set_clip_on(False)
    return legend


# -- public plots -------------------------------------------------------------


def plot_gate_regions(
    estimator, X, y=None, *, level=None, features=None, resolution=200, ax=None
):
    """Where the gates send the inputs: the region of every expert.

    Over a grid spanning ``X`` (plus a 5 % margin), every point is coloured by
    its most trusted leaf (the arg-max of ``predict_gates``), or with
    ``level`` by the subtree that the gates of that level choose. The colour
    is paler where that choice is less sure: its strength grows with the
    winner's probability, from white-ish at ``1 / n_regions`` to the full
    colour at 1. The data are drawn on top. With a single feature the gate
    probabilities are drawn as curves against it instead.

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor or MixtureOfExpertsClassifier
        A fitted mixture of experts.
    X : array-like of shape (n_samples, n_features)
        Inputs: they set the grid's span, and are drawn as points.
    y : array-like of shape (n_samples,), default=None
        Targets, to tell the points apart: one marker per class for a
        classifier, a grey scale (with a colour bar) for a regressor. Not
        used with a single feature.
    level : int, default=None
        ``None``: regions of the leaves. An integer from 0 (the root gate) to
        ``depth - 1`` (``tree_.max_depth - 1`` in a tree of any shape):
        regions of the subtrees below the gates of that level (the leaves
        for the last level), named by the leaves they hold; a leaf above
        that level is a region of its own.
    features : pair of int or str, default=None
        The two columns to draw, as indices or as names of
        ``feature_names_in_``; the other features are held at their median.
        Required when ``X`` has more than two features.
    resolution : int, default=200
        Grid points along each axis.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when ``None``.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.

    Examples
    --------
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> from hmexperts.datasets import make_moe
    >>> from hmexperts.plotting import plot_gate_regions
    >>> X, y, _ = make_moe(200, random_state=0)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    >>> ax = plot_gate_regions(model, X, resolution=50)
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('feature 0', 'feature 1')
    """
    _pyplot()
    _check_estimator(estimator)
    _check_resolution(resolution)
    X = _data(estimator, X)
    tree = _tree(estimator)
    if level is not None:
        _check_level(level, tree)
    nodes, names, colors = _regions(tree, level)
    feature_names = _feature_names(estimator, X.shape[1])

    if X.shape[1] == 1 and features is None:
        ax = _plot_gate_curves(
            estimator, X, nodes, names, colors, feature_names[0], resolution, ax
        )
        ax.set_title(
            "Gate probabilities" + ("" if level is None else f", level {level}")
        )
        return ax
    pair = _select_features(estimator, X.shape[1], features, "plot_gate_regions")
    u, v, rows = _plane(X, pair, resolution)
    prior = _call(estimator.predict_gates, rows)
    mass = _node_mass(prior, tree, nodes)
    winner = mass.argmax(axis=1)
    certainty = _certainty(mass.max(axis=1), len(names))
    image = _pale(colors[winner], 0.1 + 0.6 * certainty)

    ax = _new_ax(ax)
    ax.imshow(
        image.reshape(len(v), len(u), 3),
        origin="lower",
        extent=(u[0], u[-1], v[0], v[-1]),
        aspect="auto",
        interpolation="nearest",
    )
    handles = _scatter_data(ax, estimator, X[:, pair], y)
    ax.set_xlabel(feature_names[pair[0]])
    ax.set_ylabel(feature_names[pair[1]])
    title = "Gate regions" + ("" if level is None else f", level {level}")
    ax.set_title(_plane_title(title, feature_names, pair))
    _outside_legend(
        ax, _region_handles(names, colors), "most trusted\n(paler: less sure)"
    )
    if handles:
        ax.legend(
            handles=handles,
            loc="lower left",
            bbox_to_anchor=(1.02, 0.0),
            borderaxespad=0.0,
            fontsize="small",
        )
    return ax


def _certainty(p_max, n_regions):
    """The winner's probability rescaled from ``[1 / n_regions, 1]`` to [0, 1]."""
    if n_regions == 1:
        return np.ones_like(p_max)
    return np.clip((p_max - 1 / n_regions) / (1 - 1 / n_regions), 0.0, 1.0)


def _region_handles(names, colors):
    from matplotlib.patches import Patch

    return [
        Patch(facecolor=_pale(color, 0.7), edgecolor=_dark(color), label=name)
        for name, color in zip(names, colors, strict=True)
    ]


def _plot_gate_curves(estimator, X, nodes, names, colors, feature_name, resolution, ax):
    """One feature: the probability of every region (the subtrees below
    ``nodes``) against it, the winner's colour behind, the data as a rug."""
    x = _axis_grid(X[:, 0], max(resolution, 2))
    mass = _node_mass(
        _call(estimator.predict_gates, x[:, None]), _tree(estimator), nodes
    )
    winner = mass.argmax(axis=1)
    certainty = _certainty(mass.max(axis=1), len(names))
    ax = _new_ax(ax)
    ax.imshow(
        _pale(colors[winner], 0.1 + 0.25 * certainty)[None, :, :],
        origin="lower",
        extent=(x[0], x[-1], 0.0, 1.0),
        aspect="auto",
        interpolation="nearest",
    )
    for k, (name, color) in enumerate(zip(names, colors, strict=True)):
        ax.plot(x, mass[:, k], color=color, lw=2, label=name)
    ax.plot(X[:, 0], np.full(len(X), -0.04), "|", color="k", ms=6, alpha=0.5)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(-0.08, 1.05)
    ax.set_xlabel(feature_name)
    ax.set_ylabel("gate probability")
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize="small",
    )
    return ax


def plot_expert_boundaries(
    estimator, X, y=None, *, features=None, resolution=200, ax=None
):
    """What every expert does in the region where it is the most trusted.

    For a classifier (two features, or two chosen by ``features``): the
    input plane is shaded by the most trusted expert (``apply``), and inside
    its region every expert's own decision boundary is drawn in its colour:
    the lines where its most probable class changes (for two classes, its
    ``p = 0.5`` contour). The mixture predicts with these pieces. An expert
    that predicts the same class throughout its region draws no line.

    For a regressor with one feature: every expert's own regression function
    against ``x``, solid where it is the most trusted expert and faint and
    dashed elsewhere, with the mixture's prediction and the data.

    Built-in experts and learner experts (``experts_``, through their
    ``predict`` and ``predict_proba``) are both supported.

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor or MixtureOfExpertsClassifier
        A fitted mixture of experts.
    X : array-like of shape (n_samples, n_features)
        Inputs: they set the plotted span, and are drawn as points.
    y : array-like of shape (n_samples,), default=None
        Targets: classes (one marker each) or regression targets (a scatter
        plot). ``None`` draws the inputs without targets (classifier) or no
        data (regressor).
    features : pair of int or str, default=None
        Classifier only: the two columns to draw, as indices or names of
        ``feature_names_in_``; the other features are held at their median.
        Required when ``X`` has more than two features.
    resolution : int, default=200
        Grid points along each axis.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when ``None``.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.

    Examples
    --------
    >>> import numpy as np
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> from hmexperts.plotting import plot_expert_boundaries
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-3, 3, size=(200, 1))
    >>> y = np.abs(X[:, 0]) + 0.1 * rng.normal(size=200)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    >>> ax = plot_expert_boundaries(model, X, y)
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('feature 0', 'y')
    """
    _pyplot()
    _check_estimator(estimator)
    _check_resolution(resolution)
    X = _data(estimator, X)
    if hasattr(estimator, "classes_"):
        return _classifier_boundaries(estimator, X, y, features, resolution, ax)
    if X.shape[1] != 1:
        raise ValueError(
            f"plot_expert_boundaries draws a regressor's experts as lines against "
            f"its single feature, but X has {X.shape[1]} features. Use "
            "plot_gate_regions to see where each expert is trusted."
        )
    if features is not None:
        raise ValueError(
            "features= applies to classifiers; a regressor is drawn against its "
            "single feature."
        )
    return _regressor_lines(estimator, X, y, resolution, ax)


def _classifier_boundaries(estimator, X, y, features, resolution, ax):
    if X.shape[1] < 2:
        raise ValueError(
            "plot_expert_boundaries draws a classifier's experts in a plane of two "
            f"features, but X has {X.shape[1]}."
        )
    pair = _select_features(estimator, X.shape[1], features, "plot_expert_boundaries")
    u, v, rows = _plane(X, pair, resolution)
    winner = _call(estimator.apply, rows)
    proba = _expert_predictions(estimator, rows)  # (n_grid, n_leaves, n_classes)
    n_leaves, n_classes = proba.shape[1], proba.shape[2]
    colors = _colors(n_leaves)

    ax = _new_ax(ax)
    ax.imshow(
        _pale(colors[winner], 0.3).reshape(len(v), len(u), 3),
        origin="lower",
        extent=(u[0], u[-1], v[0], v[-1]),
        aspect="auto",
        interpolation="nearest",
    )
    uu, vv = np.meshgrid(u, v)
    # Class c's region of expert j ends where p_jc = max over c' != c of p_jc';
    # with two classes one of them draws the whole boundary.
    classes = [1] if n_classes == 2 else range(n_classes)
    # What the legend says of every expert: "line" (a boundary drawn), or the
    # one class it predicts throughout its region, or that it has no region.
    drawn = [None] * n_leaves
    class_labels = _as_numpy(estimator.classes_)
    for leaf in range(n_leaves):
        outside = (winner != leaf).reshape(uu.shape)
        if outside.all():
            continue
        inside_class = np.argmax(proba[~outside.ravel(), leaf, :], axis=1)
        drawn[leaf] = class_labels[inside_class[0]]
        for c in classes:
            others = np.delete(proba[:, leaf, :], c, axis=1).max(axis=1)
            margin = (proba[:, leaf, c] - others).reshape(uu.shape)
            inside = margin[~outside]
            if not (inside.min() < 0 < inside.max()):
                continue  # no boundary of this class in the expert's region
            contours = ax.contour(
                uu,
                vv,
                np.ma.masked_where(outside, margin),
                levels=[0.0],
                colors=[_dark(colors[leaf])],
                linewidths=2,
            )
            contours.set_gid(f"expert {leaf}")
            drawn[leaf] = "line"
    handles = _scatter_data(ax, estimator, X[:, pair], y)
    feature_names = _feature_names(estimator, X.shape[1])
    ax.set_xlabel(feature_names[pair[0]])
    ax.set_ylabel(feature_names[pair[1]])
    title = "Experts' decision boundaries in their regions"
    ax.set_title(_plane_title(title, feature_names, pair))
    _outside_legend(
        ax,
        _boundary_handles(colors, drawn),
        "most trusted expert\n(line: its class boundary)",
    )
    if handles:
        ax.legend(
            handles=handles,
            loc="lower left",
            bbox_to_anchor=(1.02, 0.0),
            borderaxespad=0.0,
            fontsize="small",
        )
    return ax


def _boundary_handles(colors, drawn):
    """Legend entries: the region's colour, with a line for the experts that
    drew a boundary; the others say why they drew none."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    for j, (color, what) in enumerate(zip(colors, drawn, strict=True)):
        if what == "line":
            handles.append(
                Line2D(
                    [],
                    [],
                    color=_dark(color),
                    lw=2,
                    marker="s",
                    markersize=10,
                    markerfacecolor=_pale(color, 0.3),
                    markeredgecolor=_pale(color, 0.3),
                    label=f"expert {j}",
                )
            )
            continue
        note = "no region" if what is None else f"one class: {what}"
        handles.append(Patch(color=_pale(color, 0.3), label=f"expert {j} ({note})"))
    return handles


def _regressor_lines(estimator, X, y, resolution, ax):
    x = _axis_grid(X[:, 0], resolution)
    rows = x[:, None]
    winner = _call(estimator.apply, rows)
    mean = _call(estimator.predict, rows)
    lines = _expert_predictions(estimator, rows)  # (n_grid, n_leaves)
    colors = _colors(lines.shape[1])
    ax = _new_ax(ax)
    if y is not None:
        y = np.asarray(_check_labels(y, len(X), name="y"), dtype=float)
        ax.scatter(X[:, 0], y, s=8, color="0.6", label="data", zorder=1)
    for leaf, color in enumerate(colors):
        ax.plot(x, lines[:, leaf], color=color, lw=1, ls="--", alpha=0.5, zorder=2)
        trusted = np.where(winner == leaf, lines[:, leaf], np.nan)
        ax.plot(x, trusted, color=color, lw=4, label=f"expert {leaf}", zorder=3)
    ax.plot([], [], color="0.5", lw=1, ls="--", label="expert, not\nmost trusted")
    ax.plot(x, mean, color="k", lw=1, label="mixture mean", zorder=4)
    # The dashed lines extrapolate: keep the view on the data and the fit.
    shown = [mean] if y is None else [mean, y]
    lo, hi = min(np.min(s) for s in shown), max(np.max(s) for s in shown)
    pad = 0.1 * (hi - lo) if hi > lo else 1.0
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlim(x[0], x[-1])
    ax.set_xlabel(_feature_names(estimator, 1)[0])
    ax.set_ylabel("y")
    ax.set_title("Experts (solid where most trusted)")
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize="small",
    )
    return ax


def plot_log_likelihood(estimator, *, ax=None):
    """The EM objective against the iteration: how the fit converged.

    Draws ``lower_bounds_``, the penalised mean log-likelihood per sample
    after initialisation (iteration 0) and after every EM iteration. With
    built-in experts it never decreases.

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor or MixtureOfExpertsClassifier
        A fitted mixture of experts.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when ``None``.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.

    Examples
    --------
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> from hmexperts.datasets import make_moe
    >>> from hmexperts.plotting import plot_log_likelihood
    >>> X, y, _ = make_moe(200, random_state=0)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    >>> ax = plot_log_likelihood(model)
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('EM iteration', 'penalised mean log-likelihood')
    """
    _pyplot()
    from matplotlib.ticker import MaxNLocator

    _check_estimator(estimator)
    bounds = np.asarray(estimator.lower_bounds_, dtype=float)
    ax = _new_ax(ax)
    ax.plot(np.arange(len(bounds)), bounds, marker="o", ms=3, lw=1.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("penalised mean log-likelihood")
    converged = getattr(estimator, "converged_", None)
    status = {True: "converged", False: "not converged"}.get(converged, "")
    ax.set_title(f"EM: {len(bounds) - 1} iterations, {status}".rstrip(", "))
    ax.grid(alpha=0.3)
    return ax


def _tree_fontsize(ax, n_leaves, depth):
    """Font size of the tree's labels, and whether to drop their words.

    A leaf's box ("expert 12", about 6 em wide; "12" alone, about 3 em) must
    fit in its share of the axes' width, and two lines of text in the height
    of a level. Below 6 points the words go.
    """
    position = ax.get_position()
    width = position.width * ax.figure.get_figwidth() / n_leaves
    height = position.height * ax.figure.get_figheight() / (depth + 1)
    tallest = 0.6 * 72 * height / 3
    fontsize = min(0.85 * 72 * width / 6, tallest, 9.0)
    if fontsize >= 6:
        return fontsize, False
    return float(np.clip(min(0.85 * 72 * width / 3, tallest, 9.0), 3.0, 9.0)), True


def plot_specialisation(
    estimator,
    X,
    labels,
    y=None,
    *,
    routing="soft",
    normalize="expert",
    annotate=True,
    cmap="Blues",
    ax=None,
):
    """Heat map of every expert's share of every cluster or class.

    Draws :func:`~hmexperts.diagnostics.specialisation_matrix`, experts in
    rows and label values in columns. With ``normalize="expert"`` a row is
    the distribution of labels an expert receives: a specialised expert has
    a single dark cell in its row.

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor or MixtureOfExpertsClassifier
        A fitted mixture of experts.
    X : array-like of shape (n_samples, n_features)
        Inputs.
    labels : array-like of shape (n_samples,)
        A cluster or class label of every sample.
    y : array-like of shape (n_samples,), default=None
        Targets; given, the routing is the posterior over leaves instead of
        the gates' prior.
    routing : {"soft", "hard"}, default="soft"
        Probabilities, or one count per sample for its most probable leaf.
    normalize : {"expert", "label", "all"} or None, default="expert"
        Rows sum to 1, columns sum to 1, the matrix sums to 1, or raw masses
        in samples; see :func:`~hmexperts.diagnostics.specialisation_matrix`.
    annotate : bool, default=True
        Write every cell's value in it.
    cmap : str or matplotlib Colormap, default="Blues"
        Colour map of the cells.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when ``None``.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.

    Examples
    --------
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> from hmexperts.datasets import make_moe
    >>> from hmexperts.plotting import plot_specialisation
    >>> X, y, truth = make_moe(200, random_state=0)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    >>> ax = plot_specialisation(model, X, truth.leaf, y)
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('label', 'expert')
    """
    _pyplot()
    matrix, values = specialisation_matrix(
        estimator, X, labels, y, routing=routing, normalize=normalize
    )
    n_leaves, n_labels = matrix.shape
    width = min(max(4.5, 2.5 + 0.6 * n_labels), 16.0)
    ax = _new_ax(ax, figsize=(width, min(max(3.0, 1.5 + 0.45 * n_leaves), 12.0)))
    vmax = 1.0 if normalize is not None else max(float(np.nanmax(matrix)), 1e-12)
    image = ax.imshow(matrix, cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto")
    if annotate:
        fontsize = "small" if max(n_leaves, n_labels) <= 12 else "xx-small"
        fmt = "{:.0f}" if normalize is None else "{:.2f}"
        for j in range(n_leaves):
            for k in range(n_labels):
                value = matrix[j, k]
                text = "\u2013" if np.isnan(value) else fmt.format(value)
                dark = not np.isnan(value) and value > 0.6 * vmax
                ax.text(
                    k,
                    j,
                    text,
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color="w" if dark else "k",
                )
    ax.set_xticks(np.arange(n_labels), [str(value) for value in values])
    ax.set_yticks(np.arange(n_leaves), [f"expert {j}" for j in range(n_leaves)])
    ax.set_xlabel("label")
    ax.set_ylabel("expert")
    ax.set_title("Expert specialisation")
    colorbar_label = {
        "expert": "share of the expert's samples",
        "label": "share of the label's samples",
        "all": "share of all samples",
        None: "samples",
    }[normalize]
    ax.figure.colorbar(image, ax=ax, label=colorbar_label)
    return ax


def plot_tree(estimator, X, y=None, *, ax=None):
    """The gate tree with the share of the data that reaches every node.

    The root is at the top, gates are round nodes and the experts are boxes
    (in their colours), every node one row below its gate: in a balanced
    tree the experts make the bottom row, in a tree of any shape
    (``tree_``) an expert sits at its own depth. The experts are spread
    evenly in the order of their numbers and every gate is above the
    middle of its children. Every node shows the share of the data it
    routes, the sum of the loads
    (:func:`~hmexperts.diagnostics.expert_load`) of the leaves below it, and
    every edge is as wide as the share that flows along it.

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor or MixtureOfExpertsClassifier
        A fitted mixture of experts.
    X : array-like of shape (n_samples, n_features)
        Inputs.
    y : array-like of shape (n_samples,), default=None
        Targets; given, the shares are of the posterior responsibilities
        instead of the gates' priors.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure when ``None``.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.

    Examples
    --------
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> from hmexperts.datasets import make_moe
    >>> from hmexperts.plotting import plot_tree
    >>> X, y, _ = make_moe(200, n_experts=2, depth=2, random_state=0)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, depth=2, random_state=0)
    >>> ax = plot_tree(model.fit(X, y), X)
    >>> len(ax.texts)  # the root, two gates and four experts
    7
    """
    _pyplot()
    load = expert_load(estimator, X, y)
    tree = _tree(estimator)
    depth = tree.max_depth
    n_leaves = len(load)
    colors = _colors(n_leaves)
    ax = _new_ax(
        ax, figsize=(min(max(5.0, 1.1 * n_leaves + 1), 16.0), 1.4 * depth + 1.8)
    )
    fontsize, compact = _tree_fontsize(ax, n_leaves, depth)
    order = [0]  # breadth first, parents before their children
    for v in order:
        order.extend(tree.children[v])
    # Leaves evenly spaced; a gate sits above the middle of its children.
    x = np.zeros(tree.n_nodes)
    x[list(tree.leaves)] = np.arange(n_leaves, dtype=float)
    for v in reversed(order):
        if tree.children[v]:
            x[v] = np.mean(x[list(tree.children[v])])
    height = depth - np.asarray(tree.depth, dtype=float)
    share = _node_mass(load, tree, range(tree.n_nodes))
    for v in order[1:]:
        parent = tree.parent[v]
        ax.plot(
            [x[parent], x[v]],
            [height[parent], height[v]],
            color="0.55",
            lw=0.5 + 1.3 * fontsize * share[v],
            solid_capstyle="round",
            zorder=1,
        )
    for v in order:
        if not tree.children[v]:
            continue
        name = "" if compact else ("root\n" if v == 0 else "gate\n")
        ax.text(
            x[v],
            height[v],
            f"{name}{share[v]:.0%}",
            ha="center",
            va="center",
            fontsize=fontsize,
            bbox={"boxstyle": "circle", "fc": "0.93", "ec": "0.4"},
            zorder=2,
        )
    for leaf, v in enumerate(tree.leaves):
        ax.text(
            x[v],
            height[v],
            f"{'' if compact else 'expert '}{leaf}\n{load[leaf]:.0%}",
            ha="center",
            va="center",
            fontsize=fontsize,
            bbox={
                "boxstyle": "round,pad=0.3",
                "fc": _pale(colors[leaf], 0.45),
                "ec": _dark(colors[leaf]),
            },
            zorder=2,
        )
    ax.set_xlim(-0.6, n_leaves - 0.4)
    ax.set_ylim(-0.5, depth + 0.5)
    ax.set_axis_off()
    source = "gate priors" if y is None else "posterior responsibilities"
    ax.set_title(f"Share of the data at every node\n({source})")
    return ax
