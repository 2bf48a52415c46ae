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
"""

from ._array_api import device, eye_like, log_softmax

# Elements of the largest temporary a chunk may create (float64: 32 MiB).
_CHUNK_ELEMENTS = 2**22
# Newton steps per M-step; each already guarantees an increase, so a few
# suffice inside EM (a generalised EM step), and the loop stops earlier once
# the improvement is negligible.
_MAX_NEWTON_STEPS = 8
_NEWTON_RTOL = 1e-10
_MAX_HALVINGS = 40


def _row_chunks(n_rows, width):
    """Slices of at most ``_CHUNK_ELEMENTS // width`` rows covering ``n_rows``."""
    step = max(1, _CHUNK_ELEMENTS // max(width, 1))
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def _outer_rows(X, xp):
    """Row-wise outer products ``x_i x_i^T`` flattened: shape (n, P * P)."""
    n, p = X.shape
    return xp.reshape(X[:, :, None] * X[:, None, :], (n, p * p))


def weighted_gram(X, weights, xp):
    """Weighted Gram matrices ``sum_i weights[i, m] x_i x_i^T``.

    Parameters
    ----------
    X : array of shape (n_samples, n_params)
    weights : array of shape (n_samples, n_models)

    Returns
    -------
    gram : array of shape (n_models, n_params, n_params)
    """
    n, p = X.shape
    m = weights.shape[1]
    gram = xp.zeros((m, p * p), dtype=X.dtype, device=device(X))
    for rows in _row_chunks(n, p * p):
        gram = gram + xp.matrix_transpose(weights[rows, :]) @ _outer_rows(
            X[rows, :], xp
        )
    return xp.reshape(gram, (m, p, p))


def solve_weighted_ridge(X, y, weights, ridge, xp):
    """Weighted ridge regression for every column of ``weights`` at once.

    Solves ``(X^T diag(w_l) X + ridge_l I) beta_l = X^T diag(w_l) y``.

    Parameters
    ----------
    X : array of shape (n_samples, n_params)
    y : array of shape (n_samples,)
    weights : array of shape (n_samples, n_models)
    ridge : array of shape (n_models,)

    Returns
    -------
    coef : array of shape (n_models, n_params)
    """
    p = X.shape[1]
    lhs = weighted_gram(X, weights, xp) + ridge[:, None, None] * eye_like(p, X, xp)
    rhs = xp.matrix_transpose(weights) @ (X * y[:, None])  # (n_models, n_params)
    return xp.linalg.solve(lhs, rhs[:, :, None])[:, :, 0]


def softmax_logits(X, coef, xp):
    """Logits of a batch of softmax models: ``X @ coef[g]`` for every ``g``.

    Parameters
    ----------
    X : array of shape (n_samples, n_params)
    coef : array of shape (n_models, n_params, n_classes)

    Returns
    -------
    logits : array of shape (n_samples, n_models, n_classes)
    """
    g, p, k = coef.shape
    flat = xp.reshape(xp.permute_dims(coef, (1, 0, 2)), (p, g * k))
    return xp.reshape(X @ flat, (X.shape[0], g, k))


def softmax_objective(X, targets, coef, alpha, xp):
    """Penalised soft-target log-likelihood of each model in the batch.

    ``Q_g = sum_i sum_c targets[i, g, c] log softmax(x_i coef_g)_c
    - alpha / 2 ||coef_g||^2``.

    Returns
    -------
    objective : array of shape (n_models,)
    """
    log_prob = log_softmax(softmax_logits(X, coef, xp), -1, xp)
    fit = xp.sum(xp.sum(targets * log_prob, axis=2), axis=0)
    return fit - 0.5 * alpha * xp.sum(xp.reshape(coef**2, (coef.shape[0], -1)), axis=1)


def _newton_direction(X, targets, mass, coef, alpha, xp):
    """Newton ascent direction for every model of the batch.

    Gradient ``X^T (T - s * g) - alpha W``; negative Hessian
    ``sum_i s_i (diag(g_i) - g_i g_i^T) kron x_i x_i^T + alpha I``,
    positive definite for ``alpha > 0``.
    """
    n, p = X.shape
    n_models, _, k = coef.shape
    kp = k * p
    prob = xp.exp(log_softmax(softmax_logits(X, coef, xp), -1, xp))  # (n, G, K)
    resid = xp.reshape(targets - mass[:, :, None] * prob, (n, n_models * k))
    grad = xp.reshape(xp.matrix_transpose(X) @ resid, (p, n_models, k))
    grad = xp.permute_dims(grad, (1, 2, 0)) - alpha * xp.permute_dims(coef, (0, 2, 1))

    eye_k = eye_like(k, X, xp)
    hess = xp.zeros((n_models * k * k, p * p), dtype=X.dtype, device=device(X))
    for rows in _row_chunks(n, max(p * p, n_models * k * k)):
        pr = prob[rows, ...]
        curv = pr[:, :, :, None] * eye_k - pr[:, :, :, None] * pr[:, :, None, :]
        curv = mass[rows, :, None, None] * curv
        curv = xp.reshape(curv, (curv.shape[0], n_models * k * k))
        hess = hess + xp.matrix_transpose(curv) @ _outer_rows(X[rows, :], xp)
    hess = xp.reshape(hess, (n_models, k, k, p, p))
    hess = xp.reshape(xp.permute_dims(hess, (0, 1, 3, 2, 4)), (n_models, kp, kp))
    hess = hess + alpha * eye_like(kp, X, xp)

    step = xp.linalg.solve(hess, xp.reshape(grad, (n_models, kp, 1)))
    return xp.permute_dims(xp.reshape(step, (n_models, k, p)), (0, 2, 1))


def fit_softmax(X, targets, coef, alpha, xp, max_steps=_MAX_NEWTON_STEPS):
    """Maximise the penalised soft-target objective of a batch of softmax models.

    Newton's method with step halving per model: a step is taken only if it
    does not decrease that model's objective, so the result is never worse
    than ``coef``, which makes every EM iteration monotone.

    Parameters
    ----------
    X : array of shape (n_samples, n_params)
        Inputs with the intercept column.
    targets : array of shape (n_samples, n_models, n_classes)
        Soft counts, non-negative (posterior of each child, or
        responsibility times the one-hot class).
    coef : array of shape (n_models, n_params, n_classes)
        Starting point.
    alpha : float
        L2 penalty, > 0.
    max_steps : int
        Largest number of Newton steps.

    Returns
    -------
    coef : array of shape (n_models, n_params, n_classes)
    """
    mass = xp.sum(targets, axis=2)
    objective = softmax_objective(X, targets, coef, alpha, xp)
    scale = xp.sum(mass, axis=0) + 1.0
    for _ in range(max_steps):
        direction = _newton_direction(X, targets, mass, coef, alpha, xp)
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
