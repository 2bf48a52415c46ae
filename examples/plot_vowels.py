"""
=====================================================
Vowels: Jacobs et al. (1991) on Peterson & Barney
=====================================================

Jacobs, Jordan, Nowlan & Hinton (1991) introduced the mixture of experts on
a vowel task: tell the vowels [i], [ɪ], [a] and [ʌ] (ARPAbet ``IY``, ``IH``,
``AA``, ``AH``: the vowels of *heed*, *hid*, *hod* and *hud*) apart from the
first two formants, F1 and F2, of speakers the model has not heard. Their
data were the measurements of Peterson & Barney (1952): men, women and
children, each saying every vowel twice. This example repeats the
experiment on those measurements, with four experts, and sets our results
next to theirs: the accuracy on held-out speakers, and the way the gate
divides the work among the experts.

**The data.** :func:`~hmexperts.datasets.load_peterson_barney` loads the
table shipped with hmexperts (no download): the F0, F1, F2 and F3 of 1,520
tokens of 76 speakers (33 men, 28 women, 15 children). It is the table of
Praat's command "Create formant table (Peterson & Barney 1952)", saved by
Praat unchanged. By Praat's source and manual, it comes from a file
distributed by FTP from the University of Pennsylvania and described by
Watrous (1991), which was based on a printed copy of the measurements
supplied by Ignatius Mattingly in 1990. Praat is under the GNU GPL, but no
licence or terms of use for the numbers themselves are stated anywhere we
looked, so **their licence status is unclear**; the data set's ``DESCR``
gives the details and the data's known oddities.

References: Peterson, G. E., & Barney, H. L. (1952). Control methods used
in a study of the vowels. *JASA* 24(2), 175-184. Watrous, R. L. (1991).
Current status of Peterson-Barney vowel formant data. *JASA* 89(5),
2459-2460. Jacobs, R. A., Jordan, M. I., Nowlan, S. J., & Hinton, G. E.
(1991). Adaptive mixtures of local experts. *Neural Computation* 3(1),
79-87.
"""

# %%
# The data, by speaker
# --------------------
# Every speaker says every vowel twice. A fair test holds out whole
# speakers, so that it measures how well a model handles voices it has never
# heard: every split below keeps all the tokens of a speaker on one side.
import numpy as np

from hmexperts.datasets import load_peterson_barney

vowels = load_peterson_barney(vowels=["IY", "IH", "AA", "AH"])
names = vowels.target_names
# The targets are the vowels' names, so that predictions and legends name
# them; ``vowels.target`` holds the same as codes 0 to 3.
X, y = vowels.data, names[vowels.target]
speaker, group = vowels.speaker, vowels.group
print(f"vowels: {', '.join(names)}")
print(f"features: {', '.join(vowels.feature_names)} (Hz)")
print(f"{len(y)} tokens of {len(np.unique(speaker))} speakers:")
for g in ("men", "women", "children"):
    print(f"  {g:9s} {len(np.unique(speaker[group == g])):3d} speakers")

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
# A speaker's vocal tract length scales all of its formants by roughly the
# same factor, so the tokens of a vowel stretch along a line through the
# origin (dashed: the line through the origin and the vowel's mean).
# Children have the shortest vocal tracts and the highest formants. The
# vowels of a pair, [i] and [ɪ], [a] and [ʌ], overlap; the two pairs lie far
# apart.
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
group_colors = {
    "men": "tab:purple",
    "women": "tab:olive",
    "children": "tab:pink",
}
fig, (ax_vowel, ax_group) = plt.subplots(
    1, 2, figsize=(7.2, 4), sharex=True, sharey=True, layout="constrained"
)
for name in names:
    rows = y == name
    ax_vowel.scatter(
        X[rows, 1],
        X[rows, 0],
        s=14,
        edgecolors="k",
        lw=0.5,
        label=name,
        **style[name],
    )
    f1, f2 = X[rows].mean(axis=0)
    scale = np.array([0.6, 1.5])
    ax_vowel.plot(f2 * scale, f1 * scale, "k--", lw=0.8)
