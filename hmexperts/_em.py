"""The EM loop over a gate tree and a bank of experts.

One function owns EM for every model of the library: an optional M-step from
given responsibilities (initialisation), then E-step, M-step, bookkeeping and
the convergence test, until the change of the penalised mean log-likelihood
is below ``tol`` or ``max_iter`` iterations have run. It knows nothing of
scikit-learn's validation nor of which experts it drives: the gates and the
experts only need ``fit``, ``log_likelihood``/``log_prior`` and ``penalty``.

The E-step comes in the variants of ``TrainingRouting``: soft EM (every
leaf's posterior), truncated EM (the ``k`` largest posteriors of every
sample, renormalised; ``k = 1`` is hard or classification EM) and stochastic
EM (one leaf per sample drawn from its posterior).
"""

import copy
import math
import time
from dataclasses import dataclass, field

from ._array_api import device, logsumexp
from ._solvers import outer_products

# Stochastic EM: stop when the best objective has not improved by ``tol``
# over this many iterations.
_STOCHASTIC_PATIENCE = 10


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
        return xp.asarray(noise, dtype=like.dtype, device=device(like))

    def uniform(self, n, like, xp):
        draws = self.random_state.uniform(size=n)
        return xp.asarray(draws, dtype=like.dtype, device=device(like))


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


def _sample_leaves(log_resp, routing, xp):
    """One leaf per sample drawn from its posterior, as log responsibilities
    (0 at the drawn leaf, ``-inf`` elsewhere)."""
    cumulative = xp.cumulative_sum(xp.exp(log_resp), axis=0)
    u = routing.uniform(log_resp.shape[1], log_resp, xp) * cumulative[-1, :]
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
        When the experts' M-step or the E-step may lower the objective
        (learner experts, stochastic EM, gate noise) and an earlier iterate
        was better than the last, EM returns that iterate: its objective.
    patience : int or None
        Stochastic EM: converged when the best objective has not risen by
        ``tol`` in the last ``patience`` iterations.
    """

    tol: float
    history: list = field(default_factory=list)
    restored: float | None = None
    patience: int | None = None

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

    Returns
    -------
    log_resp : array of shape (n_leaves, n_samples)
        ``-inf`` where a leaf gets no responsibility.
    objective : float
        ``(sum_i w_i log-likelihood_i - penalties) / sum_i w_i``.
    """
    log_prior = gates.log_prior(X, xp)
    log_joint = log_prior + experts.log_likelihood(X, y, xp)
    n_leaves = log_joint.shape[0]
    k = routing.k
    truncated = k is not None and k < n_leaves and routing.algorithm != "stochastic"
    if truncated:
        kept = xp.where(
            top_k_mask(log_joint, k, xp), log_joint, xp.full_like(log_joint, -xp.inf)
        )
        log_norm = logsumexp(kept, 0, xp)
        if routing.gate_noise > 0:
            noisy = log_joint + routing.gate_noise * routing.normal(
                log_joint.shape, log_joint, xp
            )
            keep = top_k_mask(noisy, k, xp)
            kept = xp.where(keep, log_joint, xp.full_like(log_joint, -xp.inf))
            log_resp = kept - logsumexp(kept, 0, xp)[None, :]
        else:
            log_resp = kept - log_norm[None, :]
    else:
        log_norm = logsumexp(log_joint, 0, xp)
        log_resp = log_joint - log_norm[None, :]
        if routing.algorithm == "stochastic":
            log_resp = _sample_leaves(log_resp, routing, xp)
    total = float(xp.sum(sample_weight * log_norm))
    penalty = (
        gates.penalty(xp)
        + gates.balance_penalty(log_prior, sample_weight, xp)
        + experts.penalty(xp)
    )
    objective = (total - penalty) / float(xp.sum(sample_weight))
    if not math.isfinite(objective):
        raise FloatingPointError(
            "EM produced a non-finite log-likelihood. Try increasing "
            "min_variance, gate_alpha or expert_alpha, or scale the input data."
        )
    return log_resp, objective


def m_step(X, y, sample_weight, resp, gates, experts, xp, outer=None):
    """Fit every gate and every expert to the weighted posteriors ``resp``.

    ``outer``: the outer products of ``X``'s rows, kept for the whole fit
    when they fit in memory (``outer_products``), else None.
    """
    gates.fit(X, resp, xp, outer, sample_weight=sample_weight)
    experts.fit(X, y, resp, xp, outer)


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
):
    """Run EM in place on ``gates`` and ``experts``.

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
        0 silent, 1 a line per run, 2 a line per iteration.
    objective_offset : float
        Added to the objective in what is printed and returned (the change
        of units of a standardised target).
    routing : TrainingRouting
        The variant of the E-step; soft EM by default.

    Returns
    -------
    monitor : ConvergenceMonitor
    """
    stochastic = routing.algorithm == "stochastic"
    monitor = ConvergenceMonitor(
        tol=tol, patience=_STOCHASTIC_PATIENCE if stochastic else None
    )
    start = time.perf_counter()
    # A refit or an E-step that may lower the objective: keep the best iterate.
    keep_best = not (experts.monotone and routing.monotone)
    best = None
    outer = outer_products(X, xp)
    if resp_init is not None:
        resp = resp_init * sample_weight[None, :]
        m_step(X, y, sample_weight, resp, gates, experts, xp, outer)
    log_resp, objective = e_step(X, y, sample_weight, gates, experts, xp, routing)
    monitor.report(objective + objective_offset)
    for n_iter in range(1, max_iter + 1):
        if keep_best and (best is None or monitor.history[-1] > best[0]):
            best = (monitor.history[-1], copy.deepcopy((gates.coef, experts.__dict__)))
        resp = xp.exp(log_resp) * sample_weight[None, :]
        m_step(X, y, sample_weight, resp, gates, experts, xp, outer)
        log_resp, objective = e_step(X, y, sample_weight, gates, experts, xp, routing)
        monitor.report(objective + objective_offset)
        if verbose >= 2:
            current, previous = monitor.history[-1], monitor.history[-2]
            print(
                f"  Iteration {n_iter}\t objective {current:.6f}\t"
                f" change {current - previous:.3e}"
            )
        if monitor.converged:
            break
    if best is not None and best[0] > monitor.history[-1]:
        monitor.restored = best[0]
        gates.coef, state = best[1]
        experts.__dict__.update(state)
    if verbose >= 1:
        state = "converged" if monitor.converged else "did not converge"
        print(
            f"EM {state} after {monitor.n_iter} iterations in "
            f"{time.perf_counter() - start:.2f}s: objective {monitor.objective:.6f}"
        )
    return monitor
