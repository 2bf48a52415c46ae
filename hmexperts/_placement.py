"""Device placement: where a fitted model computes, and where its results go.

A fit takes its input from one array library on one device (NumPy on the
host; under ``array_api_dispatch``, CuPy, PyTorch, ...) and runs EM there,
or on the GPU for NumPy input and ``device="cuda"``. ``Placement`` records
that choice as fitted state: later input must come from the fit's library
and device, it is moved to where EM ran, and results come back in the
input's library and floating dtype. The functions validate ``device``,
choose the placement of a fit and move arrays between libraries.
"""

from dataclasses import dataclass, field, replace

import numpy as np
from array_api_compat import array_namespace, is_array_api_obj

from ._array_api import cuda_namespace, device, namespace_name, on_gpu, to_numpy


def host(a):
    """An array of any array library as NumPy; anything else as it is."""
    if is_array_api_obj(a) and not isinstance(a, np.ndarray):
        return to_numpy(a, array_namespace(a))
    return a


def to_namespace(a, xp, dev):
    """Array ``a`` (of any library) in namespace ``xp`` on device ``dev``."""
    if array_namespace(a) is xp and device(a) == dev:
        return a
    return xp.asarray(host(a), device=dev)


def target_to_namespace(y, xp, dev):
    """A validated target ``y`` in namespace ``xp`` on device ``dev``; labels
    that the library cannot hold (strings, objects), with an array of it as
    ``X``, raise a ``ValueError`` that says what to pass instead."""
    kind = getattr(getattr(y, "dtype", None), "kind", None)
    if kind in ("U", "S", "O") and namespace_name(xp) != "numpy":
        raise ValueError(
            f"y holds labels of dtype {y.dtype}, which {namespace_name(xp)} arrays "
            "cannot hold, and X is such an array (under sklearn.config_context("
            "array_api_dispatch=True) the fit runs in X's library). Encode the "
            "labels as integers (sklearn.preprocessing.LabelEncoder) in an array "
            "of X's library, or fit on NumPy arrays."
        )
    return to_namespace(y, xp, dev)


def _dtype_name(dtype, xp):
    """``"float32"`` or ``"float64"``: the name of a validated input's dtype."""
    return "float32" if dtype == xp.float32 else "float64"


def _device_name(X, xp):
    """The device of input ``X`` of namespace ``xp``, as a string."""
    return "cpu" if namespace_name(xp) == "numpy" else str(device(X))


@dataclass(frozen=True, eq=False)
class Placement:
    """Where a fitted model computes, and in what its results come back.

    Attributes
    ----------
    fit_input : tuple of str
        The array library and device of the fit's input, which prediction
        must match.
    host_output : bool
        Whether results go back to NumPy (EM ran on the GPU for NumPy input).
    dtype_name : {"float64", "float32"}
        The input's floating dtype, that of every float attribute and output.
    anchor : array of shape (0,)
        An empty array of the namespace EM ran in, on its device: it names
        both, and pickles with the model as a namespace would not.
    """

    fit_input: tuple = ("numpy", "cpu")
    host_output: bool = False
    dtype_name: str = "float64"
    anchor: object = field(default_factory=lambda: np.empty(0))

    @property
    def xp(self):
        """The namespace EM ran in, that of the fitted state."""
        return array_namespace(self.anchor)

    def check_input(self, X, xp_in, owner, method):
        """Refuse input from another array library or device than ``fit``'s;
        ``owner.method()`` names the caller."""
        seen = (namespace_name(xp_in), _device_name(X, xp_in))
        if seen != self.fit_input:
            raise ValueError(
                f"{owner}.{method}() got {seen[0]} arrays on {seen[1]}, but the model "
                f"was fit on {self.fit_input[0]} arrays on {self.fit_input[1]}: "
                "inputs must use the same namespace and device as the fit. "
                f"Call {method} with arrays of the library and device of the fit "
                "(under the same sklearn.config_context(array_api_dispatch=...)), "
                "or refit on these."
            )

    def to_compute(self, array):
        """An array of the fit's input library where EM ran: moved there for
        a model that took NumPy and ran EM on the GPU, else as it is."""
        if not self.host_output:
            return array
        return self.xp.asarray(array, device=device(self.anchor))

    def output(self, array, xp):
        """A result of the compute namespace ``xp`` in the input's namespace
        and floating dtype: NumPy for a model that took NumPy and ran EM on
        the GPU."""
        if xp.isdtype(array.dtype, "real floating"):
            array = xp.astype(array, getattr(xp, self.dtype_name), copy=False)
        return to_numpy(array, xp) if self.host_output else array

    def warm_started(self, X, xp_in):
        """This placement for a warm-started fit on validated ``X``, whose
        dtype may differ from the last fit's."""
        return replace(self, dtype_name=_dtype_name(X.dtype, xp_in))


def check_device(setting):
    """Validate ``device``; for a GPU, CuPy's namespace and the device.

    Returns
    -------
    gpu : tuple or None
        ``(xp, device)`` where ``device`` is ``"cuda"`` or ``"cuda:N"``
        (``cuda_namespace`` raises a clear error without CuPy or a GPU);
        None for None and ``"cpu"``.
    """
    if setting is None or setting == "cpu":
        return None
    if not isinstance(setting, str):
        raise ValueError(
            f"device={setting!r}; expected None, 'cpu', 'cuda' or 'cuda:N'."
        )
    return cuda_namespace(setting)


def fit_placement(X, xp_in, gpu, setting):
    """The placement of a fit on validated input ``X`` of namespace ``xp_in``,
    given ``device=setting`` and ``gpu = check_device(setting)``: EM runs
    where ``X`` is, unless NumPy input goes to the GPU."""
    if gpu is None:
        if setting == "cpu" and on_gpu(X):
            raise ValueError(
                f"device='cpu' but X is a {namespace_name(xp_in)} array on "
                f"{device(X)}. Pass host (NumPy) arrays, or device=None to fit "
                "where the data lie."
            )
        xp, dev = xp_in, device(X)
    elif namespace_name(xp_in) == "numpy":
        xp, dev = gpu
    elif on_gpu(X):  # already on a GPU: EM runs there
        xp, dev = xp_in, device(X)
    else:
        raise ValueError(
            f"device={setting!r} moves NumPy input to the GPU, but X is a "
            f"{namespace_name(xp_in)} array on {device(X)}. Pass NumPy arrays or "
            "arrays already on a GPU, or use device=None to fit where the data lie."
        )
    return Placement(
        fit_input=(namespace_name(xp_in), _device_name(X, xp_in)),
        host_output=xp is not xp_in,
        dtype_name=_dtype_name(X.dtype, xp_in),
        anchor=xp.asarray([], device=dev),
    )
