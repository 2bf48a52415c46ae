"""``MixtureOfExpertsRegressor``: linear-Gaussian experts under a tree of gates."""

import numpy as np
from sklearn.base import RegressorMixin, is_regressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.utils import check_array, column_or_1d

from ._array_api import device, to_numpy, wide
from ._base import BaseMixtureOfExperts
from ._dask import is_dask_array
from ._experts import LinearGaussianExperts, MultivariateGaussianExperts
from ._families import FAMILIES, GLMExperts, StartTarget, StudentTExperts
from ._learners import _final_step
from ._predictive import PredictiveMixin
from ._scaling import robust_center_scale, round_to
from ._validation import check_real


class MixtureOfExpertsRegressor(PredictiveMixin, RegressorMixin, BaseMixtureOfExperts):
    """Hierarchical mixture of linear-Gaussian experts, fit by EM.

    The model is :math:`p(y \\mid x) = \\sum_j \\pi_j(x)\\,
    \\mathcal{N}(y;\\ \\beta_j^\\top x + b_j,\\ \\sigma_j^2)`,
    where the prior :math:`\\pi_j(x)` of leaf :math:`j` is the product of the softmax
    gate probabilities on the path from the root of a tree of ``depth``
    levels, each gate with ``n_experts`` children (Jordan & Jacobs, 1994).
    ``depth=1`` is the flat mixture of experts of Jacobs et al. (1991).

    Inputs and target are standardised internally; the penalties and the
    variance floor act in those standardised units, and the fitted
    attributes are reported in the data's units.

    Parameters
    ----------
    n_experts : int, default=2
        Children of every gate (the branching factor). The tree has
        ``n_experts ** depth`` leaves, each holding one expert.
    depth : int, default=1
        Number of levels of gates; 1 is a flat mixture of experts.
    tree : "balanced", "grow" or nested list, default="balanced"
        The shape of the gate tree. ``"balanced"``: ``depth`` levels of
        gates with ``n_experts`` children each. A nested list gives any
        shape: a list is a gate over its items, any other item a leaf
        (``[[0, 1], 2]``: the root's first child a gate of two leaves, its
        second a leaf); gates may have any number of children and leaves
        any depth. ``"grow"``: grown from a single expert, splitting in
        every round the leaf whose split (into ``max(n_experts, 2)``
        leaves, started from the parent and refit) most improves
        ``split_criterion``, until no split pays or the tree would exceed
        ``max_leaves`` (Waterhouse & Robinson, 1996); after every split of
        a binary tree (``n_experts <= 2``), its gates are rebuilt over the
        same experts in the shape whose linear gates best route the rows
        to them, when that shape improves ``split_criterion`` (and, after
        the last round, every gate over four leaves in a chain is tried
        as two pairs); at the end pruned: gates over leaves only are
        merged back into one expert while that improves
        ``split_criterion``. ``depth`` is then unused,
        and ``growth_history_`` records the rounds.
    max_leaves : int, default=8
        ``tree="grow"``: the most leaves the grown tree may have.
    split_criterion : {"bic", "validation"}, default="bic"
        ``tree="grow"``: what a split must improve. ``"bic"``: the BIC of
        the training data; ``"validation"``: the log-likelihood of
        ``validation_fraction`` of the rows, held out while the tree grows
        (the final tree is then refit on all rows).
    validation_fraction : float, default=0.2
        ``tree="grow"`` with ``split_criterion="validation"``: the share of
        the rows held out, drawn with ``random_state``.
    n_split_candidates : int, default=4
        ``tree="grow"``: the leaves tried in every round, those whose
        experts fit their rows worst: the rows' log-likelihood under the
        leaf's expert, summed with their responsibilities, falls furthest
        short of the tree's mean log-likelihood per row times the leaf's
        share of the rows. Each is tried by a small mixture fit by EM to
        the leaf's rows (of a leaf of more than 4,096 rows, a sample of
        that many drawn by their weights), the split's gain scored on all
        of them.
    expert : None, str or regressor, default=None
        The expert at each leaf. A built-in family, every expert a
        generalised linear model batched over leaves and fit by EM:

        - ``None`` or ``"linear"``: linear-Gaussian, ``N(x^T beta_j,
          sigma_j^2)`` (weighted ridge regression with its own variance);
        - ``"poisson"``: counts, ``Poisson(exp(x^T beta_j))``; ``y`` must be
          non-negative integers;
        - ``"gamma"``: positive continuous targets, a gamma law with mean
          ``exp(x^T beta_j)`` and a dispersion (squared coefficient of
          variation) per expert, ``expert_dispersion_``;
        - ``"binomial"``: proportions of successes in ``[0, 1]``, mean
          ``expit(x^T beta_j)``, with the number of trials of every row
          passed as ``sample_weight`` (the statsmodels and glum
          convention). A row is one observation of that many trials, all
          from one leaf: the trials enter every expert's density (the
          binomial coefficient included, as flexmix's log-likelihood), not
          frequency weights;
        - ``"student_t"``: robust linear regression, a location-scale
          Student t with its own scale and degrees of freedom
          (``expert_df_``) per expert, estimated by EM as a scale mixture
          of Gaussians (Peel & McLachlan, 2000), so that gross outliers
          cannot drag an expert.

        The GLM families keep ``y`` in its units (they are not
        standardised). Or a scikit-learn regressor (an SVR, a Gaussian
        process, a tree, a ``Pipeline``...): a clone per leaf, fit to the
        responsibilities as ``expert_weighting`` says; its density in the
        E-step is a Gaussian around its prediction with a per-leaf variance
        from the weighted residuals (for a ``GaussianProcessRegressor``, its
        latent predictive variance plus its noise variance ``sigma_j^2 +
        alpha``, where ``sigma_j^2`` is fit with the kernel's
        hyper-parameters by the weighted marginal likelihood), floored by
        ``min_variance``.
    gate_features : None, list of int or str, or array-like of bool, default=None
        The columns of ``X`` the gates read (their "concomitant
        variables"): integer indices, a boolean mask, or column names when
        ``X`` is a DataFrame. ``None``: all; ``[]``: none, every gate a
        constant (intercept only), which makes a plain mixture of
        regressions (mixtools' ``regmixEM``). Every gate has an intercept.
    expert_features : None, list of int or str, or array-like of bool, default=None
        The columns of ``X`` the built-in experts read, as
        ``gate_features``; ``[]`` makes every expert a constant, a latent
        class model with covariates on the class probabilities. Learner
        experts read all of ``X`` (select their columns in a ``Pipeline``).
        The fitted ``gate_coef_`` and ``expert_coef_`` keep one row per
        feature of ``X``, zero where a part does not read it.
    expert_weighting : {"auto", "sample_weight", "threshold", "resample"}, \
            default="auto"
        How a learner ``expert`` is fit to its responsibilities ``r_ij``
        (times the sample weights). ``"auto"``: through ``sample_weight`` if
        its ``fit`` takes one (also as a ``Pipeline``'s last step),
        per-sample noise ``(sigma_j^2 + alpha) / r_ij`` for a
        ``GaussianProcessRegressor``, ``sigma_j^2`` the expert's noise
        variance fit with the kernel's hyper-parameters (samples below 1e-3
        of the leaf's largest responsibility are left out; the
        hyper-parameters are warm-started from the previous M-step, and
        ``n_restarts_optimizer`` applies at the first M-step only), else
        ``"threshold"``. ``"sample_weight"``: all samples, weighted by
        ``r_ij``. ``"threshold"``: the samples with ``r_ij >=
        responsibility_threshold`` (at least the 5 most responsible ones).
        ``"resample"``: ``round(sum_i r_ij)`` samples drawn with
        probabilities proportional to ``r_ij``. Ignored for ``expert=None``.
    responsibility_threshold : float, default=0.5
        The responsibility a sample needs to train a learner under
        ``"threshold"``, in (0, 1].
    max_samples_per_expert : int, default=None
        If set, every learner is fit on at most this many of its samples,
        drawn without replacement in proportion to their responsibilities:
        local experts on local data, which keeps expensive learners (a
        Gaussian process is cubic in its samples) affordable.
    top_k : int, default=None
        Sparse routing. At prediction, pool only the ``top_k`` leaves of
        largest prior for every sample, their priors renormalised; learners
        are then called only on the samples routed to them. In training,
        a truncated E-step keeps the ``top_k`` largest posteriors of every
        sample, renormalised: EM then increases a lower bound of the
        log-likelihood (the log of the joint summed over those leaves),
        never the likelihood itself, and ``lower_bound_`` reports that bound.
        ``None`` (or ``n_leaves``) is dense, exact EM.
    pooling : {"mean", "max"}, default="mean"
        At prediction, the gate-weighted mixture of the experts, or only the
        most trusted expert (the leaf of ``apply``: hard, Switch-style top-1
        routing).
    capacity_factor : float, default=None
        With sparse routing at prediction (``top_k`` or ``pooling="max"``),
        every expert takes at most ``ceil(capacity_factor * n_samples * k /
        n_leaves)`` samples of a call to ``predict``; a sample whose choices
        are full goes to its next most trusted expert with room. A sample
        that finds no room anywhere (possible when ``capacity_factor * k <
        1``) is dropped: it is predicted from the training target's marginal
        distribution and a warning says how many were. ``routing_stats``
        reports the load, the dropped and the rerouted samples. ``None``:
        no limit.
    priority : {"gate", "random", "order"}, default="gate"
        Which samples claim room at a full expert first: the most confident
        (largest top prior, batch prioritised routing), a random order drawn
        from ``random_state``, or the order of the rows.
    algorithm : {"em", "hard", "stochastic"}, default="em"
        ``"em"``: soft EM (with ``top_k``, truncated). ``"hard"``:
        classification EM, every sample given wholly to its most probable
        leaf (the truncated E-step with one leaf); it increases the
        classification log-likelihood ``sum_i log max_j pi_j p_j``, which
        ``lower_bound_`` reports. ``"stochastic"``: stochastic EM, every
        sample given to a leaf drawn from its posterior; the likelihood then
        fluctuates, EM returns the best iterate and stops when the best has
        not risen by ``tol`` in 10 iterations. Its draws come from
        ``random_state``: set it for a reproducible fit.
    gate_noise : float, default=0.0
        Noisy top-k gating in training: standard deviation of Gaussian noise
        added to the leaves' log priors before the E-step picks each
        sample's ``top_k`` leaves (or its single leaf with
        ``algorithm="hard"``); it spreads samples over the experts early on.
        Draws come from ``random_state``. EM returns the best iterate, since
        a noisy choice can lower the objective. Needs ``top_k < n_leaves``
        or ``algorithm="hard"``.
    load_balance : float, default=0.0
        Weight ``lambda`` of a load-balancing penalty on the gates,
        ``lambda * sum_i w_i * CV^2(I)``, with ``I_j = sum_i w_i pi_j(x_i)``
        the importance of leaf ``j`` and ``CV^2`` its squared coefficient of
        variation (Shazeer et al., 2017). It is part of the objective that
        EM increases (the gates' M-step never lowers it); larger values
        spread the data more evenly over the experts.
    gate_alpha : float, default=1e-2
        L2 penalty ``gate_alpha / 2 * ||w||^2`` on every gate coefficient
        (intercepts included), > 0. It keeps the gates finite when the
        experts' regions are separable.
    expert_alpha : float, default=1e-2
        Ridge of every expert's weighted least squares, > 0: the penalty
        ``expert_alpha * ||beta||^2 / (2 sigma^2)``, a Gaussian prior on the
        coefficients scaled by the expert's noise variance ``sigma^2``, so
        that its strength does not depend on that variance. It keeps an
        expert with little weight well posed.
    min_variance : float, default=1e-3
        Floor on every expert's noise variance (linear, Student-t and
        learner experts), relative to the square of the scale of ``y`` (its
        standard deviation, at most 3 times its interquartile range / 1.349,
        so that outliers cannot raise it). It stops an expert from
        collapsing onto a few points, where the likelihood is unbounded.
        For gamma experts, the floor on the dispersion; for multi-output
        experts, on the eigenvalues of every covariance.
    covariance_type : {"full", "diag"}, default="full"
        Multi-output regression (``y`` of shape (n_samples, n_targets)):
        every leaf's expert is a multivariate Gaussian ``N(B_j^T x + b_j,
        Sigma_j)``, the model family of MoEClust's gated experts, with a
        full covariance ``Sigma_j`` per expert, or a diagonal one (targets
        independent given the leaf). Ignored for one target.
    max_iter : int, default=100
        Largest number of EM iterations per initialisation; 0 only
        initialises.
    tol : float, default=1e-4
        EM stops when the penalised mean log-likelihood per sample changes
        by less than ``tol``.
    acceleration : {"squarem", None}, default="squarem"
        ``"squarem"``: EM is accelerated by SQUAREM (Varadhan & Roland,
        2008), where EM is slow: after two EM steps whose gains shrink by
        less than half, it extrapolates along their path and keeps the
        extrapolation only if the objective does not go down, so EM stays
        monotone. An accepted extrapolation counts as an iteration (in
        ``n_iter_``, ``max_iter`` and ``lower_bounds_``): it costs a pass
        over the data, as an EM step does. On fits that take plain EM 50
        passes or more it reaches the same maximum in a median of 2.3 times
        fewer passes (1.1 to 10 times); fits that converge in a few steps
        may take a few passes more. None runs plain EM.
        Learner experts and stochastic EM, whose objective may go down,
        always run plain EM.
    n_init : int, default=1
        Number of initialisations; the one with the best final objective is
        kept. ``tree="grow"``: the number of trees grown from the single
        expert, each with its own draws of the candidate splits' starts;
        the one with the best ``split_criterion`` is kept.
    n_jobs : int, default=None
        Parallel work on NumPy data in memory. With ``n_init`` above 1, the
        restarts' EMs run on up to ``n_jobs`` joblib workers, processes
        unless a ``joblib.parallel_config`` names another backend; every
        start is drawn first, in order, so the fit is the same as one after
        the other. The workers start on first use (1 to 2 s, once a
        session); their warnings reach the caller, and with ``verbose``
        each restart's line is printed once all have run. Otherwise (and
        with the threads left over per restart), the threads over which
        EM's passes spread their chunks of rows (the E-step and the
        statistics of every chunk; NumPy releases the GIL in its array
        operations) when the data have more than one chunk (about 2^17 /
        (n_leaves + 2) rows each); the chunks' sums are added in the
        same order whatever the threads, so the fit does not depend on
        ``n_jobs``. None means 1 unless in a ``joblib.parallel_config``
        context; -1 means one per CPU. BLAS stays at
        ``hmexperts.get_config()["n_threads"]`` threads per chunk.
        ``tree="grow"`` grows its ``n_init`` trees one after the other.
    init_params : {"kmeans", "random"} or array-like of shape \
            (n_samples, n_leaves), default="kmeans"
        Initial responsibilities, which the first M-step turns into gates
        and experts. ``"kmeans"``: k-means on the standardised joint
        ``[x, y]``; restarts after the first (``n_init > 1``) start from
        random local partitions, since k-means restarts mostly land on the
        same one. ``"random"``: every sample goes to the nearest of
        ``n_leaves`` samples drawn at random. Either way the clusters are
        placed at the leaves so that siblings are neighbours in ``x``. An
        array gives the responsibilities directly.
    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation, of stochastic EM and of ``gate_noise``
        (and of ``priority="random"`` at prediction).
    warm_start : bool, default=False
        If True, ``fit`` continues EM from the last fit's parameters (and
        its standardisation), running a single initialisation. Changed
        penalties and floors apply from then on; a changed ``n_experts`` or
        ``depth`` starts a new fit.
    verbose : int, default=0
        1 prints a line when each initialisation starts and ends (with its
        time and objective, and the best so far), the one kept, and a
        progress line at least every 5 seconds while EM runs; 2 prints
        every EM iteration with its objective, change and time. A grown
        tree (``tree="grow"``) prints a line per step of its growth (the
        split, the leaves tried and their estimated gains, the score), not
        its trial fits.
    device : {None, "cpu", "cuda"} or str, default=None
        Where EM runs. None: where the data lie (NumPy on the host; under
        ``sklearn.config_context(array_api_dispatch=True)``, the input's own
        array library and device, scikit-learn's convention). ``"cpu"``:
        on the host; a GPU array is refused. ``"cuda"`` or ``"cuda:N"``:
        NumPy input is moved to the GPU once, EM runs there through CuPy
        (``pip install "hmexperts[gpu]"``), and every result and fitted
        attribute comes back as NumPy (XGBoost's convention); arrays already
        on a GPU (CuPy, PyTorch CUDA) stay where they are. Learner experts
        are fit on the host, with one transfer per EM iteration. Predict
        with arrays of the library and device the model was fit on.

    Attributes
    ----------
    gate_coef_ : list of ndarray
        One entry per batch of gates (``tree_.batches``; in a balanced tree
        batch ``d`` is level ``d``). ``gate_coef_[d]`` has shape
        (n_experts ** d, n_features, n_experts) in a balanced tree:
        the weights of every gate of level ``d`` (root: ``d=0``). Child ``c``
        of node ``v`` is node ``v * n_experts + c`` of the next level. In
        any tree, batch ``b`` has shape ``(len(tree_.batches[b].nodes),
        n_features, tree_.batches[b].n_children)``.
    gate_intercept_ : list of ndarray
        ``gate_intercept_[b]`` has shape (n_gates of batch ``b``, its
        number of children).
    expert_coef_ : ndarray of shape (n_leaves, n_features)
        Slopes of every leaf's linear expert.
    expert_intercept_ : ndarray of shape (n_leaves,)
        Intercepts of the experts.
    expert_variance_ : ndarray of shape (n_leaves,)
        Noise variances of the experts (linear experts), or the squared
        scales of Student-t experts; for ``GaussianProcessRegressor``
        experts, their noise variances ``sigma_j^2 + alpha`` in the units
        of ``y`` (each expert's density adds its latent predictive
        variance).
    expert_dispersion_ : ndarray of shape (n_leaves,)
        Dispersions of gamma experts, ``Var(y) / E(y)^2``.
    expert_df_ : ndarray of shape (n_leaves,)
        Degrees of freedom of Student-t experts, within ``[1, 200]``.
    expert_covariance_ : ndarray of shape (n_leaves, n_targets, n_targets)
        Noise covariances of multi-output experts (then ``expert_coef_`` has
        shape (n_leaves, n_features, n_targets) and ``expert_intercept_``
        (n_leaves, n_targets)).
    experts_ : list of estimators
        The fitted learner of every leaf; only with a learner ``expert``
        (which then replaces ``expert_coef_`` and ``expert_intercept_``).
    expert_fallbacks_ : dict
        Leaf index to a sentence saying how that leaf's learner fell back:
        refit with what its samples allow (a smaller inner ``cv``, fewer
        ``n_neighbors``, without classes of a single sample), its previous
        fit, or the constant model of its samples, when the learner failed
        on them; for a classifier also the constant classifier of a leaf
        whose samples hold one class. Only with a learner ``expert``.
    n_leaves_ : int
        The number of leaves (``n_experts ** depth`` for a balanced tree).
    tree_ : Tree
        The fitted tree's shape (``tree_.to_nested()`` as a nested list of
        leaf numbers, ``tree_.children`` every node's children, node 0 the
        root, ``tree_.depth``, ``tree_.batches``: the gates stored in each
        entry of ``gate_coef_``).
    growth_history_ : list of GrowthStep
        ``tree="grow"`` only: every round of the kept growth, with the split
        leaf (None when no split paid), the kept tree's score, the score
        of every candidate and whether the gates were then restructured
        (``restructured``); then every chain of four leaves rebuilt as two
        pairs (``restructured``, ``split`` None) and every merge of
        pruning, with its leaves (``merged``).
    n_iter_ : int
        EM iterations run by the kept initialisation.
    converged_ : bool
        Whether the kept initialisation converged.
    lower_bound_ : float
        Penalised mean log-likelihood per sample of the returned parameters:
        ``(sum_i w_i log p(y_i | x_i) - penalties) / sum_i w_i``. With a
        learner ``expert``, whose refit may lower it, EM returns its best
        iterate.
    lower_bounds_ : list of float
        Its value after initialisation and after every EM iteration.
    routing_stats_ : :class:`~sklearn.utils.Bunch`
        Routing on the training data: ``load`` (n_leaves,), every leaf's
        share of the responsibilities the E-step hands out (under ``top_k``
        or hard EM, of the truncated ones); ``importance`` (n_leaves,), its
        share of the gates' prior mass; ``importance_cv2``, the squared
        coefficient of variation of the importance (0 for an even load).
        ``routing_stats(X)`` reports the routing of ``predict``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features, when ``X`` has string column names.

    See Also
    --------
    MixtureOfExpertsClassifier : The same tree with softmax experts.

    References
    ----------
    R. A. Jacobs, M. I. Jordan, S. J. Nowlan and G. E. Hinton (1991).
    Adaptive mixtures of local experts. Neural Computation 3(1), 79-87.

    M. I. Jordan and R. A. Jacobs (1994). Hierarchical mixtures of experts and
    the EM algorithm. Neural Computation 6(2), 181-214.

    Examples
    --------
    >>> import numpy as np
    >>> from hmexperts import MixtureOfExpertsRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-3, 3, size=(400, 1))
    >>> y = np.abs(X[:, 0]) + 0.1 * rng.normal(size=400)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    >>> model.expert_coef_.ravel().round(1)  # doctest: +SKIP
    array([-1.,  1.])
    >>> bool(model.score(X, y) > 0.95)
    True

    Growing the tree instead: from one expert, a split pays once (``|x|`` has
    two linear pieces), and no further split pays BIC's price.

    >>> grown = MixtureOfExpertsRegressor(tree="grow", max_leaves=4, random_state=0)
    >>> grown.fit(X, y).tree_.to_nested()
    [0, 1]
    >>> [(step.n_leaves, step.split) for step in grown.growth_history_]
    [(1, None), (2, 0), (2, None)]
    """

    _is_regression = True
    _builtin_names = ("linear", "poisson", "gamma", "binomial", "student_t")

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
        min_variance=1e-3,
        covariance_type="full",
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
        super().__init__(
            n_experts,
            depth=depth,
            tree=tree,
            max_leaves=max_leaves,
            split_criterion=split_criterion,
            validation_fraction=validation_fraction,
            n_split_candidates=n_split_candidates,
            expert=expert,
            gate_features=gate_features,
            expert_features=expert_features,
            expert_weighting=expert_weighting,
            responsibility_threshold=responsibility_threshold,
            max_samples_per_expert=max_samples_per_expert,
            top_k=top_k,
            pooling=pooling,
            capacity_factor=capacity_factor,
            priority=priority,
            algorithm=algorithm,
            gate_noise=gate_noise,
            load_balance=load_balance,
            gate_alpha=gate_alpha,
            expert_alpha=expert_alpha,
            max_iter=max_iter,
            tol=tol,
            acceleration=acceleration,
            n_init=n_init,
            n_jobs=n_jobs,
            init_params=init_params,
            random_state=random_state,
            warm_start=warm_start,
            verbose=verbose,
            device=device,
        )
        self.min_variance = min_variance
        self.covariance_type = covariance_type

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # multi-output targets: multivariate Gaussian experts
        tags.target_tags.multi_output = self.expert in (None, "linear")
        return tags

    def _check_params(self):
        check_real(
            self.min_variance,
            "min_variance",
            min_val=0,
            include_boundaries="neither",
        )
        if self.covariance_type not in ("full", "diag"):
            raise ValueError(
                f"covariance_type={self.covariance_type!r}; expected 'full' or 'diag'."
            )
        return super()._check_params()

    def _target_validation_kwargs(self):
        return {"y_numeric": True, "multi_output": True}

    def _check_n_targets(self, y, reset, xp):
        """``y``, with the target's columns recorded (None: one target as a
        vector); multi-output targets need the built-in linear experts, and
        other experts take a column vector as a vector (with scikit-learn's
        DataConversionWarning)."""
        multi_output = self.expert in (None, "linear")
        if y.ndim == 2 and y.shape[1] == 1 and not multi_output:
            y = xp.asarray(column_or_1d(to_numpy(y, xp), warn=True), device=device(y))
        n_targets = None if y.ndim == 1 else y.shape[1]
        if n_targets is not None and self.expert not in (None, "linear"):
            raise ValueError(
                f"y has {n_targets} columns: multi-output regression has "
                "multivariate Gaussian experts, expert=None or 'linear'; got "
                f"expert={self.expert!r}. Fit one model per target instead."
            )
        if reset:
            self._n_targets = n_targets
        elif n_targets != self._n_targets:
            raise ValueError(
                f"y has shape {tuple(y.shape)}, but the model was fit to "
                + (
                    "one target"
                    if self._n_targets is None
                    else f"{self._n_targets} targets"
                )
                + "."
            )
        return y

    def _family(self):
        """The GLM family of the experts, or None (Gaussian, Student-t, a
        learner)."""
        return FAMILIES[self.expert]() if self.expert in FAMILIES else None

    def _check_target(self, y, xp):
        """Refuse targets the experts' family cannot model (negative counts,
        proportions beyond [0, 1], ...)."""
        family = self._family()
        if family is not None:
            family.check_target(to_numpy(y, xp))

    def _validate_target(self, y, sample_weight, xp, reset, dtype):
        y = self._check_n_targets(y, reset, xp)
        self._check_target(y, xp)
        return xp.astype(y, dtype)

    def _stream_classes(self, classes):
        pass

    def _stream_target(self, y, xp, dtype):
        y = self._check_n_targets(y, not hasattr(self, "_gates"), xp)
        self._check_target(y, xp)
        return xp.astype(y, dtype)

    def _target_scaling(self, y, sample_weight, dtype_name, xp):
        family = self._family()
        if family is not None:
            # GLM targets keep their units; the experts start at the link of
            # the target's weighted mean
            mean = float(xp.sum(sample_weight * wide(y, xp)) / xp.sum(sample_weight))
            self._start_eta = family.link(mean)
            return 0.0, 1.0
        if y.ndim == 2:
            center, scale = robust_center_scale(y, sample_weight, xp)
            return (
                to_numpy(round_to(center, dtype_name, xp), xp),
                to_numpy(round_to(scale, dtype_name, xp), xp),
            )
        center, scale = robust_center_scale(y[:, None], sample_weight, xp)
        return (
            float(round_to(center, dtype_name, xp)[0]),
            float(round_to(scale, dtype_name, xp)[0]),
        )

    def _encode_target(self, y, Xd, xp):
        # NumPy input to a model on the GPU: validate on the host, then move.
        dtype = "numeric" if self._placement.host_output else Xd.dtype
        y = check_array(y, ensure_2d=False, dtype=dtype, input_name="y")
        if y.ndim == 2 and y.shape[1] == 1 and self._n_targets is None:
            y = column_or_1d(y, warn=True)
        shape = (Xd.shape[0],) + (() if self._n_targets is None else (self._n_targets,))
        if tuple(y.shape) != shape:
            raise ValueError(
                f"y has shape {tuple(y.shape)}; expected {shape}, one "
                "target per row of X."
            )
        if self._placement.host_output:
            y = xp.asarray(y, dtype=Xd.dtype, device=device(Xd))
        self._check_target(y, xp)
        mean, scale = self._scaling.target_arrays(xp, device(Xd))
        return (y - xp.astype(mean, y.dtype)) / xp.astype(scale, y.dtype)

    def _check_expert(self):
        if not is_regressor(self.expert):
            raise ValueError(
                f"expert={self.expert!r} is not a regressor. "
                "MixtureOfExpertsRegressor needs a scikit-learn regressor, or None "
                "for the built-in linear-Gaussian expert."
            )
        final, _ = _final_step(self.expert)
        if isinstance(final, GaussianProcessRegressor) and np.ndim(final.alpha) > 0:
            raise ValueError(
                "A GaussianProcessRegressor expert needs a scalar alpha (a noise "
                "variance added to the learned one, which EM divides by each "
                "sample's responsibility); got "
                f"an array of shape {np.shape(final.alpha)}."
            )

    def _learner_task(self):
        return {"min_variance": self.min_variance}

    def _start_transform(self, y, sample_weight, xp):
        family = self._family()
        return None if family is None else StartTarget(family, y, sample_weight, xp)

    def _draw(self, Xd, leaves, random_state, xp):
        """One target per row from the expert of its leaf, in data units."""
        experts = self._experts
        if hasattr(experts, "draw"):
            draw = experts.draw(Xd, leaves, random_state, xp)
        else:  # learners: the Gaussian of their predictive mean and variance
            means, variance = experts.predict_mean_variance(Xd, xp)
            means = to_numpy(means, xp)
            variance = np.broadcast_to(to_numpy(variance, xp), means.shape)
            rows = np.arange(len(leaves))
            noise = random_state.normal(size=len(leaves))
            draw = means[leaves, rows] + np.sqrt(variance[leaves, rows]) * noise
        y = np.asarray(self._scaling.y_mean) + np.asarray(self._scaling.y_scale) * draw
        return self._placement.output(xp.asarray(y, device=device(Xd)), xp)

    def _experts_from(
        self,
        coef,
        intercept,
        n_leaves,
        n_features,
        expert_variance=None,
        expert_dispersion=None,
        expert_df=None,
        expert_covariance=None,
    ):
        """The experts of ``from_parameters``: ``expert_variance`` for
        linear and Student-t experts, ``expert_df`` for Student-t ones,
        ``expert_dispersion`` for gamma ones; multi-output linear experts
        (``expert_coef`` of shape (n_leaves, n_features, n_targets)) take
        ``expert_covariance`` (n_leaves, n_targets, n_targets)."""
        self._n_targets = None
        if coef.ndim == 3 and self.expert in (None, "linear"):
            return self._multi_output_experts_from(
                coef, intercept, n_leaves, n_features, expert_covariance
            )
        if expert_covariance is not None:
            raise TypeError("expert_covariance is for multi-output linear experts.")
        if coef.shape != (n_leaves, n_features) or intercept.shape != (n_leaves,):
            raise ValueError(
                f"expert_coef {coef.shape} and expert_intercept {intercept.shape} "
                f"must be ({n_leaves}, {n_features}) and ({n_leaves},)."
            )
        needs = {
            "expert_variance": self.expert in (None, "linear", "student_t"),
            "expert_df": self.expert == "student_t",
            "expert_dispersion": self.expert == "gamma",
        }
        given = {
            "expert_variance": expert_variance,
            "expert_df": expert_df,
            "expert_dispersion": expert_dispersion,
        }
        values = {}
        for name, needed in needs.items():
            if needed and given[name] is None:
                raise TypeError(
                    f"from_parameters needs {name} for expert={self.expert!r}."
                )
            if not needed and given[name] is not None:
                raise TypeError(f"expert={self.expert!r} has no {name}.")
            if needed:
                value = np.asarray(given[name], dtype=np.float64)
                if value.shape != (n_leaves,) or not np.all(value > 0):
                    raise ValueError(
                        f"{name} must hold {n_leaves} positive values; got {value}."
                    )
                values[name] = value
        full = np.concatenate([coef, intercept[:, None]], axis=1)
        family = self._family()
        if family is not None:
            bank = GLMExperts(n_leaves, family, self.expert_alpha, 0.0)
            bank.coef = full
            bank.shape = 1.0 / values.get("expert_dispersion", np.ones(n_leaves))
        elif self.expert == "student_t":
            bank = StudentTExperts(n_leaves, self.expert_alpha, 0.0)
            bank.coef, bank.variance = full, values["expert_variance"]
            bank.df = values["expert_df"]
        else:
            bank = LinearGaussianExperts(n_leaves, self.expert_alpha, 0.0)
            bank.coef, bank.variance = full, values["expert_variance"]
        return bank

    def _multi_output_experts_from(self, coef, intercept, n_leaves, n_features, cov):
        n_targets = coef.shape[2]
        if cov is None:
            raise TypeError("from_parameters needs expert_covariance for multi-output.")
        cov = np.asarray(cov, dtype=np.float64)
        shapes = ((n_leaves, n_features, n_targets), (n_leaves, n_targets))
        if (coef.shape, intercept.shape) != shapes or cov.shape != (
            n_leaves,
            n_targets,
            n_targets,
        ):
            raise ValueError(
                f"expert_coef {coef.shape}, expert_intercept {intercept.shape} and "
                f"expert_covariance {cov.shape} must be {shapes[0]}, {shapes[1]} "
                f"and {(n_leaves, n_targets, n_targets)}."
            )
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise ValueError(
                "expert_covariance must be symmetric positive definite."
            ) from None
        self._n_targets = n_targets
        bank = MultivariateGaussianExperts(
            n_leaves, n_targets, self.expert_alpha, 0.0, self.covariance_type
        )
        bank.coef = np.concatenate([coef, intercept[:, None, :]], axis=1)
        bank.covariance = cov
        return bank

    def _target_marginal(self, y_fit, sample_weight, xp):
        return None  # the standardised target has mean 0 and variance 1

    def _builtin_experts(self, n_leaves, alpha):
        # y is standardised to unit robust scale: the floor relative to its
        # square is min_variance itself.
        if self.expert == "student_t":
            return StudentTExperts(n_leaves, alpha, self.min_variance)
        if getattr(self, "_n_targets", None) is not None:
            return MultivariateGaussianExperts(
                n_leaves,
                self._n_targets,
                alpha,
                self.min_variance,
                self.covariance_type,
            )
        family = self._family()
        if family is not None:
            start = getattr(self, "_start_eta", 0.0)
            return GLMExperts(n_leaves, family, alpha, self.min_variance, start)
        return LinearGaussianExperts(n_leaves, alpha, self.min_variance)

    def _min_variance(self):
        return self.min_variance

    def predict(self, X, return_std=False):
        """Mixture mean ``sum_j pi_j(x) mu_j(x)`` (and its standard deviation).

        With ``top_k`` or ``pooling="max"``, the sum runs over the leaves the
        sample is routed to, their priors renormalised (see
        ``capacity_factor`` for samples no expert has room for).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        return_std : bool, default=False
            Also return the standard deviation of the predictive mixture,
            ``sqrt(sum_j pi_j (sigma_j^2 + mu_j^2) - mean^2)``.

        Returns
        -------
        y_mean : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Predictive mean.
        y_std : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Predictive standard deviation (of every target); only if
            ``return_std`` is True.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(300, noise=0.1, random_state=0)
        >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
        >>> mean, std = model.predict(X[:3], return_std=True)
        >>> mean.shape, bool((std > 0).all())
        ((3,), True)
        """
        if is_dask_array(X):
            mean = self._lazy(self.predict, X)
            if not return_std:
                return mean
            return mean, self._lazy(lambda block: self.predict(block, True)[1], X)
        Xd, xp = self._prepare(X, "predict")
        log_weight, mask, dropped = self._route(self._gates.log_prior(Xd, xp), xp)
        weight = xp.exp(log_weight)
        means, variance = self._experts.predict_mean_variance(Xd, xp, mask)
        if means.ndim == 3:  # multi-output: (n_leaves, n_samples, n_targets)
            weight = weight[:, :, None]
        mean = xp.sum(weight * means, axis=0)
        second = xp.sum(weight * (variance + means**2), axis=0)
        if dropped is not None:  # the standardised target's marginal: N(0, 1)
            if mean.ndim == 2:
                dropped = dropped[:, None]
            mean = xp.where(dropped, xp.zeros_like(mean), mean)
            second = xp.where(dropped, xp.ones_like(second), second)
        output = self._placement.output
        y_center, y_scale = self._scaling.target_arrays(xp, device(mean))
        y_mean = output(y_center + y_scale * mean, xp)
        if not return_std:
            return y_mean
        var = xp.maximum(second - mean**2, xp.zeros_like(mean))
        return y_mean, output(y_scale * xp.sqrt(var), xp)
