"""
===================================================================
Choosing ``n_experts`` and ``depth``: cross-validation, BIC and AIC
===================================================================

How many experts, and how deep a gate tree? This example compares three
ways to choose:

- the cross-validated log-likelihood, with
  :func:`~hmexperts.metrics.log_likelihood_scorer` as the scoring of
  :class:`~sklearn.model_selection.GridSearchCV` or
  :func:`~sklearn.model_selection.cross_validate`, through a
  :class:`~sklearn.pipeline.Pipeline` that ends in a
  :class:`~hmexperts.MixtureOfExpertsRegressor`;
- the Bayesian information criterion, ``bic(X, y)``, and
- the Akaike information criterion, ``aic(X, y)``, of models fit once on all
  the training data.

On data drawn from a known hierarchical mixture of experts the three agree.
On a small real data set, scikit-learn's diabetes data, AIC and BIC
disagree, and cross-validation settles it. The recommendation at the end:
choose ``n_experts`` and ``depth`` by cross-validated log-likelihood.
"""

# %%
# Data from a known mixture of experts
# ------------------------------------
# :func:`~hmexperts.datasets.make_moe` draws standard-normal inputs, routes
# every sample down a random gate tree (here ``n_experts=2, depth=2``) and
# draws its target from the linear expert of the leaf it reaches, with noise
# of standard deviation 0.3. ``truth.model`` is an estimator holding the
# true parameters; its ``log_likelihood`` is the true log-likelihood.
from sklearn.model_selection import train_test_split

from hmexperts.datasets import make_moe

X, y, truth = make_moe(
    n_samples=1600, n_features=2, n_experts=2, depth=2, noise=0.3, random_state=0
)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, random_state=0
)
print(f"true model: {truth.model.n_leaves_} leaves")

# %%
# Grid search over a Pipeline
# ---------------------------
# The pipeline standardises the inputs before the mixture of experts. The
# estimator already standardises its inputs and target internally (its
# penalties act in standardised units), so the
# :class:`~sklearn.preprocessing.StandardScaler` changes nothing here: it
# stands for whatever preprocessing a real pipeline needs, and shows how
# the mixture's parameters are addressed through the step's name,
# ``moe__n_experts`` and ``moe__depth``.
#
# A tree with ``n_experts=1`` has a single leaf at any depth, so depth 2
# is only searched with 2 to 4 experts. The grid then spans 1 to 16
# leaves. Every fit keeps the best of ``n_init=3`` EM initialisations, and
# ``max_iter=300`` leaves EM room to converge on the largest trees.
#
# :class:`~hmexperts.MixtureOfExpertsRegressor`'s ``score`` is the
# :math:`R^2` of the mixture mean, which ignores the predicted noise and
# the rest of the predictive density. The search therefore also scores the
# held-out mean log-likelihood :math:`\log p(y \mid x)` with
# :func:`~hmexperts.metrics.log_likelihood_scorer`, and picks the model by
# it (``refit="log_likelihood"``). The scorer takes the fitted pipeline,
# sends ``X`` through its transformers and asks the mixture at its end.
import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from hmexperts import MixtureOfExpertsRegressor
from hmexperts.metrics import log_likelihood_scorer

pipeline = Pipeline(
    [
        ("scale", StandardScaler()),
        ("moe", MixtureOfExpertsRegressor(n_init=3, max_iter=300, random_state=0)),
    ]
)
param_grid = [
    {"moe__n_experts": [1, 2, 3, 4], "moe__depth": [1]},
    {"moe__n_experts": [2, 3, 4], "moe__depth": [2]},
]
search = GridSearchCV(
    pipeline,
    param_grid,
    scoring={"r2": "r2", "log_likelihood": log_likelihood_scorer},
    refit="log_likelihood",
    cv=3,
).fit(X_train, y_train)