ax_vowel.set_title("by vowel\n(dashed: lines through the origin)")
ax_vowel.legend(title="vowel")
for g, color in group_colors.items():
    rows = group == g
    ax_group.scatter(X[rows, 1], X[rows, 0], s=10, c=color, label=g)
ax_group.set_title("by speaker group\n")
ax_group.legend(title="speakers")
ax_vowel.set_xlim(X[:, 1].max() * 1.05, X[:, 1].min() * 0.9)
ax_vowel.set_ylim(X[:, 0].max() * 1.05, X[:, 0].min() * 0.9)
formant_axes(ax_vowel)
formant_axes(ax_group)
plt.show()

# %%
# What Jacobs et al. report
# -------------------------
# Jacobs et al. trained on the tokens of 50 speakers and tested on 25 other
# speakers. Mixtures of 4 and of 8 linear experts and backpropagation
# networks with 6 and 12 hidden units all reached about 90% accuracy on the
# test speakers (their Table 1); what set the mixtures apart was speed: they
# reached the training criterion in about half as many epochs. We do not
# know which speakers they held out, and our mixture is trained by EM, not
# by gradient descent, so its iterations are not comparable with their
# epochs; what we can compare is the accuracy on new speakers, and the
# division of labour.
#
# The published figure is quoted, not computed: it is the one number of
# this example that is typed in.
PUBLISHED_TEST_ACCURACY = 0.90  # Jacobs et al. (1991), Table 1: about 90%

# %%
# Three classifiers on held-out speakers
# --------------------------------------
# A mixture of four experts (the built-in multinomial-logistic experts under
# a softmax gate, best of five EM restarts), logistic regression and a
# multi-layer perceptron with 6 hidden units, the smaller of Jacobs et al.'s
# backpropagation networks. The mixture standardises its inputs itself; the
# other two get a :class:`~sklearn.preprocessing.StandardScaler`. Logistic
# regression gets a weak penalty, ``C=100``: it fits 12 coefficients to
# some 400 tokens and needs little regularisation.
#
# :class:`~sklearn.model_selection.GroupShuffleSplit` on the speaker ids
# draws 20 splits with 25 test speakers each, as many as Jacobs et al.
# held out, and the other 51 for training. One split says little: the test
# accuracy moves by several points from one set of 25 speakers to another,
# so we report the mean and the standard deviation over the splits. The
# splits share speakers, so the standard deviation describes how much one
# split can differ from another; it is not the standard error of the mean.
#
# The models are small, and one BLAS thread fits them faster than several
# competing for the cores: ``threadpool_limits`` of threadpoolctl (a
# dependency of scikit-learn) sets one for the loop.
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupShuffleSplit
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from hmexperts import MixtureOfExpertsClassifier


def classifiers():
    return {
        "mixture of 4 experts": MixtureOfExpertsClassifier(
            n_experts=4, n_init=5, random_state=0
        ),
        "logistic regression": make_pipeline(
            StandardScaler(), LogisticRegression(C=100)
        ),
        "MLP (6 hidden units)": make_pipeline(
            StandardScaler(),
            MLPClassifier(
                hidden_layer_sizes=(6,),
                solver="lbfgs",
                max_iter=2000,
                random_state=0,
            ),
        ),
    }


splitter = GroupShuffleSplit(n_splits=20, test_size=25, random_state=0)
splits = list(splitter.split(X, y, groups=speaker))
train_accuracy = {name: [] for name in classifiers()}
test_accuracy = {name: [] for name in classifiers()}
with threadpool_limits(limits=1):
    for train, test in splits:
        for name, model in classifiers().items():
            model.fit(X[train], y[train])
            train_accuracy[name].append(model.score(X[train], y[train]))
            test_accuracy[name].append(model.score(X[test], y[test]))

