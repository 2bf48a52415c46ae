"""Expert families and concomitant variables.

Built-in experts beyond the Gaussian (``expert="poisson"``, ``"gamma"``,
``"binomial"``, ``"student_t"``) and the column selections ``gate_features``
and ``expert_features``:

- every family's density equals SciPy's, and ``sample`` draws from it;
- fits of data drawn from a known mixture of each family (one of them a
  depth-2 tree) recover its parameters, leaves matched to the truth, and
  score held-out data within 1% of the true model;
- EM never decreases its objective, for every family, with selected
  columns and depth 2 (``_random_family_problem``, which
  ``benchmarks/study_monotonicity.py`` also sweeps);
- Student-t experts ignore gross outliers that drag linear ones;
- latent class models (``expert_features=[]``) and mixtures of regressions
  (``gate_features=[]``) fit, unread columns get exactly zero coefficients,
  and bad selections and targets fail with a clear ValueError;
- ``partial_fit`` and Dask arrays with the new families.
"""

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import linear_sum_assignment
from scipy.special import expit, logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts._families import GLMExperts

FAMILIES = ["linear", "poisson", "gamma", "binomial", "student_t"]


def assert_never_decreases(values, rtol=1e-9):
    """No step of ``values`` goes down by more than ``rtol`` of its size."""
    values = np.asarray(values)
    drops = values[:-1] - values[1:]
    slack = rtol * np.maximum(1.0, np.abs(values[:-1]))
    assert np.all(drops <= slack), f"objective decreased: {values}"


def _match_leaves(fitted, true):
    """Permutation ``perm`` with ``fitted[perm[j]]`` matching ``true[j]``."""
    cost = ((fitted[:, None, :] - true[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(cols), dtype=int)
    perm[cols] = rows
    return perm


def _draw(truth, family, X, rng, trials=None):
    """Targets from the known mixture ``truth``; binomial: proportions of
    ``trials`` (which ``sample``, drawing one trial, does not take)."""
    if family != "binomial":
        return truth.sample(X, random_state=rng)
    prior = truth.predict_gates(X)
    leaves = (rng.uniform(size=(len(X), 1)) > np.cumsum(prior, axis=1)).sum(axis=1)
    leaves = np.minimum(leaves, prior.shape[1] - 1)
    eta = (X * truth.expert_coef_[leaves]).sum(axis=1) + truth.expert_intercept_[leaves]
    return rng.binomial(trials.astype(int), expit(eta)) / trials


def _two_gate(slope=3.0):
    """A root gate that splits on feature 1 (2 features)."""
    return [np.array([[[0.0, 0.0], [-slope, slope]]])], [np.zeros((1, 2))]


# -- densities and draws ---------------------------------------------------------


def _family_model(family):
    """A 2-expert mixture of ``family`` on 2 features, and what its experts
    are in SciPy's terms (a function of (X, y, trials) giving the per-leaf
    log-densities)."""
    gate_coef, gate_intercept = _two_gate(1.5)
    coef = np.array([[0.6, -0.2], [-0.4, 0.3]])
    intercept = np.array([0.5, -0.3])
    extra = {
        "linear": dict(expert_variance=np.array([0.3, 1.7])),
        "student_t": dict(
            expert_variance=np.array([0.3, 1.7]), expert_df=np.array([2.5, 9.0])
        ),
        "gamma": dict(expert_dispersion=np.array([0.2, 0.7])),
    }.get(family, {})
    model = MixtureOfExpertsRegressor.from_parameters(
        gate_coef, gate_intercept, coef, intercept, expert=family, **extra
    )

    def log_densities(X, y, trials):
        eta = X @ coef.T + intercept  # (n, 2)
        y = y[:, None]
        if family == "linear":
            return stats.norm.logpdf(y, eta, np.sqrt(extra["expert_variance"]))
        if family == "student_t":
            return stats.t.logpdf(
                y, extra["expert_df"], eta, np.sqrt(extra["expert_variance"])
            )
        if family == "poisson":
            return stats.poisson.logpmf(y, np.exp(eta))
        if family == "gamma":
            k = 1 / extra["expert_dispersion"]
            return stats.gamma.logpdf(y, k, scale=np.exp(eta) / k)
        m = trials[:, None]
        return stats.binom.logpmf(np.round(y * m), m, expit(eta))

    return model, log_densities


@pytest.mark.parametrize("family", FAMILIES)
def test_log_likelihood_is_the_mixture_of_scipy_densities(family):
    # log sum_j pi_j(x) p_j(y | x), with p_j SciPy's density; binomial
    # with each row's trials, binomial coefficient included
    model, log_densities = _family_model(family)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 2))
    trials = rng.randint(1, 40, size=200).astype(float)
    y = {
        "poisson": rng.poisson(2.0, size=200).astype(float),
        "gamma": rng.gamma(2.0, size=200),
        "binomial": rng.binomial(trials.astype(int), 0.4) / trials,
    }.get(family, 2 * rng.standard_t(3, size=200))
    weight = trials if family == "binomial" else None
    log_gate = np.log(model.predict_gates(X))
    expected = logsumexp(log_gate + log_densities(X, y, trials), axis=1)
    np.testing.assert_allclose(model.log_likelihood(X, y, weight), expected, rtol=1e-10)
    if family == "binomial":
        # without trials, every row is one trial: a proportion of 1 trial
        ones = (y > 0.5).astype(float)
        expected = logsumexp(log_gate + log_densities(X, ones, np.ones(200)), axis=1)
        np.testing.assert_allclose(model.log_likelihood(X, ones), expected, rtol=1e-10)


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_draws_from_each_family(family):
    # The draws' mean and spread match the mixture's predictive mean and
    # standard deviation (binomial: one trial per draw).
    model, _ = _family_model(family)
    if family == "student_t":  # a finite variance for both experts
        model._experts.df = np.array([5.0, 9.0])
    X = np.random.RandomState(1).normal(size=(20000, 2))
    y = model.sample(X, random_state=0)
    mean, std = model.predict(X, return_std=True)
    if family == "poisson":
        assert np.all(y >= 0) and np.all(y == np.round(y))
    elif family == "gamma":
        assert np.all(y > 0)
    elif family == "binomial":
        assert set(np.unique(y)) == {0.0, 1.0}
    resid = y - mean
    # the standard error of the mean residual is sd / sqrt(n)
    assert abs(resid.mean()) < 4 * np.sqrt(np.mean(std**2) / len(y))
    np.testing.assert_allclose(np.mean(resid**2), np.mean(std**2), rtol=0.1)


