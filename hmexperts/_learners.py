"""Any scikit-learn learner as an expert: one fitted clone per leaf.

The bank is a component (``_components``), so the EM loop drives it as it
drives the built-in banks: its statistics are the responsibilities
themselves, gathered chunk by chunk (``Gathered``), and its M-step fits the
learners on the data bound to it (``bind``) with those responsibilities.
Learners run on the host: the inputs and targets cross once per fit, the
responsibilities once per pass, never once per expert.

How a learner sees its responsibilities ``r_ij`` (weighting ``"auto"``):

- it takes ``sample_weight`` in ``fit`` (directly, or as the last step of a
  ``Pipeline``): it is fit on its samples with weights ``r_ij``, which is the
  weighted M-step itself;
- a ``GaussianProcessRegressor`` (also as a ``Pipeline``'s last step):
  per-sample noise ``(sigma_j^2 + alpha) / r_ij``, with ``sigma_j^2`` the
  expert's noise variance, a hyper-parameter fit with the kernel's by the
  GP's own optimiser on the weighted marginal likelihood (below); samples
  with ``r_ij`` below ``_GP_MIN_RESPONSIBILITY`` of the leaf's largest are
  left out (their noise is so large that they carry no information, and a
  GP is cubic in its samples);
- neither: it is fit on the samples whose responsibility (times their
  sample weight) is at least ``responsibility_threshold`` (``"threshold"``;
  a leaf with fewer than ``_MIN_ROWS`` such samples takes its
  ``_MIN_ROWS`` most responsible ones), or on a resample of size
  ``round(sum_i r_ij)`` drawn with probabilities proportional to ``r_ij``
  (``"resample"``).

``max_samples_per_expert`` caps every leaf at a subsample of its samples
drawn without replacement in proportion to their responsibilities (with
random keys fixed for the fit, so that it settles as EM converges): local
experts on local data, which keeps expensive learners (a GP is cubic in n)
affordable.

The density each expert gives the E-step: for regression a Gaussian around
the learner's prediction, with a per-leaf variance from the weighted
residuals or, for a Gaussian process, its latent predictive variance plus
its noise variance ``sigma_j^2 + alpha``, both floored like the built-in
experts; for classification the learner's ``predict_proba``, clipped at
``_MIN_PROBA`` and renormalised.

Gaussian-process experts in detail (``_fit_final_gp``). The M-step of
expert ``j`` maximises ``prod_i N(y_i; f(x_i), v) ** r_ij``, ``v = sigma_j^2
+ alpha``, integrated over the GP prior of ``f``: that is the GP's marginal
likelihood with per-sample noise ``v / r_ij`` times ``v ** ((n - sum_i
r_ij) / 2)`` (``_weighted_objective``; without that factor ``sigma_j^2``
shrinks by about ``sum_i r_ij / n``: measured on 1,000 samples of a known
2-expert mixture, noise sd 0.4, estimates of sd 0.33-0.38 instead of
0.39-0.41, held-out log-likelihoods up to 0.02 lower; on the three-regime
data of ``tests/test_gp_experts.py``, 0.34 lower). To let scikit-learn's
optimiser fit ``sigma_j^2`` with the kernel's hyper-parameters (one L-BFGS
run, gradients included), the GP is fit on ``[X, 1 / r]`` with the kernel
``_OnColumns(kernel, d) + _WeightedNoise(sigma_j^2)``: the user's kernel on
the ``d`` input columns, and ``sigma_j^2 / r_i`` on the diagonal. (The other
way, ``alpha = sigma_j^2 / r`` with a 1-D search of ``sigma_j^2`` around the
GP's own fit, nests a kernel fit in every step of the search: measured on
one leaf of the 2-expert data, 9x slower at 1,000 samples, and at 150 and
500 it ended in a worse optimum, its kernel warm-started along the search;
``benchmarks/bench_gp_noise.py``.) After
the fit the expert is made a plain GP on ``X``: ``kernel_`` the fitted
kernel, ``X_train_`` the inputs, ``alpha`` its noise variance ``v`` (in the
GP's target units, which ``normalize_y`` scales); the mixture's
``expert_variance_`` is ``v`` in data units. Predictions from ``L_`` and
``alpha_`` are exactly those of the weighted fit.

- Start and bounds of ``sigma_j^2``: the previous M-step's value; at the
  first, the user's ``WhiteKernel`` if the kernel has one as a summand
  (it is taken out of the kernel: its value is the start, its bounds the
  bounds, ``"fixed"`` fixes the noise), else a tenth of the leaf's weighted
  target variance, within ``_GP_NOISE_BOUNDS`` times the target's variance.
  A ``WhiteKernel`` elsewhere (in a product) stays in the kernel, unweighted.
- ``optimizer=None`` fixes every hyper-parameter: the noise is the
  ``WhiteKernel``'s, else ``alpha`` (per-sample ``alpha / r_ij``).
- The kernel's hyper-parameters continue from the previous M-step's, and
  ``n_restarts_optimizer`` applies at the first M-step only. With the
  default optimiser, L-BFGS stops at a relative change of ``1e-6`` of the
  objective (``_GP_LBFGS_OPTIONS``; with scikit-learn's default,
  ``2.2e-9``, fits of the 2-expert data at 500 samples took 1.4-1.7 times
  as long, for the same held-out log-likelihood to 3 decimals): EM refits
  the hyper-parameters at every M-step anyway.
"""

import math
import warnings
from functools import cache
from numbers import Integral

import numpy as np
import scipy.optimize
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import Hyperparameter, Kernel, Sum, WhiteKernel
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.validation import has_fit_parameter

from ._array_api import device, namespace_name, to_numpy
from ._components import ExpertBank

