"""The tree of gates: leaf priors, node posteriors and the gates' M-step.

A tree of ``depth`` levels in which every internal node has ``n_experts``
children has ``n_experts ** depth`` leaves. Level ``d`` holds
``n_experts ** d`` gates, stored as one batch of softmax models of shape
``(n_experts ** d, n_params, n_experts)``. Nodes are numbered level by level
so that child ``c`` of node ``v`` is node ``v * n_experts + c`` of the next
level: the leaves under any node form a contiguous block, and the posterior
of a node is a reshape and a sum of the leaf posteriors.
"""

from ._array_api import device, log_softmax
from ._solvers import fit_softmax, softmax_logits


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
    """

    def __init__(self, n_experts, depth, alpha):
        self.n_experts = n_experts
        self.depth = depth
        self.alpha = alpha
        self.coef = None

    @property
    def n_leaves(self):
        return self.n_experts**self.depth

    def init_params(self, n_params, X, xp):
        """Uniform gates: every coefficient zero."""
        k = self.n_experts
        self.coef = [
            xp.zeros((k**d, n_params, k), dtype=X.dtype, device=device(X))
            for d in range(self.depth)
        ]

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
        log_prior = xp.zeros((1, n), dtype=X.dtype, device=device(X))
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

    def fit(self, X, resp, xp, outer=None):
        """M-step: fit each level's gates to the posteriors of their children.

        Parameters
        ----------
        X : array of shape (n_samples, n_params)
        resp : array of shape (n_leaves, n_samples)
            Leaf posteriors times sample weights.
        outer : array or None
            The outer products of ``X``'s rows, if kept for the fit.
        """
        n, k = X.shape[0], self.n_experts
        for level, coef in enumerate(self.coef):
            children = self.node_posteriors(resp, level + 1, xp)  # (G * K, n)
            targets = xp.permute_dims(xp.reshape(children, (k**level, k, n)), (1, 0, 2))
            self.coef[level] = fit_softmax(
                X, targets, coef, self.alpha, xp, outer=outer
            )

    def penalty(self, xp):
        """``alpha / 2`` times the squared norm of all gate coefficients."""
        return 0.5 * self.alpha * sum(float(xp.sum(c**2)) for c in self.coef)

    def n_free_params(self, n_params):
        """Free parameters: each gate has ``(n_experts - 1) * n_params``."""
        return (self.n_leaves - 1) * n_params
