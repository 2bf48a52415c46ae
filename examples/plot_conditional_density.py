"""
=====================================================================
Conditional densities: Engel's food expenditure against income
=====================================================================

A regression model that returns a mean says nothing about how far the
target strays from it. A mixture of experts models the whole conditional
density :math:`p(y \\mid x)`, so it has predictive quantiles, prediction
intervals, densities and draws
(:meth:`~hmexperts.MixtureOfExpertsRegressor.predict_quantiles`,
:meth:`~hmexperts.MixtureOfExpertsRegressor.predict_interval`,
:meth:`~hmexperts.MixtureOfExpertsRegressor.predict_density`,
:meth:`~hmexperts.MixtureOfExpertsRegressor.sample`), and it can be
scored on held-out data by its log-likelihood and its continuous ranked
probability score (:mod:`hmexperts.metrics`).

This example fits one to data whose spread grows with the input, chooses
its experts by cross-validation, and compares its held-out predictive
distribution with a Gaussian process (a Gaussian predictive distribution
with a constant noise) and with quantile gradient boosting (one model per
quantile, no density).
"""

# %%
# The data
# --------
# Ernst Engel's observation (1857) that poorer households spend a larger
# share of their income on food is the textbook case of quantile
# regression: Koenker & Bassett (1982) used these 235 Belgian working-class
# households of the 19th century, with their annual income and food
# expenditure in Belgian francs, to test for heteroscedasticity. statsmodels
# ships them as :mod:`statsmodels.datasets.engel` (from R's quantreg); its
# ``COPYRIGHT`` says they are in the public domain:
import numpy as np
from statsmodels.datasets import engel

print(engel.COPYRIGHT)
data = engel.load_pandas().data
income = data["income"].to_numpy()
y = data["foodexp"].to_numpy()
print(
    f"{len(y)} households; income {income.min():.0f} to {income.max():.0f} "
    f"francs (median {np.median(income):.0f})"
)

# %%
# The expenditure grows with income, and so does its spread: the richer a
# household, the more its food budget varies. Income is skewed (a few
# households earn five times the median), so every model below reads the
# logarithm of income as its one feature. A linear expert is then a
# straight line in log income, and an expert with a log link (``"gamma"``)
# a power of income, the classic form of an Engel curve.
X = np.log(income)[:, None]

# %%
# Choosing the experts by cross-validation
# ----------------------------------------
# Two families of experts are candidates: Gaussian linear regressions
# (``expert="linear"``, the default), each with a constant variance, whose
# mixture can still grow its spread with income by handing the rich
# households to an expert of larger variance; and gamma regressions
# (``expert="gamma"``), whose standard deviation is proportional to their
# mean. :class:`~sklearn.model_selection.GridSearchCV` scores every
# candidate by its mean held-out log-likelihood
# (:func:`~hmexperts.metrics.log_likelihood_scorer`, higher is better) and
# its mean CRPS (:func:`~hmexperts.metrics.crps_scorer`, minus the CRPS,
# in francs: higher is better), on five folds shared by all the models of
# this example.
import pandas as pd
from sklearn.model_selection import GridSearchCV, KFold

from hmexperts import MixtureOfExpertsRegressor
from hmexperts.metrics import crps_scorer, log_likelihood_scorer

folds = KFold(n_splits=5, shuffle=True, random_state=0)
search = GridSearchCV(
    MixtureOfExpertsRegressor(random_state=0),
    {"expert": ["linear", "gamma"], "n_experts": [1, 2, 3, 4]},
    scoring={"log_lik": log_likelihood_scorer, "crps": crps_scorer},
    refit="log_lik",
    cv=folds,
).fit(X, y)

results = pd.DataFrame(
    {
        "expert": search.cv_results_["param_expert"],
        "n_experts": search.cv_results_["param_n_experts"],
        "log-lik": search.cv_results_["mean_test_log_lik"],
        "std": search.cv_results_["std_test_log_lik"],
        "CRPS": -search.cv_results_["mean_test_crps"],
    }
)
print(results.round(3).to_string(index=False))
print("best by log-likelihood:", search.best_params_)

