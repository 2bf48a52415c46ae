"""Trees of any shape: ``_tree.Tree`` and the gates on it."""

import numpy as np
import pytest
from scipy.special import softmax

from hmexperts._array_api import get_namespace
from hmexperts._gates import GateTree
from hmexperts._tree import Tree

# root -> [gate a (3 children: leaf, gate b (2 leaves), leaf), leaf]:
# leaves at depths 1, 2 and 3, gates of 2 and 3 children
UNBALANCED = Tree([[1, 2], [3, 4, 5], [], [], [6, 7], [], [], []])


def _random_gates(tree, rng, p=3):
    gates = GateTree(tree, alpha=1.0)
    X = np.column_stack([rng.normal(size=(9, p - 1)), np.ones(9)])
    gates.init_params(p, X, get_namespace(X))
    gates.coef = [rng.normal(size=c.shape) for c in gates.coef]
    return gates, X


def _gate_probability(gates, X, node, child):
    """``g_node(child | x)`` read from the batch that holds ``node``."""
    for b, batch in enumerate(gates.tree.batches):
        if node in batch.nodes:
            coef = gates.coef[b][batch.nodes.index(node)]
            return softmax(X @ coef, axis=1)[:, child]
    raise AssertionError(f"node {node} is in no batch")


def test_leaves_are_numbered_depth_first_with_contiguous_ranges():
    assert UNBALANCED.leaves == (3, 6, 7, 5, 2)
    assert UNBALANCED.ranges[1] == (0, 4)  # gate a: its four leaves
    assert UNBALANCED.ranges[4] == (1, 3)  # gate b
    assert UNBALANCED.to_nested() == [[0, [1, 2], 3], 4]
    assert [(b.depth, b.n_children, b.nodes) for b in UNBALANCED.batches] == [
        (0, 2, (0,)),
        (1, 3, (1,)),
        (2, 2, (4,)),
    ]
    assert UNBALANCED.balanced_shape() is None
    assert Tree.balanced(3, 2).balanced_shape() == (3, 2)


@pytest.mark.parametrize("tree", [UNBALANCED, Tree.balanced(3, 2), Tree.balanced(2, 3)])
def test_log_prior_is_the_product_of_the_gates_along_each_path(tree):
    gates, X = _random_gates(tree, np.random.RandomState(0))
    log_prior = gates.log_prior(X, np)
    assert log_prior.shape == (tree.n_leaves, 9)
    for leaf in range(tree.n_leaves):
        expected = sum(
            np.log(_gate_probability(gates, X, node, child))
            for node, child in tree.path(leaf)
        )
        np.testing.assert_allclose(log_prior[leaf], expected, rtol=1e-12)
    np.testing.assert_allclose(np.exp(log_prior).sum(axis=0), 1.0)


def test_gate_targets_are_the_children_masses():
    rng = np.random.RandomState(1)
    gates, X = _random_gates(UNBALANCED, rng)
    resp = rng.uniform(size=(5, 9))
    mass = gates.node_mass(resp, np)
    # gate a (depth 1) has children leaf 0, gate b (leaves 1-2) and leaf 3
    ((targets, gate_mass),) = gates._level_targets(resp, 1, np)
    np.testing.assert_allclose(targets[:, 0, :], mass[[3, 4, 5]])
    np.testing.assert_allclose(gate_mass[0], resp[:4].sum(axis=0))
    np.testing.assert_allclose(mass[0], resp.sum(axis=0))


def test_split_turns_a_leaf_into_a_gate_and_keeps_the_others_leaves():
    tree, origin = UNBALANCED.split(4, 2)  # the root's second child
    assert tree.n_leaves == 6
    assert tree.to_nested() == [[0, [1, 2], 3], [4, 5]]
    assert origin.tolist() == [0, 1, 2, 3, 4, 4]
    deeper, origin = tree.split(1, 3)
    assert deeper.to_nested() == [[0, [[1, 2, 3], 4], 5], [6, 7]]
    assert origin.tolist() == [0, 1, 1, 1, 2, 3, 4, 5]