# Smallest class probability an expert may give (then renormalised): a
# learner that is certain and wrong must not make the likelihood zero.
_MIN_PROBA = 1e-6
# A GP expert leaves out samples below this share of its largest
# responsibility: their noise (sigma^2 + alpha) / r makes them uninformative.
_GP_MIN_RESPONSIBILITY = 1e-3
# A leaf that owns fewer samples than this above the threshold is fit on its
# this-many highest-responsibility samples instead.
_MIN_ROWS = 5
# A GP expert's noise variance sigma_j^2: its bounds in the standardised
# units of the target (WhiteKernel's default bounds, there), and its start at
# the first M-step as a share of its samples' weighted target variance.
_GP_NOISE_BOUNDS = (1e-5, 1e5)
_GP_NOISE_START = 0.1
# L-BFGS options of the default GP optimiser in an M-step.
_GP_LBFGS_OPTIONS = {"ftol": 1e-6}


def is_learner(estimator):
    """Whether ``estimator``'s experts are scikit-learn learners (not a
    built-in family, named by a string or None)."""
    return estimator.expert is not None and not isinstance(estimator.expert, str)


def _final_step(learner):
    """The estimator that receives the fit parameters, and its parameter prefix."""
    if isinstance(learner, Pipeline):
        name, step = learner.steps[-1]
        inner, prefix = _final_step(step)
        return inner, f"{name}__{prefix}"
    return learner, ""


def weighting_rule(learner, weighting):
    """How ``learner`` is fit on responsibilities: "sample_weight", "gp_noise",
    "threshold" or "resample"."""
    if weighting != "auto":
        return weighting
    final, _ = _final_step(learner)
    if isinstance(final, GaussianProcessRegressor):
        return "gp_noise"
    if has_fit_parameter(final, "sample_weight"):
        return "sample_weight"
    return "threshold"


class Subsample:
    """Every leaf's capped subsample of rows gathered from chunks:
    ``(keys, X, y, r)`` per leaf, at most ``size`` rows of the largest keys;
    adding two keeps the ``size`` largest keys of both."""

    def __init__(self, leaves, size):
        self.leaves, self.size = leaves, size

    def __add__(self, other):
        merged = []
        for mine, theirs in zip(self.leaves, other.leaves, strict=True):
            keys, X, y, r = (
                np.concatenate([a, b]) for a, b in zip(mine, theirs, strict=True)
            )
            top = np.argsort(-keys, kind="stable")[: self.size]
            merged.append((keys[top], X[top], y[top], r[top]))
        return Subsample(merged, self.size)


class Gathered:
    """Responsibilities gathered from chunks, ``(first row, array)`` pairs;
    adding two gatherings keeps both (``add_stats`` sums them)."""

    def __init__(self, parts):
        self.parts = parts

    def __add__(self, other):
        return Gathered(self.parts + other.parts)

    def concatenate(self):
        """The responsibilities of all rows, (n_leaves, n_samples), in order."""
        parts = sorted(self.parts, key=lambda part: part[0])
        return np.concatenate([part[1] for part in parts], axis=1)


