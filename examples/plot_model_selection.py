"""
=====================================================================
Choosing ``n_experts`` and ``depth``: grid search in a Pipeline, BIC
=====================================================================

How many experts, and how deep a gate tree? This example answers it twice
on data drawn from a known hierarchical mixture of experts, with two gate
levels of two children each, so that the truth has 4 leaves:

- by cross-validation, with :class:`~sklearn.model_selection.GridSearchCV`
  tuning a :class:`~sklearn.pipeline.Pipeline` that ends in a
  :class:`~hmexperts.MixtureOfExpertsRegressor`;
- by the Bayesian information criterion, ``bic(X, y)``, of models fit once
  on all the training data.
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
# held-out mean log-likelihood, the quantity BIC is built on, and picks the
# model by it (``refit="log_likelihood"``).
import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from hmexperts import MixtureOfExpertsRegressor


def log_likelihood(pipeline, X, y):
    """Mean held-out log p(y | x) of a pipeline ending in a mixture of experts."""
    return pipeline[-1].log_likelihood(pipeline[:-1].transform(X), y).mean()


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
    scoring={"r2": "r2", "log_likelihood": log_likelihood},
    refit="log_likelihood",
    cv=3,
).fit(X_train, y_train)

# %%
# Choosing by BIC
# ---------------
# ``bic(X, y)`` is :math:`-2 \log L + p \log n`: minus twice the
# log-likelihood of the data, plus a penalty of :math:`\log n` for each of
# the :math:`p` free parameters (every gate's and expert's coefficients
# and intercepts, and every expert's noise variance). A deeper or wider tree
# can always fit the training data at least as well; BIC asks whether the
# gain in likelihood is worth the parameters. Lower is better. It needs no
# cross-validation, so every model is fit once, on all the training data.
# The table shows :math:`p` too, recovered from ``bic`` and
# ``log_likelihood``.
results = search.cv_results_
shapes = [(p["moe__n_experts"], p["moe__depth"]) for p in results["params"]]
models = [
    MixtureOfExpertsRegressor(
        n_experts=n_experts, depth=depth, n_init=3, max_iter=300, random_state=0
    ).fit(X_train, y_train)
    for n_experts, depth in shapes
]
bic = np.array([model.bic(X_train, y_train) for model in models])
leaves = np.array([model.n_leaves_ for model in models])
n_train = len(y_train)
log_lik = np.array([model.log_likelihood(X_train, y_train).sum() for model in models])
n_parameters = np.round((bic + 2 * log_lik) / np.log(n_train)).astype(int)

print("n_experts  depth  leaves  parameters  CV R^2  CV log-lik      BIC")
for i, (n_experts, depth) in enumerate(shapes):
    print(
        f"{n_experts:>9}  {depth:>5}  {leaves[i]:>6}  {n_parameters[i]:>10}  "
        f"{results['mean_test_r2'][i]:6.3f}  "
        f"{results['mean_test_log_likelihood'][i]:10.3f}  {bic[i]:7.1f}"
    )
best_cv = search.best_index_
best_bic = int(np.argmin(bic))
for name, i in [("cross-validation", best_cv), ("BIC", best_bic)]:
    n_experts, depth = shapes[i]
    print(f"{name} chooses n_experts={n_experts}, depth={depth}: {leaves[i]} leaves")

# %%
# Both criteria choose a model with 4 leaves, the size of the true tree. Two
# shapes on the grid have 4 leaves: the true one (2 experts, depth 2) and a
# flat mixture of 4 experts, whose single softmax gate can cut the plane
# into the same 4 regions, with the same number of parameters. Their scores
# are close, and which of the two comes first can change with the EM
# restarts (``random_state``). The number of leaves is the stable answer;
# neither criterion separates the two shapes on these data.
#
# The search refits its choice on all the training data, through the
# pipeline. Since the mixture standardises its inputs itself, that refit
# predicts the same as the model of the same shape fit above without the
# scaler, to round-off. Its mean log-likelihood on the test set is compared
# with the true model's:
pipeline_prediction = search.best_estimator_.predict(X_test)
direct_prediction = models[best_cv].predict(X_test)
difference = np.max(np.abs(pipeline_prediction - direct_prediction))
print(f"largest difference, pipeline vs no scaler: {difference:.1e}")
print(
    "mean test log-likelihood: chosen model "
    f"{log_likelihood(search.best_estimator_, X_test, y_test):.3f}, true model "
    f"{truth.model.log_likelihood(X_test, y_test).mean():.3f}"
)

# %%
# BIC against cross-validation
# ----------------------------
# Left: BIC (lower is better); middle and right: the cross-validated mean
# log-likelihood and :math:`R^2` (higher is better, with bars of one
# standard deviation over the folds), all against the number of leaves. The
# dotted line marks the true 4 leaves. Both likelihood-based criteria
# improve steeply up to 4 leaves and then get worse, as the extra leaves
# fit noise. :math:`R^2`, which only judges the mean, barely changes beyond
# 4 leaves: it separates the sizes less sharply, which is why the search
# chose by log-likelihood.
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 3, figsize=(13, 4), layout="constrained")
panels = [
    (bic, None, "BIC (lower is better)", "BIC"),
    (
        results["mean_test_log_likelihood"],
        results["std_test_log_likelihood"],
        "mean log-likelihood per sample",
        "CV log-likelihood (higher is better)",
    ),
    (
        results["mean_test_r2"],
        results["std_test_r2"],
        r"$R^2$",
        r"CV $R^2$ (higher is better)",
    ),
]
depths = np.array([depth for _, depth in shapes])
for ax, (value, error, ylabel, title) in zip(axes, panels, strict=True):
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
    ax.set_xlabel("number of leaves (n_experts ** depth)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
plt.show()

# %%
# Where the chosen models route the data
# --------------------------------------
# :func:`~hmexperts.plotting.plot_gate_regions` shades the input plane by the
# most trusted leaf of the true model and of the models each criterion
# chose (fit on the training data). The leaves are numbered differently in
# every model, so the colours need not match; the regions should.
from hmexperts.plotting import plot_gate_regions

fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), layout="constrained")
chosen = [
    ("true model", truth.model),
    ("chosen by cross-validation", models[best_cv]),
    ("chosen by BIC", models[best_bic]),
]
for ax, (name, model) in zip(axes, chosen, strict=True):
    n_experts, depth = model.gate_intercept_[0].shape[-1], len(model.gate_coef_)
    plot_gate_regions(model, X_train[:400], y_train[:400], ax=ax)
    ax.set_title(f"{name}\n(n_experts={n_experts}, depth={depth})")
fig.suptitle("Gate regions: the most trusted leaf (points: training data)")
plt.show()

# %%
# BIC needs a parameter count, which only the built-in linear-Gaussian
# experts have: with a learner as ``expert`` (an SVR, a Gaussian process,
# even a ``LinearRegression``), ``bic`` and ``aic`` raise an error, and
# held-out log-likelihood (``log_likelihood``), as in the search above, is
# the way to compare models.
from sklearn.linear_model import LinearRegression

learner_model = MixtureOfExpertsRegressor(
    n_experts=4, expert=LinearRegression(), random_state=0
).fit(X_train, y_train)
try:
    learner_model.bic(X_train, y_train)
except ValueError as error:
    print(f"ValueError: {error}")
