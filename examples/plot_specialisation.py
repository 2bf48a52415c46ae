"""
============================
Specialisation over training
============================

Chen, Deng, Wu, Gu & Li (2022) studied why a mixture of experts beats a
single model on data made of clusters. Trained by gradient descent from a
uniform router, their mixtures of *nonlinear* experts specialised: the
router learned to send each cluster to its own expert, and the *dispatch
entropy*, the entropy of the clusters that reach an expert, fell towards
zero. Mixtures of *linear* experts did not.

This example watches the same quantity during EM, one iteration at a time,
on :func:`~hmexperts.datasets.make_expert_clusters`, their clustered task
made small: four clusters, each split into two classes along a direction of
its own. We compare the built-in linear (multinomial-logistic) experts with
small neural networks as experts, from the default start and from a
symmetric start like Chen et al.'s.
"""

# %%
# Data
# ----
# No single line separates the classes, but within each cluster one line
# does: one linear expert per cluster, with a gate that recognises the
# clusters, solves the task.
import numpy as np
from sklearn.linear_model import LogisticRegression

from hmexperts import MixtureOfExpertsClassifier
from hmexperts.datasets import make_expert_clusters

X, y, cluster = make_expert_clusters(1000, random_state=0)
X_test, y_test, _ = make_expert_clusters(2000, random_state=1)

linear = LogisticRegression().fit(X, y)
moe = MixtureOfExpertsClassifier(n_experts=4, random_state=0).fit(X, y)
print(f"test accuracy, logistic regression:        {linear.score(X_test, y_test):.3f}")
print(f"test accuracy, mixture of 4 linear experts: {moe.score(X_test, y_test):.3f}")

# %%
# Recording EM one iteration at a time
# ------------------------------------
# With ``warm_start=True``, every call to ``fit`` continues from the
# parameters the last call left, and ``max_iter`` bounds the iterations of
# that call: a first call with ``max_iter=0`` only initialises, and each
# further call with ``max_iter=1`` runs one EM iteration. After every call we
# compute the diagnostics.
#
# Each of these calls stops after one iteration on purpose, and EM then
# warns with a :class:`~sklearn.exceptions.ConvergenceWarning` that it "did
# not converge in max_iter=1 iterations"; the neural-network experts below,
# trained a few epochs per M-step, warn in the same way. Here these warnings
# say nothing wrong, so :func:`warnings.catch_warnings` silences them, for
# these calls only.
#
# :func:`~hmexperts.diagnostics.dispatch_entropy` gives one entropy per
# expert; we report their mean. As in Chen et al., every sample is routed to
# its most trusted expert (``routing="hard"``). We also record it with
# ``routing="soft"``, where every sample counts for every expert with its
# gate probability, and the accuracy on the test set.
import warnings

from sklearn.exceptions import ConvergenceWarning

from hmexperts.diagnostics import dispatch_entropy

N_ITER = 60