class LearnerExperts(ExpertBank):
    """A clone of a scikit-learn learner at every leaf.

    Parameters
    ----------
    learner : estimator
        Unfitted regressor or classifier.
    n_leaves : int
    scaling : _Scaling
        The estimator's standardisation: learners see the data in its own
        units, EM works in standardised ones.
    weighting : {"auto", "sample_weight", "threshold", "resample"}
    responsibility_threshold : float
    max_samples : int or None
    min_variance : float or None
        Variance floor in standardised units (regression); None for
        classification.
    n_classes : int or None
        Number of classes (classification).
    labels : array of shape (n_classes,) or None
        The class labels, to name them in ``fallbacks``.
    random_state : RandomState
        For ``"resample"``.
    """

    def __init__(
        self,
        learner,
        n_leaves,
        *,
        scaling,
        weighting,
        responsibility_threshold,
        max_samples,
        min_variance=None,
        n_classes=None,
        labels=None,
        random_state=None,
    ):
        self.learner = learner
        self.n_leaves = n_leaves
        self.scaling = scaling
        self.rule = weighting_rule(learner, weighting)
        self.responsibility_threshold = responsibility_threshold
        self.max_samples = max_samples
        self.min_variance = min_variance
        self.n_classes = n_classes
        self.labels = labels
        self.random_state = check_random_state(random_state)
        self.learners = None
        self.variance = None
        self._uniforms = None
        self._data = None

    # Refitting a learner need not increase EM's objective (an SVM minimises a
    # hinge loss, a tree is greedy, a capped or resampled fit sees part of the
    # data): the EM loop keeps the best iterate.
    monotone = False

    @property
    def is_regression(self):
        return self.n_classes is None

    def init_params(self, n_params, X, xp):
        """Unfitted clones, each seeded from ``random_state``: the templates
        that every M-step clones and fits."""
        self._templates = [self._seeded_clone() for _ in range(self.n_leaves)]
        self.learners = list(self._templates)
        self._fitted = [False] * self.n_leaves
        self.fallbacks, self.failed = {}, set()
        # the keys of the capped subsample of data read by blocks (Dask)
        self._seed = int(self.random_state.randint(np.iinfo(np.int32).max))
        if self.is_regression:
            self.variance = np.ones(self.n_leaves)
        # A GP expert's noise variance in data units (sigma_j^2 + alpha), the
        # learned sigma_j^2 (None: not learned), and the fits of an M-step.
        self.noise = np.zeros(self.n_leaves)
        self._sigma2 = [None] * self.n_leaves
        self._gp_fits = {}

    def _seeded_clone(self):
        """A clone whose unset ``random_state`` parameters (nested ones too)
        get seeds from the mixture's ``random_state``, so that a fit is
        reproducible, as scikit-learn's bagging does for its estimators."""
        learner = clone(self.learner)
        seeds = {
            name: int(self.random_state.randint(np.iinfo(np.int32).max))
            for name, value in sorted(learner.get_params(deep=True).items())
            if (name == "random_state" or name.endswith("__random_state"))
            and value is None
        }
        return learner.set_params(**seeds)

    # -- data in the learners' units ------------------------------------------

    def _inputs(self, X, xp):
        """Inputs in the data's units from the standardised design matrix,
        on the host: copied from a device once per fit (``_HostCopies``)."""

        def make():
            return to_numpy(X, xp)[:, :-1] * to_numpy(
                self.scaling.x_scale, xp
            ) + to_numpy(self.scaling.x_mean, xp)

        return self._host_copy("X", X, make)

    def _targets(self, y, xp):
        def make():
            y_host = to_numpy(y, xp)
            if self.is_regression:
                return y_host * self.scaling.y_scale + self.scaling.y_mean
            return y_host

        return self._host_copy("y", y, make)

    def _host_copy(self, name, source, make):
        """``make()``, kept for the fit while host copies are held."""
        host = getattr(self, "_host", None)
        return make() if host is None else host.get(name, source, make)

    def hold_host_copies(self, hold):
        """Keep host copies of the design matrix and targets while EM runs on
        a device (``hold``), or drop them (after the fit)."""
        self._host = _HostCopies() if hold else None

    # -- M-step -----------------------------------------------------------------

    def _training_rows(self, resp, leaf):
        """Rows (and their weights) that leaf's learner is fit on."""
        if self.rule == "resample":
            total = resp.sum()
            if not total > 0:  # every responsibility underflowed
                return np.arange(min(_MIN_ROWS, len(resp))), None
            size = max(int(round(total)), 1)
            if self.max_samples is not None:
                size = min(size, self.max_samples)
            rows = self.random_state.choice(len(resp), size=size, p=resp / total)
            return np.sort(rows), None
        if self.rule == "threshold":
            rows = np.flatnonzero(resp >= self.responsibility_threshold)
            if len(rows) < _MIN_ROWS:
                rows = np.sort(np.argsort(-resp, kind="stable")[:_MIN_ROWS])
        elif self.rule == "gp_noise":
            rows = np.flatnonzero(
                (resp >= _GP_MIN_RESPONSIBILITY * resp.max()) & (resp > 0)
            )
        else:
            rows = np.flatnonzero(resp > 0)
        if self.max_samples is not None and len(rows) > self.max_samples:
            # A subsample drawn in proportion to responsibility covers the
            # leaf's whole region (its most responsible samples would sit far
            # from the gate's boundary). Weighted sampling without
            # replacement by the keys u_i ** (1 / r_i) (Efraimidis & Spirakis,
            # 2006), with the uniforms u drawn once per fit, so that the
            # subsample settles as the responsibilities converge.
            # A subnormal responsibility overflows its key to -inf: never drawn.
            with np.errstate(over="ignore"):
                log_keys = np.log(self._uniforms[leaf, rows]) / resp[rows]
            top = np.argsort(-log_keys, kind="stable")[: self.max_samples]
            rows = np.sort(rows[top])
        return rows, resp[rows]

    def _fit_params(self, learner, weights):
        """The fit parameters of ``learner`` under the weighting rule."""
        _, prefix = _final_step(learner)
        if self.rule == "sample_weight":
            return {f"{prefix}sample_weight": weights}
        return {}

    def _fit_clone(self, leaf, X, y, rows, weights, changes=None):
        """A clone of leaf's learner (with parameters ``changes``) fit to
        its rows, and asked for a prediction (some learners fail only
        then: a k-NN with more neighbours than samples); raises what the
        learner raises."""
        learner = clone(self._templates[leaf])
        if changes:
            learner.set_params(**changes)
        if self.rule == "gp_noise":
            self._fit_gp(leaf, learner, X[rows], y[rows], weights)
        else:
            learner.fit(X[rows], y[rows], **self._fit_params(learner, weights))
        if self.is_regression:
            learner.predict(X[:1])
        else:
            learner.predict_proba(X[:1])
        return learner

    # -- Gaussian-process experts -------------------------------------------------

    def _fit_gp(self, leaf, learner, X, y, weights):
        """Fit ``learner``, a ``GaussianProcessRegressor`` or a ``Pipeline``
        ending in one, to the rows ``X``, ``y`` of responsibilities
        ``weights``: a pipeline's transformers on the rows as they are, its
        GP as ``_fit_final_gp`` says."""
        if isinstance(learner, Pipeline):
            head = learner[:-1]  # the same transformers, fit in place
            X = head.fit_transform(X, y)
            learner.steps[:-1] = head.steps
            self._fit_gp(leaf, learner.steps[-1][1], X, y, weights)
            return
        self._fit_final_gp(leaf, learner, X, y, weights)

    def _fit_final_gp(self, leaf, gp, X, y, weights):
        """Fit the GP ``gp`` with per-sample noise ``(sigma^2 + alpha) / r_i``.

        ``sigma^2`` is a hyper-parameter, fit with the kernel's by the GP's
        own optimiser: the GP is fit on ``[X, 1 / r]`` with the kernel
        ``_OnColumns(kernel, d) + _WeightedNoise(sigma^2)`` and ``alpha /
        r_i``, its objective the weighted marginal likelihood
        (``_weighted_objective``). Then it becomes a plain GP on ``X``
        (``kernel_`` the fitted kernel, ``alpha`` its noise variance
        ``sigma^2 + alpha``). Records ``(gp, noise, sigma^2)`` in data units
        for the leaf (``_gp_fits``).
        """
        template, _ = _final_step(self._templates[leaf])
        alpha = float(np.asarray(template.alpha).reshape(-1)[0])
        kernel = _default_kernel() if template.kernel is None else template.kernel
        latent, whites = _split_white(clone(kernel))
        previous, _ = _final_step(self.learners[leaf])
        warm = self._fitted[leaf] and hasattr(previous, "kernel_")
        if warm:  # continue from the last M-step's hyper-parameters
            latent = clone(previous.kernel_)
            gp.set_params(n_restarts_optimizer=0)
        # The GP's target units per data unit squared (normalize_y).
        unit = float(np.std(y)) ** 2 if gp.normalize_y else 1.0
        unit = unit if unit > 0 else 1.0
        start, bounds = self._gp_noise_start(leaf, gp, y, weights, whites, unit)
        d = X.shape[1]
        if start is None:  # optimizer=None, no WhiteKernel: the noise is alpha
            gp.set_params(kernel=latent, alpha=alpha / weights)
            gp.fit(X, y)
            gp.set_params(alpha=alpha)
            self._gp_fits[leaf] = (gp, alpha * unit, None)
            return
        noise = _WeightedNoise(start, bounds)
        free = gp.optimizer is not None and not noise.hyperparameter_noise_level.fixed
        extra = 0.5 * (len(weights) - weights.sum()) if free else 0.0
        optimizer = gp.optimizer
        gp.set_params(
            kernel=_OnColumns(latent, d) + noise,
            alpha=alpha / weights,
            optimizer=_weighted_objective(optimizer, extra, alpha)
            if free
            else optimizer,
        )
        gp.fit(np.column_stack([X, 1.0 / weights]), y)
        sigma2 = float(gp.kernel_.k2.noise_level)
        variance = sigma2 + alpha
        # A plain GP on X: the weighted noise is in its L_ and alpha_.
        gp.kernel_ = gp.kernel_.k1.kernel
        gp.X_train_ = np.ascontiguousarray(gp.X_train_[:, :d])
        gp.n_features_in_ = d
        gp.log_marginal_likelihood_value_ -= extra * math.log(variance)
        gp.set_params(
            kernel=latent,
            alpha=variance,
            optimizer=optimizer,
            n_restarts_optimizer=template.n_restarts_optimizer,
        )
        self._gp_fits[leaf] = (gp, variance * unit, sigma2 * unit)

    def _gp_noise_start(self, leaf, gp, y, weights, whites, unit):
        """Start and bounds of leaf's noise variance ``sigma^2`` in the GP's
        target units (``unit`` of them per data unit squared): the last
        M-step's, else the user's ``WhiteKernel`` summands', else a tenth of
        the weighted variance of ``y``; the start None without a
        ``WhiteKernel`` when the GP has no optimiser."""
        if whites:
            levels = [white.noise_level for white in whites]
            free = [
                w.noise_level_bounds for w in whites if w.noise_level_bounds != "fixed"
            ]
            bounds = (
                (min(b[0] for b in free), max(b[1] for b in free)) if free else "fixed"
            )
            start = float(np.sum(levels))
        elif gp.optimizer is None:
            return None, None
        else:
            scale = self.scaling.y_scale**2 / unit
            bounds = (_GP_NOISE_BOUNDS[0] * scale, _GP_NOISE_BOUNDS[1] * scale)
            mean = np.average(y, weights=weights)
            spread = np.average((y - mean) ** 2, weights=weights) / unit
            start = _GP_NOISE_START * spread
        if bounds != "fixed":
            if self._sigma2[leaf] is not None:  # the last M-step's
                start = self._sigma2[leaf] / unit
            start = float(np.clip(start, *bounds))
        return start, bounds

    def _record_gp_noise(self, leaf, learner):
        """Leaf's noise variance (data units) after its M-step: that of its
        new fit, its previous one's if it kept it, 0 for a constant model
        (whose standard deviation holds it)."""
        fit = self._gp_fits.pop(leaf, None)
        if isinstance(learner, _ConstantRegressor):
            self.noise[leaf], self._sigma2[leaf] = 0.0, None
        elif fit is not None and fit[0] is _final_step(learner)[0]:
            self.noise[leaf], self._sigma2[leaf] = fit[1], fit[2]

    def _remedies(self, leaf, y_rows):
        """Changes that may let leaf's learner fit its rows, in the order tried:
        ``(description, parameter changes, row filter or None)``."""
        final, prefix = _final_step(self._templates[leaf])
        params = final.get_params(deep=False)
        remedies = []
        n_rows = len(y_rows)
        if not self.is_regression and "cv" in params:
            cv = 5 if params["cv"] is None else params["cv"]
            labels, counts = np.unique(y_rows, return_counts=True)
            if isinstance(cv, Integral):
                if 2 <= counts.min() < cv:
                    k = int(counts.min())
                    remedies.append(
                        (f"refit with inner cv={k}", {f"{prefix}cv": k}, None)
                    )
                kept = labels[counts >= 2]
                if counts.min() < 2 and len(kept) >= 2:
                    k = int(min(cv, counts[counts >= 2].min()))
                    remedies.append(
                        (
                            "refit without the classes of fewer than 2 samples "
                            f"{self._label_list(labels[counts < 2])} (inner cv={k})",
                            {f"{prefix}cv": k},
                            np.isin(y_rows, kept),
                        )
                    )
        neighbours = params.get("n_neighbors")
        if isinstance(neighbours, Integral) and neighbours > n_rows >= 1:
            remedies.append(
                (
                    f"refit with n_neighbors={n_rows}",
                    {f"{prefix}n_neighbors": n_rows},
                    None,
                )
            )
        return remedies

    def _label_list(self, labels):
        return "[" + ", ".join(str(self.labels[int(c)]) for c in labels) + "]"

    def _fit_leaf(self, leaf, X, y, rows, weights):
        """Leaf's fitted learner and the fallback it took (None if none).

        A learner that fails on its leaf's rows (too few samples of a class
        for its inner cross-validation, fewer samples than neighbours, ...)
        is refit with the first remedy that works (``_remedies``), else
        keeps its previous iterate, else becomes the constant model of its
        rows (weighted class frequencies, or the weighted mean).
        """
        try:
            learner, caught = _recording_warnings(
                self._fit_clone, leaf, X, y, rows, weights
            )
        except Exception as error:  # the learner's own failure, whatever it is
            failure = error
        else:
            _reemit(caught)
            return learner, None, None
        for description, changes, keep in self._remedies(leaf, y[rows]):
            kept_rows = rows if keep is None else rows[keep]
            kept_weights = (
                None
                if weights is None
                else (weights if keep is None else weights[keep])
            )
            try:
                learner, caught = _recording_warnings(
                    self._fit_clone, leaf, X, y, kept_rows, kept_weights, changes
                )
            except Exception:
                continue
            _reemit(caught)
            return learner, description, failure
        if self._fitted[leaf]:
            return self.learners[leaf], "kept its previous fit", failure
        return (
            self._constant(y, rows, weights),
            "a constant model of its samples",
            failure,
        )

    def _constant(self, y, rows, weights):
        """The constant model of ``y[rows]`` under ``weights``."""
        weights = np.ones(len(rows)) if weights is None else weights
        if not len(rows) or not weights.sum() > 0:
            rows, weights = np.arange(len(y)), np.ones(len(y))
        if self.is_regression:
            mean = np.average(y[rows], weights=weights)
            std = np.sqrt(np.average((y[rows] - mean) ** 2, weights=weights))
            return _ConstantRegressor(mean, std)
        labels = y[rows].astype(np.intp)
        frequency = np.bincount(labels, weights=weights, minlength=self.n_classes)
        present = np.flatnonzero(frequency > 0)
        return _ConstantClassifier(present, frequency[present] / frequency.sum())

    def bind(self, data, xp):
        """Keep the arrays of an in-memory fit (standardised design and
        target), which every M-step fits the learners on, and on a device
        their host copies; None lets go of them."""
        if data is None or getattr(data, "X", None) is None:  # Dask: subsamples
            self._data = None
            self.hold_host_copies(False)
            return
        self._data = (data.X, data.y, xp)
        self.hold_host_copies(namespace_name(xp) != "numpy")

    def attributes(self, scaling, xp):
        attributes = {
            "experts_": list(self.learners),
            "expert_fallbacks_": dict(self.fallbacks),
        }
        if self.rule == "gp_noise":
            attributes["expert_variance_"] = self.noise.copy()
        return attributes

    def warn_fallbacks(self):
        """One warning listing the leaves whose learner failed and fell back.
        A leaf of one class is a constant classifier by design (an expert
        that specialised), not a failure: it does not warn."""
        if not self.failed:
            return
        listed = "; ".join(
            f"leaf {leaf}: {self.fallbacks[leaf]}" for leaf in sorted(self.failed)
        )
        warnings.warn(
            f"{len(self.failed)} of {self.n_leaves} learner experts failed on "
            f"their samples and fell back (see expert_fallbacks_): {listed}.",
            UserWarning,
            stacklevel=4,
        )

    def accumulate(self, stats, chunk, resp, xp):
        """Gather the chunk's responsibilities (on the host); without data
        bound in memory (Dask), gather every leaf's capped subsample of rows
        themselves (``Subsample``)."""
        resp = to_numpy(resp, xp).astype(np.float64)
        if self._data is None:
            part = self._subsample(chunk, resp, xp)
        else:
            part = Gathered([(chunk.rows.start, resp)])
        return part if stats is None else stats + part

    def m_step(self, stats, xp):
        """Fit every leaf's learner to the gathered responsibilities, or to
        its gathered subsample."""
        if self._data is None:
            self._fit_subsamples(stats)
            return
        X, y, data_xp = self._data
        self.fit(X, y, stats.concatenate(), data_xp)

    def _subsample(self, chunk, resp, xp):
        """Every leaf's candidates among the chunk's rows: those its rule
        trains on (positive responsibility, or at least the threshold), at
        most ``max_samples`` of them by the keys ``u ** (1 / r)`` of
        weighted sampling without replacement (Efraimidis & Spirakis, 2006),
        the uniforms drawn from the fit's seed and the chunk's first row."""
        X, y = self._inputs(chunk.X, xp), self._targets(chunk.y, xp)
        uniforms = np.random.default_rng([self._seed, chunk.rows.start]).uniform(
            size=resp.shape
        )
        floor = self.responsibility_threshold if self.rule == "threshold" else 0.0
        leaves = []
        for leaf, r in enumerate(resp):
            rows = np.flatnonzero((r > 0) & (r >= floor))
            with np.errstate(over="ignore", divide="ignore"):
                keys = np.log(uniforms[leaf, rows]) / r[rows]
            top = np.argsort(-keys, kind="stable")[: self.max_samples]
            rows = rows[top]
            leaves.append((keys[top], X[rows], y[rows], r[rows]))
        return Subsample(leaves, self.max_samples)

    def _fit_subsamples(self, stats):
        """The M-step on the gathered subsamples: every leaf's learner fit on
        its rows (weighted by their responsibilities, as the rule says), and
        for regression the variance from the weighted residuals there."""
        fitted, fallbacks, failed, variance = [], {}, set(), []
        for leaf, (_, X, y, r) in enumerate(stats.leaves):
            rows = np.arange(len(y))
            labels = np.unique(y)
            if not len(rows):
                learner = self.learners[leaf] if self._fitted[leaf] else None
                if learner is None:
                    learner = self._empty_constant()
                fallbacks[leaf] = "no rows gathered: kept its previous fit"
            elif not self.is_regression and len(labels) < 2:
                learner = self._constant(y, rows, r)
                fallbacks[leaf] = (
                    f"one class {self._label_list(labels)}: a constant classifier"
                )
            else:
                learner, fallback, failure = self._fit_leaf(leaf, X, y, rows, r)
                if failure is not None:
                    failed.add(leaf)
                    fallbacks[leaf] = (
                        f"{type(self.learner).__name__} failed on its {len(rows)} "
                        f"samples ({_first_line(failure)}); {fallback}"
                    )
            fitted.append(learner)
            if self.rule == "gp_noise":
                self._record_gp_noise(leaf, learner)
            if self.is_regression and self.rule != "gp_noise" and len(rows):
                resid2 = (learner.predict(X) - y) ** 2
                variance.append(np.sum(r * resid2) / max(np.sum(r), 1e-300))
            else:
                variance.append(np.inf)
        self.learners, self.fallbacks, self.failed = fitted, fallbacks, failed
        self._fitted = [True] * self.n_leaves
        if self.is_regression and self.rule != "gp_noise":
            variance = np.asarray(variance) / self.scaling.y_scale**2
            variance = np.where(np.isfinite(variance), variance, self.variance)
            self.variance = np.maximum(variance, self.min_variance)

    def _empty_constant(self):
        """The model of a leaf that has never had a row: the target's centre
        (regression), or every class alike."""
        if self.is_regression:
            return _ConstantRegressor(self.scaling.y_mean, self.scaling.y_scale)
        classes = np.arange(self.n_classes)
        return _ConstantClassifier(classes, np.full(self.n_classes, 1 / self.n_classes))

    def fit(self, X, y, resp, xp):
        """Fit every leaf's learner to its responsibilities ``resp``
        (n_leaves, n_samples) on the data ``X``, ``y``.

        Every leaf fits a fresh clone; a failure takes a fallback
        (``_fit_leaf``), recorded in ``fallbacks``. If every leaf fails on the
        first M-step, the learner cannot fit this data at all: that error is
        raised.
        """
        X_data, y_data = self._inputs(X, xp), self._targets(y, xp)
        resp = np.asarray(to_numpy(resp, xp), dtype=np.float64)
        if (
            getattr(self, "_uniforms", None) is None
            or self._uniforms.shape != resp.shape
        ):
            # One uniform per (leaf, sample) for the whole fit (the cap's keys).
            self._uniforms = self.random_state.uniform(size=resp.shape)
        fitted, fallbacks, failures = [], {}, []
        for leaf in range(self.n_leaves):
            rows, weights = self._training_rows(resp[leaf], leaf)
            labels = np.unique(y_data[rows])
            if not self.is_regression and len(labels) < 2:
                # On a single class the maximum-likelihood classifier is the
                # constant one; most learners refuse to fit it.
                learner = self._constant(y_data, rows, weights)
                fallbacks[leaf] = (
                    f"one class {self._label_list(labels)}: a constant classifier"
                )
            else:
                learner, fallback, failure = self._fit_leaf(
                    leaf, X_data, y_data, rows, weights
                )
                if failure is not None:
                    failures.append((leaf, len(rows), weights, failure))
                    fallbacks[leaf] = (
                        f"{type(self.learner).__name__} failed on its {len(rows)} "
                        f"samples ({_first_line(failure)}); {fallback}"
                    )
            fitted.append(learner)
            if self.rule == "gp_noise":
                self._record_gp_noise(leaf, learner)
        constant = [f for f in failures if isinstance(fitted[f[0]], _CONSTANTS)]
        if len(constant) == self.n_leaves and not any(self._fitted):
            leaf, n_rows, weights, error = constant[0]
            raise ValueError(
                f"The expert at leaf {leaf} ({type(self.learner).__name__}) failed on "
                f"its {n_rows} training samples (responsibility mass "
                f"{0 if weights is None else weights.sum():.3g}), and so did every "
                f"other leaf's: {error}. Check the learner's parameters, or try "
                "fewer leaves (n_experts, depth) or a learner that needs fewer "
                "samples."
            ) from error
        self.learners, self.fallbacks = fitted, fallbacks
        self.failed = {leaf for leaf, *_ in failures}
        self._fitted = [True] * self.n_leaves
        if self.is_regression and self.rule != "gp_noise":
            predictions = np.stack([learner.predict(X_data) for learner in fitted])
            resid2 = (predictions - y_data[None, :]) ** 2
            mass = np.maximum(resp.sum(axis=1), 10 * np.finfo(float).eps)
            variance = (resp * resid2).sum(axis=1) / mass / self.scaling.y_scale**2
            self.variance = np.maximum(variance, self.min_variance)

    # -- predictions ------------------------------------------------------------

    def _routed(self, mask):
        """(leaf, learner, rows): each learner once, on the samples routed to it."""
        for leaf, learner in enumerate(self.learners):
            rows = slice(None) if mask is None else np.flatnonzero(mask[leaf])
            if mask is None or len(rows):
                yield leaf, learner, rows

    def _as_xp(self, array, X, xp):
        return xp.asarray(
            np.ascontiguousarray(array), dtype=xp.float64, device=device(X)
        )

    def predict_mean_variance(self, X, xp, mask=None):
        """Every expert's predictive mean and variance in standardised units.

        Parameters
        ----------
        X : array of shape (n_samples, n_params)
            Standardised design matrix.
        mask : array of shape (n_leaves, n_samples) of bool, or None
            Where each expert is needed; elsewhere it is not evaluated and
            its entries are placeholders.

        Returns
        -------
        mean : array of shape (n_leaves, n_samples)
        variance : array broadcastable to (n_leaves, n_samples)
        """
        X_data = self._inputs(X, xp)
        mask = None if mask is None else to_numpy(mask, xp)
        mean = np.full((self.n_leaves, len(X_data)), self.scaling.y_mean)
        gp_variance = np.ones((self.n_leaves, len(X_data)))
        for leaf, learner, rows in self._routed(mask):
            if self.rule == "gp_noise":
                mean[leaf, rows], std = learner.predict(X_data[rows], return_std=True)
                gp_variance[leaf, rows] = std**2 + self.noise[leaf]
            else:
                mean[leaf, rows] = learner.predict(X_data[rows])
        mean = (mean - self.scaling.y_mean) / self.scaling.y_scale
        if self.rule == "gp_noise":
            variance = np.maximum(
                gp_variance / self.scaling.y_scale**2, self.min_variance
            )
        else:
            variance = self.variance[:, None]
        return self._as_xp(mean, X, xp), self._as_xp(variance, X, xp)

    def predict_log_proba(self, X, xp, mask=None):
        """Class log-probabilities, (n_classes, n_leaves, n_samples); placeholders
        where ``mask`` says an expert is not needed."""
        X_data = self._inputs(X, xp)
        mask = None if mask is None else to_numpy(mask, xp)
        proba = np.full((self.n_classes, self.n_leaves, len(X_data)), _MIN_PROBA)
        for leaf, learner, rows in self._routed(mask):
            block = proba[:, leaf, rows]
            columns = np.asarray(learner.classes_, dtype=np.intp)
            block[columns] = np.maximum(
                learner.predict_proba(X_data[rows]).T, _MIN_PROBA
            )
            proba[:, leaf, rows] = block
        proba /= proba.sum(axis=0, keepdims=True)
        return self._as_xp(np.log(proba), X, xp)

    def log_likelihood(self, X, y, xp):
        """``log p_j(y_i | x_i)`` in standardised units, (n_leaves, n_samples)."""
        if not self.is_regression:
            log_proba = self.predict_log_proba(X, xp)
            one_hot = xp.astype(
                xp.arange(self.n_classes, device=device(X))[:, None] == y[None, :],
                X.dtype,
            )
            return xp.sum(log_proba * one_hot[:, None, :], axis=0)
        mean, variance = self.predict_mean_variance(X, xp)
        return -0.5 * (
            math.log(2 * math.pi)
            + xp.log(variance)
            + (y[None, :] - mean) ** 2 / variance
        )

    def penalty(self, xp):
        return 0.0

    def get_state(self):
        """The fitted learners (every M-step fits new clones, so they are not
        changed later), the variances, the GP noises and the fallbacks."""
        variance = None if self.variance is None else self.variance.copy()
        noise = (self.noise.copy(), list(self._sigma2))
        return (
            list(self.learners),
            variance,
            noise,
            dict(self.fallbacks),
            set(self.failed),
        )

    def set_state(self, state):
        learners, self.variance, noise, self.fallbacks, self.failed = state
        self.learners = list(learners)
        self.noise, self._sigma2 = noise[0].copy(), list(noise[1])


