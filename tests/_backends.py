"""What the backend tests compare: every fitted attribute and every output.

``snapshot(model, X, y)`` gathers, as NumPy arrays, everything a user can
read off a fitted mixture (its attributes, and every prediction method on
``X``); ``assert_same(a, b, dtype)`` compares two snapshots at dtype-aware
tolerances. The CPU tests (``test_array_api.py``) and the GPU tests
(``test_gpu.py``) share them.
"""

import numpy as np
from array_api_compat import array_namespace

from hmexperts._array_api import to_numpy

# EM from the same start on another library follows the same path; round-off
# (another BLAS, another order of sums) is all that differs. A float32 run is
# compared with NumPy's float64 run, relative to each array's scale: its
# parameters and sums are float64, and only the rounding of the data and of
# the stored responsibilities differ (measured: 2e-7 of the scale on the
# core's parameters, on NumPy, array-api-strict and PyTorch alike).
TOLERANCE = {"float64": 1e-7, "float32": 1e-5}

_ATTRIBUTES = (
    "expert_coef_",
    "expert_intercept_",
    "expert_variance_",
    "expert_dispersion_",
    "expert_df_",
    "expert_covariance_",
)


def host(array):
    """Any array (NumPy, CuPy, PyTorch, array-api-strict) as NumPy."""
    return to_numpy(array, array_namespace(array))


def outputs(model, task, X):
    """``predict`` (regression) or ``predict_proba`` (classification) of
    ``model`` on ``X``, as NumPy."""
    output = model.predict(X) if task == "regression" else model.predict_proba(X)
    return host(output)


def snapshot(model, X, y, convert=host, sample_weight=None):
    """Fitted attributes and outputs of ``model`` on ``(X, y)``, as NumPy.

    ``X`` and ``y`` are in the namespace the model takes; ``convert`` turns
    the model's outputs into NumPy (the default accepts every library);
    ``sample_weight``: the trials of binomial experts.
    Returns a dict name -> (array, output) where ``output`` is the object the
    model returned, to check its type and dtype.
    """
    out = {}
    for d, (coef, intercept) in enumerate(
        zip(model.gate_coef_, model.gate_intercept_, strict=True)
    ):
        out[f"gate_coef_[{d}]"] = coef
        out[f"gate_intercept_[{d}]"] = intercept
    for name in _ATTRIBUTES:
        if hasattr(model, name):
            out[name] = getattr(model, name)
    out["predict_gates"] = model.predict_gates(X)
    out["apply"] = model.apply(X)
    out["log_likelihood"] = model.log_likelihood(X, y, sample_weight)
    out["predict_responsibilities"] = model.predict_responsibilities(
        X, y, sample_weight
    )
    out["predict"] = model.predict(X)
    if hasattr(model, "predict_proba"):
        out["predict_proba"] = model.predict_proba(X)
        out["predict_log_proba"] = model.predict_log_proba(X)
    else:
        out["predict_std"] = model.predict(X, return_std=True)[1]
    arrays = {name: (convert(value), value) for name, value in out.items()}
    arrays["lower_bounds_"] = (np.asarray(model.lower_bounds_), None)
    arrays["routing_stats_.load"] = (model.routing_stats_.load, None)
    return arrays


def assert_same(result, reference, dtype_name, tolerance=TOLERANCE):
    """Every entry of snapshot ``result`` equals ``reference`` (a float64 fit)
    to the tolerance of ``result``'s dtype (``tolerance[dtype_name]``)."""
    assert result.keys() == reference.keys()
    tol = tolerance[dtype_name]
    for name, (value, _) in result.items():
        expected = reference[name][0]
        assert value.shape == expected.shape, name
        if name == "apply":
            # in float32 round-off may break a near-tie of two priors
            allowed = 0 if dtype_name == "float64" else 0.01
            assert np.mean(value != expected) <= allowed, name
            continue
        scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
        np.testing.assert_allclose(
            value, expected, rtol=tol, atol=tol * scale, err_msg=f"{name} differs"
        )
