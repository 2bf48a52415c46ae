"""
==========================================
Piecewise-linear regression with 3 experts
==========================================

A mixture of experts fits a function made of linear pieces by letting each
expert fit one piece and the gates learn where each piece holds. Here the
target is a three-piece, ``|x|``-like function of one input with noise. A
single linear model cannot follow it; a :class:`~hmexperts.MixtureOfExpertsRegressor`
with three linear experts can, and it also gives a predictive standard
deviation and the gate probabilities that show which expert is in charge
where.
"""

# %%
# Data
# ----
# Three linear pieces joined at ``x = -1`` and ``x = 1``: slope ``-1`` on the
# left, a flat middle, and slope ``+2`` on the right, plus Gaussian noise.
import numpy as np


def piecewise(x):
    return np.where(x < -1, -x, np.where(x < 1, 1.0, 2 * x - 1))


rng = np.random.default_rng(0)
x = rng.uniform(-3, 3, size=600)
y = piecewise(x) + 0.2 * rng.normal(size=x.size)
X = x[:, None]
X_train, X_test = X[:400], X[400:]
y_train, y_test = y[:400], y[400:]

# %%
# Fit a mixture of experts and a linear baseline
# ----------------------------------------------
from sklearn.linear_model import LinearRegression

from hmexperts import MixtureOfExpertsRegressor

model = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X_train, y_train)
linear = LinearRegression().fit(X_train, y_train)

print(f"Mixture of experts: test R^2 = {model.score(X_test, y_test):.3f}")
print(f"Linear regression:  test R^2 = {linear.score(X_test, y_test):.3f}")
print(f"EM iterations: {model.n_iter_}, converged: {model.converged_}")
print("Expert slopes:    ", np.round(model.expert_coef_.ravel(), 2))
print("Expert intercepts:", np.round(model.expert_intercept_, 2))
print("Expert noise std: ", np.round(np.sqrt(model.expert_variance_), 2))

# %%
# Predictions and gates
# ---------------------
# The top panel shows the mixture mean with a band of two predictive
# standard deviations; the band widens where the gates hand over from one
# expert to the next, since there the mixture is unsure which piece holds.
# The bottom panel shows the gate probabilities :math:`\pi_j(x)` of the three
# experts.
import matplotlib.pyplot as plt

X_grid = np.linspace(-3.5, 3.5, 500)[:, None]
mean, std = model.predict(X_grid, return_std=True)
gates = model.predict_gates(X_grid)

fig, (ax_fit, ax_gate) = plt.subplots(
    2, 1, figsize=(7, 6), sharex=True, height_ratios=(2, 1)
)
ax_fit.scatter(x, y, s=6, color="0.6", label="data")
ax_fit.plot(X_grid[:, 0], piecewise(X_grid[:, 0]), "k--", lw=1, label="truth")
ax_fit.plot(X_grid[:, 0], linear.predict(X_grid), color="tab:gray", label="linear")
ax_fit.plot(X_grid[:, 0], mean, color="tab:blue", lw=2, label="mixture mean")
ax_fit.fill_between(
    X_grid[:, 0],
    mean - 2 * std,
    mean + 2 * std,
    color="tab:blue",
    alpha=0.2,
    label=r"mean $\pm$ 2 std",
)
ax_fit.set_ylabel("y")
ax_fit.legend(loc="upper center", ncol=3, fontsize="small")

for leaf in range(model.n_leaves_):
    ax_gate.plot(X_grid[:, 0], gates[:, leaf], lw=2, label=f"expert {leaf}")
ax_gate.set_xlabel("x")
ax_gate.set_ylabel(r"gate $\pi_j(x)$")
ax_gate.set_ylim(-0.05, 1.05)
ax_gate.legend(loc="center right", fontsize="small")
fig.tight_layout()
plt.show()
