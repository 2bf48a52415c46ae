"""The shape of a gate tree: which node has which children.

A ``Tree`` is any rooted tree; its internal nodes are gates (a gate of one
child passes everything on, as in the balanced tree of ``n_experts=1``) and
its leaves hold the experts, at any depth. Node 0 is the
root. The leaves are numbered in depth-first order, so that the leaves under
any node form a contiguous range (``ranges``) and the posterior of a node is
a sum of consecutive leaf posteriors.

For EM the gates are grouped into *batches*: the gates of one depth with the
same number of children, ordered by node id, which ``GateTree`` stores as
one softmax model of shape ``(n_gates, n_params, n_children)``. The balanced
tree of ``n_experts ** depth`` leaves (``Tree.balanced``) has one batch per
level, numbered as the library always has (child ``c`` of node ``v`` of a
level is node ``v * n_experts + c`` of the next), so that its computations
are those of the balanced tree before trees of other shapes existed.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Batch:
    """Gates of one depth with the same number of children.

    Attributes
    ----------
    depth : int
    n_children : int
    nodes : tuple of int
        Their node ids, increasing.
    """

    depth: int
    n_children: int
    nodes: tuple


@dataclass(frozen=True)
class _Level:
    """How the log priors of one depth's children become the next depth's
    gates and leaves (positions in the depth's children, batch by batch)."""

    batches: tuple  # indices into Tree.batches
    next_gates: np.ndarray  # positions of the next depth's gates, in batch order
    leaf_positions: np.ndarray  # positions of this depth's children that are leaves
    leaf_ids: np.ndarray  # their leaf numbers
    gates_in_order: bool  # every child a gate, in the next depth's order
    all_leaves_in_order: bool  # every child a leaf, leaf_ids consecutive
    membership: (
        np.ndarray
    )  # (n_children, n_leaves): 1 where the leaf is under the child


class Tree:
    """A rooted tree of gates and leaves.

    Parameters
    ----------
    children : sequence of sequence of int
        ``children[v]`` lists the children of node ``v`` in order (empty for
        a leaf); node 0 is the root. Every other node is the child of
        exactly one node.
    """

    def __init__(self, children):
        children = tuple(tuple(int(c) for c in kids) for kids in children)
        n_nodes = len(children)
        if n_nodes == 0:
            raise ValueError("A tree needs at least one node.")
        parent = [-1] * n_nodes
        for v, kids in enumerate(children):
            for c in kids:
                if not 0 < c < n_nodes or parent[c] != -1:
                    raise ValueError(
                        f"Node {c} is not a valid child of node {v}: every node "
                        "but the root must be the child of exactly one node."
                    )
                parent[c] = v
        depth = [0] * n_nodes
        order = [0]  # breadth first
        for v in order:
            for c in children[v]:
                depth[c] = depth[v] + 1
                order.append(c)
        if len(order) != n_nodes:
            raise ValueError("Some nodes are not reachable from the root (node 0).")
        self.children = children
        self.parent = tuple(parent)
        self.depth = tuple(depth)
        # leaves in depth-first order, and the leaf range under every node
        leaves, ranges = [], [None] * n_nodes

        def visit(v):
            start = len(leaves)
            if not children[v]:
                leaves.append(v)
            for c in children[v]:
                visit(c)
            ranges[v] = (start, len(leaves))

        visit(0)
        self.leaves = tuple(leaves)
        self.ranges = tuple(ranges)
        self.leaf_of = {v: j for j, v in enumerate(leaves)}
        gates = [v for v in range(n_nodes) if children[v]]
        keys = sorted({(depth[v], len(children[v])) for v in gates})
        self.batches = tuple(
            Batch(
                d, k, tuple(v for v in gates if (depth[v], len(children[v])) == (d, k))
            )
            for d, k in keys
        )
        # the gates in batch order: their number in reports (``summary``)
        self.gates = tuple(v for batch in self.batches for v in batch.nodes)
        self._levels = self._plan()

    @classmethod
    def balanced(cls, n_experts, depth):
        """The tree of ``depth`` levels of gates with ``n_experts`` children
        each, numbered level by level."""
        children = []
        first = 0  # the first node of the current level
        for level in range(depth + 1):
            width = n_experts**level
            next_first = first + width
            for v in range(width):
                if level == depth:
                    children.append(())
                else:
                    start = next_first + v * n_experts
                    children.append(tuple(range(start, start + n_experts)))
            first = next_first
        return cls(children)

    @classmethod
    def from_nested(cls, nested):
        """The tree of a nested list: a list is a gate over its items, any
        other item a leaf (``[[0, 1], 2]``: a gate over a gate of two leaves
        and a leaf). Nodes are numbered breadth first."""
        children, queue = [], [nested]
        for item in queue:
            if isinstance(item, (list, tuple)):
                if len(item) == 0:
                    raise ValueError(
                        f"tree={nested!r} has an empty list; a gate needs at "
                        "least one child."
                    )
                first = len(queue)
                children.append(tuple(range(first, first + len(item))))
                queue.extend(item)
            else:
                children.append(())
        return cls(children)

    @property
    def n_leaves(self):
        return len(self.leaves)

    @property
    def n_nodes(self):
        return len(self.children)

    @property
    def max_depth(self):
        return max(self.depth)

    def balanced_shape(self):
        """``(n_experts, depth)`` if the tree is balanced (every gate with the
        same number of children, every leaf at the same depth), else None."""
        if not self.gates:
            return None
        widths = {len(self.children[v]) for v in self.gates}
        depths = {self.depth[v] for v in self.leaves}
        if len(widths) == 1 and len(depths) == 1:
            return widths.pop(), depths.pop()
        return None

    def __eq__(self, other):
        return isinstance(other, Tree) and self.children == other.children

    def __hash__(self):
        return hash(self.children)

    def __repr__(self):
        return f"Tree({[list(kids) for kids in self.children]})"

    def split(self, leaf, n_children=2):
        """The tree with leaf number ``leaf`` turned into a gate of
        ``n_children`` new leaves (appended as new nodes).

        Returns
        -------
        tree : Tree
        parent_of_leaf : ndarray of int
            For every leaf of the new tree, the leaf of this tree it came
            from (the split leaf for its children).
        """
        node = self.leaves[leaf]
        first = self.n_nodes
        children = [list(kids) for kids in self.children]
        children[node] = list(range(first, first + n_children))
        children.extend([] for _ in range(n_children))
        tree = Tree(children)
        origin = {v: self.leaf_of[v] for v in self.leaves if v != node}
        origin.update({c: leaf for c in children[node]})
        return tree, np.array([origin[v] for v in tree.leaves])

    def merge(self, node):
        """The tree with gate ``node``, whose children are all leaves, turned
        into a leaf: the inverse of ``split``.

        Returns
        -------
        tree : Tree
        new_id : dict
            The id in the new tree of every node of this one that stays
            (all but ``node``'s children).
        """
        kids = self.children[node]
        if not kids or any(self.children[c] for c in kids):
            raise ValueError(f"Node {node} is not a gate over leaves only.")
        kept = [v for v in range(self.n_nodes) if v not in kids]
        new_id = {v: i for i, v in enumerate(kept)}
        children = [
            [] if v == node else [new_id[c] for c in self.children[v]] for v in kept
        ]
        return Tree(children), new_id

    def path(self, leaf):
        """The gates from the root to leaf number ``leaf``, each with the
        position of the child taken: a list of ``(node, child)``."""
        v, steps = self.leaves[leaf], []
        while self.parent[v] != -1:
            p = self.parent[v]
            steps.append((p, self.children[p].index(v)))
            v = p
        return steps[::-1]

    def to_nested(self, node=0):
        """The tree as nested lists: a leaf is its leaf number, a gate the
        list of its children."""
        if not self.children[node]:
            return self.leaf_of[node]
        return [self.to_nested(c) for c in self.children[node]]

    # -- plans for the batched passes ----------------------------------------

    def _plan(self):
        levels = []
        gate_depth = {}
        for b, batch in enumerate(self.batches):
            gate_depth.setdefault(batch.depth, []).append(b)
        for d in range(self.max_depth):
            batches = tuple(gate_depth.get(d, ()))
            kids = [
                c
                for b in batches
                for v in self.batches[b].nodes
                for c in self.children[v]
            ]
            position = {c: i for i, c in enumerate(kids)}
            next_gates = [
                position[v]
                for b in gate_depth.get(d + 1, ())
                for v in self.batches[b].nodes
            ]
            leaf_positions = [i for i, c in enumerate(kids) if not self.children[c]]
            leaf_ids = [self.leaf_of[kids[i]] for i in leaf_positions]
            membership = np.zeros((len(kids), self.n_leaves))
            for i, c in enumerate(kids):
                lo, hi = self.ranges[c]
                membership[i, lo:hi] = 1.0
            levels.append(
                _Level(
                    batches=batches,
                    next_gates=np.asarray(next_gates, dtype=np.int64),
                    leaf_positions=np.asarray(leaf_positions, dtype=np.int64),
                    leaf_ids=np.asarray(leaf_ids, dtype=np.int64),
                    gates_in_order=next_gates == list(range(len(kids))),
                    all_leaves_in_order=(
                        len(leaf_positions) == len(kids)
                        and leaf_ids
                        == list(range(leaf_ids[0], leaf_ids[0] + len(kids)))
                    )
                    if leaf_positions
                    else False,
                    membership=membership,
                )
            )
        return tuple(levels)

    @property
    def levels(self):
        """One plan per depth with gates (``_Level``)."""
        return self._levels
