"""Data drawn from known mixtures of experts, for teaching and testing.

``make_moe`` samples a tree of softmax gates and linear experts, draws the
inputs from a standard normal, routes every sample to a leaf by the leaf
priors and draws its target from that leaf's expert. The true parameters come
back with the data, together with an estimator that carries them, so that a
fit can be compared with the truth on every scale (coefficients,
log-likelihood, predictions).
"""

from numbers import Integral, Real

import array_api_compat.numpy
import numpy as np
from sklearn.utils import Bunch, check_random_state, check_scalar

from ._base import _Scaling
from ._classification import MixtureOfExpertsClassifier
from ._experts import LinearGaussianExperts, SoftmaxExperts
from ._gates import GateTree
from ._regression import MixtureOfExpertsRegressor

__all__ = ["make_moe"]


def make_moe(
    n_samples=1000,
    n_features=2,
    *,
    n_experts=2,
    depth=1,
    task="regression",
    n_classes=2,
    noise=0.1,
    gate_scale=4.0,
    coef_scale=1.0,
    random_state=None,
):
    """Draw data from a random mixture of experts with known parameters.

    Inputs are standard normal. Every gate of the tree (``depth`` levels,
    ``n_experts`` children each) has weights along random unit directions
    scaled by ``gate_scale`` (larger: sharper, more separable regions) and
    zero intercepts. Experts are linear-Gaussian (regression) with
    coefficients and intercepts of standard deviation ``coef_scale`` and
    noise standard deviation ``noise``, or multinomial-logistic
    (classification) with weights of standard deviation ``coef_scale``.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of samples.
    n_features : int, default=2
        Number of input features.
    n_experts : int, default=2
        Children of every gate.
    depth : int, default=1
        Levels of gates; the tree has ``n_experts ** depth`` leaves.
    task : {"regression", "classification"}, default="regression"
        Kind of experts and target.
    n_classes : int, default=2
        Number of classes (classification only).
    noise : float, default=0.1
        Standard deviation of every expert's Gaussian noise (regression only).
    gate_scale : float, default=4.0
        Norm of every gate's weight vectors.
    coef_scale : float, default=1.0
        Standard deviation of the experts' coefficients.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,)
        Targets: floats (regression) or integers in ``[0, n_classes)``.
    truth : :class:`~sklearn.utils.Bunch`
        ``gate_coef``, ``gate_intercept`` (lists over levels, shaped like a
        fitted estimator's ``gate_coef_`` and ``gate_intercept_``),
        ``expert_coef``, ``expert_intercept``, ``expert_variance``
        (regression), ``leaf`` (the leaf each sample was drawn from) and
        ``model``: a fitted :class:`~hmexperts.MixtureOfExpertsRegressor` or
        :class:`~hmexperts.MixtureOfExpertsClassifier` holding the true
        parameters, whose ``score_samples`` is the true log-likelihood.

    Examples
    --------
    >>> from hmexperts.datasets import make_moe
    >>> X, y, truth = make_moe(n_samples=500, n_experts=2, depth=2, random_state=0)
    >>> X.shape, y.shape, truth.model.n_leaves_
    ((500, 2), (500,), 4)
    >>> truth.gate_coef[1].shape  # level 1: two gates, two features, two children
    (2, 2, 2)
    """
    check_scalar(n_samples, "n_samples", Integral, min_val=1)
    check_scalar(n_features, "n_features", Integral, min_val=1)
    check_scalar(n_experts, "n_experts", Integral, min_val=1)
    check_scalar(depth, "depth", Integral, min_val=1)
    check_scalar(noise, "noise", Real, min_val=0, include_boundaries="neither")
    check_scalar(gate_scale, "gate_scale", Real, min_val=0)
    check_scalar(coef_scale, "coef_scale", Real, min_val=0)
    if task not in ("regression", "classification"):
        raise ValueError(f"task={task!r}; expected 'regression' or 'classification'.")
    if task == "classification":
        check_scalar(n_classes, "n_classes", Integral, min_val=2)
    rng = check_random_state(random_state)
    xp = array_api_compat.numpy
    n_params = n_features + 1
    n_leaves = n_experts**depth

    gates = GateTree(n_experts, depth, alpha=1.0)
    gates.coef = []
    for level in range(depth):
        directions = rng.normal(size=(n_experts**level, n_features, n_experts))
        directions -= directions.mean(axis=2, keepdims=True)
        norms = np.linalg.norm(directions, axis=1, keepdims=True)
        weights = gate_scale * directions / np.maximum(norms, 1e-12)
        intercepts = np.zeros((n_experts**level, 1, n_experts))
        gates.coef.append(np.concatenate([weights, intercepts], axis=1))

    if task == "regression":
        experts = LinearGaussianExperts(n_leaves, alpha=1.0, min_variance=0.0)
        experts.coef = coef_scale * rng.normal(size=(n_leaves, n_params))
        experts.variance = np.full(n_leaves, float(noise) ** 2)
        model = MixtureOfExpertsRegressor(n_experts, depth=depth)
    else:
        experts = SoftmaxExperts(n_leaves, n_classes, alpha=1.0)
        experts.coef = coef_scale * rng.normal(size=(n_leaves, n_params, n_classes))
        model = MixtureOfExpertsClassifier(n_experts, depth=depth)
        model.classes_ = np.arange(n_classes)
    model.n_features_in_ = n_features
    model._set_fitted_state(
        _Scaling(np.zeros(n_features), np.ones(n_features)), gates, experts, xp
    )

    X = rng.normal(size=(n_samples, n_features))
    prior = model.predict_gates(X)
    leaf = (rng.uniform(size=(n_samples, 1)) > np.cumsum(prior, axis=1)).sum(axis=1)
    leaf = np.minimum(leaf, n_leaves - 1)
    Xd = np.hstack([X, np.ones((n_samples, 1))])
    if task == "regression":
        mean = np.sum(Xd * experts.coef[leaf], axis=1)
        y = mean + noise * rng.normal(size=n_samples)
    else:
        log_proba = experts.predict_log_proba(
            Xd, xp
        )  # (n_classes, n_leaves, n_samples)
        proba = np.exp(log_proba[:, leaf, np.arange(n_samples)]).T
        y = (rng.uniform(size=(n_samples, 1)) > np.cumsum(proba, axis=1)).sum(axis=1)
        y = np.minimum(y, n_classes - 1)

    truth = Bunch(
        gate_coef=model.gate_coef_,
        gate_intercept=model.gate_intercept_,
        expert_coef=model.expert_coef_,
        expert_intercept=model.expert_intercept_,
        leaf=leaf,
        model=model,
    )
    if task == "regression":
        truth.expert_variance = model.expert_variance_
    return X, y, truth
