"""
=================================================
HME vs a decision tree: soft and hard splits
=================================================

A decision tree and a hierarchical mixture of experts (HME) both cut the
input space recursively, and both end in leaves. They differ in how they cut
and in what the leaves hold:

- A tree splits *hard* and *axis-aligned*: a sample goes left if
  ``x_k <= t`` for one feature ``k``, else right, and a leaf predicts a
  constant class distribution.
- An HME splits *softly* and *obliquely*: every gate is a logistic
  regression on all the features, so a sample goes left with a probability
  that changes smoothly across a band the gate learns, along any direction.
  A leaf holds a linear expert, here a logistic regression.

With ``n_experts=2`` the gate tree of a
:class:`~hmexperts.MixtureOfExpertsClassifier` is binary, like the tree's,
and ``depth=d`` gives ``2 ** d`` leaves, as many as a full tree of
``max_depth=d``. This example compares the two at depths 1 to 3 on a curved
boundary, where oblique cuts help, and then on axis-aligned data with
irrelevant features, where the tree wins.
"""

# %%
# Data: a curved boundary
# -----------------------
# The inputs are uniform on the square ``[-2, 2]^2``; class 1 lies inside a
# circle of radius 1.4 centred off the origin, and 5% of the labels are
# flipped at random. No single cut on one feature follows a circle: a tree
# needs a staircase of cuts, while a few oblique lines make a polygon close
# to it. The flipped labels make 95% the best possible accuracy; the
# accuracy of the true boundary on the test set is printed below.
import numpy as np

CENTRE, RADIUS = np.array([0.3, -0.2]), 1.4


def inside(X):
    return np.linalg.norm(X - CENTRE, axis=1) < RADIUS


def sample(n, rng, n_features=2, rule=inside):
    X = rng.uniform(-2, 2, size=(n, n_features))
    y = rule(X).astype(int)
    flipped = rng.uniform(size=n) < 0.05
    return X, np.where(flipped, 1 - y, y)


rng = np.random.default_rng(0)
X_train, y_train = sample(1000, rng)
X_test, y_test = sample(4000, rng)
print(f"true boundary: test accuracy = {np.mean(inside(X_test) == y_test):.3f}")

# %%
# Fit an HME and a tree of each depth
# -----------------------------------
# EM finds a local maximum, and deeper gate trees have more of them, so every
# HME keeps the best of ``n_init=5`` initialisations (and ``max_iter=300``
# leaves EM room to converge). The tree is grown greedily in one pass,
# without restarts. Besides accuracy, the table
# gives the test log-loss, which scores the predicted probabilities; a
# deeper tree (``max_depth=6``) is added for reference.
from sklearn.metrics import log_loss
from sklearn.tree import DecisionTreeClassifier

from hmexperts import MixtureOfExpertsClassifier

depths = [1, 2, 3]
hmes, trees = {}, {}
for depth in depths:
    hmes[depth] = MixtureOfExpertsClassifier(
        n_experts=2, depth=depth, n_init=5, max_iter=300, random_state=0
    ).fit(X_train, y_train)
    trees[depth] = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(
        X_train, y_train
    )
deep_tree = DecisionTreeClassifier(max_depth=6, random_state=0).fit(X_train, y_train)


def scores(model):
    return model.score(X_test, y_test), log_loss(y_test, model.predict_proba(X_test))


print("model            leaves  accuracy  log-loss")
for depth in depths:
    for name, model in [("HME", hmes[depth]), ("tree", trees[depth])]:
        n_leaves = model.n_leaves_ if name == "HME" else model.get_n_leaves()
        accuracy, loss = scores(model)
        label = f"{name}, depth {depth}"
        print(f"{label:<16} {n_leaves:>6}  {accuracy:8.3f}  {loss:8.3f}")
accuracy, loss = scores(deep_tree)
print(
    f"{'tree, depth 6':<16} {deep_tree.get_n_leaves():>6}  {accuracy:8.3f}  {loss:8.3f}"
)