class _HostCopies:
    """Host copies of the fit's inputs and targets, made once per fit.

    EM hands the learners the same design matrix and targets in every
    iteration; on a GPU each would otherwise cross to the host once per
    iteration. An entry is reused while its source array is the very same
    object.
    """

    def __init__(self):
        self._entries = {}

    def get(self, name, source, make):
        entry = self._entries.get(name)
        if entry is None or entry[0] is not source:
            entry = (source, make())
            self._entries[name] = entry
        return entry[1]


def _recording_warnings(function, *args):
    """``function(*args)`` and the warnings it gave, held back: a learner's
    warnings on the way to a failure that a fallback replaces (the fallback
    says what failed) would only mislead, so the caller shows them
    (``_reemit``) only if the fit succeeded."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = function(*args)
    return result, caught


def _reemit(caught):
    for warning in caught:
        warnings.warn_explicit(
            warning.message, warning.category, warning.filename, warning.lineno
        )


def _first_line(error):
    """The first line of an exception's message, with its type."""
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0] if message else ''}"


class _ConstantClassifier:
    """A leaf's classifier that predicts fixed class probabilities: its
    weighted class frequencies (a single class, or a learner that failed)."""

    def __init__(self, classes, proba):
        self.classes_ = np.asarray(classes)
        self.proba = np.asarray(proba, dtype=float)

    def predict_proba(self, X):
        return np.tile(self.proba, (len(X), 1))

    def predict(self, X):
        return np.full(len(X), self.classes_[np.argmax(self.proba)])


