"""Any scikit-learn learner as an expert (``expert=<learner>``).

The mixture of learners must beat (or, for learners that are already
flexible, match) the same learner used alone on data made of regimes; EM
must not lose likelihood when the learner's weighted fit is the exact
M-step; the weighting rule must follow the documented choice; the fitted
clones in ``experts_`` must be distinct, picklable and cloneable; the
estimators must work in ``GridSearchCV``; and learners that cannot fit a
leaf, or leaves with a single class, must fall back to a valid model, say
so (``expert_fallbacks_``) and never fail a fit.

The margins below were measured on this data (seeds fixed) and set at
about half the observed gap, unless a comment says otherwise.
"""

import pickle

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.exceptions import NotFittedError
from sklearn.gaussian_process import (
    GaussianProcessClassifier,
    GaussianProcessRegressor,
)
from sklearn.gaussian_process.kernels import RBF, WhiteKernel
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.validation import check_is_fitted

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts._learners import weighting_rule

# EM with learners whose weighted fit is not a likelihood maximisation
# (trees, SVMs, neighbours) need not converge in a few iterations.
ignore_convergence = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)

# -- data ------------------------------------------------------------------------


def _jump(n, seed):
    """``sin(3x)`` with little noise for x < 0, a noisier line 2 higher for x > 0."""
    rng = np.random.RandomState(seed)
    X = rng.uniform(-3, 3, size=(n, 1))
    x = X[:, 0]
    y = np.where(
        x < 0,
        np.sin(3 * x) + 0.05 * rng.normal(size=n),
        0.5 * x + 2 + 0.5 * rng.normal(size=n),
    )
    return X, y


def _two_slopes(n, seed):
    """``3|x| + sin(4x)``: a V with a wiggle, too much for one depth-3 tree."""
    rng = np.random.RandomState(seed)
    X = rng.uniform(-3, 3, size=(n, 1))
    x = X[:, 0]
    y = 3 * np.abs(x) + np.sin(4 * x) + 0.1 * rng.normal(size=n)
    return X, y


def _regimes(n, seed):
    """Two regimes, ``y = x0`` or ``y = 3 - x0``, chosen by the sign of a
    feature ``x1`` of tiny scale: a distance-based learner barely sees ``x1``,
    a linear gate on standardised inputs splits on it."""
    rng = np.random.RandomState(seed)
    X = np.column_stack([rng.uniform(-3, 3, n), rng.uniform(-0.1, 0.1, n)])
    y = np.where(X[:, 1] < 0, X[:, 0], 3 - X[:, 0]) + 0.1 * rng.normal(size=n)
    return X, y


def _vowels(n_per_cluster, seed):
    """Every class two Gaussian clusters; classes overlap in pairs."""
    rng = np.random.RandomState(seed)
    centres = {0: [(-2, -2), (2, 2)], 1: [(-2, 2), (2, -2)], 2: [(0, 0), (0, 4)]}
    X, y = [], []
    for label, points in centres.items():
        for centre in points:
            X.append(rng.normal(centre, 0.9, size=(n_per_cluster, 2)))
            y.append(np.full(n_per_cluster, label))
    return np.vstack(X), np.concatenate(y)


def _gp_log_likelihood(gp, X, y):
    """Held-out mean log-density of a GP alone, with the same predictive
    variance the mixture gives its GP experts (latent variance plus alpha)."""
    mean, std = gp.predict(X, return_std=True)
    return norm.logpdf(y, mean, np.sqrt(std**2 + gp.alpha)).mean()


# -- 1. the mixture beats the learner alone ---------------------------------------

# (learner, data, n_experts, margin). Held-out R^2 (gap measured at seed 0 in
# parentheses; the gaps at seeds 1 and 2 were as large or larger except where
# noted):
REGRESSORS = {
    # jump: SVR with default C, epsilon and gamma smooths over the jump (0.058;
    # 0.051-0.126 over seeds 0-2).
    "svr": (SVR(), _jump, 2, 0.025),
    # The same through a pipeline (0.058).
    "pipeline-svr": (make_pipeline(StandardScaler(), SVR()), _jump, 2, 0.025),
    # Eight constant pieces against 32 for four trees (0.140; 0.102-0.140).
    "tree": (DecisionTreeRegressor(max_depth=3), _two_slopes, 4, 0.07),
    # Neighbours are taken across both regimes (0.624; 0.511-0.656).
    "knn": (KNeighborsRegressor(), _regimes, 2, 0.3),
}


