"""Predictive distributions of the regressor, and the scores built on them.

Quantiles against a brute-force inversion of the mixture's CDF (written
here from SciPy's laws and the fitted attributes) and against Monte-Carlo
draws; intervals with their nominal coverage on data from a known mixture;
densities that integrate to one; the CRPS against its definition.
"""

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hmexperts import MixtureOfExpertsRegressor
from hmexperts.metrics import (
    crps,
    crps_scorer,
    interval_coverage,
    make_interval_coverage_scorer,
)

FAMILIES = ["linear", "student_t", "gamma", "poisson", "binomial"]


def _data(expert, n=600, seed=0):
    """Two experts on x0 with a gate on x1, targets of ``expert``'s family."""
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, size=(n, 2))
    upper = rng.uniform(size=n) < 1 / (1 + np.exp(-3 * X[:, 1]))
    eta = np.where(upper, 1.0 + 0.6 * X[:, 0], 2.0 - 0.4 * X[:, 0])
    weight = None
    if expert == "poisson":
        y = rng.poisson(np.exp(eta)).astype(float)
    elif expert == "gamma":
        y = rng.gamma(5.0, np.exp(eta) / 5.0)
    elif expert == "binomial":
        weight = rng.randint(1, 15, size=n).astype(float)
        p = 1 / (1 + np.exp(-(eta - 1.5)))
        y = rng.binomial(weight.astype(int), p) / weight
    elif expert == "student_t":
        y = eta + 0.3 * rng.standard_t(4, size=n)
    else:
        y = eta + 0.3 * rng.normal(size=n)
    return X, y, weight


def _fit(expert, **kwargs):
    X, y, weight = _data(expert)
    model = MixtureOfExpertsRegressor(
        2, expert=expert if expert != "ridge" else Ridge(), random_state=0, **kwargs
    )
    return model.fit(X, y, sample_weight=weight), X, y, weight


def _laws(model, X, weight):
    """Every expert's SciPy law at every row, from the fitted attributes
    alone (not the library's ``leaf_distribution``): (n_leaves, n_rows)."""
    eta = (X @ model.expert_coef_.T + model.expert_intercept_).T[:, :, None]
    expert = model.expert
    if expert == "poisson":
        return stats.poisson(np.exp(eta))
    if expert == "gamma":
        k = 1 / model.expert_dispersion_[:, None, None]
        return stats.gamma(a=k, scale=np.exp(eta) / k)
    scale = np.sqrt(model.expert_variance_)[:, None, None]
    if expert == "student_t":
        return stats.t(df=model.expert_df_[:, None, None], loc=eta, scale=scale)
    return stats.norm(loc=eta, scale=scale)


def _brute_quantiles(model, X, weight, levels):
    """Quantiles by a dense grid search of the mixture's CDF."""
    prior = model.predict_gates(X).T
    if model.expert == "binomial":
        trials = weight[None, :, None].astype(int)
        eta = (X @ model.expert_coef_.T + model.expert_intercept_).T[:, :, None]
        law = stats.binom(trials, 1 / (1 + np.exp(-eta)))
        grid = np.arange(0, int(weight.max()) + 1)
        cdf = np.einsum("ji,jik->ik", prior, law.cdf(grid[None, None, :]))
        result = np.empty((X.shape[0], len(levels)))
        for i in range(X.shape[0]):
            for q, level in enumerate(levels):
                k = grid[np.argmax(cdf[i] >= level - 1e-12)]
                result[i, q] = k / weight[i]
        return result
    law = _laws(model, X, weight)
    if model.expert == "poisson":
        grid = np.arange(0, 400)
    else:
        grid = np.linspace(-10, 60, 140001)
    cdf = np.einsum("ji,jik->ik", prior, law.cdf(grid[None, None, :]))
    index = np.array(
        [[np.argmax(row >= level - 1e-12) for level in levels] for row in cdf]
    )
    return grid[index]


@pytest.mark.parametrize("expert", FAMILIES)
def test_quantiles_invert_the_mixture_cdf(expert):
    model, X, y, weight = _fit(expert)
    rows = slice(0, 40)
    w = None if weight is None else weight[rows]
    levels = np.array([0.02, 0.25, 0.5, 0.9, 0.99])
    got = model.predict_quantiles(X[rows], levels, sample_weight=w)
    expected = _brute_quantiles(model, X[rows], w, levels)
    discrete = expert in ("poisson", "binomial")
    # the grid's spacing (continuous), or exact support points (discrete)
    np.testing.assert_allclose(got, expected, atol=0 if discrete else 1e-3)
    assert np.all(np.diff(got, axis=1) >= 0)


@pytest.mark.parametrize("expert", ["linear", "student_t", "gamma", "ridge"])
def test_quantiles_match_monte_carlo_draws(expert):
    model, X, y, weight = _fit(expert)
    rows = X[:10]
    draws = model.sample(rows, random_state=0, n_draws=20000)
    levels = [0.1, 0.5, 0.9]
    got = model.predict_quantiles(rows, levels)
    # the Monte-Carlo quantile's error: sqrt(q (1 - q) / N) / density
    law_density = np.stack(
        [
            model.predict_density(rows[i : i + 1], got[i])[0]
            for i in range(rows.shape[0])
        ]
    )
    error = np.sqrt(0.09 / 20000) / law_density
    empirical = np.quantile(draws, levels, axis=1).T
    assert np.all(np.abs(empirical - got) < 5 * error)


