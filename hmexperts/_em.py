"""The EM loop over a gate tree and a bank of experts, in passes over chunks.

One function owns EM for every model of the library. Every step is a *pass*
over the data in chunks of rows (``InMemoryData`` here; a Dask array's
blocks elsewhere): for every chunk the E-step gives the responsibilities,
the components add up their sufficient statistics (``_components``), and
the chunk's statistics are summed with the others'. No per-sample array
outlives its chunk. The M-step then reads only the summed statistics.

One EM iteration is one pass when all goes well: the pass at the new
parameters is also the E-step of the next iteration, and it gives the
objective that decides whether the iteration is accepted. The gates' and
softmax experts' M-step is one Newton step from the current coefficients;
if the objective went down, the step is halved (``shrink``) and the pass
repeated. With the built-in experts the objective cannot go down in exact
arithmetic; a decrease beyond ``drop_tolerance()`` after all halvings is
numerical trouble: EM stops, returns the iterate before it, and the monitor
reports it. Learner experts, stochastic EM and gate noise may lower the
objective: EM keeps their best iterate.

The first M-step, from given responsibilities (the k-means start, or the
user's), runs Newton's method on those fixed targets, one pass per step
(``NewtonComponent.refine``).

The E-step comes in the variants of ``TrainingRouting``: soft EM (every
leaf's posterior), truncated EM (the ``k`` largest posteriors of every
sample, renormalised; ``k = 1`` is hard or classification EM) and stochastic
EM (one leaf per sample drawn from its posterior). Per-sample temporaries
are float64 and the objective is summed in float64.
"""

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ._array_api import device, is_numpy_namespace, logsumexp, on_gpu, wide
from ._components import Chunk, add_stats, scale_stats
from ._routing import leaves_per_sample, top_k_mask
from ._scaling import sample_rows
from ._solvers import outer_products, row_chunks

# Stochastic EM: stop when the best objective has not improved by ``tol``
# over this many iterations.
_STOCHASTIC_PATIENCE = 10
# verbose=1: a progress line at least this often (seconds) while EM runs.
_PROGRESS_SECONDS = 5.0
# A decrease of the objective (a mean log-likelihood per sample) larger than
# this, relative to max(1, |objective|), is not round-off: responsibilities,
# sums and the objective are float64 whatever the data's dtype, and the
# largest decrease measured over 100 random problems of 100 iterations
# (float32 ones with a collinear column and log-normal weights, sigma 3 to 5)
# is of the order of 1e-15 (benchmarks/study_monotonicity.py).
_DROP_RTOL = 1e-9
# Halvings of the Newton steps of one EM iteration before a decrease counts.
_MAX_SHRINKS = 30
# Rows that the Newton refinement of the first M-step reads, at most (data in
# memory): an evenly strided subset. The refinement only makes EM's start,
# and EM then reads every row; at n=1e6 its passes over all rows took a
# quarter of a fit (benchmarks/results/refine_rows.txt).
_REFINE_ROWS = 8192


def drop_tolerance():
    """Relative decrease of the objective that EM takes for round-off."""
    return _DROP_RTOL


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
    seed : int or None
        Seed of the draws of stochastic EM and of the gate noise: a chunk's
        draws in a pass come from ``(seed, pass, first row)``, so that they
        do not depend on where, or in which order, the chunks are read.
    """

    algorithm: str = "em"
    top_k: int | None = None
    gate_noise: float = 0.0
    seed: int | None = None

    @property
    def k(self):
        """Leaves kept per sample, or None for all."""
        return leaves_per_sample(self.top_k, self.algorithm == "hard")

    @property
    def monotone(self):
        """Whether the E-step is deterministic, so that EM cannot go down."""
        return self.algorithm != "stochastic" and not self.gate_noise > 0

    def generator(self, pass_index, chunk):
        """The random generator of ``chunk``'s draws in pass ``pass_index``."""
        return np.random.default_rng([self.seed or 0, pass_index, chunk.rows.start])


