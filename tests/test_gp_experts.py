"""Gaussian-process experts: the noise fit by the weighted marginal likelihood.

A ``GaussianProcessRegressor`` expert is fit to its responsibilities ``r_i``
with per-sample noise ``(sigma_j^2 + alpha) / r_i``, ``sigma_j^2`` a
hyper-parameter optimised with the kernel's on the weighted marginal
likelihood (``hmexperts._learners``). These tests check that objective
against a direct computation, that the default ``GaussianProcessRegressor()``
is then a calibrated expert (within 0.05 nats per sample of the true model
on data drawn from a known mixture) and a mixture of them beats one GP with
a noise kernel on heteroscedastic data, and how the user's settings
(``WhiteKernel``, ``optimizer=None``, ``normalize_y``, restarts, a
``Pipeline``) are honoured. Margins measured as the comments say.
"""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import multivariate_normal, norm
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, WhiteKernel
from sklearn.gaussian_process.kernels import ConstantKernel as C
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hmexperts import MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe

ignore_convergence = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)


def _smooth(n, seed):
    """``sin(x)`` with noise of standard deviation 0.3 (variance 0.09)."""
    rng = np.random.RandomState(seed)
    X = rng.uniform(-3, 3, size=(n, 1))
    return X, np.sin(X[:, 0]) + 0.3 * rng.normal(size=n)


def _three_regimes(n, rng):
    """Flat and quiet on [0, 1) (noise sd 0.05), a deep dip on [1, 2) (sd
    0.5), a small bump on [2, 3] (sd 0.2): a continuous mean whose noise
    jumps, as in the motorcycle-crash data (133 points)."""
    x = rng.uniform(0, 3, size=n)
    mean = np.where(
        x < 1,
        0.0,
        np.where(x < 2, -2 * np.sin(np.pi * (x - 1)), 0.5 * np.sin(np.pi * (x - 2))),
    )
    sd = np.where(x < 1, 0.05, np.where(x < 2, 0.5, 0.2))
    return x[:, None], mean + sd * rng.normal(size=n), mean, sd


def _fixed_responsibilities(x):
    """0.8 / 0.2 left of 0, 0.3 / 0.7 right of it."""
    return np.where((x < 0)[:, None], [0.8, 0.2], [0.3, 0.7])


# -- 1. the objective --------------------------------------------------------------


def test_noise_maximises_the_weighted_marginal_likelihood():
    # One M-step (max_iter=0) from fixed responsibilities r, with the kernel
    # fixed: sigma^2 is the only hyper-parameter. The weighted likelihood
    # prod_i N(y_i; f_i, v) ** r_i integrated over the GP prior of f is
    #   N(y; 0, K + diag(v / r)) * prod_i (2 pi v / r_i) ** (1/2) (2 pi v) ** (-r_i/2).
    # Its maximiser, found here by a 1-D search, is the fitted noise (measured:
    # equal to 7 digits). The GP's own marginal likelihood (the first factor
    # alone) gives about half of it here (0.047 and 0.040 against 0.093):
    # the fit must not be that.
    X, y = _smooth(120, 0)
    resp = _fixed_responsibilities(X[:, 0])
    kernel = C(1.0, "fixed") * RBF(1.0, "fixed")
    model = MixtureOfExpertsRegressor(
        n_experts=2,
        expert=GaussianProcessRegressor(kernel),
        init_params=resp,
        max_iter=0,
    ).fit(X, y)
    K = kernel(X)
    for leaf in range(2):
        r = resp[:, leaf]

        def negative(log_v, r=r, weighted=True):
            v = np.exp(log_v)
            value = multivariate_normal(np.zeros(len(y)), K + np.diag(v / r)).logpdf(y)
            if weighted:
                value += 0.5 * np.sum((1 - r) * np.log(2 * np.pi * v) - np.log(r))
            return -value

        def argmax(**kwargs):
            found = minimize_scalar(
                lambda t: negative(t, **kwargs),
                bounds=(-10, 3),
                method="bounded",
                options={"xatol": 1e-8},
            )
            return np.exp(found.x)

        noise = model.expert_variance_[leaf]  # sigma^2 + alpha, alpha = 1e-10
        assert noise == pytest.approx(argmax(), rel=1e-4)
        assert noise > 1.5 * argmax(weighted=False)


