"""Figures: they draw, say what they show, and show what the model does.

Beyond "a figure is produced", the tests check the drawn data against the
model: region colours against ``predict_gates``, boundaries inside the
regions of their experts, line segments where their expert is the most
trusted, the heat map against ``specialisation_matrix``, and that the
tree's labels do not overlap. Trees of any shape (leaves at several depths,
gates of two and three children) draw their regions and their nodes where
``tree_`` puts them.
"""

import itertools
import re
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

import hmexperts.plotting  # noqa: E402
from hmexperts import (  # noqa: E402
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)
from hmexperts.datasets import make_moe  # noqa: E402
from hmexperts.diagnostics import specialisation_matrix  # noqa: E402
from hmexperts.plotting import (  # noqa: E402
    plot_expert_boundaries,
    plot_gate_regions,
    plot_log_likelihood,
    plot_specialisation,
    plot_tree,
)

RESOLUTION = 60


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def classifier():
    """Four experts on three classes in the plane."""
    X, y, truth = make_moe(
        400, task="classification", n_classes=3, n_experts=4, random_state=1
    )
    model = MixtureOfExpertsClassifier(n_experts=4, random_state=0).fit(X, y)
    return model, X, y, truth


@pytest.fixture(scope="module")
def binary():
    X, y, _ = make_moe(300, task="classification", n_classes=2, random_state=3)
    return MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(X, y), X, y


@pytest.fixture(scope="module")
def hme():
    X, y, truth = make_moe(400, n_experts=2, depth=2, random_state=0)
    model = MixtureOfExpertsRegressor(n_experts=2, depth=2, random_state=0)
    return model.fit(X, y), X, y, truth


@pytest.fixture(scope="module")
def unbalanced():
    """The root's three children: a gate (of leaf 0 and a gate of leaves 1
    and 2), leaf 3 and a gate of leaves 4-6."""
    X, y, _ = make_moe(400, n_experts=2, depth=3, random_state=0)
    model = MixtureOfExpertsRegressor(tree=[[0, [1, 2]], 3, [4, 5, 6]], random_state=0)
    return model.fit(X, y), X, y


@pytest.fixture(scope="module")
def piecewise():
    """Three linear pieces of one feature, three experts."""
    rng = np.random.RandomState(0)
    x = rng.uniform(-3, 3, 300)
    y = np.where(x < -1, -x, np.where(x < 1, 1.0, 2 * x - 1)) + 0.1 * rng.normal(
        size=300
    )
    X = x[:, None]
    return MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y), X, y


@pytest.fixture(scope="module")
def three_features():
    X, y, _ = make_moe(200, n_features=3, random_state=0)
    return MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y), X, y


def _draw(ax):
    ax.figure.canvas.draw()
    image = np.asarray(ax.figure.canvas.buffer_rgba())
    assert image.size > 0 and image[..., :3].std() > 0  # not a blank canvas


def _legend_texts(legend):
    return [text.get_text() for text in legend.get_texts()]


def _grid_rows(X, resolution, pair=(0, 1)):
    """The plotting grid's rows, as plot_gate_regions builds them."""
    axes = []
    for column in pair:
        lo, hi = X[:, column].min(), X[:, column].max()
        pad = 0.05 * (hi - lo)
        axes.append(np.linspace(lo - pad, hi + pad, resolution))
    uu, vv = np.meshgrid(*axes)
    rows = np.tile(np.median(X, axis=0), (uu.size, 1))
    rows[:, pair[0]], rows[:, pair[1]] = uu.ravel(), vv.ravel()
    return rows


def _winner_of_pixels(image, colors):
    """The region colour of every pixel: ``1 - pixel`` is parallel to
    ``1 - colour`` (the colour blended with white)."""
    ink = 1.0 - np.asarray(image, dtype=float).reshape(-1, 3)
    ink /= np.linalg.norm(ink, axis=1, keepdims=True)
    palette = 1.0 - np.asarray(colors)[:, :3]
    palette /= np.linalg.norm(palette, axis=1, keepdims=True)
    return np.argmax(ink @ palette.T, axis=1)


