"""The EM loop over a gate tree and a bank of experts.

One function owns EM for every model of the library: an optional M-step from
given responsibilities (initialisation), then E-step, M-step, bookkeeping and
the convergence test, until the change of the penalised mean log-likelihood
is below ``tol`` or ``max_iter`` iterations have run. It knows nothing of
scikit-learn's validation nor of which experts it drives: the gates and the
experts only need ``fit``, ``log_likelihood``/``log_prior`` and ``penalty``.
"""

import copy
import math
import time
from dataclasses import dataclass, field

from ._array_api import logsumexp
from ._solvers import outer_products


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
        When the experts' M-step may lower the objective (learner experts)
        and an earlier iterate was better than the last, EM returns that
        iterate: its objective.
    """

    tol: float
    history: list = field(default_factory=list)
    restored: float | None = None

    def report(self, objective):
        self.history.append(objective)

    @property
    def n_iter(self):
        return max(len(self.history) - 1, 0)

    @property
    def converged(self):
        return (
            len(self.history) > 1
            and abs(self.history[-1] - self.history[-2]) < self.tol
        )

    @property
    def objective(self):
        """The objective of the parameters EM returns."""
        return self.history[-1] if self.restored is None else self.restored


def e_step(X, y, sample_weight, gates, experts, xp):
    """Posterior over leaves and the penalised objective.

    ``log r_ij = log pi_j(x_i) + log p_j(y_i | x_i) - log p(y_i | x_i)``.

    Returns
    -------
    log_resp : array of shape (n_leaves, n_samples)
    objective : float
        ``(sum_i w_i log p(y_i | x_i) - penalties) / sum_i w_i``.
    """
    log_joint = gates.log_prior(X, xp) + experts.log_likelihood(X, y, xp)
    log_norm = logsumexp(log_joint, 0, xp)
    log_resp = log_joint - log_norm[None, :]
    total = float(xp.sum(sample_weight * log_norm))
    penalty = gates.penalty(xp) + experts.penalty(xp)
    objective = (total - penalty) / float(xp.sum(sample_weight))
    if not math.isfinite(objective):
        raise FloatingPointError(
            "EM produced a non-finite log-likelihood. Try increasing "
            "min_variance, gate_alpha or expert_alpha, or scale the input data."
        )
    return log_resp, objective


def m_step(X, y, resp, gates, experts, xp, outer=None):
    """Fit every gate and every expert to the weighted posteriors ``resp``.

    ``outer``: the outer products of ``X``'s rows, kept for the whole fit
    when they fit in memory (``outer_products``), else None.
    """
    gates.fit(X, resp, xp, outer)
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

    Returns
    -------
    monitor : ConvergenceMonitor
    """
    monitor = ConvergenceMonitor(tol=tol)
    start = time.perf_counter()
    # Experts whose refit may lower the objective: keep the best iterate.
    keep_best = not experts.monotone
    best = None
    outer = outer_products(X, xp)
    if resp_init is not None:
        resp = resp_init * sample_weight[None, :]
        m_step(X, y, resp, gates, experts, xp, outer)
    log_resp, objective = e_step(X, y, sample_weight, gates, experts, xp)
    monitor.report(objective + objective_offset)
    for n_iter in range(1, max_iter + 1):
        if keep_best and (best is None or monitor.history[-1] > best[0]):
            best = (monitor.history[-1], copy.deepcopy((gates.coef, experts.__dict__)))
        resp = xp.exp(log_resp) * sample_weight[None, :]
        m_step(X, y, resp, gates, experts, xp, outer)
        log_resp, objective = e_step(X, y, sample_weight, gates, experts, xp)
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
