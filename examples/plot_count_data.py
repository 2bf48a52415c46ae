"""
=====================================================================
Counts: latent classes of doctor visits in the RAND health experiment
=====================================================================

A statistician's analysis of count data with Poisson experts
(``expert="poisson"``): how many outpatient visits to a doctor people make
in a year, and how that depends on their insurance and their health. The
number of visits is overdispersed (its variance is several times its
mean) and has many zeros, which a single Poisson regression cannot
describe. A finite mixture of Poisson regressions can, and its classes
have a reading of their own: people who rarely see a doctor, and people
who see one often (Deb & Trivedi, 2002, fit such latent classes to these
data).

The example chooses the number of classes by BIC and ICL, chooses which
covariates the gate and the experts read (``gate_features``,
``expert_features``), reads the chosen model's coefficient table
(``summary``) and compares the fitted predictive distribution of the
counts with the observed one.
"""

# %%
# The data
# --------
# The RAND Health Insurance Experiment (1974-1982) assigned families at
# random to health insurance plans that differed in how much of the bill
# they paid themselves (the coinsurance rate: 0, 25, 50 or 95%), and
# recorded their use of health care. statsmodels ships a subset of it,
# from Cameron & Trivedi (2005), as :mod:`statsmodels.datasets.randhie`;
# its ``COPYRIGHT`` says the data are in the public domain:
from statsmodels.datasets import randhie

print(randhie.COPYRIGHT)
data = randhie.load_pandas().data
print(data.shape)

# %%
# The target is ``mdvis``, the number of outpatient visits to a doctor in
# a year. The covariates describe the plan (``lncoins``, the log of the
# coinsurance rate plus one; ``idp``, an individual deductible; ``lpi``,
# the log of the payment for taking part; ``fmde``, a function of the
# maximum expenditure) and the person's health at the start
# (``physlm``, a physical limitation; ``disea``, the number of chronic
# diseases; ``hlthg``, ``hlthf``, ``hlthp``: self-rated health good, fair
# or poor, against excellent).
#
# Every row is one person in one year of the study, so most people appear
# three or five times, and their rows are not independent. The standard
# errors below treat rows as independent, so we keep one row per person:
# the first study year. The data set does not hold the year, but the
# original file that statsmodels ships beside it does, row for row.
from pathlib import Path

import numpy as np
import pandas as pd

source = Path(randhie.__file__).parent / "src" / "randhie.csv"
original = pd.read_csv(source, usecols=["zper", "year"])
first_year = (original["year"] == 1).to_numpy()
assert original.loc[first_year, "zper"].is_unique  # one row per person
data = data[first_year]
X = data.drop(columns="mdvis")
y = data["mdvis"].to_numpy()
print(
    f"{len(y)} people: mean {y.mean():.2f} visits, variance {y.var():.1f}, "
    f"{np.mean(y == 0):.0%} made none, the most made {y.max()}"
)

# %%
# One expert: the Poisson regression
# ----------------------------------
# With ``n_experts=1`` the model is a Poisson regression (a generalised
# linear model with a log link). The penalties ``gate_alpha`` and
# ``expert_alpha`` default to ``1e-2``, a weak prior on the coefficients;
# at ``1e-8`` the fit is maximum likelihood, as in flexmix or statsmodels,
# and ``summary``'s standard errors are those of the likelihood. Its
# coefficients and standard errors agree with statsmodels' ``GLM``:
import statsmodels.api as sm

from hmexperts import MixtureOfExpertsRegressor

ml = {"gate_alpha": 1e-8, "expert_alpha": 1e-8}
glm = MixtureOfExpertsRegressor(1, expert="poisson", **ml).fit(X, y)
reference = sm.GLM(y, sm.add_constant(X), family=sm.families.Poisson()).fit()
ours = glm.summary(X, y).set_index("feature").loc[list(X.columns)]
theirs = reference.params[X.columns], reference.bse[X.columns]
print(
    "largest difference from statsmodels:\n"
    f"  coefficients {np.max(np.abs(ours['estimate'] - theirs[0])):.1e}\n"
    f"  standard errors (relative) "
    f"{np.max(np.abs(ours['std_error'] / theirs[1] - 1)):.1e}"
)

