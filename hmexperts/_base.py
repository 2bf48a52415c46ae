"""Shared base of the mixture-of-experts estimators.

The estimators are thin: they validate parameters and data, standardise the
inputs (and the regression target), build the initial responsibilities, run
``n_init`` restarts of the EM loop and keep the best, and expose the fitted
tree in the units of the data. The math lives in the gate tree, the expert
banks and the EM loop; the standardisation in ``_scaling``, the initial
responsibilities in ``_init``, the routing at prediction in ``_routing`` and
the placement on devices in ``_placement``.
"""

import copy
import math
import pickle
import threading
import time
import warnings
from contextlib import ExitStack, contextmanager
from numbers import Integral

import array_api_compat.numpy
import numpy as np
from array_api_compat import array_namespace
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state, check_scalar
from sklearn.utils.metaestimators import available_if
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted, has_fit_parameter, validate_data

from ._array_api import (
    device,
    get_namespace,
    is_numpy_namespace,
    logsumexp,
    to_numpy,
    wide,
)
from ._config import config_context, get_config, thread_limit
from ._dask import (
    ChunkPreparer,
    DaskData,
    DaskInputs,
    check_not_dask_frame,
    encode_labels,
    is_dask_array,
    map_rows,
)
from ._em import (
    InMemoryData,
    Stream,
    TrainingRouting,
    drop_tolerance,
    run_em,
    statistics,
    stepwise_em,
    summary_pass,
)
from ._gates import GateTree
from ._grow import grow_tree
from ._init import GivenStart, check_given, initial_start, start_name
from ._learners import LearnerExperts, _final_step, is_learner
from ._memory import settle_allocator
from ._placement import (
    Placement,
    check_device,
    fit_placement,
    target_to_namespace,
)
from ._routing import (
    PredictionRouting,
    leaves_per_sample,
    prediction_stats,
    route,
    training_stats,
)
from ._scaling import (
    Scaling,
    check_sample_weight,
    make_scaling,
    sample_rows,
    weight_factor,
)
from ._solvers import outer_products
from ._summary import InferenceMixin
from ._tree import Tree
from ._validation import check_int, check_real, resolve_features

_WEIGHTINGS = {"auto", "sample_weight", "threshold", "resample"}
_ACCELERATIONS = ("squarem", None)
_SPLIT_CRITERIA = ("bic", "validation")
_MAX_LEAVES = 4096
_ALGORITHMS = ("em", "hard", "stochastic")
_PRIORITIES = ("gate", "random", "order")
_EXPERT_ATTRIBUTES = (
    "experts_",
    "expert_fallbacks_",
    "expert_coef_",
    "expert_intercept_",
    "expert_variance_",
    "expert_dispersion_",
    "expert_df_",
    "expert_covariance_",
)


def _streamable(estimator):
    """Whether ``partial_fit`` can update ``estimator``: built-in experts (a
    learner is refit on whole leaves) and no load balance (its penalty
    couples every sample)."""
    return not is_learner(estimator) and not estimator.load_balance > 0


@contextmanager
def _unchanged_on_error(estimator):
    """Leave ``estimator``'s fitted state as it was if the block raises (bad
    input found during a pass, for instance)."""
    state = dict(estimator.__dict__)
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(state)
        raise


def _best_run(results):
    """The index of the restart of the highest objective among ``results``
    (gates, experts, monitor, seconds each), the first of equal ones."""
    return max(range(len(results)), key=lambda i: (results[i][2].objective, -i))


def _restart_workers(n_jobs, n_runs, data, xp):
    """The processes that the EMs of ``n_runs`` starts run on: as many as
    ``n_jobs`` gives (joblib's count: None is 1 outside a
    ``joblib.parallel_config``), at most one per start; 1, one EM after
    the other, for one start, for data out of memory (Dask: its own
    workers read the chunks) and off NumPy (one device)."""
    if n_runs < 2 or not isinstance(data, InMemoryData) or not is_numpy_namespace(xp):
        return 1
    return min(effective_n_jobs(n_jobs), n_runs)


def _restart_em(data, gates, experts, resp_init, em_options, config):
    """One start's EM in a joblib worker: its gates and experts (let go of
    the data), monitor, seconds, and, in a worker process, the warnings EM
    raised there (category and message), for the caller to raise again.
    ``config``: the caller's ``hmexperts.get_config()``, which a worker
    process does not inherit."""
    start = time.perf_counter()
    # A worker process runs its tasks in its main thread, the threading
    # backend in other threads: catch_warnings changes the whole process's
    # filters, so only a task in a main thread catches (a thread's warnings
    # reach the caller's filters as they are).
    own_process = threading.current_thread() is threading.main_thread()
    settle_allocator()  # in a worker process, as fit does in the caller's
    data = copy.copy(data)  # the threading backend's tasks share it
    data.outer = outer_products(data.X, em_options["xp"])
    caught = []
    with config_context(**config), ExitStack() as stack:
        if own_process:
            caught = stack.enter_context(warnings.catch_warnings(record=True))
            warnings.simplefilter("always")
        experts.bind(data, em_options["xp"])
        with thread_limit():
            monitor = run_em(
                data, gates, experts, resp_init=resp_init, verbose=0, **em_options
            )
        experts.bind(None, em_options["xp"])
    raised = [(w.category, str(w.message)) for w in caught]
    return gates, experts, monitor, time.perf_counter() - start, raised