@ignore_convergence
@pytest.mark.parametrize("name", list(REGRESSORS))
def test_regressor_mixture_beats_learner_alone(name):
    learner, make_data, n_experts, margin = REGRESSORS[name]
    X, y = make_data(300, 0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    alone = clone(learner).fit(X_train, y_train).score(X_test, y_test)
    moe = MixtureOfExpertsRegressor(
        n_experts=n_experts, expert=learner, max_iter=30, random_state=0
    ).fit(X_train, y_train)
    moe_r2 = moe.score(X_test, y_test)
    assert moe_r2 - alone > margin, (moe_r2, alone)


@ignore_convergence
def test_gp_mixture_beats_gp_alone_in_held_out_log_likelihood():
    # The GP alone has one noise level for both regimes (sd 0.05 and 0.5);
    # the mixture gives each regime its own. Compared on held-out mean
    # log-likelihood (nats per sample): measured gap 0.536 at seed 0
    # (0.536-0.821 over seeds 0-2); margin 0.25. R^2 only matches (gap 0.000).
    gp = GaussianProcessRegressor(kernel=RBF() + WhiteKernel(), alpha=1e-2)
    X, y = _jump(300, 0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    alone = _gp_log_likelihood(clone(gp).fit(X_train, y_train), X_test, y_test)
    moe = MixtureOfExpertsRegressor(
        n_experts=2, expert=gp, max_iter=30, random_state=0
    ).fit(X_train, y_train)
    moe_ll = moe.log_likelihood(X_test, y_test).mean()
    assert moe_ll - alone > 0.25, (moe_ll, alone)
    # And the mean is not worse (measured: equal to 3 decimals).
    assert (
        moe.score(X_test, y_test)
        > clone(gp).fit(X_train, y_train).score(X_test, y_test) - 0.02
    )


# (learner, n_per_cluster, seed, max_iter, margin) on the vowel data; held-out
# accuracy, gap measured with n_experts=2 at the given seed.
CLASSIFIERS_BEAT = {
    # One linear boundary per class pair cannot separate two clusters (0.480;
    # 0.473-0.500 over seeds 0-2).
    "logistic": (LogisticRegression(), 100, 0, 30, 0.24),
    # One Gaussian per class for two clusters (0.367; 0.333-0.373).
    "naive-bayes": (GaussianNB(), 100, 0, 30, 0.17),
    # Four rectangles for six clusters (0.400; 0.380-0.433).
    "tree": (DecisionTreeClassifier(max_depth=2), 100, 0, 30, 0.2),
}


@ignore_convergence
@pytest.mark.parametrize("name", list(CLASSIFIERS_BEAT))
def test_classifier_mixture_beats_learner_alone(name):
    learner, n_per_cluster, seed, max_iter, margin = CLASSIFIERS_BEAT[name]
    X, y = _vowels(n_per_cluster, seed)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, random_state=0, stratify=y
    )
    alone = clone(learner).fit(X_train, y_train).score(X_test, y_test)
    moe = MixtureOfExpertsClassifier(
        n_experts=2, expert=learner, max_iter=max_iter, random_state=0
    ).fit(X_train, y_train)
    moe_acc = moe.score(X_test, y_test)
    assert moe_acc - alone > margin, (moe_acc, alone)


# Learners already flexible enough for the vowel data: the mixture only
# matches them. Measured (50 samples per cluster, n_experts=2, seeds 0-2):
# accuracy gap -0.013..+0.027, log-loss higher by 0.000..0.012. Margins: 0.05 in
# accuracy (about 4 test samples of 75) and 0.05 nats in log-loss.
CLASSIFIERS_MATCH = {
    # SVC(probability=True) is deprecated in scikit-learn 1.9 (FutureWarning,
    # an error here): calibrated probabilities come from CalibratedClassifierCV.
    "calibrated-svc": (CalibratedClassifierCV(SVC(), ensemble=False), 1),
    "gp-classifier": (GaussianProcessClassifier(), 2),
}


# CalibratedClassifierCV's inner 5-fold split warns when a leaf holds fewer
# than 5 samples of a class (3 at the k-means start here); it still fits.
@pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")
@ignore_convergence
@pytest.mark.parametrize("name", list(CLASSIFIERS_MATCH))
def test_flexible_classifier_mixture_matches_learner_alone(name):
    learner, seed = CLASSIFIERS_MATCH[name]
    X, y = _vowels(50, seed)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, random_state=0, stratify=y
    )
    alone = clone(learner).fit(X_train, y_train)
    moe = MixtureOfExpertsClassifier(
        n_experts=2, expert=learner, max_iter=10, random_state=0
    ).fit(X_train, y_train)
    assert moe.score(X_test, y_test) > alone.score(X_test, y_test) - 0.05
    moe_loss = log_loss(y_test, moe.predict_proba(X_test))
    alone_loss = log_loss(y_test, alone.predict_proba(X_test))
    assert moe_loss < alone_loss + 0.05, (moe_loss, alone_loss)


