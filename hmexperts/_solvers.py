"""Batched weighted solvers shared by the gates and the built-in experts.

Two problems, each for a whole batch of independent models at once, and
each split into the sums over samples that one chunk of rows contributes
and the solve that reads only those sums (so that chunks can be summed in
memory, on a GPU or on a cluster's workers alike):

- weighted ridge least squares (linear-Gaussian experts): ``gram_sums`` and
  ``weighted_sums`` of a chunk, then one batched solve of
  ``(X^T diag(r_l) X + lambda_l I) beta_l = X^T diag(r_l) y`` for every leaf
  ``l`` (``ridge_solve``);
- weighted multinomial logistic regression with soft targets (every gate of
  a tree level, and the softmax experts): ``softmax_sums`` of a chunk (the
  objective, its gradient and its curvature at the current coefficients),
  then a Newton direction (``newton_direction``).

No temporary grows with ``n_samples * n_models * n_params**2``: within a
chunk, sums run over sub-chunks that stay in the CPU's cache. Every chunk is
widened to float64 before it meets the parameters, so that sums, Hessians
and objectives are float64 whatever the data's dtype (see ``_array_api``).

Neither solve can fail: a ridge below ``_RIDGE_FLOOR`` times the scale of
the system is raised to it (for the experts' least squares by a proximal
step from the current coefficients, which keeps the M-step monotone; for the
softmax models only the Newton direction is damped, and the step halving
keeps it an ascent), and a system that is still singular is solved by a
pseudo-inverse, with a ``LinAlgWarning``.

Layout: samples run along the last axis of every per-sample array (weights of
shape (n_models, n_samples), logits of shape (n_classes, n_models,
n_samples)), so that reductions over models and classes are elementwise
operations over contiguous slabs, the fast case for every array library.

Grouped inputs: when each model of a softmax batch sees only some of the
samples (the gates of a deep level under hard or truncated EM), ``X`` may
instead be of shape (n_models, n_rows, n_params), every model's own rows
gathered into one batch (``group_rows``), with targets of shape
(n_classes, n_models, n_rows); rows that pad a short group carry zero
targets. The work then scales with the rows each model sees, not with
``n_models * n_samples``.
"""

import functools
import warnings

import numpy as np
from scipy.linalg import LinAlgWarning

from ._array_api import device, eye_like, is_numpy_namespace, on_gpu, wide

# Elements of the widest per-sample temporary of a chunk of rows: 1 MiB in
# float64, so that a chunk's temporaries stay in the CPU's cache (measured:
# a Newton direction at n=1e5 with 6 parameters takes half the time of one
# unchunked pass). A chunk keeps at least _MIN_CHUNK_ROWS rows, so that wide
# temporaries (many models, many features) still give the matrix products a
# long inner dimension (measured: 20% less time per EM iteration than 512
# rows at 32 features), unless that would exceed _MAX_CHUNK_ELEMENTS
# (float64: 128 MiB).
_CHUNK_ELEMENTS = 2**17
_MIN_CHUNK_ROWS = 2048
_MAX_CHUNK_ELEMENTS = 2**24
# On a GPU no cache sets a chunk's size: every array operation costs its
# launch and Python (tens of microseconds) whatever its size, and CPU-sized
# chunks left an H200 waiting on those, 7-13 ms a chunk per pass and 0.1% of
# its matrix-multiply rate (benchmarks/results/gpu_nvidia_h200.txt). There a
# chunk's widest temporary holds up to _GPU_CHUNK_ELEMENTS elements (float64:
# 256 MiB), and so do the chunk's shared outer products: memory stays
# bounded, and a pass launches its operations once per 2**25 elements.
_GPU_CHUNK_ELEMENTS = 2**25
# Largest row-wise outer-product matrix (n_samples x n_params**2) kept for a
# whole fit (float64: 128 MiB); above it, outer products are made per chunk.
_CACHE_ELEMENTS = 2**24
# Smallest ridge of any solve, relative to the system's scale (its mean
# diagonal, or one sample's weight if that is larger): its condition number
# stays below 1e10, so float64 solves keep at least 6 digits.
_RIDGE_FLOOR = 1e-10


