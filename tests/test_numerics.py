"""The numeric core against naive implementations.

Log-space reductions, batched weighted Gram matrices and ridge solves, the
batched softmax Newton solver, the gate tree's path priors and node
posteriors, and a whole depth-1 fit against an independent, loop-based EM for
a flat mixture of experts.
"""

import itertools

import array_api_compat.numpy as xp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import logsumexp as scipy_logsumexp
from scipy.special import softmax
from sklearn.exceptions import ConvergenceWarning

from hmexperts import (
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    _components,
    _solvers,
)
from hmexperts._array_api import log_softmax, logsumexp
from hmexperts._components import NewtonComponent
from hmexperts._gates import GateTree
from hmexperts._scaling import _weighted_quantiles, robust_center_scale
from hmexperts._solvers import (
    gram_sums,
    ridge_solve,
    softmax_penalised,
    softmax_sums,
    symmetric,
    weighted_sums,
)
from hmexperts.datasets import make_moe


def test_logsumexp_matches_scipy_and_keeps_minus_inf():
    rng = np.random.RandomState(0)
    a = rng.normal(scale=300, size=(4, 5))
    a[2] = -np.inf
    with np.errstate(divide="ignore"):  # NumPy's warning for log(0)
        result = logsumexp(a, 1, xp)
    np.testing.assert_allclose(result, scipy_logsumexp(a, axis=1))
    assert result[2] == -np.inf
    np.testing.assert_allclose(logsumexp(a[:2], 0, xp), scipy_logsumexp(a[:2], axis=0))
    np.testing.assert_allclose(
        np.exp(log_softmax(a[:2], 0, xp)), softmax(a[:2], axis=0), atol=1e-15
    )


def _gram(X, weights, outer=None):
    return symmetric(gram_sums(X, weights, xp, outer), X.shape[1], xp)


@pytest.mark.parametrize("chunk_elements", [7, 2**22])
def test_gram_sums_match_naive(monkeypatch, chunk_elements):
    monkeypatch.setattr(_solvers, "_CHUNK_ELEMENTS", chunk_elements)
    rng = np.random.RandomState(0)
    X, weights = rng.normal(size=(23, 4)), rng.uniform(size=(3, 23))
    expected = np.stack([X.T @ np.diag(w) @ X for w in weights])
    np.testing.assert_allclose(_gram(X, weights), expected, rtol=1e-12)


def test_ridge_solve_matches_naive():
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(30, 3)), rng.normal(size=30)
    weights, ridge = rng.uniform(size=(4, 30)), np.array([0.0, 0.1, 1.0, 10.0])
    coef = ridge_solve(_gram(X, weights), weighted_sums(X, y, weights, xp), ridge, xp)
    for w, lam, beta in zip(weights, ridge, coef, strict=True):
        expected = np.linalg.solve(
            X.T @ (w[:, None] * X) + lam * np.eye(3), X.T @ (w * y)
        )
        np.testing.assert_allclose(beta, expected, rtol=1e-10)


def _soft_targets(rng, n_classes, n_models, n_samples):
    raw = rng.gamma(0.3, size=(n_classes, n_models, n_samples))
    return raw / raw.sum(axis=0) * rng.uniform(0.2, 1, size=(n_models, n_samples))


class _SoftTargets(NewtonComponent):
    """A batch of softmax models fit to fixed soft targets by the library's
    Newton's method (``NewtonComponent.refine``), one pass per step."""

    penalty_name = "alpha"

    def __init__(self, X, targets, coef, alpha, outer=None):
        self.X, self.targets, self.outer = X, targets, outer
        self.coefs, self.alpha = [coef], alpha

    def fit(self):
        while self.refine([self.sums()], xp):
            pass
        return self.coefs[0]

    def sums(self):
        return softmax_sums(self.X, self.targets, self.coefs[0], xp, self.outer)

    def init_params(self, n_params, like, xp):
        pass

    def accumulate(self, stats, chunk, resp, xp):
        pass

    def penalty(self, xp):
        pass

    def get_state(self):
        pass

    def set_state(self, state):
        pass


def _objective(X, targets, coef, alpha):
    return softmax_penalised(softmax_sums(X, targets, coef, xp), coef, alpha, xp)