# %%
# Choosing by BIC and AIC
# -----------------------
# ``bic(X, y)`` is :math:`-2 \log L + p \log n` and ``aic(X, y)`` is
# :math:`-2 \log L + 2p`: minus twice the log-likelihood of the data, plus
# a penalty for each of the :math:`p` free parameters (every gate's and
# expert's coefficients and intercepts, and every expert's noise variance).
# A deeper or wider tree can always fit the training data at least as
# well; the criteria ask whether the gain in likelihood is worth the
# parameters. Lower is better. BIC's penalty, :math:`\log n` per parameter,
# is the heavier one as soon as :math:`n > e^2 \approx 7.4`. Neither needs
# cross-validation, so every model is fit once, on all the training data.
# The table shows :math:`p` too, recovered from the two criteria.
results = search.cv_results_
shapes = [(p["moe__n_experts"], p["moe__depth"]) for p in results["params"]]
models = [
    MixtureOfExpertsRegressor(
        n_experts=n_experts, depth=depth, n_init=3, max_iter=300, random_state=0
    ).fit(X_train, y_train)
    for n_experts, depth in shapes
]
bic = np.array([model.bic(X_train, y_train) for model in models])
aic = np.array([model.aic(X_train, y_train) for model in models])
leaves = np.array([model.n_leaves_ for model in models])
n_parameters = np.round((bic - aic) / (np.log(len(y_train)) - 2)).astype(int)

print("n_experts  depth  leaves  parameters  CV R^2  CV log-lik      BIC      AIC")
for i, (n_experts, depth) in enumerate(shapes):
    print(
        f"{n_experts:>9}  {depth:>5}  {leaves[i]:>6}  {n_parameters[i]:>10}  "
        f"{results['mean_test_r2'][i]:6.3f}  "
        f"{results['mean_test_log_likelihood'][i]:10.3f}  {bic[i]:7.1f}  "
        f"{aic[i]:7.1f}"
    )
best_cv = search.best_index_
best_bic = int(np.argmin(bic))
best_aic = int(np.argmin(aic))
for name, i in [("cross-validation", best_cv), ("BIC", best_bic), ("AIC", best_aic)]:
    n_experts, depth = shapes[i]
    print(f"{name} chooses n_experts={n_experts}, depth={depth}: {leaves[i]} leaves")

# %%
# The three criteria choose models with 4 leaves, the size of the true tree.
# Two shapes on the grid have 4 leaves: the true one (2 experts, depth 2)
# and a flat mixture of 4 experts, whose single softmax gate can cut the
# plane into the same 4 regions, with the same number of parameters. Their
# scores are close, and which of the two comes first can change with the EM
# restarts (``random_state``). The number of leaves is the stable answer;
# no criterion separates the two shapes on these data.
#
# The search refits its choice on all the training data, through the
# pipeline. Since the mixture standardises its inputs itself, that refit
# predicts the same as the model of the same shape fit above without the
# scaler, to round-off. Its mean log-likelihood on the test set, from the
# same scorer, is compared with the true model's:
pipeline_prediction = search.best_estimator_.predict(X_test)
direct_prediction = models[best_cv].predict(X_test)
difference = np.max(np.abs(pipeline_prediction - direct_prediction))
print(f"largest difference, pipeline vs no scaler: {difference:.1e}")
print(
    "mean test log-likelihood: chosen model "
    f"{log_likelihood_scorer(search.best_estimator_, X_test, y_test):.3f}, "
    f"true model {log_likelihood_scorer(truth.model, X_test, y_test):.3f}"
)

# %%
# The criteria against the number of leaves
# -----------------------------------------
# Top: BIC and AIC (lower is better). Bottom: the cross-validated mean
# log-likelihood and :math:`R^2` (higher is better, with bars of one
# standard deviation over the folds). The dotted line marks the true 4
# leaves. The likelihood-based criteria improve steeply up to 4 leaves and
# then level off or get worse, as the extra leaves fit noise. :math:`R^2`,
# which only judges the mean, barely changes beyond 4 leaves: it separates
# the sizes less sharply, which is why the search chose by log-likelihood.
import matplotlib.pyplot as plt

fig, axes = plt.subplots(2, 2, figsize=(7.2, 6.4), sharex=True, layout="constrained")
panels = [
    (bic, None, "BIC (lower is better)"),
    (aic, None, "AIC (lower is better)"),
    (
        results["mean_test_log_likelihood"],
        results["std_test_log_likelihood"],
        "CV log-likelihood per sample",
    ),
    (results["mean_test_r2"], results["std_test_r2"], r"CV $R^2$"),
]
depths = np.array([depth for _, depth in shapes])
for ax, (value, error, title) in zip(axes.ravel(), panels, strict=True):
    for depth, marker in [(1, "o"), (2, "s")]:
        rows = depths == depth
        ax.errorbar(
            leaves[rows],
            value[rows],
            yerr=None if error is None else error[rows],
            marker=marker,
            capsize=3,
            label=f"depth {depth}",
        )
    ax.axvline(4, color="k", ls=":", label="true: 4 leaves")
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 2, 3, 4, 9, 16], ["1", "2", "3", "4", "9", "16"])
    ax.set_title(title)
