"""Inference on a fitted mixture: ``summary``, ``vcov``, ``icl``, ``bic``.

- The observed information (``_inference.observed_information``, Louis'
  identity per sample) is minus the Hessian of the summed log-likelihood:
  checked against central differences of ``log_likelihood`` for every
  family, a depth-2 tree with a gate reading one column, experts reading
  one column, the classifier's softmax experts and binomial experts with
  trials.
- ``summary`` reports the fitted attributes in data units, its intervals
  and p-values follow from the standard errors as the normal quantiles
  say, ``vcov`` is their covariance, and rescaling the inputs rescales
  both.
- ``bic`` counts every family's parameters; ``icl`` adds twice the
  entropy of the responsibilities.
- The bootstrap's standard errors agree with Wald's; bad arguments and
  learner experts fail clearly.
"""

import warnings

import array_api_compat.numpy as xp
import numpy as np
import pytest
from scipy import stats
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts._inference import observed_information

pd = pytest.importorskip("pandas")


def _data(family, n=300, seed=0, n_features=2, leaves=2):
    """Data from a mixture of ``leaves`` experts whose linear predictors
    are linear in feature 0: 2 split by a gate on feature 1, 3 by a softmax
    in feature 1, 4 by a depth-2 tree (feature 1, then feature 2). Returns
    ``X``, ``y`` and the weights (binomial: the trials, 1 to 19; else
    None)."""
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, size=(n, n_features))
    if leaves == 2:
        leaf = (rng.uniform(size=n) < expit(3 * X[:, 1])).astype(int)
    elif leaves == 3:
        logits = np.column_stack([-3 * X[:, 1], np.zeros(n), 3 * X[:, 1]])
        prior = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        leaf = (rng.uniform(size=(n, 1)) > np.cumsum(prior, axis=1)).sum(axis=1)
    else:
        upper = rng.uniform(size=n) < expit(3 * X[:, 1])
        right = rng.uniform(size=n) < expit(3 * X[:, 2])
        leaf = 2 * upper + right
    slope = np.array([0.8, -0.5, 0.3, 0.0])[leaf]
    eta = np.array([1.0, 2.0, 0.2, 2.6])[leaf] + slope * X[:, 0]
    w = None
    if family == "poisson":
        y = rng.poisson(np.exp(eta)).astype(float)
    elif family == "gamma":
        y = rng.gamma(4.0, np.exp(eta) / 4.0)
    elif family == "binomial":
        w = rng.randint(1, 20, size=n).astype(float)
        y = rng.binomial(w.astype(int), expit(eta - 1.5)) / w
    elif family == "student_t":
        y = eta + 0.4 * rng.standard_t(4, size=n)
    elif family == "classes":
        y = np.digitize(eta + 0.3 * rng.normal(size=n), [1.2, 2.2])
    else:
        y = eta + 0.3 * rng.normal(size=n)
    return X, y, w


def _fit(model, X, y, w=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y, w)


def _model(family, **params):
    """The model to fit, run to a tight ``tol``: the information is that of
    a maximum (the default ``tol`` can stop EM before the maximum along a
    flat direction, where the information is not yet positive definite)."""
    params = {"tol": 1e-8, "max_iter": 1000, **params}
    if family == "classes":
        return MixtureOfExpertsClassifier(random_state=0, **params)
    return MixtureOfExpertsRegressor(expert=family, random_state=0, **params)


# -- the observed information is minus the Hessian -------------------------------