_SOFT_EM = TrainingRouting()


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
    passes : list
        One entry per pass over the data (``len(passes)`` counts them).
    initial_passes : int
        The passes of the first M-step, from given responsibilities.
    stats : dict or None
        The statistics of the last pass, when they are those of the
        parameters EM returns (None when it restored an earlier iterate):
        what a stream that continues the fit starts from.
    """

    tol: float
    history: list = field(default_factory=list)
    restored: float | None = None
    patience: int | None = None
    decreased: tuple | None = None
    passes: list = field(default_factory=list)
    initial_passes: int = 0
    stats: dict | None = None

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


class InMemoryData:
    """Arrays in memory, read in chunks of rows for EM's passes.

    Parameters
    ----------
    X : array of shape (n_samples, n_params)
        Standardised inputs with the intercept column.
    y : array of shape (n_samples,)
    sample_weight : array of shape (n_samples,)
    xp : namespace
    width : int
        Elements per row of the widest per-chunk temporary (sets the
        chunk's number of rows, ``row_chunks``).
    init : array of shape (n_samples, n_leaves) or None
        Initial responsibilities given by the user, read with the chunks.
    n_threads : int
        Threads that a pass spreads its chunks over (NumPy arrays only:
        NumPy releases the GIL in its array operations). The chunks'
        statistics are summed in the chunks' order whatever the threads,
        so the sums do not depend on ``n_threads``.
    """

    def __init__(self, X, y, sample_weight, xp, width, init=None, n_threads=1):
        self.X, self.y, self.sample_weight = X, y, wide(sample_weight, xp)
        self.xp = xp
        self.init = init
        self.n_threads = n_threads if is_numpy_namespace(xp) else 1
        self.n_samples = X.shape[0]
        # X is the same in every pass: its rows' outer products, which every
        # Gram matrix and Newton step needs, are made once if they fit
        self.outer = outer_products(X, xp)
        self.width = width
        self.slices = row_chunks(self.n_samples, width, on_gpu(X))

    def subset(self, rows, init=None, weight=None):
        """The data of ``rows`` (an index array), with the initial
        responsibilities ``init`` (n_rows, n_leaves) and the sample weights
        ``weight`` (n_rows,) if given."""
        xp = self.xp
        rows = xp.asarray(rows, device=device(self.X))
        part = InMemoryData.__new__(InMemoryData)
        part.xp = xp
        part.X, part.y = xp.take(self.X, rows, axis=0), xp.take(self.y, rows, axis=0)
        part.sample_weight = (
            xp.take(self.sample_weight, rows, axis=0)
            if weight is None
            else xp.asarray(weight, dtype=xp.float64, device=device(self.X))
        )
        part.init = init
        part.n_samples = part.X.shape[0]
        part.outer = None if self.outer is None else xp.take(self.outer, rows, axis=0)
        part.slices = row_chunks(part.n_samples, self.width, on_gpu(part.X))
        part.n_threads, part.width = self.n_threads, self.width
        return part

    def chunks(self):
        """The chunks of one pass, in order."""
        if len(self.slices) == 1:  # the arrays themselves, which banks may know
            yield Chunk(
                self.X,
                self.y,
                self.sample_weight,
                self.slices[0],
                self.outer,
                self.init,
            )
            return
        for rows in self.slices:
            outer = None if self.outer is None else self.outer[rows, :]
            init = None if self.init is None else self.init[rows, :]
            yield Chunk(
                self.X[rows, :],
                self.y[rows, ...],
                self.sample_weight[rows],
                rows,
                outer,
                init,
                # not kept for the fit: made once per chunk, on first use,
                # for the gates and the experts to share
                outer_namespace=self.xp if outer is None else None,
            )

    def map_reduce(self, function):
        """``function(chunk)`` summed over the chunks (``add_stats``), in
        their order; on ``n_threads`` threads if there are several chunks."""
        total = None
        threads = min(self.n_threads, len(self.slices))
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                for stats in pool.map(function, self.chunks()):
                    total = add_stats(total, stats)
            return total
        for chunk in self.chunks():
            total = add_stats(total, function(chunk))
        return total


def e_step(
    chunk,
    gates,
    experts,
    xp,
    routing=_SOFT_EM,
    pass_index=0,
    log_gates=None,
    kept_experts=None,
):
    """Responsibilities of one chunk and its share of the objective.

    ``log r_ij = log pi_j(x_i) + log p_j(y_i | x_i) - log p(y_i | x_i)`` for
    soft EM. Truncated EM (``routing.k`` leaves per sample) keeps the ``k``
    largest, renormalised: its objective is the truncated bound
    ``sum_i w_i log sum_{j in S_i} pi_j(x_i) p_j(y_i | x_i)`` with ``S_i``
    those ``k`` leaves, a lower bound of the log-likelihood that neither
    step can decrease. Stochastic EM draws one leaf per sample; its
    objective is the log-likelihood.

    Returns
    -------
    resp : array of shape (n_leaves, n_rows)
        ``w_i r_ij``, float64; 0 where a leaf gets no responsibility.
    log_norm : array of shape (n_rows,)
        ``log p(y_i | x_i)`` (truncated: over the kept leaves).
    log_prior : array of shape (n_leaves, n_rows)

    ``log_gates``, if a list, is set to the gates' log-probabilities and
    probabilities, a pair per batch of the tree (``GateTree.log_prior``'s
    ``keep``), for the gates' statistics (``GateTree.accumulate``);
    ``kept_experts``, if a list, to what a bank that ``shares_probabilities``
    keeps for its statistics.
    """
    if log_gates is None:
        log_prior = gates.log_prior(chunk.X, xp)
    else:
        log_prior = gates.log_prior(chunk.X, xp, keep=log_gates)
    if kept_experts is None:
        log_expert = experts.log_likelihood(chunk.X, chunk.y, xp)
    else:
        log_expert = experts.log_likelihood(chunk.X, chunk.y, xp, keep=kept_experts)
    log_joint = log_prior + log_expert
    n_leaves, n_rows = log_joint.shape
    k = routing.k
    stochastic = routing.algorithm == "stochastic"
    if k is not None and k < n_leaves and not stochastic:
        minus_inf = xp.full_like(log_joint, -xp.inf)
        kept = xp.where(top_k_mask(log_joint, k, xp), log_joint, minus_inf)
        log_norm = logsumexp(kept, 0, xp)
        if routing.gate_noise > 0:
            noise = routing.generator(pass_index, chunk).standard_normal(
                (n_leaves, n_rows)
            )
            noise = xp.asarray(routing.gate_noise * noise, device=device(log_joint))
            kept = xp.where(top_k_mask(log_joint + noise, k, xp), log_joint, minus_inf)
            log_resp = kept - logsumexp(kept, 0, xp)[None, :]
        else:
            log_resp = kept - log_norm[None, :]
    elif stochastic:
        log_norm = logsumexp(log_joint, 0, xp)
        log_resp = log_joint - log_norm[None, :]
        uniform = routing.generator(pass_index, chunk).uniform(size=n_rows)
        uniform = xp.asarray(uniform, device=device(log_joint))
        log_resp = _sample_leaves(log_resp, uniform, xp)
    else:  # soft EM: the posteriors and log p(y | x) from one exponential
        top = xp.max(log_joint, axis=0)
        if not bool(xp.all(xp.isfinite(top))):  # as logsumexp: -inf stays
            top = xp.where(xp.isfinite(top), top, xp.zeros_like(top))
        scaled = xp.exp(log_joint - top[None, :])
        total = xp.sum(scaled, axis=0)
        log_norm = xp.log(total) + top
        return scaled * (chunk.weight / total)[None, :], log_norm, log_prior
    return xp.exp(log_resp) * chunk.weight[None, :], log_norm, log_prior


def _chunk_stats(
    chunk,
    gates,
    experts,
    xp,
    routing,
    pass_index,
    resp_init,
    parts=("gates", "experts"),
):
    """One chunk's share of a pass: the log-likelihood, the weight, the
    importance of the leaves (for load balance) and the statistics of the
    components named in ``parts``. With ``resp_init`` (a function of the
    chunk) the responsibilities are given, and there is no E-step."""
    log_gates = kept_experts = None
    if resp_init is not None:
        resp = resp_init(chunk, xp) * chunk.weight[None, :]
        stats = {}
    else:
        # the E-step's gate probabilities are those the gates' sums need
        log_gates = [] if "gates" in parts else None
        shared = "experts" in parts and experts.shares_probabilities
        kept_experts = [] if shared else None
        resp, log_norm, log_prior = e_step(
            chunk, gates, experts, xp, routing, pass_index, log_gates, kept_experts
        )
        stats = {
            "log_likelihood": xp.sum(chunk.weight * log_norm),
            "weight": xp.sum(chunk.weight),
        }
        if gates.balance > 0:
            stats["importance"] = xp.exp(log_prior) @ chunk.weight
    if "gates" in parts:
        if log_gates is None:
            stats["gates"] = gates.accumulate(None, chunk, resp, xp)
        else:
            stats["gates"] = gates.accumulate(
                None, chunk, resp, xp, log_gates=log_gates
            )
    if "experts" in parts:
        if kept_experts:
            stats["experts"] = experts.accumulate(
                None, chunk, resp, xp, kept=kept_experts
            )
        else:
            stats["experts"] = experts.accumulate(None, chunk, resp, xp)
    return stats


def statistics(data, gates, experts, xp, routing=_SOFT_EM, pass_index=0):
    """One pass over ``data``: the E-step and the components' statistics at
    their current parameters, summed over the chunks."""
    return data.map_reduce(
        lambda chunk: _chunk_stats(chunk, gates, experts, xp, routing, pass_index, None)
    )


def objective(stats, gates, experts, xp):
    """``(sum_i w_i log-likelihood_i - penalties) / sum_i w_i`` from a pass's
    statistics and the components' penalties; ``-inf`` if not finite (a
    Newton step too long may overflow: EM then halves it)."""
    total = float(stats["weight"])
    penalty = gates.penalty(xp) + experts.penalty(xp)
    if gates.balance > 0:
        penalty += gates.importance_penalty(stats["importance"], total, xp)
    value = (float(stats["log_likelihood"]) - penalty) / total
    return value if math.isfinite(value) else -math.inf


def _check_finite(value):
    if not math.isfinite(value):
        raise FloatingPointError(
            "EM produced a non-finite log-likelihood. Try increasing "
            "min_variance, gate_alpha or expert_alpha, or removing extreme "
            "values from the data."
        )


def _snapshot(gates, experts):
    return gates.get_state(), experts.get_state()


def _restore(state, gates, experts):
    gates.set_state(state[0])
    experts.set_state(state[1])


def _refine_sample(data, xp):
    """The rows the first M-step's Newton refinement reads: ``data`` itself,
    or, for data in memory of more than ``_REFINE_ROWS`` rows, every k-th
    row, their weights scaled to the same total (so that the penalties
    weigh as much against them)."""
    if not isinstance(data, InMemoryData) or data.n_samples <= _REFINE_ROWS:
        return data
    rows = np.arange(data.n_samples)[sample_rows(data.n_samples, _REFINE_ROWS)]
    index = xp.asarray(rows, device=device(data.X))
    weight = xp.take(data.sample_weight, index, axis=0)
    weight = weight * (xp.sum(data.sample_weight) / xp.sum(weight))
    init = None if data.init is None else xp.take(data.init, index, axis=0)
    return data.subset(rows, init=init, weight=weight)


def initial_m_step(data, gates, experts, xp, resp_init, passes=None):
    """The first M-step, from the responsibilities ``resp_init``: the exact
    components at once, the Newton ones by Newton's method on these fixed
    targets, one pass per step (over their statistics only; at most
    ``_REFINE_ROWS`` rows of data in memory, ``_refine_sample``).
    ``passes``, if given, counts them."""
    components = {"gates": gates, "experts": experts}
    passes = [] if passes is None else passes

    def make_pass(parts):
        passes.append(1)
        return data.map_reduce(
            lambda chunk: _chunk_stats(
                chunk, gates, experts, xp, _SOFT_EM, 0, resp_init, parts
            )
        )

    stats = make_pass(tuple(components))
    refining = []
    for name, component in components.items():
        if hasattr(component, "refine"):
            refining.append(name)
        else:
            component.m_step(stats[name], xp)
    sample = _refine_sample(data, xp)
    if refining and sample is not data:
        data = sample  # make_pass's from here on
        stats = make_pass(tuple(refining))
    active = [name for name in refining if components[name].refine(stats[name], xp)]
    while active:
        stats = make_pass(tuple(active))
        active = [name for name in active if components[name].refine(stats[name], xp)]


# SQUAREM extrapolates only where EM is slow: when the second EM step of a
# cycle gains at least _SQUAREM_MIN_RATE times the first's (near a maximum
# EM's gains shrink by about the square of its rate of convergence; where
# they shrink faster, an extrapolation gains less than the pass it costs).
# A rejected proposal is pulled back halfway to plain EM at most
# _SQUAREM_BACKTRACKS times. Chosen on benchmarks/bench_acceleration.py.
_SQUAREM_MIN_RATE = 0.5
_SQUAREM_BACKTRACKS = 1


class Squarem:
    """SQUAREM, the squared iterative method of Varadhan & Roland (2008),
    scheme S3, over the components' free parameters.

    From ``theta_0`` two EM steps give ``theta_1`` and ``theta_2``; with
    ``r = theta_1 - theta_0``, ``v = theta_2 - 2 theta_1 + theta_0`` and the
    step ``a = ||r|| / ||v||``, the proposal is ``theta_0 + 2 a r + a^2 v``,
    which is ``theta_2`` at ``a = 1``: for a linearly converging EM it
    cancels the slowest direction of the error. EM keeps the proposal only
    if its objective is at least ``theta_2``'s; otherwise ``a`` moves
    halfway to 1 and the proposal is tried again (``_SQUAREM_BACKTRACKS``
    times), and then EM goes on from ``theta_2``. So the objective never
    decreases, as in plain EM; a proposal costs one pass over the data.
    """

    def __init__(self, components, xp):
        self.components = components
        self.xp = xp
        self.points = []

    def _free(self):
        parts = [c.free_parameters(self.xp) for c in self.components]
        self._sizes = [len(p) for p in parts]
        return [a for p in parts for a in p]

    def _set(self, free):
        i = 0
        for component, k in zip(self.components, self._sizes, strict=True):
            component.set_free_parameters(free[i : i + k], self.xp)
            i += k

    def restart(self):
        """Start a cycle from the current parameters."""
        self.points = [self._free()]

    def record(self):
        """Record the parameters after an EM step; True once the cycle has
        its two steps."""
        self.points.append(self._free())
        return len(self.points) == 3

    def first_step(self, objectives):
        """The step length of the cycle's proposal, or None: when EM is
        fast (``objectives``, the cycle's three, gain less than
        ``_SQUAREM_MIN_RATE`` from one step to the next), when ``a <= 1``
        (plain EM) or when it is undefined (``v = 0``)."""
        low, middle, high = objectives
        if high - middle < _SQUAREM_MIN_RATE * (middle - low):
            return None
        xp = self.xp
        theta0, theta1, theta2 = self.points
        self._r = [b - a for a, b in zip(theta0, theta1, strict=True)]
        self._v = [
            c - 2.0 * b + a for a, b, c in zip(theta0, theta1, theta2, strict=True)
        ]
        sr2 = sum(float(xp.sum(d * d)) for d in self._r)
        sv2 = sum(float(xp.sum(d * d)) for d in self._v)
        if not (sv2 > 0 and math.isfinite(sr2 / sv2)):
            return None
        return self._longer(math.sqrt(sr2 / sv2))

    @staticmethod
    def _longer(step):
        return step if step > 1.0 + 1e-3 else None

    def propose(self, step):
        """Set the components at the proposal of step length ``step``."""
        self._set(
            [
                a + (2.0 * step) * d + (step * step) * e
                for a, d, e in zip(self.points[0], self._r, self._v, strict=True)
            ]
        )

    def reject(self, step):
        """The proposal lowered the objective: the next step to try (halfway
        to plain EM), or None."""
        return self._longer(0.5 * (step + 1.0))


def run_em(
    data,
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
    drop_rtol=_DROP_RTOL,
    acceleration=None,
):
    """Run EM in place on ``gates`` and ``experts``; they end at the best iterate.

    Parameters
    ----------
    data : InMemoryData or another source of chunks with ``map_reduce``
    gates, experts : components
        Their current parameters are the starting point, unless
        ``resp_init`` is given.
    resp_init : callable or None
        ``resp_init(chunk, xp)``: the chunk's starting responsibilities,
        shape (n_leaves, n_rows), float64, that the first M-step turns into
        gates and experts (``_init.GivenStart``, ``_init.ClusterStart``).
    max_iter : int
        Largest number of EM iterations; 0 only initialises.
    tol : float
        Convergence threshold on the change of the objective over one EM
        step.
    verbose : int
        0 silent; 1 a line every ``_PROGRESS_SECONDS`` at most; 2 a line
        per iteration (objective, change, passes, seconds).
    objective_offset : float
        Added to the objective in what is printed and returned (the change
        of units of a standardised target).
    routing : TrainingRouting
        The variant of the E-step; soft EM by default.
    drop_rtol : float
        Relative decrease of the objective taken for round-off
        (``drop_tolerance``).
    acceleration : {None, "squarem"}
        ``"squarem"`` extrapolates after every two EM steps (``Squarem``)
        where EM is monotone and every component has free parameters; an
        accepted extrapolation counts as an iteration (it costs a pass, as
        an EM step does). None runs plain EM.

    Returns
    -------
    monitor : ConvergenceMonitor
    """
    stochastic = routing.algorithm == "stochastic"
    monitor = ConvergenceMonitor(
        tol=tol, patience=_STOCHASTIC_PATIENCE if stochastic else None
    )
    passes = monitor.passes

    def make_pass():
        passes.append(1)
        stats = statistics(data, gates, experts, xp, routing, len(passes))
        return stats, objective(stats, gates, experts, xp) + objective_offset

    # Whether the objective can decrease in exact arithmetic: a refit of a
    # learner or a random E-step may lower it.
    monotone = experts.monotone and routing.monotone
    accelerator = None
    components = (gates, experts)
    if acceleration == "squarem" and monotone:
        if all(c.free_parameters(xp) is not None for c in components):
            accelerator = Squarem(components, xp)
    if resp_init is not None:
        initial_m_step(data, gates, experts, xp, resp_init, passes)
    monitor.initial_passes = len(passes)
    stats, current = make_pass()
    _check_finite(current)
    monitor.report(current)
    if accelerator is not None:
        accelerator.restart()
    # Non-monotone EM: the best objective and a snapshot of its parameters.
    best = (current, _snapshot(gates, experts))
    highest = current
    last_print = time.perf_counter()

    def progress(start, before, label):
        nonlocal last_print
        now = time.perf_counter()
        if verbose >= 2 or (verbose and now - last_print > _PROGRESS_SECONDS):
            change = monitor.history[-1] - monitor.history[-2]
            print(
                f"  iteration {monitor.n_iter:4d}  "
                f"objective {monitor.history[-1]:.6f}  "
                f"change {change:+.3e}  {len(passes) - before} "
                f"pass(es)  {now - start:.3f} s/iteration{label}",
                flush=True,
            )
            last_print = now

    while monitor.n_iter < max_iter:
        start, before = time.perf_counter(), len(passes)
        previous_state = _snapshot(gates, experts) if monotone else None
        previous = monitor.history[-1]
        gates.m_step(stats["gates"], xp)
        experts.m_step(stats["experts"], xp)
        stats, current = make_pass()
        if monotone:
            allowed = drop_rtol * max(1.0, abs(highest))
            for _ in range(_MAX_SHRINKS):
                if highest - current <= allowed:
                    break
                # a Newton step too long: halve it (exact M-steps keep theirs)
                if not any([gates.shrink(), experts.shrink()]):
                    break
                stats, current = make_pass()
        _check_finite(current)
        monitor.report(current)
        progress(start, before, "")
        if monotone:
            if highest - current > drop_rtol * max(1.0, abs(highest)):
                monitor.decreased = (monitor.n_iter, highest - current)
                monitor.restored = previous
                _restore(previous_state, gates, experts)
                return monitor
            highest = max(highest, current)
        elif current > best[0]:
            best = (current, _snapshot(gates, experts))
        if monitor.converged:
            break
        # an extrapolation is followed by an EM step, which tests convergence
        if accelerator is None or not accelerator.record():
            continue
        if monitor.n_iter + 1 < max_iter:
            start, before = time.perf_counter(), len(passes)
            em_point = (stats, current, _snapshot(gates, experts))
            step, tries = accelerator.first_step(monitor.history[-3:]), 0
            while step is not None and tries <= _SQUAREM_BACKTRACKS:
                tries += 1
                accelerator.propose(step)
                stats, current = make_pass()
                if current >= highest:
                    break
                step = accelerator.reject(step)
            if step is not None and current >= highest:
                highest = current
                monitor.report(current)
                progress(start, before, f" (extrapolated, step {step:.3g})")
            elif tries:
                stats, current, state = em_point
                _restore(state, gates, experts)
        accelerator.restart()
    if not monotone and best[0] > monitor.history[-1]:
        monitor.restored = best[0]
        _restore(best[1], gates, experts)
    else:
        monitor.stats = stats
    return monitor


def summary_pass(data, gates, experts, xp, routing):
    """Every leaf's share of the responsibilities (``load``) and of the
    prior mass (``importance``) under ``routing``, in one pass."""

    def shares(chunk):
        resp, _, log_prior = e_step(chunk, gates, experts, xp, routing)
        return {
            "load": xp.sum(resp, axis=1),
            "importance": xp.exp(log_prior) @ chunk.weight,
            "weight": xp.sum(chunk.weight),
        }

    total = data.map_reduce(shares)
    return total["load"] / total["weight"], total["importance"] / total["weight"]


# Stepwise EM's step for a batch after t batches: (t + 1) ** -_STEP_EXPONENT,
# in Cappe & Moulines' (2009) range (1/2, 1], where the running statistics
# converge; the first batch of a new stream (t = 0) has step 1.
_STEP_EXPONENT = 0.6


@dataclass
class Stream:
    """The running statistics of stepwise EM on a stream (``partial_fit``).

    Attributes
    ----------
    gates, experts : statistics or None
        The components' running statistics, per unit of weight.
    total_weight : float
        The weight of all the data seen: batches, and a fit the stream
        continues.
    n_batches : int
        The batches seen.
    fit_batches : float
        A fit the stream continues, counted in batches: its weight over the
        first batch's (0 for a new stream).
    weight_factor : float
        The power of two the stream's weights are multiplied by, fixed by
        its start (``_scaling.check_sample_weight``); the penalties are too.
    seed : int or None
        Seed of the random draws of the stream's E-steps (stochastic EM,
        gate noise), drawn when its first step needs it.
    """

    gates: object = None
    experts: object = None
    total_weight: float = 0.0
    n_batches: int = 0
    fit_batches: float = 0.0
    weight_factor: float = 1.0
    seed: int | None = None

    @classmethod
    def continuing(cls, stats, weight_factor=1.0):
        """A stream that continues a fit, from the statistics of its last
        pass (``ConvergenceMonitor.stats``): the fit's data weigh in the
        running statistics as all the weight it saw."""
        weight = float(stats["weight"])
        return cls(
            gates=scale_stats(stats["gates"], 1.0 / weight),
            experts=scale_stats(stats["experts"], 1.0 / weight),
            total_weight=weight,
            weight_factor=weight_factor,
        )

    def step(self, weight):
        """The step of the next batch, of weight ``weight``. A stream that
        continues a fit counts the fit as ``fit_weight / weight`` batches
        (fixed at its first batch), so that the fit is not forgotten."""
        if self.n_batches == 0 and self.total_weight > 0:
            self.fit_batches = max(1.0, self.total_weight / weight)
        return (self.n_batches + self.fit_batches + 1.0) ** -_STEP_EXPONENT


def stepwise_em(data, gates, experts, xp, stream, routing=_SOFT_EM):
    """One step of stepwise EM (Cappe & Moulines, 2009) on a mini-batch.

    The E-step on the batch at the current parameters gives its statistics;
    divided by its weight, they are blended into the stream's running
    statistics with the step ``gamma``; the M-step reads those as if they
    summed all the weight the stream has seen, so that the penalties weigh
    against the data as in a batch fit on it.

    Returns
    -------
    objective : float
        The batch's penalised mean log-likelihood before the step.
    """
    stats = statistics(data, gates, experts, xp, routing, stream.n_batches + 1)
    value = objective(stats, gates, experts, xp)
    _check_finite(value)
    weight = float(stats["weight"])
    gamma = stream.step(weight)
    stream.gates = gates.online_update(
        stream.gates, scale_stats(stats["gates"], 1.0 / weight), gamma, xp
    )
    stream.experts = experts.online_update(
        stream.experts, scale_stats(stats["experts"], 1.0 / weight), gamma, xp
    )
    stream.total_weight += weight
    stream.n_batches += 1
    gates.online_m_step(stream.gates, stream.total_weight, gamma, xp)
    experts.online_m_step(stream.experts, stream.total_weight, gamma, xp)
    return value