# -- known answers ---------------------------------------------------------------


def _known_mixture(family):
    """The true model of ``family``, its number of features and the
    fitting parameters; Poisson: a depth-2 tree of 4 leaves whose experts
    read feature 0 only."""
    gate_coef, gate_intercept = _two_gate()
    fit = {}
    if family == "poisson":
        gate_coef = [
            np.array([[[0.0, 0.0], [0.0, 0.0], [-3.0, 3.0]]]),
            np.array([[[-3.0, 3.0], [0, 0], [0, 0]], [[0, 0], [3.0, -3.0], [0, 0]]]),
        ]
        gate_intercept = [np.zeros((1, 2)), np.zeros((2, 2))]
        coef = np.array([[0.8, 0, 0], [-0.5, 0, 0], [0.3, 0, 0], [0.0, 0, 0]])
        intercept = np.array([1.0, 2.0, 0.0, 1.5])
        fit = dict(depth=2, expert_features=[0])
        extra = {}
    elif family == "gamma":
        # three experts: the gate's third child on the far side of feature 0
        gate_coef = [np.array([[[0.0, 0.0, 4.0], [-3.0, 3.0, 0.0]]])]
        gate_intercept = [np.array([[0.0, 0.0, -4.0]])]
        coef = np.array([[0.5, 0.0], [-0.5, 0.0], [0.0, 0.8]])
        intercept = np.array([1.0, 0.0, 2.0])
        extra = dict(expert_dispersion=np.array([0.1, 0.3, 0.05]))
    elif family == "binomial":
        coef = np.array([[1.5, 0.0], [-1.0, 0.0]])
        intercept = np.array([1.0, -1.0])
        extra = {}
    else:
        coef = np.array([[2.0, 0.0], [-1.0, 0.0]])
        intercept = np.array([1.0, -1.0])
        extra = dict(expert_variance=np.array([0.25, 0.5]))
        if family == "student_t":
            extra["expert_df"] = np.array([3.0, 6.0])
    truth = MixtureOfExpertsRegressor.from_parameters(
        gate_coef, gate_intercept, coef, intercept, expert=family, **extra
    )
    return truth, coef.shape[1], fit


