"""Where the mixture wins and where it does not, on real data sets.

scikit-learn's bundled real data sets (no download) and the Peterson &
Barney (1952) vowel formants shipped with hmexperts, scored by repeated
K-fold cross-validation, the same outer folds for every model:

regression
    ``diabetes`` (442 x 10, disease progression after one year);
    ``linnerud`` (20 x 3, three physiological targets at once: the
    mixture's experts are multivariate Gaussians with full covariances);
    ``vowels-F0``: the fundamental frequency F0 (Hz) of a vowel token from
    its formants F1, F2, F3 (1520 tokens of 76 speakers). Men, women and
    children differ in F0 far more than in formants, so ``p(F0 | F1, F2,
    F3)`` is a blend of the speaker groups' laws: a case chosen because we
    expected the mixture to win there, not a neutral one.
classification
    ``iris``, ``wine``, ``breast_cancer``, ``digits`` (8x8 images, 64
    features), and ``vowels``: the ten vowels of Peterson & Barney from F0,
    F1, F2, F3.

The two vowel tasks split by speaker (``GroupKFold``, shuffled, one
shuffle per repetition), so that a score is the score on new speakers;
the others by ``KFold`` / ``StratifiedKFold``, shuffled. The folds of the
inner cross-validations (3 folds of the outer training fold, grouped and
stratified the same way) are also shared by all the models tuned on them.

Models (inputs standardised by a ``StandardScaler`` in a ``Pipeline``):

- ``linear``, the baseline: ``RidgeCV`` (alpha in ``logspace(-3, 3, 13)``)
  or ``LogisticRegressionCV`` (10 values of C, ``neg_log_loss``), both on
  the inner folds. Its predictive law for regression is a Gaussian around
  the prediction with the covariance of the training fold's residuals.
- ``MoE default``: ``MixtureOfExperts*`` with its defaults (2 linear
  experts, ``random_state=0``), untuned: what a new user gets first.
- ``MoE tuned``: ``GridSearchCV`` over a fixed grid of tree shapes,
  ``n_experts`` x ``depth`` in 1x1, 2x1, 4x1, 8x1, 2x2, 2x3 (1 to 8
  leaves), for classification crossed with ``expert_alpha`` in {1e-2 (the
  default), 1} (the experts' L2 penalty on the summed log-loss: 1e-2 is a
  weak one, about ``C=100`` of ``LogisticRegression``), chosen by the
  inner folds' mean log-likelihood (``log_likelihood_scorer``, which is
  minus the log-loss for a classifier). ``n_experts=1`` is a single
  linear-Gaussian (or multinomial logistic) model, so the search can fall
  back to "linear". Which grid point it chose is printed. Gates read all
  the features; no ``gate_features`` / ``expert_features`` selection.
- ``HGB``: ``HistGradientBoosting*`` with its defaults (untuned). Its
  regression law: a Gaussian around the prediction with the covariance of
  the inner folds' out-of-fold residuals (its training residuals are far
  too small: boosting fits the training fold closely); those 3 inner fits
  count in its fit time.
- ``GP`` (regression, n_train <= 1500): ``GaussianProcessRegressor`` with
  ``1.0 * RBF(one length scale per feature) + WhiteKernel()``,
  ``normalize_y=True``, hyper-parameters by maximum marginal likelihood
  (one start); its predictive Gaussian (the WhiteKernel noise included).

Metrics on the held-out fold: regression R^2 (``r2_score``, averaged over
targets), mean log-likelihood ``log p(y | x)`` in nats (the joint density
of the 3 targets for linnerud), CRPS (``hmexperts.metrics.crps`` for a
one-target mixture, the closed form of the Gaussian CRPS for the
Gaussians, the closed form of a Gaussian mixture's CRPS for the marginals
of the multi-output mixture; averaged over targets) and the coverage of
central 90% intervals (each target's marginal); classification accuracy
and log-loss. Fit time: seconds of ``fit`` (inner tuning included), the
median over folds, and its ratio to the linear baseline's.

The first table of a data set gives the mean and standard deviation over
the outer folds; the second every model's paired difference from the
linear baseline, and the tuned mixture's from boosting and the GP, with a
corrected standard error (Nadeau & Bengio, 2003: the variance of the fold
differences times ``1/J + n_test/n_train`` for J folds, since the folds
of repeated cross-validation overlap) and a verdict: ``better`` /
``worse`` when the difference is more than 2 such standard errors, else
``tie``. Higher is better for R^2, log-likelihood and accuracy; lower for
CRPS and log-loss; for coverage, the distance ``|cover - 0.9|`` is
compared, lower is better. A final summary gives, for every data set and
score, the tuned mixture against the linear baseline and against the
best other model (by mean), and the default mixture against the linear
baseline.

Warnings (the mixture's warning that a large grid point has more
parameters than samples on the small sets, ``ConvergenceWarning`` of EM
or of the GP's kernel fit) are counted per model, not printed.
Results: ``benchmarks/results/real_data.txt``.

Run from the repository root::

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \\
        python benchmarks/study_real_data.py
    python benchmarks/study_real_data.py --datasets diabetes iris --repeats 1
"""

