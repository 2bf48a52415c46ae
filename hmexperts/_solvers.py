"""Batched weighted solvers shared by the gates and the built-in experts.

Two problems, each solved for a whole batch of independent models at once:

- weighted ridge least squares (linear-Gaussian experts): one batched solve of
  ``(X^T diag(r_l) X + lambda_l I) beta_l = X^T diag(r_l) y`` for every leaf ``l``;
- weighted multinomial logistic regression with soft targets (every gate of
  a tree level, and the softmax experts): Newton's method with step halving,
  so that the penalised objective never decreases.

Both need only sums over samples (weighted Gram matrices, gradients), which
are accumulated chunk by chunk so that no temporary grows with
``n_samples * n_models * n_params**2``.

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

from ._array_api import device, eye_like, log_softmax

# Elements of the largest temporary a chunk may create (float64: 32 MiB).
_CHUNK_ELEMENTS = 2**22
# Newton steps per M-step; each already guarantees an increase, so a few
# suffice inside EM (a generalised EM step), and the loop stops earlier once
# the improvement is negligible.
_MAX_NEWTON_STEPS = 8
_NEWTON_RTOL = 1e-7
_MAX_HALVINGS = 40
# Largest row-wise outer-product matrix (n_samples x n_params**2) kept for a
# whole fit (float64: 128 MiB); above it, outer products are made per chunk.
_CACHE_ELEMENTS = 2**24


def _row_chunks(n_rows, width):
    """Slices of at most ``_CHUNK_ELEMENTS // width`` rows covering ``n_rows``."""
    step = max(1, _CHUNK_ELEMENTS // max(width, 1))
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def _outer_rows(X, xp):
    """Row-wise outer products ``x_i x_i^T`` flattened: shape (..., n, P * P)."""
    p = X.shape[-1]
    return xp.reshape(X[..., :, None] * X[..., None, :], (*X.shape[:-1], p * p))


def outer_products(X, xp):
    """Row-wise outer products of ``X`` to keep for a whole fit, or None.

    ``X`` is the same in every EM iteration, so its outer products, which
    every Gram matrix and every Newton step needs, are made once when they
    fit in ``_CACHE_ELEMENTS``; otherwise each chunk makes its own.

    Returns
    -------
    outer : array of shape (n_samples, n_params * n_params) or None
    """
    n, p = X.shape
    return _outer_rows(X, xp) if n * p * p <= _CACHE_ELEMENTS else None


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
    outer : array of shape (n_samples, n_params ** 2) or None
    max_fraction : float
        Group only if the padded batch has at most this fraction of the
        ``n_models * n_samples`` rows of the dense layout.

    Returns
    -------
    grouped : tuple or None
        ``(take, X_grouped, outer_grouped)``: ``take(a)`` gathers an array
        whose last axis runs over (n_models, n_samples) into (n_models,
        n_rows); ``X_grouped`` of shape (n_models, n_rows, n_params);
        ``outer_grouped`` of shape (n_models, n_rows, n_params ** 2) or
        None. None when grouping would not pay.
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
            xp.take(outer, flat_rows, axis=0), (n_models, n_rows, p * p)
        )
    return take, X_grouped, outer_grouped


def weighted_gram(X, weights, xp, outer=None):
    """Weighted Gram matrices ``sum_i weights[m, i] x_i x_i^T``.

    Parameters
    ----------
    X : array of shape (n_samples, n_params)
    weights : array of shape (n_models, n_samples)
    outer : array of shape (n_samples, n_params * n_params) or None
        The outer products of ``X``'s rows, if kept (``outer_products``).

    Returns
    -------
    gram : array of shape (n_models, n_params, n_params)
    """
    n, p = X.shape
    m = weights.shape[0]
    if outer is not None:
        return xp.reshape(weights @ outer, (m, p, p))
    gram = xp.zeros((m, p * p), dtype=X.dtype, device=device(X))
    for rows in _row_chunks(n, p * p):
        gram = gram + weights[:, rows] @ _outer_rows(X[rows, :], xp)
    return xp.reshape(gram, (m, p, p))


def solve_weighted_ridge(X, y, weights, ridge, xp, outer=None):
    """Weighted ridge regression for every row of ``weights`` at once.

    Solves ``(X^T diag(w_m) X + ridge_m I) beta_m = X^T diag(w_m) y``.

    Parameters
    ----------
    X : array of shape (n_samples, n_params)
    y : array of shape (n_samples,)
    weights : array of shape (n_models, n_samples)
    ridge : array of shape (n_models,)
    outer : array or None
        The outer products of ``X``'s rows, if kept.

    Returns
    -------
    coef : array of shape (n_models, n_params)
    """
    p = X.shape[1]
    lhs = weighted_gram(X, weights, xp, outer) + ridge[:, None, None] * eye_like(
        p, X, xp
    )
    rhs = weights @ (X * y[:, None])  # (n_models, n_params)
    return xp.linalg.solve(lhs, rhs[:, :, None])[:, :, 0]


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
    if X.ndim == 3:  # grouped: model g's own rows
        logits = xp.permute_dims(coef, (0, 2, 1)) @ xp.matrix_transpose(X)
        return xp.permute_dims(logits, (1, 0, 2))
    g, p, k = coef.shape
    flat = xp.reshape(xp.permute_dims(coef, (2, 0, 1)), (k * g, p))
    return xp.reshape(flat @ xp.matrix_transpose(X), (k, g, X.shape[0]))


