"""``MixtureOfExpertsClassifier``: softmax experts under a tree of gates."""

import numpy as np
from sklearn.base import ClassifierMixin, is_classifier
from sklearn.utils.multiclass import check_classification_targets

from ._array_api import device, logsumexp, namespace_name, to_numpy
from ._base import BaseMixtureOfExperts
from ._dask import encode_labels, is_dask_array
from ._experts import SoftmaxExperts

# Floor on a class frequency in the prediction of a dropped sample.
_MIN_FREQUENCY = 1e-6


class MixtureOfExpertsClassifier(ClassifierMixin, BaseMixtureOfExperts):
    """Hierarchical mixture of multinomial-logistic experts, fit by EM.

    The model is :math:`p(c \\mid x) = \\sum_j \\pi_j(x)\\,
    \\operatorname{softmax}(W_j^\\top x + b_j)_c`, where the
    prior :math:`\\pi_j(x)` of leaf :math:`j` is the product of the softmax gate
    probabilities on the path from the root of a tree of ``depth`` levels,
    each gate with ``n_experts`` children (Jordan & Jacobs, 1994). Each
    expert draws a linear boundary in the region its gates trust it with,
    so the mixture draws piecewise-linear boundaries.

    Inputs are standardised internally; the penalties act in those
    standardised units, and the fitted attributes are reported in the
    data's units.

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
    expert : None, "softmax" or classifier, default=None
        The expert at each leaf. ``None`` or ``"softmax"``: a
        multinomial-logistic expert, fit by the same weighted Newton solver
        as the gates; from 30 classes on, every class takes its own Newton
        step from its block of the Hessian, whose full size grows with the
        square of the classes (1,000 classes: 20 EM iterations in
        seconds). A scikit-learn classifier with ``predict_proba`` (a
        calibrated SVC, a Gaussian process, a tree, naive Bayes, a
        ``Pipeline``...): a clone per leaf, fit to the responsibilities as
        ``expert_weighting`` says; its density in the E-step is its
        ``predict_proba``, clipped at 1e-6 and renormalised. A leaf whose
        training samples hold a single class predicts that class.
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
        its ``fit`` takes one (also as a ``Pipeline``'s last step), else
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
        local experts on local data, which keeps expensive learners
        affordable.
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
        (intercepts included), > 0.
    expert_alpha : float, default=1e-2
        L2 penalty on every expert coefficient, > 0. It keeps the experts
        finite on classes they separate perfectly.
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
        and experts. ``"kmeans"``: k-means on the standardised inputs joined
        with the one-hot classes; restarts after the first (``n_init > 1``) start from
        random local partitions, since k-means restarts mostly land on the
        same one. ``"random"``: every sample goes to the nearest of
        ``n_leaves`` samples drawn at random. Either way the clusters are
        placed at the leaves so that siblings are neighbours in ``x``. An
        array gives the responsibilities directly.
    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation, of stochastic EM and of ``gate_noise``
        (and of ``priority="random"`` at prediction).
    warm_start : bool, default=False
        If True, ``fit`` continues EM from the last fit's parameters,
        running a single initialisation. Changed penalties apply from then
        on; a changed ``n_experts`` or ``depth`` starts a new fit.
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
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    gate_coef_ : list of ndarray
        One entry per batch of gates (``tree_.batches``; in a balanced tree
        batch ``d`` is level ``d``). ``gate_coef_[d]`` has shape
        (n_experts ** d, n_features, n_experts) in a balanced tree:
        the weights of every gate of level ``d`` (root: ``d=0``). In any
        tree, batch ``b`` has shape ``(len(tree_.batches[b].nodes),
        n_features, tree_.batches[b].n_children)``.
    gate_intercept_ : list of ndarray
        ``gate_intercept_[b]`` has shape (n_gates of batch ``b``, its
        number of children).
    expert_coef_ : ndarray of shape (n_leaves, n_features, n_classes)
        Weights of every leaf's softmax expert.
    expert_intercept_ : ndarray of shape (n_leaves, n_classes)
        Intercepts of the experts.
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
        Penalised mean log-likelihood per sample of the returned parameters.
        With a learner ``expert``, whose refit may lower it, EM returns its
        best iterate.
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
    MixtureOfExpertsRegressor : The same tree with linear-Gaussian experts.

    Examples
    --------
    >>> import numpy as np
    >>> from hmexperts import MixtureOfExpertsClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(400, 2))
    >>> y = (X[:, 0] * X[:, 1] > 0).astype(int)  # XOR: no single line separates it
    >>> model = MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(X, y)
    >>> model.predict_proba(X[:2]).shape
    (2, 2)
    >>> bool(model.score(X, y) > 0.9)
    True
    """

    _is_regression = False
    _builtin_names = ("softmax",)

    def _target_validation_kwargs(self):
        return {}

    def _validate_target(self, y, sample_weight, xp, reset, dtype):
        y = to_numpy(y, xp)
        check_classification_targets(y)
        if reset:
            self.classes_ = np.unique(y)
        y_enc = np.searchsorted(self.classes_, y)
        if np.any(self.classes_[np.minimum(y_enc, len(self.classes_) - 1)] != y):
            raise ValueError(
                f"y has labels not seen in the first fit, classes_={self.classes_}."
            )
        weight = to_numpy(sample_weight, xp)
        n_weighted = np.unique(y_enc[weight > 0]).size
        if n_weighted < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes with "
                f"positive weight; got {n_weighted} class."
            )
        return xp.asarray(y_enc, device=device(sample_weight))

    def _stream_classes(self, classes):
        """The first ``partial_fit`` call: ``classes_`` from ``classes``."""
        if classes is None:
            raise ValueError(
                "The first call to partial_fit needs classes=, every class the "
                "stream holds (a mini-batch may miss some)."
            )
        classes = np.unique(np.asarray(classes))
        check_classification_targets(classes)
        if len(classes) < 2:
            raise ValueError(f"classes={classes}: a classifier needs at least 2.")
        self.classes_ = classes

    def _stream_target(self, y, xp, dtype):
        """A mini-batch's labels coded by ``classes_``, refusing unseen ones."""
        labels = to_numpy(y, xp)
        check_classification_targets(labels)
        return xp.asarray(encode_labels(labels, self.classes_), device=device(y))

    def _target_scaling(self, y, sample_weight, dtype_name, xp):
        return 0.0, 1.0

    def _encode_target(self, y, Xd, xp):
        y = np.asarray(to_numpy(y, xp) if not isinstance(y, list) else y)
        if y.ndim != 1 or y.shape[0] != Xd.shape[0]:
            raise ValueError(
                f"y has shape {y.shape}; expected ({Xd.shape[0]},), one label per "
                "row of X."
            )
        y_enc = np.searchsorted(self.classes_, y)
        unknown = (y_enc >= len(self.classes_)) | (
            self.classes_[np.minimum(y_enc, len(self.classes_) - 1)] != y
        )
        if np.any(unknown):
            raise ValueError(
                f"y has labels {np.unique(y[unknown])} not in classes_={self.classes_}."
            )
        return xp.asarray(y_enc, device=device(Xd))

    def _check_expert(self):
        if not is_classifier(self.expert):
            raise ValueError(
                f"expert={self.expert!r} is not a classifier. "
                "MixtureOfExpertsClassifier needs a scikit-learn classifier, or None "
                "for the built-in multinomial-logistic expert."
            )
        if not hasattr(self.expert, "predict_proba"):
            raise ValueError(
                f"expert={self.expert!r} has no predict_proba, and EM needs each "
                "expert's class probabilities. Use a classifier with predict_proba "
                "(for an SVC: CalibratedClassifierCV(SVC(), ensemble=False), or "
                "SVC(probability=True) before scikit-learn 1.9)."
            )

    def _learner_task(self):
        return {"n_classes": len(self.classes_), "labels": self.classes_}

    def _draw(self, Xd, leaves, random_state, xp):
        """One label per row from the expert of its leaf."""
        log_proba = to_numpy(self._experts.predict_log_proba(Xd, xp), xp)
        rows = np.arange(len(leaves))
        proba = np.exp(log_proba[:, leaves, rows]).T  # (n_samples, n_classes)
        u = random_state.uniform(size=(len(leaves), 1))
        codes = np.minimum(
            (u > np.cumsum(proba, axis=1)).sum(axis=1), proba.shape[1] - 1
        )
        return self.classes_[codes]

    def _experts_from(self, coef, intercept, n_leaves, n_features, classes=None):
        """The softmax experts of ``from_parameters``, and ``classes_``."""
        if coef.ndim != 3 or coef.shape[:2] != (n_leaves, n_features):
            raise ValueError(
                f"expert_coef has shape {coef.shape}; expected ({n_leaves}, "
                f"{n_features}, n_classes)."
            )
        n_classes = coef.shape[2]
        if intercept.shape != (n_leaves, n_classes):
            raise ValueError(
                f"expert_intercept has shape {intercept.shape}; expected "
                f"({n_leaves}, {n_classes})."
            )
        self.classes_ = np.arange(n_classes) if classes is None else np.asarray(classes)
        if self.classes_.shape != (n_classes,):
            raise ValueError(f"classes must hold {n_classes} labels.")
        bank = SoftmaxExperts(n_leaves, n_classes, self.expert_alpha)
        bank.coef = np.concatenate([coef, intercept[:, None, :]], axis=1)
        return bank

    def _target_marginal(self, y_fit, sample_weight, xp):
        """Log of the weighted class frequencies, floored, where EM ran."""
        y_fit, weight = to_numpy(y_fit, xp), to_numpy(sample_weight, xp)
        counts = np.bincount(y_fit, weights=weight, minlength=len(self.classes_))
        frequency = np.maximum(counts / counts.sum(), _MIN_FREQUENCY)
        marginal = np.log(frequency / frequency.sum())
        return xp.asarray(marginal, device=device(sample_weight))

    def _builtin_experts(self, n_leaves, alpha):
        return SoftmaxExperts(n_leaves, len(self.classes_), alpha)

    def _min_variance(self):
        return None

    def predict_log_proba(self, X):
        """Log of the mixture's class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns ordered as ``classes_``.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsClassifier
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(300, task="classification", n_classes=3, random_state=0)
        >>> model = MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(X, y)
        >>> model.predict_log_proba(X[:2]).shape
        (2, 3)
        """
        if is_dask_array(X):
            return self._lazy(self.predict_log_proba, X, n_columns=len(self.classes_))
        log_proba, xp = self._log_proba(X, "predict_log_proba")
        return self._placement.output(log_proba, xp)

    def _log_proba(self, X, method):
        """The mixture's class log-probabilities in float64, (n_samples,
        n_classes), and the namespace; ``method`` names the caller in errors."""
        Xd, xp = self._prepare(X, method)
        log_weight, mask, dropped = self._route(self._gates.log_prior(Xd, xp), xp)
        log_expert = self._experts.predict_log_proba(Xd, xp, mask)
        log_proba = logsumexp(log_weight[None, :, :] + log_expert, 1, xp)  # (C, n)
        if dropped is not None:  # the training classes' frequencies
            marginal = xp.asarray(
                self._marginal, dtype=log_proba.dtype, device=device(Xd)
            )
            log_proba = xp.where(dropped[None, :], marginal[:, None], log_proba)
        return xp.matrix_transpose(log_proba), xp

    def predict_proba(self, X):
        """Mixture of the experts' class probabilities, ``sum_j pi_j(x) p_j(c | x)``.

        With ``top_k`` or ``pooling="max"``, the sum runs over the leaves the
        sample is routed to, their priors renormalised.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns ordered as ``classes_``; rows sum to 1.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsClassifier
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(300, task="classification", n_classes=3, random_state=0)
        >>> model = MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(X, y)
        >>> model.predict_proba(X[:2]).sum(axis=1).round(6).tolist()
        [1.0, 1.0]
        """
        if is_dask_array(X):
            return self._lazy(self.predict_proba, X, n_columns=len(self.classes_))
        log_proba, xp = self._log_proba(X, "predict_proba")
        proba = xp.exp(log_proba)
        return self._placement.output(proba / xp.sum(proba, axis=1, keepdims=True), xp)

    def predict(self, X):
        """Most probable class under the mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsClassifier
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(300, task="classification", n_classes=3, random_state=0)
        >>> model = MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(X, y)
        >>> set(model.predict(X).tolist()) <= set(model.classes_.tolist())
        True
        """
        if is_dask_array(X):
            return self._lazy(self.predict, X, dtype=self.classes_.dtype)
        log_proba, xp = self._log_proba(X, "predict")
        labels = self.classes_[to_numpy(xp.argmax(log_proba, axis=1), xp)]
        host = self._placement.host_output or namespace_name(xp) == "numpy"
        if host or labels.dtype.kind not in "biuf":
            return labels
        # scikit-learn's convention: numeric labels in the input's namespace
        return xp.asarray(labels, device=device(log_proba))
