"""The numeric core and the estimators under other array libraries.

``array-api-strict`` implements nothing beyond the array API standard, so a
run through it shows that the EM loop, the gate tree, the expert banks and
the solvers use only the standard. PyTorch (its CPU build) is a real second
library with its own kernels. Every fitted attribute and every output must
equal NumPy's at dtype-aware tolerances, and come back in the input's
library and dtype. The GPU runs of the same comparisons are in
``test_gpu.py``.
"""

import array_api_compat
import array_api_compat.numpy as xp_numpy
import array_api_strict as xp_strict
import numpy as np
import pytest
import sklearn
from _backends import TOLERANCE, assert_same, host, outputs, snapshot
from sklearn.linear_model import Ridge
from sklearn.tree import DecisionTreeClassifier

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor, _em
from hmexperts._array_api import add_intercept
from hmexperts._em import InMemoryData, run_em
from hmexperts._experts import LinearGaussianExperts, SoftmaxExperts
from hmexperts._gates import GateTree
from hmexperts.datasets import make_moe

try:
    import torch
except ImportError:  # torch is not a test dependency: .ci/run installs it
    torch = None

NAMESPACES = [
    pytest.param("array_api_strict", id="array_api_strict"),
    pytest.param(
        "torch",
        id="torch",
        marks=pytest.mark.skipif(
            torch is None,
            reason="PyTorch is not installed; .ci/run installs its CPU build "
            "with `pip install torch==2.13.0`, which runs these tests",
        ),
    ),
]


def _namespace(name):
    """The array namespace of library ``name``, and a converter from NumPy."""
    if name == "torch":
        return array_api_compat.array_namespace(torch.zeros(1)), torch.asarray
    return xp_strict, xp_strict.asarray