def softmax_objective(X, targets, coef, alpha, xp):
    """Penalised soft-target log-likelihood of each model in the batch.

    ``Q_g = sum_i sum_c targets[c, g, i] log softmax(coef_g^T x_i)_c
    - alpha / 2 ||coef_g||^2``.

    Returns
    -------
    objective : array of shape (n_models,)
    """
    log_prob = log_softmax(softmax_logits(X, coef, xp), 0, xp)
    fit = xp.sum(xp.sum(targets * log_prob, axis=0), axis=1)
    return fit - 0.5 * alpha * xp.sum(xp.reshape(coef**2, (coef.shape[0], -1)), axis=1)


def _newton_direction(X, targets, mass, coef, alpha, xp, outer=None):
    """Newton ascent direction for every model of the batch.

    Gradient ``X^T (T - s * g) - alpha W``; negative Hessian
    ``sum_i s_i (diag(g_i) - g_i g_i^T) kron x_i x_i^T + alpha I``,
    positive definite for ``alpha > 0``.
    """
    grouped = X.ndim == 3
    n, p = X.shape[-2:]
    n_models, _, k = coef.shape
    kp = k * p
    prob = xp.exp(log_softmax(softmax_logits(X, coef, xp), 0, xp))  # (K, G, n)
    resid = targets - mass[None, :, :] * prob
    if grouped:
        grad = xp.permute_dims(resid, (1, 0, 2)) @ X  # (G, K, P)
    else:
        grad = xp.reshape(xp.reshape(resid, (k * n_models, n)) @ X, (k, n_models, p))
        grad = xp.permute_dims(grad, (1, 0, 2))
    grad = grad - alpha * xp.permute_dims(coef, (0, 2, 1))

    eye_k = eye_like(k, X, xp)[:, :, None, None]
    width = max(p * p, k * k) * (n_models if grouped else 1)
    hess = 0.0
    for rows in _row_chunks(n, max(width, k * k * n_models)):
        pr = prob[:, :, rows]
        # curv[a, b, g, i] = s_gi (delta_ab p_a - p_a p_b)
        curv = (
            pr[:, None, :, :] * eye_k - pr[:, None, :, :] * pr[None, :, :, :]
        ) * mass[None, None, :, rows]
        if grouped:  # (G, K*K, rows) @ (G, rows, P*P)
            curv = xp.reshape(
                xp.permute_dims(curv, (2, 0, 1, 3)), (n_models, k * k, curv.shape[-1])
            )
        else:
            curv = xp.reshape(curv, (k * k * n_models, curv.shape[-1]))
        hess = hess + curv @ _outer_chunk(X, outer, rows, xp)
    if grouped:
        hess = xp.reshape(hess, (n_models, k, k, p, p))
        hess = xp.permute_dims(hess, (0, 1, 3, 2, 4))
    else:
        hess = xp.reshape(hess, (k, k, n_models, p, p))
        hess = xp.permute_dims(hess, (2, 0, 3, 1, 4))
    hess = xp.reshape(hess, (n_models, kp, kp)) + alpha * eye_like(kp, X, xp)

    step = xp.linalg.solve(hess, xp.reshape(grad, (n_models, kp, 1)))
    return xp.permute_dims(xp.reshape(step, (n_models, k, p)), (0, 2, 1))


def fit_softmax(X, targets, coef, alpha, xp, max_steps=_MAX_NEWTON_STEPS, outer=None):
    """Maximise the penalised soft-target objective of a batch of softmax models.

    Newton's method with step halving per model: a step is taken only if it
    does not decrease that model's objective, so the result is never worse
    than ``coef``, which makes every EM iteration monotone.

    Parameters
    ----------
    X : array of shape (n_samples, n_params) or (n_models, n_rows, n_params)
        Inputs with the intercept column, shared by all models or grouped
        (every model's own rows, ``group_rows``).
    targets : array of shape (n_classes, n_models, n_samples or n_rows)
        Soft counts (posterior of each child, or responsibility times the
        one-hot class); their sum over classes must be non-negative.
    coef : array of shape (n_models, n_params, n_classes)
        Starting point.
    alpha : float
        L2 penalty, > 0.
    max_steps : int
        Largest number of Newton steps.
    outer : array or None
        The outer products of ``X``'s rows, if kept (grouped like ``X``).

    Returns
    -------
    coef : array of shape (n_models, n_params, n_classes)
    """
    mass = xp.sum(targets, axis=0)
    objective = softmax_objective(X, targets, coef, alpha, xp)
    scale = xp.sum(mass, axis=1) + 1.0
    for _ in range(max_steps):
        direction = _newton_direction(X, targets, mass, coef, alpha, xp, outer)
        new_coef, new_objective = _halving_step(
            X, targets, coef, objective, direction, alpha, xp
        )
        gain = xp.max((new_objective - objective) / scale)
        coef, objective = new_coef, new_objective
        if not bool(gain > _NEWTON_RTOL):
            break
    return coef


def _halving_step(X, targets, coef, objective, direction, alpha, xp):
    """Per-model step ``coef + t * direction`` with ``t`` halved until no loss."""
    n_models = coef.shape[0]
    step = xp.ones((n_models,), dtype=coef.dtype, device=device(coef))
    accepted = xp.zeros((n_models,), dtype=xp.bool, device=device(coef))
    best_coef, best_objective = coef, objective
    for _ in range(_MAX_HALVINGS):
        candidate = coef + step[:, None, None] * direction
        cand_objective = softmax_objective(X, targets, candidate, alpha, xp)
        better = (cand_objective >= objective) & ~accepted
        best_coef = xp.where(better[:, None, None], candidate, best_coef)
        best_objective = xp.where(better, cand_objective, best_objective)
        accepted = accepted | better
        if bool(xp.all(accepted)):
            break
        step = xp.where(accepted, step, 0.5 * step)
    return best_coef, best_objective
