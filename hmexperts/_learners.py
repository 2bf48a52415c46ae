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
- a ``GaussianProcessRegressor``: per-sample noise ``alpha / r_ij``, which
  fits the latent function exactly to the weighted data (samples with ``r_ij`` below
  ``_GP_MIN_RESPONSIBILITY`` of the leaf's largest are left out: their
  noise is so large that they carry no information, and a GP is cubic in
  its samples);
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
residuals or, for a Gaussian process, its own predictive variance plus its
noise ``alpha``, both floored like the built-in experts; for classification the
learner's ``predict_proba``, clipped at ``_MIN_PROBA`` and renormalised.
"""

import math
import warnings
from numbers import Integral

import numpy as np
from sklearn.base import clone
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.validation import has_fit_parameter

from ._array_api import device, namespace_name, to_numpy
from ._components import ExpertBank

# Smallest class probability an expert may give (then renormalised): a
# learner that is certain and wrong must not make the likelihood zero.
_MIN_PROBA = 1e-6
# A GP expert leaves out samples below this share of its largest
# responsibility: their noise alpha / r would make them uninformative.
_GP_MIN_RESPONSIBILITY = 1e-3
# A leaf that owns fewer samples than this above the threshold is fit on its
# this-many highest-responsibility samples instead.
_MIN_ROWS = 5


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

    def _fit_params(self, leaf, learner, weights):
        """The fit parameters of ``learner`` (a fresh clone) under the
        weighting rule, after preparing it (a GP's per-sample noise, its
        kernel warm-started from the last M-step)."""
        _, prefix = _final_step(learner)
        if self.rule == "sample_weight":
            return {f"{prefix}sample_weight": weights}
        if self.rule == "gp_noise":
            noise = self._noise(learner)
            learner.set_params(**{f"{prefix}alpha": noise / weights})
            previous, _ = _final_step(self.learners[leaf])
            if hasattr(previous, "kernel_"):
                # Continue from the last M-step's hyper-parameters.
                learner.set_params(**{f"{prefix}kernel": previous.kernel_})
        return {}

    def _fit_clone(self, leaf, X, y, rows, weights, changes=None):
        """A clone of leaf's learner (with parameters ``changes``) fit to
        its rows, and asked for a prediction (some learners fail only
        then: a k-NN with more neighbours than samples); raises what the
        learner raises."""
        learner = clone(self._templates[leaf])
        if changes:
            learner.set_params(**changes)
        params = self._fit_params(leaf, learner, weights)
        try:
            learner.fit(X[rows], y[rows], **params)
            if self.is_regression:
                learner.predict(X[:1])
            else:
                learner.predict_proba(X[:1])
        finally:
            if self.rule == "gp_noise":  # the scalar noise, for predictions
                _, prefix = _final_step(learner)
                learner.set_params(
                    **{f"{prefix}alpha": self._noise(self._templates[leaf])}
                )
        return learner

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
        return {
            "experts_": list(self.learners),
            "expert_fallbacks_": dict(self.fallbacks),
        }

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

    def _noise(self, learner):
        """A Gaussian-process expert's noise variance (its scalar ``alpha``)."""
        final, _ = _final_step(learner)
        return float(np.asarray(final.alpha).reshape(-1)[0])

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
                gp_variance[leaf, rows] = std**2 + self._noise(learner)
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
        changed later), the variances and the fallbacks."""
        variance = None if self.variance is None else self.variance.copy()
        return list(self.learners), variance, dict(self.fallbacks), set(self.failed)

    def set_state(self, state):
        learners, self.variance, self.fallbacks, self.failed = state
        self.learners = list(learners)


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
    latter, its noise ``alpha`` 0)."""

    def __init__(self, mean, std):
        self.mean, self.std, self.alpha = float(mean), float(std), 0.0

    def predict(self, X, return_std=False):
        mean = np.full(len(X), self.mean)
        return (mean, np.full(len(X), self.std)) if return_std else mean


_CONSTANTS = (_ConstantClassifier, _ConstantRegressor)
