"""Adversarial input: float32, weak regularisation, extreme values, threads.

Each reproducer of the robustness issue is a test here: a float32 fit that
is as monotone as a float64 one, penalties and variance floors too small to
keep the solves regular, features at the edge of round-off, outliers and
values whose squares overflow, parameters that are not numbers, weights of
any scale, and the thread limit under which EM runs.
"""

import re
import warnings

import numpy as np
import pytest
from scipy.linalg import LinAlgWarning
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from threadpoolctl import threadpool_info

import hmexperts
from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts._em import drop_tolerance
from hmexperts._experts import LinearGaussianExperts
from hmexperts.datasets import make_moe


def _collinear(n=500, seed=0):
    """Three features, the third the sum of the first two; y = |x_0|."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 3)
    X[:, 2] = X[:, 0] + X[:, 1]
    return X, np.abs(X[:, 0]), rng


def _largest_relative_drop(values):
    values = np.asarray(values)
    return np.max((values[:-1] - values[1:]) / np.maximum(1, np.abs(values[:-1])))


# -- float32 ----------------------------------------------------------------


def test_float32_collinear_fit_is_monotone():
    # Summed in float32, this fit fell from 3.06 to -12.6 at iteration 60.
    X, y, _ = _collinear()
    model = MixtureOfExpertsRegressor(2, depth=2, random_state=0, max_iter=150, tol=0)
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter"):
        model.fit(X.astype(np.float32), y)
    assert _largest_relative_drop(model.lower_bounds_) <= drop_tolerance()
    assert model.lower_bound_ > 2.9


def test_float32_with_log_normal_weights_fits():
    # Weights spread over e^(+-15) made a float32 Gram matrix singular.
    X, y, rng = _collinear()
    weight = np.exp(5 * rng.randn(500))
    model = MixtureOfExpertsRegressor(2, depth=2, random_state=0, max_iter=150, tol=0)
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter"):
        model.fit(X.astype(np.float32), y, sample_weight=weight)
    assert _largest_relative_drop(model.lower_bounds_) <= drop_tolerance()
    assert np.all(np.isfinite(model.predict(X.astype(np.float32))))


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_float32_probabilities_sum_to_one(task):
    # float32 gates far from zero lost 1.7e-4 of their mass to round-off.
    X, y, _ = make_moe(
        400, 3, n_experts=3, depth=2, task=task, gate_scale=30.0, random_state=0
    )
    X = X.astype(np.float32) * np.float32(1e3)
    Model = (
        MixtureOfExpertsRegressor
        if task == "regression"
        else (MixtureOfExpertsClassifier)
    )
    model = Model(3, depth=2, gate_alpha=1e-6, random_state=0).fit(X, y)
    outputs = [model.predict_gates(X), model.predict_responsibilities(X, y)]
    if task == "classification":
        outputs.append(model.predict_proba(X))
    for rows in outputs:
        assert rows.dtype == np.float32
        np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-6)


# -- weak regularisation ------------------------------------------------------


def test_tiny_variance_floor_keeps_the_ridge():
    # The ridge was expert_alpha * variance: with min_variance=1e-12 the
    # objective dropped by 8e-4 (7e26 on other machines) and EM still
    # reported convergence.
    X, y, _ = _collinear()
    model = MixtureOfExpertsRegressor(2, min_variance=1e-12, random_state=0).fit(X, y)
    assert _largest_relative_drop(model.lower_bounds_) <= drop_tolerance()
    assert model.converged_


@pytest.mark.parametrize("alpha", [1e-10, 1e-300])
def test_vanishing_penalties_do_not_raise(alpha):
    # expert_alpha=1e-10 with min_variance=1e-9 raised LinAlgError in the
    # experts' solve; the ridge floor keeps every system regular.
    X, y, _ = _collinear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LinAlgWarning)  # no pseudo-inverse needed
        model = MixtureOfExpertsRegressor(
            2, min_variance=1e-9, expert_alpha=alpha, gate_alpha=alpha, random_state=0
        ).fit(X, y)
    assert _largest_relative_drop(model.lower_bounds_) <= drop_tolerance()
    assert model.score(X, y) > 0.99


def test_a_decrease_stops_em_and_restores_the_previous_iterate(monkeypatch):
    # A bank whose M-step makes things worse: EM must notice, stop, return
    # the parameters before the decrease and say what happened.
    m_step = LinearGaussianExperts.m_step
    calls = []

    def worsening_m_step(self, stats, xp):
        m_step(self, stats, xp)
        calls.append(1)
        if len(calls) == 4:  # the third EM iteration (the first call initialises)
            self.coef = self.coef + 0.5

    monkeypatch.setattr(LinearGaussianExperts, "m_step", worsening_m_step)
    X, y, _ = make_moe(300, noise=0.1, random_state=0)
    # plain EM, so that the M-steps are the iterations
    model = MixtureOfExpertsRegressor(
        2, random_state=0, max_iter=50, tol=0, acceleration=None
    )
    with pytest.warns(ConvergenceWarning, match="decreased by .* at iteration 3"):
        model.fit(X, y)
    assert not model.converged_
    assert model.n_iter_ == 3
    assert model.lower_bound_ == model.lower_bounds_[2]
    refit = MixtureOfExpertsRegressor(
        2, random_state=0, max_iter=2, tol=0, acceleration=None
    )
    monkeypatch.setattr(LinearGaussianExperts, "m_step", m_step)
    with pytest.warns(ConvergenceWarning):
        refit.fit(X, y)
    np.testing.assert_allclose(model.predict(X), refit.predict(X), rtol=1e-12)


# -- extreme values -------------------------------------------------------------


def test_near_constant_feature_that_carries_the_signal_is_kept():
    # A feature with standard deviation 1e-16 was taken for a constant.
    rng = np.random.RandomState(1)
    X = rng.randn(300, 1) * 1e-16
    y = 3e16 * X[:, 0] + 0.01 * rng.randn(300)
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    assert model.score(X, y) > 0.99


def test_constant_up_to_round_off_feature_is_constant():
    rng = np.random.RandomState(1)
    X = np.column_stack([rng.randn(200), 1.0 + 1e-17 * rng.randn(200)])
    y = X[:, 0] + 0.1 * rng.randn(200)
    model = MixtureOfExpertsRegressor(1, random_state=0).fit(X, y)
    assert model._scaling.x_scale[1] == 1.0
    assert model.score(X, y) > 0.95


@pytest.mark.parametrize("where", ["X", "y"])
def test_values_whose_squares_overflow_are_refused(where):
    # y = 1e300 gave lower_bound_ = -inf and NaN predictions; X = 1e308
    # dropped its column with a RuntimeWarning.
    rng = np.random.RandomState(0)
    X = rng.randn(100, 2)
    y = X[:, 0] + 0.1 * rng.randn(100)
    if where == "X":
        X[0, 1] = 1e308
        match = "X column 1 has a value 1e\\+308 scales"
    else:
        y[0] = 1e300
        match = "y has a value 1e\\+300 scales"
    with pytest.raises(ValueError, match=match + ".*Rescale or transform it"):
        MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)


def test_prediction_refuses_values_whose_squares_overflow():
    rng = np.random.RandomState(0)
    X = rng.randn(100, 2)
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, X[:, 0])
    X[3, 0] = 1e250
    with pytest.raises(ValueError, match="X column 0 has a value"):
        model.predict(X)


def test_one_outlier_does_not_raise_the_variance_floor():
    # One target of 1e12 among 300 made var(y) 3e21 and every expert's
    # variance 3e18. The scale is capped at 3 IQR / 1.349, so the bulk's
    # expert keeps its noise variance (0.01).
    rng = np.random.RandomState(1)
    X = rng.randn(300, 2)
    y = X[:, 0] + 0.1 * rng.randn(300)
    y[0] = 1e12
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    assert np.min(model.expert_variance_) == pytest.approx(0.01, rel=0.2)
    # The most trusted expert predicts the other rows. (The mixture mean
    # does not: the outlier's own expert, fit to one sample, extrapolates
    # along its gate's direction; see the user guide.)
    assert model.set_params(pooling="max").score(X[1:], y[1:]) > 0.98


# -- parameters and weights -------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["gate_alpha", "expert_alpha", "min_variance", "tol", "gate_noise"]
)
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_parameters_are_refused(name, value):
    X, y, _ = make_moe(50, random_state=0)
    model = MixtureOfExpertsRegressor(2, **{name: value})
    with pytest.raises(ValueError, match=f"{name}={value}; it must be a finite number"):
        model.fit(X, y)


@pytest.mark.parametrize("name", ["n_experts", "depth", "n_init", "max_iter", "top_k"])
def test_booleans_are_not_integers(name):
    X, y, _ = make_moe(50, random_state=0)
    model = MixtureOfExpertsRegressor(**{name: True})
    with pytest.raises(TypeError, match=f"{name} must be an int, not a bool"):
        model.fit(X, y)


def test_scalar_sample_weight_weighs_every_sample():
    X, y, _ = make_moe(200, random_state=0)
    scalar = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y, sample_weight=2.0)
    full = MixtureOfExpertsRegressor(2, random_state=0).fit(
        X, y, sample_weight=np.full(200, 2.0)
    )
    np.testing.assert_array_equal(scalar.predict(X), full.predict(X))
    with pytest.raises(ValueError, match="sample_weight == 0.0, must be > 0"):
        MixtureOfExpertsRegressor(2).fit(X, y, sample_weight=0.0)


@pytest.mark.parametrize("scale", [1e100, 1e-100])
def test_weights_of_any_scale_count_as_repetitions(scale):
    # A weight counts as that many repetitions of its sample, so weights
    # scaled by c fit as the unit weights with penalties divided by c. At
    # 1e100 the weights raised LinAlgError; internally they are rescaled by a
    # power of two, and the penalties with them.
    X, y, _ = make_moe(200, noise=0.2, random_state=0)
    weight = np.random.RandomState(0).uniform(0.5, 2.0, size=200)
    params = dict(n_experts=2, random_state=0, max_iter=30, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # too little weight, at 1e-100
        scaled = MixtureOfExpertsRegressor(**params).fit(
            X, y, sample_weight=scale * weight
        )
        unit = MixtureOfExpertsRegressor(
            gate_alpha=1e-2 / scale, expert_alpha=1e-2 / scale, **params
        ).fit(X, y, sample_weight=weight)
    np.testing.assert_allclose(scaled.predict(X), unit.predict(X), rtol=1e-6, atol=1e-9)
    assert scaled.lower_bound_ == pytest.approx(unit.lower_bound_, rel=1e-8)


def test_weights_that_sum_to_little_are_named_in_the_warning():
    X, y, _ = make_moe(200, random_state=0)
    with pytest.warns(
        UserWarning,
        match=r"free parameters for 2e-98 samples \(the sum of sample_weight",
    ):
        MixtureOfExpertsRegressor(2, random_state=0).fit(
            X, y, sample_weight=np.full(200, 1e-100)
        )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_too_many_parameters_for_the_samples_warns():
    # 50 experts on 442 samples of 10 features fit for 50 s to a CV R^2 of
    # -1.62: more parameters (1139) than samples.
    X, y, _ = make_moe(60, 4, random_state=0)
    message = re.escape(
        "has 94 free parameters for 40 samples: it will fit noise. Decrease "
        "n_experts or depth"
    )
    with pytest.warns(UserWarning, match=message):
        MixtureOfExpertsRegressor(3, depth=2, max_iter=1).fit(X[:40], y[:40])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)  # 32 for 60: fine


# -- threads ----------------------------------------------------------------------


class _ThreadRecorder(RegressorMixin, BaseEstimator):
    """A linear regressor that records how many BLAS threads it may use."""

    def fit(self, X, y, sample_weight=None):
        blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        self.blas_threads_ = max(blas, default=None)
        self.model_ = LinearRegression().fit(X, y, sample_weight=sample_weight)
        return self

    def predict(self, X):
        return self.model_.predict(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_em_runs_on_one_blas_thread_unless_configured():
    if not any(p["user_api"] == "blas" for p in threadpool_info()):
        pytest.skip("threadpoolctl sees no BLAS library to limit")
    X, y, _ = make_moe(100, random_state=0)
    model = MixtureOfExpertsRegressor(2, expert=_ThreadRecorder(), max_iter=2)
    model.fit(X, y)
    assert {learner.blas_threads_ for learner in model.experts_} == {1}
    with hmexperts.config_context(n_threads=None):
        model.fit(X, y)
    outside = max(
        p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"
    )
    assert {learner.blas_threads_ for learner in model.experts_} == {outside}
    with pytest.raises(ValueError, match="n_threads=0; expected a positive int"):
        hmexperts.set_config(n_threads=0)
