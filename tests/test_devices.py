"""The ``device`` parameter: NumPy in, NumPy out, EM elsewhere.

``device="cuda"`` moves NumPy input to the GPU once, runs EM there and hands
NumPy back. Here, without a GPU, ``hmexperts._placement.cuda_namespace`` (which
would return CuPy and the GPU) is replaced by a stand-in: array-api-strict on
its second device, ``device1``, which refuses any operation that mixes
devices. So these tests check the plumbing (every array of EM on the other
device, every result back on the host, equal to NumPy's); ``test_gpu.py``
runs the same comparisons on a real GPU. The errors of a machine without
CuPy or without a GPU are checked for real where they can be (CuPy is not
installed) and with a fake CuPy otherwise.
"""

import pickle
import sys
import types

import array_api_compat
import array_api_compat.numpy
import array_api_strict as xp_strict
import numpy as np
import pytest
import sklearn
from _backends import assert_same, snapshot
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge

from hmexperts import (
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    _em,
    _learners,
    _solvers,
)
from hmexperts._array_api import cuda_namespace
from hmexperts.datasets import make_moe

STAND_IN = xp_strict.Device("device1")

ESTIMATORS = [
    pytest.param(MixtureOfExpertsRegressor, "regression", id="regressor"),
    pytest.param(MixtureOfExpertsClassifier, "classification", id="classifier"),
]


@pytest.fixture
def stand_in_gpu(monkeypatch):
    """``device="cuda"`` runs on array-api-strict's ``device1``."""
    monkeypatch.setattr(
        "hmexperts._placement.cuda_namespace", lambda device: (xp_strict, STAND_IN)
    )


