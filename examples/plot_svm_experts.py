"""
=====================================
Other learners as experts: SVMs
=====================================

The experts of a mixture need not be linear models. ``expert`` takes any
scikit-learn regressor or classifier, and every leaf of the gate tree gets
its own clone, refit in every M-step to the samples the E-step gives it.
This example uses support vector machines: a mixture of two
:class:`~sklearn.svm.SVR` experts on a function with a jump, where a single
SVR with one kernel width has to compromise, and a mixture of linear
:class:`~sklearn.svm.SVC` experts for classification.
"""

# %%
# Data: two regimes with a jump between them
# ------------------------------------------
# Left of ``x = 0`` the target is a slow sine around 1 with noise of
# standard deviation 0.1; right of it, a sine around -1 with noise of
# standard deviation 0.4. A single RBF kernel width cannot suit both the
# jump and the noise: a narrow kernel follows the jump but also the noise,
# a wide one averages the noise out but smooths the jump over.
import numpy as np


def truth(x):
    return np.where(x < 0, 1 + 0.5 * np.sin(1.5 * x), -1 + 0.5 * np.sin(2 * x))


def sample(n, rng):
    x = rng.uniform(-3, 3, size=n)
    noise = np.where(x < 0, 0.1, 0.4)
    return x[:, None], truth(x) + noise * rng.normal(size=n)


rng = np.random.default_rng(0)
X_train, y_train = sample(400, rng)
X_test, y_test = sample(2000, rng)

# %%
# A single SVR and a mixture of two SVR experts
# ---------------------------------------------
# Both are tuned by the same 5-fold grid search over the penalty ``C`` and
# the kernel width ``gamma``. For the mixture, the grid reaches the SVR
# through the ``expert`` parameter (``expert__gamma``): every expert is a
# clone of the same SVR, so all of them share its hyper-parameters, but each
# fits only its own region. ``SVR.fit`` takes ``sample_weight``, so every
# expert is fit to all samples weighted by its responsibilities (which scale
# ``C`` sample by sample). In the E-step, each expert's density is a
# Gaussian around its prediction, with a variance per expert from its
# weighted residuals: the mixture learns the two noise levels as well.
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVR

from hmexperts import MixtureOfExpertsRegressor

grid = {"C": [1, 10, 100], "gamma": [0.1, 0.3, 1, 3, 10, 30]}
single = GridSearchCV(SVR(), grid, cv=5, scoring="neg_mean_squared_error")
single.fit(X_train, y_train)
mixture = GridSearchCV(
    MixtureOfExpertsRegressor(n_experts=2, expert=SVR(), random_state=0),
    {f"expert__{name}": values for name, values in grid.items()},
    cv=5,
    scoring="neg_mean_squared_error",
)
mixture.fit(X_train, y_train)
print("single SVR, best:     ", single.best_params_)
print("2 SVR experts, best:  ", mixture.best_params_)

# %%
# The test scores below are the :math:`R^2` and the mean squared error
# (MSE) against the noisy test targets, and the MSE against the noise-free
# function, which shows the error of the fit alone. The mixture chose a
# wider kernel than the single SVR: the gate takes care of the jump, so the
# experts can smooth more.
f_test = truth(X_test[:, 0])
print("model          test R^2  test MSE  MSE vs noise-free function")
for name, search in [("single SVR", single), ("2 SVR experts", mixture)]:
    y_pred = search.predict(X_test)
    print(
        f"{name:<13}  {r2_score(y_test, y_pred):8.3f}  "
        f"{mean_squared_error(y_test, y_pred):8.4f}  "
        f"{mean_squared_error(f_test, y_pred):26.4f}"
    )
model = mixture.best_estimator_
print(f"EM iterations: {model.n_iter_}, converged: {model.converged_}")

# %%
# The fits, the experts and the gate
# ----------------------------------
# Top: the data, the true function, the single SVR and the mixture's
# prediction with a band of two predictive standard deviations. The single
# SVR needs a narrow kernel to follow the jump and wiggles with the noise on
# the right. The mixture's band is narrow on the left and wide on the right,
# as the noise is, and widest at the jump, where the two experts disagree
# and the gate is unsure which one holds.
#
# Middle: :func:`~hmexperts.plotting.plot_expert_boundaries` draws each SVR
# expert, solid where the gate trusts it most and dashed where it
# extrapolates. Bottom: :func:`~hmexperts.plotting.plot_gate_regions` draws
# the gate probabilities, which hand over from one expert to the other at
# the jump.
import matplotlib.pyplot as plt

from hmexperts.plotting import plot_expert_boundaries, plot_gate_regions

X_grid = np.linspace(-3, 3, 600)[:, None]
x_grid = X_grid[:, 0]
mean, std = model.predict(X_grid, return_std=True)