# -- plot_gate_regions --------------------------------------------------------


def test_gate_regions_colours_match_gates_and_legend(classifier):
    model, X, y, _ = classifier
    ax = plot_gate_regions(model, X, y, resolution=RESOLUTION)
    _draw(ax)
    assert ax.get_xlabel() == "feature 0" and ax.get_ylabel() == "feature 1"
    (image,) = ax.images
    assert image.get_array().shape == (RESOLUTION, RESOLUTION, 3)
    region_legend = ax.artists[0] if ax.artists else ax.get_legend()
    assert _legend_texts(region_legend) == [f"expert {j}" for j in range(4)]
    # Every pixel has the legend colour of the leaf with the largest prior.
    legend_colors = [patch.get_facecolor() for patch in region_legend.get_patches()]
    winner = model.predict_gates(_grid_rows(X, RESOLUTION)).argmax(axis=1)
    pixel_winner = _winner_of_pixels(image.get_array(), legend_colors)
    assert np.mean(pixel_winner == winner) > 0.999
    # Paler where the gates are less sure.
    lightness = image.get_array().reshape(-1, 3).mean(axis=1)
    p_max = model.predict_gates(_grid_rows(X, RESOLUTION)).max(axis=1)
    assert np.corrcoef(lightness, p_max)[0, 1] < -0.5


def test_gate_regions_draws_classes_with_markers(classifier):
    model, X, y, _ = classifier
    ax = plot_gate_regions(model, X, y, resolution=RESOLUTION)
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points) == 3
    assert sum(len(c.get_offsets()) for c in points) == len(X)
    assert _legend_texts(ax.get_legend()) == ["class 0", "class 1", "class 2"]


def test_gate_regions_by_level(hme):
    model, X, _, _ = hme
    ax = plot_gate_regions(model, X, level=0, resolution=RESOLUTION)
    legend = ax.get_legend()
    assert _legend_texts(legend) == ["experts 0\u20131", "experts 2\u20133"]
    assert ax.get_title() == "Gate regions, level 0"
    # The regions are the root gate's choice.
    rows = _grid_rows(X, RESOLUTION)
    logits = rows @ model.gate_coef_[0][0] + model.gate_intercept_[0][0]
    colors = [patch.get_facecolor() for patch in legend.get_patches()]
    pixel_winner = _winner_of_pixels(ax.images[0].get_array(), colors)
    assert np.mean(pixel_winner == logits.argmax(axis=1)) > 0.999
    ax = plot_gate_regions(model, X, level=1, resolution=RESOLUTION)
    assert _legend_texts(ax.get_legend()) == [f"expert {j}" for j in range(4)]


@pytest.mark.parametrize(
    "level, spans, names",
    [
        (
            0,
            [(0, 3), (3, 4), (4, 7)],
            ["experts 0\u20132", "expert 3", "experts 4\u20136"],
        ),
        (
            1,
            [(0, 1), (1, 3), (3, 4), (4, 5), (5, 6), (6, 7)],
            [
                "expert 0",
                "experts 1\u20132",
                "expert 3",
                "expert 4",
                "expert 5",
                "expert 6",
            ],
        ),
        (2, [(j, j + 1) for j in range(7)], [f"expert {j}" for j in range(7)]),
        (None, [(j, j + 1) for j in range(7)], [f"expert {j}" for j in range(7)]),
    ],
)
def test_gate_regions_of_a_tree_of_any_shape(unbalanced, level, spans, names):
    # A level's regions are the subtrees below its gates and the leaves
    # above it (leaf 3, at depth 1, is a region from level 0 on); a region
    # of one leaf has its expert's colour.
    model, X, _ = unbalanced
    ax = plot_gate_regions(model, X, level=level, resolution=RESOLUTION)
    legend = ax.get_legend()
    assert _legend_texts(legend) == names
    prior = model.predict_gates(_grid_rows(X, RESOLUTION))
    mass = np.column_stack([prior[:, lo:hi].sum(axis=1) for lo, hi in spans])
    colors = [patch.get_facecolor() for patch in legend.get_patches()]
    pixel_winner = _winner_of_pixels(ax.images[0].get_array(), colors)
    assert np.mean(pixel_winner == mass.argmax(axis=1)) > 0.999
    experts = plot_gate_regions(model, X, resolution=RESOLUTION).get_legend()
    expert_colors = dict(
        zip(_legend_texts(experts), experts.get_patches(), strict=True)
    )
    for name, patch in zip(names, legend.get_patches(), strict=True):
        if name in expert_colors:
            assert patch.get_facecolor() == expert_colors[name].get_facecolor()