@pytest.mark.parametrize("expert", ["linear", "poisson"])
def test_intervals_have_their_coverage_on_a_known_mixture(expert):
    """The truth's intervals on fresh draws: within binomial error."""
    model, X, y, _ = _fit(expert)
    # the fitted model serves as a known model: draw from it
    X_new, _, _ = _data(expert, n=4000, seed=1)
    y_new = model.sample(X_new, random_state=1)
    for coverage in (0.5, 0.9):
        bounds = model.predict_interval(X_new, coverage)
        inside = np.mean((bounds[:, 0] <= y_new) & (y_new <= bounds[:, 1]))
        if expert == "poisson":
            # discrete: the interval holds at least its coverage
            assert coverage - 0.02 <= inside
        else:
            error = np.sqrt(coverage * (1 - coverage) / 4000)  # 0.0079 at 0.5
            assert abs(inside - coverage) < 4 * error
        assert interval_coverage(model, X_new, y_new, coverage) == inside


def test_fitted_intervals_cover_held_out_data():
    model, X, y, _ = _fit("student_t")
    X_test, y_test, _ = _data("student_t", n=3000, seed=2)
    share = interval_coverage(model, X_test, y_test, 0.8)
    assert abs(share - 0.8) < 0.03  # 4 binomial errors (0.0073) plus the fit's


@pytest.mark.parametrize("expert", ["linear", "student_t", "gamma", "ridge"])
def test_density_integrates_to_one(expert):
    model, X, y, _ = _fit(expert)
    grid = np.linspace(-30, 80, 110001)
    density = model.predict_density(X[:5], grid)
    np.testing.assert_allclose(np.trapezoid(density, grid, axis=1), 1.0, atol=1e-4)
    # and its integral up to a quantile is that quantile's level
    q = model.predict_quantiles(X[:5], [0.3])[:, 0]
    below = np.where(grid[None, :] <= q[:, None], density, 0.0)
    np.testing.assert_allclose(np.trapezoid(below, grid, axis=1), 0.3, atol=2e-3)


def test_probability_mass_sums_to_one_for_discrete_experts():
    model, X, y, weight = _fit("poisson")
    mass = model.predict_density(X[:5], np.arange(0, 300))
    np.testing.assert_allclose(mass.sum(axis=1), 1.0, atol=1e-10)
    assert np.all(model.predict_density(X[:5], [2.5]) == 0)
    binomial, Xb, yb, wb = _fit("binomial")
    trials = np.full(5, 7.0)
    support = np.arange(8) / 7
    mass = binomial.predict_density(Xb[:5], support, sample_weight=trials)
    np.testing.assert_allclose(mass.sum(axis=1), 1.0, atol=1e-10)


@pytest.mark.parametrize("expert", ["linear", "ridge", "student_t", "gamma", "poisson"])
def test_crps_is_its_definition(expert):
    """``E|Y - y| - E|Y - Y'| / 2`` by Monte Carlo (continuous) or by sums
    over the support (Poisson)."""
    model, X, y, _ = _fit(expert)
    rows, targets = X[:6], y[:6]
    got = crps(model, rows, targets)
    if expert == "poisson":
        k = np.arange(0, 300)
        mass = model.predict_density(rows, k)
        first = (mass * np.abs(k[None, :] - targets[:, None])).sum(axis=1)
        pair = np.abs(k[:, None] - k[None, :])
        second = 0.5 * np.einsum("ik,il,kl->i", mass, mass, pair)
        np.testing.assert_allclose(got, first - second, rtol=1e-9)
        return
    draws = model.sample(rows, random_state=0, n_draws=40000)
    other = model.sample(rows, random_state=1, n_draws=40000)
    expected = np.mean(np.abs(draws - targets[:, None]), axis=1) - 0.5 * np.mean(
        np.abs(draws - other), axis=1
    )
    np.testing.assert_allclose(got, expected, rtol=0.03)


def test_crps_of_gaussian_laws_is_the_closed_form():
    """Linear and learner experts take the closed form (the numerical
    integral agrees only to about 1e-6), and a Student t without a mean an
    infinite CRPS."""
    from hmexperts._predictive import crps_gaussian_mixture

    for expert in ("linear", "ridge"):
        model, X, y, _ = _fit(expert)
        dist, prior, _ = model._laws(X[:20], "crps")
        z = (y[:20] - model._scaling.y_mean) / model._scaling.y_scale
        mean, std = dist.mean()[:, :, 0], dist.std()[:, :, 0]
        closed = model._scaling.y_scale * crps_gaussian_mixture(prior, mean, std, z)
        np.testing.assert_allclose(crps(model, X[:20], y[:20]), closed, rtol=1e-12)
    cauchy = MixtureOfExpertsRegressor.from_parameters(
        gate_coef=[np.zeros((1, 1, 2))],
        gate_intercept=[np.zeros((1, 2))],
        expert_coef=np.zeros((2, 1)),
        expert_intercept=np.zeros(2),
        expert="student_t",
        expert_variance=np.ones(2),
        expert_df=np.array([1.0, 5.0]),
    )
    assert np.all(np.isinf(crps(cauchy, np.zeros((3, 1)), np.zeros(3))))