# What each fit recovers, from 3000 rows: coefficients (atol), variance or
# dispersion (rtol), Student-t degrees of freedom (rtol), leaf priors (mean
# over held-out rows of the largest difference). Measured on seeds 0-4 of
# every family: coefficients within 0.17 (the gamma and depth-2 Poisson
# leaves that the gates give least data), scales within 19%, degrees of
# freedom within 67% (28% on seeds 0-1), priors within 0.04, held-out gaps
# below 0.9%.
TOLERANCES = {"coef": 0.2, "scale": 0.25, "df": 0.75, "prior": 0.05}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("family", FAMILIES)
def test_fit_recovers_a_known_mixture_of_each_family(family, seed):
    truth, n_features, fit = _known_mixture(family)
    rng = np.random.RandomState(seed)
    n, n_test = 3000, 2000
    X = rng.uniform(-2, 2, size=(n + n_test, n_features))
    trials = rng.randint(1, 30, size=n + n_test).astype(float)
    y = _draw(truth, family, X, rng, trials)
    w = trials if family == "binomial" else None
    train, test = slice(0, n), slice(n, None)
    model = MixtureOfExpertsRegressor(
        truth.n_experts,
        expert=family,
        n_init=2,
        random_state=0,
        **fit,
    ).fit(X[train], y[train], None if w is None else w[train])

    fitted = np.column_stack([model.expert_coef_, model.expert_intercept_])
    true = np.column_stack([truth.expert_coef_, truth.expert_intercept_])
    perm = _match_leaves(fitted, true)
    np.testing.assert_allclose(fitted[perm], true, atol=TOLERANCES["coef"])
    for name in ("expert_variance_", "expert_dispersion_"):
        if hasattr(truth, name):
            np.testing.assert_allclose(
                getattr(model, name)[perm],
                getattr(truth, name),
                rtol=TOLERANCES["scale"],
            )
    if family == "student_t":
        np.testing.assert_allclose(
            model.expert_df_[perm], truth.expert_df_, rtol=TOLERANCES["df"]
        )
    # the gates: the leaf priors, leaves matched, on held-out rows
    prior_gap = np.abs(
        model.predict_gates(X[test])[:, perm] - truth.predict_gates(X[test])
    )
    assert prior_gap.max(axis=1).mean() < TOLERANCES["prior"]
    w_test = None if w is None else w[test]
    fit_ll = model.log_likelihood(X[test], y[test], w_test).mean()
    true_ll = truth.log_likelihood(X[test], y[test], w_test).mean()
    assert abs(fit_ll - true_ll) < 0.01 * abs(true_ll)


def test_binomial_fit_reads_the_trials():
    # The same proportions of twice the trials: the trials are the
    # information, so the standard errors shrink by about sqrt(2).
    truth, _, _ = _known_mixture("binomial")
    rng = np.random.RandomState(0)
    X = rng.uniform(-2, 2, size=(1500, 2))
    trials = rng.randint(5, 30, size=1500).astype(float)
    y = _draw(truth, "binomial", X, rng, trials)
    model = MixtureOfExpertsRegressor(2, expert="binomial", random_state=0)
    with_trials = model.fit(X, y, trials).summary(X, y, trials)
    doubled = model.fit(X, y, 2 * trials).summary(X, y, 2 * trials)
    ratio = np.median(with_trials["std_error"] / doubled["std_error"])
    assert abs(ratio - np.sqrt(2)) < 0.1


# -- EM is monotone --------------------------------------------------------------


