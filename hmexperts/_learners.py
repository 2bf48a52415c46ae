"""Any scikit-learn learner as an expert: one fitted clone per leaf.

The bank offers the interface of the built-in banks (``fit``,
``log_likelihood``, ``predict_mean_variance`` or ``predict_log_proba``,
``penalty``, ``get_state`` / ``set_state``), so the EM loop drives it
unchanged. Learners run on the host: the inputs,
targets and responsibilities cross once per M-step and once per E-step,
never once per expert.

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

import copy
import math

import numpy as np
from sklearn.base import clone
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.validation import has_fit_parameter

from ._array_api import device, to_numpy

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


class LearnerExperts:
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
        self.random_state = check_random_state(random_state)
        self.learners = None
        self.variance = None
        self._uniforms = None

    # Refitting a learner need not increase EM's objective (an SVM minimises a
    # hinge loss, a tree is greedy, a capped or resampled fit sees part of the
    # data): the EM loop keeps the best iterate.
    monotone = False

    @property
    def is_regression(self):
        return self.n_classes is None

    def init_params(self, n_params, X, xp):
        """Unfitted clones, each seeded from ``random_state``; the first M-step
        fits them."""
        self.learners = [self._seeded_clone() for _ in range(self.n_leaves)]
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
            rows = np.flatnonzero(resp >= _GP_MIN_RESPONSIBILITY * resp.max())
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

    def _fit_one(self, leaf, learner, X, y, rows, weights):
        _, prefix = _final_step(learner)
        params = {}
        if self.rule == "sample_weight":
            params[f"{prefix}sample_weight"] = weights
        elif self.rule == "gp_noise":
            noise = self._noise(learner)
            learner.set_params(**{f"{prefix}alpha": noise / weights})
            final, _ = _final_step(learner)
            if hasattr(final, "kernel_"):
                # Continue from the last M-step's hyper-parameters.
                learner.set_params(**{f"{prefix}kernel": final.kernel_})
        try:
            learner.fit(X[rows], y[rows], **params)
            if self.is_regression and self.rule != "gp_noise":
                return learner.predict(X)  # for the residual variance
        except Exception as error:
            raise ValueError(
                f"The expert at leaf {leaf} ({type(self.learner).__name__}) failed on "
                f"its {len(rows)} training samples (responsibility mass "
                f"{0 if weights is None else weights.sum():.3g}): {error}. Try fewer "
                "leaves (n_experts, depth), a lower responsibility_threshold, or "
                "a learner that needs fewer samples."
            ) from error
        finally:
            if self.rule == "gp_noise":
                learner.set_params(**{f"{prefix}alpha": noise})
        return None

    def fit(self, X, y, resp, xp, outer=None):
        """Fit every leaf's learner to its responsibilities (``outer``, the
        built-in banks' cached products, is not needed)."""
        X_data, y_data = self._inputs(X, xp), self._targets(y, xp)
        resp = to_numpy(resp, xp).astype(np.float64)
        if (
            getattr(self, "_uniforms", None) is None
            or self._uniforms.shape != resp.shape
        ):
            # One uniform per (leaf, sample) for the whole fit (the cap's keys).
            self._uniforms = self.random_state.uniform(size=resp.shape)
        fitted, predictions = [], []
        for leaf, learner in enumerate(self.learners):
            rows, weights = self._training_rows(resp[leaf], leaf)
            if not self.is_regression and len(np.unique(y_data[rows])) < 2:
                # On a single class the maximum-likelihood classifier is the
                # constant one; most learners refuse to fit it.
                learner = _ConstantClassifier(y_data[rows][0] if len(rows) else 0)
            elif isinstance(learner, _ConstantClassifier):
                learner = self._seeded_clone()
            if not isinstance(learner, _ConstantClassifier):
                predictions.append(
                    self._fit_one(leaf, learner, X_data, y_data, rows, weights)
                )
            fitted.append(learner)
        self.learners = fitted
        if self.is_regression and self.rule != "gp_noise":
            resid2 = (np.stack(predictions) - y_data[None, :]) ** 2
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
        """Copies of the fitted learners (a refit changes them in place) and
        of the variances."""
        variance = None if self.variance is None else self.variance.copy()
        return copy.deepcopy(self.learners), variance

    def set_state(self, state):
        self.learners, self.variance = state


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


class _ConstantClassifier:
    """The classifier of a leaf whose training samples have a single class."""

    def __init__(self, label):
        self.classes_ = np.array([label])

    def predict_proba(self, X):
        return np.ones((len(X), 1))

    def predict(self, X):
        return np.full(len(X), self.classes_[0])
