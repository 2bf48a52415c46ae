"""Test configuration: array-API dispatch for SciPy, and the printed seed.

``SCIPY_ARRAY_API`` must be set before SciPy is first imported for
scikit-learn's array-API code paths (and its estimator check of array-API
input) to run.
"""

import os

os.environ.setdefault("SCIPY_ARRAY_API", "1")
