"""The protocol every part of a mixture follows: EM from sums over samples.

The gate tree and every expert bank are *components*. EM drives them only
through this protocol, chunk by chunk, and never asks which one it has:

- ``init_params(n_params, like, xp)``: starting parameters (float64);
- ``log_prior(X, xp)`` (the gate tree) or ``log_likelihood(X, y, xp)`` (an
  expert bank): per-sample quantities of one chunk of rows, shape
  (n_leaves, n_rows);
- ``accumulate(stats, chunk, resp, xp)``: the chunk's sufficient statistics
  given its responsibilities ``resp`` (n_leaves, n_rows, times the sample
  weights), added to ``stats`` (None before the first chunk) and returned;
  statistics are dicts, lists and arrays that ``add_stats`` sums, so chunks
  may be summed in any order, on any worker;
- ``m_step(stats, xp)``: new parameters from the summed statistics;
- ``shrink()``: halve the last M-step's move, where it is a Newton step (the
  EM loop does so when the objective went down); False if there is nothing
  to shrink;
- ``penalty(xp)``: the log-prior subtracted from the log-likelihood;
- ``get_state()`` / ``set_state(state)``: an explicit, cheap snapshot of the
  parameters, for EM to return its best iterate;
- ``free_parameters(xp)`` / ``set_free_parameters(free, xp)``: the
  parameters in coordinates free of constraints (a list of float64 arrays;
  variances and shapes as logarithms), in which EM's accelerator
  extrapolates (``_em.Squarem``), and back, moved into their domain
  (floors, bounds); None from ``free_parameters`` (learner experts) turns
  the accelerator off;
- ``online_update(running, batch, gamma, xp)`` and ``online_m_step(running,
  total, gamma, xp)``: stepwise EM on a stream (``partial_fit``): the
  running statistics per unit of weight, blended with a batch's by the step
  ``gamma``, and the M-step from them as if from ``total`` units of weight.

A component's ``monotone`` says whether its M-step can never decrease EM's
objective (true of the built-in ones; a learner's refit may).

An expert bank (``ExpertBank``) also says what the estimator shows of it
(``attributes``: ``expert_coef_`` and the like, or the fitted learners),
takes new penalties on a warm start (``update_penalties``), may hold the
data of an in-memory fit while EM runs (``bind``) and reports what went
wrong on the way (``warn_fallbacks``): the estimator never asks which bank
it has.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ._array_api import device
from ._solvers import chunk_outer_products, newton_direction, softmax_penalised

# Newton steps of an M-step on fixed targets (the first, from given
# responsibilities); each guarantees an increase, and the loop stops earlier
# once a step gains less than _NEWTON_RTOL per unit of mass, or
# _NEWTON_RELATIVE of the first step's gain.
_MAX_NEWTON_STEPS = 8
_NEWTON_RTOL = 1e-5
_NEWTON_RELATIVE = 1e-3
# Halvings of a step before it counts as no move at all.
_MAX_HALVINGS = 40


@dataclass
class Chunk:
    """One chunk of rows of the data EM runs on.

    Attributes
    ----------
    X : array of shape (n_rows, n_params)
        Standardised inputs with the intercept column.
    y : array of shape (n_rows,)
        Standardised target (regression) or class codes.
    weight : array of shape (n_rows,)
        Sample weights, float64.
    rows : slice
        The chunk's rows in the whole data.
    outer : array of shape (n_rows, n_params * (n_params + 1) / 2) or None
        The rows' outer products, if kept for the fit.
    init : array of shape (n_rows, n_leaves) or None
        The rows' initial responsibilities, when the user gave them.
    outer_namespace : namespace or None
        If given and ``outer`` is None, the namespace with which
        ``outer_products`` makes the rows' outer products on first use,
        for all the chunk's components to share.
    """

    X: object
    y: object
    weight: object
    rows: slice
    outer: object = None
    init: object = None
    outer_namespace: object = None

    def outer_products(self):
        """The rows' outer products: those kept, else made once for the
        chunk (``outer_namespace``) if they fit ``_solvers.
        chunk_outer_products``'s bound, else None."""
        if self.outer is None and self.outer_namespace is not None:
            self.outer = chunk_outer_products(self.X, self.outer_namespace)
            self.outer_namespace = None
        return self.outer


