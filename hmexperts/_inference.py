"""Standard errors: the observed information matrix of a fitted mixture.

The log-likelihood of a mixture of experts is ``l = sum_i w_i log sum_j
exp(a_ij)`` with ``a_ij = log pi_j(x_i) + log p_j(y_i | x_i)``. Its exact
Hessian is Louis' (1982) identity, sample by sample:

    d2 l_i = sum_j r_ij (d2 a_ij + s_ij s_ij^T) - g_i g_i^T,

with ``r_ij`` the posterior of leaf ``j``, ``s_ij`` the gradient of
``a_ij`` and ``g_i = sum_j r_ij s_ij`` the gradient of ``l_i``. The
observed information is ``-sum_i w_i d2 l_i``; its inverse, the
covariance of the Wald intervals.

The parameters, in the standardised units the fit uses:

- every gate (one per internal node of the tree, in ``Tree.gates``
  order), its coefficients of children ``1 .. k - 1`` minus those of
  child 0 for a gate of ``k`` children (the softmax is unchanged by a
  common shift, so child 0 is the reference, fixed at zero, as flexmix's
  concomitant model does; a gate of one child has none);
- every expert's coefficients (softmax experts: classes ``1 .. n_classes -
  1`` minus class 0) and, where it has one, ``tau``: the log-variance
  (Gaussian, Student-t) or the log-shape (gamma). The Student-t degrees of
  freedom are held at their estimate.

``a_ij`` is a sum over the gates on the path to leaf ``j`` and its expert,
so ``s_ij`` is sparse and ``d2 a_ij`` block diagonal: every softmax block
is ``-(diag(g) - g g^T) kron x x^T``, and every GLM-type expert's comes from
the derivatives of its log-density by its linear predictor ``eta`` and by
``tau`` (``eta_derivatives`` of the bank). The information is that of the
log-likelihood alone: the L2 penalties shift the estimates by about
``alpha / n`` of their curvature, and are not part of the covariance.
Covariances in the data's units follow by the linear map from the
standardised coefficients (``_data_units``).
"""

import warnings

import numpy as np
from scipy import stats

from ._array_api import log_softmax, to_numpy, wide
from ._experts import SoftmaxExperts
from ._learners import is_learner
from ._solvers import softmax_logits

# Rows per chunk: the scores of a chunk hold rows * n_leaves * n_parameters
# numbers, at most about this many.
_SCORE_ELEMENTS = 2**22


class Layout:
    """Where every parameter sits in the information matrix, and what each
    reported one is.

    ``rows`` lists the reported parameters (coefficients) as dicts with
    ``kind``, ``node`` (a gate's node id in the tree, an expert's leaf),
    ``output``, ``column`` (the design's column, the intercept last),
    ``group`` (the model and output whose coefficients share a linear map
    to data units) and ``index`` (its position in the information matrix).
    The gates come in the order of ``Tree.gates`` (batch by batch, as
    ``GateTree.coefs`` stores them); ``gate_offsets[b][g]`` is where gate
    ``g`` of batch ``b`` starts.
    """

    def __init__(self, model):
        gates, experts = model._gates, model._experts
        n_design = model.n_features_in_ + 1
        self.gate_columns = _columns(gates, n_design)
        self.expert_columns = _columns(experts, n_design)
        self.rows = []
        self.gate_offsets = []
        size = 0
        for batch in gates.tree.batches:
            offsets = []
            for node in batch.nodes:
                offsets.append(size)
                for c in range(1, batch.n_children):
                    group = ("gate", node, c)
                    for column in self.gate_columns:
                        self.rows.append(
                            {
                                "kind": "gate",
                                "node": node,
                                "output": c,
                                "column": column,
                                "group": group,
                                "index": size,
                            }
                        )
                        size += 1
            self.gate_offsets.append(offsets)
        self.n_gate = size
        self.expert_offsets = []
        self.has_experts = not is_learner(model)
        if not self.has_experts:  # learners: no coefficients to report
            self.softmax, self.n_tau, self.expert_block = False, 0, 0
            self.size = size
            return
        p_e = len(self.expert_columns)
        self.softmax = isinstance(experts, SoftmaxExperts)
        self.multi_output = hasattr(experts, "leaf_derivatives")
        if self.multi_output:
            self.n_tau = experts.n_nuisance
            outputs = list(range(experts.n_targets))  # the targets
        else:
            self.n_tau = 0 if self.softmax else int(_has_tau(experts))
            # the class, or the (single) target
            outputs = list(model.classes_[1:]) if self.softmax else [0]
        for leaf in range(gates.n_leaves):
            self.expert_offsets.append(size)
            for output in outputs:
                group = ("expert", leaf, output)
                for column in self.expert_columns:
                    self.rows.append(
                        {
                            "kind": "expert",
                            "node": leaf,
                            "output": output,
                            "column": column,
                            "group": group,
                            "index": size,
                        }
                    )
                    size += 1
            size += self.n_tau
        self.expert_block = len(outputs) * p_e + self.n_tau
        self.size = size