class _ConstantRegressor:
    """A leaf's regressor that failed: the weighted mean and standard
    deviation of its samples (a Gaussian-process expert's variance is the
    latter, its noise 0)."""

    def __init__(self, mean, std):
        self.mean, self.std, self.alpha = float(mean), float(std), 0.0

    def predict(self, X, return_std=False):
        mean = np.full(len(X), self.mean)
        return (mean, np.full(len(X), self.std)) if return_std else mean


_CONSTANTS = (_ConstantClassifier, _ConstantRegressor)


# -- the kernels and objective of Gaussian-process experts --------------------------


@cache
def _sklearn_default_kernel():
    return GaussianProcessRegressor(optimizer=None).fit([[0.0]], [0.0]).kernel_


def _default_kernel():
    """The kernel of a ``GaussianProcessRegressor(kernel=None)``, as this
    scikit-learn version makes it (``C() * RBF()``, fixed before 1.8)."""
    return clone(_sklearn_default_kernel())


def _split_white(kernel):
    """``kernel`` without its ``WhiteKernel`` summands (those of its
    top-level sums), and those summands. A kernel that is only white noise
    is kept whole."""
    if isinstance(kernel, WhiteKernel):
        return None, [kernel]
    if not isinstance(kernel, Sum):
        return kernel, []
    left, white_left = _split_white(kernel.k1)
    right, white_right = _split_white(kernel.k2)
    whites = white_left + white_right
    if left is None and right is None:
        return kernel, []
    if left is None or right is None:
        return (right if left is None else left), whites
    return (Sum(left, right) if whites else kernel), whites