def test_gate_curves_of_a_tree_of_any_shape():
    # one feature, tree [0, [1, 2]]: at level 0, expert 0 against experts 1-2
    rng = np.random.RandomState(0)
    x = rng.uniform(-3, 3, 300)
    y = np.where(x < -1, -x, np.where(x < 1, 1.0, 2 * x - 1)) + 0.1 * rng.normal(
        size=300
    )
    X = x[:, None]
    model = MixtureOfExpertsRegressor(tree=[0, [1, 2]], random_state=0).fit(X, y)
    ax = plot_gate_regions(model, X, level=0)
    curves = {line.get_label(): line for line in ax.lines if line.get_label()[0] == "e"}
    assert list(curves) == ["expert 0", "experts 1\u20132"]
    grid = curves["expert 0"].get_xdata()
    prior = model.predict_gates(grid[:, None])
    np.testing.assert_allclose(curves["expert 0"].get_ydata(), prior[:, 0])
    np.testing.assert_allclose(
        curves["experts 1\u20132"].get_ydata(), prior[:, 1:].sum(1)
    )
    ax = plot_gate_regions(model, X, level=1)
    assert [line.get_label() for line in ax.lines][:3] == [
        f"expert {j}" for j in range(3)
    ]


def test_gate_regions_on_given_axes_with_regression_target(hme):
    model, X, y, _ = hme
    fig, (left, right) = plt.subplots(1, 2)
    ax = plot_gate_regions(model, X, y, ax=right, resolution=RESOLUTION)
    assert ax is right
    assert not left.images and len(right.images) == 1
    assert any(a.get_ylabel() == "y" for a in fig.axes)  # the colour bar
    _draw(ax)


def test_gate_regions_of_one_feature_are_curves(piecewise):
    model, X, _ = piecewise
    ax = plot_gate_regions(model, X)
    _draw(ax)
    curves = [line for line in ax.lines if line.get_label().startswith("expert")]
    assert len(curves) == 3
    total = np.sum([line.get_ydata() for line in curves], axis=0)
    np.testing.assert_allclose(total, 1.0)
    assert ax.get_ylabel() == "gate probability"


def test_gate_regions_of_chosen_features(three_features):
    model, X, _ = three_features
    with pytest.raises(ValueError, match=r"X has 3 features .* pass features="):
        plot_gate_regions(model, X)
    ax = plot_gate_regions(model, X, features=(2, 0), resolution=RESOLUTION)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("feature 2", "feature 0")
    assert ax.get_title() == "Gate regions\n(feature 1 at its median)"
    rows = _grid_rows(X, RESOLUTION, pair=(2, 0))
    winner = model.predict_gates(rows).argmax(axis=1)
    colors = [p.get_facecolor() for p in ax.get_legend().get_patches()]
    assert (
        np.mean(_winner_of_pixels(ax.images[0].get_array(), colors) == winner) > 0.999
    )


