"""Parameter checks: scikit-learn's ``check_scalar``, made strict.

``check_scalar`` lets ``nan`` and ``inf`` through a ``Real`` check (every
comparison with ``nan`` is False) and ``True`` through an ``Integral`` one
(``bool`` is an ``int``); a mixture then fails deep inside EM, or runs with
a meaningless setting. These refuse both, with the parameter's name.
"""

import math
from numbers import Integral, Real

from sklearn.utils import check_scalar


def check_int(value, name, **bounds):
    """``check_scalar(value, name, Integral, **bounds)``, refusing booleans."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not a bool; got {name}={value}.")
    return check_scalar(value, name, Integral, **bounds)


def check_real(value, name, **bounds):
    """``check_scalar(value, name, Real, **bounds)``, refusing ``nan``,
    ``inf`` and booleans."""
    if isinstance(value, bool):
        raise TypeError(
            f"{name} must be a real number, not a bool; got {name}={value}."
        )
    check_scalar(value, name, Real, **bounds)
    if not math.isfinite(value):
        raise ValueError(f"{name}={value}; it must be a finite number.")
    return value
