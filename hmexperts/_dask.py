"""EM's passes over Dask arrays: every block where it lies, only sums gathered.

A Dask array chunked by rows is read block by block: each block becomes a
``Chunk`` on the worker that holds it (standardised, with the intercept
column), the components add up its statistics there, and the blocks'
statistics are summed in a tree of tasks, so that only the small sums of one
pass travel. ``DaskData`` offers the ``map_reduce`` of ``InMemoryData``:
the EM loop cannot tell them apart, and with the same starting
responsibilities the two give the same fit, up to the order of the sums.
Whatever scheduler is active runs the passes: Dask's threads by default, a
``distributed.Client`` (a ``LocalCluster`` or a real cluster) when one is
connected.

Dask is an optional dependency (``pip install "hmexperts[dask]"``): this
module imports it only when it is asked for.
"""

import math
from numbers import Real

import array_api_compat.numpy as xp_numpy
import numpy as np

from ._components import Chunk, add_stats
from ._scaling import NEGATIVE_WEIGHTS
from ._solvers import row_chunks
from ._validation import check_real


def is_dask_array(array):
    """Whether ``array`` is a Dask array (without importing Dask)."""
    return type(array).__module__.startswith("dask.array")


def check_not_dask_frame(value, name):
    """Refuse a Dask DataFrame or Series, which NumPy's conversion would
    read whole into memory, saying how to make the Dask array EM reads."""
    module = type(value).__module__
    if module.startswith(("dask.dataframe", "dask_expr")):
        kind = type(value).__name__
        columns = " (select its columns first)" if kind == "DataFrame" else ""
        raise TypeError(
            f"{name} is a Dask {kind}, which would be read whole into memory; "
            f"convert it to a Dask array chunked by rows with "
            f"{name}.to_dask_array(lengths=True){columns}."
        )


def _dask():
    try:
        import dask
        import dask.array
    except ImportError as error:  # pragma: no cover - dask is installed in CI
        raise ImportError(
            'Dask arrays need Dask: install it with `pip install "hmexperts[dask]"`.'
        ) from error
    return dask


def check_row_chunks(X, name="X"):
    """Refuse a Dask array chunked along its columns, or of unknown chunk
    sizes, with what to do instead."""
    if any(math.isnan(size) for size in X.chunks[0]):
        raise ValueError(
            f"{name} is a Dask array of unknown chunk sizes (its rows were "
            f"filtered, for instance); call {name}.compute_chunk_sizes() first."
        )
    if X.ndim == 2 and len(X.chunks[1]) > 1:
        raise ValueError(
            f"{name} is a Dask array chunked along its columns "
            f"({len(X.chunks[1])} column chunks); EM reads whole rows: "
            f"rechunk it by rows only, e.g. {name}.rechunk({{1: -1}})."
        )


def _row_slices(chunks):
    starts = np.concatenate([[0], np.cumsum(chunks)])
    return [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:], strict=True)]


class DaskData:
    """Dask arrays, read by blocks of rows for EM's passes.

    Parameters
    ----------
    X : dask array of shape (n_samples, n_features)
        Inputs, chunked by rows only.
    y : dask array or ndarray of shape (n_samples,)
        Targets (coded as EM needs them), rechunked as ``X``'s rows.
    sample_weight : dask array or ndarray of shape (n_samples,)
    prepare : callable
        ``prepare(X_block, y_block, weight_block, init_block, rows)`` ->
        ``Chunk``: the block standardised, with the intercept column, as EM
        reads it (``ChunkPreparer``).
    width : int
        Elements per row of the E-step's widest temporary: a block is read
        in chunks of rows of that width (``_solvers.row_chunks``), as in
        memory, so that a task's temporaries stay small.
    init : dask array or ndarray of shape (n_samples, n_leaves) or None
        Initial responsibilities given by the user, read with the blocks.
    """

    def __init__(self, X, y, sample_weight, prepare, width, init=None):
        dask = _dask()
        check_row_chunks(X)
        block_rows = X.chunks[0]
        self.n_samples = int(sum(block_rows))
        self.prepare = prepare
        self.width = width
        n_blocks = len(block_rows)
        blocks = X.to_delayed().ravel()
        y_blocks = _aligned_blocks(y, block_rows, dask)
        w_blocks = _aligned_blocks(sample_weight, block_rows, dask)
        init_blocks = _aligned_blocks(init, block_rows, dask)
        self.blocks = list(
            zip(
                blocks,
                y_blocks,
                w_blocks,
                init_blocks or [None] * n_blocks,
                _row_slices(block_rows),
                strict=True,
            )
        )

    def map_reduce(self, function):
        """``function(chunk)`` summed over the blocks (``add_stats``), as a
        tree of Dask tasks."""
        dask = _dask()
        parts = [
            dask.delayed(_block_stats)(
                function, self.prepare, self.width, *block, index
            )
            for index, block in enumerate(self.blocks)
        ]
        while len(parts) > 1:
            pairs = [
                dask.delayed(add_stats)(parts[i], parts[i + 1])
                for i in range(0, len(parts) - 1, 2)
            ]
            parts = pairs + ([parts[-1]] if len(parts) % 2 else [])
        return dask.compute(parts[0])[0]


