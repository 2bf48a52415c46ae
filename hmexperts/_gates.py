"""The tree of gates: leaf priors, node posteriors and the gates' M-step.

A tree of ``depth`` levels in which every internal node has ``n_experts``
children has ``n_experts ** depth`` leaves. Level ``d`` holds
``n_experts ** d`` gates, stored as one batch of softmax models of shape
``(n_experts ** d, n_params, n_experts)``. Nodes are numbered level by level
so that child ``c`` of node ``v`` is node ``v * n_experts + c`` of the next
level: the leaves under any node form a contiguous block, and the posterior
of a node is a reshape and a sum of the leaf posteriors.

With ``balance > 0`` the gates also pay for uneven expert importance (the
load-balancing loss of Shazeer et al., 2017): ``balance`` times the total
sample weight times the squared coefficient of variation of the leaves'
summed priors. That term couples all gates, so its M-step is a sequence of
Newton steps on its linearisation, each accepted only if the penalised
objective of the level does not decrease.
"""

from ._array_api import device, log_softmax, wide
from ._solvers import fit_softmax, group_rows, softmax_logits, softmax_objective

# Load-balanced M-step: outer Newton steps per level, step halvings per step.
_BALANCE_STEPS = 8
_BALANCE_HALVINGS = 12
_BALANCE_RTOL = 1e-7


