"""
=====================================================
Growing a gate tree: a voice's pitch from its vowels
=====================================================

A balanced tree makes you choose ``n_experts`` and ``depth`` before you see
where the data need experts, and pays for every leaf everywhere.
``tree="grow"`` starts from one expert and splits, round by round, the leaf
whose split most improves the fit (Waterhouse & Robinson, 1996), so that the
tree takes the shape the data ask for.

The task: the fundamental frequency F0 of a vowel token (the pitch of the
voice) from its three formants, on Peterson & Barney's (1952) speakers,
shipped with hmexperts (:func:`~hmexperts.datasets.load_peterson_barney`;
the data's licence status is unclear, see its ``DESCR``). Men, women and
children differ in F0 far more than in formants, and the formants of one
vowel differ between vowels, so ``p(F0 | formants)`` is a blend of groups
whose boundaries no single line draws: the one real data set of
``benchmarks/study_real_data.py`` on which a mixture beat a linear model.
We grow a tree, draw it and its regions, and set it against balanced trees
and a decision tree on speakers held out.
"""

# %%
# The data, split by speaker
# --------------------------
import numpy as np
from sklearn.model_selection import GroupShuffleSplit

from hmexperts.datasets import load_peterson_barney

pb = load_peterson_barney(formants=("F0", "F1", "F2", "F3"))
X = np.log(pb.data[:, 1:])  # log F1, log F2, log F3
y = pb.data[:, 0]  # F0 (Hz)
train, test = next(
    GroupShuffleSplit(n_splits=1, test_size=19, random_state=0).split(
        X, y, groups=pb.speaker
    )
)
print(f"{len(train)} tokens of 57 speakers to fit, {len(test)} of 19 to test")

# %%
# Growing the tree
# ----------------
# With the default ``split_criterion="bic"`` a split must raise the training
# log-likelihood by more than BIC's price of its new parameters.
# ``growth_history_`` records every round: the leaf split, the score of
# every candidate tried, and whether the gates were then restructured over
# the same experts (rebuilt in the shape whose gates best route the rows to
# them, kept when it scores better); then, after the last round, any chain
# of four leaves rebuilt as two pairs and pruning's merges of splits that
# stopped paying, if they score better.
from hmexperts import MixtureOfExpertsRegressor

grown = MixtureOfExpertsRegressor(tree="grow", max_leaves=8, random_state=0)
grown.fit(X[train], y[train])
for step in grown.growth_history_:
    if step.merged is not None:  # pruning, after the last round
        what = f"merge leaves {step.merged[0]}-{step.merged[1] - 1}"
    elif step.n_leaves == 1 and step.split is None:
        what = "one expert"
    elif step.split is None and step.restructured:  # after the last round
        what = "chain of 4 as two pairs"
    elif step.split is None:
        what = "no split pays: stop"
    else:
        what = f"split leaf {step.split}"
        what += ", restructured" if step.restructured else ""
    print(f"{step.n_leaves} leaves  {what:30s} score (-BIC/2) {step.score:9.1f}")
print("grown tree:", grown.tree_.to_nested())

# %%
# The grown tree and its regions
# ------------------------------
# :func:`~hmexperts.plotting.plot_tree` draws every expert at its own depth,
# with the share of the data each node routes;
# :func:`~hmexperts.plotting.plot_gate_regions` colours the (log F1, log F2)
# plane, log F3 at its median, by the most trusted expert, with the tokens
# shaded by their F0.
import matplotlib.pyplot as plt

from hmexperts.plotting import plot_gate_regions, plot_tree

fig, axes = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
plot_tree(grown, X[train], y[train], ax=axes[0])
plot_gate_regions(grown, X[train], y[train], features=(0, 1), ax=axes[1])
axes[1].set_xlabel("log F1")
axes[1].set_ylabel("log F2")
fig.axes[-1].set_ylabel("F0 (Hz)")  # the colour bar of the tokens' F0
plt.show()

# %%
# Against balanced trees and a decision tree
# ------------------------------------------
# On the 19 held-out speakers: a flat mixture with as many experts as the
# grown tree has leaves (a balanced tree of depth 1), a balanced binary tree
# of depth 2, one linear expert, and a decision tree with as many leaves.
# The mixtures are scored by their mean log-likelihood of the held-out
# tokens (the law of F0, not only its mean) and all by R^2.
from sklearn.tree import DecisionTreeRegressor

n_leaves = grown.n_leaves_
models = {
    f"grown tree ({n_leaves} leaves)": grown,
    f"flat, {n_leaves} experts": MixtureOfExpertsRegressor(n_leaves, random_state=0),
    "balanced, 2 x 2": MixtureOfExpertsRegressor(2, depth=2, random_state=0),
    "one linear expert": MixtureOfExpertsRegressor(1),
    f"decision tree, {n_leaves} leaves": DecisionTreeRegressor(
        max_leaf_nodes=n_leaves, random_state=0
    ),
}
print(f"{'model':30s} log-likelihood    R^2")
for name, model in models.items():
    if model is not grown:
        model.fit(X[train], y[train])
    r2 = model.score(X[test], y[test])
    if hasattr(model, "log_likelihood"):
        ll = f"{model.log_likelihood(X[test], y[test]).mean():14.3f}"
    else:
        ll = f"{'-':>14s}"
    print(f"{name:30s} {ll}  {r2:6.3f}")

# %%
# On this split the grown tree has the best held-out log-likelihood of the
# five: it put its experts where the speakers' groups part, and kept the
# shape small (BIC stopped it at four leaves). The balanced 2 x 2 tree, as
# many leaves in another shape, predicts the mean F0 better (R^2) but its
# law of F0 less well; the flat mixture of four trails both. The decision
# tree's constant leaves cannot follow F0 within a group. Growing is greedy,
# and on other data a balanced tree fit from several starts may do as well;
# the shape it finds is a way to read the data, not a proof of their
# structure.
