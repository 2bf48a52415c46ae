"""Bad input is rejected with a clear error; degenerate input never gives NaN.

The first part feeds both estimators malformed data, weights, initial
responsibilities and hyper-parameters, and checks that the error is a
``ValueError`` (``TypeError`` for a hyper-parameter of the wrong type, as
``sklearn.utils.check_scalar`` does; ``NotFittedError`` before ``fit``) whose
message names the problem. The second part fits legal but degenerate data
(duplicated points, constant columns, unused experts, separable classes,
extreme scales) and checks that every fitted array and every output is finite
and that the variance floor holds.
"""

import re

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsRegressor
from sklearn.svm import SVC

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import make_moe

TASKS = ["regression", "classification"]
ESTIMATORS = {
    "regression": MixtureOfExpertsRegressor,
    "classification": MixtureOfExpertsClassifier,
}
N_SAMPLES = 60


def make_data(task, n_samples=N_SAMPLES, n_features=2, random_state=0):
    X, y, _ = make_moe(
        n_samples, n_features, task=task, n_classes=3, random_state=random_state
    )
    return X, y


def make_model(task, **params):
    params.setdefault("random_state", 0)
    return ESTIMATORS[task](**params)


def with_value(array, value, index=0):
    """A float copy of ``array`` with ``value`` at flat position ``index``."""
    array = np.array(array, dtype=float)
    array.flat[index] = value
    return array