def _columns(component, n_design):
    return list(range(n_design)) if component.columns is None else component.columns


def _has_tau(experts):
    return hasattr(experts, "variance") or getattr(
        getattr(experts, "family", None), "has_dispersion", False
    )


def _softmax_blocks(probs, x):
    """Scores' building block and curvature of a softmax model with the
    first output as reference: ``probs`` (n_outputs, n), ``x`` (n, p).

    Returns ``minus_g`` (n, n_outputs - 1, p), ``-g_c x`` for the free
    outputs, and a function of per-row weights giving the curvature
    ``sum_i w_i (diag(g) - g g^T)_{free} kron x_i x_i^T``."""
    free = probs[1:]  # (K-1, n)
    minus_g = -free.T[:, :, None] * x[:, None, :]

    def curvature(weight):
        k1, p = free.shape[0], x.shape[1]
        wx = weight[:, None] * x
        block = np.zeros((k1, p, k1, p))
        for a in range(k1):
            for b in range(a, k1):
                factor = free[a] * ((a == b) - free[b])
                block[a, :, b, :] = (wx * factor[:, None]).T @ x
                block[b, :, a, :] = block[a, :, b, :].T
        return block.reshape(k1 * p, k1 * p)

    return minus_g, curvature


def observed_information(model, Xd, y_fit, weight, xp):
    """The observed information matrix (standardised units) and its
    ``Layout``. ``Xd``: the standardised design, ``y_fit``: the encoded
    target, ``weight``: frequency weights (NumPy)."""
    layout = Layout(model)
    gates, experts = model._gates, model._experts
    n, n_leaves, tree = Xd.shape[0], gates.n_leaves, gates.tree
    info = np.zeros((layout.size, layout.size))
    rows = max(1, _SCORE_ELEMENTS // max(1, n_leaves * layout.size))
    for start in range(0, n, rows):
        part = slice(start, min(n, start + rows))
        X, y, w = Xd[part, ...], y_fit[part, ...], weight[part]
        log_joint = gates.log_prior(X, xp) + experts.log_likelihood(X, y, xp)
        resp = to_numpy(xp.exp(log_softmax(log_joint, 0, xp)), xp)  # (L, m)
        m = resp.shape[1]
        scores = np.zeros((m, n_leaves, layout.size))
        hessian = np.zeros((layout.size, layout.size))
        # gates: every node's softmax over its children
        xg = to_numpy(wide(gates.design(X, xp), xp), xp)
        p_g = xg.shape[1]
        for b, (batch, coef) in enumerate(zip(tree.batches, gates.coefs, strict=True)):
            k = batch.n_children
            if k < 2:  # a gate of one child has no parameters
                continue
            logits = softmax_logits(gates.design(X, xp), coef, xp)
            probs = to_numpy(xp.exp(log_softmax(logits, 0, xp)), xp)  # (K, G, m)
            for g, node in enumerate(batch.nodes):
                minus_g, curvature = _softmax_blocks(probs[:, g, :], xg)
                offset = layout.gate_offsets[b][g]
                block = slice(offset, offset + (k - 1) * p_g)
                for c, child in enumerate(tree.children[node]):
                    leaves = slice(*tree.ranges[child])  # the leaves under the child
                    score = minus_g.copy()
                    if c > 0:
                        score[:, c - 1, :] += xg
                    scores[:, leaves, block] += score.reshape(m, 1, -1)
                mass = resp[slice(*tree.ranges[node])].sum(axis=0)
                hessian[block, block] -= curvature(w * mass)
        # experts
        xe = to_numpy(wide(experts.design(X, xp), xp), xp)
        p_e = xe.shape[1]
        if layout.multi_output:
            expert_scores, expert_hessian = experts.leaf_derivatives(X, y, w * resp, xp)
            for leaf in range(n_leaves):
                offset = layout.expert_offsets[leaf]
                block = slice(offset, offset + layout.expert_block)
                scores[:, leaf, block] = expert_scores[leaf]
                hessian[block, block] += expert_hessian[leaf]
        elif layout.softmax:
            probs = to_numpy(xp.exp(experts.predict_log_proba(X, xp)), xp)  # (C, L, m)
            codes = to_numpy(y, xp).astype(int)
            for leaf in range(n_leaves):
                minus_g, curvature = _softmax_blocks(probs[:, leaf, :], xe)
                offset = layout.expert_offsets[leaf]
                block = slice(offset, offset + layout.expert_block)
                score = minus_g
                hit = codes > 0
                score[hit, codes[hit] - 1, :] += xe[hit]
                scores[:, leaf, block] = score.reshape(m, -1)
                hessian[block, block] -= curvature(w * resp[leaf])
        else:
            d = {
                name: to_numpy(value, xp)
                for name, value in experts.eta_derivatives(X, y, xp).items()
            }
            for leaf in range(n_leaves):
                offset = layout.expert_offsets[leaf]
                coef = slice(offset, offset + p_e)
                scores[:, leaf, coef] = d["d_eta"][leaf][:, None] * xe
                rw = w * resp[leaf]
                hessian[coef, coef] += (xe * (rw * d["d_eta2"][leaf])[:, None]).T @ xe
                if layout.n_tau:
                    tau = offset + p_e
                    scores[:, leaf, tau] = d["d_tau"][leaf]
                    cross = xe.T @ (rw * d["d_eta_tau"][leaf])
                    hessian[coef, tau] += cross
                    hessian[tau, coef] += cross
                    hessian[tau, tau] += rw @ d["d_tau2"][leaf]
        # Louis: + sum_j r s s^T - g g^T
        weighted = scores * np.sqrt(w[:, None, None] * resp.T[:, :, None])
        flat = weighted.reshape(m * n_leaves, -1)
        gradient = np.einsum("ml,mlp->mp", resp.T, scores) * np.sqrt(w)[:, None]
        hessian += flat.T @ flat - gradient.T @ gradient
        info -= hessian
    return 0.5 * (info + info.T), layout


def covariance(info):
    """The inverse of the information, with a warning where it is singular."""
    try:
        factor = np.linalg.cholesky(info)
    except np.linalg.LinAlgError:
        warnings.warn(
            "The observed information matrix is not positive definite: EM "
            "stopped short of the maximum (refit with a smaller tol, e.g. 1e-8), "
            "or some parameters are not identified by the data (an expert or "
            "gate child that no sample reaches, a gate that separates its "
            "children perfectly, a constant feature). The standard errors are "
            "not meaningful; refit, use fewer experts, or method='bootstrap'.",
            UserWarning,
            stacklevel=4,
        )
        return np.linalg.pinv(info, hermitian=True)
    inverse = np.linalg.inv(factor)
    return inverse.T @ inverse


def data_units(model, layout):
    """The linear map from the reported standardised coefficients to the
    data's units, and the shift of every row (the target's centre on the
    intercepts of experts whose target is standardised).

    A group's coefficients over columns ``c`` (the intercept last) map as
    ``slope_f = b_f / s_f``, ``intercept = b_0 - sum_f b_f m_f / s_f`` with
    ``m`` and ``s`` the inputs' centres and scales, then times the
    target's scale for a standardised target."""
    scaling = model._scaling
    mean = to_numpy(scaling.x_mean, model._placement.xp)
    scale = to_numpy(scaling.x_scale, model._placement.xp)
    n_features = model.n_features_in_
    target = model._is_regression and model._family() is None
    size = len(layout.rows)
    A = np.zeros((size, size))
    shift = np.zeros(size)
    groups = {}
    for r, row in enumerate(layout.rows):
        groups.setdefault(row["group"], []).append(r)
    y_scale = np.atleast_1d(scaling.y_scale)
    y_mean = np.atleast_1d(scaling.y_mean)
    for group, members in groups.items():
        intercept = next(r for r in members if layout.rows[r]["column"] == n_features)
        scaled = target and group[0] == "expert"  # group: (kind, node, output)
        factor = y_scale[group[2]] if scaled else 1.0
        for r in members:
            column = layout.rows[r]["column"]
            if column == n_features:
                A[r, r] = factor
                if scaled:
                    shift[r] = y_mean[group[2]]
            else:
                A[r, r] = factor / scale[column]
                A[intercept, r] = -factor * mean[column] / scale[column]
    return A, shift


def estimates(model, layout):
    """The reported coefficients in standardised units, in ``layout``'s
    order: the gates' and softmax experts' relative to their reference."""
    xp = model._placement.xp
    values = np.zeros(layout.size)
    for b, coef in enumerate(model._gates.coefs):
        coef = to_numpy(coef, xp)  # (G, p, K) of batch b
        for g, offset in enumerate(layout.gate_offsets[b]):
            relative = coef[g, :, 1:] - coef[g, :, :1]  # (p, K-1)
            values[offset : offset + relative.size] = relative.T.ravel()
    if not layout.has_experts:
        return values[[row["index"] for row in layout.rows]]
    coef = to_numpy(model._experts.coef, xp)
    for leaf, offset in enumerate(layout.expert_offsets):
        if layout.softmax:
            relative = coef[leaf, :, 1:] - coef[leaf, :, :1]
            values[offset : offset + relative.size] = relative.T.ravel()
        elif layout.multi_output:  # (p, T): target by target
            values[offset : offset + coef[leaf].size] = coef[leaf].T.ravel()
        else:
            values[offset : offset + coef.shape[1]] = coef[leaf]
    return values[[row["index"] for row in layout.rows]]


def feature_label(model, column):
    """The name of design column ``column``: the feature's name (or its
    index, without names), or "intercept"."""
    if column == model.n_features_in_:
        return "intercept"
    names = getattr(model, "feature_names_in_", None)
    return str(names[column]) if names is not None else column


def wald_table(estimate, cov, alpha):
    """Standard errors, z, two-sided p-values and the ``1 - alpha``
    interval of every estimate."""
    std_error = np.sqrt(np.maximum(np.diag(cov), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = estimate / std_error
    p_value = 2 * stats.norm.sf(np.abs(z))
    half = stats.norm.ppf(1 - alpha / 2) * std_error
    return std_error, z, p_value, estimate - half, estimate + half


def entropy(resp, weight):
    """``sum_i w_i sum_j -r_ij log r_ij`` of responsibilities (n, L)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(resp > 0, -resp * np.log(resp), 0.0)
    return float(weight @ terms.sum(axis=1))


def check_alpha(alpha):
    if not (isinstance(alpha, float | int) and 0 < alpha < 1) or isinstance(
        alpha, bool
    ):
        raise ValueError(f"alpha={alpha!r}; it must be in (0, 1), e.g. 0.05.")
    return float(alpha)