for ax in axes[1]:
    ax.set_xlabel("number of leaves")
axes[1, 1].legend(fontsize="small")
plt.show()

# %%
# Where the chosen models route the data
# --------------------------------------
# :func:`~hmexperts.plotting.plot_gate_regions` shades the input plane by the
# most trusted leaf of the true model and of the models the criteria chose
# (fit on the training data). The leaves are numbered differently in every
# model, so the colours need not match, and the panels leave out their
# legends; the regions should match.
from hmexperts.plotting import plot_gate_regions

chosen = [("true model", truth.model)]
for name, i in [("cross-validation", best_cv), ("BIC", best_bic), ("AIC", best_aic)]:
    chosen.append((f"chosen by {name}", models[i]))
fig, axes = plt.subplots(2, 2, figsize=(7.2, 7.2), layout="constrained")
for ax, (name, model) in zip(axes.ravel(), chosen, strict=True):
    n_experts, depth = model.gate_intercept_[0].shape[-1], len(model.gate_coef_)
    plot_gate_regions(model, X_train[:400], ax=ax)
    for legend in [*ax.artists, ax.get_legend()]:
        if legend is not None:
            legend.set_visible(False)
    ax.set_title(f"{name}\nn_experts={n_experts}, depth={depth}")
fig.suptitle("Most trusted leaf (points: training data)")
plt.show()

# %%
# When AIC and BIC disagree: the diabetes data
# --------------------------------------------
# :func:`~sklearn.datasets.load_diabetes` is a small real data set that
# ships with scikit-learn: ten baseline measurements (age, sex, body mass
# index, blood pressure and six blood serum measurements) of 442 diabetes
# patients, and a measure of how their disease progressed a year later
# (Efron, Hastie, Johnstone & Tibshirani, 2004). Every expert and every gate
# is a linear model on all ten features, so the parameters add up fast: the
# largest trees below have more of them than there are patients.
#
# Every shape is fit once on all the data for AIC and BIC, and scored by
# 5-fold cross-validation with :func:`~sklearn.model_selection.cross_validate`
# for :math:`R^2` and, with ``log_likelihood_scorer``, the held-out
# log-likelihood. Each fit keeps a single EM initialisation, to keep the
# example fast. Some of these fits warn: the largest trees have more
# parameters than samples, and EM may stop at ``max_iter``. What matters
# here is what each criterion makes of them, so the warnings are silenced
# for this loop only.
import warnings

from sklearn.datasets import load_diabetes
from sklearn.model_selection import KFold, cross_validate