@pytest.mark.parametrize("chunk_elements", [50, 2**22])
def test_newton_on_soft_targets_reaches_the_scipy_optimum(monkeypatch, chunk_elements):
    monkeypatch.setattr(_solvers, "_CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setattr(_components, "_MAX_NEWTON_STEPS", 50)
    monkeypatch.setattr(_components, "_NEWTON_RTOL", 0.0)
    monkeypatch.setattr(_components, "_NEWTON_RELATIVE", 0.0)
    rng = np.random.RandomState(0)
    n, p, k, g, alpha = 200, 3, 3, 2, 0.5
    X = np.column_stack([rng.normal(size=(n, p - 1)), np.ones(n)])
    targets = _soft_targets(rng, k, g, n)
    coef = _SoftTargets(X, targets, np.zeros((g, p, k)), alpha).fit()

    for model in range(g):

        def negative_objective(w, model=model):
            return -_objective(
                X, targets[:, model : model + 1], w.reshape(1, p, k), alpha
            )[0]

        best = minimize(
            negative_objective, np.zeros(p * k), method="BFGS", options={"gtol": 1e-10}
        )
        np.testing.assert_allclose(coef[model], best.x.reshape(p, k), atol=1e-5)


def test_newton_on_soft_targets_never_decreases_its_objective():
    rng = np.random.RandomState(1)
    n, p, k, g = 60, 3, 4, 5
    X = np.column_stack([rng.normal(size=(n, p - 1)) * 5, np.ones(n)])
    for _ in range(20):
        targets = _soft_targets(rng, k, g, n)
        start = rng.normal(scale=10, size=(g, p, k))  # far from the optimum
        before = _objective(X, targets, start, 1e-3)
        after = _objective(
            X, targets, _SoftTargets(X, targets, start, 1e-3).fit(), 1e-3
        )
        assert np.all(after >= before)


def test_gate_tree_log_prior_is_the_product_along_paths():
    rng = np.random.RandomState(0)
    k, depth, n, p = 3, 3, 7, 3
    tree = GateTree.balanced(k, depth, alpha=1.0)
    tree.coef = [rng.normal(size=(k**d, p, k)) for d in range(depth)]
    X = np.column_stack([rng.normal(size=(n, p - 1)), np.ones(n)])
    log_prior = tree.log_prior(X, xp)
    assert log_prior.shape == (k**depth, n)
    for leaf, path in enumerate(itertools.product(range(k), repeat=depth)):
        expected, node = np.zeros(n), 0
        for level, child in enumerate(path):
            expected += np.log(softmax(X @ tree.coef[level][node], axis=1)[:, child])
            node = node * k + child
        np.testing.assert_allclose(log_prior[leaf], expected, rtol=1e-12)
    np.testing.assert_allclose(np.exp(log_prior).sum(axis=0), 1.0)


def test_node_posteriors_sum_the_leaves_below():
    rng = np.random.RandomState(0)
    tree = GateTree.balanced(2, 3, alpha=1.0)
    resp = rng.uniform(size=(8, 5))
    np.testing.assert_allclose(
        tree.node_posteriors(resp, 1, xp), [resp[:4].sum(0), resp[4:].sum(0)]
    )
    np.testing.assert_allclose(tree.node_posteriors(resp, 2, xp)[1], resp[2:4].sum(0))
    np.testing.assert_allclose(tree.node_posteriors(resp, 3, xp), resp)


def _reference_flat_moe(X, y, resp, *, gate_alpha, expert_alpha, min_variance, n_iter):
    """Loop-based EM for a flat mixture of linear-Gaussian experts.

    Written independently of the library, one expert at a time: the first
    M-step fits the gate by BFGS to the given responsibilities; every EM
    iteration then takes the exact expert M-step and one Newton step for the
    gate (a generalised EM step), its gradient and Hessian written out, the
    step halved while the penalised log-likelihood would go down. ``X`` and
    ``y`` are already standardised, ``X`` has the intercept column, ``resp``
    is (n_samples, n_experts).
    """
    n, p = X.shape
    k = resp.shape[1]

    def log_gate(gate):
        logits = X @ gate
        return logits - scipy_logsumexp(logits, axis=1, keepdims=True)

    def experts(resp):
        coef, variance = np.zeros((k, p)), np.zeros(k)
        for j in range(k):
            # penalty alpha ||beta||^2 / (2 sigma^2): ridge alpha, and the
            # shrinkage term in the variance
            r = resp[:, j]
            A = X.T @ (r[:, None] * X) + expert_alpha * np.eye(p)
            coef[j] = np.linalg.solve(A, X.T @ (r * y))
            rss = (r * (y - X @ coef[j]) ** 2).sum()
            variance[j] = max(
                (rss + expert_alpha * coef[j] @ coef[j]) / r.sum(), min_variance
            )
        return coef, variance

    def log_joint(gate, coef, variance):
        density = -0.5 * (
            np.log(2 * np.pi * variance)[None, :]
            + (y[:, None] - X @ coef.T) ** 2 / variance[None, :]
        )
        return log_gate(gate) + density

    def objective(gate, coef, variance):
        penalty = (
            0.5 * gate_alpha * (gate**2).sum()
            + 0.5 * expert_alpha * ((coef**2).sum(axis=1) / variance).sum()
        )
        return scipy_logsumexp(log_joint(gate, coef, variance), axis=1).sum() - penalty

    def gate_loss(w):
        w = w.reshape(p, k)
        return -(resp * log_gate(w)).sum() + 0.5 * gate_alpha * (w**2).sum()

    gate = minimize(
        gate_loss, np.zeros(p * k), method="BFGS", options={"gtol": 1e-10}
    ).x.reshape(p, k)
    coef, variance = experts(resp)
    for _ in range(n_iter):
        current = objective(gate, coef, variance)
        joint = log_joint(gate, coef, variance)
        resp = np.exp(joint - scipy_logsumexp(joint, axis=1, keepdims=True))
        coef, variance = experts(resp)
        # Newton direction of sum_i sum_c r_ic log g_c(x_i) - alpha/2 ||W||^2
        g = np.exp(log_gate(gate))
        gradient = X.T @ (resp - g) - gate_alpha * gate  # (p, k)
        hessian = gate_alpha * np.eye(p * k)
        for i in range(n):
            curvature = np.diag(g[i]) - np.outer(g[i], g[i])
            hessian += np.kron(curvature, np.outer(X[i], X[i]))
        step = np.linalg.solve(hessian, gradient.T.ravel()).reshape(k, p).T
        fraction = 1.0
        while objective(gate + fraction * step, coef, variance) < current:
            fraction /= 2
        gate = gate + fraction * step
    joint = log_joint(gate, coef, variance)
    return coef, variance, scipy_logsumexp(joint, axis=1).mean()


def test_unit_weights_take_the_quantiles_of_the_weighted_definition():
    # Unit weights find the quartiles by a partial sort: they must be those
    # of the weighted definition (doubled weights take the sorting path)
    # and NumPy's inverse of the empirical distribution function, on every
    # length and with ties
    rng = np.random.RandomState(0)
    for n in range(1, 41):
        V = rng.randint(0, 5, size=(n, 2)).astype(float)
        V[:, 1] += rng.normal(size=n)
        ones = np.ones(n)
        unit = _weighted_quantiles(V[:, 0], ones, (0.25, 0.5, 0.75), xp, True)
        np.testing.assert_array_equal(
            unit, np.quantile(V[:, 0], [0.25, 0.5, 0.75], method="inverted_cdf")
        )
        for a, b in zip(
            robust_center_scale(V, ones, xp),
            robust_center_scale(V, 2 * ones, xp),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)


def test_depth_one_equals_reference_flat_moe(monkeypatch):
    rng = np.random.RandomState(0)
    X = rng.uniform(-2, 2, size=(300, 2))
    y = np.where(X[:, 0] > 0, X @ [2.0, -1.0], X @ [-1.0, 0.5] + 1) + 0.2 * rng.normal(
        size=300
    )
    # standardised as the estimator does, so that it keeps them as they are
    # and both penalise the same coefficients
    weight = np.ones(len(X))
    center, scale = robust_center_scale(X, weight, xp)
    X = (X - center) / scale
    center, scale = robust_center_scale(y[:, None], weight, xp)
    y = (y - center) / scale
    resp = rng.dirichlet(np.ones(3) * 0.5, size=300)
    params = dict(gate_alpha=0.1, expert_alpha=0.1, min_variance=1e-3)

    # Both take the same steps from the same responsibilities, so their
    # iterates agree step by step, converged or not. The first M-step's
    # Newton loop normally stops once a step gains little; here it runs to
    # convergence, as BFGS does in the reference.
    monkeypatch.setattr(_components, "_NEWTON_RTOL", 0.0)
    monkeypatch.setattr(_components, "_NEWTON_RELATIVE", 0.0)
    monkeypatch.setattr(_components, "_MAX_NEWTON_STEPS", 50)
    # (plain EM: the reference has no accelerator)
    model = MixtureOfExpertsRegressor(
        n_experts=3, init_params=resp, max_iter=40, tol=0, acceleration=None, **params
    )
    with pytest.warns(ConvergenceWarning):
        model.fit(X, y)
    Xd = np.column_stack([X, np.ones(len(X))])
    coef, variance, log_likelihood = _reference_flat_moe(
        Xd, y, resp, n_iter=40, **params
    )

    fitted = np.column_stack([model.expert_coef_, model.expert_intercept_])
    np.testing.assert_allclose(fitted, coef, atol=1e-6)
    np.testing.assert_allclose(model.expert_variance_, variance, rtol=1e-6)
    np.testing.assert_allclose(
        model.log_likelihood(X, y).mean(), log_likelihood, rtol=1e-8
    )


@settings(max_examples=60, deadline=None)
@given(
    n_experts=st.integers(1, 4),
    depth=st.integers(1, 3),
    scale=st.floats(0.0, 200.0),
    seed=st.integers(0, 2**16),
)
def test_gate_priors_form_a_consistent_tree(n_experts, depth, scale, seed):
    # For any weights, however extreme: leaf priors are a distribution, and
    # the prior of every node is the sum of its children's (marginalisation).
    rng = np.random.RandomState(seed)
    tree = GateTree.balanced(n_experts, depth, alpha=1.0)
    tree.coef = [
        scale * rng.normal(size=(n_experts**d, 3, n_experts)) for d in range(depth)
    ]
    X = np.column_stack([rng.normal(size=(9, 2)), np.ones(9)])
    prior = np.exp(tree.log_prior(X, xp))
    assert np.all(np.isfinite(prior)) and np.all(prior >= 0)
    np.testing.assert_allclose(prior.sum(axis=0), 1.0, rtol=1e-12)
    if depth > 1:
        shallower = GateTree.balanced(n_experts, depth - 1, alpha=1.0)
        shallower.coef = tree.coef[:-1]
        np.testing.assert_allclose(
            tree.node_posteriors(prior, depth - 1, xp),
            np.exp(shallower.log_prior(X, xp)),
            atol=1e-12,
        )


def test_kept_outer_products_give_the_chunked_results(monkeypatch):
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.normal(size=(50, 3)), np.ones(50)])
    weights = rng.uniform(size=(3, 50))
    outer = _solvers.outer_products(X, xp)
    monkeypatch.setattr(_solvers, "_CHUNK_ELEMENTS", 40)  # many small chunks
    np.testing.assert_allclose(_gram(X, weights, outer), _gram(X, weights), rtol=1e-12)
    targets = _soft_targets(rng, 3, 2, 50)
    start = np.zeros((2, 4, 3))
    np.testing.assert_allclose(
        _SoftTargets(X, targets, start, 0.1, outer).fit(),
        _SoftTargets(X, targets, start, 0.1).fit(),
        rtol=1e-10,
        atol=1e-12,
    )


