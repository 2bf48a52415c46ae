"""
=====================================
Vowels: four experts on formant data
=====================================

Jacobs, Jordan, Nowlan & Hinton (1991) introduced the mixture of experts on
a vowel task: tell the vowels [i], [ɪ], [a] and [ʌ] (ARPAbet ``IY``, ``IH``,
``AA``, ``AH``: the vowels of *heed*, *hid*, *hod* and *hud*) apart from the
first two formants, F1 and F2, measured by Peterson & Barney (1952) on men,
women and children. The gate of their mixture gave the pair [i], [ɪ] and the
pair [a], [ʌ] to different experts.

:func:`~hmexperts.datasets.make_vowels` draws synthetic data of that shape
around Peterson & Barney's published mean formants. This example fits a
:class:`~hmexperts.MixtureOfExpertsClassifier` with four experts, compares it
with logistic regression and a small neural network on speakers it has not
seen, and looks at how the experts divide the work.

In short: on this synthetic data the mixture is **not** clearly more
accurate than logistic regression, because the vowels are almost linearly
separable, and we show why. What the mixture adds is a division of labour
that can be read off and that makes phonetic sense.
"""

# %%
# Data, split by speaker
# ----------------------
# Every speaker says every vowel twice. A fair test holds out whole speakers,
# so that it measures how well a model handles voices it has never heard:
# :class:`~sklearn.model_selection.GroupShuffleSplit` on the speaker ids puts
# a quarter of the speakers in the test set.
import numpy as np
from sklearn.model_selection import GroupShuffleSplit

from hmexperts.datasets import make_vowels

vowels = make_vowels(random_state=0)
names = vowels.target_names
# The targets are the vowels' names, so that predictions and legends name
# them; ``vowels.target`` holds the same as codes 0 to 3.
X, y = vowels.data, names[vowels.target]
splitter = GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=0)
train, test = next(splitter.split(X, y, groups=vowels.speaker))
X_train, y_train, X_test, y_test = X[train], y[train], X[test], y[test]

print(f"vowels: {', '.join(names)}; features: {', '.join(vowels.feature_names)} (Hz)")
print(
    f"training: {len(train)} tokens of {len(np.unique(vowels.speaker[train]))} "
    f"speakers; test: {len(test)} tokens of "
    f"{len(np.unique(vowels.speaker[test]))} other speakers"
)

# %%
# The data in formant space
# -------------------------
# Phoneticians draw vowels with F2 on the horizontal axis and F1 on the
# vertical one, both reversed, so that the chart looks like a mouth facing
# left: front vowels ([i], [ɪ]) on the left, open vowels ([a], [ʌ]) at the
# bottom. Every figure of this example follows that convention. ``X`` keeps
# the columns in the data's order (F1, F2); the plotting helpers draw any
# pair of columns with ``features=``, here ``features=(1, 0)``, and the axes
# are reversed afterwards.
#
# A speaker's vocal tract length scales all of its formants by about the same
# factor, so the tokens of one vowel spread along a line through the origin
# (dashed: the line through the origin and the vowel's mean). Children have
# the shortest vocal tracts and the highest formants.
import matplotlib.pyplot as plt


def formant_axes(ax):
    """Label the axes F2 and F1 and reverse them, as in a vowel chart."""
    ax.set_xlabel("F2 (Hz)")
    ax.set_ylabel("F1 (Hz)")
    if not ax.xaxis_inverted():
        ax.invert_xaxis()
    if not ax.yaxis_inverted():
        ax.invert_yaxis()


# Colour is kept for the experts in the figures below, so here the vowels
# differ in marker, as they do in the plotting helpers' figures.
style = {
    "IY": {"marker": "D", "c": "0.1"},
    "IH": {"marker": "^", "c": "0.6"},
    "AA": {"marker": "o", "c": "0.1"},
    "AH": {"marker": "s", "c": "w"},
}
fig, (ax_vowel, ax_group) = plt.subplots(
    1, 2, figsize=(7.2, 4), sharex=True, sharey=True, layout="constrained"
)
for name in names:
    rows = y == name
    ax_vowel.scatter(
        X[rows, 1], X[rows, 0], s=16, edgecolors="k", lw=0.5, label=name, **style[name]
    )
    f1, f2 = X[rows].mean(axis=0)
    scale = np.array([0.6, 1.5])
    ax_vowel.plot(f2 * scale, f1 * scale, "k--", lw=0.8)
ax_vowel.set_title("by vowel\n(dashed: lines through the origin)")
ax_vowel.legend(title="vowel")
group_colors = {"men": "tab:purple", "women": "tab:olive", "children": "tab:pink"}
for group, color in group_colors.items():
    rows = vowels.group == group
    ax_group.scatter(X[rows, 1], X[rows, 0], s=12, c=color, label=group)
ax_group.set_title("by speaker group\n")
ax_group.legend(title="speakers")
ax_vowel.set_xlim(X[:, 1].max() * 1.05, X[:, 1].min() * 0.9)
ax_vowel.set_ylim(X[:, 0].max() * 1.05, X[:, 0].min() * 0.9)
formant_axes(ax_vowel)
formant_axes(ax_group)
plt.show()