n_train = len(np.unique(speaker[splits[0][0]]))
n_test = len(np.unique(speaker[splits[0][1]]))
print(f"accuracy over {len(splits)} splits by speaker, mean ± sd")
print(f"({n_train} training and {n_test} test speakers in each):")
print(f"  {'':22s} {'training':>13s} {'test':>13s}")
for name in classifiers():
    tr, te = np.array(train_accuracy[name]), np.array(test_accuracy[name])
    print(
        f"  {name:22s} {tr.mean():.3f} ± {tr.std():.3f} "
        f"{te.mean():.3f} ± {te.std():.3f}"
    )
print(
    f"  {'Jacobs et al. (1991)':22s} {'':13s} "
    f"about {PUBLISHED_TEST_ACCURACY:.2f} (50 / 25 speakers)"
)

# %%
# The splits are the same for the three models, so the models can be
# compared split by split:
moe_test = np.array(test_accuracy["mixture of 4 experts"])
for name in ["logistic regression", "MLP (6 hidden units)"]:
    difference = moe_test - np.array(test_accuracy[name])
    print(f"mixture minus {name}:")
    print(
        f"  {difference.mean():+.3f} ± {difference.std():.3f}; mixture "
        f"better on {np.sum(difference > 0)}, worse on "
        f"{np.sum(difference < 0)} of {len(difference)} splits"
    )

# %%
# Every point is one split's test accuracy, and the grey lines join the
# same split across the models; the bars are the means ± one standard
# deviation, and the dashed line is Jacobs et al.'s published figure.
fig, ax = plt.subplots(figsize=(7.2, 3.8), layout="constrained")
model_names = list(test_accuracy)
scores = np.array([test_accuracy[name] for name in model_names])
positions = np.arange(len(model_names))
ax.plot(positions, scores, color="0.8", lw=0.7, zorder=1)
jitter = np.random.default_rng(0).uniform(-0.06, 0.06, scores.shape[1])
for k in positions:
    ax.scatter(k + jitter, scores[k], s=14, color=f"C{k}", zorder=2)
    ax.errorbar(
        k + 0.22,
        scores[k].mean(),
        yerr=scores[k].std(),
        fmt="o",
        color="k",
        capsize=4,
        zorder=3,
    )
ax.axhline(
    PUBLISHED_TEST_ACCURACY,
    color="k",
    ls="--",
    lw=1,
    label="Jacobs et al. (1991): about 90%",
)
ax.set_xticks(positions, model_names)
ax.set_xlim(-0.5, len(model_names) - 0.5)
ax.set_ylabel("test accuracy (25 new speakers)")
ax.set_title(f"{len(splits)} splits by speaker")
fig.legend(loc="outside lower center")
plt.show()

# %%
# On average the three classifiers come out at or a little above the published
# figure, and they differ from each other by much less than one split differs
# from another: with two formants the four vowels are almost separated by
# straight lines, and a linear classifier is hard to beat. Split by split the
# mixture is ahead more often than behind (the counts above), but by a few test
# tokens out of 200. The mixture, like the networks of Jacobs et al.'s Table 1,
# does not win by accuracy here; what it adds is a decomposition that can be
# read off.
#
# Where the gate sends each input, and what each expert does there
# ----------------------------------------------------------------
# We look at the mixture fitted to the training speakers of the first split.
# Top: the gate's regions, each expert's colour paler where the gate is less
# sure. Bottom: inside the region of every expert, its own decision
# boundary; an expert without a line predicts a single vowel in its whole
# region (the legend names it). The mixture's classifier is this patchwork.
from hmexperts.plotting import plot_expert_boundaries, plot_gate_regions

train, test = splits[0]
X_train, y_train = X[train], y[train]
moe = MixtureOfExpertsClassifier(n_experts=4, n_init=5, random_state=0)
moe.fit(X_train, y_train)
print(f"mixture: {moe.n_iter_} EM iterations, converged: {moe.converged_}")
print(f"test accuracy on this split: {moe.score(X[test], y[test]):.3f}")