def _random_family_problem(seed, family):
    """A random mixture of ``family`` to fit, as ``test_em._random_problem``
    does for the Gaussian: data drawn from a random tree, the features
    rescaled and shifted, random penalties. ``seed % 3`` picks the tree:
    0, depth 2 reading every column; 1, depth 1 with 2-4 experts, the gates
    and experts reading random subsets of the columns; 2, depth 2 with a
    one-column gate and constant (``[]``) or one-column experts.

    Returns the model, ``X``, ``y`` and the sample weights (binomial: the
    trials; else None).
    """
    rng = np.random.RandomState(seed)
    variant = seed % 3
    depth = 1 if variant == 1 else 2
    n_experts = int(rng.randint(2, 5)) if variant == 1 else 2
    n_features = int(rng.randint(1, 5)) if variant != 2 else int(rng.randint(2, 5))
    n_leaves = n_experts**depth
    n = int(rng.randint(80, 300))
    Z = rng.normal(size=(n, n_features))
    gate_scale = rng.uniform(0.5, 4.0)
    gate_coef = [
        gate_scale * rng.normal(size=(n_experts**d, n_features, n_experts))
        for d in range(depth)
    ]
    gate_intercept = [rng.normal(size=(n_experts**d, n_experts)) for d in range(depth)]
    slope = {"poisson": 0.4, "gamma": 0.4, "binomial": 1.5}.get(family, 2.0)
    coef = slope * rng.normal(size=(n_leaves, n_features))
    intercept = rng.normal(1.0 if family == "poisson" else 0.0, 1.0, size=n_leaves)
    extra = {
        "linear": dict(expert_variance=rng.uniform(0.05, 1.0, size=n_leaves)),
        "student_t": dict(
            expert_variance=rng.uniform(0.05, 1.0, size=n_leaves),
            expert_df=rng.uniform(1.5, 30.0, size=n_leaves),
        ),
        "gamma": dict(expert_dispersion=rng.uniform(0.05, 1.0, size=n_leaves)),
    }.get(family, {})
    truth = MixtureOfExpertsRegressor.from_parameters(
        gate_coef, gate_intercept, coef, intercept, expert=family, **extra
    )
    trials = rng.randint(1, 30, size=n).astype(float) if family == "binomial" else None
    y = _draw(truth, family, Z, rng, trials)
    X = Z * 10 ** rng.uniform(-1, 2, size=n_features) + rng.normal(size=n_features)
    columns = np.arange(n_features)
    if variant == 1:
        gate_features = sorted(
            rng.choice(columns, rng.randint(1, n_features + 1), False)
        )
        expert_features = sorted(
            rng.choice(columns, rng.randint(0, n_features + 1), False)
        )
    elif variant == 2:
        gate_features = [int(rng.randint(n_features))]
        expert_features = [] if seed % 2 else [int(rng.randint(n_features))]
    else:
        gate_features = expert_features = None
    params = dict(
        n_experts=n_experts,
        depth=depth,
        expert=family,
        gate_features=gate_features,
        expert_features=expert_features,
        gate_alpha=float(10 ** rng.uniform(-4, 0)),
        expert_alpha=float(10 ** rng.uniform(-4, 0)),
        init_params=str(rng.choice(["kmeans", "random"])),
        random_state=seed,
    )
    if family in ("linear", "student_t", "gamma"):
        params["min_variance"] = float(10 ** rng.uniform(-4, -1))
    return MixtureOfExpertsRegressor(**params), X, y, trials