# %%
# The Poisson regression gives every person a mean :math:`\mu_i` and the
# probability :math:`e^{-\mu_i}` of no visit. It expects far fewer people
# without a visit than there are:
mean_glm = glm.predict(X)
print(
    f"people with no visit: observed {np.sum(y == 0)}, "
    f"Poisson regression expects {np.sum(np.exp(-mean_glm)):.0f}"
)

# %%
# How many classes: BIC and ICL
# -----------------------------
# Mixtures of 1 to 4 Poisson regressions, every gate and every expert on
# all the covariates, each the best of 5 EM starts. ``bic`` counts every
# free parameter: each expert's coefficients and intercept, and each
# gate's for all its children but the first, the reference. ``icl`` is BIC
# plus twice the entropy of the posterior classification of the people
# among the classes (Biernacki, Celeux & Govaert, 2000): it also asks that
# the classes be well separated. Lower is better for both.
n_people = len(y)


def criteria(model):
    """Parameters, log-likelihood, BIC and ICL of a fitted model."""
    bic, aic = model.bic(X, y), model.aic(X, y)
    n_parameters = round((bic - aic) / (np.log(n_people) - 2))
    log_lik = model.log_likelihood(X, y).sum()
    return n_parameters, log_lik, bic, model.icl(X, y)


def poisson_mixture(n_experts, **features):
    return MixtureOfExpertsRegressor(
        n_experts,
        expert="poisson",
        n_init=5,
        max_iter=500,
        random_state=0,
        **features,
        **ml,
    ).fit(X, y)


sizes = [1, 2, 3, 4]
by_size = {k: poisson_mixture(k) for k in sizes}
rows = pd.DataFrame(
    [criteria(by_size[k]) for k in sizes],
    index=pd.Index(sizes, name="n_experts"),
    columns=["parameters", "log-likelihood", "BIC", "ICL"],
)
print(rows.round(1).to_string())
best_bic, best_icl = rows["BIC"].idxmin(), rows["ICL"].idxmin()
print(f"BIC chooses {best_bic} classes, ICL chooses {best_icl}")

# %%
# One Poisson class is far worse than two. Beyond that, BIC keeps falling:
# a Poisson class has its variance equal to its mean, so the mixture uses
# further classes to absorb the overdispersion that remains within the
# classes (negative binomial classes, as Deb & Trivedi use, would need
# fewer). ICL rises again after 3 classes: the fourth class overlaps the
# others, and many people could belong to either. The number of classes is
# a question about groups of people, which is what ICL answers; we keep
# ICL's choice.
n_classes = best_icl

# %%
# Which covariates the gate and the experts read
# ----------------------------------------------
# The gate says who belongs to which class, the experts how many visits a
# class makes. ``gate_features`` and ``expert_features`` choose the
# columns each reads (names of the DataFrame's columns here; ``[]``: an
# intercept only). With ``n_classes`` classes, four choices:
#
# - every covariate in the gate and in the experts (as above);
# - health in the gate (it decides the class), the plan in the experts
#   (it changes the visits within a class);
# - a constant gate, ``gate_features=[]``: a plain mixture of Poisson
#   regressions with fixed class shares, the latent class model of Deb &
#   Trivedi (2002);
# - constant experts, ``expert_features=[]``: a latent class model with the
#   covariates on the class probabilities only.
#
# The number of classes is fixed now, and the question is one of fit, so
# BIC chooses.
health = ["physlm", "disea", "hlthg", "hlthf", "hlthp"]
plan = ["lncoins", "idp", "lpi", "fmde"]
choices = {
    "all in both": {},
    "health -> gate, plan -> experts": {
        "gate_features": health,
        "expert_features": plan,
    },
    "constant gate": {"gate_features": []},
    "constant experts": {"expert_features": []},
}
by_choice = {"all in both": by_size[n_classes]}
for name, features in list(choices.items())[1:]:
    by_choice[name] = poisson_mixture(n_classes, **features)