def plot_division(model, title):
    """Gate regions (top) and the experts' boundaries (bottom) on F2, F1."""
    fig, (ax_gate, ax_expert) = plt.subplots(
        2, 1, figsize=(7.2, 9), sharex=True, layout="constrained"
    )
    plot_gate_regions(model, X_train, y_train, features=(1, 0), ax=ax_gate)
    plot_expert_boundaries(
        model,
        X_train,
        y_train,
        features=(1, 0),
        ax=ax_expert,
    )
    formant_axes(ax_gate)
    formant_axes(ax_expert)
    ax_gate.set_xlabel("")  # shared with the panel below
    fig.suptitle(title)
    plt.show()


plot_division(moe, "Best of five EM restarts (training speakers)")

# %%
# Division of labour
# ------------------
# :func:`~hmexperts.diagnostics.specialisation_matrix` counts the tokens of
# every vowel that the gate sends to every expert (``routing="hard"``: each
# token to its most trusted expert).
# :func:`~hmexperts.plotting.plot_specialisation` draws it. Top, with
# ``normalize="expert"`` (every row sums to 1): what each expert receives.
# Bottom, over the speaker groups with ``normalize="label"`` (every column
# sums to 1): where the tokens of each group go.
#
# The helper ``division`` reads the top matrix as text: for every expert,
# the vowels that make up at least 10% of its tokens, in the order IY, IH,
# AA, AH, and a dash for an expert that receives less than 1% of the
# tokens. An expert that receives both vowels of a pair draws the boundary
# between them itself; where two experts take one vowel each, the gate
# draws it.
from hmexperts.diagnostics import expert_load, specialisation_matrix
from hmexperts.plotting import plot_specialisation

FRONT, BACK = {"IY", "IH"}, {"AA", "AH"}


def division(model):
    """The vowels of every expert's training tokens: a list with, for every
    expert, the set of vowels that make up at least 10% of its tokens, or
    None for an expert with less than 1% of all tokens."""
    counts, values = specialisation_matrix(
        model, X_train, y_train, routing="hard", normalize=None
    )
    parts = []
    for row in counts:
        if row.sum() < 0.01 * len(y_train):
            parts.append(None)
        else:
            parts.append(set(values[row >= 0.1 * row.sum()]))
    return parts


def describe(parts):
    """A division as text, 'IY+IH | AA+AH | ...', experts in vowel order."""
    order = list(names)
    texts = [
        "-" if part is None else "+".join(sorted(part, key=order.index))
        for part in parts
    ]
    texts.sort(key=lambda t: order.index(t[:2]) if t != "-" else len(order))
    return " | ".join(texts)


print("division:", describe(division(moe)))
print("expert load (share of the training tokens):")
print("  ", np.round(expert_load(moe, X_train), 2))

fig, (ax_v, ax_g) = plt.subplots(2, 1, figsize=(6, 6.4), layout="constrained")
plot_specialisation(
    moe,
    X_train,
    vowels.target[train],
    routing="hard",
    normalize="expert",
    ax=ax_v,
)
ax_v.set_xticks(range(len(names)), names)
ax_v.set(xlabel="vowel", title="What each expert receives")
groups = list(group_colors)  # men, women, children
group_codes = np.array([groups.index(g) for g in group[train]])
plot_specialisation(
    moe, X_train, group_codes, routing="hard", normalize="label", ax=ax_g
)
ax_g.set_xticks(range(len(groups)), groups)
ax_g.set(xlabel="speaker group", title="Where each group's tokens go")
plt.show()