def fit_recording_warnings(model, X, y, weight):
    """Fit, returning the messages of the warnings the fit gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y, sample_weight=weight)
    return [str(w.message) for w in caught]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("family", FAMILIES)
def test_em_objective_never_decreases_for_every_family(family, seed):
    model, X, y, weight = _random_family_problem(seed, family)
    model.set_params(max_iter=40, tol=0)
    messages = fit_recording_warnings(model, X, y, weight)
    assert not [m for m in messages if "decreased" in m], messages
    assert len(model.lower_bounds_) >= 2
    assert_never_decreases(model.lower_bounds_)
    # stepped one iteration at a time from the fit, too
    model.set_params(warm_start=True, max_iter=1)
    stepped = [model.lower_bound_]
    for _ in range(3):
        fit_recording_warnings(model, X, y, weight)
        stepped.append(model.lower_bound_)
    assert_never_decreases(stepped)


@pytest.mark.parametrize("family", ["poisson", "gamma", "binomial"])
def test_em_halves_glm_newton_steps_that_overshoot(family, monkeypatch):
    # The M-step of GLM experts is one Newton step, which EM halves while
    # the objective would go down: steps made 3 times too long are halved
    # back, and EM stays monotone.
    direction = GLMExperts._direction
    monkeypatch.setattr(
        GLMExperts, "_direction", lambda self, *args: 3.0 * direction(self, *args)
    )
    model, X, y, weight = _random_family_problem(0, family)
    model.set_params(max_iter=30, tol=0)
    messages = fit_recording_warnings(model, X, y, weight)
    assert not [m for m in messages if "decreased" in m], messages
    assert_never_decreases(model.lower_bounds_)
    assert model.lower_bounds_[-1] > model.lower_bounds_[0]


def test_random_family_problems_cover_depth_two_and_selections():
    # the sweep above reaches what it claims to
    seen = set()
    for seed in range(6):
        model, X, _, _ = _random_family_problem(seed, "poisson")
        seen.add(("depth", model.depth))
        seen.add(("gate", model.gate_features is not None))
        seen.add(("constant experts", model.expert_features == []))
    assert seen >= {
        ("depth", 1),
        ("depth", 2),
        ("gate", True),
        ("gate", False),
        ("constant experts", True),
    }


def test_assert_never_decreases_catches_a_drop():
    with pytest.raises(AssertionError, match="decreased"):
        assert_never_decreases([-1.0, -0.5, -0.5 - 1e-6])
    assert_never_decreases([-1.0, -0.5, -0.5 - 1e-12])


# -- robust experts --------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_student_t_experts_ignore_gross_outliers_that_drag_linear_ones(seed):
    # 5% of the targets shifted up by 10 to 20 (the noise sd is 0.3).
    # Measured on seeds 0-9: Student-t within 0.1 of the true coefficients,
    # linear experts off by 2.7 to 3.6 (an expert spent on the outliers).
    truth = np.array([[2.0, 1.0], [-1.0, -1.0]])  # slope on x0, intercept
    gate_coef, gate_intercept = _two_gate()
    model = MixtureOfExpertsRegressor.from_parameters(
        gate_coef,
        gate_intercept,
        np.column_stack([truth[:, 0], np.zeros(2)]),
        truth[:, 1],
        expert_variance=np.full(2, 0.09),
    )
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, size=(800, 2))
    y = model.sample(X, random_state=rng)
    outliers = rng.permutation(800)[:40]
    y[outliers] += rng.uniform(10, 20, size=40)
    errors = {}
    for family in ("linear", "student_t"):
        fit = MixtureOfExpertsRegressor(2, expert=family, n_init=3, random_state=0)
        fit.fit(X, y)
        fitted = np.column_stack([fit.expert_coef_[:, 0], fit.expert_intercept_])
        errors[family] = np.abs(fitted[_match_leaves(fitted, truth)] - truth).max()
    assert errors["student_t"] < 0.15
    assert errors["linear"] > 1.0


# -- concomitant variables -------------------------------------------------------


def test_latent_class_model_with_covariates_on_the_gate():
    # expert_features=[]: every expert a constant Poisson rate, the classes'
    # probabilities a logistic function of the covariates.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(3000, 2))
    upper = rng.uniform(size=3000) < expit(2.0 * X[:, 0] - 1.0 * X[:, 1] + 0.5)
    y = rng.poisson(np.where(upper, np.exp(2.5), np.exp(0.5))).astype(float)
    model = MixtureOfExpertsRegressor(
        2, expert="poisson", expert_features=[], random_state=0
    ).fit(X, y)
    assert model.expert_coef_.shape == (2, 2)
    assert np.all(model.expert_coef_ == 0.0)
    order = np.argsort(model.expert_intercept_)
    np.testing.assert_allclose(model.expert_intercept_[order], [0.5, 2.5], atol=0.05)
    low, high = order
    coef = model.gate_coef_[0][0][:, high] - model.gate_coef_[0][0][:, low]
    intercept = model.gate_intercept_[0][0][high] - model.gate_intercept_[0][0][low]
    np.testing.assert_allclose([*coef, intercept], [2.0, -1.0, 0.5], atol=0.25)


def test_mixture_of_regressions_with_a_constant_gate():
    # gate_features=[]: mixing proportions 0.3 / 0.7 whatever x
    rng = np.random.RandomState(0)
    X = rng.normal(size=(2000, 2))
    first = rng.uniform(size=2000) < 0.3
    y = np.where(first, 1 + 2 * X[:, 0], -1 - X[:, 1]) + 0.2 * rng.normal(size=2000)
    model = MixtureOfExpertsRegressor(2, gate_features=[], random_state=0).fit(X, y)
    assert np.all(model.gate_coef_[0] == 0.0)
    np.testing.assert_allclose(model.predict_gates(X).std(axis=0), 0.0, atol=1e-12)
    true = np.array([[2.0, 0.0, 1.0], [0.0, -1.0, -1.0]])
    fitted = np.column_stack([model.expert_coef_, model.expert_intercept_])
    perm = _match_leaves(fitted, true)
    np.testing.assert_allclose(fitted[perm], true, atol=0.05)
    np.testing.assert_allclose(
        model.predict_gates(X[:1])[0, perm], [0.3, 0.7], atol=0.04
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_unread_columns_have_exactly_zero_coefficients(family):
    model, X, y, weight = _random_family_problem(1, family)
    X = np.column_stack([X, X[:, :1] ** 2, np.cos(X[:, :1])])  # at least 3 columns
    model.set_params(n_experts=2, depth=2, gate_features=[1], expert_features=[0, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y, weight)
    unread = [c for c in range(X.shape[1]) if c != 1]
    for coef in model.gate_coef_:
        assert coef.shape[1] == X.shape[1]
        assert np.all(coef[:, unread, :] == 0.0)
        assert np.any(coef[:, 1, :] != 0.0)
    assert model.expert_coef_.shape == (4, X.shape[1])
    unread = [c for c in range(X.shape[1]) if c not in (0, 2)]
    assert np.all(model.expert_coef_[:, unread] == 0.0)
    # what the gates do not read does not move them
    moved = X.copy()
    moved[:, 0] += 100.0
    np.testing.assert_array_equal(model.predict_gates(moved), model.predict_gates(X))


def test_classifier_selects_columns_of_its_gates_and_softmax_experts():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] + (X[:, 1] > 0) * X[:, 2] > 0).astype(int) + (X[:, 1] > 1)
    model = MixtureOfExpertsClassifier(
        2, gate_features=[1], expert_features=[0, 2], random_state=0
    ).fit(X, y)
    assert model.expert_coef_.shape == (2, 3, 3)
    assert np.all(model.expert_coef_[:, 1, :] == 0.0)
    assert np.all(model.gate_coef_[0][:, [0, 2], :] == 0.0)
    assert np.any(model.expert_coef_[:, [0, 2], :] != 0.0)


def test_masks_names_and_negative_indices_select_the_same_columns():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 3))
    y = rng.poisson(np.exp(0.5 + 0.5 * X[:, 0] * (X[:, 1] > 0))).astype(float)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    base = dict(n_experts=2, expert="poisson", random_state=0, max_iter=20)
    fits = [
        MixtureOfExpertsRegressor(gate_features=[1], expert_features=[0, 2], **base),
        MixtureOfExpertsRegressor(
            gate_features=[False, True, False],
            expert_features=np.array([True, False, True]),
            **base,
        ),
        MixtureOfExpertsRegressor(gate_features=[-2], expert_features=[2, 0], **base),
        MixtureOfExpertsRegressor(
            gate_features="b", expert_features=["c", "a"], **base
        ),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for model in fits[:3]:
            model.fit(X, y)
        fits[3].fit(frame, y)
    for model in fits[1:]:
        np.testing.assert_allclose(model.expert_coef_, fits[0].expert_coef_, rtol=1e-12)
        np.testing.assert_allclose(
            model.gate_coef_[0], fits[0].gate_coef_[0], rtol=1e-12
        )
    assert np.all(fits[0].expert_coef_[:, 1] == 0.0)


@pytest.mark.parametrize(
    "params, frame, match",
    [
        (dict(gate_features=[3]), False, "gate_features has the column index 3"),
        (dict(expert_features=[-4]), False, "expert_features has the column index -4"),
        (dict(gate_features=["z"]), True, "'z', which X does not have"),
        (dict(expert_features=["a"]), False, "X has no column names"),
        (dict(gate_features=[0, 0]), False, "names a column more than once"),
        (dict(gate_features=["a", 0]), True, "names a column more than once"),
        (dict(expert_features=[True, False]), False, "boolean mask of length 2"),
        (dict(gate_features=[0.5]), False, "column indices, column names"),
        (
            dict(expert=LinearRegression(), expert_features=[0]),
            False,
            "a learner expert reads all of X",
        ),
    ],
)
def test_bad_feature_selections_raise_clear_errors(params, frame, match):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(50, 3))
    y = X[:, 0] + rng.normal(size=50)
    if frame:
        X = pytest.importorskip("pandas").DataFrame(X, columns=["a", "b", "c"])
    with pytest.raises(ValueError, match=match):
        MixtureOfExpertsRegressor(2, random_state=0, **params).fit(X, y)


def test_selected_columns_count_in_bic():
    # a gate reading 1 column (and its intercept), experts reading none:
    # (K - 1) * 2 gate parameters and K Poisson intercepts
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 3))
    y = rng.poisson(2.0, size=300).astype(float)
    model = MixtureOfExpertsRegressor(
        3, expert="poisson", gate_features=[1], expert_features=[], random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    n_params = 2 * 2 + 3 * 1
    total = model.log_likelihood(X, y).sum()
    np.testing.assert_allclose(model.bic(X, y), -2 * total + n_params * np.log(300))


# -- bad targets -----------------------------------------------------------------


BAD_TARGETS = [
    ("poisson", -1.0, "non-negative integers.*-1.0"),
    ("poisson", 2.5, "non-negative integers.*2.5"),
    ("binomial", 1.5, r"proportions in \[0, 1\].*1.5"),
    ("binomial", -0.25, r"proportions in \[0, 1\].*-0.25"),
    ("gamma", 0.0, "positive targets.*0.0"),
    ("gamma", -3.0, "positive targets.*-3.0"),
]


def _good_target(family, n, rng):
    return {
        "poisson": rng.poisson(3.0, size=n).astype(float),
        "binomial": rng.binomial(1, 0.4, size=n).astype(float),  # one trial
        "gamma": rng.gamma(2.0, size=n),
    }[family]


@pytest.mark.parametrize("family, bad, match", BAD_TARGETS)
def test_targets_a_family_cannot_model_are_refused(family, bad, match):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 2))
    y = _good_target(family, 100, rng)
    y_bad = y.copy()
    y_bad[7] = bad
    model = MixtureOfExpertsRegressor(2, expert=family, random_state=0, max_iter=5)
    with pytest.raises(ValueError, match=match):
        model.fit(X, y_bad)
    with pytest.raises(ValueError, match=match):
        model.partial_fit(X, y_bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    for method in (model.log_likelihood, model.predict_responsibilities, model.bic):
        with pytest.raises(ValueError, match=match):
            method(X, y_bad)
    with pytest.raises(ValueError, match=match):
        model.summary(X, y_bad)


def test_boundary_targets_are_accepted():
    # zero counts, proportions of exactly 0 and 1: in each family's support
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 2))
    for family, y in [
        ("poisson", np.r_[np.zeros(50), np.full(50, 4.0)]),
        ("binomial", np.r_[np.zeros(50), np.ones(50)]),
    ]:
        model = MixtureOfExpertsRegressor(2, expert=family, random_state=0, max_iter=5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        assert np.all(np.isfinite(model.log_likelihood(X, y)))


# -- streams and Dask ------------------------------------------------------------


def _poisson_data(n, seed):
    gate_coef, gate_intercept = _two_gate()
    truth = MixtureOfExpertsRegressor.from_parameters(
        gate_coef,
        gate_intercept,
        np.array([[0.8, 0.0], [-0.5, 0.0]]),
        np.array([1.0, 2.0]),
        expert="poisson",
    )
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, size=(n, 2))
    return X, truth.sample(X, random_state=rng)


@pytest.mark.parametrize("family", ["poisson", "binomial"])
def test_partial_fit_approaches_the_batch_fit(family):
    # 2 passes over 10 mini-batches of 400 rows. Measured (seed 0): within
    # 0.0003 nats per sample of the batch fit, coefficients within 0.025
    # of it (a stream whose Newton steps took the batch's whole gradient
    # instead of gamma times it: 0.003 to 0.009 nats, 0.04 to 0.17).
    X, y = _poisson_data(4000, 0)
    w = None
    if family == "binomial":
        rng = np.random.RandomState(1)
        w = rng.randint(1, 20, size=len(y)).astype(float)
        y = rng.binomial(w.astype(int), expit(0.4 * y - 2)) / w
    batch = MixtureOfExpertsRegressor(2, expert=family, random_state=0).fit(X, y, w)
    stream = MixtureOfExpertsRegressor(2, expert=family, random_state=0)
    order = np.random.RandomState(2).permutation(len(X))
    for _ in range(2):
        for rows in np.array_split(order, 10):
            stream.partial_fit(X[rows], y[rows], None if w is None else w[rows])
    assert stream.n_iter_ == 20
    gap = batch.log_likelihood(X, y, w).mean() - stream.log_likelihood(X, y, w).mean()
    assert gap < 0.001
    fitted = np.column_stack([stream.expert_coef_, stream.expert_intercept_])
    target = np.column_stack([batch.expert_coef_, batch.expert_intercept_])
    np.testing.assert_allclose(fitted[_match_leaves(fitted, target)], target, atol=0.05)


def test_poisson_fit_on_a_dask_array_equals_the_numpy_fit():
    da = pytest.importorskip("dask.array")
    X, y = _poisson_data(2000, 3)
    params = dict(n_experts=2, depth=2, expert="poisson", random_state=0)
    memory = MixtureOfExpertsRegressor(**params).fit(X, y)
    lazy = MixtureOfExpertsRegressor(**params).fit(
        da.from_array(X, chunks=(700, 2)), da.from_array(y, chunks=700)
    )
    np.testing.assert_allclose(lazy.lower_bounds_, memory.lower_bounds_, rtol=1e-8)
    np.testing.assert_allclose(
        lazy.expert_coef_, memory.expert_coef_, rtol=1e-7, atol=1e-9
    )
    np.testing.assert_allclose(
        lazy.gate_coef_[1], memory.gate_coef_[1], rtol=1e-7, atol=1e-9
    )


def test_dask_refuses_binomial_experts_and_bad_counts():
    da = pytest.importorskip("dask.array")
    X, y = _poisson_data(600, 0)
    Xd = da.from_array(X, chunks=(200, 2))
    with pytest.raises(ValueError, match="expert='binomial'.*NumPy"):
        MixtureOfExpertsRegressor(2, expert="binomial").fit(
            Xd, da.from_array(np.clip(y / 10, 0, 1), chunks=200)
        )
    bad = y.copy()
    bad[450] = -2.0  # in the last block
    with pytest.raises(ValueError, match="non-negative integers"):
        MixtureOfExpertsRegressor(2, expert="poisson").fit(
            Xd, da.from_array(bad, chunks=200)
        )


def test_binomial_proportions_without_their_trials_are_refused():
    """Proportions such as 0.3 fit with the default of one trial per row
    would be a silently wrong model: the error names sample_weight."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 2))
    trials = rng.randint(2, 10, size=100).astype(float)
    y = rng.binomial(trials.astype(int), 0.4) / trials
    model = MixtureOfExpertsRegressor(2, expert="binomial", random_state=0)
    with pytest.raises(ValueError, match="Pass the number of trials"):
        model.fit(X, y)
    model.fit(X, y, sample_weight=trials)
    with pytest.raises(ValueError, match="Pass the number of trials"):
        model.log_likelihood(X, y)
    with pytest.raises(ValueError, match="Pass the number of trials"):
        MixtureOfExpertsRegressor(2, expert="binomial").partial_fit(X, y)
