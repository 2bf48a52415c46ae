"""The GPU backend on a real GPU: CuPy (``device="cuda"`` and CuPy arrays)
and PyTorch CUDA tensors.

The comparisons are those of the CPU tests (``test_array_api.py``,
``test_devices.py``): every fitted attribute and every output equals NumPy's
float64 fit at the dtype's tolerance and comes back in the input's library.
Where there is no GPU, every test here is skipped and pytest (``-ra``)
prints why; none passes without running.
"""

import numpy as np
import pytest
import sklearn
from _backends import assert_same, host, outputs, snapshot
from sklearn.linear_model import Ridge

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor, _solvers
from hmexperts.datasets import make_moe


def _cupy_gpu():
    """(CuPy, None) when CuPy sees a GPU, else (None, why not)."""
    try:
        import cupy
    except ImportError:
        return None, 'CuPy is not installed (pip install "hmexperts[gpu]")'
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        return None, f"CuPy finds no GPU: {exc}"
    return (cupy, None) if count else (None, "CuPy finds no GPU")


def _torch_gpu():
    """(torch, None) when PyTorch has CUDA, else (None, why not)."""
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed"
    if not torch.cuda.is_available():
        return None, f"PyTorch {torch.__version__} has no CUDA device"
    return torch, None


cupy, NO_CUPY = _cupy_gpu()
torch, NO_TORCH_CUDA = _torch_gpu()
needs_cupy = pytest.mark.skipif(cupy is None, reason=f"no GPU for CuPy: {NO_CUPY}")
needs_torch_cuda = pytest.mark.skipif(
    torch is None, reason=f"no GPU for PyTorch: {NO_TORCH_CUDA}"
)
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

ESTIMATORS = [
    pytest.param(MixtureOfExpertsRegressor, "regression", id="regressor"),
    pytest.param(MixtureOfExpertsClassifier, "classification", id="classifier"),
]
PARAMS = dict(n_experts=2, depth=2, random_state=0, max_iter=30, tol=0)
# float32 on the GPU sums in another order than NumPy: on an H200 (CuPy 14,
# PyTorch 2.11) the classifier's gate intercept ended 4.0e-5 (relative) from
# the float64 fit after 30 iterations, past the CPU tests' 1e-5
GPU_TOLERANCE = {"float64": 1e-7, "float32": 1e-4}


def _data(task, dtype_name="float64", n=400):
    X, y, _ = make_moe(
        n, 3, n_experts=2, depth=2, task=task, n_classes=3, random_state=0
    )
    return X.astype(dtype_name), (y.astype(dtype_name) if task == "regression" else y)


def _reference(Estimator, task, **params):
    X, y = _data(task)
    return snapshot(Estimator(**{**PARAMS, **params}).fit(X, y), X, y)


@needs_cupy
@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_cuda_device_numpy_in_numpy_out(Estimator, task, dtype_name):
    X, y = _data(task, dtype_name)
    model = Estimator(device="cuda", **PARAMS).fit(X, y)
    assert isinstance(model._gates.coef[0], cupy.ndarray)
    result = snapshot(model, X, y, convert=lambda a: a)
    for name, (value, _) in result.items():
        assert isinstance(value, np.ndarray), name
    assert_same(result, _reference(Estimator, task), dtype_name, GPU_TOLERANCE)


@needs_cupy
@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_cupy_arrays_under_array_api_dispatch(Estimator, task, dtype_name):
    X, y = _data(task, dtype_name)
    with sklearn.config_context(array_api_dispatch=True):
        X_gpu, y_gpu = cupy.asarray(X), cupy.asarray(y)
        model = Estimator(**PARAMS).fit(X_gpu, y_gpu)
        result = snapshot(model, X_gpu, y_gpu)
    for name, (_, output) in result.items():
        assert output is None or isinstance(output, cupy.ndarray), name
    assert_same(result, _reference(Estimator, task), dtype_name, GPU_TOLERANCE)


@needs_torch_cuda
@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_torch_cuda_under_array_api_dispatch(Estimator, task, dtype_name):
    X, y = _data(task, dtype_name)
    with sklearn.config_context(array_api_dispatch=True):
        X_gpu = torch.asarray(X, device="cuda")
        y_gpu = torch.asarray(y, device="cuda")
        model = Estimator(**PARAMS).fit(X_gpu, y_gpu)
        result = snapshot(model, X_gpu, y_gpu)
    for name, (_, output) in result.items():
        assert output is None or output.device.type == "cuda", name
    assert_same(result, _reference(Estimator, task), dtype_name, GPU_TOLERANCE)


@needs_cupy
@pytest.mark.parametrize(
    "params",
    [
        {"algorithm": "hard", "pooling": "max", "capacity_factor": 1.0},
        {"top_k": 2, "load_balance": 1.0},
    ],
)
@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_sparse_routing_on_the_gpu(Estimator, task, params):
    X, y = _data(task)
    reference = Estimator(**PARAMS, **params).fit(X, y)
    model = Estimator(device="cuda", **PARAMS, **params).fit(X, y)
    assert model.lower_bound_ == pytest.approx(reference.lower_bound_, rel=1e-7)
    np.testing.assert_array_equal(
        model.routing_stats(X).load, reference.routing_stats(X).load
    )