# -- 2. EM does not lose likelihood when the weighted fit is exact ------------------


def _largest_relative_decrease(lower_bounds):
    bounds = np.asarray(lower_bounds)
    return np.max(-np.diff(bounds) / np.abs(bounds[1:]))


@ignore_convergence
@pytest.mark.parametrize("seed", [0, 1, 3])
def test_em_monotone_with_weighted_least_squares(seed):
    # LinearRegression with sample_weight is the exact weighted M-step, the
    # variance the weighted residual variance. Measured over seeds 0-4 with
    # 2 and 3 experts: no decrease at all; tolerance 1e-9 relative.
    X, y = _jump(200, seed)
    model = MixtureOfExpertsRegressor(
        n_experts=3, expert=LinearRegression(), max_iter=50, tol=1e-8, random_state=0
    ).fit(X, y)
    assert model.n_iter_ >= 5  # enough steps for the check to mean something
    assert _largest_relative_decrease(model.lower_bounds_) < 1e-9


@ignore_convergence
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_em_monotone_with_weighted_logistic_regression(seed):
    # Weighted logistic regression with a negligible penalty (C=1e4) solved
    # to tol=1e-10 (Newton, fast here; lbfgs took 10 s per fit on 2 cores)
    # is the exact M-step. Measured over seeds 0-3: no decrease; tolerance
    # 1e-6 relative. (With lbfgs' default tol the decrease reached 3e-5, and
    # with C=100 the unreported penalty gave 3e-6.)
    X, y = _vowels(25, seed)
    expert = LogisticRegression(C=1e4, solver="newton-cholesky", tol=1e-10)
    model = MixtureOfExpertsClassifier(
        n_experts=2, expert=expert, max_iter=20, tol=1e-8, random_state=seed
    ).fit(X, y)
    assert model.n_iter_ >= 5
    assert _largest_relative_decrease(model.lower_bounds_) < 1e-6