def _run_core(xp, dtype_name, task):
    """Fit a depth-2 HME with the core alone, on namespace ``xp``."""
    X, y, _ = make_moe(
        300,
        2,
        n_experts=2,
        depth=2,
        task=task,
        n_classes=3,
        coef_scale=2.0,
        random_state=0,
    )
    rng = np.random.RandomState(0)
    resp = rng.dirichlet(np.ones(4), size=300).T
    dtype = getattr(xp, dtype_name)
    X = add_intercept(xp.asarray(X, dtype=dtype), xp)
    resp = xp.asarray(resp, dtype=dtype)
    weight = xp.ones((300,), dtype=dtype)
    gates = GateTree.balanced(2, 2, alpha=0.1)
    if task == "regression":
        y = xp.asarray(y, dtype=dtype)
        experts = LinearGaussianExperts(4, alpha=0.1, min_variance=1e-3)
    else:
        y = xp.asarray(y)
        experts = SoftmaxExperts(4, 3, alpha=0.1)
    gates.init_params(3, X, xp)
    experts.init_params(3, X, xp)
    data = InMemoryData(X, y, weight, xp, width=4 * 3 + 2)
    monitor = run_em(
        data,
        gates,
        experts,
        resp_init=lambda chunk, xp: resp[:, chunk.rows],
        max_iter=15,
        tol=0,
        xp=xp,
    )
    params = [*gates.coef, experts.coef] + (
        [experts.variance] if task == "regression" else []
    )
    return monitor.history, [host(p) for p in params]


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
@pytest.mark.parametrize("task", ["regression", "classification"])
def test_core_matches_numpy(namespace, task, dtype_name):
    """The core on another library, in float64 or float32, follows NumPy's
    float64 EM path to the dtype's tolerance; its parameters are float64
    whatever the data's dtype."""
    history_np, params_np = _run_core(xp_numpy, "float64", task)
    history, params = _run_core(_namespace(namespace)[0], dtype_name, task)
    tol = TOLERANCE[dtype_name]
    np.testing.assert_allclose(history, history_np, rtol=tol, atol=tol)
    for param, numpy_ in zip(params, params_np, strict=True):
        assert param.dtype == np.float64
        scale = max(1.0, float(np.max(np.abs(numpy_))))
        np.testing.assert_allclose(param, numpy_, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_float32_and_float64_agree(task):
    # float32 data differ from float64 data by their rounding (1e-7 relative)
    # and the responsibilities are stored in float32; every sum and every
    # parameter is float64 (measured: 2e-7 apart in history and parameters).
    history32, params32 = _run_core(xp_numpy, "float32", task)
    history64, params64 = _run_core(xp_numpy, "float64", task)
    np.testing.assert_allclose(history32, history64, rtol=1e-6, atol=1e-6)
    for p32, p64 in zip(params32, params64, strict=True):
        np.testing.assert_allclose(p32, p64, rtol=1e-5, atol=1e-5)


def _data(task, dtype_name, n=200):
    X, y, _ = make_moe(
        n, 2, n_experts=2, depth=2, task=task, n_classes=3, random_state=0
    )
    X = X.astype(dtype_name)
    return X, (y.astype(dtype_name) if task == "regression" else y)


def _check_outputs(result, namespace, dtype_name):
    """Outputs come back as arrays of the input's library and dtype."""
    array_type = type(_namespace(namespace)[1](np.zeros(1)))
    for name, (value, output) in result.items():
        if output is None:  # lower_bounds_ and routing_stats_: Python / NumPy
            continue
        assert isinstance(output, array_type), name
        if name not in ("apply", "predict") or value.dtype.kind == "f":
            assert value.dtype == np.dtype(dtype_name), name


ESTIMATORS = [
    pytest.param(MixtureOfExpertsRegressor, "regression", id="regressor"),
    pytest.param(MixtureOfExpertsClassifier, "classification", id="classifier"),
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tol=0
@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_estimators_match_numpy(Estimator, task, dtype_name, namespace):
    """Every fitted attribute and output of a fit under
    ``array_api_dispatch`` equals NumPy's, in the input's library and dtype."""
    X64, y64 = _data(task, "float64")
    X, y = _data(task, dtype_name)
    params = dict(n_experts=2, depth=2, random_state=0, max_iter=30, tol=0)
    reference = snapshot(Estimator(**params).fit(X64, y64), X64, y64)
    _, asarray = _namespace(namespace)
    X_xp, y_xp = asarray(X), asarray(y)
    with sklearn.config_context(array_api_dispatch=True):
        model = Estimator(**params).fit(X_xp, y_xp)
        result = snapshot(model, X_xp, y_xp)
    assert_same(result, reference, dtype_name)
    _check_outputs(result, namespace, dtype_name)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tol=0
@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_a_sampled_first_m_step_matches_numpy(Estimator, task, namespace, monkeypatch):
    """The first M-step's refinement on a strided sample of the rows, their
    weights scaled (``_em._refine_sample``), as NumPy's."""
    monkeypatch.setattr(_em, "_REFINE_ROWS", 64)
    X, y = _data(task, "float64")
    weight = np.linspace(0.5, 2.0, len(y))
    params = dict(n_experts=2, depth=2, random_state=0, max_iter=5, tol=0)
    reference = snapshot(Estimator(**params).fit(X, y, sample_weight=weight), X, y)
    _, asarray = _namespace(namespace)
    X_xp, y_xp = asarray(X), asarray(y)
    with sklearn.config_context(array_api_dispatch=True):
        model = Estimator(**params).fit(X_xp, y_xp, sample_weight=asarray(weight))
        result = snapshot(model, X_xp, y_xp)
    assert_same(result, reference, "float64")


@pytest.mark.filterwarnings("ignore:.*found no expert with room:UserWarning")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize(
    "params",
    [
        {"algorithm": "hard", "pooling": "max", "capacity_factor": 1.0},
        {"top_k": 2, "gate_noise": 0.5, "capacity_factor": 0.3, "priority": "order"},
        {"algorithm": "stochastic", "load_balance": 1.0, "top_k": 1},
    ],
)
@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_sparse_routing_matches_numpy(Estimator, task, params, namespace):
    """Truncated, hard and stochastic EM, grouped gate fits, the load-balanced
    M-step and capacity routing match NumPy on other libraries."""
    X, y = _data(task, "float64")
    params = dict(n_experts=2, depth=2, random_state=0, max_iter=15, **params)
    reference = Estimator(**params).fit(X, y)
    _, asarray = _namespace(namespace)
    with sklearn.config_context(array_api_dispatch=True):
        model = Estimator(**params).fit(asarray(X), asarray(y))
        if task == "regression":
            output, expected = model.predict(asarray(X)), reference.predict(X)
        else:
            output = model.predict_proba(asarray(X))
            expected = reference.predict_proba(X)
        stats = model.routing_stats(asarray(X))
    tol = TOLERANCE["float64"]
    np.testing.assert_allclose(host(output), expected, rtol=tol, atol=tol)
    np.testing.assert_array_equal(stats.load, reference.routing_stats(X).load)
    assert model.lower_bound_ == pytest.approx(reference.lower_bound_, rel=tol)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tol=0
@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize(
    "Estimator, task, learner",
    [
        # a tree's split inside a gap of the data ties up to round-off, so
        # the regression learner is a smooth one
        (MixtureOfExpertsRegressor, "regression", Ridge(alpha=1.0)),
        (
            MixtureOfExpertsClassifier,
            "classification",
            DecisionTreeClassifier(max_depth=2),
        ),
    ],
)
def test_learner_experts_match_numpy(Estimator, task, learner, namespace):
    """Learners run on the host; gates and results stay in the input's library."""
    X, y = _data(task, "float64")
    params = dict(
        n_experts=2, depth=2, expert=learner, random_state=0, max_iter=10, tol=0
    )
    reference = snapshot(Estimator(**params).fit(X, y), X, y)
    _, asarray = _namespace(namespace)
    with sklearn.config_context(array_api_dispatch=True):
        model = Estimator(**params).fit(asarray(X), asarray(y))
        result = snapshot(model, asarray(X), asarray(y))
    assert_same(result, reference, "float64")
    _check_outputs(result, namespace, "float64")


def _family_data(expert):
    """Targets an expert family can model, from the regression inputs."""
    X, y = _data("regression", "float64")
    rng = np.random.RandomState(0)
    kwargs = {}
    if expert == "poisson":
        y = rng.poisson(np.exp(0.5 * y / np.std(y))).astype(float)
    elif expert == "gamma":
        y = rng.gamma(4.0, np.exp(0.5 * y / np.std(y)) / 4.0)
    elif expert == "binomial":
        trials = rng.randint(1, 20, size=len(y)).astype(float)
        p = 1 / (1 + np.exp(-y / np.std(y)))
        y = rng.binomial(trials.astype(int), p) / trials
        kwargs["sample_weight"] = trials
    elif expert == "multi-output":
        y = np.column_stack([y, 0.5 * y + rng.normal(size=len(y))])
    return X, y, kwargs


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tol=0
@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize(
    "expert", ["poisson", "gamma", "binomial", "student_t", "multi-output"]
)
def test_expert_families_match_numpy(expert, namespace):
    """The GLM, Student-t and multi-output banks, with concomitant columns,
    use only the standard: attributes and outputs equal NumPy's."""
    X, y, kwargs = _family_data(expert)
    params = dict(n_experts=2, random_state=0, max_iter=15, tol=0, gate_features=[0])
    if expert == "multi-output":
        params["covariance_type"] = "full"
    else:
        params.update(expert=expert, expert_features=[1])
    weight = kwargs.get("sample_weight")
    reference = snapshot(
        MixtureOfExpertsRegressor(**params).fit(X, y, **kwargs),
        X,
        y,
        sample_weight=weight,
    )
    _, asarray = _namespace(namespace)
    xp_kwargs = {name: asarray(value) for name, value in kwargs.items()}
    with sklearn.config_context(array_api_dispatch=True):
        model = MixtureOfExpertsRegressor(**params).fit(
            asarray(X), asarray(y), **xp_kwargs
        )
        result = snapshot(
            model, asarray(X), asarray(y), sample_weight=xp_kwargs.get("sample_weight")
        )
    assert_same(result, reference, "float64")
    _check_outputs(result, namespace, "float64")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_grown_trees_match_numpy(Estimator, task, namespace):
    """Growth (trial splits, grafts, restructuring) uses only the standard:
    the same steps, tree and predictions as NumPy's."""
    X, y = _data(task, "float64", n=400)
    params = dict(tree="grow", max_leaves=4, random_state=0)
    reference = Estimator(**params).fit(X, y)
    _, asarray = _namespace(namespace)
    with sklearn.config_context(array_api_dispatch=True):
        model = Estimator(**params).fit(asarray(X), asarray(y))
        output = outputs(model, task, asarray(X))

    def steps(m):
        return [(s.n_leaves, s.split, s.merged) for s in m.growth_history_]

    assert steps(model) == steps(reference)
    assert model.n_leaves_ == reference.n_leaves_ > 1
    np.testing.assert_allclose(
        [s.score for s in model.growth_history_],
        [s.score for s in reference.growth_history_],
        rtol=1e-9,
    )
    tol = TOLERANCE["float64"]
    np.testing.assert_allclose(output, outputs(reference, task, X), rtol=tol, atol=tol)


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_partial_fit_matches_numpy(Estimator, task, namespace):
    """Mini-batches of another library (a classifier's labels coded on the
    input's device) update the model as NumPy's do."""
    X, y = _data(task, "float64", n=400)
    kwargs = {} if task == "regression" else {"classes": [0, 1, 2]}
    reference = Estimator(n_experts=2, random_state=0)
    model = Estimator(n_experts=2, random_state=0)
    _, asarray = _namespace(namespace)
    with sklearn.config_context(array_api_dispatch=True):
        for rows in (slice(0, 200), slice(200, 400)):
            reference.partial_fit(X[rows], y[rows], **kwargs)
            model.partial_fit(asarray(X[rows, ...]), asarray(y[rows]), **kwargs)
            kwargs = {}
        output = outputs(model, task, asarray(X))
    tol = TOLERANCE["float64"]
    np.testing.assert_allclose(output, outputs(reference, task, X), rtol=tol, atol=tol)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("method", ["wald", "bootstrap"])
@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_summary_matches_numpy(Estimator, task, method, namespace):
    """Standard errors of a model fit and summarised in another library
    equal NumPy's: Wald's from the observed information, and the
    bootstrap's, whose refits start from the responsibilities of that
    library (``init_params``)."""
    X, y = _data(task, "float64")
    params = dict(n_experts=2, random_state=0, max_iter=30)
    kwargs = dict(method=method)
    if method == "bootstrap":
        kwargs.update(n_boot=4, random_state=0)
    reference = Estimator(**params).fit(X, y).summary(X, y, **kwargs)
    _, asarray = _namespace(namespace)
    with sklearn.config_context(array_api_dispatch=True):
        model = Estimator(**params).fit(asarray(X), asarray(y))
        table = model.summary(asarray(X), asarray(y), **kwargs)
    columns = ["estimate", "std_error", "ci_low", "ci_high"]
    np.testing.assert_allclose(
        table[columns].to_numpy(), reference[columns].to_numpy(), rtol=1e-6, atol=1e-9
    )


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_string_labels_with_another_librarys_X_say_what_to_pass(namespace):
    X, y = _data("classification", "float64")
    labels = np.array(["a", "b", "c"])[y]
    _, asarray = _namespace(namespace)
    model = MixtureOfExpertsClassifier(n_experts=2, random_state=0)
    with sklearn.config_context(array_api_dispatch=True):
        with pytest.raises(ValueError, match=r"dtype <U1.*LabelEncoder"):
            model.fit(asarray(X), labels)
        with pytest.raises(ValueError, match=r"dtype <U1.*LabelEncoder"):
            model.partial_fit(asarray(X), labels, classes=["a", "b", "c"])