def _data(task, dtype_name="float64"):
    X, y, _ = make_moe(
        200, 2, n_experts=2, depth=2, task=task, n_classes=3, random_state=0
    )
    return X.astype(dtype_name), (y.astype(dtype_name) if task == "regression" else y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_cuda_device_numpy_in_numpy_out(stand_in_gpu, Estimator, task, dtype_name):
    X64, y64 = _data(task)
    X, y = _data(task, dtype_name)
    params = dict(n_experts=2, depth=2, random_state=0, max_iter=30, tol=0)
    reference = snapshot(Estimator(**params).fit(X64, y64), X64, y64)
    model = Estimator(device="cuda", **params).fit(X, y)
    # the fitted state lives on the device ...
    assert all(coef.device == STAND_IN for coef in model._gates.coef)
    assert model._experts.coef.device == STAND_IN
    # ... and everything a user reads is NumPy of the input's dtype
    result = snapshot(model, X, y, convert=lambda a: a)
    for name, (value, _) in result.items():
        assert isinstance(value, np.ndarray), name
        if value.dtype.kind == "f" and "lower_bounds" not in name:
            assert value.dtype == np.dtype(dtype_name), name
    assert_same(result, reference, dtype_name)


@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_cuda_device_model_pickles_and_clones(stand_in_gpu, Estimator, task):
    X, y = _data(task)
    model = Estimator(n_experts=2, device="cuda", random_state=0).fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    assert sklearn.clone(model).get_params()["device"] == "cuda"


def test_cuda_device_learner_experts_cross_once_per_iteration(
    stand_in_gpu, monkeypatch
):
    """Learner experts run on the host. The design matrix and target cross
    once per fit; the responsibilities once per pass; never per expert."""
    X, y = _data("regression")
    copies = []
    to_numpy = _learners.to_numpy

    def counting_to_numpy(array, xp):
        if not isinstance(array, np.ndarray):
            copies.append(array.shape)
        return to_numpy(array, xp)

    monkeypatch.setattr(_learners, "to_numpy", counting_to_numpy)
    params = dict(
        n_experts=2, depth=2, expert=Ridge(), random_state=0, max_iter=8, tol=0
    )
    with pytest.warns(ConvergenceWarning):
        model = MixtureOfExpertsRegressor(device="cuda", **params).fit(X, y)
    n_leaves, n = 4, X.shape[0]
    # one per pass over the data: the first M-step's, then the E-step of
    # every iteration and the last one (learners take no halving passes)
    passes = model.n_iter_ + 2
    responsibilities = [s for s in copies if s == (n_leaves, n)]
    assert len(responsibilities) == passes
    # the rest: the design matrix and the target once, plus the scaling
    assert len(copies) - len(responsibilities) <= 4, str(copies)
    with pytest.warns(ConvergenceWarning):
        reference = MixtureOfExpertsRegressor(**params).fit(X, y)
    np.testing.assert_allclose(model.predict(X), reference.predict(X), rtol=1e-9)


def test_predicting_with_another_library_than_the_fit_is_refused():
    X, y = _data("classification")
    model = MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(X, y)
    with sklearn.config_context(array_api_dispatch=True):
        with pytest.raises(ValueError, match=r"\.predict_proba\(\) got array_api_st"):
            model.predict_proba(xp_strict.asarray(X))
        strict = MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(
            xp_strict.asarray(X), xp_strict.asarray(y)
        )
    with pytest.raises(ValueError, match=r"predict_gates\(\) got numpy arrays on cpu"):
        strict.predict_gates(X)
    with pytest.raises(ValueError, match=r"fit on array_api_strict arrays"):
        strict.log_likelihood(X, y)
    with sklearn.config_context(array_api_dispatch=True):
        device1 = xp_strict.asarray(X, device=STAND_IN)
        with pytest.raises(ValueError, match=r"apply\(\) got .* on .*device1"):
            strict.apply(device1)


def test_warm_start_with_another_library_is_refused():
    X, y = _data("regression")
    model = MixtureOfExpertsRegressor(n_experts=2, warm_start=True, max_iter=5)
    with pytest.warns(ConvergenceWarning):
        model.fit(X, y)
    with sklearn.config_context(array_api_dispatch=True):
        with pytest.raises(ValueError, match=r"fit\(\) got array_api_strict arrays"):
            model.fit(xp_strict.asarray(X), xp_strict.asarray(y))


def _no_cupy():
    """Whether CuPy cannot be imported here."""
    try:
        import cupy  # noqa: F401
    except ImportError:
        return True
    return False


@pytest.mark.skipif(
    not _no_cupy(),
    reason="CuPy is installed here, so the error for its absence cannot occur",
)
def test_cuda_without_cupy_says_how_to_install():
    X, y = _data("regression")
    with pytest.raises(ImportError, match=r'pip install "hmexperts\[gpu\]"'):
        MixtureOfExpertsRegressor(device="cuda").fit(X, y)


def _fake_cupy(monkeypatch, count=None, error=None):
    """A CuPy whose runtime reports ``count`` GPUs or raises ``error``."""

    class CUDARuntimeError(RuntimeError):
        pass

    def get_device_count():
        if error is not None:
            raise CUDARuntimeError(error)
        return count

    runtime = types.SimpleNamespace(
        getDeviceCount=get_device_count, CUDARuntimeError=CUDARuntimeError
    )
    cuda = types.SimpleNamespace(runtime=runtime, Device=lambda index: index)
    monkeypatch.setitem(
        sys.modules, "cupy", types.SimpleNamespace(__version__="99.0", cuda=cuda)
    )


def test_cuda_without_gpu_gives_cudas_reason(monkeypatch):
    _fake_cupy(monkeypatch, error="cudaErrorNoDevice: no CUDA-capable device")
    X, y = _data("regression")
    with pytest.raises(RuntimeError, match=r"found no usable GPU.*cudaErrorNoDevice"):
        MixtureOfExpertsRegressor(device="cuda").fit(X, y)
    _fake_cupy(monkeypatch, count=0)
    with pytest.raises(RuntimeError, match=r"found no usable GPU \(no CUDA device\)"):
        cuda_namespace("cuda")


def test_cuda_index_beyond_the_gpus_found_lists_them(monkeypatch):
    _fake_cupy(monkeypatch, count=2)
    X, y = _data("classification")
    with pytest.raises(ValueError, match=r"'cuda:3' but CuPy found 2 GPU\(s\): "):
        MixtureOfExpertsClassifier(device="cuda:3").fit(X, y)


def test_cuda_namespace_is_cupys_wrapped_namespace(monkeypatch):
    # The first GPU run found every device="cuda" fit failing: CuPy's
    # array-API namespace, a submodule that `import array_api_compat` does
    # not load, had been read as an attribute. A stand-in for it sits in
    # sys.modules only, not as an attribute of the package: reading the
    # attribute fails, importing the submodule finds it.
    _fake_cupy(monkeypatch, count=2)
    wrapped = types.ModuleType("array_api_compat.cupy")
    monkeypatch.setitem(sys.modules, "array_api_compat.cupy", wrapped)
    monkeypatch.delattr(array_api_compat, "cupy", raising=False)
    assert cuda_namespace("cuda:1") == (wrapped, 1)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:", 0, "CPU"])
def test_unknown_device_is_refused(device):
    X, y = _data("regression")
    with pytest.raises(ValueError, match="device="):
        MixtureOfExpertsRegressor(device=device).fit(X, y)


@pytest.mark.parametrize("device", [None, "cpu"])
def test_cpu_devices_fit_on_the_host(device):
    X, y = _data("regression")
    model = MixtureOfExpertsRegressor(n_experts=2, device=device, random_state=0)
    reference = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    np.testing.assert_array_equal(model.fit(X, y).predict(X), reference.predict(X))


# -- chunks on a GPU ---------------------------------------------------------------


def test_gpu_chunks_are_bounded_and_few():
    # a CPU-sized chunk of 16 leaves holds ~7,300 rows: 138 chunks at n=1e6
    assert len(_solvers.row_chunks(10**6, 18)) == 138
    assert len(_solvers.row_chunks(10**6, 18, gpu=True)) == 1
    # the rows' outer products at 32 features: 561 values a row
    chunks = _solvers.row_chunks(10**7, 561, gpu=True)
    assert max(c.stop - c.start for c in chunks) * 561 <= _solvers._GPU_CHUNK_ELEMENTS
    assert sum(c.stop - c.start for c in chunks) == 10**7
    assert [c.start for c in chunks[1:]] == [c.stop for c in chunks[:-1]]


@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_gpu_sized_chunks_give_the_same_fit(Estimator, task, monkeypatch):
    # GPU sizing on the host: the arrays are NumPy, only the chunks change
    X, y, _ = make_moe(
        30_000, 4, n_experts=2, depth=2, task=task, n_classes=3, random_state=0
    )
    params = dict(n_experts=2, depth=2, random_state=0, max_iter=10, tol=0)
    # the first M-step's sample (InMemoryData.subset): 15,000 rows
    monkeypatch.setattr(_em, "_REFINE_ROWS", 20_000)
    with pytest.warns(ConvergenceWarning):
        reference = Estimator(**params).fit(X, y)
    passes = []
    original = _em.InMemoryData.chunks

    def chunks(data):
        passes.append(len(data.slices))
        return original(data)

    monkeypatch.setattr(_em.InMemoryData, "chunks", chunks)
    monkeypatch.setattr(_em, "on_gpu", lambda x: True)
    monkeypatch.setattr(_solvers, "on_gpu", lambda x: True)
    with pytest.warns(ConvergenceWarning):
        model = Estimator(**params).fit(X, y)
    assert passes and set(passes) == {1}  # in memory: at least 2 chunks a pass
    np.testing.assert_allclose(model.lower_bounds_, reference.lower_bounds_, rtol=1e-10)
    method = "predict" if task == "regression" else "predict_proba"
    np.testing.assert_allclose(
        getattr(model, method)(X), getattr(reference, method)(X), rtol=1e-8, atol=1e-10
    )


@pytest.mark.parametrize("Estimator, task", ESTIMATORS)
def test_gpu_sums_run_over_gpu_sized_sub_chunks(Estimator, task, monkeypatch):
    calls = []
    original = _solvers.row_chunks

    def row_chunks(n_rows, width, gpu=False):
        calls.append(gpu)
        return original(n_rows, width, gpu)

    monkeypatch.setattr(_solvers, "row_chunks", row_chunks)
    monkeypatch.setattr(_solvers, "on_gpu", lambda x: True)
    # no outer products kept or shared: every sum makes its own, in sub-chunks
    monkeypatch.setattr(_solvers, "_CACHE_ELEMENTS", 0)
    monkeypatch.setattr(_solvers, "_GPU_CHUNK_ELEMENTS", 2**16)
    X, y, _ = make_moe(5_000, 40, n_experts=2, task=task, n_classes=3)
    with pytest.warns(ConvergenceWarning):
        Estimator(n_experts=2, max_iter=2, random_state=0).fit(X, y)
    # the gates' and the experts' sums: Gram matrices, X^T R y, softmax sums
    assert len(calls) > 10 and all(calls)


def test_gpu_chunks_share_outer_products_up_to_the_gpu_bound(monkeypatch):
    X = np.random.default_rng(0).normal(size=(50, 5))  # 15 products a row
    monkeypatch.setattr(_solvers, "_MAX_CHUNK_ELEMENTS", 100)
    monkeypatch.setattr(_solvers, "_GPU_CHUNK_ELEMENTS", 1000)
    assert _solvers.chunk_outer_products(X, np) is None
    monkeypatch.setattr(_solvers, "on_gpu", lambda x: True)
    outer = _solvers.chunk_outer_products(X, np)
    np.testing.assert_allclose(outer[:, 1], X[:, 0] * X[:, 1])
    monkeypatch.setattr(_solvers, "_GPU_CHUNK_ELEMENTS", 700)
    assert _solvers.chunk_outer_products(X, np) is None


@pytest.mark.parametrize("shape", [(50, 6), (3, 40, 5)])  # shared rows, grouped
def test_gpu_outer_products_by_gathers_equal_the_loops(shape, monkeypatch):
    X = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    loops = _solvers._outer_rows(X, array_api_compat.numpy)
    monkeypatch.setattr(_solvers, "on_gpu", lambda x: True)
    gathers = _solvers._outer_rows(X, array_api_compat.numpy)
    assert gathers.dtype == np.float64
    np.testing.assert_array_equal(gathers, loops)
