"""The EM loop over a gate tree and a bank of experts.

One function owns EM for every model of the library: an optional M-step from
given responsibilities (initialisation), then E-step, M-step, bookkeeping and
the convergence test, until the change of the penalised mean log-likelihood
is below ``tol`` or ``max_iter`` iterations have run. It knows nothing of
scikit-learn's validation nor of which experts it drives: the gates and the
experts only need ``fit``, ``log_likelihood``/``log_prior``, ``penalty`` and
``get_state``/``set_state``.

The E-step runs over chunks of rows: its per-sample temporaries (log priors,
log-densities) are float64 and live for one chunk, the objective is summed
in float64, and only the responsibilities are stored, in the data's dtype.

EM returns its best iterate. Where the objective cannot decrease in exact
arithmetic (built-in experts, deterministic E-step), a decrease beyond
``drop_tolerance`` is numerical trouble: EM stops there, and the monitor
reports it.

The E-step comes in the variants of ``TrainingRouting``: soft EM (every
leaf's posterior), truncated EM (the ``k`` largest posteriors of every
sample, renormalised; ``k = 1`` is hard or classification EM) and stochastic
EM (one leaf per sample drawn from its posterior).
"""

import math
import time
from dataclasses import dataclass, field

from ._array_api import device, logsumexp, wide
from ._solvers import outer_products, row_chunks

# Stochastic EM: stop when the best objective has not improved by ``tol``
# over this many iterations.
_STOCHASTIC_PATIENCE = 10
# verbose=1: a progress line at least this often (seconds) while EM runs.
_PROGRESS_SECONDS = 5.0
# A decrease of the objective (a mean log-likelihood per sample) larger than
# this, relative to max(1, |objective|), is not round-off. The objective is
# summed in float64 either way; float32 data store the responsibilities in
# float32, whose rounding perturbs the M-step's targets, hence the larger
# allowance. Measured over 100 random problems, 100 iterations each (float32
# ones with a collinear column and log-normal weights, sigma 3 to 5): the
# largest decrease was 1.3e-15 in float32 and 1.0e-15 in float64
# (benchmarks/study_monotonicity.py).
_DROP_RTOL = {"float32": 1e-7, "float64": 1e-9}


def drop_tolerance(dtype_name):
    """Relative decrease of the objective that EM takes for round-off, by the
    name of the data's dtype."""
    return _DROP_RTOL.get(dtype_name, _DROP_RTOL["float32"])


@dataclass
class TrainingRouting:
    """Which responsibilities the E-step hands to the M-step.

    Attributes
    ----------
    algorithm : {"em", "hard", "stochastic"}
        Soft EM; hard (classification) EM, which keeps only the most probable
        leaf of every sample; stochastic EM, which draws one leaf per sample
        from its posterior.
    top_k : int or None
        Soft EM only: keep the ``top_k`` largest posteriors of every sample,
        renormalised (truncated EM). None keeps them all.
    gate_noise : float
        Standard deviation of Gaussian noise added to the leaves' log priors
        before the top-``k`` choice (noisy top-k gating).
    random_state : numpy.random.RandomState or None
        Source of the draws of stochastic EM and of the gate noise.
    """

    algorithm: str = "em"
    top_k: int | None = None
    gate_noise: float = 0.0
    random_state: object = None

    @property
    def k(self):
        """Leaves kept per sample, or None for all."""
        return 1 if self.algorithm == "hard" else self.top_k

    @property
    def monotone(self):
        """Whether the E-step is deterministic, so that EM cannot go down."""
        return self.algorithm != "stochastic" and not self.gate_noise > 0

    def normal(self, shape, like, xp):
        noise = self.random_state.standard_normal(size=shape)
        return xp.asarray(noise, dtype=xp.float64, device=device(like))

    def uniform(self, n, like, xp):
        draws = self.random_state.uniform(size=n)
        return xp.asarray(draws, dtype=xp.float64, device=device(like))


_SOFT_EM = TrainingRouting()


def top_k_mask(scores, k, xp):
    """The ``k`` largest entries of every column of ``scores`` (ties: lowest
    index first), as a boolean array of the shape of ``scores``."""
    if k == 1:  # argmax returns the first of tied maxima, as the sort does
        leaves = xp.arange(scores.shape[0], device=device(scores))[:, None]
        return leaves == xp.argmax(scores, axis=0)[None, :]
    order = xp.argsort(scores, axis=0, descending=True, stable=True)
    rank = xp.argsort(order, axis=0, stable=True)
    return rank < k


def _sample_leaves(log_resp, uniform, xp):
    """One leaf per sample drawn from its posterior with the uniform draws
    ``uniform`` (n_samples,), as log responsibilities (0 at the drawn leaf,
    ``-inf`` elsewhere)."""
    cumulative = xp.cumulative_sum(xp.exp(log_resp), axis=0)
    u = uniform * cumulative[-1, :]
    below = xp.astype(cumulative < u[None, :], xp.int64)
    leaf = xp.minimum(xp.sum(below, axis=0), log_resp.shape[0] - 1)
    leaves = xp.arange(log_resp.shape[0], device=device(log_resp))
    chosen = leaves[:, None] == leaf[None, :]
    return xp.where(chosen, xp.zeros_like(log_resp), xp.full_like(log_resp, -xp.inf))