def scale_stats(stats, factor):
    """Statistics (dicts, lists and arrays) times ``factor``."""
    if isinstance(stats, dict):
        return {key: scale_stats(value, factor) for key, value in stats.items()}
    if isinstance(stats, list):
        return [scale_stats(value, factor) for value in stats]
    return stats * factor


def blend_stats(running, batch, gamma):
    """``(1 - gamma) running + gamma batch``; ``batch`` alone if ``running``
    is None."""
    if running is None:
        return batch
    return add_stats(scale_stats(running, 1.0 - gamma), scale_stats(batch, gamma))


def add_stats(a, b):
    """The sum of two statistics (dicts, lists and arrays of the same
    structure); None is the empty sum."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict):
        return {key: add_stats(a[key], b[key]) for key in a}
    if isinstance(a, list):
        return [add_stats(x, y) for x, y in zip(a, b, strict=True)]
    return a + b


class Component(ABC):
    """A part of the model that EM fits from sums over samples (see the
    module's docstring).

    A component reads the columns ``columns`` of the design matrix (None:
    all of them; the intercept is always the last): the concomitant
    variables of the gates, the covariates of the experts. Its
    coefficients have one row per column it reads; ``expand`` gives them
    in the whole design's rows, zeros elsewhere.
    """

    monotone = True
    columns = None
    n_design = None

    def select(self, columns, n_design):
        """Read only the design's columns ``columns`` (a list of indices,
        the intercept's last) of ``n_design``; None reads all."""
        self.columns = None if columns is None else list(columns)
        self.n_design = n_design
        return self

    def width(self, n_design):
        """The number of columns the component reads of a design of
        ``n_design`` columns."""
        return n_design if self.columns is None else len(self.columns)

    def design(self, X, xp):
        """The columns of ``X`` the component reads."""
        if self.columns is None:
            return X
        return xp.take(X, xp.asarray(self.columns, device=device(X)), axis=1)

    def outer(self, chunk):
        """The chunk's kept outer products, if they are of the columns read."""
        return chunk.outer_products() if self.columns is None else None

    def expand(self, coef, xp):
        """Coefficients of shape (n_models, n_read, ...) in the whole
        design's rows, (n_models, n_design, ...), zeros for unread columns."""
        if self.columns is None:
            return coef
        rows = np.zeros((self.n_design, len(self.columns)))
        rows[self.columns, np.arange(len(self.columns))] = 1.0
        rows = xp.asarray(rows, device=device(coef))
        if coef.ndim == 2:
            return xp.matrix_transpose(rows @ xp.matrix_transpose(coef))
        return rows @ coef

    @abstractmethod
    def init_params(self, n_params, like, xp):
        """Starting parameters, float64, on ``like``'s device."""

    @abstractmethod
    def accumulate(self, stats, chunk, resp, xp):
        """``stats`` plus the sufficient statistics of ``chunk``."""

    @abstractmethod
    def m_step(self, stats, xp):
        """New parameters from the summed statistics."""

    def shrink(self):
        """Halve the last M-step's move; False if there is none to halve."""
        return False

    @abstractmethod
    def penalty(self, xp):
        """The log-prior of the parameters, subtracted from the objective."""

    @abstractmethod
    def get_state(self):
        """A snapshot of the parameters."""

    @abstractmethod
    def set_state(self, state):
        """Restore a snapshot of ``get_state``."""

    def free_parameters(self, xp):
        """The parameters as float64 arrays free of constraints, for EM's
        accelerator; None (the default) where they cannot be extrapolated."""
        return None

    def online_update(self, running, batch, gamma, xp):
        """Stepwise EM (Cappe & Moulines, 2009): the running statistics per
        unit of weight, ``(1 - gamma) running + gamma batch``, where
        ``batch`` is one mini-batch's statistics divided by its weight."""
        return blend_stats(running, batch, gamma)

    def online_m_step(self, running, total, gamma, xp):
        """The M-step from the running statistics, as if they summed
        ``total`` units of weight (all the stream has seen)."""
        self.m_step(scale_stats(running, total), xp)


class ExpertBank(Component):
    """A component holding the experts of every leaf (see the module's
    docstring); the defaults suit the built-in banks.

    A bank whose ``shares_probabilities`` is true takes ``keep`` in
    ``log_likelihood`` (a list it appends what it computed to) and
    ``kept`` in ``accumulate`` (that list), so that the E-step's work
    serves its sums (the softmax experts' class probabilities)."""

    shares_probabilities = False

    def bind(self, data, xp):
        """Keep ``data`` (the source of chunks) while EM runs; None lets go."""

    def update_penalties(self, alpha, min_variance=None):
        """The penalties of a warm start (weights rescaled like the data's)."""
        self.alpha = alpha
        if min_variance is not None:
            self.min_variance = min_variance

    def warn_fallbacks(self):
        """Warn about experts that could not be fit as asked (none here)."""

    @abstractmethod
    def attributes(self, scaling, xp):
        """The fitted attributes in the data's units: name -> value."""


class NewtonComponent(Component):
    """A component whose M-step is a Newton step on batches of softmax models.

    A subclass keeps its coefficients as a list of batches (``coefs``: one
    per gate level, or the softmax experts' one) and returns, from its
    statistics, one ``softmax_sums`` per batch (``_batch_sums``). It has
    ``alpha`` (the L2 penalty) and ``penalty_name`` (the parameter to name
    in errors).

    Inside EM, ``m_step`` takes one Newton step from the current
    coefficients and ``shrink`` halves it; the EM loop shrinks until its
    objective does not go down, which keeps EM monotone with one pass over
    the data per iteration. On fixed targets (the first M-step, from given
    responsibilities) ``refine`` runs Newton's method with step halving per
    model, one pass per step: each pass's sums at a candidate give both its
    objective and, if it is accepted, the next direction.
    """

    coefs = None

    def _batch_sums(self, stats):
        """The ``softmax_sums`` of every batch, from the statistics."""
        return stats

    def _extra_gradients(self, stats, xp):
        """Gradients of other terms of the objective, one per batch (or None)."""
        return [None] * len(self.coefs)

    def _directions(self, stats, xp, others=True):
        """Newton directions of every batch; with ``others``, for the whole
        objective (``_extra_gradients``), else for the soft-target part."""
        extras = self._extra_gradients(stats, xp) if others else None
        return [
            newton_direction(
                sums,
                coef,
                self.alpha,
                xp,
                self.penalty_name,
                None if extras is None else extras[b],
            )
            for b, (sums, coef) in enumerate(
                zip(self._batch_sums(stats), self.coefs, strict=True)
            )
        ]

    def online_update(self, running, batch, gamma, xp):
        """Stepwise EM for a Newton step: the curvature is a running
        average, but the gradient is the batch's alone. After every
        M-step the running objective's gradient is zero at the new
        coefficients (they maximise its quadratic model), so the new
        objective, ``(1 - gamma)`` times the old plus ``gamma`` times the
        batch's, has the batch's gradient times ``gamma`` there."""
        blended = blend_stats(running, batch, gamma)
        for sums, fresh in zip(
            self._batch_sums(blended), self._batch_sums(batch), strict=True
        ):
            sums["gradient"] = gamma * fresh["gradient"]
        return blended

    def online_m_step(self, running, total, gamma, xp):
        """One Newton step on the stream's quadratic model: Hessian
        ``total * C + alpha I`` (``C`` the running curvature per unit
        weight), gradient ``gamma (total * g - alpha W)`` (``g`` the batch's
        per unit weight)."""
        self._start = list(self.coefs)
        self._direction = [
            newton_direction(
                scale_stats(sums, total),
                coef,
                self.alpha,
                xp,
                self.penalty_name,
                (1.0 - gamma) * self.alpha * coef,
            )
            for sums, coef in zip(self._batch_sums(running), self.coefs, strict=True)
        ]
        self._fraction = 1.0
        self.coefs = [s + d for s, d in zip(self._start, self._direction, strict=True)]

    def m_step(self, stats, xp):
        """One Newton step from the current coefficients."""
        self._start = list(self.coefs)
        self._direction = self._directions(stats, xp)
        self._fraction = 1.0
        self.coefs = [s + d for s, d in zip(self._start, self._direction, strict=True)]

    def shrink(self):
        if (
            getattr(self, "_start", None) is None
            or self._fraction < 2.0**-_MAX_HALVINGS
        ):
            return False
        self._fraction *= 0.5
        self.coefs = [
            s + self._fraction * d
            for s, d in zip(self._start, self._direction, strict=True)
        ]
        return True

    def refine(self, stats, xp):
        """One step of Newton's method with per-model halving on the fixed
        targets that gave ``stats`` (the sums at the current coefficients:
        the start, then the candidate of the last call).

        A model stops once the gain its next Newton step predicts, ``g^T H^-1
        g / 2`` per unit of mass, is negligible: below ``_NEWTON_RTOL``, or
        ``_NEWTON_RELATIVE`` of the first step's. Deciding on the predicted
        gain, not on the measured one, keeps steps whose gain is round-off
        (where summing in another order may flip an acceptance) from being
        taken at all.

        Returns
        -------
        more : bool
            Whether another pass is worth making; if not, the coefficients
            are the best found.
        """
        if not self.coefs:  # no model (a tree of one leaf has no gate)
            return False
        sums = self._batch_sums(stats)
        objective = [
            softmax_penalised(s, c, self.alpha, xp)
            for s, c in zip(sums, self.coefs, strict=True)
        ]
        directions = self._directions(stats, xp, others=False)
        predicted = [
            0.5
            * xp.sum(
                xp.reshape((s["gradient"] - self.alpha * c) * d, (c.shape[0], -1)),
                axis=1,
            )
            / (s["mass"] + 1.0)
            for s, c, d in zip(sums, self.coefs, directions, strict=True)
        ]
        state = getattr(self, "_refined", None)
        if state is None:  # the sums at the start
            first = max(float(xp.max(p)) for p in predicted)
            state = self._refined = {
                "coefs": list(self.coefs),
                "objective": objective,
                "direction": directions,
                "fraction": [xp.ones_like(o) for o in objective],
                "steps": 0,
                "negligible": max(_NEWTON_RTOL, _NEWTON_RELATIVE * first),
            }
            state["done"] = [p <= state["negligible"] for p in predicted]
        else:
            accepted = False
            for b, obj in enumerate(objective):
                better = (obj >= state["objective"][b]) & ~state["done"][b]
                accepted = accepted or bool(xp.any(better))
                keep = better[:, None, None]
                state["coefs"][b] = xp.where(keep, self.coefs[b], state["coefs"][b])
                state["objective"][b] = xp.where(better, obj, state["objective"][b])
                state["direction"][b] = xp.where(
                    keep, directions[b], state["direction"][b]
                )
                fraction = xp.where(
                    better, xp.ones_like(obj), 0.5 * state["fraction"][b]
                )
                state["fraction"][b] = fraction
                state["done"][b] = (
                    state["done"][b]
                    | (better & (predicted[b] <= state["negligible"]))
                    | (fraction < 2.0**-_MAX_HALVINGS)
                )
            state["steps"] += accepted
        finished = all(bool(xp.all(done)) for done in state["done"])
        if finished or state["steps"] >= _MAX_NEWTON_STEPS:
            return self._end_refine()
        self.coefs = [
            c + xp.where(done, 0.0 * f, f)[:, None, None] * d
            for c, f, d, done in zip(
                state["coefs"],
                state["fraction"],
                state["direction"],
                state["done"],
                strict=True,
            )
        ]
        return True

    def _end_refine(self):
        self.coefs = self._refined["coefs"]
        self._refined = None
        return False