fig, (ax_fit, ax_experts, ax_gate) = plt.subplots(
    3, 1, figsize=(7.2, 9), sharex=True, height_ratios=(2, 2, 1), layout="constrained"
)
ax_fit.scatter(X_train[:, 0], y_train, s=6, color="0.6", label="training data")
ax_fit.plot(x_grid, truth(x_grid), "k--", lw=1, label="true function")
ax_fit.plot(
    x_grid, single.predict(X_grid), color="tab:purple", lw=2, label="single SVR"
)
ax_fit.plot(x_grid, mean, color="k", lw=2, label="2 SVR experts:\nmixture mean")
ax_fit.fill_between(
    x_grid,
    mean - 2 * std,
    mean + 2 * std,
    color="0.5",
    alpha=0.25,
    label=r"mixture mean $\pm$ 2 std",
)
ax_fit.set_ylabel("y")
ax_fit.set_title("Single SVR and a mixture of two SVR experts")
ax_fit.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")

plot_expert_boundaries(model, X_train, y_train, ax=ax_experts)
ax_experts.set_title("The two SVR experts (solid where most trusted)")
ax_experts.set_xlabel("")
plot_gate_regions(model, X_train, ax=ax_gate)
ax_gate.set_xlabel("x")
plt.show()

# %%
# Sparse routing: each SVR predicts only its own samples
# ------------------------------------------------------
# The dense mixture (the default, ``pooling="mean"``) calls every expert on
# every sample and weights the predictions by the gates. ``pooling="max"``
# uses only the most trusted expert of every sample (hard, top-1 routing),
# and ``top_k=k`` the ``k`` most trusted; each SVR is then called only on
# the samples routed to it, which saves time when the experts are many and
# costly. Both can be set on a fitted model with ``set_params``, since at
# prediction they only change the routing (``top_k`` set before ``fit``
# also truncates the E-step).
# :meth:`~hmexperts.MixtureOfExpertsRegressor.routing_stats` counts the
# samples each expert evaluates. Here the gate is sharp, so hard routing
# changes the prediction only in the narrow band where the gates hand over:
# the test MSE barely moves.
for pooling in ["mean", "max"]:
    model.set_params(pooling=pooling)
    load = model.routing_stats(X_test).load
    mse = mean_squared_error(y_test, model.predict(X_test))
    print(f"pooling={pooling!r}: SVR calls per expert {load}, test MSE {mse:.4f}")
model.set_params(pooling="mean")

# %%
# Classification with SVC experts
# -------------------------------
# For :class:`~hmexperts.MixtureOfExpertsClassifier` an expert must have
# ``predict_proba``, which the E-step uses as its density. An
# :class:`~sklearn.svm.SVC` gets one from
# :class:`~sklearn.calibration.CalibratedClassifierCV`: with
# ``ensemble=False`` it fits a single SVC on all the data it is given and
# calibrates its decision function on cross-validated predictions (Platt
# scaling). Do not use ``SVC(probability=True)``, which scikit-learn 1.9
# deprecates. ``CalibratedClassifierCV.fit`` passes ``sample_weight`` on to
# the SVC, so the responsibilities reach it as weights.
#
# The data are four clusters (:func:`~hmexperts.datasets.make_expert_clusters`),
# each split into two classes along a direction of its own: no single line
# separates the classes, but one line per cluster does. A mixture of four
# *linear* SVCs finds one cluster per expert.
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from hmexperts import MixtureOfExpertsClassifier
from hmexperts.datasets import make_expert_clusters

X, y, cluster = make_expert_clusters(800, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, random_state=0)
linear_svc = SVC(kernel="linear").fit(X_train, y_train)
rbf_svc = SVC(kernel="rbf").fit(X_train, y_train)
svc_experts = MixtureOfExpertsClassifier(
    n_experts=4,
    expert=CalibratedClassifierCV(SVC(kernel="linear"), ensemble=False),
    random_state=0,
).fit(X_train, y_train)
for name, classifier in [
    ("linear SVC", linear_svc),
    ("RBF SVC", rbf_svc),
    ("4 linear SVC experts", svc_experts),
]:
    print(f"{name:<20} test accuracy {classifier.score(X_test, y_test):.3f}")

# %%
# Each linear SVC expert draws its boundary in its own cluster: an RBF SVC
# is as accurate, but the mixture is made of four linear models that can be
# read one by one.
ax = plot_expert_boundaries(svc_experts, X_train, y_train)
ax.set_title("Four linear SVC experts, each in its region")
plt.show()

# %%
# These learners run on the CPU through scikit-learn. With
# ``device="cuda"`` the gates and the E-step of such a mixture run on a GPU
# while the learners stay on the host (see "GPUs and other array libraries"
# in the user guide).