# %%
# Decision regions
# ----------------
# Left column: :func:`~hmexperts.plotting.plot_expert_boundaries` shades the
# plane by the most trusted expert of the HME and draws, inside its region,
# that expert's own class boundary, in the expert's colour. Right column:
# the same for the tree, whose "experts" are its leaves: each leaf is a
# rectangle, and the class boundary (black) runs along the leaves' edges.
# The dashed circle is the true boundary; the points are a subset of the
# training data. The colours only tell the experts and leaves of a panel
# apart, so the panels leave out their legends.
#
# With two experts (depth 1), the HME can only cut a band out of the circle,
# between the gate's line and one expert's boundary; with four and eight
# experts, their boundaries make a polygon that follows the circle. The
# tree's rectangles can only approach it by a staircase, and its greedy cuts
# spend leaves poorly: at depth 3, some of its eight leaves are thin
# slivers, and some cuts split a region into two leaves that predict the
# same class.
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.patches import Circle

from hmexperts.plotting import plot_expert_boundaries


def plot_tree_leaves(tree, X, y, ax, resolution=200):
    """Shade the plane by the tree's leaf and draw its class boundary."""
    grid = np.linspace(-2.3, 2.3, resolution)
    xx, yy = np.meshgrid(grid, grid)
    rows = np.c_[xx.ravel(), yy.ravel()]
    leaf = np.unique(tree.apply(rows), return_inverse=True)[1].reshape(xx.shape)
    colors = plt.get_cmap("tab10")(np.arange(leaf.max() + 1))[:, :3]
    pale = 1 - 0.3 * (1 - colors)
    ax.imshow(pale[leaf], origin="lower", extent=(grid[0], grid[-1]) * 2)
    proba = tree.predict_proba(rows)[:, 1].reshape(xx.shape)
    ax.contour(xx, yy, proba, levels=[0.5], colors="k", linewidths=2)
    for label, marker, fill in [(0, "o", "0.1"), (1, "s", "w")]:
        ax.scatter(
            *X[y == label].T,
            s=18,
            marker=marker,
            c=fill,
            edgecolors="k",
            linewidths=0.6,
            label=f"class {label}",
        )
    ax.set_xlabel("feature 0")
    ax.set_ylabel("feature 1")


X_shown, y_shown = X_train[:300], y_train[:300]
fig, axes = plt.subplots(
    3, 2, figsize=(7.2, 11), sharex=True, sharey=True, layout="constrained"
)
for row, depth in enumerate(depths):
    ax = plot_expert_boundaries(hmes[depth], X_shown, y_shown, ax=axes[row, 0])
    for legend in [*ax.artists, ax.get_legend()]:
        legend.set_visible(False)
    accuracy = hmes[depth].score(X_test, y_test)
    ax.set_title(f"HME, depth {depth} ({2**depth} experts)\naccuracy {accuracy:.3f}")
    ax = axes[row, 1]
    plot_tree_leaves(trees[depth], X_shown, y_shown, ax)
    accuracy = trees[depth].score(X_test, y_test)
    ax.set_title(f"Tree, max_depth={depth}\naccuracy {accuracy:.3f}")
for ax in axes.ravel():
    ax.add_patch(Circle(CENTRE, RADIUS, fill=False, ls="--", color="0.3"))
    ax.set_aspect("equal")
    ax.label_outer()
axes[0, 0].set(xlim=(-2.15, 2.15), ylim=(-2.15, 2.15))  # shared by all panels
fig.legend(
    handles=[
        Line2D([], [], ls="", marker="o", color="0.1", mec="k", label="class 0"),
        Line2D([], [], ls="", marker="s", color="w", mec="k", label="class 1"),
        Line2D([], [], color="0.3", ls="--", label="true boundary"),
        Line2D([], [], color="k", lw=2, label="tree's class boundary"),
    ],
    loc="outside lower center",
    ncols=4,
    fontsize="small",
)
fig.suptitle("Decision regions; accuracy on the test set")
plt.show()