import argparse
import time
import warnings
from collections import Counter

import numpy as np
from _common import print_machine
from scipy.stats import multivariate_normal, norm
from sklearn import datasets as skdata
from sklearn.base import clone
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.metrics import accuracy_score, log_loss, r2_score
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    StratifiedKFold,
    cross_val_predict,
)
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts.datasets import load_peterson_barney
from hmexperts.metrics import crps, interval_coverage, log_likelihood_scorer

REGRESSION = ("diabetes", "linnerud", "vowels-F0")
CLASSIFICATION = ("iris", "wine", "breast_cancer", "digits", "vowels")
SHAPES = [(1, 1), (2, 1), (4, 1), (8, 1), (2, 2), (2, 3)]  # n_experts, depth
GRID = [
    {"moe__n_experts": [n_experts], "moe__depth": [depth]}
    for n_experts, depth in SHAPES
]
# classification: also the experts' L2 penalty (default 1e-2, and 1)
EXPERT_ALPHAS = [1e-2, 1.0]
GP_MAX_TRAIN = 1500
COVERAGE = 0.9
METRICS = {
    "regression": [
        ("R^2", +1),
        ("loglik", +1),
        ("CRPS", -1),
        ("cover90", 0),
    ],
    "classification": [("accuracy", +1), ("log-loss", -1)],
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=list(REGRESSION + CLASSIFICATION),
        choices=REGRESSION + CLASSIFICATION,
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--repeats", type=int, default=5, help="repetitions of K-fold (default 5)"
    )
    return parser.parse_args()


# -- data ----------------------------------------------------------------------


def load(name):
    """X, y, task, groups (None unless split by speaker), description."""
    if name in ("vowels", "vowels-F0"):
        bunch = load_peterson_barney(formants=("F0", "F1", "F2", "F3"))
        if name == "vowels":
            return (
                bunch.data,
                bunch.target,
                "classification",
                bunch.speaker,
                "10 vowels from F0-F3 (Hz), split by speaker",
            )
        return (
            bunch.data[:, 1:],
            bunch.data[:, 0],
            "regression",
            bunch.speaker,
            "F0 (Hz) from F1, F2, F3, split by speaker",
        )
    X, y = getattr(skdata, f"load_{name}")(return_X_y=True)
    if name in REGRESSION:
        what = "3 targets" if y.ndim == 2 else "1 target"
        return X, y, "regression", None, what
    return X, y, "classification", None, f"{len(np.unique(y))} classes"


def outer_splits(X, y, task, groups, n_folds, n_repeats):
    """The list of (train, test) index pairs shared by every model."""
    splits = []
    for repeat in range(n_repeats):
        if groups is not None:
            cv = GroupKFold(n_folds, shuffle=True, random_state=repeat)
        elif task == "classification":
            cv = StratifiedKFold(n_folds, shuffle=True, random_state=repeat)
        else:
            cv = KFold(n_folds, shuffle=True, random_state=repeat)
        splits.extend(cv.split(X, y, groups))
    return splits