# %%
# Three classifiers
# -----------------
# A mixture of four experts (the built-in multinomial-logistic experts under
# a softmax gate, best of five EM restarts), logistic regression and a
# multi-layer perceptron with 16 hidden units. The mixture standardises its
# inputs itself; the other two get a
# :class:`~sklearn.preprocessing.StandardScaler`. Logistic regression gets a
# weak penalty, ``C=100``: the default ``C=1`` is too strong for the
# ten-vowel task at the end of this example and would make it look worse
# than it is.
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hmexperts import MixtureOfExpertsClassifier


def classifiers():
    return {
        "mixture of 4 experts": MixtureOfExpertsClassifier(
            n_experts=4, n_init=5, random_state=0
        ),
        "logistic regression": make_pipeline(
            StandardScaler(), LogisticRegression(C=100)
        ),
        "MLP (16 hidden units)": make_pipeline(
            StandardScaler(),
            MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=0),
        ),
    }


models = {name: model.fit(X_train, y_train) for name, model in classifiers().items()}
moe = models["mixture of 4 experts"]
print(f"mixture: {moe.n_iter_} EM iterations, converged: {moe.converged_}")
print(f"accuracy on the {len(test)} test tokens:")
for name, model in models.items():
    n_errors = np.sum(model.predict(X_test) != y_test)
    print(f"  {name:22s} {model.score(X_test, y_test):.3f}  ({n_errors} errors)")

# %%
# How much of that difference is real?
# ------------------------------------
# On the test split the mixture looks better than the other two, but the
# difference is a handful of tokens of a few speakers. The data are
# synthetic, so we can measure much more precisely: draw 2,000 new speakers
# from the same generator (another seed) and score the same fitted models on
# them.
#
# We can also ask how well *any* classifier can do. Under the generator, the
# log-formants of a vowel are a mixture of one Gaussian per speaker group,
# all with the same covariance. Estimating those means and that covariance
# from 3,000 more simulated speakers and predicting the vowel of largest
# posterior gives (very nearly) the Bayes-optimal classifier: no model
# trained on 57 speakers can be expected to beat it.
from scipy.special import logsumexp
from scipy.stats import multivariate_normal


def generative_classifier(reference):
    """The generator's model, fit to the Bunch ``reference``; returns a
    function giving the most probable vowel of every row of X."""
    log_x = np.log(reference.data)
    groups = np.unique(reference.group)
    n_vowels = len(reference.target_names)
    means, residuals = {}, []
    for g in groups:
        for k in range(n_vowels):
            rows = log_x[(reference.group == g) & (reference.target == k)]
            means[g, k] = rows.mean(axis=0)
            residuals.append(rows - means[g, k])
    cov = np.cov(np.vstack(residuals), rowvar=False)
    log_prior = {g: np.log(np.mean(reference.group == g)) for g in groups}

    def predict(X):
        # log p(x | vowel k) = log sum_g P(g) N(log x; mu_gk, cov) + const
        log_joint = np.empty((len(X), len(groups), n_vowels))
        for i, g in enumerate(groups):
            for k in range(n_vowels):
                log_joint[:, i, k] = log_prior[g] + multivariate_normal.logpdf(
                    np.log(X), means[g, k], cov
                )
        return logsumexp(log_joint, axis=1).argmax(axis=1)

    return predict


fresh = make_vowels(2000, random_state=1)
bayes = generative_classifier(make_vowels(3000, random_state=2))
print(f"accuracy on {len(fresh.target)} tokens of 2000 new speakers:")
for name, model in models.items():
    print(f"  {name:22s} {model.score(fresh.data, names[fresh.target]):.3f}")
print(f"  {'near-Bayes-optimal':22s} {np.mean(bayes(fresh.data) == fresh.target):.3f}")

# %%
# On new speakers the three classifiers are as good as each other, and all
# are close to the best possible accuracy: the lead of the mixture on the
# test split was luck of the split. Logistic regression is hard to beat here
# because what makes vowels hard to recognise, the differences between
# speakers, is linear in this generator. Within a group, a speaker
# multiplies F1 and F2 by one common factor, which moves every vowel along a
# line through the origin, and the groups' mean formants differ mostly in
# the same way. A vowel is then set by the ratio F2 / F1 more than by either
# formant, and a boundary ``F2 / F1 = c`` is the straight line
# ``F2 - c F1 = 0``: just what a linear classifier draws. Real speakers
# differ in more than one overall factor, which is why speaker normalisation
# is a problem in its own right, and real measurements hold outliers; the
# generator has neither.
#
# Where the gate sends each input, and what each expert does there
# ----------------------------------------------------------------
# What the mixture does offer is a decomposition. Top: the gate's regions,
# each expert's colour paler where the gate is less sure. Bottom: inside the
# region of every expert, its own decision boundary; an expert without a
# line predicts a single vowel in its whole region (the legend names it).
# The mixture's classifier is this patchwork.
from hmexperts.plotting import plot_expert_boundaries, plot_gate_regions