@ignore_convergence
@pytest.mark.parametrize("seed", [1, 2])
def test_gp_experts_return_their_best_iterate(seed):
    # A GP expert's latent function is fit exactly to its weighted data, but
    # the E-step scores it by its predictive density (latent variance plus
    # noise), which the M-step does not maximise: EM can go down. Measured
    # largest relative decreases of lower_bounds_ with RBF(1.0), alpha=0.01,
    # 3 experts: 3.7e-3 (seed 1, iterations 8-15), 0.11 (seed 2, first
    # iteration); over 36 fits (seeds 0-5, 2-3 experts, alpha 0.01-0.1, length
    # scales 0.3-1) up to 0.11. (A plug-in density N(y; mean, alpha) plus the
    # penalty f' K^-1 f / 2 made EM monotone to 1.5e-11, but only with all the
    # noise in alpha, which every expert then shares; experts that learn their
    # own noise, as they do by default, need the predictive density.) So fit
    # keeps the best.
    gp = GaussianProcessRegressor(kernel=RBF(1.0), alpha=0.01, optimizer=None)
    X, y = _jump(200, seed)
    model = MixtureOfExpertsRegressor(
        n_experts=3, expert=gp, max_iter=30, tol=1e-8, random_state=seed
    ).fit(X, y)
    assert model.lower_bound_ == max(model.lower_bounds_)
    # The returned state is the one lower_bound_ describes: its training
    # log-likelihood, less the gates' penalty, is lower_bound_.
    gate_penalty = model._gates.penalty(np) / len(X)
    np.testing.assert_allclose(
        model.log_likelihood(X, y).mean() - gate_penalty, model.lower_bound_, rtol=1e-10
    )


@ignore_convergence
def test_gp_experts_on_two_regimes_beat_one_gp_and_linear_experts():
    # Two regimes of different length-scale and noise: sin(x) with noise 0.05
    # on [-3, 0), sin(6x) with noise 0.3 on [0, 3]. One stationary GP must
    # compromise on both; two GP experts each model one, with its own noise
    # (the WhiteKernel is taken as the expert's noise sigma_j^2, fit by the
    # weighted marginal likelihood; alpha=1e-3 adds to it).
    # benchmarks/study_learner_experts.py measured held-out log-likelihoods
    # 0.666 +/- 0.014 (2 GP experts), 0.115 (one GP), 0.222 (8 linear
    # experts) at 600 samples over 3 seeds, when the WhiteKernel was an
    # unweighted noise; here, at 300, 0.650 (0.647 then; the default
    # GaussianProcessRegressor() expert also 0.650 now, -1.359 then), 0.072
    # and 0.111: the 0.2 margins are under half the gaps.
    rng = np.random.RandomState(0)

    def draw(n):
        x = rng.uniform(-3, 3, size=n)
        smooth = x < 0
        y = np.where(smooth, np.sin(x), np.sin(6 * x))
        y = y + np.where(smooth, 0.05, 0.3) * rng.normal(size=n)
        return x[:, None], y

    X, y = draw(300)
    X_test, y_test = draw(1000)
    kernel = 1.0 * RBF() + WhiteKernel()
    gp = GaussianProcessRegressor(kernel=kernel, alpha=1e-3).fit(X, y)
    mean, std = gp.predict(X_test, return_std=True)  # includes the white noise
    one_gp = norm.logpdf(y_test, mean, np.sqrt(std**2 + 1e-3)).mean()
    experts = MixtureOfExpertsRegressor(
        n_experts=2,
        expert=GaussianProcessRegressor(kernel=kernel, alpha=1e-3),
        max_iter=30,
        random_state=0,
    ).fit(X, y)
    linear = MixtureOfExpertsRegressor(n_experts=8, n_init=2, random_state=0).fit(X, y)
    gp_experts = experts.log_likelihood(X_test, y_test).mean()
    linear_experts = linear.log_likelihood(X_test, y_test).mean()
    assert gp_experts > one_gp + 0.2
    assert gp_experts > linear_experts + 0.2


# -- 3. the weighting rule --------------------------------------------------------


@pytest.mark.parametrize(
    "learner, expected",
    [
        (SVR(), "sample_weight"),
        (make_pipeline(StandardScaler(), SVR()), "sample_weight"),
        (GaussianProcessRegressor(), "gp_noise"),
        (make_pipeline(StandardScaler(), GaussianProcessRegressor()), "gp_noise"),
        (KNeighborsRegressor(), "threshold"),
        # A pipeline whose last step takes no sample_weight.
        (make_pipeline(StandardScaler(), KNeighborsRegressor()), "threshold"),
    ],
)
def test_auto_weighting_rule(learner, expected):
    assert weighting_rule(learner, "auto") == expected