def inner_splits(y, task, groups, seed):
    """3 inner folds of a training fold, as a list (shared by the tuners)."""
    if groups is not None:
        cv = GroupKFold(3, shuffle=True, random_state=seed)
    elif task == "classification":
        cv = StratifiedKFold(3, shuffle=True, random_state=seed)
    else:
        cv = KFold(3, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(y)), y, groups))


# -- models --------------------------------------------------------------------


def models(task, n_train, n_features, inner, multi_output):
    """name -> unfitted estimator; the tuners get the inner folds."""
    scaler = StandardScaler()
    if task == "regression":
        linear = make_pipeline(scaler, RidgeCV(alphas=np.logspace(-3, 3, 13), cv=inner))
        mixture = MixtureOfExpertsRegressor(random_state=0)
        hgb = HistGradientBoostingRegressor(random_state=0)
        grid = GRID
        if multi_output:
            hgb = MultiOutputRegressor(hgb)
    else:
        linear = make_pipeline(
            scaler,
            LogisticRegressionCV(
                Cs=10,
                l1_ratios=(0,),
                cv=inner,
                scoring="neg_log_loss",
                max_iter=2000,
                use_legacy_attributes=False,
            ),
        )
        mixture = MixtureOfExpertsClassifier(random_state=0)
        hgb = HistGradientBoostingClassifier(random_state=0)
        grid = [dict(g, moe__expert_alpha=EXPERT_ALPHAS) for g in GRID]
    out = {
        "linear": linear,
        "MoE default": make_pipeline(clone(scaler), mixture),
        "MoE tuned": GridSearchCV(
            Pipeline([("scale", clone(scaler)), ("moe", clone(mixture))]),
            grid,
            scoring=log_likelihood_scorer,
            cv=inner,
            error_score=np.nan,
        ),
        "HGB": hgb,
    }
    if task == "regression" and n_train <= GP_MAX_TRAIN:
        kernel = ConstantKernel(1.0) * RBF(np.ones(n_features)) + WhiteKernel(0.1)
        out["GP"] = make_pipeline(
            clone(scaler),
            GaussianProcessRegressor(kernel, normalize_y=True, random_state=0),
        )
    return out


# -- predictive laws -----------------------------------------------------------


def gaussian_crps(y, mean, std):
    """Closed-form CRPS of N(mean, std^2) at y (Gneiting & Raftery, 2007)."""
    z = (y - mean) / std
    return std * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))


def _a(m, v):
    """E|m + sqrt(v) Z| for standard normal Z."""
    s = np.sqrt(v)
    return m * (2 * norm.cdf(m / s) - 1) + 2 * s * norm.pdf(m / s)


def mixture_crps(y, weights, means, variances):
    """Closed-form CRPS of sum_j w_j N(m_j, v_j) (Grimit et al., 2006).

    y (n,), weights and means (n, L), variances (L,) or (n, L)."""
    variances = np.broadcast_to(variances, means.shape)
    first = np.sum(weights * _a(y[:, None] - means, variances), axis=1)
    pair = _a(
        means[:, :, None] - means[:, None, :],
        variances[:, :, None] + variances[:, None, :],
    )
    second = np.einsum("nj,nk,njk->n", weights, weights, pair)
    return first - second / 2


def mixture_quantile(q, weights, means, variances, n_steps=80):
    """The q quantile of sum_j w_j N(m_j, v_j) by bisection, every row."""
    std = np.sqrt(np.broadcast_to(variances, means.shape))
    low = np.min(means - 10 * std, axis=1)
    high = np.max(means + 10 * std, axis=1)
    for _ in range(n_steps):
        mid = (low + high) / 2
        cdf = np.sum(weights * norm.cdf((mid[:, None] - means) / std), axis=1)
        below = cdf < q
        low = np.where(below, mid, low)
        high = np.where(below, high, mid)
    return (low + high) / 2