fig, (ax_gate, ax_expert) = plt.subplots(
    2, 1, figsize=(7.2, 9), sharex=True, layout="constrained"
)
plot_gate_regions(moe, X, y, features=(1, 0), ax=ax_gate)
plot_expert_boundaries(moe, X, y, features=(1, 0), ax=ax_expert)
formant_axes(ax_gate)
formant_axes(ax_expert)
ax_gate.set_xlabel("")  # shared with the panel below
plt.show()

# %%
# Division of labour
# ------------------
# :func:`~hmexperts.plotting.plot_specialisation` with ``normalize="label"``
# shows how the gate shares the tokens of every vowel (top) and of every
# speaker group (bottom) among the experts: every column sums to 1.
from hmexperts.diagnostics import expert_load
from hmexperts.plotting import plot_specialisation

print("expert load (share of all tokens):", np.round(expert_load(moe, X), 2))
fig, (ax_v, ax_g) = plt.subplots(2, 1, figsize=(6, 6.4), layout="constrained")
plot_specialisation(moe, X, vowels.target, normalize="label", ax=ax_v)
ax_v.set_xticks(range(len(names)), names)
ax_v.set(xlabel="vowel", title="Experts over vowels")
groups = list(group_colors)  # men, women, children
group_codes = np.array([groups.index(group) for group in vowels.group])
plot_specialisation(moe, X, group_codes, normalize="label", ax=ax_g)
ax_g.set_xticks(range(len(groups)), groups)
ax_g.set(xlabel="speaker group", title="Experts over speaker groups")
plt.show()

# %%
# The gate divides the work much as Jacobs et al. describe: one expert takes
# all the tokens of the front vowels [i] and [ɪ] and draws the boundary
# between them, and the back vowels [a] and [ʌ] go to the other three
# experts. Two of those predict a single vowel in their whole region, so
# there the boundary between [a] and [ʌ] is drawn by the gate. The third
# takes the back vowels of the highest voices: a good share of the
# children's tokens, fewer of the women's and none of the men's. Every group
# sends half its tokens to the front-vowel expert, as every speaker says
# each of the four vowels equally often.
#
# Ten vowels
# ----------
# With all ten vowels of Peterson & Barney, which ring the vowel space, the
# classes are no longer separated by lines through the origin alone. The
# same three classifiers, split and generator-based reference as above:
ten = ("IY", "IH", "EH", "AE", "AA", "AO", "UH", "UW", "AH", "ER")
vowels10 = make_vowels(vowels=ten, random_state=0)
X10, y10 = vowels10.data, vowels10.target
train10, test10 = next(splitter.split(X10, y10, groups=vowels10.speaker))
fresh10 = make_vowels(2000, vowels=ten, random_state=1)
bayes10 = generative_classifier(make_vowels(3000, vowels=ten, random_state=2))
models10 = {
    name: model.fit(X10[train10], y10[train10]) for name, model in classifiers().items()
}
print("ten vowels, accuracy on the test split / on 2000 new speakers:")
for name, model in models10.items():
    split_accuracy = model.score(X10[test10], y10[test10])
    fresh_accuracy = model.score(fresh10.data, fresh10.target)
    print(f"  {name:22s} {split_accuracy:.3f} / {fresh_accuracy:.3f}")
bayes10_accuracy = np.mean(bayes10(fresh10.data) == fresh10.target)
print(f"  {'near-Bayes-optimal':22s}   -   / {bayes10_accuracy:.3f}")

# %%
# With ten vowels, logistic regression falls short of the best possible
# accuracy on new speakers, and the mixture and the MLP come closer to it;
# on the small test split the three cannot be told apart. The four experts
# again follow the vowel chart (the names mark the vowels' mean formants):
# one takes the front vowels IY, IH and EH, one most of the open vowels AE,
# AA and AH, one most of the back rounded vowels AO, UH and UW, and the last
# a narrow strip in the middle of the chart, where ER and UH lie.
moe10 = models10["mixture of 4 experts"]
# Two subfigures, so that the colour bar sits next to the matrix, not
# under the legend of the panel above.
fig = plt.figure(figsize=(7.2, 9), layout="constrained")
top, bottom = fig.subfigures(2, 1, height_ratios=(1.4, 1))
ax_gate, ax_spec = top.subplots(), bottom.subplots()
plot_gate_regions(moe10, X10, features=(1, 0), ax=ax_gate)
for k, name in enumerate(ten):
    f1, f2 = X10[y10 == k].mean(axis=0)
    ax_gate.annotate(
        name,
        (f2, f1),
        ha="center",
        va="center",
        fontweight="bold",
        bbox={"boxstyle": "round,pad=0.2", "fc": "w", "alpha": 0.8},
    )
formant_axes(ax_gate)
plot_specialisation(moe10, X10, y10, normalize="label", ax=ax_spec)
ax_spec.set_xticks(range(len(ten)), ten)
ax_spec.set(xlabel="vowel", title="Experts over ten vowels")
plt.show()