def _parallel_restarts(data, runs, workers, em_options):
    """The EMs of the starts ``runs`` (gates, experts, first
    responsibilities) on ``workers`` joblib workers (processes unless a
    ``joblib.parallel_config`` says otherwise), each reading the chunks of
    ``data`` on its share of the threads ``data`` was given: every start's
    gates, experts, monitor and seconds, in the starts' order. Warnings
    raised in a worker process are raised again here."""
    shared = copy.copy(data)
    shared.n_threads = max(1, data.n_threads // workers)
    # the rows' outer products are remade in the worker from the rows:
    # cheaper than handing it (n_params / 2 + 1 times the rows' size) over
    shared.outer = None
    config = get_config()
    try:
        done = Parallel(n_jobs=workers, prefer="processes")(
            delayed(_restart_em)(shared, gates, experts, resp_init, em_options, config)
            for gates, experts, resp_init in runs
        )
    except (pickle.PicklingError, TypeError) as exc:
        if not isinstance(exc, pickle.PicklingError) and "pickle" not in str(exc):
            raise
        raise TypeError(
            f"n_jobs runs the {len(runs)} restarts' EMs on {workers} joblib worker "
            "processes, which receive the experts and return them fitted, "
            f"pickled; that failed ({exc}). Use experts that pickle, n_jobs=None, "
            'or joblib.parallel_config(backend="threading").'
        ) from exc
    for *_, raised in done:
        for category, message in raised:
            warnings.warn(message, category, stacklevel=4)
    return [result[:4] for result in done]


class BaseMixtureOfExperts(InferenceMixin, BaseEstimator):
    """Parameters, validation, restarts and fitted state shared by both tasks.

    A subclass sets ``_is_regression`` and provides the target's handling:
    ``_target_validation_kwargs``, ``_validate_target`` (the target for EM),
    ``_init_columns`` (the target's columns in the initial clustering),
    ``_target_scaling``,
    ``_encode_target``, ``_builtin_experts``, ``_min_variance`` (the
    variance floor, regression only), ``_check_expert``
    (the learner fits the task) and ``_learner_task`` (the task's arguments
    of a bank of learners).
    """

    def __init__(
        self,
        n_experts=2,
        *,
        depth=1,
        tree="balanced",
        max_leaves=8,
        split_criterion="bic",
        validation_fraction=0.2,
        n_split_candidates=4,
        expert=None,
        gate_features=None,
        expert_features=None,
        expert_weighting="auto",
        responsibility_threshold=0.5,
        max_samples_per_expert=None,
        top_k=None,
        pooling="mean",
        capacity_factor=None,
        priority="gate",
        algorithm="em",
        gate_noise=0.0,
        load_balance=0.0,
        gate_alpha=1e-2,
        expert_alpha=1e-2,
        max_iter=100,
        tol=1e-4,
        acceleration="squarem",
        n_init=1,
        n_jobs=None,
        init_params="kmeans",
        random_state=None,
        warm_start=False,
        verbose=0,
        device=None,
    ):
        self.n_experts = n_experts
        self.depth = depth
        self.tree = tree
        self.max_leaves = max_leaves
        self.split_criterion = split_criterion
        self.validation_fraction = validation_fraction
        self.n_split_candidates = n_split_candidates
        self.expert = expert
        self.gate_features = gate_features
        self.expert_features = expert_features
        self.expert_weighting = expert_weighting
        self.responsibility_threshold = responsibility_threshold
        self.max_samples_per_expert = max_samples_per_expert
        self.top_k = top_k
        self.pooling = pooling
        self.capacity_factor = capacity_factor
        self.priority = priority
        self.algorithm = algorithm
        self.gate_noise = gate_noise
        self.load_balance = load_balance
        self.gate_alpha = gate_alpha
        self.expert_alpha = expert_alpha
        self.max_iter = max_iter
        self.tol = tol
        self.acceleration = acceleration
        self.n_init = n_init
        self.n_jobs = n_jobs
        self.init_params = init_params
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.device = device

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # EM runs in the input's array library (learner experts on the host,
        # with the gates and the E-step where the data lie).
        tags.array_api_support = True
        return tags

    # -- validation -----------------------------------------------------------

    def _check_params(self):
        check_int(self.n_experts, "n_experts", min_val=1)
        check_int(self.depth, "depth", min_val=1)
        check_real(
            self.gate_alpha, "gate_alpha", min_val=0, include_boundaries="neither"
        )
        check_real(
            self.expert_alpha,
            "expert_alpha",
            min_val=0,
            include_boundaries="neither",
        )
        check_int(self.max_iter, "max_iter", min_val=0)
        check_real(self.tol, "tol", min_val=0)
        check_int(self.n_init, "n_init", min_val=1)
        if self.n_jobs is not None:
            check_int(self.n_jobs, "n_jobs")
            if self.n_jobs == 0:
                raise ValueError(
                    "n_jobs=0; expected None, a positive number of threads, or "
                    "a negative one (-1: one per CPU)."
                )
        if self.acceleration not in _ACCELERATIONS:
            raise ValueError(
                f"acceleration={self.acceleration!r}; expected one of "
                f"{list(_ACCELERATIONS)}."
            )
        check_scalar(self.verbose, "verbose", (Integral, bool), min_val=0)
        if isinstance(self.expert, str):
            if self.expert not in self._builtin_names:
                raise ValueError(
                    f"expert={self.expert!r} is not a built-in expert; expected one "
                    f"of {list(self._builtin_names)}, None, or a scikit-learn "
                    "learner."
                )
        elif self.expert is not None:
            if not hasattr(self.expert, "fit"):
                raise ValueError(
                    f"expert={self.expert!r} is not a scikit-learn estimator (it has "
                    "no fit method); pass an unfitted learner, or None for the "
                    "built-in expert."
                )
            self._check_expert()
        if self.expert_weighting not in _WEIGHTINGS:
            raise ValueError(
                f"expert_weighting={self.expert_weighting!r}; expected one of "
                f"{sorted(_WEIGHTINGS)}."
            )
        if self.expert_weighting == "sample_weight" and is_learner(self):
            final, _ = _final_step(self.expert)
            if not has_fit_parameter(final, "sample_weight"):
                raise ValueError(
                    f"expert_weighting='sample_weight' but {type(final).__name__}.fit "
                    "takes no sample_weight; use 'auto', 'threshold' or 'resample'."
                )
        check_real(
            self.responsibility_threshold,
            "responsibility_threshold",
            min_val=0,
            max_val=1,
            include_boundaries="right",
        )
        if self.max_samples_per_expert is not None:
            check_int(
                self.max_samples_per_expert,
                "max_samples_per_expert",
                min_val=1,
            )
        if isinstance(self.init_params, str) and self.init_params not in (
            "kmeans",
            "random",
        ):
            raise ValueError(
                f"init_params={self.init_params!r}; expected 'kmeans', 'random' or an "
                "array of responsibilities of shape (n_samples, n_leaves)."
            )
        n_leaves = self._check_tree()
        self._check_routing(n_leaves)
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(
                f"algorithm={self.algorithm!r}; expected one of {list(_ALGORITHMS)}."
            )
        check_real(self.gate_noise, "gate_noise", min_val=0)
        check_real(self.load_balance, "load_balance", min_val=0)
        if self.gate_noise > 0 and self._training_k(n_leaves) is None:
            raise ValueError(
                f"gate_noise={self.gate_noise} acts on the top-k choice of the "
                "E-step, but training keeps every leaf: set top_k < n_leaves or "
                "algorithm='hard', or leave gate_noise=0."
            )
        return n_leaves

    def _shape(self):
        """The gate tree's shape the parameters give: a ``Tree``, or None
        for ``tree="grow"`` (grown by the fit)."""
        if isinstance(self.tree, str):
            if self.tree == "balanced":
                n_leaves = self.n_experts**self.depth
                if n_leaves > _MAX_LEAVES:
                    raise ValueError(
                        f"n_experts={self.n_experts} and depth={self.depth} give "
                        f"{n_leaves} leaves; at most {_MAX_LEAVES} are supported. "
                        "Decrease n_experts or depth."
                    )
                return Tree.balanced(self.n_experts, self.depth)
            if self.tree == "grow":
                return None
            raise ValueError(
                f"tree={self.tree!r}; expected 'balanced', 'grow' or a nested "
                "list of the tree's shape, such as [[0, 1], 2]."
            )
        return Tree.from_nested(self.tree)

    def _check_tree(self):
        """Validate the tree's parameters; the number of leaves (at most,
        for a grown tree)."""
        shape = self._shape()
        if shape is None:
            check_int(self.max_leaves, "max_leaves", min_val=1)
            if self.split_criterion not in _SPLIT_CRITERIA:
                raise ValueError(
                    f"split_criterion={self.split_criterion!r}; expected one of "
                    f"{list(_SPLIT_CRITERIA)}."
                )
            check_real(
                self.validation_fraction,
                "validation_fraction",
                min_val=0,
                max_val=1,
                include_boundaries="neither",
            )
            check_int(self.n_split_candidates, "n_split_candidates", min_val=1)
            if self.load_balance > 0:
                raise ValueError(
                    "load_balance needs a balanced tree; a grown tree has none."
                )
            if not isinstance(self.init_params, str):
                raise ValueError(
                    "init_params gives responsibilities over a tree's leaves, but "
                    "tree='grow' starts from one expert: use 'kmeans' or "
                    "'random', or give the tree's shape."
                )
            if is_learner(self):
                raise ValueError(
                    "tree='grow' grafts every split's experts into the tree, "
                    "which needs built-in experts (a learner's fit cannot be "
                    "spliced); grow with a built-in expert, then give the shape "
                    "to the learner: tree=grown.tree_.to_nested()."
                )
            n_leaves = self.max_leaves
        else:
            n_leaves = shape.n_leaves
            if self.load_balance > 0 and shape.balanced_shape() is None:
                raise ValueError(
                    "load_balance needs a balanced tree; this tree's gates or "
                    "leaves differ in their children or depth."
                )
        if n_leaves > _MAX_LEAVES:
            raise ValueError(
                f"The tree has {n_leaves} leaves; at most {_MAX_LEAVES} are "
                "supported. Give fewer leaves (or a smaller max_leaves)."
            )
        return n_leaves

    def _check_routing(self, n_leaves):
        """Validate the routing at prediction (``top_k``, ``pooling``,
        ``capacity_factor``, ``priority``), which may be changed with
        ``set_params`` after ``fit``."""
        if self.pooling not in ("mean", "max"):
            raise ValueError(f"pooling={self.pooling!r}; expected 'mean' or 'max'.")
        if self.top_k is not None:
            check_int(self.top_k, "top_k", min_val=1)
            if self.top_k > n_leaves:
                raise ValueError(
                    f"top_k={self.top_k} is larger than the number of leaves "
                    f"({n_leaves}; at most, for a grown tree)."
                )
        if self.priority not in _PRIORITIES:
            raise ValueError(
                f"priority={self.priority!r}; expected one of {list(_PRIORITIES)}."
            )
        if self.capacity_factor is not None:
            check_real(
                self.capacity_factor,
                "capacity_factor",
                min_val=0,
                include_boundaries="neither",
            )
            if self._routed_k(n_leaves) is None:
                raise ValueError(
                    f"capacity_factor={self.capacity_factor} limits the samples "
                    "routed to each expert, but dense pooling routes every sample "
                    "to every expert: set top_k < n_leaves or pooling='max'."
                )

    def _routed_k(self, n_leaves):
        """Leaves pooled per sample at prediction, or None for all."""
        return leaves_per_sample(self.top_k, self.pooling == "max", n_leaves)

    def _training_k(self, n_leaves):
        """Leaves kept per sample by the E-step, or None for all."""
        return leaves_per_sample(self.top_k, self.algorithm == "hard", n_leaves)

    def _check_n_samples(self, sample_weight, n_leaves, xp):
        n_positive = int(xp.sum(xp.astype(sample_weight > 0, xp.int64)))
        if n_positive < n_leaves:
            raise ValueError(self._too_few_samples(n_leaves, n_positive))

    def _too_few_samples(self, n_leaves, n_positive):
        if self._shape() is None:
            size = f"tree='grow' with max_leaves={self.max_leaves}"
            remedy = "Decrease max_leaves"
        else:
            size = f"n_experts={self.n_experts} and depth={self.depth}"
            remedy = "Decrease n_experts or depth"
        return (
            f"{type(self).__name__} with {size} has {n_leaves} leaves and needs "
            "at least as many samples with positive weight; got "
            f"n_samples={n_positive}. {remedy}, or provide more data."
        )

    # -- fit --------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Fit the mixture by EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets; several columns for multi-output regression
            (multivariate Gaussian experts, see ``covariance_type``).
        sample_weight : float or array-like of shape (n_samples,), default=None
            Non-negative weight of each sample (a float: every sample's);
            ``None`` weighs all equally. A weight counts as that many
            repetitions of its sample, so weights that sum to little let
            the penalties dominate (a warning says when the model has more
            free parameters than the weights' sum).

        Returns
        -------
        self : object
            The fitted estimator.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(300, random_state=0)
        >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
        >>> model.converged_, model.n_leaves_
        (True, 2)
        """
        with _unchanged_on_error(self):
            return self._fit(X, y, sample_weight)

    def _fit(self, X, y, sample_weight):
        n_leaves = self._check_params()
        settle_allocator()
        for name, value in (("X", X), ("y", y), ("sample_weight", sample_weight)):
            check_not_dask_frame(value, name)
        if is_dask_array(X):
            return self._fit_dask(X, y, sample_weight, n_leaves)
        gpu = check_device(self.device)
        xp_in = get_namespace(X)
        # Warm start continues the last fit's tree; a tree of another shape
        # cannot continue it and starts afresh.
        continuing = self._can_continue()
        if continuing:
            self._placement.check_input(X, xp_in, type(self).__name__, "fit")
        X, y = validate_data(
            self,
            X,
            y,
            dtype=[xp_in.float64, xp_in.float32],
            reset=not continuing,
            **self._target_validation_kwargs(),
        )
        # y may come from another library
        y = target_to_namespace(y, xp_in, device(X))
        sample_weight, weight_factor, total_weight = check_sample_weight(
            sample_weight, X.shape[0], xp_in, device(X)
        )
        trials = None
        if self._has_trials():
            # binomial experts: the weights are every row's trials, part of
            # its density; every row is one observation
            trials = sample_weight / weight_factor
            sample_weight = xp_in.ones_like(trials)
            weight_factor, total_weight = 1.0, float(X.shape[0])
        self._check_n_samples(sample_weight, n_leaves, xp_in)
        y_fit = self._validate_target(
            y, sample_weight, xp_in, reset=not continuing, dtype=X.dtype
        )
        if continuing:
            placement = self._placement.warm_started(X, xp_in)
        else:
            placement = fit_placement(X, xp_in, gpu, self.device)
        xp, dtype_name = placement.xp, placement.dtype_name
        X, y_fit = placement.to_compute(X), placement.to_compute(y_fit)
        sample_weight = placement.to_compute(sample_weight)
        if trials is not None:
            trials = placement.to_compute(trials)

        sample = sample_rows(X.shape[0])
        if continuing:
            scaling = self._scaling
        else:
            target = self._target_scaling(
                y_fit[sample, ...], sample_weight[sample], dtype_name, xp
            )
            scaling = make_scaling(
                X[sample, :], sample_weight[sample], target, dtype_name, xp
            )
        Xd = scaling.checked_design(X, xp, dtype_name)
        if self._is_regression:
            y_fit = scaling.standardise_target(y_fit, xp, dtype_name)
        if trials is not None:
            y_fit = self._with_trials(y_fit, trials, xp)
        self._warn_if_overparameterised(
            X.shape[1], total_weight, weight_factor, n_leaves
        )
        init = None
        if not continuing and not isinstance(self.init_params, str):
            given = check_given(self.init_params, X.shape[0], n_leaves)
            init = placement.to_compute(xp.asarray(given, device=device(X)))
        data = InMemoryData(
            Xd,
            y_fit,
            sample_weight,
            xp,
            self._chunk_width(n_leaves),
            init,
            n_threads=effective_n_jobs(self.n_jobs),
        )
        start_sample = (Xd[sample, :], y_fit[sample, ...], sample_weight[sample])
        marginal = self._target_marginal(y_fit, sample_weight, xp)
        return self._fit_data(
            data, scaling, start_sample, placement, continuing, weight_factor, marginal
        )

    def _fit_data(
        self,
        data,
        scaling,
        start_sample,
        placement,
        continuing,
        weight_factor,
        marginal,
    ):
        """EM on ``data`` (in memory or Dask), then the fitted state."""
        xp = placement.xp
        shape = None if continuing else self._shape()
        if not continuing and shape is None:
            gates, experts, monitor, history = grow_tree(
                self, data, scaling, start_sample, xp, weight_factor
            )
            self._warn_convergence(monitor, experts)
            experts.warn_fallbacks()
        else:
            gates, experts, monitor = self._run_restarts(
                data, scaling, start_sample, xp, continuing, weight_factor, shape
            )
            history = self.__dict__.get("growth_history_") if continuing else None
        if history is None:
            self.__dict__.pop("growth_history_", None)
        else:
            self.growth_history_ = history
        # A fit ends any stream; partial_fit continues the fit as a stream
        # whose running statistics are the fit's.
        self.__dict__.pop("_stream", None)
        if _streamable(self):
            stats = monitor.stats
            if stats is None:  # EM returned an earlier iterate
                with thread_limit():
                    stats = statistics(data, gates, experts, xp)
            self._stream = Stream.continuing(stats, weight_factor)
        self._set_fitted_state(scaling, gates, experts, placement)
        self._marginal = marginal
        self.routing_stats_ = self._training_routing_stats(data, xp)
        self.n_iter_ = monitor.n_iter
        self.converged_ = monitor.converged
        self.lower_bounds_ = list(monitor.history)
        self.lower_bound_ = monitor.objective
        return self

    @available_if(_streamable)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the mixture with one mini-batch: a step of stepwise EM.

        Every call runs the E-step on the batch at the current parameters,
        blends the batch's sufficient statistics (per unit of weight) into
        running ones with a step ``gamma_t = (t + 1) ** -0.6`` that decays
        with the number ``t`` of batches seen (stepwise EM, Cappe & Moulines,
        2009), and takes the M-step from the running statistics as if they
        summed all the weight seen. The gates and softmax experts take one
        Newton step on the stream's quadratic model: the running curvature,
        and the batch's gradient times ``gamma_t``. Passes over the same
        batches approach the batch fit (3 passes over 20 mini-batches of a
        known mixture end within 0.02 nats per sample of ``fit``'s
        log-likelihood; ``tests/test_large_data.py``).

        The first call standardises with the first batch's statistics, fits
        it as ``fit`` does (``n_init`` starts), and fixes ``n_features_in_``
        and, for a classifier, ``classes_``. On a model fit by ``fit`` the
        stream continues the fit instead: its running statistics start as
        the fit's, which counts as (its weight / the first batch's) batches.
        Every step's E-step is the one ``algorithm``, ``top_k`` and
        ``gate_noise`` ask for. Learner
        experts and ``load_balance`` are not supported: the method is then
        not available.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The mini-batch's inputs.
        y : array-like of shape (n_samples,)
            Its targets.
        sample_weight : float or array-like of shape (n_samples,), default=None
            Non-negative weight of each sample.
        classes : array-like of shape (n_classes,), default=None
            Classifier only: every class the stream holds, required on the
            first call (scikit-learn's convention), ignored afterwards.

        Returns
        -------
        self : object
            The updated estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(2000, noise=0.2, random_state=0)
        >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0)
        >>> for batch in np.array_split(np.arange(2000), 10):
        ...     model = model.partial_fit(X[batch], y[batch])
        >>> model.n_iter_
        10
        """
        with _unchanged_on_error(self):
            return self._partial_fit(X, y, sample_weight, classes)

    def _partial_fit(self, X, y, sample_weight, classes):
        self._check_params()
        settle_allocator()
        for name, value in (("X", X), ("y", y), ("sample_weight", sample_weight)):
            check_not_dask_frame(value, name)
        if is_dask_array(X):
            raise ValueError(
                "partial_fit takes one mini-batch in memory at a time; fit a Dask "
                "array with fit, or pass its blocks to partial_fit one by one."
            )
        first = not hasattr(self, "_gates")
        if first:
            self._stream_classes(classes)
        xp_in = get_namespace(X)
        if not first:
            self._placement.check_input(X, xp_in, type(self).__name__, "partial_fit")
        X, y = validate_data(
            self,
            X,
            y,
            dtype=[xp_in.float64, xp_in.float32],
            reset=first,
            **self._target_validation_kwargs(),
        )
        y = target_to_namespace(y, xp_in, device(X))
        sample_weight, factor, _ = check_sample_weight(
            sample_weight, X.shape[0], xp_in, device(X)
        )
        trials = None
        if self._has_trials():
            trials = sample_weight / factor
            sample_weight, factor = xp_in.ones_like(trials), 1.0
        if first:
            stream = Stream(weight_factor=factor)
        else:
            stream = self.__dict__.get("_stream") or Stream()
            # the stream's weights keep the power of two its start chose
            sample_weight = sample_weight * (stream.weight_factor / factor)
        y_fit = self._stream_target(y, xp_in, X.dtype)
        if first:
            shape = self._shape()
            if shape is None:
                raise ValueError(
                    "partial_fit cannot grow a tree (tree='grow'): fit on a "
                    "first batch with fit, then continue with partial_fit, or "
                    "give the tree's shape."
                )
            self._check_n_samples(sample_weight, shape.n_leaves, xp_in)
            placement = fit_placement(X, xp_in, check_device(self.device), self.device)
        else:
            placement = self._placement
        xp, dtype_name = placement.xp, placement.dtype_name
        X, y_fit = placement.to_compute(X), placement.to_compute(y_fit)
        sample_weight = placement.to_compute(sample_weight)
        if first:
            sample = sample_rows(X.shape[0])
            target = self._target_scaling(
                y_fit[sample, ...], sample_weight[sample], dtype_name, xp
            )
            scaling = make_scaling(
                X[sample, :], sample_weight[sample], target, dtype_name, xp
            )
        else:
            scaling = self._scaling
        Xd = scaling.checked_design(X, xp, dtype_name)
        if self._is_regression:
            y_fit = scaling.standardise_target(y_fit, xp, dtype_name)
        if trials is not None:
            y_fit = self._with_trials(y_fit, placement.to_compute(trials), xp)
        n_leaves = shape.n_leaves if first else self.n_leaves_
        data = InMemoryData(
            Xd,
            y_fit,
            sample_weight,
            xp,
            self._chunk_width(n_leaves),
            n_threads=effective_n_jobs(self.n_jobs),
        )
        if first:
            gates, experts = self._start_stream(
                data, Xd, y_fit, sample_weight, scaling, xp, factor
            )
        else:
            gates, experts = self._gates, self._experts
            # the penalties scale with the weights (see _run_restarts)
            gates.alpha = self.gate_alpha * stream.weight_factor
            gates.balance = 0.0
            experts.update_penalties(
                self.expert_alpha * stream.weight_factor, self._min_variance()
            )
        if stream.seed is None and (self.algorithm == "stochastic" or self.gate_noise):
            stream.seed = self._stream_seed()
        routing = self._routing(None, stream.seed)
        with thread_limit():
            objective = stepwise_em(data, gates, experts, xp, stream, routing)
        offset = -scaling.log_y_scale
        history = self.__dict__.get("lower_bounds_", []) if not first else []
        self._set_fitted_state(scaling, gates, experts, placement)
        self._stream = stream
        self._marginal = self._target_marginal(y_fit, sample_weight, xp)
        self.routing_stats_ = self._training_routing_stats(data, xp)
        self.n_iter_ = stream.n_batches
        self.lower_bound_ = objective + offset
        self.lower_bounds_ = [*history, self.lower_bound_]
        return self

    def _stream_seed(self):
        """The seed of a stream's random draws, apart from those of the fit
        that starts it (its second draw from ``random_state``)."""
        random_state = check_random_state(self.random_state)
        return int(random_state.randint(2**31, size=2)[1])

    def _start_stream(self, data, Xd, y_fit, sample_weight, scaling, xp, factor):
        """A new stream's gates and experts: EM on its first batch, as ``fit``
        runs it (``n_init`` starts, ``max_iter`` iterations), so that the
        stream starts from a fit of what it has seen."""
        sample = sample_rows(Xd.shape[0])
        start_sample = (Xd[sample, :], y_fit[sample, ...], sample_weight[sample])
        with warnings.catch_warnings():
            # a first batch is a start: it need not converge
            warnings.simplefilter("ignore", ConvergenceWarning)
            gates, experts, _ = self._run_restarts(
                data, scaling, start_sample, xp, False, factor, self._shape()
            )
        experts.bind(None, xp)
        return gates, experts

    def _fit_dask(self, X, y, sample_weight, n_leaves):
        """``fit`` on a Dask array ``X``: EM block by block where the blocks
        lie (``_dask.DaskData``), on the host. Standardisation and the start
        read a strided sample of the rows (``_scaling.sample_rows``); values
        are checked as the passes read them."""
        if self.device not in (None, "cpu"):
            raise ValueError(
                f"device={self.device!r}, but Dask arrays are fit on their "
                "workers' CPUs; use device=None or 'cpu'."
            )
        if self._shape() is None:
            raise ValueError(
                "tree='grow' fits many trial trees on the rows in memory; fit a "
                "grown tree on NumPy arrays (or a sample of the Dask array), "
                "then give its shape: tree=model.tree_.to_nested()."
            )
        if self._has_trials():
            raise ValueError(
                "expert='binomial' reads every row's trials with its target, "
                "which Dask input does not carry; fit binomial experts on NumPy "
                "arrays."
            )
        if is_learner(self) and self.max_samples_per_expert is None:
            raise ValueError(
                "A learner expert on Dask input needs max_samples_per_expert: "
                "each leaf's learner is then fit on a subsample of at most that "
                "many of its rows, gathered from the blocks. Set it (say 10000), "
                "or fit on NumPy arrays."
            )
        if is_learner(self) and self.expert_weighting == "resample":
            raise ValueError(
                "expert_weighting='resample' draws from all of a leaf's rows at "
                "once, which Dask input does not hold in one place; use "
                "'sample_weight', 'threshold' or 'auto'."
            )
        continuing = self._can_continue()
        inputs = DaskInputs(X, y, sample_weight)  # refuses several targets
        if self._is_regression:
            self._n_targets = None
        n_samples, n_features = inputs.X.shape
        if continuing and n_features != self.n_features_in_:
            raise ValueError(
                f"X has {n_features} features, but {type(self).__name__} is "
                f"expecting {self.n_features_in_} features as input."
            )
        classes = None
        if not self._is_regression:
            classes = self._dask_classes(inputs.classes(), reset=not continuing)
        total_weight, n_positive = inputs.weight_totals()
        if n_positive < n_leaves:
            raise ValueError(self._too_few_samples(n_leaves, n_positive))
        factor = weight_factor(total_weight, n_positive)
        sample = sample_rows(n_samples)
        X_sample, y_sample, w_sample = inputs.sample(sample)
        dtype_name = "float32" if X_sample.dtype == np.float32 else "float64"
        xp = array_api_compat.numpy
        family = self._family()
        check = None if family is None else family.check_target
        if check is not None:
            # the start reads the sampled targets before any pass checks them
            check(y_sample)
        prepare = ChunkPreparer(None, dtype_name, factor, classes, check)
        if classes is None:
            y_sample = y_sample.astype(dtype_name)
        else:
            y_sample = encode_labels(y_sample, classes)
        w_sample = w_sample * factor
        if continuing:
            scaling = self._scaling
        else:
            target = self._target_scaling(y_sample, w_sample, dtype_name, xp)
            scaling = make_scaling(X_sample, w_sample, target, dtype_name, xp)
        prepare.scaling = scaling
        if classes is None:
            y_sample = scaling.standardise_target(y_sample, xp, dtype_name)
        self.n_features_in_ = n_features
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._warn_if_overparameterised(n_features, total_weight, factor, n_leaves)
        init = None
        if not continuing and not isinstance(self.init_params, str):
            init = check_given(self.init_params, n_samples, n_leaves)
        data = DaskData(
            inputs.X,
            inputs.y,
            inputs.weight,
            prepare,
            self._chunk_width(n_leaves),
            init,
        )
        start_sample = (scaling.design(X_sample, xp), y_sample, w_sample)
        marginal = self._target_marginal(y_sample, w_sample, xp)
        placement = Placement(dtype_name=dtype_name)
        return self._fit_data(
            data, scaling, start_sample, placement, continuing, factor, marginal
        )

    def _dask_classes(self, labels, reset):
        """The classifier's ``classes_`` from the labels a Dask ``y`` holds."""
        if reset:
            self.classes_ = labels
        encode_labels(labels, self.classes_)  # labels unseen in the first fit
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes; "
                f"got {len(self.classes_)} class."
            )
        return self.classes_

    def _family(self):
        """The GLM family of built-in experts (regression), or None."""
        return None

    def _with_trials(self, y, trials, xp):
        """Binomial targets as the experts read them: the proportion and the
        trials of every row, ``(n_rows, 2)``, refused unless the successes
        ``y * trials`` are whole numbers (a fit of proportions whose trials
        were not passed would otherwise be silently wrong)."""
        successes = to_numpy(y, xp) * to_numpy(trials, xp)
        if not np.allclose(successes, np.round(successes), rtol=1e-5, atol=1e-6):
            raise ValueError(
                "expert='binomial' reads y as the proportion of successes among "
                "every row's trials, passed as sample_weight; y * sample_weight "
                "is not a whole number of successes (e.g. y = 0.3 with 1 trial). "
                "Pass the number of trials of every row as sample_weight."
            )
        return xp.stack([y, xp.astype(trials, y.dtype)], axis=1)

    def _has_trials(self):
        """Whether the sample weights are the trials of binomial experts."""
        family = self._family()
        return family is not None and family.trials

    def _start_transform(self, y, sample_weight, xp):
        """The target's transform for the k-means start (``_init``), or None."""
        return None

    def _columns(self, n_features):
        """The design's columns the gates and the experts read (the
        intercept's last), from ``gate_features`` and ``expert_features``;
        None for all."""
        names = getattr(self, "feature_names_in_", None)
        gate = resolve_features(self.gate_features, n_features, names, "gate_features")
        expert = resolve_features(
            self.expert_features, n_features, names, "expert_features"
        )
        if expert is not None and is_learner(self):
            raise ValueError(
                "expert_features selects the columns of the built-in experts; a "
                "learner expert reads all of X. Select its columns inside the "
                "learner instead (a Pipeline with a ColumnTransformer)."
            )
        return tuple(None if c is None else [*c, n_features] for c in (gate, expert))

    def _spec(self, n_features):
        """What a fit's tree is made of: a warm start continues a fit only
        if this has not changed."""
        expert = self.expert if not is_learner(self) else type(self.expert)
        return (
            self.n_experts,
            self.depth,
            repr(self.tree),
            expert,
            *self._columns(n_features),
        )

    def _can_continue(self):
        """Whether ``fit`` continues the last fit (``warm_start``)."""
        return (
            self.warm_start
            and hasattr(self, "converged_")
            and self._fitted_spec == self._spec(self.n_features_in_)
        )

    def _continue_em(
        self, data, gates, experts, scaling, xp, max_iter=None, quiet=False
    ):
        """EM to convergence (or ``max_iter`` iterations, instead of the
        parameter's) on ``data`` from the current parameters of ``gates`` and
        ``experts``: a grown tree's kept split, or a candidate split's trial
        fit continued (``quiet``: without progress output)."""
        experts.bind(data, xp)
        routing = self._routing(check_random_state(self.random_state))
        with thread_limit():
            return run_em(
                data,
                gates,
                experts,
                resp_init=None,
                max_iter=self.max_iter if max_iter is None else max_iter,
                tol=self.tol,
                xp=xp,
                verbose=0 if quiet else self.verbose,
                objective_offset=-scaling.log_y_scale,
                routing=routing,
                drop_rtol=drop_tolerance(),
                acceleration=self.acceleration,
            )

    def _run_restarts(
        self,
        data,
        scaling,
        start_sample,
        xp,
        continuing,
        weight_factor,
        tree=None,
        *,
        given=None,
        max_iter=None,
        quiet=False,
        n_runs=None,
    ):
        """EM from ``n_init`` starts (one, continuing a warm start) on
        ``data`` (any source of chunks), keeping the best: its gates, experts
        and monitor. ``start_sample``: the sampled rows (design, target,
        weights) that cluster starts are drawn from; ``tree``: the shape of
        new gates. ``given``: a start (``resp_init``) instead of the
        parameters' (one run); ``max_iter``: instead of the parameter's;
        ``quiet``: no progress output and no convergence warning (a grown
        tree's trial fits);
        ``n_runs``: the starts, instead of ``n_init``.

        Every start is drawn first, one after the other from
        ``random_state``; their EMs then run one after the other, or, with
        ``n_jobs`` above 1 and several starts on NumPy data in memory, in
        parallel (``_parallel_restarts``): EM draws nothing from
        ``random_state``, so both give the same fits."""
        n_leaves = tree.n_leaves if tree is not None else self._gates.n_leaves
        offset = -scaling.log_y_scale
        random_state = check_random_state(self.random_state)
        routing = self._routing(random_state)
        # The weights were rescaled by weight_factor: so are the penalties,
        # which leaves the objective, and the fit, as with the given weights.
        gate_alpha = self.gate_alpha * weight_factor
        expert_alpha = self.expert_alpha * weight_factor
        if continuing or given is not None:
            n_runs = 1
        elif n_runs is None:
            n_runs = self.n_init
        n_params = start_sample[0].shape[1]
        gate_columns, expert_columns = self._columns(n_params - 1)
        start = time.perf_counter()
        verbose = 0 if quiet else self.verbose
        em_options = dict(
            max_iter=self.max_iter if max_iter is None else max_iter,
            tol=self.tol,
            xp=xp,
            objective_offset=offset,
            routing=routing,
            drop_rtol=drop_tolerance(),
            acceleration=self.acceleration,
        )
        runs = []  # every start: its gates, experts and first responsibilities
        for init in range(n_runs):
            if continuing:
                gates, experts, resp_init = self._gates, self._experts, None
                gates.alpha, gates.balance = gate_alpha, self.load_balance
                experts.update_penalties(expert_alpha, self._min_variance())
            else:
                gates = GateTree(tree, gate_alpha, self.load_balance).select(
                    gate_columns, n_params
                )
                experts = self._make_experts(
                    n_leaves, scaling, random_state, expert_alpha
                ).select(expert_columns, n_params)
                gates.init_params(gates.width(n_params), start_sample[0], xp)
                experts.init_params(experts.width(n_params), start_sample[0], xp)
                if given is not None:
                    resp_init = given
                else:
                    with thread_limit():
                        resp_init = self._start(
                            start_sample, xp, random_state, init, tree
                        )
            runs.append((gates, experts, resp_init))

        workers = _restart_workers(self.n_jobs, n_runs, data, xp)
        if workers > 1:
            if verbose:
                print(
                    f"Initialisations 1-{n_runs} on {workers} joblib workers ...",
                    flush=True,
                )
            results = _parallel_restarts(data, runs, workers, em_options)
        else:
            results = []
            for init in range(n_runs):
                gates, experts, resp_init = runs[init]
                runs[init] = None  # from here on in results, while the best
                if verbose:
                    how = start_name(self.init_params, init)
                    how = "continuing" if continuing else how
                    print(f"Initialisation {init + 1}/{n_runs} ({how}) ...", flush=True)
                run_start = time.perf_counter()
                experts.bind(data, xp)
                with thread_limit():
                    monitor = run_em(
                        data,
                        gates,
                        experts,
                        resp_init=resp_init,
                        verbose=verbose,
                        **em_options,
                    )
                results.append(
                    [gates, experts, monitor, time.perf_counter() - run_start]
                )
                self._report_restart(verbose, results, init, n_runs)
                # only the best so far keeps its components (a learner's
                # fitted models may hold its rows)
                best = _best_run(results)
                for i in range(init + 1):
                    if i != best:
                        results[i][:2] = None, None

        kept = _best_run(results)
        gates, experts, monitor, _ = results[kept]
        if workers > 1:
            for init in range(n_runs):
                self._report_restart(verbose, results, init, n_runs)
            experts.bind(data, xp)  # as the EM in this process leaves them
        if verbose:
            print(
                f"Kept initialisation {kept + 1}/{n_runs}: objective "
                f"{monitor.objective:.6f}; {time.perf_counter() - start:.2f} s in all.",
                flush=True,
            )
        if not quiet:
            self._warn_convergence(monitor, experts)
            experts.warn_fallbacks()
        return gates, experts, monitor

    @staticmethod
    def _report_restart(verbose, results, init, n_runs):
        """The progress line of initialisation ``init``, run (``results``)."""
        if not verbose:
            return
        monitor, seconds = results[init][2:]
        best = _best_run(results[: init + 1])
        state = "converged" if monitor.converged else "did not converge"
        print(
            f"Initialisation {init + 1}/{n_runs}: {state} after "
            f"{monitor.n_iter} iterations in {seconds:.2f} s, objective "
            f"{monitor.objective:.6f} (best so far: {best + 1})",
            flush=True,
        )

    def _routing(self, random_state, seed=None):
        """The E-step's variant the parameters ask for; the seed of its
        draws (stochastic EM, gate noise) is ``seed`` or drawn from
        ``random_state``."""
        random_draws = self.algorithm == "stochastic" or self.gate_noise > 0
        if random_draws and seed is None:
            seed = int(random_state.randint(2**31))
        return TrainingRouting(
            algorithm=self.algorithm,
            top_k=self.top_k,
            gate_noise=self.gate_noise,
            seed=seed if random_draws else None,
        )

    def _start(self, start_sample, xp, random_state, init, tree):
        """The start of initialisation ``init``: the given responsibilities,
        or clusters of the sampled rows (``_init``) placed at the leaves of
        ``tree``."""
        if not isinstance(self.init_params, str):
            return GivenStart()
        method = self.init_params if init == 0 else "random"
        return initial_start(
            *start_sample,
            xp,
            transform=self._start_transform(start_sample[1], start_sample[2], xp),
            tree=tree,
            n_classes=None if self._is_regression else len(self.classes_),
            random_state=random_state,
            method=method,
        )

    def _chunk_width(self, n_leaves):
        """Elements per row of the E-step's widest per-chunk temporary: a
        value per leaf and class, or per leaf and target."""
        outputs = len(getattr(self, "classes_", ())) or getattr(self, "_n_targets", 0)
        return n_leaves * (outputs or 1) + 2

    def _warn_convergence(self, monitor, experts):
        """The ConvergenceWarning of a fit whose kept run did not converge,
        saying why and what helps."""
        if monitor.decreased is not None:
            iteration, amount = monitor.decreased
            warnings.warn(
                f"EM's objective decreased by {amount:.3g} at iteration "
                f"{iteration}, more than round-off ({drop_tolerance():.0e} of its "
                "size) allows; EM stopped and returned its best iterate. A "
                "decrease is a sign of numerical trouble in a nearly singular "
                "expert or gate: increase expert_alpha, gate_alpha or "
                "min_variance (regression).",
                ConvergenceWarning,
                stacklevel=3,
            )
        elif self.max_iter > 0 and not monitor.converged:
            hint = "Increase max_iter, or tol to stop earlier."
            if not experts.monotone:
                hint += (
                    " With a learner as expert (a tree, an SVM, ...), EM need "
                    "not converge at all: its refit does not maximise the "
                    "likelihood, and the fit returned is the best iterate."
                )
            elif self.algorithm == "stochastic" or self.gate_noise > 0:
                hint += " Stochastic EM and gate noise fluctuate by design."
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations "
                f"(tol={self.tol}). {hint}",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _warn_if_overparameterised(
        self, n_features, total_weight, weight_factor, n_leaves
    ):
        """Warn when the model has more free parameters than samples (the sum
        of the sample weights, which count as repetitions of samples)."""
        n_params = self._n_free_params(n_features + 1, n_leaves)
        if n_params is None or n_params <= total_weight:
            return
        weights = (
            " (the sum of sample_weight: a weight counts as that many repeated "
            "samples, so the penalties outweigh data whose weights sum to little)"
            if weight_factor != 1.0
            else ""
        )
        warnings.warn(
            f"{type(self).__name__} with {n_leaves} leaves has {n_params} free "
            f"parameters for {total_weight:.4g} samples{weights}: it will fit "
            "noise. Decrease n_experts or depth (or max_leaves), and choose "
            "them by cross-validated log-likelihood "
            "(hmexperts.metrics.log_likelihood_scorer), or grow the tree "
            "(tree='grow').",
            UserWarning,
            stacklevel=3,
        )

    def _n_free_params(self, n_params, n_leaves):
        """Free parameters of the gates of any tree of ``n_leaves`` leaves
        (``n_leaves - 1`` softmax models' worth: a gate of ``k`` children
        has ``k - 1``) and of built-in experts, for inputs with ``n_params``
        columns (the intercept's included); None for learner experts, whose
        count is unknown."""
        if is_learner(self):
            return None
        gate_columns, expert_columns = self._columns(n_params - 1)
        gates = GateTree(Tree([[]]), 1.0).select(gate_columns, n_params)
        experts = self._builtin_experts(n_leaves, 1.0).select(expert_columns, n_params)
        return (n_leaves - 1) * gates.width(n_params) + experts.n_free_params(
            experts.width(n_params)
        )

    def _make_experts(self, n_leaves, scaling, random_state, alpha):
        """The expert bank: built-in (with penalty ``alpha``), or a clone of
        ``expert`` per leaf."""
        if not is_learner(self):
            return self._builtin_experts(n_leaves, alpha)
        return LearnerExperts(
            self.expert,
            n_leaves,
            scaling=scaling,
            weighting=self.expert_weighting,
            responsibility_threshold=self.responsibility_threshold,
            max_samples=self.max_samples_per_expert,
            random_state=random_state,
            **self._learner_task(),
        )

    def _set_fitted_state(self, scaling, gates, experts, placement):
        """Store the fitted components and their readable form in data units,
        in the ``placement`` of the fit's input."""
        self._placement = placement
        for name in _EXPERT_ATTRIBUTES:
            if hasattr(self, name):
                delattr(self, name)
        self._scaling, self._gates, self._experts = scaling, gates, experts
        self.n_leaves_ = gates.n_leaves
        self.tree_ = gates.tree
        if hasattr(self, "n_features_in_"):
            self._fitted_spec = self._spec(self.n_features_in_)
        xp = placement.xp
        readable = [
            scaling.to_original(gates.expand(coef, xp), xp) for coef in gates.coef
        ]
        self.gate_coef_ = [placement.output(slopes, xp) for slopes, _ in readable]
        self.gate_intercept_ = [placement.output(icpt, xp) for _, icpt in readable]
        for name, value in experts.attributes(scaling, xp).items():
            array = hasattr(value, "dtype")
            setattr(self, name, placement.output(value, xp) if array else value)

    def _training_routing_stats(self, data, xp):
        """Load and importance of the leaves on the training data, in one
        pass over ``data``."""
        routing = TrainingRouting(
            algorithm="hard" if self.algorithm == "hard" else "em",
            top_k=self.top_k,
        )
        experts = self._experts
        load, importance = summary_pass(data, self._gates, experts, xp, routing)
        experts.bind(None, xp)  # EM's bank lets go of the data
        return training_stats(load, importance, self._placement.dtype_name, xp)

    # -- inference --------------------------------------------------------------

    def _prepare(self, X, method):
        """Validated, standardised ``X`` with the intercept, in the namespace
        and on the device of the fitted state, and that namespace."""
        check_is_fitted(self)
        settle_allocator()  # a fitted model loaded in a fresh process
        check_not_dask_frame(X, "X")
        xp_in = get_namespace(X)
        placement = self._placement
        placement.check_input(X, xp_in, type(self).__name__, method)
        X = validate_data(self, X, dtype=[xp_in.float64, xp_in.float32], reset=False)
        xp = placement.xp
        X = wide(placement.to_compute(X), xp)
        return self._scaling.checked_design(X, xp, placement.dtype_name), xp

    def _lazy(self, method, X, y=None, n_columns=None, dtype=None):
        """``method`` of a Dask array ``X`` (and ``y``): a lazy Dask array,
        computed block by block where the blocks lie."""
        check_is_fitted(self)
        dtype = dtype or np.dtype(self._placement.dtype_name)
        return map_rows(method, X, y, n_columns, dtype)

    def _prediction_routing(self, log_prior):
        """The routing at prediction of priors ``log_prior``, validated (it may
        change with ``set_params`` after ``fit``): ``k`` and the capacity."""
        n_leaves = log_prior.shape[0]
        self._check_routing(n_leaves)
        return PredictionRouting(
            self._routed_k(n_leaves),
            self.capacity_factor,
            self.priority,
            self.random_state,
        )

    def _route(self, log_prior, xp):
        """``route``'s log pooling weights, masks and dropped samples, with a
        warning when samples were dropped."""
        routing = self._prediction_routing(log_prior)
        log_weight, mask, dropped = route(log_prior, routing, xp)
        if dropped is not None:
            n_dropped = int(xp.sum(xp.astype(dropped, xp.int64)))
            warnings.warn(
                f"{n_dropped} of {dropped.shape[0]} samples found no expert "
                f"with room (capacity_factor={self.capacity_factor}, "
                f"k={routing.k}); they are predicted from the target's "
                "marginal distribution. Increase capacity_factor to route them.",
                UserWarning,
                stacklevel=3,
            )
        return log_weight, mask, dropped

    def routing_stats(self, X):
        """How ``predict`` routes ``X``: expert load, drops and reroutes.

        ``predict`` stores nothing (a scikit-learn estimator does not change
        when it predicts); this method repeats its routing and reports it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        stats : :class:`~sklearn.utils.Bunch`
            ``load`` (n_leaves,): samples each expert evaluates;
            ``capacity``: the per-expert limit, or None; ``n_dropped``:
            samples no expert took (predicted from the target's marginal
            distribution); ``n_partial``: samples that got at least one but
            fewer than ``k`` experts (pooled over those they got);
            ``n_rerouted``: samples sent to an expert outside their ``k``
            most trusted because those were full;
            ``importance`` (n_leaves,): mean prior of every leaf;
            ``importance_cv2``: its squared coefficient of variation.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(400, n_experts=2, depth=2, random_state=0)
        >>> model = MixtureOfExpertsRegressor(
        ...     n_experts=2, depth=2, top_k=1, capacity_factor=1.0, random_state=0
        ... ).fit(X, y)
        >>> stats = model.routing_stats(X)
        >>> int(stats.load.max()) <= stats.capacity
        True
        >>> int(stats.load.sum() + stats.n_dropped)  # every sample accounted for
        400
        """
        Xd, xp = self._prepare(X, "routing_stats")
        log_prior = self._gates.log_prior(Xd, xp)
        return prediction_stats(log_prior, self._prediction_routing(log_prior), xp)

    def predict_gates(self, X):
        """Prior probability of every leaf: the product of gate probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        prior : ndarray of shape (n_samples, n_leaves)
            Rows sum to 1.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(300, n_experts=2, depth=2, random_state=0)
        >>> model = MixtureOfExpertsRegressor(n_experts=2, depth=2, random_state=0)
        >>> model = model.fit(X, y)
        >>> prior = model.predict_gates(X[:2])
        >>> prior.shape
        (2, 4)
        >>> prior.sum(axis=1).round(6).tolist()
        [1.0, 1.0]
        """
        if is_dask_array(X):
            return self._lazy(self.predict_gates, X, n_columns=self.n_leaves_)
        Xd, xp = self._prepare(X, "predict_gates")
        prior = xp.matrix_transpose(xp.exp(self._gates.log_prior(Xd, xp)))
        return self._placement.output(prior, xp)

    def sample(self, X, random_state=None, return_leaves=False, n_draws=None):
        """Draw targets for every row of ``X`` from the fitted mixture.

        A leaf from the gates' priors (the dense mixture, as
        ``log_likelihood`` scores it, whatever ``top_k`` and ``pooling``
        say), then ``y`` from that leaf's expert.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        random_state : int, RandomState instance or None, default=None
            Source of the draws.
        return_leaves : bool, default=False
            Also return the leaf each draw came from.
        n_draws : int, default=None
            Independent draws per row; None draws one, without the axis.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_draws)
            The draws: floats (regression; a last axis of ``n_targets`` for
            several targets) or labels from ``classes_``.
        leaves : ndarray of shape (n_samples,) or (n_samples, n_draws)
            The leaves; only if ``return_leaves`` is True.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(300, random_state=0)
        >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
        >>> model.sample(X, random_state=0).shape
        (300,)
        >>> model.sample(X[:5], random_state=0, n_draws=1000).shape
        (5, 1000)
        """
        if n_draws is not None:
            check_int(n_draws, "n_draws", min_val=1)
        Xd, xp = self._prepare(X, "sample")
        random_state = check_random_state(random_state)
        prior = to_numpy(xp.exp(self._gates.log_prior(Xd, xp)), xp).T
        n, k = prior.shape[0], 1 if n_draws is None else n_draws
        cumulative = np.cumsum(prior, axis=1)
        u = random_state.uniform(size=(n, k, 1))
        leaves = np.minimum(
            (u > cumulative[:, None, :]).sum(axis=2), prior.shape[1] - 1
        )
        if n_draws is None:
            y = self._draw(Xd, leaves[:, 0], random_state, xp)
            return (y, leaves[:, 0]) if return_leaves else y
        # every row repeated n_draws times: the experts evaluated in one go
        repeated = xp.asarray(np.repeat(np.arange(n), k), device=device(Xd))
        y = self._draw(xp.take(Xd, repeated, axis=0), leaves.ravel(), random_state, xp)
        namespace = array_namespace(y)
        y = namespace.reshape(y, (n, k, *y.shape[1:]))
        return (y, leaves) if return_leaves else y

    @classmethod
    def from_parameters(
        cls, gate_coef, gate_intercept, expert_coef, expert_intercept, **kwargs
    ):
        """A mixture with the given parameters, as if it had been fit.

        To draw from (``sample``), or to score data under a known model. The
        parameters are in the units of the data, shaped as the fitted
        attributes of the same names. Anything else fit would set that the
        parameters do not say (``routing_stats_``, ``lower_bound_``) is not
        set.

        Parameters
        ----------
        gate_coef : list of array-like
            ``gate_coef[d]`` of shape (n_experts ** d, n_features,
            n_experts): level ``d`` of a balanced tree. With ``tree=`` (a
            nested list, among ``kwargs``), one array per batch of its
            gates (``tree_.batches``), shape (n_gates, n_features,
            n_children).
        gate_intercept : list of array-like
            ``gate_intercept[d]`` of shape (n_experts ** d, n_experts), or
            (n_gates, n_children) per batch.
        expert_coef : array-like
            (n_leaves, n_features) for regression, (n_leaves, n_features,
            n_targets) for several targets, (n_leaves, n_features,
            n_classes) for classification.
        expert_intercept : array-like
            (n_leaves,), (n_leaves, n_targets) or (n_leaves, n_classes).
        **kwargs : dict
            The experts' other parameters, by ``expert``: ``expert_variance``
            (n_leaves,) for linear and Student-t experts, ``expert_df``
            (n_leaves,) for Student-t ones, ``expert_dispersion`` (n_leaves,)
            for gamma ones, ``expert_covariance`` (n_leaves, n_targets,
            n_targets) for several targets; ``classes`` (n_classes,) for
            classification (default: ``0, 1, ...``); and any constructor
            parameter (``expert="poisson"``, ...).

        Returns
        -------
        model : estimator
            The mixture, ready to predict.

        Examples
        --------
        >>> import numpy as np
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> model = MixtureOfExpertsRegressor.from_parameters(
        ...     gate_coef=[np.array([[[-5.0, 5.0]]])],
        ...     gate_intercept=[np.zeros((1, 2))],
        ...     expert_coef=np.array([[-1.0], [1.0]]),
        ...     expert_intercept=np.zeros(2),
        ...     expert_variance=np.full(2, 0.01),
        ... )
        >>> model.predict(np.array([[-2.0], [2.0]])).round(2).tolist()
        [2.0, 2.0]
        """
        gate_coef = [np.asarray(c, dtype=np.float64) for c in gate_coef]
        gate_intercept = [np.asarray(c, dtype=np.float64) for c in gate_intercept]
        params = {k: v for k, v in kwargs.items() if k in cls._get_param_names()}
        shape = params.get("tree", "balanced")
        if len(gate_coef) != len(gate_intercept) or not (
            gate_coef or not isinstance(shape, str)
        ):
            raise ValueError(
                "gate_coef and gate_intercept need one array per level of the "
                f"tree (per batch of tree_.batches for a tree of another shape); "
                f"got {len(gate_coef)} and {len(gate_intercept)}."
            )
        if isinstance(shape, str):
            depth = len(gate_coef)
            n_experts = gate_coef[0].shape[-1]
            tree = Tree.balanced(n_experts, depth)
            params = {"depth": depth, **params}
        else:
            tree = Tree.from_nested(shape)
            n_experts = params.pop("n_experts", 2)
            if len(gate_coef) != len(tree.batches):
                raise ValueError(
                    f"tree={shape!r} stores its gates in {len(tree.batches)} "
                    "batches (tree_.batches: the gates of one depth with the same "
                    f"number of children); got {len(gate_coef)} gate_coef arrays."
                )
        n_features = (
            gate_coef[0].shape[1] if gate_coef else np.asarray(expert_coef).shape[1]
        )
        for d, (coef, intercept) in enumerate(
            zip(gate_coef, gate_intercept, strict=True)
        ):
            batch = tree.batches[d]
            expected = (len(batch.nodes), n_features, batch.n_children)
            if coef.shape != expected or intercept.shape != (
                expected[0],
                expected[2],
            ):
                raise ValueError(
                    f"gate_coef[{d}] has shape {coef.shape} and gate_intercept[{d}] "
                    f"{intercept.shape}; its gates (depth {batch.depth}, "
                    f"{batch.n_children} children each) with {n_features} features "
                    f"need {expected} and {(expected[0], expected[2])}."
                )
        model = cls(n_experts, **params)
        gates = GateTree(tree, model.gate_alpha)
        gates.coefs = [
            np.concatenate([c, i[:, None, :]], axis=1)
            for c, i in zip(gate_coef, gate_intercept, strict=True)
        ]
        extra = {k: v for k, v in kwargs.items() if k not in params}
        experts = model._experts_from(
            np.asarray(expert_coef, dtype=np.float64),
            np.asarray(expert_intercept, dtype=np.float64),
            tree.n_leaves,
            n_features,
            **extra,
        )
        model.n_features_in_ = n_features
        scaling = Scaling(np.zeros(n_features), np.ones(n_features))
        model._set_fitted_state(scaling, gates, experts, Placement())
        return model

    def apply(self, X):
        """Index of the most trusted leaf (largest prior) for every sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        leaves : ndarray of shape (n_samples,)
            Leaf indices in ``[0, n_leaves_)``.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(300, n_experts=2, depth=2, random_state=0)
        >>> model = MixtureOfExpertsRegressor(n_experts=2, depth=2, random_state=0)
        >>> model = model.fit(X, y)
        >>> leaves = model.apply(X)
        >>> bool((leaves == model.predict_gates(X).argmax(axis=1)).all())
        True
        """
        if is_dask_array(X):
            return self._lazy(self.apply, X, dtype=np.int64)
        Xd, xp = self._prepare(X, "apply")
        return self._placement.output(
            xp.argmax(self._gates.log_prior(Xd, xp), axis=0), xp
        )

    def _encoded(self, X, y, method, sample_weight=None):
        """The standardised design, the target as the experts read it (with
        the trials of binomial experts, ``sample_weight``) and ``xp``."""
        Xd, xp = self._prepare(X, method)
        y_fit = self._encode_target(y, Xd, xp)
        if self._has_trials():
            trials, factor, _ = check_sample_weight(
                sample_weight, Xd.shape[0], xp, device(Xd)
            )
            y_fit = self._with_trials(y_fit, trials / factor, xp)
        return Xd, y_fit, xp

    def _log_joint(self, X, y, method, sample_weight=None):
        """``log pi_j(x_i) + log p_j(y_i | x_i)`` in data units, shape
        (n_leaves, n_samples), and ``xp``; ``sample_weight``: the trials of
        binomial experts."""
        Xd, y_fit, xp = self._encoded(X, y, method, sample_weight)
        log_joint = self._gates.log_prior(Xd, xp) + self._experts.log_likelihood(
            Xd, y_fit, xp
        )
        return log_joint - self._scaling.log_y_scale, xp

    def log_likelihood(self, X, y, sample_weight=None):
        """Log-likelihood ``log p(y_i | x_i)`` of every sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Binomial experts: every row's number of trials (None: 1), which
            its density depends on. Other experts' log-likelihoods do not
            depend on weights (``bic`` and ``aic`` weigh the samples).

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
            ``log p(y_i | x_i)`` under the fitted mixture.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(300, n_experts=2, depth=2, random_state=0)
        >>> model = MixtureOfExpertsRegressor(n_experts=2, depth=2, random_state=0)
        >>> model = model.fit(X, y)
        >>> model.log_likelihood(X, y).shape
        (300,)
        """
        if is_dask_array(X):
            return self._lazy(self.log_likelihood, X, y)
        log_joint, xp = self._log_joint(X, y, "log_likelihood", sample_weight)
        return self._placement.output(logsumexp(log_joint, 0, xp), xp)

    def predict_responsibilities(self, X, y, sample_weight=None):
        """Posterior probability of every leaf given ``x`` and ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Binomial experts: every row's number of trials (None: 1).

        Returns
        -------
        resp : ndarray of shape (n_samples, n_leaves)
            Rows sum to 1.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(300, n_experts=2, depth=2, random_state=0)
        >>> model = MixtureOfExpertsRegressor(n_experts=2, depth=2, random_state=0)
        >>> model = model.fit(X, y)
        >>> resp = model.predict_responsibilities(X[:2], y[:2])
        >>> resp.shape
        (2, 4)
        """
        if is_dask_array(X):
            return self._lazy(
                self.predict_responsibilities, X, y, n_columns=self.n_leaves_
            )
        log_joint, xp = self._log_joint(X, y, "predict_responsibilities", sample_weight)
        log_resp = log_joint - logsumexp(log_joint, 0, xp)[None, :]
        return self._placement.output(xp.matrix_transpose(xp.exp(log_resp)), xp)

    def _n_parameters(self):
        if is_learner(self):
            raise ValueError(
                f"The number of parameters of expert={self.expert!r} is unknown, so "
                "bic and aic are not defined; compare held-out log_likelihood instead."
            )
        n_params = self.n_features_in_ + 1
        gates, experts = self._gates, self._experts
        return gates.n_free_params(gates.width(n_params)) + experts.n_free_params(
            experts.width(n_params)
        )

    def _total_log_likelihood(self, X, y, sample_weight):
        """``sum_i w_i log p(y_i | x_i)`` and the number of samples ``sum_i
        w_i`` (binomial experts: the weights are trials, every row one
        observation)."""
        if is_dask_array(X) and sample_weight is None:
            log_likelihood = self.log_likelihood(X, y)
            return float(log_likelihood.sum()), log_likelihood.shape[0]
        log_likelihood = to_numpy(*self._log_joint_ll(X, y, sample_weight))
        n = log_likelihood.shape[0]
        if sample_weight is None or self._has_trials():
            return float(log_likelihood.sum()), n
        weight, factor, _ = check_sample_weight(
            sample_weight, n, array_api_compat.numpy, "cpu"
        )
        weight = np.asarray(weight) / factor
        return float(weight @ log_likelihood), float(weight.sum())

    def _log_joint_ll(self, X, y, sample_weight):
        log_joint, xp = self._log_joint(X, y, "log_likelihood", sample_weight)
        return logsumexp(log_joint, 0, xp), xp

    def bic(self, X, y, sample_weight=None):
        """Bayesian information criterion on ``(X, y)``; lower is better.

        ``-2 sum_i w_i log p(y_i | x_i) + n_parameters * log(sum_i w_i)``,
        with ``n_parameters`` every free parameter: coefficients, one
        variance or dispersion per expert where the family has one, the
        Student-t degrees of freedom, and one column fewer than its
        children per gate (the softmax's reference child is fixed).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights of the samples; for binomial experts, the
            trials of every row (each row one observation).

        Returns
        -------
        bic : float
            The criterion; compare it across models fit to the same data.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(300, n_experts=2, depth=2, random_state=0)
        >>> model = MixtureOfExpertsRegressor(n_experts=2, depth=2, random_state=0)
        >>> model = model.fit(X, y)
        >>> flat = MixtureOfExpertsRegressor(n_experts=1, random_state=0).fit(X, y)
        >>> bool(model.bic(X, y) < flat.bic(X, y))  # the tree is worth its parameters
        True
        """
        total, n_samples = self._total_log_likelihood(X, y, sample_weight)
        return -2 * total + self._n_parameters() * math.log(n_samples)

    def aic(self, X, y, sample_weight=None):
        """Akaike information criterion on ``(X, y)``; lower is better.

        ``-2 sum_i w_i log p(y_i | x_i) + 2 n_parameters`` (``bic`` says
        what the parameters are).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights of the samples; for binomial experts, the
            trials of every row.

        Returns
        -------
        aic : float
            The criterion; compare it across models fit to the same data.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(300, n_experts=2, depth=2, random_state=0)
        >>> model = MixtureOfExpertsRegressor(n_experts=2, depth=2, random_state=0)
        >>> model = model.fit(X, y)
        >>> bool(model.aic(X, y) <= model.bic(X, y))  # log(300) > 2
        True
        """
        total, _ = self._total_log_likelihood(X, y, sample_weight)
        return -2 * total + 2 * self._n_parameters()
