"""scikit-learn integration of ``MixtureOfExpertsRegressor`` and ``...Classifier``.

Reproducibility, warm starts, restarts, convergence warnings, cloning and
pickling, pipelines and grid search, sample weights, the methods beyond
``predict`` (``log_likelihood``, ``predict_gates``, ``predict_responsibilities``,
``apply``, ``bic``/``aic``, ``predict(return_std=True)``), invariance to sample
order and batching, the fitted attributes and their units.

Everything runs on small data drawn from ``make_moe`` so that the module stays
fast; each test names the property it checks.
"""

import doctest
import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor, _em
from hmexperts.datasets import make_moe

TASKS = ["regression", "classification"]
ESTIMATORS = {
    "regression": MixtureOfExpertsRegressor,
    "classification": MixtureOfExpertsClassifier,
}
N_SAMPLES = 120
N_CLASSES = 3

ignore_convergence = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)


def make_data(task, n_samples=N_SAMPLES, n_features=2, depth=1, random_state=0):
    X, y, _ = make_moe(
        n_samples,
        n_features,
        n_experts=2,
        depth=depth,
        task=task,
        n_classes=N_CLASSES,
        random_state=random_state,
    )
    return X, y


def make_model(task, **params):
    params.setdefault("random_state", 0)
    return ESTIMATORS[task](**params)


