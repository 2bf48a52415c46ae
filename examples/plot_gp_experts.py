"""
========================================================
Gaussian-process experts for a function with two regimes
========================================================

A single Gaussian process has one length-scale and one noise level. When the
function is smooth and nearly noise-free in one region and wiggly and noisy in
another, it must compromise on both: its band is too wide where the data
are clean, and too narrow where they are noisy. A
:class:`~hmexperts.MixtureOfExpertsRegressor` whose experts are
:class:`~sklearn.gaussian_process.GaussianProcessRegressor` s lets the gate
split the input space, and each GP expert learn its own length-scale and
noise level in its region.
"""

# %%
# Data
# ----
# On ``[-3, 0)`` the target is ``sin(x)`` with noise of standard deviation
# 0.05; on ``[0, 3]`` it is ``sin(6 x)`` with noise of standard deviation 0.3.
import numpy as np


def truth(x):
    return np.where(x < 0, np.sin(x), np.sin(6 * x))


def sample(n, rng):
    x = rng.uniform(-3, 3, size=n)
    noise = np.where(x < 0, 0.05, 0.3)
    return x[:, None], truth(x) + noise * rng.normal(size=n)


rng = np.random.default_rng(0)
X_train, y_train = sample(600, rng)
X_test, y_test = sample(1000, rng)

# %%
# A single GP and a mixture of two GP experts
# -------------------------------------------
# The single GP needs a ``WhiteKernel`` to learn its noise level. In the
# mixture, every expert is a clone of ``expert``, fit to its
# responsibilities ``r`` with a per-sample noise ``sigma_j^2 / r`` (plus the
# tiny default ``alpha / r``): ``sigma_j^2`` is the expert's own noise
# variance, fit with its kernel's hyper-parameters by the weighted marginal
# likelihood. So the default ``GaussianProcessRegressor()`` (kernel
# ``C() * RBF()``) is the whole expert; a ``WhiteKernel`` in its kernel would
# be taken as the start and bounds of ``sigma_j^2``.
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, WhiteKernel

from hmexperts import MixtureOfExpertsRegressor

single = GaussianProcessRegressor(
    1.0 * RBF() + WhiteKernel(), n_restarts_optimizer=1, random_state=0
).fit(X_train, y_train)
mixture = MixtureOfExpertsRegressor(
    n_experts=2, expert=GaussianProcessRegressor(), random_state=0
).fit(X_train, y_train)
linear = MixtureOfExpertsRegressor(n_experts=8, random_state=0).fit(X_train, y_train)

print("single GP kernel:", single.kernel_)
for j, gp in enumerate(mixture.experts_):
    noise_sd = np.sqrt(mixture.expert_variance_[j])
    print(f"expert {j} kernel: {gp.kernel_}, noise sd {noise_sd:.3f}")

# %%
# Held-out log-likelihood
# -----------------------
# For the mixtures, :meth:`~hmexperts.MixtureOfExpertsRegressor.log_likelihood`
# gives ``log p(y | x)``: each GP expert's density is Gaussian, with its
# latent predictive variance plus its noise variance ``expert_variance_``.
# For the single GP the predictive density is Gaussian too; the standard
# deviation from ``predict(return_std=True)`` already includes the
# ``WhiteKernel`` noise, to which we add the GP's ``alpha``.
from scipy.stats import norm

mean, std = single.predict(X_test, return_std=True)
single_ll = norm.logpdf(y_test, mean, np.sqrt(std**2 + single.alpha)).mean()
print(f"single GP:              {single_ll:.3f}")
mixture_ll = mixture.log_likelihood(X_test, y_test).mean()
print(f"2 GP experts:           {mixture_ll:.3f}")
print(f"8 linear experts:       {linear.log_likelihood(X_test, y_test).mean():.3f}")

# %%
# Predictions and gates
# ---------------------
# The top panels show the mean and a band of two predictive standard
# deviations (noise included) of the single GP and of the mixture. Both means
# follow the truth; the difference is in the bands. The single GP has one
# noise level, a compromise between the two regimes: its band is far too wide
# on the smooth left side and a little too narrow on the noisy right side.
# The mixture's band is narrow on the left and wide on the right, as the data
# are, and that is what the held-out log-likelihood rewards. The bottom panel
# shows the gate probabilities :math:`\pi_j(x)`: the gate hands over from one
# expert to the other near ``x = 0``.
import matplotlib.pyplot as plt

X_grid = np.linspace(-3, 3, 600)[:, None]
x_grid = X_grid[:, 0]
gp_mean, gp_std = single.predict(X_grid, return_std=True)
gp_std = np.sqrt(gp_std**2 + single.alpha)
mix_mean, mix_std = mixture.predict(X_grid, return_std=True)
gates = mixture.predict_gates(X_grid)

fig, (ax_gp, ax_mix, ax_gate) = plt.subplots(
    3, 1, figsize=(7, 8), sharex=True, height_ratios=(2, 2, 1)
)
for ax, m, s, color, title in [
    (
        ax_gp,
        gp_mean,
        gp_std,
        "tab:orange",
        f"single GP (held-out log-lik {single_ll:.2f})",
    ),
    (
        ax_mix,
        mix_mean,
        mix_std,
        "tab:blue",
        f"2 GP experts (held-out log-lik {mixture_ll:.2f})",
    ),
]:
    ax.scatter(X_train[:, 0], y_train, s=5, color="0.6", label="training data")
    ax.plot(x_grid, truth(x_grid), "k--", lw=1, label="truth")
    ax.plot(x_grid, m, color=color, lw=2, label="mean")
    ax.fill_between(
        x_grid, m - 2 * s, m + 2 * s, color=color, alpha=0.25, label=r"$\pm$ 2 std"
    )
    ax.set_title(title, fontsize="medium")
    ax.set_ylabel("y")
    ax.set_ylim(-2.2, 2.2)
    ax.legend(loc="lower left", ncol=4, fontsize="small")

for leaf in range(mixture.n_leaves_):
    ax_gate.plot(x_grid, gates[:, leaf], lw=2, label=f"expert {leaf}")
ax_gate.set_xlabel("x")
ax_gate.set_ylabel(r"gate $\pi_j(x)$")
ax_gate.set_ylim(-0.05, 1.05)
ax_gate.legend(loc="center right", fontsize="small")
fig.tight_layout()
plt.show()
