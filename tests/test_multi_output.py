"""Multi-output regression: multivariate Gaussian experts.

``y`` of shape (n_samples, n_targets) gives every leaf an expert
``N(B_j^T x + b_j, Sigma_j)`` with a full or a diagonal covariance.
"""

import warnings

import array_api_compat.numpy as xp_numpy
import numpy as np
import pytest
from sklearn.exceptions import DataConversionWarning
from sklearn.tree import DecisionTreeRegressor

from hmexperts import MixtureOfExpertsRegressor
from hmexperts._inference import observed_information

# The known model: a gate on x1 between two bivariate experts on (x0, x1).
GATE_COEF = [np.array([[[0.0, 0.0], [-1.5, 1.5]]])]
GATE_INTERCEPT = [np.zeros((1, 2))]
COEF = np.array([[[-1.0, 0.5], [0.0, 1.0]], [[1.0, -1.0], [0.5, 0.0]]])
INTERCEPT = np.array([[-1.0, 0.0], [1.0, 2.0]])
COVARIANCE = np.array([[[0.2, -0.1], [-0.1, 0.2]], [[0.3, 0.2], [0.2, 0.4]]])


def truth(covariance_type="full"):
    covariance = COVARIANCE
    if covariance_type == "diag":
        covariance = COVARIANCE * np.eye(2)
    return MixtureOfExpertsRegressor.from_parameters(
        GATE_COEF,
        GATE_INTERCEPT,
        COEF,
        INTERCEPT,
        expert_covariance=covariance,
        covariance_type=covariance_type,
    )


def draw(n, seed, covariance_type="full"):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, size=(n, 2))
    return X, truth(covariance_type).sample(X, random_state=rng)


def match(model):
    """The fitted leaves in the truth's order (by the first intercept)."""
    return np.argsort(model.expert_intercept_[:, 0])


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_recovers_a_known_multi_output_mixture(covariance_type):
    X, Y = draw(3000, 0, covariance_type)
    model = MixtureOfExpertsRegressor(
        2, covariance_type=covariance_type, random_state=0
    ).fit(X, Y)
    order = match(model)
    # every coefficient within 4 of its standard errors (0.01 to 0.03 here)
    table = model.summary(X, Y)
    experts = table[table["kind"] == "expert"]
    for leaf, true_leaf in enumerate(np.argsort(order)):
        for target in range(2):
            rows = experts[(experts["node"] == leaf) & (experts["output"] == target)]
            expected = [*COEF[true_leaf, :, target], INTERCEPT[true_leaf, target]]
            error = np.abs(rows["estimate"].to_numpy() - expected)
            assert np.all(error < 4 * rows["std_error"].to_numpy())
    expected = COVARIANCE if covariance_type == "full" else COVARIANCE * np.eye(2)
    np.testing.assert_allclose(model.expert_covariance_[order], expected, atol=0.04)
    X_test, Y_test = draw(3000, 1, covariance_type)
    fitted = model.log_likelihood(X_test, Y_test).mean()
    true = truth(covariance_type).log_likelihood(X_test, Y_test).mean()
    assert abs(fitted - true) < 0.01 * abs(true)
    assert np.all(
        np.diff(model.lower_bounds_) >= -1e-9 * np.abs(model.lower_bounds_[1:])
    )


def test_full_covariance_beats_diagonal_on_correlated_noise():
    X, Y = draw(2000, 2)
    X_test, Y_test = draw(2000, 3)
    full = MixtureOfExpertsRegressor(2, random_state=0).fit(X, Y)
    diag = MixtureOfExpertsRegressor(2, covariance_type="diag", random_state=0).fit(
        X, Y
    )
    gain = (
        full.log_likelihood(X_test, Y_test).mean()
        - diag.log_likelihood(X_test, Y_test).mean()
    )
    assert gain > 0.05  # correlations of -0.5 and 0.58 in the truth

    # the BIC counts 3 noise parameters per expert against 2
    def n_params(m):
        return (m.bic(X, Y) + 2 * m.log_likelihood(X, Y).sum()) / np.log(len(Y))

    assert round(n_params(full)) == 3 + 2 * (3 * 2 + 3)
    assert round(n_params(diag)) == 3 + 2 * (3 * 2 + 2)


def test_shapes_of_predictions_and_draws():
    X, Y = draw(600, 4)
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, Y)
    mean, std = model.predict(X[:5], return_std=True)
    assert mean.shape == std.shape == (5, 2)
    prior = model.predict_gates(X[:5])  # the mixture mean, by hand
    experts = np.einsum("nf,jft->jnt", X[:5], model.expert_coef_)
    experts += model.expert_intercept_[:, None, :]
    np.testing.assert_allclose(mean, np.einsum("nj,jnt->nt", prior, experts))
    assert model.sample(X[:5], random_state=0).shape == (5, 2)
    assert model.log_likelihood(X[:5], Y[:5]).shape == (5,)
    # a column vector stays a column for linear experts (multi-output with one)
    column = MixtureOfExpertsRegressor(2, random_state=0).fit(X, Y[:, :1])
    assert column.predict(X[:5]).shape == (5, 1)
    with pytest.raises(ValueError, match="expected \\(5, 2\\)"):
        model.log_likelihood(X[:5], Y[:5, 0])