# %%
# Is it the published division?
# -----------------------------
# Jacobs et al. describe one expert that learnt to tell [i] from [ɪ], while
# the [a]-[ʌ] distinction went to other experts, and in their simulations
# all but two or three experts ended up with mixing proportions near zero.
# Their mixtures were trained by gradient descent from small random
# weights, and a division is a local optimum of the likelihood, so one fit
# does not settle which division the data favour. We repeat the fit on the
# same training speakers from 20 random starts (``init_params="random"``,
# one start each, as in their simulations) and list the divisions found,
# with each start's training log-likelihood per token and its accuracy on
# the split's 25 test speakers. Then we count, over the starts, the experts
# that receive front vowels only, back vowels only, or both, and the starts
# with the published division: a single expert for the front vowels, which
# receives both, and the back vowels left to the other experts.
from collections import Counter

starts = []
for seed in range(20):
    start = MixtureOfExpertsClassifier(
        n_experts=4, init_params="random", random_state=seed
    ).fit(X_train, y_train)
    log_lik = start.log_likelihood(X_train, y_train).mean()
    starts.append((log_lik, start.score(X[test], y[test]), start))
starts.sort(key=lambda run: -run[0])

print("20 random starts, best training log-likelihood first:")
print("  log-lik  test acc.  vowels of each expert")
n_front, n_back, n_both = Counter(), Counter(), 0
published = []
for log_lik, accuracy, start in starts:
    parts = [part for part in division(start) if part is not None]
    print(f"  {log_lik:7.3f}  {accuracy:9.3f}  {describe(division(start))}")
    front = [part for part in parts if part <= FRONT]
    back = [part for part in parts if part <= BACK]
    n_front[len(front)] += 1
    n_back[len(back)] += 1
    n_both += len(front) + len(back) < len(parts)
    if len(front) + len(back) == len(parts) and front == [FRONT]:
        published.append(start)

# %%
# Counted over the starts:
print("number of starts with 0, 1, 2, 3 or 4 experts on")
print(f"  {'front vowels only':18s}", *(f"{n_front[k]:3d}" for k in range(5)))
print(f"  {'back vowels only':18s}", *(f"{n_back[k]:3d}" for k in range(5)))
print(f"starts with an expert on front and back vowels: {n_both}")
print(f"starts with the published division: {len(published)} of 20")
if published:
    best_published = max(run[0] for run in starts if run[2] in published)
    print(f"best log-lik with the published division: {best_published:.3f}")
print(
    f"best of five restarts (above): {describe(division(moe))}, "
    f"log-lik {moe.log_likelihood(X_train, y_train).mean():.3f}"
)

# %%
# The start of highest likelihood among those with the published division,
# if any found it:
if published:
    plot_division(published[0], "The published division (a random start)")
else:
    print("no start found the published division")

# %%
# On the real data the division of labour is not unique. The restarts land on
# many divisions whose log-likelihoods differ in the second decimal and whose
# test accuracies differ by a few tokens; the data do not pick one. What most
# of them share is the first cut: in most starts no expert receives both front
# and back vowels (the count above), so the experts divide the vowel chart into
# a front and a back part, as in Jacobs et al. Within a part the choice is
# open: one expert may receive both vowels of the pair and draw the boundary
# between them itself, as their [i]-[ɪ] expert did; two experts may take one
# vowel each and leave the boundary to the gate; or the experts may split a
# pair by speaker instead of by vowel, each drawing its own boundary, as the
# best of five restarts above does for the front vowels, and in part for the
# back ones (the matrix over speaker groups shows which groups each expert
# serves). The published division is one of the optima EM finds, not the only
# one; the counts above say how often it came up, and its best log-likelihood
# can be compared with the best of all starts, at the top of the list. And
# where Jacobs et al. saw all but two or three experts fall silent, EM keeps
# more of the four in use (an unused expert would show as a dash in the list).
#
# :func:`~hmexperts.datasets.make_vowels` draws synthetic data of the same
# shape around Peterson & Barney's published means, with the same names:
# replace ``load_peterson_barney`` by it above to see the same analysis on
# data whose generator is known.