def test_merge_undoes_a_split_and_keeps_every_other_node():
    tree, _ = UNBALANCED.split(4, 2)
    merged, _ = tree.merge(tree.parent[tree.leaves[4]])  # the split leaf's gate
    assert merged == UNBALANCED
    # a twig deep in the tree: gate b, over leaves 1 and 2
    node = tree.parent[tree.leaves[1]]
    merged, new_id = tree.merge(node)
    assert merged.to_nested() == [[0, 1, 2], [3, 4]]
    assert set(new_id) == set(range(tree.n_nodes)) - set(tree.children[node])
    for v, w in new_id.items():  # every kept node keeps its children
        kids = [] if v == node else [new_id[c] for c in tree.children[v]]
        assert list(merged.children[w]) == kids
    with pytest.raises(ValueError, match="not a gate over leaves only"):
        tree.merge(0)


def test_a_single_leaf_has_prior_one():
    gates = GateTree(Tree([[]]), alpha=1.0)
    X = np.ones((4, 1))
    gates.init_params(1, X, np)
    np.testing.assert_array_equal(gates.log_prior(X, np), np.zeros((1, 4)))
    assert gates.n_free_params(1) == 0


@pytest.mark.parametrize(
    "children, match",
    [
        ([[1, 1], []], "exactly one node"),
        ([[1], [0]], "exactly one node"),
        ([[1], [], []], "not reachable"),
    ],
)
def test_malformed_trees_are_refused(children, match):
    with pytest.raises(ValueError, match=match):
        Tree(children)


def test_load_balance_needs_a_balanced_tree():
    with pytest.raises(ValueError, match="balanced tree"):
        GateTree(UNBALANCED, alpha=1.0, balance=0.1)


def test_log_prior_of_a_tree_whose_leaves_come_first_at_a_level():
    # depth 1 holds a leaf, then a gate: the gate's rows are not the first
    tree = Tree([[1, 2], [], [3, 4, 5], [], [6, 7], [], [], []])
    gates, X = _random_gates(tree, np.random.RandomState(2))
    log_prior = gates.log_prior(X, np)
    for leaf in range(tree.n_leaves):
        expected = sum(
            np.log(_gate_probability(gates, X, node, child))
            for node, child in tree.path(leaf)
        )
        np.testing.assert_allclose(log_prior[leaf], expected, rtol=1e-12)


@pytest.mark.parametrize(
    "tree, balance",
    [
        (UNBALANCED, 0.0),
        (Tree([[1, 2], [], [3, 4, 5], [], [6, 7], [], [], []]), 0.0),
        (Tree.balanced(2, 3), 0.3),
        (Tree.balanced(3, 2), 0.0),
    ],
)
@pytest.mark.parametrize("hard", [False, True])
def test_gate_sums_from_the_e_steps_log_gates_equal_those_made_anew(
    tree, balance, hard
):
    # the E-step keeps every batch's log gate probabilities (log_prior's
    # keep) for the gates' sums; with one leaf per sample (hard EM) the
    # batches of several gates gather each gate's rows, and the kept
    # log-probabilities with them
    from hmexperts._components import Chunk

    rng = np.random.RandomState(3)
    n = 60
    gates = GateTree(tree, alpha=1.0, balance=balance)
    X = np.column_stack([rng.normal(size=(n, 2)), np.ones(n)])
    gates.init_params(3, X, np)
    gates.coef = [rng.normal(size=c.shape) for c in gates.coef]
    resp = rng.uniform(size=(tree.n_leaves, n))
    if hard:
        resp = (resp == resp.max(axis=0)).astype(float)
    weight = rng.uniform(0.5, 2.0, size=n)
    resp = resp * weight
    chunk = Chunk(X, np.zeros(n), weight, slice(0, n))
    kept = []
    log_prior = gates.log_prior(X, np, keep=kept)
    np.testing.assert_array_equal(log_prior, gates.log_prior(X, np))
    assert [k[0].shape for k in kept] == [
        (b.n_children, len(b.nodes), n) for b in tree.batches
    ]
    for log_gate, gate in kept:
        np.testing.assert_allclose(gate, np.exp(log_gate), rtol=1e-14)
    expected = gates.accumulate(None, chunk, resp, np)
    got = gates.accumulate(None, chunk, resp, np, log_gates=kept)

    def compare(a, b):
        if isinstance(a, dict):
            assert a.keys() == b.keys()
            for key in a:
                compare(a[key], b[key])
        elif isinstance(a, list):
            assert len(a) == len(b)
            for x, y in zip(a, b, strict=True):
                compare(x, y)
        else:
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)

    compare(expected, got)