# %%
# One Gaussian expert (a linear regression with a constant variance) is
# clearly the worst. Mixtures of Gaussian experts gain up to three
# experts, as they learn how the spread changes with income, and lose
# with a fourth. The gamma family does better still, and with it a single
# expert does as well as two: the heteroscedasticity of these data is a
# constant coefficient of variation, which one gamma regression already
# describes, and the search chooses it. The differences between the best
# few candidates are small beside the spread of the scores over the folds
# (``std``); the held-out comparison below measures them more precisely.
# It follows the best of both families: the mixture of Gaussian experts,
# to see what a mixture makes of heteroscedastic data, and the gamma
# model.


def expert_name(n, family):
    return f"MoE, {n} {family} expert" + ("s" if n > 1 else "")


best = results.loc[results.groupby("expert")["log-lik"].idxmax()]
n_linear, n_gamma = (
    int(best.loc[best["expert"] == family, "n_experts"].iloc[0])
    for family in ("linear", "gamma")
)
gaussian_name = expert_name(n_linear, "Gaussian")
gamma_name = expert_name(n_gamma, "gamma")
gaussian = MixtureOfExpertsRegressor(n_linear, random_state=0)
gamma = MixtureOfExpertsRegressor(n_gamma, expert="gamma", random_state=0)
mixtures = {gaussian_name: gaussian, gamma_name: gamma}

# %%
# The competitors
# ---------------
# A :class:`~sklearn.gaussian_process.GaussianProcessRegressor` with an RBF
# kernel and a ``WhiteKernel`` learns a smooth mean and one noise level:
# its predictive distribution is Gaussian, with a standard deviation that
# is nearly constant where there are data. The same GP fit to the
# logarithm of the expenditure has a constant spread on the log scale,
# that is, a lognormal predictive distribution whose spread grows with the
# mean: it is the usual repair, and a fair test of the mixtures.
# :class:`~sklearn.ensemble.HistGradientBoostingRegressor` with
# ``loss="quantile"`` fits one model per quantile; it gives intervals but
# no density, so it has no log-likelihood and no CRPS here.
from scipy import stats
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel


def make_gbm(quantile):
    return HistGradientBoostingRegressor(
        loss="quantile",
        quantile=quantile,
        random_state=0,
    )


def make_gp():
    kernel = ConstantKernel() * RBF(1.0) + WhiteKernel(0.1)
    return GaussianProcessRegressor(kernel, normalize_y=True)


def gaussian_crps(mean, std, y):
    """CRPS of a normal law (Gneiting & Raftery, 2007)."""
    z = (y - mean) / std
    pdf, cdf = stats.norm.pdf(z), stats.norm.cdf(z)
    return std * (z * (2 * cdf - 1) + 2 * pdf - 1 / np.sqrt(np.pi))


def lognormal_crps(mu, sigma, y):
    """CRPS of a lognormal law (Baran & Lerch, 2015)."""
    z = (np.log(y) - mu) / sigma
    mean = np.exp(mu + sigma**2 / 2)
    inner = stats.norm.cdf(z - sigma) + stats.norm.cdf(sigma / np.sqrt(2)) - 1
    return y * (2 * stats.norm.cdf(z) - 1) - 2 * mean * inner


# %%
# Held-out scores
# ---------------
# Every model is fit on four folds and scored on the fifth, for each of the
# five folds, and the scores of the 235 held-out households are averaged:
# the log-likelihood (nats per household, higher is better), the CRPS
# (francs, lower is better), the share of the households inside their
# central 90% prediction interval (``covered``; ``poorer`` and ``richer``:
# the share among the households below and above the median income) and
# the interval's mean width in francs. A model with the right spread
# covers 90% of both halves; one with a constant spread covers too many
# of the poorer and too few of the richer.
from hmexperts.metrics import crps

