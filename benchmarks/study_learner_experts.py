"""Two studies of scikit-learn learners as experts, over several seeds.

a. Gaussian-process experts on a 1-D problem with two regimes: for
   ``x in [-3, 0)`` a smooth ``sin(x)`` with noise std 0.05, for
   ``x in [0, 3]`` a wiggly ``sin(6 x)`` with noise std 0.3 (``--n-gp``
   training samples, ``--n-gp-test`` held-out ones, ``x`` uniform). Held-out
   mean log-likelihood and R^2 of

   - one GP, kernel ``1.0 * RBF() + WhiteKernel()``, hyper-parameters
     optimised (3 restarts); its density is the Gaussian predictive one,
     ``N(y; mean, std**2 + alpha)``, where ``std`` from
     ``predict(return_std=True)`` already holds the WhiteKernel noise;
   - 2-GP-expert mixtures (``log_likelihood``): kernel ``1.0 * RBF()`` with a
     fixed noise ``alpha`` (the variance of either regime's noise; every
     expert is a clone, so both share it), and kernel
     ``1.0 * RBF() + WhiteKernel()`` with ``alpha=1e-3``, which lets each
     expert learn its own noise level;
   - the linear-expert mixture (``expert=None``), 4 and 8 experts.

b. SVC experts on vowel-like data: 4 classes, each two Gaussian clusters
   (std 0.9) in 2-D, classes overlapping in pairs, ``--n-svc`` samples, half
   held out (stratified). Held-out accuracy and the total number of support
   vectors of one ``SVC()`` (RBF) against mixtures of
   ``CalibratedClassifierCV(SVC(kernel=k), ensemble=False)`` experts
   (``k`` = "rbf", "linear"; 2 and 4 experts; ``expert_weighting`` "auto",
   which passes the responsibilities as ``sample_weight`` to every training
   sample, and "threshold", which fits each expert on the samples with
   responsibility >= 0.5). A mixture's support vectors are the sum over
   experts of ``calibrated_classifiers_[0].estimator.n_support_`` (with
   ``ensemble=False`` that SVC is fit on all the expert's samples; the
   calibrator is fit on cross-validated decision values).

Run from the repository root::

    python benchmarks/study_learner_experts.py
    python benchmarks/study_learner_experts.py --study a --seeds 0 1 2 3 4
"""

import argparse
import time
import warnings

import numpy as np
from scipy.stats import norm
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, WhiteKernel
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor

SMOOTH_NOISE, WIGGLY_NOISE = 0.05, 0.3
# A support vector of a sample-weighted SVC has |dual_coef_| <= C * weight: with
# weighting "auto" every sample is in every expert, and the ones of small
# responsibility become support vectors of negligible weight. The third table
# counts only the support vectors above this (C = 1).
MIN_DUAL = 1e-2
CENTRES = {
    0: [(-2, -2), (2, 2)],
    1: [(-2, 2), (2, -2)],
    2: [(0, 0), (0, 4)],
    3: [(-4, 0), (4, 0)],
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=["a", "b", "both"], default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-gp", type=int, default=600)
    parser.add_argument("--n-gp-test", type=int, default=2000)
    parser.add_argument("--n-svc", type=int, default=1200)
    parser.add_argument(
        "--max-iter", type=int, default=100, help="EM iterations at most (default 100)"
    )
    return parser.parse_args()


def quiet_fit(model, X, y):
    """Fit; return the model (None if the fit raised), the seconds, and the
    number of warnings other than ConvergenceWarning (they are counted, not
    printed: a CalibratedClassifierCV expert warns whenever a class of its
    samples is too rare for its 5-fold cross-validation)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            model.fit(X, y)
        except ValueError as error:
            print(f"  {type(model).__name__} fit failed: {error}")
            model = None
        seconds = time.perf_counter() - start
    n_warnings = sum(not issubclass(w.category, ConvergenceWarning) for w in caught)
    return model, seconds, n_warnings


def print_table(header, rows, digits=3):
    """One row per model: every seed's value, then mean and std (over the
    seeds whose fit succeeded; a failed fit shows nan)."""
    print(header)
    print("-" * len(header))
    for name, values, extra in rows:
        values = np.asarray(values)
        cells = "".join(f"{v:>9.{digits}f}" for v in values)
        print(
            f"{name:<44}{cells}{np.nanmean(values):>9.{digits}f}"
            f"{np.nanstd(values):>8.{digits}f}  {extra}",
            flush=True,
        )
    print()


# -- study a --------------------------------------------------------------------


def two_regimes(n, rng):
    x = rng.uniform(-3, 3, size=n)
    smooth = x < 0
    y = np.where(
        smooth,
        np.sin(x) + SMOOTH_NOISE * rng.normal(size=n),
        np.sin(6 * x) + WIGGLY_NOISE * rng.normal(size=n),
    )
    return x[:, None], y


def gp_log_likelihood(gp, X, y):
    """Mean log N(y; mean, std**2 + alpha): ``std`` holds the WhiteKernel noise
    (``kernel_.diag`` includes it), ``alpha`` is the GP's extra jitter."""
    mean, std = gp.predict(X, return_std=True)
    return norm.logpdf(y, mean, np.sqrt(std**2 + gp.alpha)).mean()