NON_FINITE = [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")]


# -- data ----------------------------------------------------------------------


@pytest.mark.parametrize("value, name", NON_FINITE)
@pytest.mark.parametrize("task", TASKS)
def test_fit_rejects_non_finite_X(task, value, name):
    X, y = make_data(task)
    with pytest.raises(ValueError, match=f"Input X contains {name}"):
        make_model(task).fit(with_value(X, value, index=7), y)


@pytest.mark.parametrize("value, name", NON_FINITE)
@pytest.mark.parametrize("task", TASKS)
def test_fit_rejects_non_finite_y(task, value, name):
    X, y = make_data(task)
    with pytest.raises(ValueError, match=f"Input y contains {name}"):
        make_model(task).fit(X, with_value(y, value, index=3))


@pytest.mark.parametrize(
    "method", ["predict", "predict_gates", "apply", "log_likelihood"]
)
@pytest.mark.parametrize("value, name", NON_FINITE)
@pytest.mark.parametrize("task", TASKS)
def test_prediction_rejects_non_finite_X(task, value, name, method):
    X, y = make_data(task)
    model = make_model(task).fit(X, y)
    args = (y,) if method == "log_likelihood" else ()
    with pytest.raises(ValueError, match=f"Input X contains {name}"):
        getattr(model, method)(with_value(X, value, index=5), *args)


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("task", TASKS)
def test_log_likelihood_rejects_non_finite_y(task, value):
    X, y = make_data(task)
    model = make_model(task).fit(X, y)
    with pytest.raises(ValueError, match=r"(?i)nan|inf"):
        model.log_likelihood(X, with_value(y, value, index=3))


@pytest.mark.parametrize("method", ["predict_responsibilities", "bic", "aic"])
@pytest.mark.parametrize("task", TASKS)
def test_methods_taking_y_reject_nan_y(task, method):
    X, y = make_data(task)
    model = make_model(task).fit(X, y)
    with pytest.raises(ValueError, match=r"(?i)nan"):
        getattr(model, method)(X, with_value(y, np.nan, index=3))


@pytest.mark.parametrize("task", TASKS)
def test_fit_rejects_1d_X(task):
    X, y = make_data(task)
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        make_model(task).fit(X[:, 0], y)


@pytest.mark.parametrize("task", TASKS)
def test_fit_rejects_y_of_the_wrong_length(task):
    X, y = make_data(task)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        make_model(task).fit(X, y[:-1])


@pytest.mark.parametrize(
    "method", ["predict", "predict_gates", "apply", "log_likelihood", "bic"]
)
@pytest.mark.parametrize("task", TASKS)
def test_prediction_rejects_another_number_of_features(task, method):
    X, y = make_data(task)
    model = make_model(task).fit(X, y)
    args = (y,) if method in ("log_likelihood", "bic") else ()
    with pytest.raises(ValueError, match="X has 3 features, but .* expecting 2"):
        getattr(model, method)(np.hstack([X, X[:, :1]]), *args)


@pytest.mark.parametrize("method", ["log_likelihood", "predict_responsibilities"])
@pytest.mark.parametrize("task", TASKS)
def test_scoring_rejects_y_of_the_wrong_length(task, method):
    X, y = make_data(task)
    model = make_model(task).fit(X, y)
    with pytest.raises(ValueError, match=r"expected \(60,\), one .* per row of X"):
        getattr(model, method)(X, y[:-1])


@pytest.mark.parametrize("task", TASKS)
def test_fit_rejects_fewer_samples_than_leaves(task):
    X, y = make_data(task)
    rows = [0, 1, 2] if task == "regression" else np.flatnonzero(y < 2)[:3]
    assert len(set(y[rows])) > 1
    model = make_model(task, n_experts=2, depth=2)
    with pytest.raises(ValueError, match="has 4 leaves and needs at least"):
        model.fit(X[rows], y[rows])


@pytest.mark.parametrize("task", TASKS)
def test_fit_rejects_fewer_weighted_samples_than_leaves(task):
    X, y = make_data(task)
    weight = np.zeros(N_SAMPLES)
    weight[:3] = 1.0
    model = make_model(task, n_experts=2, depth=2)
    with pytest.raises(ValueError, match="positive weight; got n_samples=3"):
        model.fit(X, y, sample_weight=weight)


def test_classifier_rejects_a_single_class():
    X, _ = make_data("classification")
    with pytest.raises(ValueError, match="at least 2 classes"):
        make_model("classification").fit(X, np.full(N_SAMPLES, "spam"))


def test_classifier_rejects_a_single_class_after_zero_weights():
    X, y = make_data("classification")
    assert np.unique(y).size == 3
    weight = (y == 1).astype(float)
    with pytest.raises(ValueError, match="at least 2 classes with positive weight"):
        make_model("classification").fit(X, y, sample_weight=weight)


def test_classifier_rejects_a_continuous_target():
    X, _ = make_data("classification")
    y = np.random.RandomState(0).normal(size=N_SAMPLES)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        make_model("classification").fit(X, y)


@pytest.mark.parametrize("task", TASKS)
def test_fit_rejects_string_features(task):
    _, y = make_data(task)
    X = np.array([["red", "small"], ["blue", "large"]] * (N_SAMPLES // 2))
    with pytest.raises(ValueError, match="could not convert string to float"):
        make_model(task).fit(X, y)


def test_regressor_rejects_string_targets():
    X, _ = make_data("regression")
    with pytest.raises(ValueError, match="could not convert string to float"):
        make_model("regression").fit(X, np.array(["a", "b"] * (N_SAMPLES // 2)))


# -- sample weights ------------------------------------------------------------


@pytest.mark.parametrize(
    "weight, message",
    [
        (-np.ones(N_SAMPLES), "sample_weight has negative values"),
        (with_value(np.ones(N_SAMPLES), -1e-3), "sample_weight has negative values"),
        (np.ones(N_SAMPLES - 1), re.escape("expected (60,): one weight per sample")),
        (np.ones(N_SAMPLES + 1), re.escape("expected (60,): one weight per sample")),
        (np.ones((N_SAMPLES, 1)), re.escape("sample_weight.shape == (60, 1)")),
        (np.zeros(N_SAMPLES), "sample_weight sums to zero"),
        (with_value(np.ones(N_SAMPLES), np.nan), "Input sample_weight contains NaN"),
        (with_value(np.ones(N_SAMPLES), np.inf), "sample_weight contains infinity"),
    ],
    ids=["negative", "one-negative", "short", "long", "2d", "zero", "nan", "inf"],
)
@pytest.mark.parametrize("task", TASKS)
def test_fit_rejects_bad_sample_weight(task, weight, message):
    X, y = make_data(task)
    with pytest.raises(ValueError, match=message):
        make_model(task).fit(X, y, sample_weight=weight)


# -- initial responsibilities --------------------------------------------------


@pytest.mark.parametrize(
    "init_params, message",
    [
        (np.ones((N_SAMPLES, 3)), re.escape("init_params has shape (60, 3)")),
        (np.ones((N_SAMPLES - 1, 2)), re.escape("init_params has shape (59, 2)")),
        (np.ones(N_SAMPLES), "Expected 2D array"),
        (-np.ones((N_SAMPLES, 2)), "init_params responsibilities must be >= 0"),
        (with_value(np.ones((N_SAMPLES, 2)), -0.5), "must be >= 0"),
        (
            with_value(with_value(np.ones((N_SAMPLES, 2)), 0.0, 0), 0.0, 1),
            "positive sum in every row",
        ),
        (with_value(np.ones((N_SAMPLES, 2)), np.nan), "init_params contains NaN"),
        ("k-means++", re.escape("init_params='k-means++'; expected 'kmeans'")),
        ("", re.escape("init_params=''; expected 'kmeans', 'random'")),
    ],
    ids=[
        "too-many-leaves",
        "too-few-rows",
        "1d",
        "negative",
        "one-negative",
        "zero-row",
        "nan",
        "unknown-string",
        "empty-string",
    ],
)
@pytest.mark.parametrize("task", TASKS)
def test_fit_rejects_bad_init_params(task, init_params, message):
    X, y = make_data(task)
    with pytest.raises(ValueError, match=message):
        make_model(task, n_experts=2, init_params=init_params).fit(X, y)


# -- hyper-parameters ----------------------------------------------------------

BAD_PARAMS = [
    ("n_experts", 0, ValueError, "n_experts == 0, must be >= 1"),
    ("n_experts", -2, ValueError, "n_experts == -2, must be >= 1"),
    ("depth", 0, ValueError, "depth == 0, must be >= 1"),
    ("gate_alpha", 0, ValueError, "gate_alpha == 0, must be > 0"),
    ("gate_alpha", -1e-3, ValueError, "gate_alpha == -0.001, must be > 0"),
    ("expert_alpha", -1, ValueError, "expert_alpha == -1, must be > 0"),
    ("expert_alpha", 0.0, ValueError, "expert_alpha == 0.0, must be > 0"),
    ("max_iter", -1, ValueError, "max_iter == -1, must be >= 0"),
    ("tol", -1e-4, ValueError, "tol == -0.0001, must be >= 0"),
    ("n_init", 0, ValueError, "n_init == 0, must be >= 1"),
    ("verbose", -1, ValueError, "verbose == -1, must be >= 0"),
    ("n_experts", 2.5, TypeError, "n_experts must be an instance of int"),
    ("depth", "2", TypeError, "depth must be an instance of int"),
    ("max_iter", 10.0, TypeError, "max_iter must be an instance of int"),
    ("n_init", None, TypeError, "n_init must be an instance of int"),
    ("gate_alpha", "small", TypeError, "gate_alpha must be an instance of float"),
    ("tol", None, TypeError, "tol must be an instance of float"),
    ("expert", "lineal", ValueError, "expert='lineal' is not a built-in"),
    ("gate_features", [7], ValueError, "gate_features has the column index 7"),
    ("expert_features", ["x"], ValueError, "expert_features names the column 'x'"),
    ("expert_weighting", "soft", ValueError, "expert_weighting='soft'; expected"),
    ("responsibility_threshold", 0, ValueError, "responsibility_threshold == 0"),
    ("responsibility_threshold", 1.5, ValueError, "responsibility_threshold == 1.5"),
    ("max_samples_per_expert", 0, ValueError, "max_samples_per_expert == 0"),
]


@pytest.mark.parametrize(
    "name, value, error, message",
    BAD_PARAMS,
    ids=[f"{name}={value!r}" for name, value, _, _ in BAD_PARAMS],
)
@pytest.mark.parametrize("task", TASKS)
def test_fit_rejects_bad_hyper_parameters(task, name, value, error, message):
    X, y = make_data(task)
    with pytest.raises(error, match=message):
        make_model(task, **{name: value}).fit(X, y)


@pytest.mark.parametrize(
    "task, expert, message",
    [
        (
            "regression",
            LogisticRegression(),
            r"expert=LogisticRegression\(\) is not a regressor",
        ),
        (
            "classification",
            LinearRegression(),
            r"expert=LinearRegression\(\) is not a classifier",
        ),
        (
            "classification",
            SVC(),
            r"expert=SVC\(\) has no predict_proba.*CalibratedClassifierCV",
        ),
        ("regression", KNeighborsRegressor(), "takes no sample_weight"),
    ],
)
def test_fit_rejects_learners_that_do_not_fit_the_task(task, expert, message):
    X, y = make_data(task)
    weighting = "sample_weight" if isinstance(expert, KNeighborsRegressor) else "auto"
    with pytest.raises(ValueError, match=message):
        make_model(task, expert=expert, expert_weighting=weighting).fit(X, y)


@pytest.mark.parametrize(
    "value, error, message",
    [
        (0, ValueError, "min_variance == 0, must be > 0"),
        (-1.0, ValueError, "min_variance == -1.0, must be > 0"),
        ("tiny", TypeError, "min_variance must be an instance of float"),
    ],
)
def test_regressor_rejects_bad_min_variance(value, error, message):
    X, y = make_data("regression")
    with pytest.raises(error, match=message):
        make_model("regression", min_variance=value).fit(X, y)


@pytest.mark.parametrize("task", TASKS)
def test_fit_rejects_too_many_leaves(task):
    X, y = make_data(task)
    with pytest.raises(ValueError, match="give 10000 leaves; at most 4096"):
        make_model(task, n_experts=100, depth=2).fit(X, y)


# -- labels and fitted state ---------------------------------------------------


@pytest.mark.parametrize(
    "method", ["log_likelihood", "predict_responsibilities", "bic", "aic"]
)
def test_scoring_rejects_labels_never_seen_in_fit(method):
    X, y = make_data("classification")
    model = make_model("classification").fit(X, y)
    with pytest.raises(ValueError, match=r"labels \[7\] not in classes_"):
        getattr(model, method)(X, np.where(y == 2, 7, y))


@pytest.mark.parametrize("dtype", [str, object])
def test_scoring_rejects_labels_never_seen_with_string_classes(dtype):
    X, y = make_data("classification")
    names = np.array(["ant", "bee", "cat", "cow"], dtype=dtype)
    model = make_model("classification").fit(X, names[y])
    labels = names[np.where(y == 1, 3, y)]
    with pytest.raises(ValueError, match=r"labels \['cow'\] not in classes_"):
        model.log_likelihood(X, labels)


def test_scoring_rejects_string_labels_for_integer_classes():
    X, y = make_data("classification")
    model = make_model("classification").fit(X, y)
    with pytest.raises(ValueError, match=r"labels \['spam'\] not in classes_"):
        model.log_likelihood(X, np.full(N_SAMPLES, "spam"))


METHODS_OF = {
    "regression": [
        "predict",
        "predict_gates",
        "apply",
        "score",
        "log_likelihood",
        "predict_responsibilities",
        "bic",
        "aic",
    ],
}
METHODS_OF["classification"] = METHODS_OF["regression"] + [
    "predict_proba",
    "predict_log_proba",
]


@pytest.mark.parametrize("task, method", [(t, m) for t in TASKS for m in METHODS_OF[t]])
def test_methods_before_fit_raise_not_fitted(task, method):
    X, y = make_data(task)
    takes_y = method in ("score", "log_likelihood", "predict_responsibilities")
    args = (X, y) if takes_y or method in ("bic", "aic") else (X,)
    with pytest.raises(NotFittedError, match="is not fitted yet"):
        getattr(make_model(task), method)(*args)


# -- degenerate data never gives NaN --------------------------------------------


def _identical_inputs(task, rng):
    X = np.tile([[1.5, -2.0]], (40, 1))
    if task == "regression":
        return X, rng.normal(size=40), {}
    return X, rng.randint(0, 2, size=40), {}


def _copies_of_three_points(task, rng):
    X = np.repeat(rng.normal(size=(3, 2)), 20, axis=0)
    if task == "regression":
        return X, np.repeat([0.0, 1.0, 5.0], 20), {"depth": 2}
    return X, np.repeat([0, 1, 1], 20), {"depth": 2}


def _noisy_copies_of_three_points(task, rng):
    X = np.repeat(rng.normal(size=(3, 2)), 20, axis=0)
    if task == "regression":
        return X, np.repeat([0.0, 1.0, 5.0], 20) + rng.normal(size=60), {"depth": 2}
    return X, rng.randint(0, 3, size=60), {"depth": 2}


def _constant_feature(task, rng):
    X = np.c_[rng.normal(size=80), np.full(80, 3.0)]
    if task == "regression":
        return X, np.abs(X[:, 0]) + 0.1 * rng.normal(size=80), {}
    return X, (X[:, 0] > 0).astype(int), {}


def _constant_target(task, rng):
    X = rng.normal(size=(50, 2))
    if task == "regression":
        return X, np.full(50, 2.5), {"depth": 2}
    # A classifier needs two classes: one is carried by a single sample.
    y = np.zeros(50, dtype=int)
    y[0] = 1
    return X, y, {"depth": 2}


def _eight_experts_on_one_line(task, rng):
    X = rng.uniform(-1, 1, size=(100, 1))
    if task == "regression":
        return X, 2 * X[:, 0] + 1 + 0.01 * rng.normal(size=100), {"n_experts": 8}
    return X, (X[:, 0] > 0).astype(int), {"n_experts": 8}


def _expert_starting_with_no_weight(task, rng):
    X = rng.uniform(-1, 1, size=(100, 1))
    resp = np.ones((100, 3))
    resp[:, 2] = 0.0
    params = {"n_experts": 3, "init_params": resp}
    if task == "regression":
        return X, 2 * X[:, 0] + 1 + 0.01 * rng.normal(size=100), params
    return X, (X[:, 0] > 0).astype(int), params


def _separable(task, rng):
    X = rng.normal(size=(100, 2))
    if task == "regression":
        return X, np.where(X[:, 0] > 0, 5.0, -5.0), {"depth": 2}
    return X, (X[:, 0] + X[:, 1] > 0).astype(int), {"depth": 2}


def _separable_three_clusters(task, rng):
    centres = np.array([[10.0, 0.0], [-10.0, 0.0], [0.0, 10.0]])
    X = np.repeat(centres, 30, axis=0) + rng.normal(size=(90, 2))
    if task == "regression":
        return X, np.repeat([-3.0, 0.0, 3.0], 30), {"depth": 2}
    return X, np.repeat([0, 1, 2], 30), {"depth": 2}


def _scaled_features(scale, offset):
    def make(task, rng):
        Z = rng.normal(size=(100, 2))
        X = Z * [scale, 1.0] + [offset * scale, 0.0]
        if task == "regression":
            return X, np.abs(Z[:, 0]) + 0.1 * rng.normal(size=100), {}
        return X, (Z[:, 0] > 0).astype(int), {}

    return make


def _scaled_target(scale):
    def make(task, rng):
        X = rng.normal(size=(100, 2))
        if task == "regression":
            return X, scale * (np.abs(X[:, 0]) + 0.1 * rng.normal(size=100)), {}
        return X, (X[:, 0] > 0).astype(int), {}

    return make


DEGENERATE = {
    "identical-inputs": _identical_inputs,
    "copies-of-three-points": _copies_of_three_points,
    "noisy-copies-of-three-points": _noisy_copies_of_three_points,
    "constant-feature": _constant_feature,
    "constant-target": _constant_target,
    "eight-experts-on-one-line": _eight_experts_on_one_line,
    "expert-starting-with-no-weight": _expert_starting_with_no_weight,
    "separable": _separable,
    "separable-three-clusters": _separable_three_clusters,
    "feature-scale-1e8": _scaled_features(1e8, 0.0),
    "feature-scale-1e-8": _scaled_features(1e-8, 0.0),
    "feature-scale-1e8-offset": _scaled_features(1e8, 3.0),
    "feature-scale-1e-8-offset": _scaled_features(1e-8, 3.0),
    "target-scale-1e8": _scaled_target(1e8),
    "target-scale-1e-8": _scaled_target(1e-8),
}


def assert_all_finite(model, X, y):
    arrays = {
        "expert_coef_": model.expert_coef_,
        "expert_intercept_": model.expert_intercept_,
        "predict": model.predict(X),
        "log_likelihood": model.log_likelihood(X, y),
        "predict_gates": model.predict_gates(X),
        "predict_responsibilities": model.predict_responsibilities(X, y),
    }
    for level, (coef, intercept) in enumerate(
        zip(model.gate_coef_, model.gate_intercept_, strict=True)
    ):
        arrays[f"gate_coef_[{level}]"] = coef
        arrays[f"gate_intercept_[{level}]"] = intercept
    if isinstance(model, MixtureOfExpertsRegressor):
        arrays["expert_variance_"] = model.expert_variance_
        arrays["predict_std"] = model.predict(X, return_std=True)[1]
    else:
        arrays["predict_proba"] = model.predict_proba(X)
    for name, array in arrays.items():
        assert np.all(np.isfinite(array)), f"{name} is not finite: {array}"
    assert np.isfinite(model.lower_bound_)
    assert np.all(np.isfinite(model.lower_bounds_))
    assert np.isfinite(model.bic(X, y)) and np.isfinite(model.aic(X, y))


@pytest.mark.parametrize("case", list(DEGENERATE))
@pytest.mark.parametrize("task", TASKS)
def test_degenerate_data_gives_a_finite_fit(task, case):
    X, y, params = DEGENERATE[case](task, np.random.RandomState(0))
    model = make_model(task, **params).fit(X, y)
    assert_all_finite(model, X, y)
    if task == "regression":
        floor = model.min_variance * np.var(y)
        assert np.all(model.expert_variance_ >= floor * (1 - 1e-9))
        assert np.all(model.expert_variance_ > 0)


@pytest.mark.parametrize("task", TASKS)
def test_an_expert_with_no_weight_stays_finite_and_unused(task):
    X, y, params = _expert_starting_with_no_weight(task, np.random.RandomState(0))
    model = make_model(task, **params).fit(X, y)
    assert_all_finite(model, X, y)
    # The degenerate case is really exercised: leaf 2 gets almost nothing.
    assert model.predict_gates(X)[:, 2].mean() < 0.01


def test_constant_target_is_predicted_exactly():
    X, y, params = _constant_target("regression", np.random.RandomState(0))
    model = make_model("regression", **params).fit(X, y)
    np.testing.assert_allclose(model.predict(X), 2.5, rtol=1e-6)


def _target_scale(y):
    """The standard deviation, at most 3 times the interquartile range / 1.349."""
    low, high = np.quantile(y, [0.25, 0.75], method="inverted_cdf")
    return min(np.std(y), 3 * (high - low) / 1.3489795003921634)


def test_variance_floor_is_relative_to_the_target_variance():
    # Noise-free copies of three points: every expert's variance would
    # collapse to zero without the floor, which is min_variance times the
    # square of the target's scale.
    X, y, params = _copies_of_three_points("regression", np.random.RandomState(0))
    for scale in (1.0, 1e4):
        model = make_model("regression", min_variance=1e-2, **params)
        model.fit(X, scale * y)
        floor = 1e-2 * _target_scale(scale * y) ** 2
        np.testing.assert_allclose(model.expert_variance_.min(), floor, rtol=1e-6)
