"""Parameter checks: scikit-learn's ``check_scalar``, made strict.

``check_scalar`` lets ``nan`` and ``inf`` through a ``Real`` check (every
comparison with ``nan`` is False) and ``True`` through an ``Integral`` one
(``bool`` is an ``int``); a mixture then fails deep inside EM, or runs with
a meaningless setting. These refuse both, with the parameter's name.
"""

import math
from numbers import Integral, Real

import numpy as np
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


def resolve_features(selection, n_features, feature_names, name):
    """The columns of ``X`` that ``selection`` names, as sorted indices.

    Parameters
    ----------
    selection : None, array-like of int, bool or str
        ``None``: every column (returned as None); ``[]``: none (the
        intercept only); integer indices; a boolean mask of length
        ``n_features``; or column names, when ``X`` had them at fit.
    n_features : int
    feature_names : ndarray of str or None
        ``feature_names_in_``.
    name : str
        The parameter, for the errors.

    Returns
    -------
    columns : list of int or None
    """
    if selection is None:
        return None
    if isinstance(selection, str | int | np.integer):
        selection = [selection]
    values = list(np.asarray(selection, dtype=object).ravel()) if len(selection) else []
    if all(isinstance(v, bool | np.bool_) for v in values) and values:
        if len(values) != n_features:
            raise ValueError(
                f"{name} is a boolean mask of length {len(values)}, but X has "
                f"{n_features} features; give one entry per column."
            )
        return [i for i, keep in enumerate(values) if keep]
    columns = []
    for value in values:
        if isinstance(value, str):
            if feature_names is None:
                raise ValueError(
                    f"{name} names the column {value!r}, but X has no column "
                    "names; fit on a DataFrame, or give integer indices."
                )
            where = np.flatnonzero(np.asarray(feature_names) == value)
            if len(where) == 0:
                raise ValueError(
                    f"{name} names the column {value!r}, which X does not have; "
                    f"its columns are {list(feature_names)}."
                )
            columns.append(int(where[0]))
        elif isinstance(value, Integral) and not isinstance(value, bool | np.bool_):
            index = int(value)
            if not -n_features <= index < n_features:
                raise ValueError(
                    f"{name} has the column index {index}, but X has "
                    f"{n_features} features (indices 0 to {n_features - 1})."
                )
            columns.append(index % n_features)
        else:
            raise ValueError(
                f"{name} must hold column indices, column names or a boolean "
                f"mask; got {value!r}."
            )
    if len(set(columns)) != len(columns):
        raise ValueError(f"{name} names a column more than once: {list(selection)}.")
    return sorted(columns)