def _aligned_blocks(array, block_rows, dask):
    """The blocks of ``array`` (Dask or NumPy, 1-D or 2-D) aligned with
    ``block_rows``; the scalar or None ``array`` for every block."""
    if array is None or isinstance(array, Real):
        return [array] * len(block_rows)
    if is_dask_array(array):
        chunks = (block_rows,) + tuple((size,) for size in array.shape[1:])
        return list(array.rechunk(chunks).to_delayed().ravel())
    return [array[rows] for rows in _row_slices(block_rows)]


def _block_stats(function, prepare, width, X, y, weight, init, rows, index):
    """One block's statistics, on the worker that holds it, summed over its
    chunks of rows; a clear error for values that are not finite, naming
    the block."""
    for name, values in (("X", X), ("y", y), ("sample_weight", weight)):
        values = np.asarray(values)
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            raise ValueError(
                f"{name} has NaN or infinite values in block {index} (rows "
                f"{rows.start} to {rows.stop - 1}); remove or impute them."
            )
    block = prepare(X, y, weight, init, rows)
    parts = row_chunks(rows.stop - rows.start, width)
    if len(parts) == 1:
        return function(block)
    total = None
    for part in parts:
        chunk = Chunk(
            block.X[part, :],
            block.y[part],
            block.weight[part],
            slice(rows.start + part.start, rows.start + part.stop),
            None,
            None if block.init is None else block.init[part, :],
            outer_namespace=block.outer_namespace,
        )
        total = add_stats(total, function(chunk))
    return total


class ChunkPreparer:
    """A block of rows as EM reads it: standardised inputs with the
    intercept column, the target standardised (regression) or coded
    (classification), float64 weights (rescaled as the fit rescales them).

    Parameters
    ----------
    scaling : _scaling.Scaling
    dtype_name : {"float64", "float32"}
    weight_factor : float
    classes : ndarray or None
        The classifier's ``classes_``; None for regression.
    check_target : callable or None
        Refuses a block's targets that the experts cannot model.
    """

    def __init__(
        self, scaling, dtype_name, weight_factor, classes=None, check_target=None
    ):
        self.scaling = scaling
        self.dtype_name = dtype_name
        self.weight_factor = weight_factor
        self.classes = classes
        self.check_target = check_target

    def __call__(self, X, y, weight, init, rows):
        xp = xp_numpy
        X = np.asarray(X, dtype=self.dtype_name)
        X = self.scaling.checked_design(X, xp, self.dtype_name)
        if self.classes is None:
            y = np.asarray(y, dtype=self.dtype_name)
            if self.check_target is not None:
                self.check_target(y)
            y = self.scaling.standardise_target(y, xp, self.dtype_name)
        else:
            y = encode_labels(np.asarray(y), self.classes)
        n = X.shape[0]
        if weight is None:
            weight = np.ones(n)
        elif isinstance(weight, Real):
            weight = np.full(n, float(weight))
        weight = np.asarray(weight, dtype=np.float64)
        if np.any(weight < 0):
            raise ValueError(NEGATIVE_WEIGHTS)
        weight = weight * self.weight_factor
        init = None if init is None else np.asarray(init, dtype=np.float64)
        # the outer products, made on first use, shared by the components
        return Chunk(X, y, weight, rows, None, init, outer_namespace=xp)


def encode_labels(y, classes):
    """Class labels as indices into ``classes``; a clear error for labels
    not among them."""
    codes = np.searchsorted(classes, y)
    unknown = (codes >= len(classes)) | (
        classes[np.minimum(codes, len(classes) - 1)] != y
    )
    if np.any(unknown):
        raise ValueError(
            f"y has labels {np.unique(y[unknown])} not in classes_={classes}."
        )
    return codes