@pytest.mark.parametrize("weighting", ["sample_weight", "threshold", "resample"])
@pytest.mark.parametrize(
    "learner", [SVR(), GaussianProcessRegressor(), KNeighborsRegressor()]
)
def test_explicit_weighting_rule_is_respected(learner, weighting):
    assert weighting_rule(learner, weighting) == weighting


def _tree_training(weighting, random_state=0, n_experts=2):
    """Per leaf: (training rows, their total weight) of tree experts fit on
    the jump data from fixed initial responsibilities."""
    X, y = _jump(200, 0)
    init = np.where((X[:, 0] < 0)[:, None], [0.8, 0.2], [0.3, 0.7])
    model = MixtureOfExpertsRegressor(
        n_experts=n_experts,
        expert=DecisionTreeRegressor(max_depth=2, random_state=0),
        expert_weighting=weighting,
        init_params=init,
        max_iter=0,
        random_state=random_state,
    ).fit(X, y)
    trees = [expert.tree_ for expert in model.experts_]
    return model, [(t.n_node_samples[0], t.weighted_n_node_samples[0]) for t in trees]


def test_explicit_weighting_changes_how_trees_are_fit():
    # max_iter=0: the learners are fit once, on the initial responsibilities
    # (0.8/0.2 left of 0, 0.3/0.7 right of it; 200 samples).
    _, weighted = _tree_training("auto")
    _, threshold = _tree_training("threshold")
    _, resampled = _tree_training("resample")
    n_left = int((_jump(200, 0)[0][:, 0] < 0).sum())
    mass = [0.8 * n_left + 0.3 * (200 - n_left), 0.2 * n_left + 0.7 * (200 - n_left)]
    # auto -> sample_weight: every sample, weighted by its responsibility.
    for (n, weight), expected in zip(weighted, mass, strict=True):
        assert n == 200
        assert weight == pytest.approx(expected)
    # threshold 0.5: leaf 0 the left samples, leaf 1 the right ones, unweighted.
    assert threshold == [(n_left, n_left), (200 - n_left, 200 - n_left)]
    # resample: round(mass) draws (with repeats) of unit weight.
    assert [weight for _, weight in resampled] == [round(m) for m in mass]


def test_resample_reproducible_and_seed_dependent():
    # Fixed initial responsibilities: the only randomness is the resampling.
    first, _ = _tree_training("resample", random_state=0)
    again, _ = _tree_training("resample", random_state=0)
    other, _ = _tree_training("resample", random_state=1)
    X = np.linspace(-3, 3, 50)[:, None]
    np.testing.assert_array_equal(first.predict(X), again.predict(X))
    assert np.abs(first.predict(X) - other.predict(X)).max() > 1e-3
    # The threshold rule does not depend on the seed.
    thr0, _ = _tree_training("threshold", random_state=0)
    thr1, _ = _tree_training("threshold", random_state=1)
    np.testing.assert_array_equal(thr0.predict(X), thr1.predict(X))


# -- 4. max_samples_per_expert ------------------------------------------------------


@ignore_convergence
def test_max_samples_per_expert_caps_gp_training_sets():
    gp = GaussianProcessRegressor(kernel=RBF(), alpha=1e-2, optimizer=None)
    X, y = _jump(200, 0)
    model = MixtureOfExpertsRegressor(
        n_experts=2, expert=gp, max_samples_per_expert=50, max_iter=5, random_state=0
    ).fit(X, y)
    sizes = [expert.X_train_.shape[0] for expert in model.experts_]
    assert max(sizes) <= 50
    # The cap binds: 200 samples for 2 leaves, one owns far more than 50.
    assert max(sizes) == 50


def test_capped_subsample_ignores_subnormal_responsibilities():
    """Keys ``log(u) / r`` of a subnormal ``r`` overflow to -inf: such rows
    are never drawn, and no overflow warning escapes (a 64-leaf fit of SVR
    experts hit it)."""
    from hmexperts._learners import LearnerExperts

    bank = LearnerExperts(
        LinearRegression(),
        2,
        scaling=None,
        weighting="sample_weight",
        responsibility_threshold=0.5,
        max_samples=3,
        random_state=np.random.RandomState(0),
        min_variance=1e-3,
    )
    bank._uniforms = np.random.RandomState(1).uniform(size=(2, 6))
    resp = np.array([1e-310, 0.9, 0.8, 5e-320, 0.7, 0.6])
    rows, weights = bank._training_rows(resp, 0)
    assert len(rows) == 3 and 0 not in rows and 3 not in rows
    np.testing.assert_array_equal(weights, resp[rows])


