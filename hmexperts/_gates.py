"""The tree of gates: leaf priors, node posteriors and the gates' M-step.

The tree's shape is a ``_tree.Tree``: any rooted tree whose gates have two
or more children, with leaves at any depth; the balanced tree of
``n_experts ** depth`` leaves is one of them. The gates are stored in
*batches* (``Tree.batches``: the gates of one depth with the same number of
children), each one softmax model of shape ``(n_gates, n_params,
n_children)``; the balanced tree has one batch per level. The leaves are
numbered depth first, so the leaves under any node form a contiguous range
and the posterior of a node is a sum of consecutive leaf posteriors.

The tree is a ``NewtonComponent``: its statistics are, per batch, the sums
of a weighted multinomial logistic regression whose targets are the
posteriors of each gate's children (``softmax_sums`` at the current gates),
and its M-step is a Newton step for every gate of every batch at once.

With ``balance > 0`` (balanced trees) the gates also pay for uneven expert
importance (the load-balancing loss of Shazeer et al., 2017): ``balance``
times the total sample weight times the squared coefficient of variation of
the leaves' summed priors ``I_j``. Its gradient is linear in the sums
``dI_j / dW_v`` that every chunk adds to the statistics, so the Newton step
takes it in; EM's step halving keeps the penalised objective from going
down.
"""

from ._array_api import device, log_softmax, wide
from ._components import NewtonComponent, add_stats
from ._solvers import group_rows, softmax_logits, softmax_sums
from ._tree import Tree


