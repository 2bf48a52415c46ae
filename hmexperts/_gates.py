"""The tree of gates: leaf priors, node posteriors and the gates' M-step.

A tree of ``depth`` levels in which every internal node has ``n_experts``
children has ``n_experts ** depth`` leaves. Level ``d`` holds
``n_experts ** d`` gates, stored as one batch of softmax models of shape
``(n_experts ** d, n_params, n_experts)``. Nodes are numbered level by level
so that child ``c`` of node ``v`` is node ``v * n_experts + c`` of the next
level: the leaves under any node form a contiguous block, and the posterior
of a node is a reshape and a sum of the leaf posteriors.

The tree is a ``NewtonComponent``: its statistics are, per level, the sums
of a weighted multinomial logistic regression whose targets are the
posteriors of each gate's children (``softmax_sums`` at the current gates),
and its M-step is a Newton step for every gate of every level at once.

With ``balance > 0`` the gates also pay for uneven expert importance (the
load-balancing loss of Shazeer et al., 2017): ``balance`` times the total
sample weight times the squared coefficient of variation of the leaves'
summed priors ``I_j``. Its gradient is linear in the sums
``dI_j / dW_v`` that every chunk adds to the statistics, so the Newton step
takes it in; EM's step halving keeps the penalised objective from going
down.
"""

from ._array_api import device, log_softmax, wide
from ._components import NewtonComponent, add_stats
from ._solvers import group_rows, softmax_logits, softmax_sums