class _OnColumns(Kernel):
    """``kernel`` on the first ``n_columns`` columns of ``X`` (the others are
    the weights that ``_WeightedNoise`` reads)."""

    def __init__(self, kernel, n_columns):
        self.kernel = kernel
        self.n_columns = n_columns

    def get_params(self, deep=True):
        params = {"kernel": self.kernel, "n_columns": self.n_columns}
        if deep:
            params.update(
                ("kernel__" + key, value)
                for key, value in self.kernel.get_params().items()
            )
        return params

    @property
    def hyperparameters(self):
        return [
            Hyperparameter(
                "kernel__" + h.name, h.value_type, h.bounds, h.n_elements, h.fixed
            )
            for h in self.kernel.hyperparameters
        ]

    @property
    def theta(self):
        return self.kernel.theta

    @theta.setter
    def theta(self, theta):
        self.kernel.theta = theta

    @property
    def bounds(self):
        return self.kernel.bounds

    def __eq__(self, other):
        return (
            type(self) is type(other)
            and self.kernel == other.kernel
            and self.n_columns == other.n_columns
        )

    def __call__(self, X, Y=None, eval_gradient=False):
        X = np.asarray(X)[:, : self.n_columns]
        Y = None if Y is None else np.asarray(Y)[:, : self.n_columns]
        return self.kernel(X, Y, eval_gradient=eval_gradient)

    def diag(self, X):
        return self.kernel.diag(np.asarray(X)[:, : self.n_columns])

    def is_stationary(self):
        return self.kernel.is_stationary()

    def __repr__(self):
        return repr(self.kernel)


