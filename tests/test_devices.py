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

import array_api_strict as xp_strict
import numpy as np
import pytest
import sklearn
from _backends import assert_same, snapshot
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor, _learners
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