def _parameters(model):
    """Every free parameter, in the information matrix's order: gates'
    children 1.. (per column), experts' coefficients (softmax: classes
    1..), then the expert's log-variance or log-shape, where it has one."""
    gates, experts = model._gates, model._experts
    k = gates.n_experts
    found = []
    for level, coef in enumerate(gates.coefs):
        for v in range(coef.shape[0]):
            for child in range(1, k):
                found += [("gate", level, v, p, child) for p in range(coef.shape[1])]
    for leaf in range(experts.coef.shape[0]):
        if experts.coef.ndim == 3:
            for c in range(1, experts.coef.shape[2]):
                found += [("softmax", leaf, p, c) for p in range(experts.coef.shape[1])]
            continue
        found += [("expert", leaf, p) for p in range(experts.coef.shape[1])]
        if hasattr(experts, "variance"):
            found.append(("variance", leaf))
        elif getattr(experts.family, "has_dispersion", False):
            found.append(("shape", leaf))
    return found


def _bump(model, which, h):
    """Move one parameter by ``h`` (scale parameters on the log scale)."""
    gates, experts = model._gates, model._experts
    kind, *at = which
    if kind == "gate":
        coef = gates.coefs[at[0]].copy()
        coef[tuple(at[1:])] += h
        gates.coefs[at[0]] = coef
    elif kind in ("softmax", "expert"):
        coef = experts.coef.copy()
        coef[tuple(at)] += h
        experts.coef = coef
    else:
        name = "variance" if kind == "variance" else "shape"
        value = getattr(experts, name).copy()
        value[at[0]] *= np.exp(h)
        setattr(experts, name, value)


def _numerical_hessian(model, X, y, w, h=1e-4):
    """Central differences of ``log_likelihood(X, y, w).sum()``."""
    found = _parameters(model)
    H = np.zeros((len(found), len(found)))

    def total():
        return model.log_likelihood(X, y, w).sum()

    for i in range(len(found)):
        for j in range(i, len(found)):
            values = []
            for si, sj in [(1, 1), (1, -1), (-1, 1), (-1, -1)]:
                _bump(model, found[i], si * h)
                _bump(model, found[j], sj * h)
                values.append(total())
                _bump(model, found[j], -sj * h)
                _bump(model, found[i], -si * h)
            H[i, j] = H[j, i] = (values[0] - values[1] - values[2] + values[3]) / (
                4 * h * h
            )
    return H


# (family, model parameters, leaves of the data's mixture)
HESSIAN_CASES = {
    "linear": ("linear", {}, 2),
    "poisson": ("poisson", {}, 2),
    "gamma": ("gamma", {}, 2),
    "student_t": ("student_t", {}, 2),
    "binomial-trials": ("binomial", {}, 2),
    "poisson-depth2-gate_features": ("poisson", dict(depth=2, gate_features=[1, 2]), 4),
    "gamma-3-expert_features": ("gamma", dict(expert_features=[0], n_experts=3), 3),
    "softmax": ("classes", {}, 2),
}


@pytest.mark.parametrize("case", list(HESSIAN_CASES))
def test_observed_information_is_minus_the_numerical_hessian(case):
    # Measured: the largest difference is 1e-7 of the Hessian's largest
    # entry (the central differences' error).
    family, params, leaves = HESSIAN_CASES[case]
    X, y, w = _data(family, n=250, n_features=3, leaves=leaves)
    model = _fit(_model(family, **{"n_experts": 2, **params}), X, y, w)
    H = _numerical_hessian(model, X, y, w)
    Xd, y_fit, _ = model._encoded(X, y, "summary", w)
    info, layout = observed_information(model, Xd, y_fit, np.ones(len(y)), xp)
    assert info.shape == H.shape == (layout.size, layout.size)
    np.testing.assert_array_less(np.abs(info + H), 1e-5 * np.abs(H).max())
    # and it is positive definite at the fit
    assert np.linalg.eigvalsh(info).min() > 0


def test_observed_information_counts_frequency_weights():
    # integer weights are repeated rows: the same information
    X, y, _ = _data("poisson", n=150)
    w = np.random.RandomState(0).randint(1, 4, size=150).astype(float)
    model = _fit(_model("poisson", n_experts=2), X, y, w)
    repeated = np.repeat(np.arange(150), w.astype(int))
    weighted = model.vcov(X, y, w)
    np.testing.assert_allclose(
        weighted, model.vcov(X[repeated], y[repeated]), rtol=1e-8
    )