class _WeightedNoise(Kernel):
    """White noise of variance ``noise_level / r_i`` at sample ``i``, with
    ``1 / r_i`` the last column of ``X``: a ``WhiteKernel`` whose noise each
    sample's responsibility scales; zero between distinct calls' samples."""

    def __init__(self, noise_level=1.0, noise_level_bounds=(1e-5, 1e5)):
        self.noise_level = noise_level
        self.noise_level_bounds = noise_level_bounds

    @property
    def hyperparameter_noise_level(self):
        return Hyperparameter("noise_level", "numeric", self.noise_level_bounds)

    def __call__(self, X, Y=None, eval_gradient=False):
        X = np.asarray(X)
        if Y is not None:
            if eval_gradient:
                raise ValueError("Gradient can only be evaluated when Y is None.")
            return np.zeros((len(X), len(Y)))
        K = np.diag(self.noise_level * X[:, -1])
        if not eval_gradient:
            return K
        if self.hyperparameter_noise_level.fixed:
            return K, np.empty((len(X), len(X), 0))
        return K, K[:, :, np.newaxis].copy()

    def diag(self, X):
        return self.noise_level * np.asarray(X)[:, -1]

    def is_stationary(self):
        return False

    def __repr__(self):
        return f"{type(self).__name__}(noise_level={self.noise_level:.3g})"