rows = pd.DataFrame(
    [criteria(model) for model in by_choice.values()],
    index=pd.Index(list(choices), name=f"{n_classes} classes"),
    columns=["parameters", "log-likelihood", "BIC", "ICL"],
)
print(rows.round(1).to_string())
chosen_name = rows["BIC"].idxmin()
model = by_choice[chosen_name]
print(f"BIC chooses: {chosen_name}")

# %%
# The constant gate loses a little likelihood against the gate on all
# covariates and saves 18 parameters: once the experts read a person's
# health, the gate learns little more from it. Health in the gate and the
# plan in the experts saves more parameters but loses more likelihood
# (the visits within a class depend on health too), and constant experts,
# which leave the visits within a class to chance, fit worst. (ICL, which
# rewards classes the covariates help to tell apart, would keep every
# covariate in the gate.)
#
# The coefficient table
# ---------------------
# ``summary(X, y)`` gives a row per coefficient, in the data's units:
# ``kind`` is ``"gate"`` or ``"expert"``, ``node`` the gate's node
# (numbered level by level from the root, 0) or the expert's leaf,
# ``output`` the gate's child. Every gate's coefficients are those of its
# children against child 0, the reference, whose coefficients are fixed at
# zero; with a constant gate, only intercepts remain:
# :math:`\log(\pi_c / \pi_0)`. The standard errors come from the observed
# information matrix of the log-likelihood (Louis' identity); ``z`` and
# ``p_value`` test each coefficient against zero. The table is shown
# rounded to 3 decimals (a ``p_value`` of 0.000 is below 0.0005); its
# index is the row's position in ``vcov``, used below.
table = model.summary(X, y)
table.round(3)  # noqa: B018 (sphinx-gallery shows the DataFrame)

# %%
# Reading the classes
# -------------------
# EM numbers the classes in no particular order, so we name them by their
# mean number of visits: the average of the expert's mean
# :math:`\exp(x_i^\top \beta_j + b_j)` over the people, with the class's
# share, the average gate probability.
gates = model.predict_gates(X)  # (n_people, n_classes)
means = np.exp(X.to_numpy() @ model.expert_coef_.T + model.expert_intercept_)
order = np.argsort(means.mean(axis=0))
labels = ["low use", "medium use", "high use"][:n_classes]
names = dict(zip(order, labels, strict=True))
for leaf in order:
    print(
        f"leaf {leaf} ({names[leaf]}): {gates[:, leaf].mean():.0%} of people, "
        f"{means[:, leaf].mean():.1f} visits a year on average"
    )

# %%
# The coefficient of ``lncoins`` in an expert is the change in the log of
# the class's expected visits per unit of
# :math:`\log(1 + \text{coinsurance})`, the other covariates held fixed.
# From free care (0%) to a coinsurance of 95% it grows by :math:`\log 96`,
# which multiplies the expected visits by :math:`96^{\beta}`; the
# confidence interval transforms with it:
is_expert = table["kind"] == "expert"
lncoins_rows = table[is_expert & (table["feature"] == "lncoins")]
for _, row in lncoins_rows.iterrows():
    low, estimate, high = 96.0 ** row[["ci_low", "estimate", "ci_high"]]
    print(
        f"{names[row['node']]:>10}: visits x {estimate:.2f} "
        f"(95% interval {low:.2f} to {high:.2f}) at 95% coinsurance"
    )

# %%
# Whether two classes respond differently is a question about a contrast
# of two coefficients, whose standard error needs their covariance:
# ``vcov(X, y)`` is the covariance matrix of the rows of ``summary``.
from scipy import stats

cov = model.vcov(X, y)
row_of_leaf = dict(zip(lncoins_rows["node"], lncoins_rows.index, strict=True))
low, high = row_of_leaf[order[0]], row_of_leaf[order[-1]]
contrast = table.loc[high, "estimate"] - table.loc[low, "estimate"]
std_error = np.sqrt(cov[high, high] + cov[low, low] - 2 * cov[high, low])
p_value = 2 * stats.norm.sf(abs(contrast / std_error))
print(
    f"lncoins, high use minus low use: {contrast:.3f} "
    f"(standard error {std_error:.3f}, p = {p_value:.2g})"
)