class GateTree(NewtonComponent):
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

    penalty_name = "gate_alpha"

    def __init__(self, n_experts, depth, alpha, balance=0.0):
        self.n_experts = n_experts
        self.depth = depth
        self.alpha = alpha
        self.balance = balance
        self.coefs = None

    @property
    def coef(self):
        """The coefficients of every level, (n_experts ** d, n_params, n_experts)."""
        return self.coefs

    @coef.setter
    def coef(self, coefs):
        self.coefs = list(coefs)

    @property
    def n_leaves(self):
        return self.n_experts**self.depth

    def init_params(self, n_params, like, xp):
        """Uniform gates: every coefficient zero."""
        k = self.n_experts
        self.coefs = [
            xp.zeros((k**d, n_params, k), dtype=xp.float64, device=device(like))
            for d in range(self.depth)
        ]

    def get_state(self):
        """A snapshot of the gates' parameters (the M-step replaces arrays,
        never changes them in place)."""
        return list(self.coefs)

    def set_state(self, state):
        self.coefs = list(state)

    def free_parameters(self, xp):
        """Every level's coefficients (no constraints)."""
        return list(self.coefs)

    def set_free_parameters(self, free, xp):
        self.coefs = list(free)

    def log_prior(self, X, xp):
        """Log prior of every leaf, ``sum over the path of log g_v(child | x)``.

        Parameters
        ----------
        X : array of shape (n_samples, n_params)

        Returns
        -------
        log_prior : array of shape (n_leaves, n_samples), float64
        """
        X = self.design(X, xp)
        n = X.shape[0]
        log_prior = xp.zeros((1, n), dtype=xp.float64, device=device(X))
        for coef in self.coefs:
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

    def _targets(self, node_mass, level, xp):
        """Mass of every child of every gate of ``level``, (K, G, n)."""
        n, k = node_mass.shape[1], self.n_experts
        children = self.node_posteriors(node_mass, level + 1, xp)  # (G * K, n)
        return xp.permute_dims(xp.reshape(children, (k**level, k, n)), (1, 0, 2))

    def accumulate(self, stats, chunk, resp, xp):
        """Add the chunk's sums: for every level, its gates' ``softmax_sums``
        with the children's posteriors as targets (every gate on the rows
        that reach it, when few do: hard or truncated EM); with load
        balance, the sums behind the penalty's gradient."""
        levels = []
        X, outer = self.design(chunk.X, xp), self.outer(chunk)
        for level, coef in enumerate(self.coefs):
            targets = self._targets(resp, level, xp)
            node_mass = self.node_posteriors(resp, level, xp)
            grouped = group_rows(X, node_mass, xp, outer)
            if grouped is not None:
                take, X_level, outer_level = grouped
                targets = take(targets)
            else:
                X_level, outer_level = X, outer
            levels.append(softmax_sums(X_level, targets, coef, xp, outer_level))
        new = {"levels": levels}
        if self.balance > 0:
            new["balance"] = self._balance_sums(chunk, xp)
        return add_stats(stats, new)

    def _batch_sums(self, stats):
        return stats["levels"]

    # -- load balance --------------------------------------------------------

    def _balance_sums(self, chunk, xp):
        """The chunk's importance ``I_j = sum_i w_i pi_ij``, its weight, and
        for every level ``M[g, c, j] = sum_i w_i pi_ij (1[j under child c of
        g] - g_gc(x_i)) x_i``, the derivative of ``I_j`` by gate ``g``'s
        coefficients of child ``c`` (for the leaves ``j`` under ``g``)."""
        prior = xp.exp(self.log_prior(chunk.X, xp))  # (L, rows)
        X = wide(self.design(chunk.X, xp), xp)
        weight = chunk.weight
        weighted = prior * weight[None, :]
        n_leaves, rows = prior.shape
        k, p = self.n_experts, X.shape[1]
        per_leaf = weighted @ X  # (L, P): sum_i w_i pi_ij x_i
        derivatives = []
        for level, coef in enumerate(self.coefs):
            n_gates = k**level
            leaves = n_leaves // n_gates  # under every gate of this level
            gate = xp.exp(
                log_softmax(softmax_logits(X, coef, xp), 0, xp)
            )  # (K, G, rows)
            # T2[g, c, j] = sum_i g_gc(x_i) w_i pi_ij x_i for the leaves j under g
            products = xp.permute_dims(gate, (1, 0, 2))[:, :, None, :] * xp.reshape(
                weighted, (n_gates, 1, leaves, rows)
            )
            second = xp.reshape(
                xp.reshape(products, (n_gates * k * leaves, rows)) @ X,
                (n_gates, k, leaves, p),
            )
            # T1[g, c, j] = sum_i w_i pi_ij x_i where j is under child c of g
            child = xp.arange(leaves, device=device(X)) // (leaves // k)
            under = xp.astype(
                child[None, :] == xp.arange(k, device=device(X))[:, None], xp.float64
            )  # (K, leaves)
            first = under[None, :, :, None] * xp.reshape(
                per_leaf, (n_gates, 1, leaves, p)
            )
            derivatives.append(first - second)
        return {
            "importance": xp.sum(weighted, axis=1),
            "weight": xp.sum(weight),
            "derivatives": derivatives,
        }

    def _extra_gradients(self, stats, xp):
        """The load-balancing penalty's part of the objective's gradient:
        ``-sum_j a_j dI_j / dW`` with ``a_j = 2 balance L (I_j / W - 1 / L)``
        the penalty's derivative by ``I_j``."""
        if not self.balance > 0:
            return [None] * len(self.coefs)
        sums = stats["balance"]
        n_leaves = self.n_leaves
        share = sums["importance"] / sums["weight"]
        a = 2.0 * self.balance * n_leaves * (share - 1.0 / n_leaves)
        gradients = []
        for level, derivative in enumerate(sums["derivatives"]):
            n_gates = self.n_experts**level
            a_level = xp.reshape(a, (n_gates, 1, -1, 1))
            gradient = -xp.sum(a_level * derivative, axis=2)  # (G, K, P)
            gradients.append(xp.permute_dims(gradient, (0, 2, 1)))
        return gradients

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
        return self.balance * total * share_cv2(importance / total, xp)

    def penalty(self, xp):
        """``alpha / 2`` times the squared norm of all gate coefficients."""
        return 0.5 * self.alpha * sum(float(xp.sum(c**2)) for c in self.coefs)

    def n_free_params(self, n_params):
        """Free parameters: each gate has ``(n_experts - 1) * n_params``."""
        return (self.n_leaves - 1) * n_params


def importance_cv2(log_prior, sample_weight, xp):
    """Squared coefficient of variation of the leaves' importance
    ``I_j = sum_i w_i pi_j(x_i)``, from log priors of shape (n_leaves, n)."""
    sample_weight = wide(sample_weight, xp)
    share = (xp.exp(log_prior) @ sample_weight) / xp.sum(sample_weight)
    return share_cv2(share, xp)


def share_cv2(share, xp):
    """``n_leaves * sum_j (share_j - 1 / n_leaves)^2`` for shares summing to 1."""
    n_leaves = share.shape[0]
    return n_leaves * float(xp.sum((share - 1.0 / n_leaves) ** 2))