z90 = stats.norm.ppf(0.95)
poor = income < np.median(income)
columns = ["log_lik", "crps", "inside", "width"]
held_out = {
    name: pd.DataFrame(np.nan, index=range(len(y)), columns=columns)
    for name in [*mixtures, "GP", "GP on log y", "quantile GBM"]
}
gbm_train_cover = []
for train, test in folds.split(X):
    X_train, y_train, X_test, y_test = X[train], y[train], X[test], y[test]
    for name, model in mixtures.items():
        model.fit(X_train, y_train)
        low, high = model.predict_interval(X_test, coverage=0.9).T
        held_out[name].loc[test] = np.column_stack(
            [
                model.log_likelihood(X_test, y_test),
                crps(model, X_test, y_test),
                (low <= y_test) & (y_test <= high),
                high - low,
            ]
        )

    gp = make_gp().fit(X_train, y_train)
    mean, std = gp.predict(X_test, return_std=True)
    held_out["GP"].loc[test] = np.column_stack(
        [
            stats.norm.logpdf(y_test, mean, std),
            gaussian_crps(mean, std, y_test),
            np.abs(y_test - mean) <= z90 * std,
            2 * z90 * std,
        ]
    )

    gp_log = make_gp().fit(X_train, np.log(y_train))
    mu, sigma = gp_log.predict(X_test, return_std=True)
    low, high = np.exp(mu - z90 * sigma), np.exp(mu + z90 * sigma)
    held_out["GP on log y"].loc[test] = np.column_stack(
        [
            # the density of y, not of log y: the Jacobian 1 / y
            stats.norm.logpdf(np.log(y_test), mu, sigma) - np.log(y_test),
            lognormal_crps(mu, sigma, y_test),
            (low <= y_test) & (y_test <= high),
            high - low,
        ]
    )

    lower = make_gbm(0.05).fit(X_train, y_train)
    upper = make_gbm(0.95).fit(X_train, y_train)
    low, high = lower.predict(X_test), upper.predict(X_test)
    held_out["quantile GBM"].loc[test, ["inside", "width"]] = np.column_stack(
        [(low <= y_test) & (y_test <= high), high - low]
    )
    low, high = lower.predict(X_train), upper.predict(X_train)
    gbm_train_cover.append(np.mean((low <= y_train) & (y_train <= high)))

table = pd.DataFrame(
    {
        name: {
            "log-lik": scores["log_lik"].mean(),
            "CRPS": scores["crps"].mean(),
            "covered": scores["inside"].mean(),
            "poorer": scores["inside"][poor].mean(),
            "richer": scores["inside"][~poor].mean(),
            "width": scores["width"].mean(),
        }
        for name, scores in held_out.items()
    }
).T
digits = {"log-lik": 3, "CRPS": 1, "covered": 3, "poorer": 3, "richer": 3}
print(table.round(digits | {"width": 0}).to_string())
print(
    "quantile GBM, share of its training households inside: "
    f"{np.mean(gbm_train_cover):.3f}"
)

# %%
# The standard error of a difference of two models' mean log-likelihoods,
# from the 235 paired per-household differences, says which gaps are
# real:
pairs = [
    (gaussian_name, "GP"),
    (gaussian_name, gamma_name),
    (gaussian_name, "GP on log y"),
    (gamma_name, "GP on log y"),
]
for first, second in pairs:
    difference = held_out[first]["log_lik"] - held_out[second]["log_lik"]
    error = difference.std() / np.sqrt(len(y))
    print(
        f"{first} minus {second}: {difference.mean():+.3f}",
        f"(standard error {error:.3f})",
    )

# %%
# The Gaussian process has the lowest log-likelihood and the highest CRPS
# of the models with a density. Its intervals are about as wide for the
# poorest households as for the richest, so they hold nearly all of the
# poorer half and too few of the richer half. The mixture of Gaussian
# experts learns the growing spread: its intervals are narrower, and they
# cover both halves alike. The gamma model and the GP on the log scale do
# better still, by about twice the standard error of the difference, and
# tie with each other: when the spread is proportional to the mean, a
# gamma family or a log scale is the natural model, and a mixture of
# Gaussian experts can only approximate it. Quantile boosting holds too
# few of the held-out households, in intervals as wide as the others',
# and fewer than it holds of its own training households: with under 200
# households to learn from, the two models of the 5% and the 95%
# quantiles follow the noise of the training data.
#
# The predictive distributions
# ----------------------------
# Refit on all the data, the mixtures give their quantiles at any income.
# The bands below hold 50% and 90% of every model's predictive
# distribution (the GP's: its mean plus or minus 0.67 and 1.64 standard
# deviations; the boosted models': their own quantiles). Two draws per
# household from the Gaussian-expert mixture (``sample(X, n_draws=2)``)
# are two simulated data sets, to be set beside the real one. The income
# axis is logarithmic, as the models' feature.
import matplotlib.pyplot as plt
from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