def test_other_experts_refuse_several_targets_and_ravel_a_column():
    X, Y = draw(300, 5)
    with pytest.raises(ValueError, match="multi-output regression has multivariate"):
        MixtureOfExpertsRegressor(2, expert="student_t").fit(X, Y)
    tree = MixtureOfExpertsRegressor(
        2, expert=DecisionTreeRegressor(max_depth=2), random_state=0
    )
    with pytest.warns(DataConversionWarning):
        tree.fit(X, Y[:, :1])
    assert tree.predict(X[:3]).shape == (3,)
    with pytest.raises(ValueError, match="covariance_type='spherical'"):
        MixtureOfExpertsRegressor(2, covariance_type="spherical").fit(X, Y)


def test_dask_refuses_several_targets():
    da = pytest.importorskip("dask.array")
    X, Y = draw(300, 6)
    with pytest.raises(ValueError, match="multi-output targets are fit in memory"):
        MixtureOfExpertsRegressor(2).fit(
            da.from_array(X, chunks=100), da.from_array(Y, chunks=(100, 2))
        )


def test_a_dask_fit_scores_one_target_in_memory():
    """A Dask fit records its single target like an in-memory one: the
    model then scores NumPy and Dask input."""
    da = pytest.importorskip("dask.array")
    X, Y = draw(400, 10)
    model = MixtureOfExpertsRegressor(2, random_state=0)
    model.fit(da.from_array(X, chunks=100), da.from_array(Y[:, 0], chunks=100))
    expected = model.log_likelihood(X, Y[:, 0])
    lazy = model.log_likelihood(
        da.from_array(X, chunks=100), da.from_array(Y[:, 0], chunks=100)
    )
    np.testing.assert_allclose(lazy.compute(), expected)


def test_partial_fit_approaches_the_batch_fit():
    X, Y = draw(3000, 7)
    batch = MixtureOfExpertsRegressor(2, random_state=0).fit(X, Y)
    stream = MixtureOfExpertsRegressor(2, random_state=0)
    for _ in range(3):
        for rows in np.array_split(np.arange(3000), 10):
            stream.partial_fit(X[rows], Y[rows])
    gap = batch.log_likelihood(X, Y).mean() - stream.log_likelihood(X, Y).mean()
    assert gap < 0.02


def _perturb(model, parameter, h):
    """Move one parameter of the information's layout by ``h``."""
    gates, experts = model._gates, model._experts
    kind, leaf, a, b = parameter
    if kind == "gate":
        coef = gates.coefs[0].copy()
        coef[0, a, b] += h
        gates.coefs = [coef]
    elif kind == "coef":
        coef = experts.coef.copy()
        coef[leaf, a, b] += h
        experts.coef = coef
    elif kind == "log_variance":
        covariance = np.array(experts.covariance)
        covariance[leaf, a, a] *= np.exp(h)
        experts.covariance = covariance
    else:  # an entry of the precision
        covariance = np.array(experts.covariance)
        precision = np.linalg.inv(covariance[leaf])
        precision[a, b] += h
        if a != b:
            precision[b, a] += h
        covariance[leaf] = np.linalg.inv(precision)
        experts.covariance = covariance


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_observed_information_is_the_numerical_hessian(covariance_type):
    X, Y = draw(300, 8, covariance_type)
    model = MixtureOfExpertsRegressor(
        2, covariance_type=covariance_type, gate_features=[1], random_state=0
    ).fit(X, Y)
    p = model._experts.coef.shape[1]
    params = [("gate", 0, row, 1) for row in range(2)]
    for leaf in range(2):
        params += [("coef", leaf, row, t) for t in range(2) for row in range(p)]
        if covariance_type == "diag":
            params += [("log_variance", leaf, t, t) for t in range(2)]
        else:
            params += [("precision", leaf, c, d) for c in range(2) for d in range(c, 2)]

    def total():
        return model.log_likelihood(X, Y).sum()

    h, size = 1e-4, len(params)
    hessian = np.zeros((size, size))
    for i in range(size):
        for j in range(i, size):
            values = []
            for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                _perturb(model, params[i], si * h)
                _perturb(model, params[j], sj * h)
                values.append(total())
                _perturb(model, params[j], -sj * h)
                _perturb(model, params[i], -si * h)
            hessian[i, j] = hessian[j, i] = (
                values[0] - values[1] - values[2] + values[3]
            ) / (4 * h * h)
    Xd, y_fit, xp = model._encoded(X, Y, "summary")
    info, layout = observed_information(model, Xd, y_fit, np.ones(len(Y)), xp_numpy)
    assert layout.size == size
    np.testing.assert_allclose(info, -hessian, atol=1e-5 * np.abs(hessian).max())


def test_summary_rows_are_the_fitted_coefficients_by_target():
    X, Y = draw(800, 9)
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, Y)
    table = model.summary(X, Y)
    experts = table[table["kind"] == "expert"]
    for leaf in range(2):
        for target in range(2):
            rows = experts[(experts["node"] == leaf) & (experts["output"] == target)]
            expected = [*model.expert_coef_[leaf, :, target]]
            expected.append(model.expert_intercept_[leaf, target])
            np.testing.assert_allclose(rows["estimate"], expected, rtol=1e-10)
    assert np.all(table["std_error"] > 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(
            np.diag(model.vcov(X, Y)), table["std_error"] ** 2, rtol=1e-12
        )