def prediction(model, X):
    """The main prediction: the mean (regression) or the probabilities."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)
    return model.predict(X)


def all_outputs(model, X, y):
    """Every per-sample output of a fitted model, by method name."""
    outputs = {
        "predict": model.predict(X),
        "log_likelihood": model.log_likelihood(X, y),
        "predict_gates": model.predict_gates(X),
        "predict_responsibilities": model.predict_responsibilities(X, y),
        "apply": model.apply(X),
    }
    if isinstance(model, MixtureOfExpertsClassifier):
        outputs["predict_proba"] = model.predict_proba(X)
        outputs["predict_log_proba"] = model.predict_log_proba(X)
    else:
        outputs["predict_std"] = model.predict(X, return_std=True)[1]
    return outputs


@pytest.fixture(
    scope="module",
    params=[(t, d) for t in TASKS for d in (1, 2)],
    ids=lambda param: f"{param[0]}-depth{param[1]}",
)
def fitted(request):
    """A fitted model of each task and depth, with its training data."""
    task, depth = request.param
    X, y = make_data(task, depth=depth)
    model = make_model(task, n_experts=2, depth=depth).fit(X, y)
    return model, X, y


# -- reproducibility -----------------------------------------------------------


@pytest.mark.parametrize("init_params", ["kmeans", "random"])
@pytest.mark.parametrize("task", TASKS)
def test_same_random_state_gives_identical_fits(task, init_params):
    X, y = make_data(task)
    first = make_model(task, init_params=init_params, random_state=3).fit(X, y)
    second = make_model(task, init_params=init_params, random_state=3).fit(X, y)
    assert first.lower_bounds_ == second.lower_bounds_
    for name, value in all_outputs(first, X, y).items():
        assert_array_equal(value, all_outputs(second, X, y)[name], err_msg=name)


@pytest.mark.parametrize("task", TASKS)
def test_different_random_states_start_differently(task):
    X, y = make_data(task)
    first = make_model(task, init_params="random", random_state=0).fit(X, y)
    second = make_model(task, init_params="random", random_state=1).fit(X, y)
    assert first.lower_bounds_[0] != second.lower_bounds_[0]
    assert first.lower_bounds_ != second.lower_bounds_


# -- warm start ----------------------------------------------------------------


@ignore_convergence
@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("task", TASKS)
def test_warm_start_continues_from_the_last_fit(task, depth):
    X, y = make_data(task, depth=depth)
    model = make_model(
        task, n_experts=2, depth=depth, warm_start=True, max_iter=1, tol=0
    )
    stepped = []
    for step in range(5):
        model.fit(X, y)
        assert len(model.lower_bounds_) == 2
        if step > 0:
            # The new run starts exactly where the previous one stopped.
            assert abs(model.lower_bounds_[0] - stepped[-1]) <= 1e-10
            assert model.lower_bound_ >= stepped[-1] - 1e-12
        stepped.append(model.lower_bound_)
    assert stepped[-1] > stepped[0]

    # Five warm steps of one iteration are one cold fit of five iterations.
    cold = make_model(task, n_experts=2, depth=depth, max_iter=5, tol=0).fit(X, y)
    assert_allclose(stepped, cold.lower_bounds_[1:], rtol=0, atol=1e-10)
    assert_allclose(prediction(model, X), prediction(cold, X), rtol=1e-8)


@ignore_convergence
@pytest.mark.parametrize("task", TASKS)
def test_without_warm_start_every_fit_restarts(task):
    X, y = make_data(task)
    model = make_model(task, max_iter=1, tol=0)
    first = list(model.fit(X, y).lower_bounds_)
    second = list(model.fit(X, y).lower_bounds_)
    assert first == second


@pytest.mark.parametrize("task", TASKS)
def test_warm_start_with_other_n_features_raises(task):
    X, y = make_data(task, n_features=2)
    X3, y3 = make_data(task, n_features=3)
    model = make_model(task, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but .* expecting 2"):
        model.fit(X3, y3)
    # A cold refit may change the number of features.
    cold = make_model(task).fit(X, y).fit(X3, y3)
    assert cold.n_features_in_ == 3


def test_warm_start_with_a_label_unseen_in_the_first_fit_raises():
    X, y = make_data("classification")
    model = make_model("classification", warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="not seen in the first fit"):
        model.fit(X, np.where(y == 0, 7, y))


# -- restarts ------------------------------------------------------------------


@ignore_convergence
@pytest.mark.parametrize("init_params", ["kmeans", "random"])
@pytest.mark.parametrize("task", TASKS)
def test_n_init_keeps_the_best_restart(task, init_params):
    # ``fit`` draws one RandomState (check_random_state) and the restarts
    # consume it in order, so restart 0 of n_init=5 is the n_init=1 fit with
    # the same seed, and the best of five restarts is at least as good.
    X, y = make_data(task, depth=2)
    params = dict(n_experts=2, depth=2, init_params=init_params, max_iter=10)
    best = make_model(task, n_init=5, random_state=7, **params).fit(X, y)
    single = make_model(task, n_init=1, random_state=7, **params).fit(X, y)
    assert np.isfinite(best.lower_bound_)
    assert best.lower_bound_ >= single.lower_bound_


@ignore_convergence
@pytest.mark.parametrize("task", TASKS)
def test_n_init_restarts_are_successive_draws_of_one_random_state(task):
    # With random initialisations every restart is the same procedure, so
    # the restarts of n_init=5 are five n_init=1 fits sharing one
    # RandomState instance, and n_init keeps the best of them.
    X, y = make_data(task, depth=2)
    params = dict(n_experts=2, depth=2, init_params="random", max_iter=10)
    best = make_model(task, n_init=5, random_state=7, **params).fit(X, y)
    shared = np.random.RandomState(7)
    singles = [
        make_model(task, n_init=1, random_state=shared, **params).fit(X, y).lower_bound_
        for _ in range(5)
    ]
    assert len(set(singles)) > 1
    assert best.lower_bound_ == max(singles)


# -- convergence ---------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_convergence_warning_when_max_iter_is_reached(task):
    X, y = make_data(task)
    model = make_model(task, max_iter=1, tol=0)
    with pytest.warns(ConvergenceWarning, match="did not converge") as record:
        model.fit(X, y)
    assert model.n_iter_ == 1
    assert not model.converged_
    assert len(model.lower_bounds_) == 2
    # the remedy, not "scale the input data" (the estimator standardises)
    message = str(record[0].message)
    assert "Increase max_iter, or tol to stop earlier." in message
    assert "scale" not in message


def test_convergence_warning_of_a_tree_expert_says_em_need_not_converge():
    X, y = make_data("regression")
    model = MixtureOfExpertsRegressor(
        2, expert=DecisionTreeRegressor(max_depth=2), max_iter=2, tol=0
    )
    with pytest.warns(ConvergenceWarning, match="EM need not converge at all"):
        model.fit(X, y)


# -- progress output -------------------------------------------------------------


def test_verbose_reports_every_initialisation_and_the_one_kept(capsys):
    X, y = make_data("regression")
    make_model("regression", n_init=3, verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert "Initialisation 1/3 (k-means start) ..." in out
    assert "Initialisation 3/3 (random start) ..." in out
    finished = re.findall(
        r"Initialisation (\d)/3: converged after \d+ iterations in [\d.]+ s, "
        r"objective -?[\d.]+ \(best so far: (\d)\)",
        out,
    )
    assert [run for run, _ in finished] == ["1", "2", "3"]
    kept = re.search(r"Kept initialisation (\d)/3: objective -?[\d.]+; [\d.]+ s", out)
    assert kept and kept.group(1) == finished[-1][1]
    assert not re.search(r"iteration +\d+ +objective", out)  # no per-iteration


def test_verbose_two_prints_every_iteration_with_its_time(capsys):
    X, y = make_data("regression")
    with pytest.warns(ConvergenceWarning):
        make_model("regression", verbose=2, max_iter=4, tol=0).fit(X, y)
    lines = re.findall(
        r"iteration +(\d+) +objective -?[\d.]+ +change [+-][\d.e+-]+ +"
        r"\d+ pass\(es\) +[\d.]+ s/iteration",
        capsys.readouterr().out,
    )
    assert lines == ["1", "2", "3", "4"]


def test_verbose_one_is_never_silent_for_long(capsys, monkeypatch):
    # A progress line at least every _PROGRESS_SECONDS (5 s); at 0 s, every
    # iteration prints one.
    monkeypatch.setattr(_em, "_PROGRESS_SECONDS", 0.0)
    X, y = make_data("regression")
    with pytest.warns(ConvergenceWarning):
        make_model("regression", verbose=1, max_iter=3, tol=0).fit(X, y)
    assert len(re.findall(r"iteration +\d+ +objective", capsys.readouterr().out)) == 3


@pytest.mark.parametrize("task", TASKS)
def test_max_iter_zero_only_initialises(task):
    X, y = make_data(task)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = make_model(task, max_iter=0).fit(X, y)
    assert model.n_iter_ == 0
    assert len(model.lower_bounds_) == 1
    assert model.lower_bound_ == model.lower_bounds_[0]
    assert np.all(np.isfinite(prediction(model, X)))


@pytest.mark.parametrize("task", TASKS)
def test_converged_fit_does_not_warn(task):
    X, y = make_data(task)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = make_model(task, max_iter=500).fit(X, y)
    assert model.converged_
    assert 0 < model.n_iter_ < 500
    assert len(model.lower_bounds_) == model.n_iter_ + 1


# -- clone and pickle ----------------------------------------------------------


def test_clone_is_unfitted_with_the_same_params(fitted):
    model, X, y = fitted
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "n_iter_")
    assert not hasattr(copy, "gate_coef_")
    copy.fit(X, y)
    assert_array_equal(prediction(copy, X), prediction(model, X))


def test_pickle_round_trip_keeps_every_output(fitted):
    model, X, y = fitted
    restored = pickle.loads(pickle.dumps(model))
    expected = all_outputs(model, X, y)
    for name, value in all_outputs(restored, X, y).items():
        assert_array_equal(value, expected[name], err_msg=name)
    assert restored.bic(X, y) == model.bic(X, y)


# -- pipelines and model selection ---------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_pipeline_with_standard_scaler_matches_the_model_alone(task):
    # The estimators standardise internally, so a scaler in front changes
    # nothing but round-off.
    X, y = make_data(task)
    X = X * [100.0, 0.01] + [5.0, -3.0]
    pipe = make_pipeline(StandardScaler(), make_model(task)).fit(X, y)
    alone = make_model(task).fit(X, y)
    assert_allclose(prediction(pipe, X), prediction(alone, X), rtol=1e-6, atol=1e-9)
    assert_allclose(pipe.score(X, y), alone.score(X, y), rtol=1e-6)


def _piecewise_data(task):
    rng = np.random.RandomState(0)
    if task == "regression":
        X = rng.uniform(-3, 3, size=(150, 1))
        return X, np.abs(X[:, 0]) + 0.1 * rng.normal(size=150)
    X = rng.normal(size=(150, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)  # XOR: one line cannot do it


@ignore_convergence
@pytest.mark.parametrize("task", TASKS)
def test_grid_search_prefers_several_experts_on_piecewise_data(task):
    X, y = _piecewise_data(task)
    search = GridSearchCV(
        make_model(task), param_grid={"n_experts": [1, 2, 3], "depth": [1, 2]}, cv=3
    ).fit(X, y)
    assert set(search.best_params_) == {"n_experts", "depth"}
    assert search.best_params_["n_experts"] > 1
    scores = search.cv_results_["mean_test_score"]
    single = scores[search.cv_results_["param_n_experts"] == 1]
    assert np.all(np.isfinite(scores))
    assert search.best_score_ > single.max() + 0.3
    assert search.best_estimator_.n_leaves_ > 1


# -- sample weights ------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("task", TASKS)
def test_integer_weights_equal_repeated_rows(task, depth):
    X, y = make_data(task, depth=depth)
    weights = np.random.RandomState(1).randint(1, 4, size=X.shape[0])
    weighted = make_model(task, n_experts=2, depth=depth)
    weighted.fit(X, y, sample_weight=weights)
    repeated = make_model(task, n_experts=2, depth=depth)
    repeated.fit(np.repeat(X, weights, axis=0), np.repeat(y, weights))
    assert weighted.n_iter_ == repeated.n_iter_
    assert_allclose(weighted.lower_bound_, repeated.lower_bound_, rtol=1e-6)
    assert_allclose(prediction(weighted, X), prediction(repeated, X), rtol=1e-6)
    assert_allclose(
        weighted.log_likelihood(X, y), repeated.log_likelihood(X, y), rtol=1e-6
    )


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("task", TASKS)
def test_zero_weights_equal_dropped_rows(task, depth):
    X, y = make_data(task, depth=depth)
    keep = np.random.RandomState(2).uniform(size=X.shape[0]) > 0.3
    weighted = make_model(task, n_experts=2, depth=depth)
    weighted.fit(X, y, sample_weight=keep.astype(float))
    dropped = make_model(task, n_experts=2, depth=depth).fit(X[keep], y[keep])
    assert weighted.n_iter_ == dropped.n_iter_
    assert_allclose(weighted.lower_bound_, dropped.lower_bound_, rtol=1e-6)
    assert_allclose(prediction(weighted, X), prediction(dropped, X), rtol=1e-6)


@pytest.mark.parametrize("task", TASKS)
def test_non_uniform_weights_change_the_fit(task):
    X, y = make_data(task)
    weights = np.random.RandomState(1).randint(1, 4, size=X.shape[0])
    weighted = make_model(task).fit(X, y, sample_weight=weights)
    unweighted = make_model(task).fit(X, y)
    assert not np.allclose(prediction(weighted, X), prediction(unweighted, X))


# -- the extra methods ---------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("task", TASKS)
def test_log_likelihood_mean_is_the_lower_bound_without_penalties(task, depth):
    # lower_bound_ = mean(log_likelihood) - penalties / n_samples at the final
    # parameters. With penalties of 1e-8 the coefficients of (nearly)
    # separable regions grow to ~1e3, so the gap stays below 1e-3.
    X, y = make_data(task, depth=depth)
    model = make_model(
        task, n_experts=2, depth=depth, gate_alpha=1e-8, expert_alpha=1e-8
    ).fit(X, y)
    scores = model.log_likelihood(X, y)
    assert scores.shape == (X.shape[0],)
    assert 0 <= scores.mean() - model.lower_bound_ < 1e-3


def test_log_likelihood_mean_exceeds_the_penalised_lower_bound_by_the_penalties(
    fitted,
):
    # lower_bound_ is the mean log-likelihood less the penalties per sample
    # (of the gates, alpha/2 ||w||^2; of linear-Gaussian experts,
    # alpha ||beta||^2 / (2 sigma^2); of softmax experts, alpha/2 ||W||^2)
    model, X, y = fitted
    gap = model.log_likelihood(X, y).mean() - model.lower_bound_
    penalty = model._gates.penalty(np) + model._experts.penalty(np)
    assert gap > 0
    assert gap == pytest.approx(penalty / len(X), rel=1e-8)


def test_predict_gates_are_probabilities_over_leaves(fitted):
    model, X, _ = fitted
    gates = model.predict_gates(X)
    assert gates.shape == (X.shape[0], model.n_leaves_)
    assert np.all(gates >= 0)
    assert_allclose(gates.sum(axis=1), 1.0, rtol=1e-12)


def test_predict_responsibilities_are_probabilities_over_leaves(fitted):
    model, X, y = fitted
    resp = model.predict_responsibilities(X, y)
    assert resp.shape == (X.shape[0], model.n_leaves_)
    assert np.all(resp >= 0)
    assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
    # The posterior uses y: it is not the prior.
    assert not np.allclose(resp, model.predict_gates(X))


def test_apply_is_the_argmax_of_the_gates(fitted):
    model, X, _ = fitted
    leaves = model.apply(X)
    assert leaves.shape == (X.shape[0],)
    assert_array_equal(leaves, np.argmax(model.predict_gates(X), axis=1))
    assert np.unique(leaves).size > 1


def test_bic_exceeds_aic_exactly_when_log_n_exceeds_two(fitted):
    model, X, y = fitted
    bic, aic = model.bic(X, y), model.aic(X, y)
    assert np.isfinite(bic) and np.isfinite(aic)
    assert np.log(X.shape[0]) > 2 and bic > aic
    # Same data, same fit term: the difference is the parameter count times
    # log(n) - 2, which changes sign below n = e^2.
    assert model.bic(X[:5], y[:5]) < model.aic(X[:5], y[:5])
    n_params = (bic - aic) / (np.log(X.shape[0]) - 2)
    assert_allclose(n_params, round(n_params), atol=1e-6)
    assert_allclose(aic, -2 * model.log_likelihood(X, y).sum() + 2 * round(n_params))


def test_predict_return_std_is_non_negative_with_the_same_mean():
    X, y = make_data("regression", depth=2)
    model = make_model("regression", depth=2).fit(X, y)
    mean, std = model.predict(X, return_std=True)
    assert std.shape == (X.shape[0],)
    assert np.all(std >= 0)
    assert_array_equal(mean, model.predict(X))


def test_predict_std_of_a_single_expert_is_its_noise():
    X, y = make_data("regression")
    model = make_model("regression", n_experts=1).fit(X, y)
    _, std = model.predict(X, return_std=True)
    assert_allclose(std, np.sqrt(model.expert_variance_[0]), rtol=1e-10)


def test_predictive_interval_covers_held_out_moe_data():
    X, y, _ = make_moe(2000, 2, n_experts=2, random_state=1)
    model = make_model("regression").fit(X[:1000], y[:1000])
    mean, std = model.predict(X[1000:], return_std=True)
    coverage = np.mean(np.abs(y[1000:] - mean) <= 2 * std)
    assert 0.9 <= coverage <= 0.99


# -- invariance to sample order and batching -----------------------------------


def test_methods_are_invariant_to_sample_order(fitted):
    model, X, y = fitted
    order = np.random.RandomState(0).permutation(X.shape[0])
    expected = all_outputs(model, X, y)
    for name, value in all_outputs(model, X[order], y[order]).items():
        assert_allclose(value, expected[name][order], rtol=1e-12, err_msg=name)


def test_methods_are_invariant_to_predicting_on_subsets(fitted):
    model, X, y = fitted
    expected = all_outputs(model, X, y)
    batches = np.array_split(np.arange(X.shape[0]), 7)
    for name in expected:
        pieces = [all_outputs(model, X[b], y[b])[name] for b in batches]
        assert_allclose(
            np.concatenate(pieces), expected[name], rtol=1e-12, err_msg=name
        )


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("task", TASKS)
def test_fit_is_invariant_to_training_order(task, depth):
    X, y = make_data(task, depth=depth)
    order = np.random.RandomState(0).permutation(X.shape[0])
    first = make_model(task, n_experts=2, depth=depth).fit(X, y)
    second = make_model(task, n_experts=2, depth=depth).fit(X[order], y[order])
    assert first.n_iter_ == second.n_iter_
    assert_allclose(prediction(first, X), prediction(second, X), rtol=1e-6, atol=1e-9)


# -- fitted attributes ---------------------------------------------------------


@pytest.mark.parametrize("n_experts, depth", [(1, 1), (3, 1), (2, 2), (3, 2)])
@pytest.mark.parametrize("task", TASKS)
def test_fitted_attribute_shapes(task, n_experts, depth):
    n_features = 3
    X, y = make_data(task, n_features=n_features)
    model = make_model(task, n_experts=n_experts, depth=depth).fit(X, y)
    n_leaves = n_experts**depth
    assert model.n_leaves_ == n_leaves
    assert model.n_features_in_ == n_features
    assert len(model.gate_coef_) == depth
    assert len(model.gate_intercept_) == depth
    for level in range(depth):
        n_gates = n_experts**level
        assert model.gate_coef_[level].shape == (n_gates, n_features, n_experts)
        assert model.gate_intercept_[level].shape == (n_gates, n_experts)
    if task == "regression":
        assert model.expert_coef_.shape == (n_leaves, n_features)
        assert model.expert_intercept_.shape == (n_leaves,)
        assert model.expert_variance_.shape == (n_leaves,)
        assert np.all(model.expert_variance_ > 0)
    else:
        assert_array_equal(model.classes_, np.arange(N_CLASSES))
        assert model.expert_coef_.shape == (n_leaves, n_features, N_CLASSES)
        assert model.expert_intercept_.shape == (n_leaves, N_CLASSES)
        assert not hasattr(model, "expert_variance_")
    assert not hasattr(model, "feature_names_in_")


def test_string_class_labels():
    X, y = make_data("classification")
    names = np.array(["ant", "bee", "cat"])
    model = make_model("classification").fit(X, names[y])
    coded = make_model("classification").fit(X, y)
    assert_array_equal(model.classes_, names)
    assert_array_equal(model.predict(X), names[coded.predict(X)])
    assert_allclose(model.predict_proba(X), coded.predict_proba(X), rtol=1e-12)
    assert_allclose(
        model.log_likelihood(X, names[y]), coded.log_likelihood(X, y), rtol=1e-12
    )
    assert_allclose(model.log_likelihood(X, list(names[y])), coded.log_likelihood(X, y))
    assert model.score(X, names[y]) == coded.score(X, y)


@pytest.mark.parametrize("task", TASKS)
def test_feature_names_in_with_a_dataframe(task):
    X, y = make_data(task)
    frame = pd.DataFrame(X, columns=["speed", "angle"])
    model = make_model(task).fit(frame, pd.Series(y))
    assert_array_equal(model.feature_names_in_, ["speed", "angle"])
    plain = make_model(task).fit(X, y)
    assert_allclose(prediction(model, frame), prediction(plain, X), rtol=1e-6)
    with pytest.raises(ValueError, match="feature names"):
        model.predict(frame[["angle", "speed"]])


@pytest.mark.parametrize("task", TASKS)
def test_coefficients_are_in_data_units(task):
    X, y = make_data(task)
    model = make_model(task).fit(X, y)
    scaled = make_model(task).fit(1000 * X, y)
    assert_allclose(scaled.expert_coef_, model.expert_coef_ / 1000, rtol=1e-6)
    for level in range(model.depth):
        assert_allclose(
            scaled.gate_coef_[level], model.gate_coef_[level] / 1000, rtol=1e-6
        )
        assert_allclose(
            scaled.gate_intercept_[level],
            model.gate_intercept_[level],
            rtol=1e-6,
            atol=1e-9,
        )
    assert_allclose(
        scaled.expert_intercept_, model.expert_intercept_, rtol=1e-6, atol=1e-9
    )
    assert_allclose(prediction(scaled, 1000 * X), prediction(model, X), rtol=1e-6)


def _leaf_priors_from_attributes(model, X):
    n = X.shape[0]
    log_prior = np.zeros((n, 1))
    for coef, intercept in zip(model.gate_coef_, model.gate_intercept_, strict=True):
        logits = np.einsum("nf,gfk->ngk", X, coef) + intercept
        log_gate = logits - logsumexp(logits, axis=2, keepdims=True)
        # Child c of node v is node v * n_experts + c of the next level.
        log_prior = (log_prior[:, :, None] + log_gate).reshape(n, -1)
    return np.exp(log_prior)


@pytest.mark.parametrize("task", TASKS)
def test_fitted_attributes_reproduce_the_model(task):
    # Inputs far from standard scale: the attributes must already include
    # the standardisation (and, for regression, the target's scaling).
    X, y = make_data(task, depth=2)
    X = X * [30.0, 0.2] + [-4.0, 7.0]
    if task == "regression":
        y = 50 * y + 10
    model = make_model(task, n_experts=2, depth=2).fit(X, y)
    prior = _leaf_priors_from_attributes(model, X)
    assert_allclose(prior, model.predict_gates(X), rtol=1e-8, atol=1e-12)
    if task == "regression":
        means = X @ model.expert_coef_.T + model.expert_intercept_
        assert_allclose((prior * means).sum(axis=1), model.predict(X), rtol=1e-8)
        var = model.expert_variance_
        log_lik = -0.5 * (np.log(2 * np.pi * var) + (y[:, None] - means) ** 2 / var)
    else:
        logits = np.einsum("nf,lfc->nlc", X, model.expert_coef_)
        logits = logits + model.expert_intercept_
        proba = np.exp(logits - logsumexp(logits, axis=2, keepdims=True))
        mixture = (prior[:, :, None] * proba).sum(axis=1)
        assert_allclose(mixture, model.predict_proba(X), rtol=1e-8)
        log_lik = np.log(proba[np.arange(X.shape[0]), :, y])
    assert_allclose(
        logsumexp(np.log(prior) + log_lik, axis=1),
        model.log_likelihood(X, y),
        rtol=1e-8,
        atol=1e-10,
    )


# -- documentation -------------------------------------------------------------


@pytest.mark.parametrize(
    "estimator", [MixtureOfExpertsRegressor, MixtureOfExpertsClassifier]
)
def test_docstring_example_runs(estimator):
    finder = doctest.DocTestFinder(recurse=False)
    tests = finder.find(estimator, estimator.__name__, globs={})
    assert len(tests) == 1 and tests[0].examples
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(tests[0], out=lambda _: None)
    assert runner.summarize(verbose=False).failed == 0


# -- sample and from_parameters ------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_from_parameters_rebuilds_a_fitted_model(task):
    X, y = make_data(task)
    model = make_model(task, n_experts=2, depth=2).fit(X, y)
    extra = (
        {"expert_variance": model.expert_variance_}
        if task == "regression"
        else {"classes": model.classes_}
    )
    rebuilt = type(model).from_parameters(
        model.gate_coef_,
        model.gate_intercept_,
        model.expert_coef_,
        model.expert_intercept_,
        **extra,
    )
    assert (rebuilt.n_experts, rebuilt.depth) == (2, 2)
    assert_allclose(rebuilt.log_likelihood(X, y), model.log_likelihood(X, y))
    assert_allclose(rebuilt.predict_gates(X), model.predict_gates(X), atol=1e-12)


def test_from_parameters_checks_the_shapes():
    with pytest.raises(ValueError, match=r"gate_coef\[1\] has shape \(1, 2, 2\)"):
        MixtureOfExpertsRegressor.from_parameters(
            [np.zeros((1, 2, 2)), np.zeros((1, 2, 2))],
            [np.zeros((1, 2)), np.zeros((1, 2))],
            np.zeros((4, 2)),
            np.zeros(4),
            expert_variance=np.ones(4),
        )
    with pytest.raises(TypeError, match="needs expert_variance"):
        MixtureOfExpertsRegressor.from_parameters(
            [np.zeros((1, 2, 2))], [np.zeros((1, 2))], np.zeros((2, 2)), np.zeros(2)
        )


def test_sample_draws_from_the_mixture():
    # Two experts, y = -x and y = x, the gate sure of x's sign: draws at x
    # have the expert's mean and noise.
    model = MixtureOfExpertsRegressor.from_parameters(
        gate_coef=[np.array([[[-20.0, 20.0]]])],
        gate_intercept=[np.zeros((1, 2))],
        expert_coef=np.array([[-1.0], [1.0]]),
        expert_intercept=np.zeros(2),
        expert_variance=np.full(2, 0.25),
    )
    X = np.repeat([[-2.0], [3.0]], 20000, axis=0)
    y, leaves = model.sample(X, random_state=0, return_leaves=True)
    assert_array_equal(np.unique(leaves[:20000]), [0])
    assert_array_equal(np.unique(leaves[20000:]), [1])
    assert abs(y[:20000].mean() - 2.0) < 0.02 and abs(y[20000:].mean() - 3.0) < 0.02
    assert abs(y[:20000].std() - 0.5) < 0.02
    assert_array_equal(
        model.sample(X[:5], random_state=1), model.sample(X[:5], random_state=1)
    )


def test_classifier_samples_follow_predict_proba():
    X, y = make_data("classification")
    model = make_model("classification", n_experts=2).fit(X, y)
    point = np.repeat(X[:1], 30000, axis=0)
    draws = model.sample(point, random_state=0)
    frequencies = [np.mean(draws == c) for c in model.classes_]
    assert_allclose(frequencies, model.predict_proba(X[:1])[0], atol=0.01)