class DaskInputs:
    """``fit``'s Dask input, validated as far as it can be without reading
    all of it: shapes and chunks now, values as the passes read them.

    Parameters
    ----------
    X : dask array of shape (n_samples, n_features)
    y : dask array or array-like of shape (n_samples,)
    sample_weight : dask array, array-like, float or None
    """

    def __init__(self, X, y, sample_weight):
        dask = _dask()
        X = dask.array.asarray(X)
        if X.ndim != 2:
            raise ValueError(
                f"Expected a 2D Dask array X, got {X.ndim}D; reshape it to "
                "(n_samples, n_features)."
            )
        check_row_chunks(X)
        if X.dtype.kind not in "fiub":
            raise ValueError(f"X has dtype {X.dtype}; expected numbers.")
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        n = X.shape[0]
        y = y if is_dask_array(y) else np.asarray(y)
        if y.ndim == 2 and y.shape[0] == n:
            raise ValueError(
                f"y has shape {tuple(y.shape)}: multi-output targets are fit in "
                "memory, not from Dask arrays. Fit on NumPy arrays, or one model "
                "per target."
            )
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(
                f"y has shape {tuple(y.shape)}; expected ({n},), one target per "
                "row of X."
            )
        if sample_weight is not None and not isinstance(sample_weight, Real):
            if not is_dask_array(sample_weight):
                sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.shape != (n,):
                raise ValueError(
                    f"sample_weight.shape == {tuple(sample_weight.shape)}, "
                    f"expected ({n},): one weight per sample."
                )
        elif isinstance(sample_weight, Real):
            check_real(
                sample_weight, "sample_weight", min_val=0, include_boundaries="neither"
            )
        self.X, self.y, self.weight = X, y, sample_weight

    def weight_totals(self):
        """The sum of the weights and the number of positive ones (a pass
        over the weights alone)."""
        w, n = self.weight, self.X.shape[0]
        if w is None:
            return float(n), n
        if isinstance(w, Real):
            return float(w) * n, n
        dask = _dask()
        w = dask.array.asarray(w)
        total, positive, smallest = dask.compute(w.sum(), (w > 0).sum(), w.min())
        if smallest < 0:
            raise ValueError(NEGATIVE_WEIGHTS)
        return float(total), int(positive)

    def sample(self, rows):
        """The rows ``rows`` (a slice) of ``X``, ``y`` and the weights, as
        NumPy."""
        dask = _dask()
        X, y = self.X[rows], self.y[rows]
        w = self.weight
        n = len(range(*rows.indices(self.X.shape[0])))
        if w is None or isinstance(w, Real):
            w = np.full(n, 1.0 if w is None else float(w))
        else:
            w = w[rows]
        X, y, w = (np.asarray(a) for a in dask.compute(X, y, w))
        starts = np.cumsum((0,) + self.X.chunks[0])
        for name, values in (("X", X), ("y", y), ("sample_weight", w)):
            if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
                bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)))
                row = rows.start + rows.step * int(bad[0] // max(values[0].size, 1))
                block = int(np.searchsorted(starts, row, side="right") - 1)
                raise ValueError(
                    f"{name} has NaN or infinite values in block {block} (rows "
                    f"{starts[block]} to {starts[block + 1] - 1}); remove or "
                    "impute them."
                )
        return X, y, w.astype(np.float64)

    def classes(self):
        """The sorted distinct labels of ``y``."""
        dask = _dask()
        labels = dask.array.unique(dask.array.asarray(self.y))
        return np.asarray(dask.compute(labels)[0])


def map_rows(function, X, y=None, n_columns=None, dtype=np.float64):
    """``function(X_block[, y_block])`` block by block, lazily: a Dask array
    of one row per row of ``X``, with ``n_columns`` columns (None: 1-D)."""
    dask = _dask()
    check_row_chunks(X)
    if y is not None:
        y = dask.array.asarray(y).rechunk((X.chunks[0],))[:, None]

        def apply(X_block, y_block):
            return function(X_block, y_block[:, 0])

        arrays = (X, y)
    else:
        apply, arrays = function, (X,)
    if n_columns is None:
        return dask.array.map_blocks(apply, *arrays, drop_axis=1, dtype=dtype)
    chunks = (X.chunks[0], (n_columns,))
    return dask.array.map_blocks(apply, *arrays, chunks=chunks, dtype=dtype)