for model in mixtures.values():
    model.fit(X, y)
grid = np.geomspace(income.min(), income.max(), 300)
X_grid = np.log(grid)[:, None]
levels = [0.05, 0.25, 0.5, 0.75, 0.95]
bands = {n: m.predict_quantiles(X_grid, levels) for n, m in mixtures.items()}
gp = make_gp().fit(X, y)
mean, std = gp.predict(X_grid, return_std=True)
bands["GP"] = mean[:, None] + std[:, None] * stats.norm.ppf(levels)
bands["quantile GBM"] = np.column_stack(
    [make_gbm(q).fit(X, y).predict(X_grid) for q in levels]
)
draws = gaussian.sample(X, random_state=0, n_draws=2)

fig, axes = plt.subplots(2, 2, figsize=(8, 7), sharex=True, sharey=True)
for ax, (name, q) in zip(axes.flat, bands.items(), strict=True):
    ax.fill_between(grid, q[:, 0], q[:, 4], color="C0", alpha=0.2, label="90%")
    ax.fill_between(grid, q[:, 1], q[:, 3], color="C0", alpha=0.4, label="50%")
    ax.plot(grid, q[:, 2], color="C0", label="median")
    ax.scatter(income, y, s=6, color="k", label="households")
    if name == gaussian_name:
        ax.scatter(
            np.repeat(income, 2),
            draws.ravel(),
            s=10,
            color="C1",
            marker="x",
            linewidths=0.8,
            label="sample(X, n_draws=2)",
        )
    ax.set_title(name)
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
axes[0, 0].legend(loc="upper left", fontsize="small")
for ax in axes[1]:
    ax.set_xlabel("income (Belgian francs, log scale)")
    ax.xaxis.set_major_locator(FixedLocator([500, 1000, 2000, 4000]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
for ax in axes[:, 0]:
    ax.set_ylabel("food expenditure (francs)")
fig.tight_layout()

# %%
# The mixtures' bands widen with income, and the draws from the mixture
# spread as the data do. The GP's band has about the same width
# everywhere: at the lowest income its 90% band starts near 100 francs,
# where no household spends under 240, and above 1500 francs many
# households fall outside it. Past 2500 francs there are three households
# and every model extrapolates: the gamma model's power law keeps
# rising, the Gaussian mixture's last expert goes on as a straight line
# in log income, the GP flattens, and the boosted trees stay flat from
# about 1600 francs on.
#
# How the Gaussian mixture does it
# --------------------------------
# Every expert of the Gaussian mixture is a straight line in log income
# with a constant standard deviation, and the gate hands each income to
# mostly one of them (``predict_gates``): the poorest households to the
# expert of the smallest spread, the richest to that of the largest. The
# heteroscedasticity is a staircase of variances, smoothed where the gate
# hesitates. The gamma model is one line in the log of the mean, a power
# of income (the elasticity below 1 is Engel's law), with a constant
# coefficient of variation:
incomes = np.array([500.0, 1000.0, 2000.0])
X_three = np.log(incomes)[:, None]
print(
    "Gaussian experts' standard deviations (francs):",
    np.sqrt(gaussian.expert_variance_).round(0),
)
print(
    pd.DataFrame(
        gaussian.predict_gates(X_three),
        index=[f"income {v:.0f}" for v in incomes],
        columns=[f"expert {j}" for j in range(gaussian.n_leaves_)],
    ).round(2)
)
if n_gamma == 1:
    print(
        f"gamma: mean = {np.exp(gamma.expert_intercept_[0]):.2f} "
        f"* income ** {gamma.expert_coef_[0, 0]:.3f}, coefficient of "
        f"variation {np.sqrt(gamma.expert_dispersion_[0]):.3f}"
    )

# %%
# Densities at three incomes
# --------------------------
# :meth:`~hmexperts.MixtureOfExpertsRegressor.predict_density` evaluates
# the predictive density on a grid of the target, here a grid per income
# (``y_grid`` of shape ``(n_samples, n_grid)``) from 40% to 190% of the
# gamma model's median. Below every density, a bar marks the model's
# central 90% interval. At 500 francs the GP's density is more than twice
# as wide as the mixtures'; at 2000 francs it is narrower, and the
# Gaussian mixture's is a blend of two experts, with a heavier right
# tail.
median = gamma.predict_quantiles(X_three, 0.5)
y_grid = median * np.linspace(0.4, 1.9, 400)[None, :]
densities, intervals = {}, {}
for name, model in mixtures.items():
    densities[name] = model.predict_density(X_three, y_grid)
    intervals[name] = model.predict_interval(X_three, coverage=0.9)
mean, std = gp.predict(X_three, return_std=True)
densities["GP"] = stats.norm.pdf(y_grid, mean[:, None], std[:, None])
intervals["GP"] = mean[:, None] + z90 * std[:, None] * np.array([-1, 1])

fig, axes = plt.subplots(1, 3, figsize=(9, 3.6))
for i, ax in enumerate(axes):
    top = max(density[i].max() for density in densities.values())
    for k, name in enumerate(densities):
        ax.plot(y_grid[i], densities[name][i], color=f"C{k}", label=name)
        below = -(k + 1) * 0.06 * top
        ax.hlines(below, *intervals[name][i], color=f"C{k}", lw=3)
    ax.set_title(f"income {incomes[i]:.0f} francs")
    ax.set_xlabel("food expenditure (francs)")
    ax.set_yticks([])
axes[0].set_ylabel("predictive density")
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="upper center", ncol=3)
fig.tight_layout(rect=(0, 0, 1, 0.9))

# %%
# The densities are unimodal, so the highest-density region
# (``kind="hdr"``), the shortest set with 90% of the probability, is one
# interval, shifted a little from the central one towards the mode:
for name, model in mixtures.items():
    regions = model.predict_interval(X_three, coverage=0.9, kind="hdr")
    print(name)
    for i, region in enumerate(regions):
        low, high = intervals[name][i]
        hdr = " and ".join(f"[{a:.0f}, {b:.0f}]" for a, b in region)
        print(
            f"  income {incomes[i]:4.0f}: central [{low:.0f}, {high:.0f}], "
            f"highest-density {hdr}"
        )

# %%
# It would matter for a bimodal law, whose central interval also covers
# the improbable gap between the modes (see the user guide's
# :ref:`predictive-distributions`).
#
# Where the mixture wins, and where not
# -------------------------------------
# Against a Gaussian process with one noise level, the mixture of Gaussian
# experts is a clear gain on these heteroscedastic data: a higher held-out
# log-likelihood, a lower CRPS, and intervals that are narrower where the
# data are tight and still cover where they are not, from linear experts
# and a gate whose parameters remain readable. Against models that know
# the spread grows with the mean (a gamma family, or a GP of the log of
# the target) it has no edge and loses a little, and the cross-validated
# log-likelihood then chooses a single gamma expert: a mixture adds
# nothing these data can measure. Mixtures pay off when the conditional
# law changes its shape with ``x`` in a way no single family describes
# (regimes with slopes of their own, as in
# :ref:`sphx_glr_auto_examples_plot_piecewise_regression.py`, or with
# noise levels of their own, as in
# :ref:`sphx_glr_auto_examples_plot_gp_experts.py`, or several modes),
# and the held-out log-likelihood and CRPS are what tell.
#
# References
# ----------
# R. Koenker and G. Bassett (1982). Robust tests of heteroscedasticity
# based on regression quantiles. *Econometrica* 50(1), 43-61.
#
# T. Gneiting and A. E. Raftery (2007). Strictly proper scoring rules,
# prediction, and estimation. *Journal of the American Statistical
# Association* 102(477), 359-378.
#
# S. Baran and S. Lerch (2015). Log-normal distribution based ensemble
# model output statistics models for probabilistic wind-speed forecasting.
# *Quarterly Journal of the Royal Meteorological Society* 141, 2289-2299.