def gp_models(seed, max_iter):
    """(name, estimator) of study a."""
    models = [
        (
            "1 GP, RBF + White (optimised)",
            GaussianProcessRegressor(
                1.0 * RBF() + WhiteKernel(), n_restarts_optimizer=3, random_state=seed
            ),
        )
    ]
    for label, alpha in [
        ("alpha=0.05^2", SMOOTH_NOISE**2),
        ("alpha=0.3^2", WIGGLY_NOISE**2),
    ]:
        expert = GaussianProcessRegressor(1.0 * RBF(), alpha=alpha)
        models.append(
            (
                f"2 GP experts, RBF, {label}",
                MixtureOfExpertsRegressor(
                    n_experts=2, expert=expert, max_iter=max_iter, random_state=seed
                ),
            )
        )
    expert = GaussianProcessRegressor(1.0 * RBF() + WhiteKernel(), alpha=1e-3)
    models.append(
        (
            "2 GP experts, RBF + White, alpha=1e-3",
            MixtureOfExpertsRegressor(
                n_experts=2, expert=expert, max_iter=max_iter, random_state=seed
            ),
        )
    )
    for k in (4, 8):
        models.append(
            (
                f"{k} linear experts (expert=None)",
                MixtureOfExpertsRegressor(
                    n_experts=k, max_iter=max_iter, random_state=seed
                ),
            )
        )
    return models


def study_gp(args):
    print(
        f"Study a: GP experts, two regimes (sin(x), noise {SMOOTH_NOISE} on "
        f"[-3, 0); sin(6x), noise {WIGGLY_NOISE} on [0, 3]), {args.n_gp} training "
        f"/ {args.n_gp_test} held-out samples, max_iter={args.max_iter}"
    )
    names, loglik, r2, seconds, iters = [], {}, {}, {}, {}
    for seed in args.seeds:
        rng = np.random.RandomState(seed)
        X, y = two_regimes(args.n_gp, rng)
        X_test, y_test = two_regimes(args.n_gp_test, rng)
        for name, model in gp_models(seed, args.max_iter):
            model, sec, _ = quiet_fit(model, X, y)
            if isinstance(model, GaussianProcessRegressor):
                ll, it = gp_log_likelihood(model, X_test, y_test), "-"
            else:
                ll, it = model.log_likelihood(X_test, y_test).mean(), model.n_iter_
            if name not in loglik:
                names.append(name)
                loglik[name], r2[name], seconds[name], iters[name] = [], [], [], []
            loglik[name].append(ll)
            r2[name].append(model.score(X_test, y_test))
            seconds[name].append(sec)
            iters[name].append(str(it))
    seed_cols = "".join(f"{'seed ' + str(s):>9}" for s in args.seeds)
    print_table(
        f"{'held-out mean log-likelihood':<44}{seed_cols}{'mean':>9}{'std':>8}"
        "  fit s (mean), n_iter_ per seed",
        [
            (
                n,
                loglik[n],
                f"{np.mean(seconds[n]):.1f}, {' '.join(iters[n])}",
            )
            for n in names
        ],
    )
    print_table(
        f"{'held-out R^2':<44}{seed_cols}{'mean':>9}{'std':>8}",
        [(n, r2[n], "") for n in names],
    )