# %%
# Soft splits give graded probabilities
# -------------------------------------
# A tree's leaf predicts the class frequencies of its training samples, so
# its probabilities are constant on rectangles and jump at their edges. A
# deep tree has small, nearly pure leaves, some of them right at the
# boundary, where it predicts a probability of exactly 0 or 1. That is why
# the depth-6 tree's accuracy is better than the depth-3 tree's, but its
# log-loss worse: every confident mistake on a flipped label costs a lot.
# The HME's probability of class 1 is a smooth function of ``x``, a
# gate-weighted average of logistic regressions, and falls off gradually
# across the boundary.
fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.9), sharey=True, layout="constrained")
grid = np.linspace(-2, 2, 200)
xx, yy = np.meshgrid(grid, grid)
rows = np.c_[xx.ravel(), yy.ravel()]
for ax, model, title in [
    (axes[0], hmes[3], "HME, depth 3"),
    (axes[1], deep_tree, "Tree, max_depth=6"),
]:
    proba = model.predict_proba(rows)[:, 1].reshape(xx.shape)
    image = ax.imshow(
        proba, origin="lower", extent=(-2, 2, -2, 2), cmap="RdBu_r", vmin=0, vmax=1
    )
    ax.add_patch(
        Circle(CENTRE, RADIUS, fill=False, ls="--", color="k", label="true boundary")
    )
    accuracy, loss = scores(model)
    ax.set_title(f"{title}\naccuracy {accuracy:.3f}, log-loss {loss:.3f}")
    ax.set_xlabel("feature 0")
    ax.legend(loc="lower left", fontsize="small")
axes[0].set_ylabel("feature 1")
fig.colorbar(image, ax=axes, label="probability of class 1", shrink=0.8)
plt.show()

# %%
# When the tree wins
# ------------------
# Oblique, curved boundaries favour the HME. A tree is the better choice
# when the structure *is* axis-aligned, when many features are irrelevant,
# and when only the predicted class matters. Here class 1 is the corner
# ``x_0 > 0 and x_1 > 0.5`` (again with 5% of the labels flipped), which a
# tree of depth 2 draws exactly. With only the two relevant features, both
# models find it. Then eight features of pure noise are added. The tree
# picks one feature per cut, the one that helps most, so the noise costs it
# little. Every gate and expert of the HME, though, is a linear model on all
# ten features: with 500 samples, the coefficients of the noise features fit
# noise: the HME's training accuracy stays high while its test accuracy
# drops.


def corner(X):
    return (X[:, 0] > 0) & (X[:, 1] > 0.5)


print("features  HME train  HME test  tree train  tree test  (accuracy)")
for n_features in [2, 10]:
    rng = np.random.default_rng(1)
    X_train, y_train = sample(500, rng, n_features, corner)
    X_test, y_test = sample(4000, rng, n_features, corner)
    hme = MixtureOfExpertsClassifier(
        n_experts=2, depth=2, n_init=3, max_iter=300, random_state=0
    ).fit(X_train, y_train)
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X_train, y_train)
    print(
        f"{n_features:>8}  {hme.score(X_train, y_train):9.3f}  "
        f"{hme.score(X_test, y_test):8.3f}  {tree.score(X_train, y_train):10.3f}  "
        f"{tree.score(X_test, y_test):9.3f}"
    )

# %%
# In short: an HME of depth ``d`` with ``n_experts=2`` has ``2 ** d`` linear
# experts behind soft, oblique gates, and pays for that flexibility with EM
# restarts and a linear model on every feature at every node. Prefer it for
# boundaries that are oblique or curved, for smoothly varying probabilities,
# and for its interpretable local linear models; prefer a
# tree (or a forest of them) for axis-aligned structure, many irrelevant
# features, or when only a fast class prediction matters.