# %%
# Paying for care lowers the visits of the low-use class the most, by
# about a third, and those of the high-use class the least, if at all
# (its interval reaches 1), and the contrast says the difference is more
# than chance. One reading: the people of the high-use class, ill, see the
# doctor whatever it costs. The classes are latent, though: they are
# defined by the model, and such readings are hypotheses about them.

# %%
# The fitted distribution of the counts
# -------------------------------------
# The model's predictive distribution of a person's visits is the mixture
# :math:`\sum_j \pi_j(x_i)\, \mathrm{Poisson}(k;\ \mu_{ij})`. Summed over
# the people it gives the expected number of people with :math:`k` visits,
# to compare with the observed numbers. Left, 0 to 20 visits with each
# class's share, on a square-root scale (as in Tukey's rootogram) so that
# small numbers show; right, the number of people with at least :math:`k`
# visits, on a log scale, for the tail.
import matplotlib.pyplot as plt

counts = np.arange(81)
observed = np.bincount(y, minlength=len(counts))[: len(counts)]
pmf = stats.poisson.pmf(counts[None, None, :], means[:, :, None])
by_class = np.einsum("ij,ijk->jk", gates, pmf)  # (n_classes, counts)
expected = by_class.sum(axis=0)
pmf_glm = stats.poisson.pmf(counts[None, :], mean_glm[:, None])
expected_glm = pmf_glm.sum(axis=0)


def at_least(frequencies):
    """Number of people with at least k visits, from the numbers with k."""
    return frequencies[::-1].cumsum()[::-1]


fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.6), layout="constrained")
ax_pmf, ax_tail = axes
k = counts[counts <= 20]
ax_pmf.bar(k, observed[k], color="0.8", label="observed")
ax_pmf.plot(k, expected_glm[k], "k:", label="Poisson regression")
ax_pmf.plot(k, expected[k], "k-", label=f"{n_classes} classes")
for leaf in order:
    ax_pmf.plot(k, by_class[leaf, k], "--", label=names[leaf])
ax_pmf.set_yscale("function", functions=(np.sqrt, np.square))
ax_pmf.set_yticks([0, 25, 100, 250, 500, 1000, 1500])
ax_pmf.set(xlabel="visits in the year", ylabel="people")
ax_pmf.set_title("0 to 20 visits")
ax_pmf.legend(fontsize="small")
k = counts[counts <= 60]
observed_tail = at_least(observed)[k]
ax_tail.step(k, observed_tail, "0.6", where="post", lw=2, label="observed")
ax_tail.plot(k, at_least(expected_glm)[k], "k:")
ax_tail.plot(k, at_least(expected)[k], "k-")
ax_tail.set(
    yscale="log",
    ylim=(0.5, 2 * n_people),
    xlabel="visits in the year",
    ylabel="people with at least that many",
    title="The tail",
)
ax_tail.legend(fontsize="small")
plt.show()

many_observed, many_expected = at_least(observed)[30], at_least(expected)[30]
print(f"no visit: observed {observed[0]}, expected {expected[0]:.0f}")
print(f"30 or more: observed {many_observed}, expected {many_expected:.0f}")

# %%
# The Poisson regression expects too few people at zero and in the tail,
# and too many in between. The mixture comes close at both ends: the
# low-use class holds most of the zeros, and the high-use class the tail
# up to about 25 visits. It still expects somewhat fewer people with no
# visit than there are, and fewer with 30 visits or more: the
# overdispersion left within the classes, which further Poisson classes
# would absorb (hence BIC's preference for more of them) and negative
# binomial classes would model directly.
#
# References
# ----------
# C. Biernacki, G. Celeux and G. Govaert (2000). Assessing a mixture model
# for clustering with the integrated completed likelihood. *IEEE
# Transactions on Pattern Analysis and Machine Intelligence* 22(7),
# 719-725.
#
# A. C. Cameron and P. K. Trivedi (2005). *Microeconometrics: Methods and
# Applications*. Cambridge University Press.
#
# P. Deb and P. K. Trivedi (2002). The structure of demand for health care:
# latent class versus two-part models. *Journal of Health Economics* 21(4),
# 601-625.