@functools.lru_cache(maxsize=64)
def _triangle(p):
    """Pairs ``(i, j)``, ``i <= j``, of a symmetric ``p x p`` matrix, and the
    position of every entry ``(i, j)`` of the full matrix in that list
    (made once per ``p``, as every Newton step asks, and shared: never
    written to)."""
    rows, cols = np.triu_indices(p)
    position = np.empty((p, p), dtype=np.int64)
    position[rows, cols] = position[cols, rows] = np.arange(len(rows))
    return rows, cols, position


def _on(index, X, xp):
    """A host index array as an array of ``xp`` on ``X``'s device."""
    return xp.asarray(index, device=device(X))


def row_chunks(n_rows, width, gpu=False):
    """Slices of rows covering ``n_rows``, each with about ``_CHUNK_ELEMENTS``
    elements in a temporary of ``width`` per row (see ``_MIN_CHUNK_ROWS``);
    on a GPU (``gpu``), up to ``_GPU_CHUNK_ELEMENTS``."""
    width = max(width, 1)
    if gpu:
        step = max(_GPU_CHUNK_ELEMENTS // width, 1)
    else:
        step = max(
            _CHUNK_ELEMENTS // width,
            min(_MIN_CHUNK_ROWS, _MAX_CHUNK_ELEMENTS // width),
            1,
        )
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def _outer_rows(X, xp):
    """Row-wise outer products ``x_i x_i^T`` in float64, their upper triangle
    only (the products are symmetric): shape (..., n, P * (P + 1) / 2).

    They are made in the transposed layout (..., P * (P + 1) / 2, n), row
    ``(i, j >= i)`` of it the product of rows ``i`` and ``j`` of ``X^T``,
    long contiguous vectors, and returned as its transposed view, which
    matrix products read as it is (measured: 2-5x faster than gathering
    the columns of every pair and multiplying those; NumPy writes the
    products in place, 1.3-2.2x faster again).

    On a GPU, where every operation costs a launch whatever its size, the
    loop's ``4 P`` slices, products and stores were most of an iteration's
    operations, made in every sub-chunk by every component: there the
    products are two gathers of the pairs' columns and one product, five
    operations (``benchmarks/count_array_ops.py``, at n = 1e6, 32 features
    and 16 leaves in one chunk a pass: 1,769 operations an EM iteration
    instead of 8,633).
    """
    X = wide(X, xp)
    *lead, n, p = X.shape
    if on_gpu(X):
        first, second, _ = _triangle(p)
        return xp.take(X, _on(first, X, xp), axis=-1) * xp.take(
            X, _on(second, X, xp), axis=-1
        )
    # a contiguous X^T: reshaping the transposed view copies it
    Xt = xp.reshape(xp.reshape(xp.matrix_transpose(X), (-1,)), (*lead, p, n))
    out = xp.empty((*lead, p * (p + 1) // 2, n), dtype=xp.float64, device=device(X))
    start = 0
    for i in range(p):
        rows = slice(start, start + p - i)
        if is_numpy_namespace(xp):
            np.multiply(Xt[..., i : i + 1, :], Xt[..., i:, :], out=out[..., rows, :])
        else:
            out[..., rows, :] = Xt[..., i : i + 1, :] * Xt[..., i:, :]
        start += p - i
    return xp.matrix_transpose(out)


def _symmetric(packed, p, xp):
    """Symmetric matrices from their packed upper triangles: (..., T) to
    (..., p, p)."""
    _, _, position = _triangle(p)
    full = xp.take(packed, _on(position.reshape(-1), packed, xp), axis=-1)
    return xp.reshape(full, (*packed.shape[:-1], p, p))


def outer_products(X, xp):
    """Row-wise outer products of ``X`` to keep for a whole fit, or None.

    ``X`` is the same in every EM iteration, so its outer products, which
    every Gram matrix and every Newton step needs, are made once when they
    fit in ``_CACHE_ELEMENTS``; otherwise each chunk makes its own.

    Returns
    -------
    outer : array of shape (n_samples, n_params * (n_params + 1) / 2) or None
        The upper triangles of the outer products.
    """
    n, p = X.shape
    return _outer_rows(X, xp) if n * p * (p + 1) // 2 <= _CACHE_ELEMENTS else None


def chunk_outer_products(X, xp):
    """Row-wise outer products of one chunk's rows, for all its components
    to share, or None where they would be larger than the largest per-chunk
    temporary, ``_MAX_CHUNK_ELEMENTS`` (float64: 128 MiB; on a GPU
    ``_GPU_CHUNK_ELEMENTS``); the components then make their own, in
    sub-chunks.

    ``row_chunks`` sizes a chunk by its widest E-step temporary, not by
    these: at ``P`` columns they are ``P * (P + 1) / 2`` per row. Under
    the bound they take at most that much memory, beside the same size
    already allowed for a chunk's temporaries.

    Returns
    -------
    outer : array of shape (n_rows, n_params * (n_params + 1) / 2) or None
    """
    n, p = X.shape
    limit = _GPU_CHUNK_ELEMENTS if on_gpu(X) else _MAX_CHUNK_ELEMENTS
    return _outer_rows(X, xp) if n * p * (p + 1) // 2 <= limit else None


def _outer_chunk(X, outer, rows, xp):
    if outer is not None:
        return outer[..., rows, :]
    return _outer_rows(X[..., rows, :], xp)


def group_rows(X, node_mass, xp, outer=None, max_fraction=0.5):
    """Gather every model's rows (those with positive mass) into one batch.

    Parameters
    ----------
    X : array of shape (n_samples, n_params)
    node_mass : array of shape (n_models, n_samples)
    outer : array of shape (n_samples, n_params * (n_params + 1) / 2) or None
    max_fraction : float
        Group only if the padded batch has at most this fraction of the
        ``n_models * n_samples`` rows of the dense layout.

    Returns
    -------
    grouped : tuple or None
        ``(take, X_grouped, outer_grouped)``: ``take(a)`` gathers an array
        whose last axis runs over (n_models, n_samples) into (n_models,
        n_rows); ``X_grouped`` of shape (n_models, n_rows, n_params);
        ``outer_grouped`` of shape (n_models, n_rows, n_params * (n_params
        + 1) / 2) or None. None when grouping would not pay.
    """
    n_models, n = node_mass.shape
    if n_models == 1:
        return None
    active = node_mass > 0
    n_rows = int(xp.max(xp.sum(xp.astype(active, xp.int64), axis=1)))
    if n_rows * n_models > max_fraction * n_models * n:
        return None
    n_rows = max(n_rows, 1)
    # active rows first, in sample order; the padding rows have zero mass
    rows = xp.argsort(xp.astype(~active, xp.int8), axis=1, stable=True)[:, :n_rows]
    flat_rows = xp.reshape(rows, (-1,))
    offsets = xp.arange(n_models, device=device(X))[:, None] * n
    flat_cells = xp.reshape(rows + offsets, (-1,))
    p = X.shape[1]

    def take(a):
        lead = a.shape[:-2]
        flat = xp.reshape(a, (*lead, n_models * n))
        return xp.reshape(xp.take(flat, flat_cells, axis=-1), (*lead, n_models, n_rows))

    X_grouped = xp.reshape(xp.take(X, flat_rows, axis=0), (n_models, n_rows, p))
    outer_grouped = None
    if outer is not None:
        outer_grouped = xp.reshape(
            xp.take(outer, flat_rows, axis=0), (n_models, n_rows, outer.shape[1])
        )
    return take, X_grouped, outer_grouped


def gram_sums(X, weights, xp, outer=None):
    """Weighted Gram matrices ``sum_i weights[m, i] x_i x_i^T`` of one chunk,
    their upper triangles packed: shape (n_models, n_params * (n_params + 1)
    / 2), float64 (``symmetric`` unpacks them).

    ``outer``: the chunk's rows' outer products, if kept (``outer_products``).
    """
    n, p = X.shape
    if outer is not None:
        return wide(weights, xp) @ outer
    width = p * (p + 1) // 2
    gram = xp.zeros((weights.shape[0], width), dtype=xp.float64, device=device(X))
    for rows in row_chunks(n, width, on_gpu(X)):
        gram = gram + wide(weights[:, rows], xp) @ _outer_rows(X[rows, :], xp)
    return gram


def symmetric(packed, p, xp):
    """Symmetric (n_models, p, p) matrices from packed upper triangles."""
    return _symmetric(packed, p, xp)


def weighted_sums(X, y, weights, xp):
    """``X^T diag(w_m) y`` of one chunk for every row of ``weights``,
    (n_models, n_params), float64."""
    n, p = X.shape
    total = xp.zeros((weights.shape[0], p), dtype=xp.float64, device=device(X))
    for rows in row_chunks(n, p + weights.shape[0], on_gpu(X)):
        Xy = wide(X[rows, :], xp) * wide(y[rows], xp)[:, None]
        total = total + wide(weights[:, rows], xp) @ Xy
    return total


def _solve(lhs, rhs, xp, penalty_name):
    """``lhs^-1 rhs`` for a batch of symmetric systems; a pseudo-inverse, with
    a ``LinAlgWarning``, where the solve fails or is not finite (NumPy
    raises, CuPy returns NaN)."""
    try:
        solution = xp.linalg.solve(lhs, rhs)
        if bool(xp.all(xp.isfinite(solution))):
            return solution
    except (np.linalg.LinAlgError, RuntimeError):
        pass
    warnings.warn(
        "A near-singular system in the M-step was solved by a pseudo-inverse; "
        f"the fit may be inaccurate. Increase {penalty_name}.",
        LinAlgWarning,
        stacklevel=4,
    )
    return xp.linalg.pinv(lhs) @ rhs


def _ridge_floor(matrix, xp):
    """``_RIDGE_FLOOR`` times the scale of every system of a batch
    (n_models, P, P): its mean diagonal, or 1 (one unit-weight sample's
    share) if that is larger, so that empty systems are floored too."""
    diagonal = xp.sum(matrix * eye_like(matrix.shape[-1], matrix, xp), axis=(1, 2))
    scale = xp.maximum(diagonal / matrix.shape[-1], xp.ones_like(diagonal))
    return _RIDGE_FLOOR * scale


def ridge_solve(gram, rhs, ridge, xp, start=None, penalty_name="expert_alpha"):
    """Weighted ridge regression for a batch of models from their sums.

    Minimises ``f_m(beta) = beta^T G_m beta - 2 beta^T b_m + ridge_m
    ||beta||^2`` (the weighted least squares ``sum_i w_mi (y_i - x_i^T
    beta)^2``, up to a constant): solves ``(G_m + ridge_m I) beta_m = b_m``.
    Where ``ridge_m`` is below the floor ``lambda_m`` (``_RIDGE_FLOOR``
    times the Gram matrix's scale), a proximal step from ``start`` instead:
    ``argmin f_m(beta) + (lambda_m - ridge_m) ||beta - start_m||^2``, which
    never increases ``f_m`` above ``f_m(start_m)`` and converges to its
    minimiser when repeated.

    Parameters
    ----------
    gram : array of shape (n_models, n_params, n_params)
    rhs : array of shape (n_models, n_params)
    ridge : array of shape (n_models,)
    start : array of shape (n_models, n_params) or None
        Centre of the proximal step (zeros if None).
    penalty_name : str
        The parameter to name if a system is singular.

    Returns
    -------
    coef : array of shape (n_models, n_params), float64
    """
    p = gram.shape[-1]
    extra = xp.maximum(_ridge_floor(gram, xp) - ridge, xp.zeros_like(ridge))
    lhs = gram + (ridge + extra)[:, None, None] * eye_like(p, gram, xp)
    if start is not None:
        rhs = rhs + extra[:, None] * wide(start, xp)
    return _solve(lhs, rhs[:, :, None], xp, penalty_name)[:, :, 0]


def softmax_logits(X, coef, xp):
    """Logits of a batch of softmax models, ``coef[g]^T x_i`` for every ``g``.

    Parameters
    ----------
    X : array of shape (n_samples, n_params) or (n_models, n_rows, n_params)
    coef : array of shape (n_models, n_params, n_classes)

    Returns
    -------
    logits : array of shape (n_classes, n_models, n_samples or n_rows)
    """
    X = wide(X, xp)
    if X.ndim == 3:  # grouped: model g's own rows
        logits = xp.permute_dims(coef, (0, 2, 1)) @ xp.matrix_transpose(X)
        return xp.permute_dims(logits, (1, 0, 2))
    g, p, k = coef.shape
    flat = xp.reshape(xp.permute_dims(coef, (2, 0, 1)), (k * g, p))
    return xp.reshape(flat @ xp.matrix_transpose(X), (k, g, X.shape[0]))


# Fewest rows of a matrix product of the pairs' weights with the outer
# products: classes a whose pairs (a, b > a) are fewer, over a batch of
# models, share one product (measured: below 8 rows, OpenBLAS's products
# run at a third to a half of their rate).
_MIN_PAIR_ROWS = 8


def _class_groups(k, n_models, width):
    """Consecutive classes ``a`` in ranges ``[first, last)`` whose pairs
    ``(a, b > a)``, over ``n_models`` models, make one matrix product with
    the outer products (``width`` per row) together.

    All pairs make one product when their weights are no wider than the
    outer products: each product reads all the outer products, which
    then cost more than copying the pairs' weights into one array
    (measured at 33 parameters, 4 classes, 1-4 models: 1.5-2x faster than a
    product per class). Otherwise every class makes its own, except that
    classes with fewer than ``_MIN_PAIR_ROWS`` rows are joined to the next
    (the last range may have fewer)."""
    if k < 2:
        return []
    if k * (k - 1) // 2 * n_models <= max(width, _MIN_PAIR_ROWS):
        return [(0, k - 1)]
    groups, first, rows = [], 0, 0
    for a in range(k - 1):
        rows += (k - 1 - a) * n_models
        if rows >= _MIN_PAIR_ROWS or a == k - 2:
            groups.append((first, a + 1))
            first, rows = a + 1, 0
    return groups


def _softmax_normalised(logits, xp):
    """Probabilities and log-normaliser of logits (n_classes, ...) along the
    first axis, from one exponential: ``softmax(logits)`` and
    ``logsumexp(logits)``."""
    top = xp.max(logits, axis=0)
    scaled = xp.exp(logits - top[None, ...])
    total = xp.sum(scaled, axis=0)
    return scaled / total[None, ...], xp.log(total) + top


def softmax_sums(
    X, targets, coef, xp, outer=None, per_class=False, log_prob=None, prob=None
):
    """One chunk's sums for a batch of softmax models with soft targets.

    At the coefficients ``coef``, with ``g_i = softmax(coef_g^T x_i)`` and
    ``s_i = sum_c T_ci`` the targets' mass:

    - ``objective``: ``sum_i sum_c T_ci log g_ci``, shape (n_models,);
    - ``gradient``: ``sum_i x_i (T_i - s_i g_i)^T``, (n_models, n_params,
      n_classes);
    - ``mass``: ``sum_i s_i``, shape (n_models,);
    - ``coupling``: for every pair of classes ``a < b`` (in the order of
      ``numpy.triu_indices(n_classes, 1)``), ``C_ab = sum_i s_i g_ai g_bi
      x_i x_i^T``, the upper triangle of every block packed: (n_models,
      n_classes * (n_classes - 1) / 2, n_params * (n_params + 1) / 2). They
      are the whole negative Hessian ``sum_i s_i (diag(g_i) - g_i g_i^T)
      kron x_i x_i^T``: its block ``(a, b)`` is ``-C_ab``, and, since the
      probabilities ``g_i`` sum to one, ``g_ai (1 - g_ai) = sum_{b != a}
      g_ai g_bi``, so its diagonal block ``(a, a)`` is ``sum_{b != a}
      C_ab`` (``newton_direction`` assembles it);
    - with ``per_class``, instead of ``coupling``, ``class_curvature``:
      the negative Hessian's diagonal blocks ``sum_i s_i g_ci (1 - g_ci)
      x_i x_i^T``, one per class, without the blocks that couple classes:
      (n_models, n_classes, n_params * (n_params + 1) / 2). Its cost grows
      with the number of classes, not with its square
      (``newton_direction``).

    All float64. The sums run over sub-chunks of rows small enough for the
    CPU's cache: every per-sample temporary lives for one sub-chunk. Within
    one, the pairs' weights ``s_i g_ai g_bi`` are made class by class from
    slices (classes ``b > a`` for every ``a``) and summed by matrix products
    with the rows' outer products, one per class or per group of classes
    (``_class_groups``): no gathers of rows or of class pairs, and only the
    ``K (K - 1) / 2`` pairs, not the ``K (K + 1) / 2`` blocks.

    Parameters
    ----------
    X : array of shape (n_rows, n_params) or (n_models, n_rows, n_params)
        Shared rows, or every model's own rows (``group_rows``).
    targets : array of shape (n_classes, n_models, n_rows)
    coef : array of shape (n_models, n_params, n_classes)
    outer : array or None
        The rows' outer products, if kept (grouped like ``X``).
    log_prob : array of shape (n_classes, n_models, n_rows) or None
        The models' log-probabilities ``log g_ci`` at ``coef`` on these rows,
        where the caller has them already (the E-step's gates): they replace
        the logits and their normalisation.
    prob : array of shape (n_classes, n_models, n_rows) or None
        With ``log_prob``, its exponential, where the caller has it.

    Returns
    -------
    sums : dict
    """
    probs = prob  # the loop's ``prob`` is the rows' probabilities
    grouped = X.ndim == 3
    n, p = X.shape[-2:]
    n_models, _, k = coef.shape
    width = p * (p + 1) // 2
    dev = device(X)
    grad = xp.zeros((n_models, k, p), dtype=xp.float64, device=dev)
    objective = xp.zeros((n_models,), dtype=xp.float64, device=dev)
    mass = xp.zeros((n_models,), dtype=xp.float64, device=dev)
    if per_class:
        hess = xp.zeros((n_models, k, width), dtype=xp.float64, device=dev)
    else:  # the pairs (a, b > a) of every group of classes a (_class_groups)
        # grouped, every model's product is its own
        groups = _class_groups(k, 1 if grouped else n_models, width)
        pairs = []
        for first, last in groups:
            count = sum(k - 1 - a for a in range(first, last))
            shape = (n_models, count, width) if grouped else (count, n_models, width)
            pairs.append(xp.zeros(shape, dtype=xp.float64, device=dev))
    # widest per-row temporaries: those of the classes and (shared, or one
    # set per model when grouped) the outer products
    sub_width = n_models * (max(width, k) if grouped else k) + width
    for rows in row_chunks(n, sub_width, on_gpu(X)):
        X_rows = wide(X[..., rows, :], xp)
        T = wide(targets[:, :, rows], xp)
        s = xp.sum(T, axis=0)  # (G, rows)
        mass = mass + xp.sum(s, axis=1)
        if log_prob is None:
            logits = softmax_logits(X_rows, coef, xp)  # (K, G, rows)
            prob, log_norm = _softmax_normalised(logits, xp)
            objective = objective + xp.sum(
                xp.sum(T * logits, axis=0) - s * log_norm, axis=1
            )
        else:
            log_g = wide(log_prob[:, :, rows], xp)
            prob = xp.exp(log_g) if probs is None else wide(probs[:, :, rows], xp)
            objective = objective + xp.sum(xp.sum(T * log_g, axis=0), axis=1)
        weighted = prob * s[None, :, :]  # s_i g_ai
        resid = T - weighted  # (K, G, rows)
        if grouped:  # (G, K, rows) @ (G, rows, P)
            grad = grad + xp.permute_dims(resid, (1, 0, 2)) @ X_rows
        else:  # (K * G, rows) @ (rows, P)
            flat = xp.reshape(resid, (k * n_models, resid.shape[-1])) @ X_rows
            grad = grad + xp.permute_dims(xp.reshape(flat, (k, n_models, p)), (1, 0, 2))
        outer_rows = _outer_chunk(X, outer, rows, xp)
        m = resid.shape[-1]
        if per_class:  # curv[c, g, i] = s_gi g_c (1 - g_c)
            curv = weighted * (1.0 - prob)
            if grouped:  # (G, K, rows) @ (G, rows, T)
                hess = hess + xp.permute_dims(curv, (1, 0, 2)) @ outer_rows
            else:  # (K * G, rows) @ (rows, T)
                flat = xp.reshape(curv, (k * n_models, m)) @ outer_rows
                hess = hess + xp.permute_dims(
                    xp.reshape(flat, (k, n_models, width)), (1, 0, 2)
                )
            continue
        if grouped:
            weighted = xp.permute_dims(weighted, (1, 0, 2))  # (G, K, rows)
            prob = xp.permute_dims(prob, (1, 0, 2))
        axis = 1 if grouped else 0  # of the classes b
        for q, (first, last) in enumerate(groups):
            # s_i g_ai g_bi for the pairs (a, b > a) of the group's classes a:
            # (G, pairs, rows) grouped, else (pairs, G, rows)
            products = [
                weighted[:, a : a + 1, :] * prob[:, a + 1 :, :]
                if grouped
                else weighted[a : a + 1, :, :] * prob[a + 1 :, :, :]
                for a in range(first, last)
            ]
            pair = products[0] if len(products) == 1 else xp.concat(products, axis=axis)
            if grouped:  # (G, pairs, rows) @ (G, rows, T)
                pairs[q] = pairs[q] + pair @ outer_rows
            else:  # (pairs * G, rows) @ (rows, T)
                count = pair.shape[0]
                flat = xp.reshape(pair, (count * n_models, m)) @ outer_rows
                pairs[q] = pairs[q] + xp.reshape(flat, (count, n_models, width))
    sums = {
        "objective": objective,
        "gradient": xp.permute_dims(grad, (0, 2, 1)),
        "mass": mass,
    }
    if per_class:
        sums["class_curvature"] = hess
    elif k == 1:
        sums["coupling"] = xp.zeros((n_models, 0, width), dtype=xp.float64, device=dev)
    elif grouped:
        sums["coupling"] = xp.concat(pairs, axis=1)
    else:
        sums["coupling"] = xp.permute_dims(xp.concat(pairs, axis=0), (1, 0, 2))
    return sums


def softmax_penalised(sums, coef, alpha, xp):
    """The penalised objective ``sum T log g - alpha / 2 ||coef||^2`` of every
    model, from its ``softmax_sums`` at ``coef``."""
    squares = xp.sum(xp.reshape(coef**2, (coef.shape[0], -1)), axis=1)
    return sums["objective"] - 0.5 * alpha * squares


def newton_direction(sums, coef, alpha, xp, penalty_name="alpha", extra_gradient=None):
    """Newton ascent direction of every model of a batch from its sums at ``coef``.

    Gradient ``sum_i x_i (T_i - s_i g_i)^T - alpha coef`` (plus
    ``extra_gradient``, another term's gradient, if given); negative Hessian
    the one the summed class-pair sums give (``softmax_sums``'s
    ``coupling``; or, from its ``class_curvature``, only its diagonal
    blocks) plus ``alpha I``, positive definite for
    ``alpha > 0``. The solve raises ``alpha`` to the floor ``_RIDGE_FLOOR``
    times the Hessian's scale where it is below: a damped direction, still
    an ascent.

    Returns
    -------
    direction : array of shape (n_models, n_params, n_classes)
    """
    n_models, p, k = coef.shape
    grad = sums["gradient"] - alpha * coef
    if extra_gradient is not None:
        grad = grad + extra_gradient
    if "class_curvature" in sums:
        return _per_class_direction(
            sums["class_curvature"], grad, alpha, xp, penalty_name
        )
    hess = _full_hessian(sums["coupling"], k, p, alpha, xp)
    grad = xp.reshape(xp.permute_dims(grad, (0, 2, 1)), (n_models, k * p, 1))
    step = _solve(hess, grad, xp, penalty_name)
    return xp.permute_dims(xp.reshape(step, (n_models, k, p)), (0, 2, 1))


def _per_class_direction(packed, grad, alpha, xp, penalty_name):
    """The ascent direction of every class on its own: ``(C_c + alpha I)^-1
    grad_c`` with ``C_c`` the class's diagonal block of the negative
    Hessian (``softmax_sums`` with ``per_class``), floored like
    ``newton_direction``'s: positive definite, so an ascent direction, which
    EM halves where it overshoots. ``grad``: (n_models, n_params,
    n_classes)."""
    n_models, p, k = grad.shape
    blocks = _symmetric(packed, p, xp)  # (G, K, P, P)
    blocks = xp.reshape(blocks, (n_models * k, p, p))
    ridge = xp.maximum(_ridge_floor(blocks, xp), xp.full_like(blocks[:, 0, 0], alpha))
    lhs = blocks + ridge[:, None, None] * eye_like(p, blocks, xp)
    rhs = xp.reshape(xp.permute_dims(grad, (0, 2, 1)), (n_models * k, p, 1))
    step = _solve(lhs, rhs, xp, penalty_name)
    return xp.permute_dims(xp.reshape(step, (n_models, k, p)), (0, 2, 1))


@functools.lru_cache(maxsize=64)
def _hessian_layout(k, p):
    """How ``_full_hessian`` assembles K classes of P parameters (made once
    per shape, and shared: never written to): the incidence (K, pairs) of
    the classes in the pairs ``a < b``, which sums the diagonal blocks, and
    the index of every entry of the full matrix in the diagonal blocks and
    pairs laid end to end."""
    rows, cols = np.triu_indices(k, 1)
    n_off, width = len(rows), p * (p + 1) // 2
    _, _, p_position = _triangle(p)
    # the diagonal blocks: every pair's sum added to the blocks of its two classes
    incidence = np.zeros((k, n_off))
    incidence[rows, np.arange(n_off)] = incidence[cols, np.arange(n_off)] = 1.0
    # block (a, b) of the full matrix is entry position[a, b] of the blocks
    position = np.diag(np.arange(k))
    position[rows, cols] = position[cols, rows] = k + np.arange(n_off)
    # entry (a * P + i, b * P + j) of the full matrix
    index = position[:, None, :, None] * width + p_position[None, :, None, :]
    return incidence, index.reshape(-1)


def _full_hessian(coupling, k, p, alpha, xp):
    """The full penalised negative Hessian, (G, K * P, K * P), from the sums
    over the class pairs ``a < b``, (G, K * (K - 1) / 2, T) (``softmax_sums``):
    block ``(a, b)`` is ``-C_ab``, block ``(a, a)`` is ``sum_{b != a} C_ab``."""
    incidence, index = _hessian_layout(k, p)
    n_off, width = incidence.shape[1], p * (p + 1) // 2
    n_models = coupling.shape[0]
    diagonal = _on(incidence, coupling, xp) @ coupling  # (G, K, T)
    blocks = xp.concat([diagonal, -coupling], axis=1)  # (G, K + pairs, T)
    hess = xp.take(
        xp.reshape(blocks, (n_models, (k + n_off) * width)),
        _on(index, coupling, xp),
        axis=1,
    )
    hess = xp.reshape(hess, (n_models, k * p, k * p))
    ridge = xp.maximum(_ridge_floor(hess, xp), xp.full_like(hess[:, 0, 0], alpha))
    return hess + ridge[:, None, None] * eye_like(k * p, hess, xp)