@ignore_convergence
def test_experts_are_plain_gps_on_the_inputs():
    # The fitted experts predict from X alone (the weights column of the fit
    # is gone), their alpha is their noise variance sigma^2 + alpha, and
    # their kernel_ the user's kernel (the default one here) without noise.
    X, y = _smooth(120, 0)
    model = MixtureOfExpertsRegressor(
        n_experts=2, expert=GaussianProcessRegressor(), max_iter=3, random_state=0
    ).fit(X, y)
    for leaf, gp in enumerate(model.experts_):
        assert gp.X_train_.shape[1] == 1 and gp.n_features_in_ == 1
        assert gp.alpha == model.expert_variance_[leaf]
        assert "Noise" not in repr(gp.kernel_) and "White" not in repr(gp.kernel_)
        mean, std = gp.predict(X[:5], return_std=True)
        assert mean.shape == std.shape == (5,)
        # The latent standard deviation, noise left out: below the prior's.
        assert np.all(std**2 < gp.kernel_.diag(X[:5]))
    # The mixture's density is the gated sum of N(mean_j, std_j^2 + alpha_j).
    X_test, y_test = _smooth(50, 1)
    gates = model.predict_gates(X_test)
    density = sum(
        gates[:, leaf] * norm.pdf(y_test, m, np.sqrt(s**2 + gp.alpha))
        for leaf, gp in enumerate(model.experts_)
        for m, s in [gp.predict(X_test, return_std=True)]
    )
    np.testing.assert_allclose(
        np.log(density), model.log_likelihood(X_test, y_test), rtol=1e-9
    )


# -- 2. calibrated experts ---------------------------------------------------------


@ignore_convergence
def test_default_gp_experts_match_the_true_mixture():
    # The case: 1,000 samples from a known 2-expert mixture of linear
    # experts (noise sd 0.4), held-out log-likelihood per sample. Measured:
    # the true model -0.566; the default GaussianProcessRegressor() as expert
    # -1.693 before (its alpha=1e-10 taken as the noise: it interpolated),
    # -0.597 now (gap 0.031; over seeds 0-4: 0.031, 0.009, 0.001, 0.049,
    # 0.004, where seed 3 is hard for the gates: linear experts, the true
    # family, are 0.12 off there). The gap is what an estimated GP pays
    # against the true linear experts; at 500 samples it was 0.011-0.045.
    # Tolerance 0.05 as the issue asks; seed 0, the first one tried.
    X, y, truth = make_moe(n_samples=3000, noise=0.4, random_state=0)
    X_train, y_train, X_test, y_test = X[:1000], y[:1000], X[1000:], y[1000:]
    model = MixtureOfExpertsRegressor(
        n_experts=2, expert=GaussianProcessRegressor(), random_state=0
    ).fit(X_train, y_train)
    true_ll = truth.model.log_likelihood(X_test, y_test).mean()
    assert model.log_likelihood(X_test, y_test).mean() > true_ll - 0.05
    # Each expert's noise is the true one (sd 0.4; measured 0.398 and 0.426).
    np.testing.assert_allclose(np.sqrt(model.expert_variance_), 0.4, rtol=0.1)


@ignore_convergence
def test_default_gp_experts_beat_one_gp_with_a_noise_kernel():
    # Noise sd 0.05, 0.5 and 0.2 in three regions (_three_regimes), 150
    # training samples. One GP with C * RBF + WhiteKernel has one noise level
    # for all; three default GP experts learn one each. Measured held-out
    # log-likelihood per sample, seeds 0, 1, 2: 3 GP experts 0.250, 0.168,
    # 0.277; one GP -0.295, -0.372, -0.346 (gaps 0.54-0.62); the truth 0.373,
    # 0.352, 0.350. Before, the default expert (noise alpha=1e-10) gave
    # -0.606, -0.604, -0.532: worse than one GP. (Two experts for three
    # regimes gain only 0.05-0.09.) Margin 0.25, under half the gaps.
    rng = np.random.RandomState(0)
    X, y, _, _ = _three_regimes(150, rng)
    X_test, y_test, mean, sd = _three_regimes(2000, rng)
    one = GaussianProcessRegressor(C() * RBF() + WhiteKernel(), random_state=0)
    one.fit(X, y)
    m, s = one.predict(X_test, return_std=True)  # includes the white noise
    one_ll = norm.logpdf(y_test, m, np.sqrt(s**2 + one.alpha)).mean()
    model = MixtureOfExpertsRegressor(
        n_experts=3, expert=GaussianProcessRegressor(), random_state=0
    ).fit(X, y)
    moe_ll = model.log_likelihood(X_test, y_test).mean()
    assert moe_ll > one_ll + 0.25, (moe_ll, one_ll)
    assert moe_ll < norm.logpdf(y_test, mean, sd).mean()  # no better than truth


# -- 3. the user's settings ----------------------------------------------------------