@dataclass
class ConvergenceMonitor:
    """History of the objective, one value per E-step.

    Attributes
    ----------
    tol : float
        Convergence threshold on the change of the objective.
    history : list of float
        The penalised mean log-likelihood after the initial M-step and after
        every EM iteration.
    restored : float or None
        When an earlier iterate was better than the last (learner experts,
        stochastic EM and gate noise may lower the objective; numerical
        trouble may, elsewhere), EM returns that iterate: its objective.
    patience : int or None
        Stochastic EM: converged when the best objective has not risen by
        ``tol`` in the last ``patience`` iterations.
    decreased : tuple or None
        ``(iteration, amount)`` when the objective of an EM that cannot
        decrease in exact arithmetic fell by more than round-off; EM
        stopped there.
    """

    tol: float
    history: list = field(default_factory=list)
    restored: float | None = None
    patience: int | None = None
    decreased: tuple | None = None

    def report(self, objective):
        self.history.append(objective)

    @property
    def n_iter(self):
        return max(len(self.history) - 1, 0)

    @property
    def converged(self):
        """The change of the objective fell below ``tol`` or, with
        ``patience``, the best objective has not risen by ``tol`` in the last
        ``patience`` iterations."""
        if self.decreased is not None:
            return False
        if self.patience is not None:
            recent, earlier = (
                self.history[-self.patience :],
                self.history[: -self.patience],
            )
            return bool(earlier) and max(recent) < max(earlier) + self.tol
        return (
            len(self.history) > 1
            and abs(self.history[-1] - self.history[-2]) < self.tol
        )

    @property
    def objective(self):
        """The objective of the parameters EM returns."""
        return self.history[-1] if self.restored is None else self.restored


def e_step(X, y, sample_weight, gates, experts, xp, routing=_SOFT_EM):
    """Responsibilities for the M-step and the penalised objective.

    ``log r_ij = log pi_j(x_i) + log p_j(y_i | x_i) - log p(y_i | x_i)`` for
    soft EM. Truncated EM (``routing.k`` leaves per sample) keeps the ``k``
    largest, renormalised: its objective is the truncated bound
    ``sum_i w_i log sum_{j in S_i} pi_j(x_i) p_j(y_i | x_i)`` with ``S_i``
    those ``k`` leaves, a lower bound of the log-likelihood that neither
    step can decrease. Stochastic EM draws one leaf per sample; its
    objective is the log-likelihood.

    Runs over chunks of rows (see the module's docstring); the random draws
    of gate noise and stochastic EM are made for all samples at once, so
    that they do not depend on the chunking.

    Returns
    -------
    resp : array of shape (n_leaves, n_samples)
        ``w_i r_ij``, in ``X``'s dtype; 0 where a leaf gets no
        responsibility.
    objective : float
        ``(sum_i w_i log-likelihood_i - penalties) / sum_i w_i``.
    """
    n, n_leaves = X.shape[0], gates.n_leaves
    k = routing.k
    stochastic = routing.algorithm == "stochastic"
    truncated = k is not None and k < n_leaves and not stochastic
    noise = uniform = None
    if truncated and routing.gate_noise > 0:
        noise = routing.gate_noise * routing.normal((n_leaves, n), X, xp)
    if stochastic:
        uniform = routing.uniform(n, X, xp)
    balance = gates.balance > 0
    chunks = row_chunks(n, n_leaves * (getattr(experts, "n_classes", None) or 1) + 2)
    resp_chunks, total = [], 0.0
    importance = 0.0
    for rows in chunks:
        # one chunk: the arrays themselves, which banks may recognise
        whole = len(chunks) == 1
        X_rows, y_rows = (X, y) if whole else (X[rows, :], y[rows])
        weight = sample_weight if whole else sample_weight[rows]
        log_prior = gates.log_prior(X_rows, xp)
        log_joint = log_prior + experts.log_likelihood(X_rows, y_rows, xp)
        if truncated:
            minus_inf = xp.full_like(log_joint, -xp.inf)
            kept = xp.where(top_k_mask(log_joint, k, xp), log_joint, minus_inf)
            log_norm = logsumexp(kept, 0, xp)
            if noise is not None:
                noisy = log_joint + (noise if whole else noise[:, rows])
                kept = xp.where(top_k_mask(noisy, k, xp), log_joint, minus_inf)
                log_resp = kept - logsumexp(kept, 0, xp)[None, :]
            else:
                log_resp = kept - log_norm[None, :]
        else:
            log_norm = logsumexp(log_joint, 0, xp)
            log_resp = log_joint - log_norm[None, :]
            if stochastic:
                draws = uniform if whole else uniform[rows]
                log_resp = _sample_leaves(log_resp, draws, xp)
        weight = wide(weight, xp)
        total += float(xp.sum(weight * log_norm))
        if balance:
            importance = importance + xp.exp(log_prior) @ weight
        resp_chunks.append(xp.astype(xp.exp(log_resp) * weight[None, :], X.dtype))
    resp = resp_chunks[0] if len(resp_chunks) == 1 else xp.concat(resp_chunks, axis=1)
    total_weight = float(xp.sum(wide(sample_weight, xp)))
    penalty = (
        gates.penalty(xp)
        + gates.importance_penalty(importance, total_weight, xp)
        + experts.penalty(xp)
    )
    objective = (total - penalty) / total_weight
    if not math.isfinite(objective):
        raise FloatingPointError(
            "EM produced a non-finite log-likelihood. Try increasing "
            "min_variance, gate_alpha or expert_alpha, or removing extreme "
            "values from the data."
        )
    return resp, objective