# -- study b --------------------------------------------------------------------


def vowels(n, rng):
    per = n // sum(len(c) for c in CENTRES.values())
    X, y = [], []
    for label, points in CENTRES.items():
        for centre in points:
            X.append(rng.normal(centre, 0.9, size=(per, 2)))
            y.append(np.full(per, label))
    return np.vstack(X), np.concatenate(y)


def svcs(model):
    """The SVC, or the SVCs inside a mixture's experts."""
    if isinstance(model, SVC):
        return [model]
    # A leaf whose samples hold one class gets a constant classifier.
    return [
        expert.calibrated_classifiers_[0].estimator
        for expert in model.experts_
        if isinstance(expert, CalibratedClassifierCV)
    ]


def n_support(model, min_dual=0.0):
    """Support vectors (summed over experts); with ``min_dual``, only those
    whose largest ``|dual_coef_|`` exceeds it."""
    if min_dual == 0.0:
        return sum(int(svc.n_support_.sum()) for svc in svcs(model))
    return sum(
        int((np.abs(svc.dual_coef_).max(axis=0) > min_dual).sum())
        for svc in svcs(model)
    )


def svc_models(seed, max_iter):
    models = [("1 SVC (rbf, C=1)", SVC())]
    for kernel in ("rbf", "linear"):
        for k in (2, 4):
            for weighting in ("auto", "threshold"):
                expert = CalibratedClassifierCV(SVC(kernel=kernel), ensemble=False)
                models.append(
                    (
                        f"{k} SVC experts ({kernel}), weighting={weighting}",
                        MixtureOfExpertsClassifier(
                            n_experts=k,
                            expert=expert,
                            expert_weighting=weighting,
                            max_iter=max_iter,
                            random_state=seed,
                        ),
                    )
                )
    return models


def study_svc(args):
    print(
        f"Study b: SVC experts, vowel-like data ({len(CENTRES)} classes x 2 "
        f"clusters, std 0.9), {args.n_svc} samples, half held out, "
        f"max_iter={args.max_iter}"
    )
    names, acc, nsv, big, seconds, iters, warned = [], {}, {}, {}, {}, {}, {}
    for seed in args.seeds:
        print(f"  seed {seed}")
        X, y = vowels(args.n_svc, np.random.RandomState(seed))
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.5, random_state=seed, stratify=y
        )
        for name, model in svc_models(seed, args.max_iter):
            fitted, sec, n_warn = quiet_fit(model, X_train, y_train)
            if name not in acc:
                names.append(name)
                acc[name], nsv[name], big[name] = [], [], []
                seconds[name], iters[name], warned[name] = [], [], 0
            warned[name] += n_warn
            seconds[name].append(sec)
            if fitted is None:
                acc[name].append(np.nan)
                nsv[name].append(np.nan)
                big[name].append(np.nan)
                iters[name].append("fail")
                continue
            acc[name].append(fitted.score(X_test, y_test))
            nsv[name].append(n_support(fitted))
            big[name].append(n_support(fitted, MIN_DUAL))
            is_svc = isinstance(fitted, SVC)
            iters[name].append("-" if is_svc else str(fitted.n_iter_))
    seed_cols = "".join(f"{'seed ' + str(s):>9}" for s in args.seeds)
    print_table(
        f"{'held-out accuracy':<44}{seed_cols}{'mean':>9}{'std':>8}"
        "  fit s (mean), n_iter_ per seed, warnings",
        [
            (
                n,
                acc[n],
                f"{np.mean(seconds[n]):.1f}, {' '.join(iters[n])}, {warned[n]}",
            )
            for n in names
        ],
    )
    print_table(
        f"{'support vectors (sum over experts)':<44}{seed_cols}{'mean':>9}{'std':>8}",
        [(n, nsv[n], "") for n in names],
        digits=0,
    )
    print_table(
        f"{'support vectors with |dual_coef_| > ' + str(MIN_DUAL):<44}{seed_cols}"
        f"{'mean':>9}{'std':>8}",
        [(n, big[n], "") for n in names],
        digits=0,
    )


def main():
    args = parse_args()
    if args.study in ("a", "both"):
        study_gp(args)
    if args.study in ("b", "both"):
        study_svc(args)


if __name__ == "__main__":
    main()