def _weighted_objective(optimizer, extra, alpha):
    """The GP optimiser ``optimizer`` ("fmin_l_bfgs_b" or a callable) on the
    weighted marginal likelihood.

    With responsibilities ``r_i`` and noise variance ``v = sigma^2 + alpha``,
    the weighted likelihood ``prod_i N(y_i; f_i, v) ** r_i`` integrated over
    the GP prior of ``f`` is ``N(y; 0, K + v / r)`` times ``prod_i (2 pi
    v / r_i) ** (1 / 2) (2 pi v) ** (-r_i / 2)``: the GP's marginal
    likelihood with per-sample noise ``v / r_i`` plus ``extra * log(v)``,
    ``extra = (n - sum_i r_i) / 2``, and a constant. Without that term the
    noise would shrink by about ``sum_i r_i / n``. ``sigma^2`` is the last
    hyper-parameter (``theta[-1]`` its log).
    """

    def corrected(objective):
        def function(theta, eval_gradient=True):
            sigma2 = math.exp(theta[-1])
            shift = extra * math.log(sigma2 + alpha)
            if not eval_gradient:
                return objective(theta, eval_gradient=False) - shift
            value, gradient = objective(theta, eval_gradient=True)
            gradient = np.array(gradient, dtype=float)
            gradient[-1] -= extra * sigma2 / (sigma2 + alpha)
            return value - shift, gradient

        return function

    def minimise(objective, initial_theta, bounds):
        function = corrected(objective)
        if callable(optimizer):
            return optimizer(function, initial_theta, bounds=bounds)
        result = scipy.optimize.minimize(
            function,
            initial_theta,
            method="L-BFGS-B",
            jac=True,
            bounds=bounds,
            options=_GP_LBFGS_OPTIONS,
        )
        if result.status != 0:
            warnings.warn(
                f"lbfgs failed to converge on a GP expert's hyper-parameters "
                f"(status={result.status}): {result.message}",
                ConvergenceWarning,
                stacklevel=2,
            )
        return result.x, result.fun

    if optimizer != "fmin_l_bfgs_b" and not callable(optimizer):
        raise ValueError(f"Unknown optimizer {optimizer}.")
    return minimise
