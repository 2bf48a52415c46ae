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

import numpy as np

from ._components import add_stats


def is_dask_array(array):
    """Whether ``array`` is a Dask array (without importing Dask)."""
    return type(array).__module__.startswith("dask.array")


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
        ``prepare(X_block, y_block, weight_block, rows)`` -> ``Chunk``: the
        block standardised, with the intercept column, as EM reads it.
    """

    def __init__(self, X, y, sample_weight, prepare):
        dask = _dask()
        check_row_chunks(X)
        row_chunks = X.chunks[0]
        self.n_samples = int(sum(row_chunks))
        self.prepare = prepare
        blocks = X.to_delayed().ravel()
        y_blocks = _aligned_blocks(y, row_chunks, dask)
        w_blocks = _aligned_blocks(sample_weight, row_chunks, dask)
        self.blocks = list(
            zip(blocks, y_blocks, w_blocks, _row_slices(row_chunks), strict=True)
        )

    def map_reduce(self, function):
        """``function(chunk)`` summed over the blocks (``add_stats``), as a
        tree of Dask tasks."""
        dask = _dask()
        parts = [
            dask.delayed(_block_stats)(function, self.prepare, X, y, w, rows, index)
            for index, (X, y, w, rows) in enumerate(self.blocks)
        ]
        while len(parts) > 1:
            pairs = [
                dask.delayed(add_stats)(parts[i], parts[i + 1])
                for i in range(0, len(parts) - 1, 2)
            ]
            parts = pairs + ([parts[-1]] if len(parts) % 2 else [])
        return dask.compute(parts[0])[0]


def _aligned_blocks(array, row_chunks, dask):
    """The blocks of ``array`` (Dask or NumPy) aligned with ``row_chunks``."""
    if is_dask_array(array):
        return list(array.rechunk((row_chunks,)).to_delayed().ravel())
    slices = _row_slices(row_chunks)
    return [array[rows] for rows in slices]


def _block_stats(function, prepare, X, y, weight, rows, index):
    """One block's statistics, on the worker that holds it; a clear error for
    values that are not finite, naming the block."""
    for name, values in (("X", X), ("y", y), ("sample_weight", weight)):
        values = np.asarray(values)
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            raise ValueError(
                f"{name} has NaN or infinite values in block {index} (rows "
                f"{rows.start} to {rows.stop - 1}); remove or impute them."
            )
    return function(prepare(X, y, weight, rows))