def multi_output_mixture_scores(pipeline, X, y):
    """Mean CRPS and 90% coverage of the marginals of a multi-output
    linear-Gaussian mixture, averaged over targets (the library's crps and
    predict_interval describe one target)."""
    mixture = pipeline[-1]
    Xs = pipeline[:-1].transform(X)
    weights = mixture.predict_gates(Xs)  # (n, L)
    means = (
        np.einsum("np,lpt->nlt", Xs, mixture.expert_coef_)
        + mixture.expert_intercept_[None]
    )  # (n, L, T)
    crps_t, cover_t = [], []
    for t in range(y.shape[1]):
        variances = mixture.expert_covariance_[:, t, t]
        crps_t.append(mixture_crps(y[:, t], weights, means[:, :, t], variances))
        bounds = [
            mixture_quantile(q, weights, means[:, :, t], variances)
            for q in ((1 - COVERAGE) / 2, (1 + COVERAGE) / 2)
        ]
        cover_t.append((bounds[0] <= y[:, t]) & (y[:, t] <= bounds[1]))
    return np.mean(crps_t), np.mean(cover_t)


def gaussian_scores(y, mean, cov=None, std=None):
    """loglik, CRPS, coverage of Gaussian laws: N(mean_i, cov) with one
    covariance for all rows (residual laws), or independent N(mean_it,
    std_it^2) (the GP). y and mean are (n, T)."""
    if std is None:
        std = np.broadcast_to(np.sqrt(np.diag(cov)), mean.shape)
        loglik = multivariate_normal(np.zeros(y.shape[1]), cov).logpdf(y - mean)
        loglik = np.mean(np.atleast_1d(loglik))
    else:
        loglik = np.mean(np.sum(norm.logpdf(y, mean, std), axis=1))
    half = norm.ppf((1 + COVERAGE) / 2) * std
    cover = np.mean((mean - half <= y) & (y <= mean + half))
    return loglik, np.mean(gaussian_crps(y, mean, std)), cover


def residual_covariance(residuals):
    residuals = residuals.reshape(len(residuals), -1)
    return np.atleast_2d(np.cov(residuals, rowvar=False, bias=True))


# -- one fold ------------------------------------------------------------------


def fit_score(name, model, X, y, task, train, test, inner):
    """Fit on train (timed), score on test: dict of metric -> value, and
    the number of warnings."""
    Xtr, ytr, Xte, yte = X[train], y[train], X[test], y[test]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model.fit(Xtr, ytr)
        residual_law = None
        if name == "HGB" and task == "regression":
            oof = cross_val_predict(clone(model), Xtr, ytr, cv=inner)
            residual_law = residual_covariance(ytr - oof)
        seconds = time.perf_counter() - start
        if task == "classification":
            proba = model.predict_proba(Xte)
            scores = {
                "accuracy": accuracy_score(yte, model.classes_[proba.argmax(1)]),
                "log-loss": log_loss(yte, proba, labels=model.classes_),
            }
        else:
            scores = regression_scores(name, model, Xtr, ytr, Xte, yte, residual_law)
    scores["fit (s)"] = seconds
    return scores, len(caught)


def regression_scores(name, model, Xtr, ytr, Xte, yte, residual_law):
    y2 = yte.reshape(len(yte), -1)
    scores = {}
    if name.startswith("MoE"):
        pipeline = model.best_estimator_ if name == "MoE tuned" else model
        scores["R^2"] = r2_score(yte, pipeline.predict(Xte))
        scores["loglik"] = log_likelihood_scorer(pipeline, Xte, yte)
        if yte.ndim == 2:
            scores["CRPS"], scores["cover90"] = multi_output_mixture_scores(
                pipeline, Xte, yte
            )
        else:
            scores["CRPS"] = float(np.mean(crps(pipeline, Xte, yte)))
            scores["cover90"] = interval_coverage(pipeline, Xte, yte, COVERAGE)
        return scores
    if name == "GP":
        mean, std = model.predict(Xte, return_std=True)
        mean = mean.reshape(y2.shape)
        law = gaussian_scores(y2, mean, std=std.reshape(y2.shape))
    else:
        if residual_law is None:  # linear: the training fold's residuals
            residual_law = residual_covariance(ytr - model.predict(Xtr))
        mean = model.predict(Xte).reshape(y2.shape)
        law = gaussian_scores(y2, mean, cov=residual_law)
    scores["R^2"] = r2_score(yte, mean.reshape(yte.shape))
    scores["loglik"], scores["CRPS"], scores["cover90"] = law
    return scores