@pytest.mark.parametrize(
    "Model", [MixtureOfExpertsRegressor, MixtureOfExpertsClassifier]
)
def test_fit_is_the_same_with_and_without_kept_outer_products(monkeypatch, Model):
    task = "regression" if Model is MixtureOfExpertsRegressor else "classification"
    X, y, _ = make_moe(300, 3, n_experts=2, depth=2, task=task, random_state=0)
    kept = Model(n_experts=2, depth=2, random_state=0).fit(X, y)
    monkeypatch.setattr(_solvers, "_CACHE_ELEMENTS", 0)  # never keep them
    assert _solvers.outer_products(X, xp) is None
    chunked = Model(n_experts=2, depth=2, random_state=0).fit(X, y)
    np.testing.assert_allclose(kept.lower_bounds_, chunked.lower_bounds_, rtol=1e-10)


@pytest.mark.parametrize(
    "Model", [MixtureOfExpertsRegressor, MixtureOfExpertsClassifier]
)
def test_chunks_share_their_outer_products_when_not_kept(monkeypatch, Model):
    # beyond the fit-long cache, every chunk makes its rows' outer products
    # once, on first use, for the gates and the experts; the fit is the same
    # as with kept ones and as with every component making its own
    from hmexperts import _components

    task = "regression" if Model is MixtureOfExpertsRegressor else "classification"
    X, y, _ = make_moe(300, 3, n_experts=2, depth=2, task=task, random_state=0)
    monkeypatch.setattr(_solvers, "_CHUNK_ELEMENTS", 700)  # several chunks
    monkeypatch.setattr(_solvers, "_MIN_CHUNK_ROWS", 1)
    kept = Model(n_experts=2, depth=2, random_state=0).fit(X, y)
    monkeypatch.setattr(_solvers, "_CACHE_ELEMENTS", 0)  # never keep them
    made = []

    def counting(X_chunk, namespace):
        made.append(X_chunk.shape[0])
        return _solvers.chunk_outer_products(X_chunk, namespace)

    monkeypatch.setattr(_components, "chunk_outer_products", counting)
    shared = Model(n_experts=2, depth=2, random_state=0).fit(X, y)
    assert len(made) > 1 and sum(made) % 300 == 0 and max(made) < 300
    monkeypatch.setattr(_components, "chunk_outer_products", lambda X, ns: None)
    own = Model(n_experts=2, depth=2, random_state=0).fit(X, y)
    np.testing.assert_allclose(shared.lower_bounds_, kept.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(shared.lower_bounds_, own.lower_bounds_, rtol=1e-10)