@pytest.mark.parametrize(
    "features, message",
    [
        ((0, 3), "out of range"),
        ((0, -1), "out of range"),
        ((1, 1), "same column twice"),
        ((0,), "pair of column indices"),
        (0, "pair of column indices"),
        ((0, "a"), "without feature names"),
        ((0, 1.5), "column indices or names"),
    ],
)
def test_bad_features_raise(three_features, features, message):
    model, X, _ = three_features
    with pytest.raises(ValueError, match=message):
        plot_gate_regions(model, X, features=features)


def test_features_by_name():
    pd = pytest.importorskip("pandas")
    X, y, _ = make_moe(200, n_features=3, random_state=0)
    frame = pd.DataFrame(X, columns=["height", "width", "depth"])
    model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(frame, y)
    ax = plot_gate_regions(model, frame, features=("depth", "height"), resolution=20)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("depth", "height")
    with pytest.raises(ValueError, match="not among"):
        plot_gate_regions(model, frame, features=("depth", "mass"))


def test_gate_regions_bad_arguments(hme):
    model, X, _, _ = hme
    with pytest.raises(ValueError, match="gate level from 0"):
        plot_gate_regions(model, X, level=2)
    with pytest.raises(ValueError, match="resolution"):
        plot_gate_regions(model, X, resolution=1)
    with pytest.raises(ValueError, match="was fit on 2"):
        plot_gate_regions(model, X[:, :1])
    with pytest.raises(ValueError, match="y has 399 entries"):
        plot_gate_regions(model, X, X[:-1, 0])


# -- plot_expert_boundaries ---------------------------------------------------


def _contours(ax):
    return [c for c in ax.collections if isinstance(c, ContourSet)]


def test_boundaries_lie_in_their_experts_regions(classifier):
    model, X, y, _ = classifier
    ax = plot_expert_boundaries(model, X, y, resolution=120)
    _draw(ax)
    contours = _contours(ax)
    assert contours
    for contour in contours:
        leaf = int(contour.get_gid().split()[-1])
        vertices = np.vstack([path.vertices for path in contour.get_paths()])
        assert len(vertices)
        # Up to a grid cell at the region's edge.
        assert np.mean(model.apply(vertices) == leaf) > 0.95
    # The legend draws a line for the experts that drew one, and says why
    # the others drew none.
    with_line = {int(contour.get_gid().split()[-1]) for contour in contours}
    texts = _legend_texts(ax.artists[0])
    assert len(texts) == 4
    for leaf, text in enumerate(texts):
        if leaf in with_line:
            assert text == f"expert {leaf}"
        else:
            assert re.fullmatch(rf"expert {leaf} \((one class: \d|no region)\)", text)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("feature 0", "feature 1")


def test_legend_names_the_class_of_experts_without_a_boundary():
    # Constant experts: each predicts its leaf's most frequent class
    # everywhere, so none draws a boundary.
    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(-3, 1, (100, 2)), rng.normal(3, 1, (100, 2))])
    y = np.repeat(["left", "right"], 100)
    model = MixtureOfExpertsClassifier(
        n_experts=2, expert=DummyClassifier(), random_state=0
    ).fit(X, y)
    ax = plot_expert_boundaries(model, X, y, resolution=RESOLUTION)
    assert not _contours(ax)
    texts = _legend_texts(ax.artists[0])
    # Each expert holds one cluster, and predicts its class.
    leaf = model.apply(X)
    expected = [f"expert {j} (one class: {y[leaf == j][0]})" for j in range(2)]
    assert texts == expected
    assert {text.split(": ")[1] for text in texts} == {"left)", "right)"}
    # No line in the legend for an expert that draws none.
    assert not any(isinstance(h, Line2D) for h in ax.artists[0].legend_handles)


def test_binary_boundary_is_the_expert_half_probability(binary):
    model, X, y = binary
    ax = plot_expert_boundaries(model, X, y, resolution=150)
    contours = _contours(ax)
    assert contours, "no boundary drawn"
    assert len(contours) <= model.n_leaves_  # one line per expert at most
    for contour in contours:
        leaf = int(contour.get_gid().split()[-1])
        vertices = np.vstack([path.vertices for path in contour.get_paths()])
        logits = vertices @ model.expert_coef_[leaf] + model.expert_intercept_[leaf]
        p1 = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)
        np.testing.assert_allclose(p1, 0.5, atol=0.02)