class GateTree:
    """Gates of an HME, one batched softmax model per level.

    Parameters
    ----------
    n_experts : int
        Children per gate (branching factor).
    depth : int
        Number of gate levels.
    alpha : float
        L2 penalty on every gate coefficient (intercepts included).
    balance : float, default=0.0
        Weight of the load-balancing penalty, ``balance * sum_i w_i * CV^2``
        of the leaves' importance ``I_j = sum_i w_i pi_j(x_i)``.
    """

    def __init__(self, n_experts, depth, alpha, balance=0.0):
        self.n_experts = n_experts
        self.depth = depth
        self.alpha = alpha
        self.balance = balance
        self.coef = None

    @property
    def n_leaves(self):
        return self.n_experts**self.depth

    def init_params(self, n_params, X, xp):
        """Uniform gates: every coefficient zero."""
        k = self.n_experts
        self.coef = [
            xp.zeros((k**d, n_params, k), dtype=xp.float64, device=device(X))
            for d in range(self.depth)
        ]

    def get_state(self):
        """A snapshot of the gates' parameters (the M-step replaces arrays,
        never changes them in place)."""
        return list(self.coef)

    def set_state(self, state):
        self.coef = list(state)

    def log_prior(self, X, xp):
        """Log prior of every leaf, ``sum over the path of log g_v(child | x)``.

        Parameters
        ----------
        X : array of shape (n_samples, n_params)

        Returns
        -------
        log_prior : array of shape (n_leaves, n_samples)
        """
        n = X.shape[0]
        log_prior = xp.zeros((1, n), dtype=xp.float64, device=device(X))
        for coef in self.coef:
            log_gate = log_softmax(softmax_logits(X, coef, xp), 0, xp)  # (K, G, n)
            # child c of node v is node v * K + c of the next level
            log_path = xp.permute_dims(log_prior[None, :, :] + log_gate, (1, 0, 2))
            log_prior = xp.reshape(log_path, (-1, n))
        return log_prior

    def node_posteriors(self, resp, level, xp):
        """Posterior mass of every node of ``level`` from the leaf posteriors.

        Returns
        -------
        posterior : array of shape (n_experts ** level, n_samples)
        """
        n = resp.shape[1]
        n_nodes = self.n_experts**level
        return xp.sum(xp.reshape(resp, (n_nodes, -1, n)), axis=1)

    def fit(self, X, resp, xp, outer=None, sample_weight=None):
        """M-step: fit each level's gates to the posteriors of their children.

        Parameters
        ----------
        X : array of shape (n_samples, n_params)
        resp : array of shape (n_leaves, n_samples)
            Leaf posteriors times sample weights.
        outer : array or None
            The outer products of ``X``'s rows, if kept for the fit.
        sample_weight : array of shape (n_samples,) or None
            Needed by the load-balancing penalty only.
        """
        for level, coef in enumerate(self.coef):
            targets = self._targets(resp, level, xp)
            if self.balance > 0 and self.n_leaves > 1:
                self._fit_balanced(X, targets, level, sample_weight, xp, outer)
                continue
            # Under hard or truncated EM a gate sees only the samples that
            # reach its node: fit it on those alone.
            grouped = group_rows(X, self.node_posteriors(resp, level, xp), xp, outer)
            if grouped is not None:
                take, X_level, outer_level = grouped
                targets = take(targets)
            else:
                X_level, outer_level = X, outer
            self.coef[level] = fit_softmax(
                X_level,
                targets,
                coef,
                self.alpha,
                xp,
                outer=outer_level,
                penalty_name="gate_alpha",
            )

    def _targets(self, node_mass, level, xp):
        """Mass of every child of every gate of ``level``, (K, G, n)."""
        n, k = node_mass.shape[1], self.n_experts
        children = self.node_posteriors(node_mass, level + 1, xp)  # (G * K, n)
        return xp.permute_dims(xp.reshape(children, (k**level, k, n)), (1, 0, 2))

    def _level_objective(self, X, targets, level, sample_weight, xp):
        """The penalised objective of level ``level``'s gates as a whole."""
        fit = xp.sum(softmax_objective(X, targets, self.coef[level], self.alpha, xp))
        log_prior = self.log_prior(X, xp)
        return float(fit) - self.balance_penalty(log_prior, sample_weight, xp)

    def _fit_balanced(self, X, targets, level, sample_weight, xp, outer):
        """Newton steps on the load-balanced objective of one level.

        The penalty's gradient with respect to the gate logits is that of a
        soft-target term: adding ``A - g * sum_k A`` to the targets (``A``
        the penalty's derivative by the leaf priors, summed into the
        children; ``g`` the gate probabilities) linearises it without
        changing the targets' mass, so the Newton system stays positive
        definite. Each step is halved until the true objective does not drop.
        """
        objective = self._level_objective(X, targets, level, sample_weight, xp)
        scale = float(xp.sum(sample_weight)) + 1.0
        for _ in range(_BALANCE_STEPS):
            old = self.coef[level]
            prior = xp.exp(self.log_prior(X, xp))
            grad = self._balance_gradient(prior, sample_weight, xp)
            push = self._targets(
                grad[:, None] * prior * sample_weight[None, :], level, xp
            )
            gate = xp.exp(log_softmax(softmax_logits(X, old, xp), 0, xp))
            linear = targets + push - gate * xp.sum(push, axis=0)[None, :, :]
            proposal = fit_softmax(
                X, linear, old, self.alpha, xp, 1, outer, penalty_name="gate_alpha"
            )
            step, accepted = 1.0, None
            for _ in range(_BALANCE_HALVINGS):
                self.coef[level] = old + step * (proposal - old)
                candidate = self._level_objective(X, targets, level, sample_weight, xp)
                if candidate >= objective:
                    accepted = candidate
                    break
                step *= 0.5
            if accepted is None:
                self.coef[level] = old
                return
            gain, objective = (accepted - objective) / scale, accepted
            if gain <= _BALANCE_RTOL:
                return

    def _balance_gradient(self, prior, sample_weight, xp):
        """``c_j`` with ``d penalty / d pi_ij = -c_j w_i``, shape (n_leaves,)."""
        n_leaves = self.n_leaves
        share = (prior @ sample_weight) / xp.sum(sample_weight)
        return -2.0 * self.balance * n_leaves * (share - 1.0 / n_leaves)

    def balance_penalty(self, log_prior, sample_weight, xp):
        """``balance * sum_i w_i * CV^2`` of the leaves' importance.

        ``CV^2 = n_leaves * sum_j (I_j / W - 1 / n_leaves)^2`` with
        ``I_j = sum_i w_i pi_j(x_i)`` and ``W = sum_i w_i``: 0 for an even
        load, ``n_leaves - 1`` when one leaf takes everything.
        """
        if not self.balance > 0:
            return 0.0
        importance = xp.exp(log_prior) @ wide(sample_weight, xp)
        return self.importance_penalty(importance, float(xp.sum(sample_weight)), xp)

    def importance_penalty(self, importance, total, xp):
        """The load-balancing penalty from the leaves' importance ``I_j``
        (summed over all samples, chunk by chunk) and the total weight."""
        if not self.balance > 0:
            return 0.0
        return self.balance * total * _cv2(importance / total, xp)

    def penalty(self, xp):
        """``alpha / 2`` times the squared norm of all gate coefficients."""
        return 0.5 * self.alpha * sum(float(xp.sum(c**2)) for c in self.coef)

    def n_free_params(self, n_params):
        """Free parameters: each gate has ``(n_experts - 1) * n_params``."""
        return (self.n_leaves - 1) * n_params


def importance_cv2(log_prior, sample_weight, xp):
    """Squared coefficient of variation of the leaves' importance
    ``I_j = sum_i w_i pi_j(x_i)``, from log priors of shape (n_leaves, n)."""
    sample_weight = wide(sample_weight, xp)
    share = (xp.exp(log_prior) @ sample_weight) / xp.sum(sample_weight)
    return _cv2(share, xp)


def _cv2(share, xp):
    """``n_leaves * sum_j (share_j - 1 / n_leaves)^2`` for shares summing to 1."""
    n_leaves = share.shape[0]
    return n_leaves * float(xp.sum((share - 1.0 / n_leaves) ** 2))