def m_step(X, y, sample_weight, resp, gates, experts, xp, outer=None):
    """Fit every gate and every expert to the weighted posteriors ``resp``.

    ``outer``: the outer products of ``X``'s rows, kept for the whole fit
    when they fit in memory (``outer_products``), else None.
    """
    gates.fit(X, resp, xp, outer, sample_weight=sample_weight)
    experts.fit(X, y, resp, xp, outer)


def _snapshot(gates, experts):
    return gates.get_state(), experts.get_state()


def _restore(state, gates, experts):
    gates.set_state(state[0])
    experts.set_state(state[1])


def run_em(
    X,
    y,
    sample_weight,
    gates,
    experts,
    *,
    resp_init,
    max_iter,
    tol,
    xp,
    verbose=0,
    objective_offset=0.0,
    routing=_SOFT_EM,
    drop_rtol=None,
):
    """Run EM in place on ``gates`` and ``experts``; they end at the best iterate.

    Parameters
    ----------
    X : array of shape (n_samples, n_params)
        Inputs with the intercept column.
    y : array of shape (n_samples,)
    sample_weight : array of shape (n_samples,)
    gates, experts : components
        Their current parameters are the starting point, unless
        ``resp_init`` is given.
    resp_init : array of shape (n_leaves, n_samples) or None
        Responsibilities that the first M-step turns into gates and experts.
    max_iter : int
        Largest number of EM iterations; 0 only initialises.
    tol : float
        Convergence threshold on the change of the objective.
    verbose : int
        0 silent; 1 a line every ``_PROGRESS_SECONDS`` at most; 2 a line
        per iteration (objective, change, seconds per iteration).
    objective_offset : float
        Added to the objective in what is printed and returned (the change
        of units of a standardised target).
    routing : TrainingRouting
        The variant of the E-step; soft EM by default.
    drop_rtol : float or None
        Relative decrease of the objective taken for round-off; by default
        that of ``X``'s dtype (``drop_tolerance``).

    Returns
    -------
    monitor : ConvergenceMonitor
    """
    stochastic = routing.algorithm == "stochastic"
    monitor = ConvergenceMonitor(
        tol=tol, patience=_STOCHASTIC_PATIENCE if stochastic else None
    )
    if drop_rtol is None:
        drop_rtol = drop_tolerance(str(X.dtype).rpartition(".")[-1])
    # Whether the objective can decrease in exact arithmetic: a refit of a
    # learner or a random E-step may lower it.
    monotone = experts.monotone and routing.monotone
    outer = outer_products(X, xp)
    if resp_init is not None:
        resp = resp_init * xp.astype(sample_weight, resp_init.dtype)[None, :]
        m_step(X, y, sample_weight, resp, gates, experts, xp, outer)
    resp, objective = e_step(X, y, sample_weight, gates, experts, xp, routing)
    monitor.report(objective + objective_offset)
    # Non-monotone EM: the best objective and a snapshot of its parameters.
    best = (monitor.history[-1], _snapshot(gates, experts))
    highest = monitor.history[-1]
    last_print = time.perf_counter()
    for n_iter in range(1, max_iter + 1):
        start = time.perf_counter()
        if monotone:  # the parameters to go back to if this step decreases
            previous_state = _snapshot(gates, experts)
        m_step(X, y, sample_weight, resp, gates, experts, xp, outer)
        resp, objective = e_step(X, y, sample_weight, gates, experts, xp, routing)
        monitor.report(objective + objective_offset)
        current, previous = monitor.history[-1], monitor.history[-2]
        now = time.perf_counter()
        if verbose >= 2 or (verbose and now - last_print > _PROGRESS_SECONDS):
            print(
                f"  iteration {n_iter:4d}  objective {current:.6f}  "
                f"change {current - previous:+.3e}  {now - start:.3f} s/iteration",
                flush=True,
            )
            last_print = now
        if monotone:
            # a change within round-off keeps the latest iterate; a larger
            # decrease (below the highest objective so far) stops EM
            if highest - current > drop_rtol * max(1.0, abs(highest)):
                monitor.decreased = (n_iter, highest - current)
                monitor.restored = previous
                _restore(previous_state, gates, experts)
                break
            highest = max(highest, current)
        elif current > best[0]:
            best = (current, _snapshot(gates, experts))
        if monitor.converged:
            break
    if not monotone and best[0] > monitor.history[-1]:
        monitor.restored = best[0]
        _restore(best[1], gates, experts)
    return monitor