# -- 5. fitted clones, clone, pickle, bic ----------------------------------------


@ignore_convergence
def test_experts_are_distinct_fitted_clones():
    expert = DecisionTreeRegressor(max_depth=2)
    X, y = _two_slopes(200, 0)
    model = MixtureOfExpertsRegressor(
        n_experts=3, expert=expert, max_iter=5, random_state=0
    ).fit(X, y)
    assert len(model.experts_) == model.n_leaves_ == 3
    assert len({id(e) for e in model.experts_}) == 3
    assert all(e is not expert for e in model.experts_)
    for fitted in model.experts_:
        check_is_fitted(fitted)
    # The parameter stays unfitted.
    assert model.expert is expert
    with pytest.raises(NotFittedError):
        check_is_fitted(expert)
    # Each leaf's tree differs: they were fit to different responsibilities.
    predictions = np.stack([e.predict(X) for e in model.experts_])
    assert np.abs(predictions[0] - predictions[1]).max() > 0.1


@ignore_convergence
@pytest.mark.parametrize("task", ["regression", "classification"])
def test_clone_and_pickle_give_identical_predictions(task):
    if task == "regression":
        X, y = _jump(150, 0)
        model = MixtureOfExpertsRegressor(
            n_experts=2, expert=make_pipeline(StandardScaler(), SVR()), max_iter=10
        )
        predict = "predict"
    else:
        X, y = _vowels(25, 0)
        model = MixtureOfExpertsClassifier(
            n_experts=2, expert=DecisionTreeClassifier(max_depth=2), max_iter=10
        )
        predict = "predict_proba"
    model.set_params(random_state=0).fit(X, y)
    expected = getattr(model, predict)(X)
    refit = clone(model).fit(X, y)
    np.testing.assert_array_equal(getattr(refit, predict)(X), expected)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(getattr(restored, predict)(X), expected)
    np.testing.assert_array_equal(
        restored.log_likelihood(X, y), model.log_likelihood(X, y)
    )


@ignore_convergence
@pytest.mark.parametrize("criterion", ["bic", "aic"])
def test_information_criteria_undefined_for_learners(criterion):
    X, y = _jump(100, 0)
    model = MixtureOfExpertsRegressor(
        n_experts=2, expert=SVR(), max_iter=5, random_state=0
    ).fit(X, y)
    with pytest.raises(ValueError, match="number of parameters of expert=SVR.*unknown"):
        getattr(model, criterion)(X, y)


# -- 6. model selection -------------------------------------------------------------