def test_boundaries_of_learner_experts():
    X, y, _ = make_moe(200, task="classification", n_classes=2, random_state=3)
    model = MixtureOfExpertsClassifier(
        n_experts=2, expert=LogisticRegression(), tol=1e-2, random_state=0
    ).fit(X, y)
    ax = plot_expert_boundaries(model, X, resolution=RESOLUTION)
    _draw(ax)
    assert _contours(ax)


def test_regression_experts_are_solid_where_trusted(piecewise):
    model, X, y = piecewise
    fig, ax_given = plt.subplots()
    ax = plot_expert_boundaries(model, X, y, ax=ax_given, resolution=300)
    assert ax is ax_given
    _draw(ax)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("feature 0", "y")
    solid = {line.get_label(): line for line in ax.lines}
    for leaf in range(3):
        line = solid[f"expert {leaf}"]
        x, values = line.get_xdata(), line.get_ydata()
        shown = ~np.isnan(values)
        assert shown.any()
        np.testing.assert_array_equal(model.apply(x[:, None]) == leaf, shown)
        expected = model.expert_coef_[leaf, 0] * x + model.expert_intercept_[leaf]
        np.testing.assert_allclose(values[shown], expected[shown])
    mean = solid["mixture mean"]
    np.testing.assert_allclose(
        mean.get_ydata(), model.predict(mean.get_xdata()[:, None])
    )
    assert len(ax.collections) == 1  # the data


def test_regression_lines_of_learner_experts(piecewise):
    _, X, y = piecewise
    model = MixtureOfExpertsRegressor(
        n_experts=3, expert=LinearRegression(), random_state=0
    ).fit(X, y)
    ax = plot_expert_boundaries(model, X)  # no y: no scatter
    assert not ax.collections
    for leaf in range(3):
        line = next(line for line in ax.lines if line.get_label() == f"expert {leaf}")
        x, values = line.get_xdata(), line.get_ydata()
        shown = ~np.isnan(values)
        assert shown.any()
        np.testing.assert_allclose(
            values[shown], model.experts_[leaf].predict(x[shown, None])
        )


def test_boundaries_bad_input(hme, three_features, classifier):
    model, X, y, _ = hme
    with pytest.raises(ValueError, match="single feature, but X has 2 features"):
        plot_expert_boundaries(model, X, y)
    model, X, y = three_features
    with pytest.raises(ValueError, match="single feature, but X has 3 features"):
        plot_expert_boundaries(model, X, y, features=(0, 1))
    model, X, y, _ = classifier
    with pytest.raises(ValueError, match="out of range"):
        plot_expert_boundaries(model, X, y, features=(0, 2))
    X3, y3, _ = make_moe(100, n_features=3, task="classification", random_state=0)
    model3 = MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(X3, y3)
    with pytest.raises(ValueError, match="pass features="):
        plot_expert_boundaries(model3, X3, y3)
    ax = plot_expert_boundaries(model3, X3, y3, features=(0, 2), resolution=30)
    assert ax.get_ylabel() == "feature 2"


def test_regressor_rejects_features(piecewise):
    model, X, y = piecewise
    with pytest.raises(ValueError, match="features= applies to classifiers"):
        plot_expert_boundaries(model, X, y, features=(0, 0))


# -- plot_log_likelihood ------------------------------------------------------


def test_log_likelihood_curve(hme):
    model, _, _, _ = hme
    fig, ax_given = plt.subplots()
    ax = plot_log_likelihood(model, ax=ax_given)
    assert ax is ax_given
    _draw(ax)
    (line,) = ax.lines
    np.testing.assert_allclose(line.get_ydata(), model.lower_bounds_)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(len(model.lower_bounds_)))
    assert ax.get_xlabel() == "EM iteration"
    assert ax.get_ylabel() == "penalised mean log-likelihood"
    assert ax.get_title() == f"EM: {model.n_iter_} iterations, converged"


