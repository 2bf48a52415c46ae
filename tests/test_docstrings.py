"""Every public name has a valid numpydoc docstring with an example that runs.

Validation follows scikit-learn's own docstring test: ``RT02`` (a named single
return value, scikit-learn's convention), ``SA01`` (See Also) and ``ES01``
(extended summary) are not required. Methods inherited from scikit-learn
(``score``, ``get_params``, ...) are scikit-learn's to document.
"""

import doctest
import importlib
import inspect

import numpydoc.validate
import pytest

import hmexperts

IGNORED = {"RT02", "SA01", "ES01"}
MODULES = [
    "hmexperts._base",
    "hmexperts._regression",
    "hmexperts._classification",
    "hmexperts._grow",
    "hmexperts.datasets",
    "hmexperts.diagnostics",
    "hmexperts.plotting",
    "hmexperts.metrics",
]
# Modules whose every name in ``__all__`` is public.
FUNCTION_MODULES = [
    "hmexperts.datasets",
    "hmexperts.diagnostics",
    "hmexperts.plotting",
    "hmexperts.metrics",
]


def _public_names():
    names = [
        f"{module}.{name}"
        for module in FUNCTION_MODULES
        for name in importlib.import_module(module).__all__
    ]
    for class_name in hmexperts.__all__:
        if class_name.startswith("__"):
            continue
        cls = getattr(hmexperts, class_name)
        names.append(f"hmexperts.{class_name}")
        for name, member in inspect.getmembers(cls, callable):
            module = getattr(member, "__module__", None) or ""
            defined_here = module.startswith("hmexperts")
            if not name.startswith("_") and defined_here:
                names.append(f"hmexperts.{class_name}.{name}")
    return names


@pytest.mark.parametrize("name", _public_names())
def test_numpydoc(name):
    errors = [
        f"{code}: {message}"
        for code, message in numpydoc.validate.validate(name)["errors"]
        if code not in IGNORED
    ]
    assert not errors, "\n".join(errors)


def test_public_names_are_found():
    names = _public_names()
    for expected in (
        "predict_gates",
        "log_likelihood",
        "predict_proba",
        "bic",
        "routing_stats",
        "make_vowels",
        "dispatch_entropy",
        "plot_tree",
        "log_likelihood_scorer",
    ):
        assert any(name.endswith(f".{expected}") for name in names), expected


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module_name} has no examples"
    assert result.failed == 0