@ignore_convergence
def test_grid_search_over_learner_parameters():
    X, y = _jump(150, 0)
    search = GridSearchCV(
        MixtureOfExpertsRegressor(expert=SVR(), max_iter=10, random_state=0),
        {"expert__C": [0.1, 10], "n_experts": [1, 2]},
        cv=3,
    ).fit(X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_["expert__C"] in (0.1, 10)
    assert search.best_params_["n_experts"] in (1, 2)
    # The parameter reaches the fitted clones.
    best_C = search.best_params_["expert__C"]
    assert all(e.C == best_C for e in search.best_estimator_.experts_)


@ignore_convergence
def test_grid_search_over_the_expert():
    X, y = _two_slopes(150, 0)
    tree = DecisionTreeRegressor(max_depth=2, random_state=0)
    search = GridSearchCV(
        MixtureOfExpertsRegressor(n_experts=2, max_iter=10, random_state=0),
        {"expert": [None, tree]},
        cv=3,
    ).fit(X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    best = search.best_params_["expert"]
    assert best is None or isinstance(best, DecisionTreeRegressor)
    # Built-in experts expose coefficients, learners experts_.
    fitted = search.best_estimator_
    assert hasattr(fitted, "experts_") != hasattr(fitted, "expert_coef_")


# -- 7. errors ------------------------------------------------------------------------


def test_learner_failing_on_a_leaf_falls_back_and_says_so():
    # 60 samples over 4 leaves: no leaf has 50 samples for 50 neighbours, so
    # every leaf's k-NN is refit with as many neighbours as it has samples.
    X, y = _jump(60, 0)
    model = MixtureOfExpertsRegressor(
        n_experts=4,
        expert=KNeighborsRegressor(n_neighbors=50),
        expert_weighting="threshold",
        max_iter=3,
        random_state=0,
    )
    with pytest.warns(UserWarning, match=r"4 of 4 learner experts failed on their"):
        model.fit(X, y)
    assert sorted(model.expert_fallbacks_) == [0, 1, 2, 3]
    for leaf, learner in enumerate(model.experts_):
        assert (
            f"refit with n_neighbors={learner.n_neighbors}"
            in (model.expert_fallbacks_[leaf])
        )
        assert learner.n_neighbors < 50
    assert np.all(np.isfinite(model.predict(X)))


def _leaves_for_the_calibrator():
    """Two leaves, given as initial responsibilities: 3 + 3 samples of two
    classes (too few for 5 inner folds), and 15 + 14 of two classes with a
    single sample of a third (an inner fold without it fails)."""
    rng = np.random.RandomState(0)
    y = np.array([0] * 3 + [1] * 3 + [1] * 15 + [2] * 14 + [0])
    X = rng.normal(size=(36, 2)) + 2.0 * (y == 1)[:, None] - 2.0 * (y == 2)[:, None]
    resp = np.zeros((36, 2))
    resp[:6, 0] = resp[6:, 1] = 1.0
    return X, y, resp


def test_calibrated_svm_leaves_are_refit_with_what_their_samples_allow():
    X, y, resp = _leaves_for_the_calibrator()
    model = MixtureOfExpertsClassifier(
        2,
        expert=CalibratedClassifierCV(SVC(), ensemble=False),
        expert_weighting="threshold",
        init_params=resp,
        max_iter=0,
    )
    with pytest.warns(UserWarning, match="2 of 2 learner experts failed"):
        model.fit(X, y)
    fallbacks = model.expert_fallbacks_
    assert fallbacks[0].endswith("; refit with inner cv=3")
    assert model.experts_[0].cv == 3
    assert fallbacks[1].endswith(
        "refit without the classes of fewer than 2 samples [0] (inner cv=5)"
    )
    assert list(model.experts_[1].classes_) == [1, 2]
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert model.score(X, y) > 0.8


class _FailsOnSmallLeaves(RegressorMixin, BaseEstimator):
    """Linear regression that refuses fewer than ``min_samples`` rows."""

    def __init__(self, min_samples=20):
        self.min_samples = min_samples

    def fit(self, X, y, sample_weight=None):
        if len(X) < self.min_samples:
            raise ValueError(f"needs {self.min_samples} samples, got {len(X)}")
        self.model_ = LinearRegression().fit(X, y, sample_weight=sample_weight)
        return self

    def predict(self, X):
        return self.model_.predict(X)


def test_failing_leaf_keeps_its_previous_fit_or_becomes_constant():
    # Leaf 0 has 30 samples, leaf 1 only 10 at the start: leaf 1 is the
    # constant model of its samples (its weighted mean), leaf 0 a real fit.
    X, y = _jump(40, 0)
    resp = np.zeros((40, 2))
    resp[:30, 0] = resp[30:, 1] = 1.0
    model = MixtureOfExpertsRegressor(
        2,
        expert=_FailsOnSmallLeaves(),
        expert_weighting="threshold",
        init_params=resp,
        max_iter=0,
    )
    with pytest.warns(UserWarning, match="1 of 2 learner experts failed"):
        model.fit(X, y)
    assert 0 not in model.expert_fallbacks_
    assert model.expert_fallbacks_[1].endswith("a constant model of its samples")
    np.testing.assert_allclose(model.experts_[1].predict(X[:3]), y[30:].mean())
    # One more iteration that starves leaf 0: it keeps its previous fit.
    experts = model._experts
    starved = np.zeros((2, 40))
    starved[1] = 1.0
    previous = experts.learners[0]
    experts.fit(
        model._scaling.design(X, np), model._encode_target(y, X, np), starved, np
    )
    assert experts.learners[0] is previous
    assert experts.fallbacks[0].endswith("kept its previous fit")


class _AlwaysFails(RegressorMixin, BaseEstimator):
    def fit(self, X, y, sample_weight=None):
        raise ValueError("this learner never fits")

    def predict(self, X):
        return np.zeros(len(X))


def test_learner_that_fails_on_every_leaf_raises():
    X, y = _jump(60, 0)
    model = MixtureOfExpertsRegressor(n_experts=2, expert=_AlwaysFails())
    with pytest.raises(
        ValueError,
        match=r"expert at leaf 0 \(_AlwaysFails\).*so did every other leaf's: this "
        r"learner never fits. Check the learner's parameters",
    ):
        model.fit(X, y)


# -- 8. single-class leaves -----------------------------------------------------------


@ignore_convergence
def test_single_class_leaves_give_valid_probabilities():
    # Six well-separated clusters, each of one class (three of each of two
    # classes), six experts with the threshold rule: leaves own one cluster.
    rng = np.random.RandomState(0)
    centres = [(0, 0), (10, 0), (20, 0), (0, 10), (10, 10), (20, 10)]
    X = np.vstack([rng.normal(c, 0.5, size=(30, 2)) for c in centres])
    y = np.repeat([0, 1, 0, 1, 0, 1], 30)
    model = MixtureOfExpertsClassifier(
        n_experts=6, expert=KNeighborsClassifier(), max_iter=10, random_state=0
    ).fit(X, y)
    # The case under test happens: some leaf saw a single class, and says so.
    assert min(len(e.classes_) for e in model.experts_) == 1
    single = [leaf for leaf, e in enumerate(model.experts_) if len(e.classes_) == 1]
    for leaf in single:
        assert "one class" in model.expert_fallbacks_[leaf]
    grid_x, grid_y = np.meshgrid(np.linspace(-5, 25, 20), np.linspace(-5, 15, 20))
    grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])
    proba = model.predict_proba(np.vstack([X, grid]))
    assert proba.shape == (len(X) + len(grid), 2)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-10)
    assert model.score(X, y) > 0.95  # each cluster is pure and far from the rest


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")  # fallbacks, sizes, inner CV
@pytest.mark.parametrize("load", [load_wine, load_breast_cancer])
def test_grid_search_with_calibrated_svm_experts_never_fails_a_fit(load):
    # The route the error messages recommend for an SVM: its leaves soon hold
    # one class, or too few of a class for the calibrator's inner CV. With
    # error_score="raise" every fit of the grid must succeed (before the
    # fallbacks, both data sets failed within 5 EM iterations).
    X, y = load(return_X_y=True)
    pipeline = make_pipeline(
        StandardScaler(), MixtureOfExpertsClassifier(max_iter=5, random_state=0)
    )
    prefix = "mixtureofexpertsclassifier__"
    grid = {
        f"{prefix}n_experts": [2, 3, 4],
        f"{prefix}depth": [1, 2],
        f"{prefix}expert": [None, CalibratedClassifierCV(SVC(), ensemble=False)],
    }
    search = GridSearchCV(pipeline, grid, cv=2, error_score="raise").fit(X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_score_ > 0.9


def test_gp_expert_with_array_alpha_is_rejected():
    # EM divides the GP's scalar noise alpha by each sample's responsibility;
    # an array alpha (one per training sample) has no meaning for a leaf.
    X, y = _jump(60, 0)
    gp = GaussianProcessRegressor(alpha=np.full(60, 0.01))
    with pytest.raises(ValueError, match="needs a scalar alpha"):
        MixtureOfExpertsRegressor(n_experts=2, expert=gp).fit(X, y)
