"""Array-namespace helpers: picking ``xp``, log-space reductions, transfers.

Everything below the estimators is written against an array namespace ``xp``
that follows the Python array API standard (through ``array-api-compat``), so
the same code runs on NumPy, CuPy, PyTorch and ``array-api-strict``. These
helpers are the few operations the standard leaves out.

Precision: the data and the design matrix keep the input's dtype (float32
or float64), while every parameter, every sum over samples (Gram matrices,
gradients, Hessians, the objective) and every per-sample quantity computed
from the parameters (logits, residuals, log-densities, the responsibilities
of a chunk of rows) is float64: a chunk is widened with ``wide`` where it
meets the parameters. float32 input then halves the memory of the largest
arrays and fits as reliably as float64.
"""

import array_api_compat
import array_api_compat.numpy
import numpy as np
import sklearn


def get_namespace(*arrays):
    """Return the array namespace to compute with.

    scikit-learn's convention: the input's own namespace when
    ``sklearn.config_context(array_api_dispatch=True)`` is active, otherwise
    NumPy (wrapped by ``array-api-compat``).
    """
    if sklearn.get_config()["array_api_dispatch"]:
        arrays = [a for a in arrays if a is not None]
        return array_api_compat.array_namespace(*arrays)
    return array_api_compat.numpy


def namespace_name(xp):
    """The array library behind namespace ``xp``: ``"numpy"``, ``"torch"``, ..."""
    return xp.__name__.removeprefix("array_api_compat.")


def _cuda_index(device):
    """The GPU index of ``"cuda"`` (0) or ``"cuda:N"`` (N); ValueError otherwise."""
    if device == "cuda":
        return 0
    prefix, _, index = device.partition(":")
    if prefix == "cuda" and index.isdigit():
        return int(index)
    raise ValueError(
        f"device={device!r}; expected None, 'cpu', 'cuda' or 'cuda:N' with N the "
        "index of a GPU."
    )


def cuda_namespace(device):
    """CuPy's namespace and the GPU named by ``device`` (``"cuda"`` or ``"cuda:N"``).

    Raises
    ------
    ImportError
        CuPy is not installed: the message says how to install it.
    RuntimeError
        CuPy finds no usable GPU: the message gives CUDA's reason.
    ValueError
        ``"cuda:N"`` names a GPU that does not exist: the message lists those
        found.
    """
    index = _cuda_index(device)
    try:
        import cupy
    except ImportError as exc:
        raise ImportError(
            f"device={device!r} runs EM on the GPU through CuPy, which is not "
            'installed. Install it with `pip install "hmexperts[gpu]"` (CuPy '
            "for CUDA 12; https://docs.cupy.dev/en/stable/install.html lists the "
            "packages for other CUDA versions), or use device='cpu'."
        ) from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        reason = "no CUDA device"
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        count, reason = 0, str(exc)
    if count == 0:
        raise RuntimeError(
            f"device={device!r} but CuPy {cupy.__version__} found no usable GPU "
            f"({reason}). Check the NVIDIA driver with `nvidia-smi`, or use "
            "device='cpu'."
        )
    if index >= count:
        raise ValueError(
            f"device={device!r} but CuPy found {count} GPU(s): "
            f"{', '.join(f'cuda:{i}' for i in range(count))}."
        )
    # the wrapped namespace is a submodule that ``import array_api_compat``
    # does not load; array_namespace(cupy_array) loads it, device="cuda" must
    from array_api_compat import cupy as cupy_xp

    return cupy_xp, cupy.cuda.Device(index)


def on_gpu(x):
    """Whether array ``x`` lives on a GPU (CuPy, or a CUDA PyTorch tensor)."""
    if array_api_compat.is_cupy_array(x):
        return True
    return array_api_compat.is_torch_array(x) and x.device.type != "cpu"


def is_numpy_namespace(xp):
    """Whether ``xp`` is NumPy (bare or wrapped)."""
    return xp.__name__ in {"numpy", "array_api_compat.numpy"}


def device(x):
    """The device of array ``x``."""
    return array_api_compat.device(x)


def to_numpy(x, xp):
    """Copy array ``x`` of namespace ``xp`` to a NumPy array on the host
    (``x`` itself if it is one already)."""
    if isinstance(x, np.ndarray) or is_numpy_namespace(xp):
        return np.asarray(x)
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    return np.from_dlpack(xp.asarray(x, copy=True))


def wide(x, xp):
    """``x`` in float64, the precision of the parameters and of every sum
    over samples (``x`` itself if it is float64 already)."""
    return x if x.dtype == xp.float64 else xp.astype(x, xp.float64)


def logsumexp(a, axis, xp):
    """``log(sum(exp(a), axis))`` without overflow; ``-inf`` rows stay ``-inf``."""
    a_max = xp.max(a, axis=axis, keepdims=True)
    if not bool(xp.all(xp.isfinite(a_max))):  # a slice of -inf (or inf)
        a_max = xp.where(xp.isfinite(a_max), a_max, xp.zeros_like(a_max))
    out = xp.log(xp.sum(xp.exp(a - a_max), axis=axis, keepdims=True)) + a_max
    return xp.squeeze(out, axis=axis)


def log_softmax(a, axis, xp):
    """``a - logsumexp(a)`` along ``axis``: log-probabilities from logits."""
    return a - xp.expand_dims(logsumexp(a, axis, xp), axis=axis)


def softmax(a, axis, xp):
    """``exp(a) / sum(exp(a))`` along ``axis``, for finite logits ``a``."""
    e = xp.exp(a - xp.max(a, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def add_intercept(X, xp):
    """Append a column of ones: ``[X, 1]`` of shape (n_samples, n_features + 1)."""
    ones = xp.ones((X.shape[0], 1), dtype=X.dtype, device=device(X))
    return xp.concat([X, ones], axis=1)


def eye_like(n, X, xp):
    """Identity of size ``n`` with the dtype and device of ``X``."""
    return xp.eye(n, dtype=X.dtype, device=device(X))