# -- summary's estimates, intervals and covariance -------------------------------


def _expected_estimate(model, row):
    """The coefficient a row of ``summary`` reports, from the fitted
    attributes."""
    feature = row["feature"]
    names = list(getattr(model, "feature_names_in_", []))
    if row["kind"] == "gate":
        k = model.n_experts
        level = 0
        while row["node"] >= (k ** (level + 1) - 1) // (k - 1):
            level += 1
        v = row["node"] - (k**level - 1) // (k - 1)
        c = row["output"]
        if feature == "intercept":
            values = model.gate_intercept_[level][v]
            return values[c] - values[0]
        column = names.index(feature) if names else feature
        values = model.gate_coef_[level][v][column]
        return values[c] - values[0]
    leaf = row["node"]
    if feature == "intercept":
        values = model.expert_intercept_[leaf]
    else:
        column = names.index(feature) if names else feature
        values = model.expert_coef_[leaf][column]
    if np.ndim(values) == 0:
        return values
    c = list(model.classes_).index(row["output"])
    return values[c] - values[0]


SUMMARY_CASES = {
    "linear": ("linear", {}, 2),
    "poisson-depth2": ("poisson", dict(depth=2), 4),
    "gamma-3": ("gamma", dict(n_experts=3, gate_features=[1]), 3),
    "binomial": ("binomial", dict(expert_features=[0]), 2),
    "student_t": ("student_t", {}, 2),
    "softmax": ("classes", {}, 2),
}