def track(model, n_iter=N_ITER):
    """Fit ``model`` one EM iteration at a time; the diagnostics after each."""
    history = {"hard": [], "soft": [], "accuracy": []}
    model.set_params(warm_start=True, max_iter=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        for _ in range(n_iter + 1):
            model.fit(X, y)
            model.set_params(max_iter=1)
            for routing in ("hard", "soft"):
                entropy = dispatch_entropy(model, X, cluster, routing=routing)
                history[routing].append(np.nanmean(entropy))
            history["accuracy"].append(model.score(X_test, y_test))
    return {name: np.array(values) for name, values in history.items()}


# %%
# The experts
# -----------
# The built-in experts are linear. As nonlinear experts we take
# :class:`~sklearn.neural_network.MLPClassifier` s with a single hidden
# layer, fit with the responsibilities as sample weights (scikit-learn 1.7
# and later; with older versions, whose ``MLPClassifier`` takes no
# ``sample_weight``, the mixture fits every expert on its most responsible
# samples instead). With
# ``warm_start=True`` an expert keeps its weights between M-steps, so that
# every M-step trains it for ``max_iter=10`` more epochs on the new weights,
# much like the gradient training of Chen et al. Every expert gets its own
# random initial weights from the mixture's ``random_state``. We try a
# network with 3 hidden units and one with 8.
from sklearn.neural_network import MLPClassifier


def mlp(n_hidden):
    return MLPClassifier(
        hidden_layer_sizes=(n_hidden,),
        learning_rate_init=0.01,
        max_iter=10,
        warm_start=True,
    )


experts = {"linear": None, "3-unit MLP": mlp(3), "8-unit MLP": mlp(8)}

# %%
# From the default start
# ----------------------
# By default EM starts from a k-means clustering of the inputs joined with
# the one-hot classes (``init_params="kmeans"``). On this data the clusters
# are far apart, so k-means finds them, and every expert is handed one
# cluster before the first EM iteration.
for name, expert in experts.items():
    model = MixtureOfExpertsClassifier(n_experts=4, expert=expert, random_state=0)
    history = track(model, n_iter=10)
    print(
        f"{name:10s} dispatch entropy at initialisation {history['hard'][0]:.2f}, "
        f"after 10 iterations {history['hard'][-1]:.2f}; "
        f"test accuracy {history['accuracy'][-1]:.3f}"
    )

# %%
# All three mixtures are specialised before EM begins (dispatch entropy 0
# at initialisation) and stay so: from the default start there is nothing
# to watch.
#
# From a symmetric start
# ----------------------
# Chen et al.'s router starts uniform. The EM analogue is to start from
# responsibilities close to ``1 / 4`` for every sample and expert (drawn from
# a Dirichlet distribution with a large concentration, so that they are not
# exactly equal): the first M-step then fits a nearly uniform gate and
# experts fit to nearly the same weights. Whatever specialisation follows,
# EM has to find it.
n_experts = 4
start = np.random.default_rng(0).dirichlet(np.full(n_experts, 50.0), size=len(X))
symmetric = {
    name: MixtureOfExpertsClassifier(
        n_experts=n_experts, expert=expert, init_params=start, random_state=0
    )
    for name, expert in experts.items()
}
histories = {name: track(model) for name, model in symmetric.items()}
for name, history in histories.items():
    gates = symmetric[name].predict_gates(X)
    print(
        f"{name:10s} after {N_ITER} iterations: dispatch entropy hard "
        f"{history['hard'][-1]:.2f}, soft {history['soft'][-1]:.2f} "
        f"(log 4 = {np.log(4):.2f}); test accuracy {history['accuracy'][-1]:.3f}; "
        f"gate probabilities from {gates.min():.3f} to {gates.max():.3f}"
    )

# %%
# Dispatch entropy, with hard and soft routing, and test accuracy against
# the EM iteration:
import matplotlib.pyplot as plt

colors = ["k", "tab:purple", "tab:brown"]
fig, axes = plt.subplots(3, 1, figsize=(7.2, 8), sharex=True, layout="constrained")
panels = [
    ("hard", "dispatch entropy, hard routing"),
    ("soft", "dispatch entropy, soft routing"),
    ("accuracy", "test accuracy"),
]
for ax, (key, title) in zip(axes, panels, strict=True):
    for (name, history), color in zip(histories.items(), colors, strict=True):
        ax.plot(history[key], color=color, lw=2, label=f"{name} experts")
    ax.set(title=title)
    ax.grid(alpha=0.3)
for ax in axes[:2]:
    ax.axhline(np.log(4), color="0.5", lw=1, ls=":")
    ax.text(N_ITER, np.log(4) - 0.04, "log 4", color="0.4", ha="right", va="top")
    ax.set(ylabel="mean over experts (nats)", ylim=(-0.05, 1.5))
axes[2].set(ylabel="accuracy", ylim=(0.45, 1.0), xlabel="EM iteration")
axes[2].legend(loc="lower right")
fig.suptitle("From the symmetric start")
plt.show()

# %%
# Three quite different outcomes:
#
# - **Linear experts stay where they started.** The gate stays uniform (the
#   soft dispatch entropy stays at ``log 4``, and every gate probability
#   close to 1/4) and the accuracy at chance.
#   With equal responsibilities, every linear expert fits the same logistic
#   regression to all the data, which is useless here (see logistic
#   regression's accuracy above): then every expert explains every sample
#   equally badly, the E-step hands back the gate's own uniform
#   responsibilities, and EM has nothing to move it. This is consistent with
#   Chen et al.'s finding, for a simpler reason: the symmetric start is a
#   fixed point of EM.
# - **Small nonlinear experts specialise.** Each 3-unit network starts from
#   its own random weights and fits some clusters better than others; the
#   E-step gives it more of those samples, the next M-step makes it better
#   there, and the gate learns to route by cluster. The soft dispatch
#   entropy falls while the accuracy climbs, as in Chen et al.; it levels
#   off above zero, as some experts keep two clusters.
# - **A nonlinear expert that can do the whole task alone does not need
#   to.** One 8-unit network classifies all four clusters, so the accuracy
#   is high from the first iteration, the E-step finds little to tell the
#   experts apart by, and the gate leans towards one expert everywhere
#   without ever being sure of it: the experts specialise only a little.
#
# The hard dispatch entropy, the one Chen et al. report, needs care when
# the gate is unsure. Top-1 routing sends every sample to an expert even
# when all the gate probabilities are close to 1/4, and the small
# differences between them are linear in the inputs, so they can line up
# with the clusters: the linear experts' hard dispatch entropy falls
# although their gate learns almost nothing. When a single expert wins
# everywhere (the 8-unit networks), the experts that receive no sample have
# no entropy (NaN, left out of the mean) and the mean is that of the one
# expert that takes every cluster, ``log 4``. Read the hard dispatch entropy
# next to the soft one, or next to
# :func:`~hmexperts.diagnostics.gate_entropy`.

# %%
# Where each expert's data come from
# ----------------------------------
# The specialisation matrices after the last iteration, from the symmetric
# start: how each expert's gate weight is spread over the four clusters.
# Every row sums to 1, however little an expert receives: read the rows
# next to the experts' loads, their shares of all the gate weight.
from hmexperts.diagnostics import expert_load
from hmexperts.plotting import plot_gate_regions, plot_specialisation

for name, model in symmetric.items():
    print(f"{name:10s} expert load: {np.round(expert_load(model, X), 2)}")

fig, axes = plt.subplots(3, 1, figsize=(6, 8.4), layout="constrained")
for ax, (name, model) in zip(axes, symmetric.items(), strict=True):
    plot_specialisation(model, X, cluster, ax=ax)
    ax.set(title=f"{name} experts", xlabel="cluster")
plt.show()

# %%
# And the gate regions: every point of the plane in the colour of its most
# trusted expert, paler where the gate is less sure. The three panels share
# one legend, in the fourth.
fig, axes = plt.subplots(
    2, 2, figsize=(7.2, 7.2), sharex=True, sharey=True, layout="constrained"
)
for ax, (name, model) in zip(axes.ravel()[:3], symmetric.items(), strict=True):
    plot_gate_regions(model, X, y, ax=ax)
    legends = [*ax.artists, ax.get_legend()]  # the experts', the classes'
    for legend in legends:
        legend.set_visible(False)
    for k in range(4):
        x0, x1 = X[cluster == k].mean(axis=0)
        ax.annotate(
            f"cluster {k}",
            (x0, x1),
            xytext=(0, 26),
            textcoords="offset points",
            ha="center",
            bbox={"boxstyle": "round,pad=0.2", "fc": "w", "alpha": 0.8},
        )
    ax.set_title(f"{name} experts")
    ax.label_outer()
axes[1, 1].axis("off")
for legend, loc in zip(legends, ["upper left", "lower left"], strict=True):
    axes[1, 1].add_artist(
        axes[1, 1].legend(
            handles=legend.legend_handles,
            labels=[text.get_text() for text in legend.get_texts()],
            title=legend.get_title().get_text() or None,
            loc=loc,
        )
    )
plt.show()

# %%
# From the symmetric start, the 3-unit experts divide the plane among them
# along the clusters; the linear experts' gate regions are barely coloured,
# as the gate is nearly uniform, and the 8-unit networks' gate gives almost
# all the plane to one expert. (The one 8-unit expert whose row looks
# specialised receives almost nothing: see its load.)
#
# What to take from this
# ----------------------
# In EM the initialisation decides most of the specialisation. From the
# default k-means start every expert is handed a cluster before the first
# iteration, linear or not, and linear experts are then exactly what this
# task needs. From a start with no information, linear experts do not
# specialise, small nonlinear experts do, and experts strong enough to fit
# everything alone barely do. The contrast between linear and nonlinear
# experts is the one Chen et al. found with gradient descent. To see
# specialisation happen, read the hard dispatch entropy next to the soft
# one, and check how sure the gate is.