# -- tables --------------------------------------------------------------------


def chosen(model):
    params = model.best_params_
    pick = f"{params['moe__n_experts']}x{params['moe__depth']}"
    if "moe__expert_alpha" in params:
        pick += f" a={params['moe__expert_alpha']:g}"
    return pick


def nadeau_bengio_se(diff, n_test, n_train):
    """Corrected standard error of the mean of repeated-CV differences."""
    J = len(diff)
    return np.sqrt(np.var(diff, ddof=1) * (1 / J + n_test / n_train))


def run_dataset(name, n_folds, n_repeats):
    X, y, task, groups, what = load(name)
    X = np.asarray(X, dtype=float)
    if task == "regression":
        y = np.asarray(y, dtype=float)
    splits = outer_splits(X, y, task, groups, n_folds, n_repeats)
    n_train = int(np.mean([len(tr) for tr, _ in splits]))
    n_test = int(np.mean([len(te) for _, te in splits]))
    print("=" * 79)
    print(
        f"{name}: n={len(y)}, {X.shape[1]} features, {what}; "
        f"{n_repeats} x {n_folds}-fold CV "
        f"({len(splits)} folds, ~{n_train} train / ~{n_test} test)"
    )
    print("=" * 79, flush=True)
    results, n_warn, picks = {}, Counter(), Counter()
    start_all = time.perf_counter()
    for k, (train, test) in enumerate(splits):
        g = None if groups is None else groups[train]
        inner = inner_splits(y[train], task, g, seed=k)
        for model_name, model in models(
            task, len(train), X.shape[1], inner, y.ndim == 2
        ).items():
            scores, w = fit_score(model_name, model, X, y, task, train, test, inner)
            n_warn[model_name] += w
            for metric, value in scores.items():
                results.setdefault(model_name, {}).setdefault(metric, []).append(value)
            if model_name == "MoE tuned":
                picks[chosen(model)] += 1
    print_tables(results, task, n_test, n_train)
    grid = ", ".join(f"{k}: {v}" for k, v in sorted(picks.items()))
    print(f"MoE tuned chose (n_experts x depth: folds): {grid}")
    print(
        "warnings caught (per model, all folds): "
        + ", ".join(f"{m} {n_warn[m]}" for m in results)
    )
    print(f"[{name}: {time.perf_counter() - start_all:.0f} s wall]\n", flush=True)
    return results, n_test, n_train


def paired(results, model, other, metric, n_test, n_train):
    """Mean of ``model``'s score minus ``other``'s over the folds, its
    corrected standard error and the verdict for ``model`` (coverage: the
    difference of the distances from 90%, lower is better)."""
    sign = dict(sum(METRICS.values(), []))[metric]
    ours, theirs = (
        np.asarray(results[model][metric]),
        np.asarray(results[other][metric]),
    )
    if sign == 0:
        ours, theirs, sign = abs(ours - COVERAGE), abs(theirs - COVERAGE), -1
    diff = ours - theirs
    se = nadeau_bengio_se(diff, n_test, n_train)
    return np.mean(diff), se, verdict_of(sign * np.mean(diff), se)


