"""Sphinx configuration of the hmexperts documentation."""

import importlib.util
import os
import socket
import sys

sys.path.insert(0, os.path.abspath(".."))

from threadpoolctl import threadpool_limits  # noqa: E402

import hmexperts  # noqa: E402

# The gallery's examples run in this process: one BLAS and OpenMP thread, as
# the benchmarks pin them, so that a shared machine's other jobs do not make
# the threads spin (measured: a 188 x 188 Cholesky took 74 ms on 2 busy
# threads against 1 ms on one, and an example 78 s against 14 s).
threadpool_limits(1)

project = "hmexperts"
copyright = "hmexperts developers"
author = "hmexperts developers"
version = release = hmexperts.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    # MathJax from the installed package (the docs extra), not from a CDN:
    # sets mathjax_path and copies MathJax into _static/mathjax.
    "sphinx-mathjax-offline",
    "sphinx_gallery.gen_gallery",
]

# _templates/autosummary: an estimator's page lists every public method,
# inherited ones included, and every API page ends with the gallery
# examples that use the object.
templates_path = ["_templates"]
html_static_path = ["_static"]
html_css_files = ["hmexperts.css"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

autosummary_generate = True
autodoc_default_options = {"members": True}
# "On this page" lists the methods as "fit", not "MixtureOfExpertsRegressor.fit".
toc_object_entries_show_parents = "hide"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "scipy": ("https://docs.scipy.org/doc/scipy/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
}


def _online(host="docs.python.org", port=443, timeout=3.0):
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


# Offline (HMEXPERTS_DOCS_OFFLINE=1, or no network), skip intersphinx: an
# unreachable inventory is a warning that -W turns into an error, and the
# references into other projects (including those in the docstrings
# inherited from scikit-learn) cannot resolve, so those warnings are muted.
if os.environ.get("HMEXPERTS_DOCS_OFFLINE") or not _online():
    print("hmexperts docs: offline build, intersphinx disabled")
    intersphinx_mapping = {}
    suppress_warnings = ["ref.ref", "ref.term"]

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "doc_module": ("hmexperts",),
    "backreferences_dir": "gen_modules/backreferences",
}

if importlib.util.find_spec("pydata_sphinx_theme") is not None:
    html_theme = "pydata_sphinx_theme"
else:
    html_theme = "alabaster"
html_title = f"hmexperts {release}"