@pytest.mark.parametrize("case", list(SUMMARY_CASES))
def test_summary_reports_the_fitted_coefficients_in_data_units(case):
    family, params, leaves = SUMMARY_CASES[case]
    X, y, w = _data(family, n=400, n_features=3, leaves=leaves)
    # the data's units: features far from standardised
    X = X * np.array([10.0, 0.1, 3.0]) + np.array([5.0, -2.0, 0.0])
    model = _fit(_model(family, **{"n_experts": 2, **params}), X, y, w)
    table = model.summary(X, y, w)
    expected = [_expected_estimate(model, row) for _, row in table.iterrows()]
    np.testing.assert_allclose(table["estimate"], expected, rtol=1e-9, atol=1e-12)
    # every free coefficient is reported once: K - 1 children per gate,
    # every read column and the intercept
    k, depth = model.n_experts, model.depth
    gate_columns = len(params.get("gate_features", range(3))) + 1
    n_gates = (k**depth - 1) // (k - 1)
    assert (table["kind"] == "gate").sum() == n_gates * (k - 1) * gate_columns
    expert_columns = len(params.get("expert_features", range(3))) + 1
    outputs = len(model.classes_) - 1 if family == "classes" else 1
    assert (table["kind"] == "expert").sum() == k**depth * outputs * expert_columns
    assert list(table.columns) == [
        "kind",
        "node",
        "output",
        "feature",
        "estimate",
        "std_error",
        "z",
        "p_value",
        "ci_low",
        "ci_high",
    ]
    # vcov is the covariance of these rows
    cov = model.vcov(X, y, w)
    assert cov.shape == (len(table), len(table))
    np.testing.assert_allclose(cov, cov.T, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(np.diag(cov), table["std_error"] ** 2, rtol=1e-10)
    assert np.all(table["std_error"] > 0)


def test_summary_and_vcov_follow_a_rescaling_of_the_inputs():
    # X * s + m: the same fit in standardised units, so every slope and its
    # standard error divide by s, and the intercepts' rows are those of the
    # map intercept - sum_f slope_f m_f / s_f.
    X, y, _ = _data("poisson", n=300)
    s, m = np.array([20.0, 0.05]), np.array([3.0, -1.0])
    model = _fit(_model("poisson", n_experts=2), X, y)
    moved = _fit(_model("poisson", n_experts=2), X * s + m, y)
    table, table_moved = model.summary(X, y), moved.summary(X * s + m, y)
    cov, cov_moved = model.vcov(X, y), moved.vcov(X * s + m, y)
    # the linear map of every group of 3 rows (feature 0, feature 1, intercept)
    group = np.array(
        [[1 / s[0], 0, 0], [0, 1 / s[1], 0], [-m[0] / s[0], -m[1] / s[1], 1]]
    )
    A = np.kron(np.eye(len(table) // 3), group)
    np.testing.assert_allclose(
        table_moved["estimate"], A @ table["estimate"], rtol=1e-6
    )
    np.testing.assert_allclose(cov_moved, A @ cov @ A.T, rtol=1e-5, atol=1e-12)


def test_feature_labels_are_column_names_or_indices_and_intercept():
    X, y, _ = _data("poisson", n=200)
    frame = pd.DataFrame(X, columns=["dose", "age"])
    model = _fit(
        _model("poisson", n_experts=2, gate_features=["age"], expert_features=["dose"]),
        frame,
        y,
    )
    table = model.summary(frame, y)
    assert list(table["feature"]) == ["age", "intercept"] + ["dose", "intercept"] * 2
    assert list(table["kind"]) == ["gate"] * 2 + ["expert"] * 4
    assert list(table["node"]) == [0, 0, 0, 0, 1, 1]
    assert list(table["output"]) == [1, 1, 0, 0, 0, 0]
    plain = _fit(_model("poisson", n_experts=2), X, y)
    assert list(plain.summary(X, y)["feature"])[:3] == [0, 1, "intercept"]


def test_intervals_and_p_values_follow_the_normal_quantiles():
    X, y, _ = _data("linear", n=300)
    model = _fit(_model("linear", n_experts=2), X, y)
    wide, narrow = model.summary(X, y, alpha=0.05), model.summary(X, y, alpha=0.2)
    for table, alpha in ((wide, 0.05), (narrow, 0.2)):
        half = stats.norm.ppf(1 - alpha / 2) * table["std_error"]
        np.testing.assert_allclose(table["ci_high"], table["estimate"] + half)
        np.testing.assert_allclose(table["ci_low"], table["estimate"] - half)
        np.testing.assert_allclose(table["z"], table["estimate"] / table["std_error"])
        np.testing.assert_allclose(
            table["p_value"], 2 * stats.norm.sf(np.abs(table["z"])), rtol=1e-10
        )
    ratio = (wide["ci_high"] - wide["ci_low"]) / (narrow["ci_high"] - narrow["ci_low"])
    np.testing.assert_allclose(ratio, stats.norm.ppf(0.975) / stats.norm.ppf(0.9))
    np.testing.assert_array_equal(wide["std_error"], narrow["std_error"])


# -- criteria --------------------------------------------------------------------


@pytest.mark.parametrize(
    "family, extra",
    [("poisson", 0), ("binomial", 0), ("linear", 1), ("gamma", 1), ("student_t", 2)],
)
@pytest.mark.parametrize("depth", [1, 2])
def test_bic_and_aic_count_every_familys_parameters(family, extra, depth):
    # (K - 1) (p + 1) per gate, (p + 1) coefficients per expert and one
    # scale (linear, gamma) or a scale and degrees of freedom (Student-t);
    # binomial: n is the number of rows, whatever the trials.
    X, y, w = _data(family, n=200)
    model = _fit(_model(family, n_experts=2, depth=depth, max_iter=10), X, y, w)
    k, p = 2, X.shape[1] + 1
    n_gates = (k**depth - 1) // (k - 1)
    n_params = n_gates * (k - 1) * p + k**depth * (p + extra)
    total = model.log_likelihood(X, y, w).sum()
    np.testing.assert_allclose(model.bic(X, y, w), -2 * total + n_params * np.log(200))
    np.testing.assert_allclose(model.aic(X, y, w), -2 * total + 2 * n_params)
    if family == "poisson":
        # frequency weights: sum_i w_i log p_i and n = sum_i w_i
        f = np.random.RandomState(0).uniform(0.5, 2.0, size=200)
        f *= 200 / f.sum() * 1.5
        weighted = model.log_likelihood(X, y) @ f
        np.testing.assert_allclose(
            model.bic(X, y, f), -2 * weighted + n_params * np.log(f.sum())
        )


@pytest.mark.parametrize("family", ["poisson", "binomial", "classes"])
def test_icl_is_bic_plus_twice_the_entropy_of_the_responsibilities(family):
    X, y, w = _data(family, n=300)
    model = _fit(_model(family, n_experts=2, depth=2), X, y, w)
    resp = model.predict_responsibilities(X, y, w)
    entropy = -np.sum(np.where(resp > 0, resp * np.log(resp), 0.0))
    assert entropy > 1.0
    icl, bic = model.icl(X, y, w), model.bic(X, y, w)
    assert icl >= bic
    np.testing.assert_allclose(icl, bic + 2 * entropy, rtol=1e-10)


# -- the bootstrap, learners and bad arguments -----------------------------------


def test_bootstrap_standard_errors_agree_with_wald():
    # 40 refits of 400 rows. Measured on seeds 0-3 (Poisson and linear
    # experts): every ratio within 0.61-1.4, medians 0.85-1.17; seed 0
    # below within 0.73-1.25.
    X, y, _ = _data("poisson", n=400)
    model = _fit(_model("poisson", n_experts=2), X, y)
    wald = model.summary(X, y)
    boot = model.summary(X, y, method="bootstrap", n_boot=40, random_state=0)
    np.testing.assert_array_equal(boot["estimate"], wald["estimate"])
    ratio = boot["std_error"] / wald["std_error"]
    assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), ratio
    assert 0.8 < np.median(ratio) < 1.25
    assert np.all(boot["ci_low"] < boot["ci_high"])
    # the same seed, the same refits
    again = model.vcov(X, y, method="bootstrap", n_boot=40, random_state=0)
    np.testing.assert_allclose(np.sqrt(np.diag(again)), boot["std_error"])


def test_learner_experts_refuse_wald_and_bootstrap_their_gates():
    X, y, _ = _data("linear", n=150)
    model = _fit(
        MixtureOfExpertsRegressor(2, expert=LinearRegression(), random_state=0), X, y
    )
    for method in (model.summary, model.vcov):
        with pytest.raises(ValueError, match="method='bootstrap'"):
            method(X, y)
    with pytest.raises(ValueError, match="bic and aic are not defined"):
        model.bic(X, y)
    table = model.summary(X, y, method="bootstrap", n_boot=3, random_state=0)
    assert set(table["kind"]) == {"gate"} and len(table) == 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alpha=0.0), "alpha=0.0"),
        (dict(alpha=1.0), "alpha=1.0"),
        (dict(alpha=-0.1), r"alpha=-0.1; it must be in \(0, 1\)"),
        (dict(alpha=True), "alpha=True"),
        (dict(alpha="0.05"), "alpha='0.05'"),
        (dict(method="sandwich"), r"method='sandwich'; expected one of \['wald'"),
        (dict(method="bootstrap", n_boot=1), "n_boot=1; at least 2"),
        (dict(method="bootstrap", n_boot=2.5), "n_boot=2.5"),
        (dict(method="bootstrap", n_boot=True), "n_boot=True"),
    ],
)
def test_bad_summary_arguments_raise_value_errors(kwargs, match):
    X, y, _ = _data("poisson", n=100)
    model = _fit(_model("poisson", n_experts=2, max_iter=5), X, y)
    with pytest.raises(ValueError, match=match):
        model.summary(X, y, **kwargs)
    if "alpha" not in kwargs:
        with pytest.raises(ValueError, match=match):
            model.vcov(X, y, **kwargs)