def print_tables(results, task, n_test, n_train):
    """The table of scores, and the table of paired differences: every
    model minus the linear baseline, and the tuned mixture minus each
    other baseline."""
    metrics = [m for m, _ in METRICS[task]]
    base_time = np.median(results["linear"]["fit (s)"])
    header = f"{'model':<12}" + "".join(f"{m:>17}" for m in metrics)
    header += f"{'fit (s)':>10}{'x linear':>10}"
    print(header)
    print("-" * len(header))
    for model_name, res in results.items():
        cells = "".join(
            f"{np.mean(res[m]):>9.3f} ± {np.std(res[m]):<5.3f}" for m in metrics
        )
        fit = np.median(res["fit (s)"])
        print(f"{model_name:<12}{cells}{fit:>10.3f}{fit / base_time:>10.1f}")
    print()
    names = [("|cover-.9|" if m == "cover90" else m) for m in metrics]
    header = f"{'difference':<22}" + "".join(f"{m:>25}" for m in names)
    print(header)
    print("-" * len(header))
    pairs = [(m, "linear") for m in results if m != "linear"]
    pairs += [("MoE tuned", m) for m in results if m in ("HGB", "GP")]
    for model, other in pairs:
        cells = ""
        for metric in metrics:
            diff, se, verdict = paired(results, model, other, metric, n_test, n_train)
            cells += f"{diff:>+9.3f} ± {se:<5.3f} {verdict:<6}"
        print(f"{model + ' - ' + other:<22}{cells}")
    print()


def verdict_of(mean, se):
    if se == 0 or not np.isfinite(se):
        return "tie" if mean == 0 else ("better" if mean > 0 else "worse")
    if mean > 2 * se:
        return "better"
    if mean < -2 * se:
        return "worse"
    return "tie"


def main():
    args = parse_args()
    print_machine()
    print(
        f"outer CV: {args.repeats} x {args.folds}-fold; inner CV: 3-fold; "
        "MoE grid (n_experts x depth): "
        + " ".join(f"{n}x{d}" for n, d in SHAPES)
        + f", classification also expert_alpha in {EXPERT_ALPHAS}; "
        f"central intervals: {COVERAGE:.0%}\n"
    )
    summary = {}
    for name in args.datasets:
        summary[name] = run_dataset(name, args.folds, args.repeats)
    print_summary(summary)


def print_summary(summary):
    """Every data set and metric: the tuned mixture against the linear
    baseline and against the best of the other models (by mean), and the
    default mixture against the linear baseline."""
    print("=" * 79)
    print(
        "Summary: mean difference over folds ± corrected se, and the verdict "
        "(> 2 se)\nfor the mixture; 'best other': the non-mixture model of "
        "the best mean"
    )
    print("=" * 79)
    header = (
        f"{'data set':<14}{'metric':<11}{'MoE tuned - linear':>26}"
        f"{'MoE tuned - best other':>30}{'':4}{'MoE default - linear':>26}"
    )
    print(header)
    print("-" * len(header))
    for name, (results, n_test, n_train) in summary.items():
        task = "regression" if "R^2" in results["linear"] else "classification"
        for metric, sign in METRICS[task]:
            others = [m for m in results if not m.startswith("MoE")]
            other = best(results, others, metric, sign)
            cells = []
            for model, against in (
                ("MoE tuned", "linear"),
                ("MoE tuned", other),
                ("MoE default", "linear"),
            ):
                diff, se, verdict = paired(
                    results, model, against, metric, n_test, n_train
                )
                cells.append(f"{diff:>+10.3f} ± {se:<6.3f} {verdict:<6}")
            cells[1] += f" {other:<7}"
            shown = "|cover-.9|" if metric == "cover90" else metric
            print(f"{name:<14}{shown:<11}" + "".join(cells))
        times = {m: np.median(r["fit (s)"]) for m, r in results.items()}
        tuned = times["MoE tuned"] / times["linear"]
        default = times["MoE default"] / times["linear"]
        print(
            f"{name:<14}{'fit time':<11}{'x ' + format(tuned, '.1f'):>16}"
            f"{'':>44}{'x ' + format(default, '.1f'):>16}"
        )
    print()


def best(results, models, metric, sign):
    """The model of ``models`` with the best mean score of ``metric``."""
    if sign == 0:
        return min(models, key=lambda m: abs(np.mean(results[m][metric]) - COVERAGE))
    return max(models, key=lambda m: sign * np.mean(results[m][metric]))


if __name__ == "__main__":
    main()