# -- plot_specialisation ------------------------------------------------------


def test_specialisation_heat_map(classifier):
    model, X, y, truth = classifier
    ax = plot_specialisation(model, X, truth.leaf, y)
    _draw(ax)
    matrix, values = specialisation_matrix(model, X, truth.leaf, y)
    np.testing.assert_allclose(ax.images[0].get_array(), matrix)
    assert len(ax.texts) == matrix.size
    assert ax.texts[1].get_text() == f"{matrix[0, 1]:.2f}"
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        f"expert {j}" for j in range(4)
    ]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(v) for v in values]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("label", "expert")
    assert ax.figure.axes[-1].get_ylabel() == "share of the expert's samples"


def test_specialisation_counts_without_annotations(classifier):
    model, X, y, _ = classifier
    fig, ax_given = plt.subplots()
    ax = plot_specialisation(
        model, X, y, routing="hard", normalize=None, annotate=False, ax=ax_given
    )
    assert ax is ax_given and not ax.texts
    assert ax.images[0].get_array().sum() == pytest.approx(len(X))
    ax = plot_specialisation(model, X[:5], y[:5], routing="hard", normalize="expert")
    # Experts that receive none of five samples show a dash, not "nan".
    assert "nan" not in {t.get_text() for t in ax.texts}


# -- plot_tree ----------------------------------------------------------------


def _boxes_overlap(ax):
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    boxes = [text.get_bbox_patch().get_window_extent(renderer) for text in ax.texts]
    return [
        (a, b)
        for (a, box_a), (b, box_b) in itertools.combinations(enumerate(boxes), 2)
        if box_a.overlaps(box_b)
    ]


def test_tree_shows_every_node_and_its_share(hme):
    model, X, y, _ = hme
    ax = plot_tree(model, X)
    texts = [text.get_text() for text in ax.texts]
    assert len(texts) == 7 and len(ax.lines) == 6  # nodes and edges
    assert texts[0] == "root\n100%"
    load = model.predict_gates(X).mean(axis=0)
    for leaf in range(4):
        assert f"expert {leaf}\n{load[leaf]:.0%}" in texts
    assert f"gate\n{load[:2].sum():.0%}" in texts
    # Edges are as wide as the share that flows along them.
    shares = np.r_[load[:2].sum(), load[2:].sum(), load]
    widths = np.array([line.get_linewidth() for line in ax.lines])
    assert np.corrcoef(widths, shares)[0, 1] > 0.999
    assert not _boxes_overlap(ax)
    ax = plot_tree(model, X, y)
    assert "posterior" in ax.get_title()


def test_tree_of_any_shape_puts_every_node_at_its_depth(unbalanced):
    # Tree [[0, [1, 2]], 3, [4, 5, 6]]: leaves at depths 1 (expert 3), 2
    # (experts 0, 4-6) and 3 (experts 1, 2), the root and node 3 with three
    # children. Every node sits max_depth - depth from the bottom, the
    # leaves one apart in their order, a gate above the middle of its
    # children; every edge joins a node to its gate, as wide as its share.
    model, X, _ = unbalanced
    tree = model.tree_
    ax = plot_tree(model, X)
    assert len(ax.texts) == tree.n_nodes == 11 and len(ax.lines) == 10
    load = model.predict_gates(X).mean(axis=0)
    share = [load[slice(*tree.ranges[v])].sum() for v in range(tree.n_nodes)]
    # the gates breadth first (node ids here), then the experts
    gates = [v for v in range(tree.n_nodes) if tree.children[v]]
    position = {}
    for v, text in zip(gates + list(tree.leaves), ax.texts, strict=True):
        position[v] = np.array(text.get_position())
        if tree.children[v]:
            name = "root" if v == 0 else "gate"
            assert text.get_text() == f"{name}\n{share[v]:.0%}"
        else:
            leaf = tree.leaf_of[v]
            assert text.get_text() == f"expert {leaf}\n{load[leaf]:.0%}"
            assert position[v][0] == leaf
        assert position[v][1] == tree.max_depth - tree.depth[v]
    for v in gates:
        children = [position[c][0] for c in tree.children[v]]
        assert position[v][0] == pytest.approx(np.mean(children))
    assert position[tree.leaves[3]][1] == 2  # expert 3, one below the root
    # the edges, node by node breadth first
    edges = {
        (tuple(line.get_xydata()[0]), tuple(line.get_xydata()[1])): line
        for line in ax.lines
    }
    widths = []
    for v in range(1, tree.n_nodes):
        line = edges[(tuple(position[tree.parent[v]]), tuple(position[v]))]
        widths.append(line.get_linewidth())
    assert np.corrcoef(widths, share[1:])[0, 1] > 0.999
    assert not _boxes_overlap(ax)