def test_gaussian_crps_closed_form_equals_the_integral():
    model, X, y, _ = _fit("linear")
    from hmexperts._predictive import crps_gaussian_mixture, crps_numerical

    dist, prior, _ = model._laws(X[:20], "crps")
    z = (y[:20] - model._scaling.y_mean) / model._scaling.y_scale
    closed = crps_gaussian_mixture(prior, dist.mean()[:, :, 0], dist.std()[:, :, 0], z)
    np.testing.assert_allclose(closed, crps_numerical(dist, prior, z), rtol=1e-5)


def test_highest_density_region_of_a_bimodal_mixture():
    model = MixtureOfExpertsRegressor.from_parameters(
        gate_coef=[np.zeros((1, 1, 2))],
        gate_intercept=[np.array([[0.0, np.log(3.0)]])],  # weights 1/4, 3/4
        expert_coef=np.zeros((2, 1)),
        expert_intercept=np.array([-4.0, 4.0]),
        expert_variance=np.array([1.0, 0.25]),
    )
    X = np.zeros((1, 1))
    (region,) = model.predict_interval(X, 0.9, kind="hdr")
    assert region.shape == (2, 2)  # one interval around each mode
    grid = np.linspace(-12, 12, 240001)
    density = model.predict_density(X, grid)[0]
    inside = np.zeros_like(grid, dtype=bool)
    for low, high in region:
        inside |= (grid >= low) & (grid <= high)
    mass = np.trapezoid(np.where(inside, density, 0.0), grid)
    assert abs(mass - 0.9) < 1e-4
    # the density is the same at every end (the region's level set)
    ends = model.predict_density(X, region.ravel())[0]
    np.testing.assert_allclose(ends, ends[0], rtol=1e-3)
    central = model.predict_interval(X, 0.9)[0]
    assert np.sum(region[:, 1] - region[:, 0]) < central[1] - central[0]


def test_bad_input():
    model, X, y, _ = _fit("linear")
    for quantiles in ([0.0, 0.5], [0.5, 1.0], [1.5], [[0.1, 0.2]], []):
        with pytest.raises(ValueError, match="quantiles"):
            model.predict_quantiles(X[:2], quantiles)
    for coverage in (0, 1, -0.5, 2):
        with pytest.raises(ValueError, match="coverage"):
            model.predict_interval(X[:2], coverage)
    with pytest.raises(ValueError, match="kind='widest'"):
        model.predict_interval(X[:2], 0.9, kind="widest")
    with pytest.raises(ValueError, match="y_grid has shape"):
        model.predict_density(X[:2], np.zeros((3, 4)))
    with pytest.raises(ValueError, match="y_grid has shape"):
        model.predict_density(X[:2], np.zeros((2, 2, 2)))
    poisson, Xp, yp, _ = _fit("poisson")
    with pytest.raises(ValueError, match="kind='hdr' is for continuous"):
        poisson.predict_interval(Xp[:2], 0.9, kind="hdr")
    multi = MixtureOfExpertsRegressor(2, random_state=0).fit(
        X, np.column_stack([y, -y + np.random.RandomState(0).normal(size=len(y))])
    )
    with pytest.raises(ValueError, match="law of one target"):
        multi.predict_quantiles(X[:2])
    assert multi.sample(X[:3], random_state=0, n_draws=4).shape == (3, 4, 2)
    with pytest.raises(ValueError, match="n_draws"):
        model.sample(X[:2], n_draws=0)


def test_quantiles_of_a_dask_array_are_lazy_and_equal():
    da = pytest.importorskip("dask.array")
    model, X, y, _ = _fit("linear")
    lazy = model.predict_quantiles(da.from_array(X, chunks=150), [0.1, 0.9])
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), model.predict_quantiles(X, [0.1, 0.9]))


def test_scorers_choose_models_through_pipelines():
    X, y, _ = _data("linear", n=900)
    pipeline = make_pipeline(
        StandardScaler(), MixtureOfExpertsRegressor(random_state=0)
    )
    search = GridSearchCV(
        pipeline,
        {"mixtureofexpertsregressor__n_experts": [1, 2]},
        scoring=crps_scorer,
        cv=3,
    ).fit(X, y)
    # two experts are the truth: a smaller CRPS
    assert search.best_params_["mixtureofexpertsregressor__n_experts"] == 2
    scores = cross_val_score(
        pipeline, X, y, cv=3, scoring=make_interval_coverage_scorer(0.8)
    )
    assert np.all(scores > -0.06)  # within 0.06 of 80% on 300 held-out rows
    assert make_interval_coverage_scorer(0.8).__name__.startswith("interval")
    with pytest.raises(ValueError, match="coverage"):
        make_interval_coverage_scorer(1.2)