X_diabetes, y_diabetes = load_diabetes(return_X_y=True)
diabetes_shapes = [(1, 1), (2, 1), (3, 1), (4, 1), (6, 1), (2, 2), (4, 2), (6, 2)]
folds = KFold(n_splits=5, shuffle=True, random_state=0)
rows = []
for n_experts, depth in diabetes_shapes:
    model = MixtureOfExpertsRegressor(n_experts=n_experts, depth=depth, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = cross_validate(
            model,
            X_diabetes,
            y_diabetes,
            cv=folds,
            scoring={"r2": "r2", "log_likelihood": log_likelihood_scorer},
        )
        model.fit(X_diabetes, y_diabetes)
    row_aic = model.aic(X_diabetes, y_diabetes)
    row_bic = model.bic(X_diabetes, y_diabetes)
    n_params = round((row_bic - row_aic) / (np.log(len(y_diabetes)) - 2))
    rows.append(
        (
            model.n_leaves_,
            n_params,
            row_aic,
            row_bic,
            scores["test_log_likelihood"].mean(),
            scores["test_r2"].mean(),
        )
    )
columns = [np.array(column) for column in zip(*rows, strict=True)]
leaves_d, params_d, aic_d, bic_d, cv_ll_d, cv_r2_d = columns

print("n_experts  depth  leaves  parameters      AIC      BIC  CV log-lik  CV R^2")
for (n_experts, depth), row in zip(diabetes_shapes, rows, strict=True):
    n_leaves, n_params, row_aic, row_bic, row_ll, row_r2 = row
    print(
        f"{n_experts:>9}  {depth:>5}  {n_leaves:>6}  {n_params:>10}  "
        f"{row_aic:7.1f}  {row_bic:7.1f}  {row_ll:10.3f}  {row_r2:6.3f}"
    )
for name, i in [
    ("AIC", np.argmin(aic_d)),
    ("BIC", np.argmin(bic_d)),
    ("cross-validated log-likelihood", np.argmax(cv_ll_d)),
]:
    leaf_or_leaves = "leaf" if leaves_d[i] == 1 else "leaves"
    print(
        f"{name} chooses {leaves_d[i]} {leaf_or_leaves} ({params_d[i]} parameters): "
        f"CV R^2 {cv_r2_d[i]:.3f}"
    )

# %%
# AIC and BIC start from the same log-likelihood and differ only in the
# penalty: 2 per parameter for AIC, :math:`\log 442 \approx 6.1` for BIC.
# With hundreds of parameters and 442 samples, the largest trees fit the
# data they were fit on much better, and AIC's light penalty does not make
# up for it: it prefers one of the largest trees, with more parameters than
# samples, whose cross-validated :math:`R^2` is negative (worse than
# predicting the mean). BIC's penalty is heavy enough: it prefers a
# single leaf, one linear regression, which is also what the
# cross-validated log-likelihood chooses. (Left lower is better, right
# higher.)
fig, (ax_ic, ax_cv) = plt.subplots(1, 2, figsize=(7.2, 3.4), layout="constrained")
order = np.argsort(params_d, kind="stable")
for ax, curves, title in [
    (ax_ic, [(aic_d, np.argmin, "AIC"), (bic_d, np.argmin, "BIC")], "AIC and BIC"),
    (ax_cv, [(cv_ll_d, np.argmax, "CV log-lik.")], "CV log-likelihood"),
]:
    for value, best, label in curves:
        (line,) = ax.plot(params_d[order], value[order], "o-", label=label)
        i = best(value)
        ax.plot(params_d[i], value[i], "o", ms=12, mfc="none", color=line.get_color())
    ax.axvline(len(y_diabetes), color="0.5", ls=":")
    ax.text(
        len(y_diabetes),
        0.02,
        "n = 442 ",
        transform=ax.get_xaxis_transform(),
        ha="right",
        color="0.4",
    )
    ax.set(xscale="log", xlabel="free parameters", title=title)
ax_ic.legend(loc="upper left")
fig.suptitle("Diabetes data (circled: each criterion's choice)")
plt.show()

# %%
# Learner experts have no parameter count
# ---------------------------------------
# BIC and AIC need a parameter count, which only the built-in
# linear-Gaussian experts have: with a learner as ``expert`` (an SVR, a
# Gaussian process, even a ``LinearRegression``), ``bic`` and ``aic`` raise
# an error, and the held-out log-likelihood, as in the searches above, is
# the way to compare models.
from sklearn.linear_model import LinearRegression

learner_model = MixtureOfExpertsRegressor(
    n_experts=4, expert=LinearRegression(), random_state=0
).fit(X_train, y_train)
try:
    learner_model.bic(X_train, y_train)
except ValueError as error:
    print(f"ValueError: {error}")

# %%
# Which to use
# ------------
# Choose ``n_experts`` and ``depth`` by cross-validated log-likelihood:
# ``cross_val_score(pipeline, X, y, scoring=log_likelihood_scorer)``, or
# ``GridSearchCV`` with that scoring. It scores what a mixture of experts
# models, the whole predictive density, on data the model has not seen; it
# needs no parameter count, so it also compares learner experts; and it
# does not rely on the large-sample reasoning behind AIC and BIC, which the
# diabetes data, with as many parameters as samples, are far from. BIC, one
# fit per shape and no cross-validation, is a cheap first look with the
# built-in experts: here it agreed with cross-validation on the number of
# leaves on both data sets.
# AIC chose one of the largest trees on the diabetes data, whose
# cross-validated :math:`R^2` is negative.