@pytest.mark.parametrize("figsize", [None, (4, 3)])
def test_deep_tree_labels_do_not_overlap(figsize):
    X, y, _ = make_moe(200, n_experts=2, depth=4, random_state=0)
    model = MixtureOfExpertsRegressor(
        n_experts=2, depth=4, max_iter=0, random_state=0
    ).fit(X, y)
    ax = None if figsize is None else plt.subplots(figsize=figsize)[1]
    ax = plot_tree(model, X, ax=ax)
    assert len(ax.texts) == 31
    assert not _boxes_overlap(ax)


# -- shared behaviour ---------------------------------------------------------


def _calls(model, X, y):
    return {
        "plot_gate_regions": lambda: plot_gate_regions(model, X),
        "plot_expert_boundaries": lambda: plot_expert_boundaries(model, X, y),
        "plot_log_likelihood": lambda: plot_log_likelihood(model),
        "plot_specialisation": lambda: plot_specialisation(model, X, y),
        "plot_tree": lambda: plot_tree(model, X),
    }


@pytest.mark.parametrize("name", hmexperts.plotting.__all__)
def test_unfitted_estimator_raises(name):
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(NotFittedError):
        _calls(MixtureOfExpertsClassifier(), X, y)[name]()


@pytest.mark.parametrize("name", hmexperts.plotting.__all__)
def test_missing_matplotlib_says_how_to_install(name, classifier, monkeypatch):
    model, X, y, _ = classifier
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "hmexperts\[plot\]"'):
        _calls(model, X, y)[name]()


def test_plots_of_a_model_fit_on_another_array_library(classifier):
    """A model fit on arrays of another library (array-api-strict here; CuPy
    or PyTorch alike) evaluates the plots' grids in that library: the same
    pictures as the NumPy fit's, from that library's X and y."""
    import array_api_strict as xp_strict
    import sklearn

    model, X, y, _ = classifier
    with sklearn.config_context(array_api_dispatch=True):
        X_xp, y_xp = xp_strict.asarray(X), xp_strict.asarray(y)
        other = clone(model).fit(X_xp, y_xp)
        regions = plot_gate_regions(other, X_xp, y_xp, resolution=RESOLUTION)
        lines = plot_expert_boundaries(other, X_xp, y_xp, resolution=RESOLUTION)
    expected = plot_gate_regions(model, X, y, resolution=RESOLUTION)
    np.testing.assert_allclose(
        regions.images[0].get_array(), expected.images[0].get_array(), atol=1e-6
    )
    expected = plot_expert_boundaries(model, X, y, resolution=RESOLUTION)
    for contour, reference in zip(_contours(lines), _contours(expected), strict=True):
        for path, path_reference in zip(
            contour.get_paths(), reference.get_paths(), strict=True
        ):
            np.testing.assert_allclose(
                path.vertices, path_reference.vertices, atol=1e-6
            )