@needs_cupy
def test_learner_experts_with_gates_on_the_gpu():
    X, y = _data("regression")
    params = dict(expert=Ridge(), max_iter=10)
    model = MixtureOfExpertsRegressor(device="cuda", **PARAMS | params).fit(X, y)
    reference = MixtureOfExpertsRegressor(**PARAMS | params).fit(X, y)
    np.testing.assert_allclose(model.predict(X), reference.predict(X), rtol=1e-7)


@needs_cupy
def test_many_samples_many_leaves_float32(monkeypatch):
    """A chunked fit agrees with NumPy: GPU chunks lowered to 2**20
    elements, 58,254 rows of 16 leaves' 18 values, 4 chunks."""
    monkeypatch.setattr(_solvers, "_GPU_CHUNK_ELEMENTS", 2**20)
    X, y, _ = make_moe(200_000, 8, n_experts=4, depth=2, random_state=0)
    X, y = X.astype(np.float32), y.astype(np.float32)
    params = dict(n_experts=4, depth=2, random_state=0, max_iter=5, tol=0)
    model = MixtureOfExpertsRegressor(device="cuda", **params).fit(X, y)
    reference = MixtureOfExpertsRegressor(**params).fit(X, y)
    np.testing.assert_allclose(
        model.lower_bounds_, reference.lower_bounds_, rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        host(model.predict(X[:1000])), reference.predict(X[:1000]), atol=1e-3
    )


@needs_cupy
@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_grown_trees_on_the_gpu(Estimator, task):
    X, y = _data(task)
    params = dict(tree="grow", max_leaves=4, random_state=0)
    model = Estimator(device="cuda", **params).fit(X, y)
    reference = Estimator(**params).fit(X, y)
    assert [s.split for s in model.growth_history_] == [
        s.split for s in reference.growth_history_
    ]
    np.testing.assert_allclose(
        outputs(model, task, X), outputs(reference, task, X), rtol=1e-6, atol=1e-9
    )


@needs_cupy
@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_partial_fit_on_the_gpu(Estimator, task):
    X, y = _data(task)
    model = Estimator(n_experts=2, random_state=0, device="cuda")
    reference = Estimator(n_experts=2, random_state=0)
    kwargs = {} if task == "regression" else {"classes": [0, 1, 2]}
    for rows in (slice(0, 200), slice(200, 400)):
        model.partial_fit(X[rows], y[rows], **kwargs)
        reference.partial_fit(X[rows], y[rows], **kwargs)
        kwargs = {}
    np.testing.assert_allclose(
        outputs(model, task, X), outputs(reference, task, X), rtol=1e-6, atol=1e-9
    )


@needs_cupy
@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_summary_on_the_gpu(Estimator, task):
    X, y = _data(task)
    params = dict(n_experts=2, random_state=0, max_iter=30)
    table = Estimator(device="cuda", **params).fit(X, y).summary(X, y)
    reference = Estimator(**params).fit(X, y).summary(X, y)
    columns = ["estimate", "std_error", "ci_low", "ci_high"]
    np.testing.assert_allclose(
        table[columns].to_numpy(), reference[columns].to_numpy(), rtol=1e-6, atol=1e-9
    )


@needs_cupy
def test_plots_and_diagnostics_of_a_model_fit_on_cupy_arrays():
    """NumPy refuses to convert CuPy arrays implicitly: the plots and the
    diagnostics take them from the host explicitly, and evaluate their
    grids on the GPU."""
    pytest.importorskip("matplotlib", reason="matplotlib draws the plots")
    from hmexperts.diagnostics import specialisation_matrix
    from hmexperts.plotting import plot_expert_boundaries, plot_gate_regions

    X, y = _data("classification")
    reference = MixtureOfExpertsClassifier(**PARAMS).fit(X, y)
    with sklearn.config_context(array_api_dispatch=True):
        X_gpu, y_gpu = cupy.asarray(X), cupy.asarray(y)
        model = MixtureOfExpertsClassifier(**PARAMS).fit(X_gpu, y_gpu)
        regions = plot_gate_regions(model, X_gpu, y_gpu, features=(0, 1), resolution=40)
        plot_expert_boundaries(model, X_gpu, y_gpu, features=(0, 1), resolution=40)
        matrix, _ = specialisation_matrix(model, X_gpu, y_gpu)
    expected = plot_gate_regions(reference, X, y, features=(0, 1), resolution=40)
    np.testing.assert_allclose(
        regions.images[0].get_array(), expected.images[0].get_array(), atol=1e-6
    )
    expected_matrix, _ = specialisation_matrix(reference, X, y)
    np.testing.assert_allclose(matrix, expected_matrix, atol=1e-6)