class GateTree(NewtonComponent):
    """Gates of an HME, one batched softmax model per batch of the tree.

    Parameters
    ----------
    tree : Tree
        The tree's shape (``Tree.balanced(n_experts, depth)`` for a
        balanced one).
    alpha : float
        L2 penalty on every gate coefficient (intercepts included).
    balance : float, default=0.0
        Weight of the load-balancing penalty, ``balance * sum_i w_i * CV^2``
        of the leaves' importance ``I_j = sum_i w_i pi_j(x_i)`` (balanced
        trees only).
    """

    penalty_name = "gate_alpha"

    def __init__(self, tree, alpha, balance=0.0):
        self.tree = tree
        self.alpha = alpha
        self.balance = balance
        self.coefs = None
        shape = tree.balanced_shape()
        if balance > 0 and shape is None and tree.gates:
            raise ValueError("The load-balancing penalty needs a balanced tree.")
        self._balanced = shape

    @classmethod
    def balanced(cls, n_experts, depth, alpha, balance=0.0):
        """The gates of the balanced tree of ``n_experts ** depth`` leaves."""
        return cls(Tree.balanced(n_experts, depth), alpha, balance)

    @property
    def n_experts(self):
        """Children per gate of a balanced tree."""
        return self._balanced[0] if self._balanced else None

    @property
    def depth(self):
        """Levels of a balanced tree (0 for a single leaf)."""
        return self._balanced[1] if self._balanced else self.tree.max_depth

    @property
    def coef(self):
        """The coefficients of every batch, (n_gates, n_params, n_children)."""
        return self.coefs

    @coef.setter
    def coef(self, coefs):
        self.coefs = list(coefs)

    @property
    def n_leaves(self):
        return self.tree.n_leaves

    def init_params(self, n_params, like, xp):
        """Uniform gates: every coefficient zero."""
        self.coefs = [
            xp.zeros(
                (len(batch.nodes), n_params, batch.n_children),
                dtype=xp.float64,
                device=device(like),
            )
            for batch in self.tree.batches
        ]

    def get_state(self):
        """A snapshot of the gates' parameters (the M-step replaces arrays,
        never changes them in place)."""
        return list(self.coefs)

    def set_state(self, state):
        self.coefs = list(state)

    def free_parameters(self, xp):
        """Every batch's coefficients (no constraints)."""
        return list(self.coefs)

    def set_free_parameters(self, free, xp):
        self.coefs = list(free)

    def log_prior(self, X, xp, keep=None):
        """Log prior of every leaf, ``sum over the path of log g_v(child | x)``.

        Parameters
        ----------
        X : array of shape (n_samples, n_params)
        keep : list or None
            If a list, it is set to every batch's gate probabilities,
            ``keep[b] = (log_gate, gate)``, both of shape (n_children,
            n_gates, n_samples), for batch ``b`` of ``tree.batches``: what
            ``accumulate`` (``log_gates=``) would otherwise make again.
            They hold ``2 (n_leaves + n_gates - 1)`` values per sample,
            about four times the log prior's.

        Returns
        -------
        log_prior : array of shape (n_leaves, n_samples), float64
        """
        X = self.design(X, xp)
        n = X.shape[0]
        current = xp.zeros((1, n), dtype=xp.float64, device=device(X))
        dev = device(X)
        leaf_rows, leaf_ids = [], []
        if keep is not None:
            keep[:] = [None] * len(self.tree.batches)
        for level in self.tree.levels:
            parts, offset = [], 0
            for b in level.batches:
                coef = self.coefs[b]
                gates = coef.shape[0]
                parent = (
                    current
                    if len(level.batches) == 1
                    else current[offset : offset + gates, :]
                )
                offset += gates
                if keep is None:
                    log_gate = log_softmax(softmax_logits(X, coef, xp), 0, xp)
                else:  # (K, G, n), and the probabilities from the same exp
                    log_gate, prob = _log_softmax_and_softmax(
                        softmax_logits(X, coef, xp), xp
                    )
                    keep[b] = (log_gate, prob)
                # child c of gate v: row v * K + c of the level's children
                log_path = xp.permute_dims(parent[None, :, :] + log_gate, (1, 0, 2))
                parts.append(xp.reshape(log_path, (-1, n)))
            children = parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
            if level.all_leaves_in_order:
                leaf_rows.append(children)
            elif level.leaf_positions.size:
                positions = xp.asarray(level.leaf_positions, device=dev)
                leaf_rows.append(xp.take(children, positions, axis=0))
            leaf_ids.extend(level.leaf_ids.tolist())
            if level.gates_in_order:
                current = children
            elif level.next_gates.size:
                current = xp.take(
                    children, xp.asarray(level.next_gates, device=dev), axis=0
                )
        if not leaf_rows:  # a single leaf, no gate
            return current
        log_prior = (
            leaf_rows[0] if len(leaf_rows) == 1 else xp.concat(leaf_rows, axis=0)
        )
        if leaf_ids != list(range(len(leaf_ids))):
            order = sorted(range(len(leaf_ids)), key=leaf_ids.__getitem__)
            log_prior = xp.take(log_prior, xp.asarray(order, device=dev), axis=0)
        return log_prior

    def node_posteriors(self, resp, level, xp):
        """Posterior mass of every node of ``level`` of a balanced tree from
        the leaf posteriors.

        Returns
        -------
        posterior : array of shape (n_experts ** level, n_samples)
        """
        n = resp.shape[1]
        n_nodes = self.n_experts**level
        return xp.sum(xp.reshape(resp, (n_nodes, -1, n)), axis=1)

    def node_mass(self, resp, xp):
        """Posterior mass of every node (n_nodes, n_samples), the sums of the
        leaf posteriors under each."""
        rows = [xp.sum(resp[lo:hi, :], axis=0) for lo, hi in self.tree.ranges]
        return xp.stack(rows, axis=0)

    def _level_targets(self, resp, index, xp):
        """Per batch of depth ``index``: the mass of every child of every
        gate (K, G, n) and of every gate (G, n)."""
        level = self.tree.levels[index]
        n = resp.shape[1]
        if self._balanced:
            k = self.n_experts
            children = self.node_posteriors(resp, index + 1, xp)  # (G * K, n)
            targets = xp.permute_dims(xp.reshape(children, (k**index, k, n)), (1, 0, 2))
            return [(targets, self.node_posteriors(resp, index, xp))]
        membership = xp.asarray(level.membership, device=device(resp))
        children = membership @ wide(resp, xp)  # (n_children, n)
        out, offset = [], 0
        for b in level.batches:
            batch = self.tree.batches[b]
            size = len(batch.nodes) * batch.n_children
            block = xp.reshape(
                children[offset : offset + size, :],
                (len(batch.nodes), batch.n_children, n),
            )
            offset += size
            targets = xp.permute_dims(block, (1, 0, 2))
            out.append((targets, xp.sum(targets, axis=0)))
        return out

    def accumulate(self, stats, chunk, resp, xp, log_gates=None):
        """Add the chunk's sums: for every batch, its gates' ``softmax_sums``
        with the children's posteriors as targets (every gate on the rows
        that reach it, when few do: hard or truncated EM); with load
        balance, the sums behind the penalty's gradient.

        ``log_gates``: the chunk's log gate probabilities at the current
        coefficients and their exponentials, a pair per batch, as
        ``log_prior(..., keep=)``
        gives them (the E-step's), or None to make them here."""
        batches = [None] * len(self.tree.batches)
        X, outer = self.design(chunk.X, xp), self.outer(chunk)
        for index, level in enumerate(self.tree.levels):
            for b, (targets, node_mass) in zip(
                level.batches, self._level_targets(resp, index, xp), strict=True
            ):
                log_prob, prob = (None, None) if log_gates is None else log_gates[b]
                grouped = group_rows(X, node_mass, xp, outer)
                if grouped is not None:
                    take, X_batch, outer_batch = grouped
                    targets = take(targets)
                    if log_prob is not None:
                        log_prob, prob = take(log_prob), take(prob)
                else:
                    X_batch, outer_batch = X, outer
                batches[b] = softmax_sums(
                    X_batch,
                    targets,
                    self.coefs[b],
                    xp,
                    outer_batch,
                    log_prob=log_prob,
                    prob=prob,
                )
        new = {"levels": batches}
        if self.balance > 0:
            new["balance"] = self._balance_sums(chunk, xp, log_gates)
        return add_stats(stats, new)

    def _batch_sums(self, stats):
        return stats["levels"]

    # -- load balance --------------------------------------------------------

    def _balance_sums(self, chunk, xp, log_gates=None):
        """The chunk's importance ``I_j = sum_i w_i pi_ij``, its weight, and
        for every level ``M[g, c, j] = sum_i w_i pi_ij (1[j under child c of
        g] - g_gc(x_i)) x_i``, the derivative of ``I_j`` by gate ``g``'s
        coefficients of child ``c`` (for the leaves ``j`` under ``g``);
        ``log_gates`` as in ``accumulate``."""
        if log_gates is None:
            log_gates = []
            log_prior = self.log_prior(chunk.X, xp, keep=log_gates)
        else:  # the leaves' log priors, sums of the gates' along the paths
            log_prior = self._balanced_log_prior(log_gates, xp)
        prior = xp.exp(log_prior)  # (L, rows)
        X = wide(self.design(chunk.X, xp), xp)
        weight = chunk.weight
        weighted = prior * weight[None, :]
        n_leaves, rows = prior.shape
        k, p = self.n_experts, X.shape[1]
        per_leaf = weighted @ X  # (L, P): sum_i w_i pi_ij x_i
        derivatives = []
        for level, log_gate in enumerate(log_gates):
            n_gates = k**level
            leaves = n_leaves // n_gates  # under every gate of this level
            gate = log_gate[1]  # (K, G, rows)
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

    def _balanced_log_prior(self, log_gates, xp):
        """The leaves' log priors of a balanced tree from every level's log
        gate probabilities (as ``log_prior`` sums them)."""
        n = log_gates[0][0].shape[-1]
        current = xp.zeros((1, n), dtype=xp.float64, device=device(log_gates[0][0]))
        for log_gate, _ in log_gates:
            log_path = xp.permute_dims(current[None, :, :] + log_gate, (1, 0, 2))
            current = xp.reshape(log_path, (-1, n))
        return current

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


def _log_softmax_and_softmax(logits, xp):
    """``log_softmax(logits, 0)`` (the same operations, so the same values)
    and ``softmax(logits, 0)`` from its one exponential."""
    top = xp.max(logits, axis=0, keepdims=True)
    if not bool(xp.all(xp.isfinite(top))):
        top = xp.where(xp.isfinite(top), top, xp.zeros_like(top))
    scaled = xp.exp(logits - top)
    total = xp.sum(scaled, axis=0, keepdims=True)
    return logits - (xp.log(total) + top), scaled / total


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