@ignore_convergence
def test_white_kernel_becomes_the_weighted_noise():
    # A WhiteKernel summand is the noise: it becomes sigma^2 (its value the
    # start, its bounds the bounds), weighted like the rest, so that
    # C() * RBF() + WhiteKernel() and C() * RBF() learn the same model here
    # (measured: noise variances 0.08517, 0.10038 and 0.08518, 0.10038), and
    # a fixed one fixes the noise.
    X, y = _smooth(120, 0)
    resp = _fixed_responsibilities(X[:, 0])

    def fit(kernel, **params):
        expert = GaussianProcessRegressor(kernel, **params)
        return MixtureOfExpertsRegressor(
            n_experts=2, expert=expert, init_params=resp, max_iter=2
        ).fit(X, y)

    plain = fit(C() * RBF())
    white = fit(C() * RBF() + WhiteKernel())
    np.testing.assert_allclose(
        white.expert_variance_, plain.expert_variance_, rtol=1e-3
    )
    for gp in white.experts_:
        assert "WhiteKernel" not in repr(gp.kernel_)
    fixed = fit(C() * RBF() + WhiteKernel(0.05, "fixed"), alpha=1e-3)
    np.testing.assert_allclose(fixed.expert_variance_, 0.05 + 1e-3)


@ignore_convergence
def test_without_optimizer_the_noise_is_alpha():
    # optimizer=None fixes every hyper-parameter: the noise is alpha (divided
    # by each responsibility in the fit), as a GP alone would take it.
    X, y = _smooth(120, 0)
    expert = GaussianProcessRegressor(RBF(), alpha=0.02, optimizer=None)
    model = MixtureOfExpertsRegressor(
        n_experts=2, expert=expert, max_iter=3, random_state=0
    ).fit(X, y)
    np.testing.assert_array_equal(model.expert_variance_, [0.02, 0.02])
    for gp in model.experts_:
        assert gp.kernel_ == RBF()


@ignore_convergence
def test_normalize_y_noise_in_data_units():
    # With normalize_y the GP works in units of its targets' spread; the
    # noise reported (expert_variance_) and the density are in data units:
    # scaling y by 100 scales them by 1e4 and shifts the log-likelihood by
    # -log(100), to round-off.
    X, y = _smooth(120, 0)
    fits = [
        MixtureOfExpertsRegressor(
            n_experts=2,
            expert=GaussianProcessRegressor(normalize_y=True),
            max_iter=5,
            random_state=0,
        ).fit(X, scale * y)
        for scale in (1.0, 100.0)
    ]
    np.testing.assert_allclose(
        fits[1].expert_variance_, 1e4 * fits[0].expert_variance_, rtol=1e-5
    )
    np.testing.assert_allclose(
        fits[1].log_likelihood(X, 100 * y),
        fits[0].log_likelihood(X, y) - np.log(100),
        rtol=1e-5,
    )


@ignore_convergence
def test_restarts_only_at_the_first_m_step():
    # n_restarts_optimizer=2: three optimisations per leaf at the first
    # M-step, one (warm-started) at every later one. A callable optimizer
    # gets the weighted objective.
    calls = []

    def optimizer(objective, theta, bounds):
        calls.append(theta.copy())
        from scipy.optimize import minimize

        found = minimize(objective, theta, jac=True, method="L-BFGS-B", bounds=bounds)
        return found.x, found.fun

    X, y = _smooth(120, 0)
    expert = GaussianProcessRegressor(
        optimizer=optimizer, n_restarts_optimizer=2, random_state=0
    )
    model = MixtureOfExpertsRegressor(
        n_experts=2, expert=expert, max_iter=3, tol=0, random_state=0
    ).fit(X, y)
    assert model.n_iter_ == 3
    # max_iter=3: the M-step of the start and 3 more, 2 leaves.
    assert len(calls) == 2 * 3 + 2 * 3
    assert all(gp.n_restarts_optimizer == 2 for gp in model.experts_)


@ignore_convergence
def test_pipeline_ending_in_a_gp():
    # The transformers see the rows as they are; the GP at the end learns
    # its noise (sd 0.3 here; measured 0.280 and 0.300).
    X, y = _smooth(200, 0)
    expert = make_pipeline(StandardScaler(), GaussianProcessRegressor())
    model = MixtureOfExpertsRegressor(
        n_experts=2, expert=expert, max_iter=10, random_state=0
    ).fit(X, y)
    np.testing.assert_allclose(np.sqrt(model.expert_variance_), 0.3, rtol=0.2)
    for pipeline in model.experts_:
        assert pipeline[-1].X_train_.shape[1] == 1
        pipeline.predict(X[:3], return_std=True)
