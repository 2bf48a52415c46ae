"""Inference on a fitted mixture: ``summary``, ``vcov`` and ``icl``.

A mixin of both estimators. The Wald standard errors come from the
observed information matrix (``_inference``); the bootstrap refits the
model on resampled rows, every refit started from the fitted model's
responsibilities on its rows so that its leaves keep their labels, and
with the fitted tree's shape (a grown tree is not grown again).
"""

import array_api_compat.numpy
import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.utils import _safe_indexing, check_random_state

from ._inference import (
    Layout,
    check_alpha,
    covariance,
    data_units,
    entropy,
    estimates,
    feature_label,
    observed_information,
    wald_table,
)
from ._learners import is_learner
from ._scaling import check_sample_weight

_METHODS = ("wald", "bootstrap")
_COLUMNS = [
    "kind",
    "node",
    "output",
    "feature",
    "estimate",
    "std_error",
    "z",
    "p_value",
    "ci_low",
    "ci_high",
]


def _pandas():
    try:
        import pandas
    except ImportError as error:  # pragma: no cover - pandas is a test extra
        raise ImportError(
            "summary returns a pandas DataFrame, and pandas is not installed: "
            "pip install pandas."
        ) from error
    return pandas


def _refit(model, X, y, sample_weight, seed):
    """One bootstrap replicate: the model refit on rows drawn with
    replacement, started from the fitted model's responsibilities on them;
    its reported coefficients in data units, in the order of the model's.

    A grown tree (``tree="grow"``) is refit with its fitted shape
    (``tree_.to_nested()``), whose nodes are numbered anew: the replicate's
    rows are matched to the model's by every gate's path from the root."""
    rng = np.random.RandomState(seed)
    n = X.shape[0]
    rows = rng.randint(n, size=n)
    Xb, yb = _safe_indexing(X, rows), _safe_indexing(y, rows)
    wb = None if sample_weight is None else np.asarray(sample_weight)[rows]
    start = model.predict_responsibilities(Xb, yb, wb if model._has_trials() else None)
    params = {"init_params": start, "n_init": 1, "warm_start": False, "verbose": 0}
    if isinstance(model.tree, str) and model.tree == "grow":
        params["tree"] = model.tree_.to_nested()
    replica = clone(model).set_params(**params)
    replica.fit(Xb, yb, sample_weight=wb)
    values, layout, _ = _coefficients(replica)
    if replica.tree_.children == model.tree_.children:
        return values
    position = {_row_key(replica.tree_, row): r for r, row in enumerate(layout.rows)}
    return values[[position[_row_key(model.tree_, row)] for row in Layout(model).rows]]


def _row_key(tree, row):
    """A reported coefficient, with its gate named by its path from the
    root (the child positions taken) rather than by its node id."""
    node = row["node"]
    if row["kind"] == "gate":
        path = []
        while tree.parent[node] != -1:
            path.append(tree.children[tree.parent[node]].index(node))
            node = tree.parent[node]
        node = tuple(path[::-1])
    return row["kind"], node, row["output"], row["column"]


def _coefficients(model):
    """The reported coefficients in data units and their layout."""
    layout = Layout(model)
    A, shift = data_units(model, layout)
    return A @ estimates(model, layout) + shift, layout, A


class InferenceMixin:
    """``summary``, ``vcov`` and ``icl`` of a fitted mixture."""

    def _frequency_weights(self, sample_weight, n):
        """Frequency weights as NumPy (ones for binomial experts, whose
        weights are trials)."""
        if sample_weight is None or self._has_trials():
            return np.ones(n)
        weight, factor, _ = check_sample_weight(
            sample_weight, n, array_api_compat.numpy, "cpu"
        )
        return np.asarray(weight) / factor

    def _covariance(self, X, y, sample_weight, method, n_boot, n_jobs, random_state):
        """Estimates and their covariance (data units), and the layout."""
        if method not in _METHODS:
            raise ValueError(f"method={method!r}; expected one of {list(_METHODS)}.")
        if method == "wald":
            if is_learner(self):
                raise ValueError(
                    f"expert={self.expert!r} has no likelihood in closed form "
                    "for its parameters, so Wald standard errors are not "
                    "defined; use method='bootstrap' (the gates' coefficients)."
                )
            Xd, y_fit, xp = self._encoded(X, y, "summary", sample_weight)
            weight = self._frequency_weights(sample_weight, Xd.shape[0])
            info, layout = observed_information(self, Xd, y_fit, weight, xp)
            index = [row["index"] for row in layout.rows]
            cov = covariance(info)[np.ix_(index, index)]
            estimate, _, A = _coefficients(self)
            return estimate, A @ cov @ A.T, layout
        estimate, layout, _ = _coefficients(self)
        if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer):
            raise ValueError(f"n_boot={n_boot!r}; it must be an int >= 2.")
        if n_boot < 2:
            raise ValueError(f"n_boot={n_boot}; at least 2 refits are needed.")
        seeds = check_random_state(random_state).randint(2**31, size=n_boot)
        replicates = Parallel(n_jobs=n_jobs)(
            delayed(_refit)(self, X, y, sample_weight, seed) for seed in seeds
        )
        self._bootstrap = np.array(replicates)
        return estimate, np.cov(self._bootstrap, rowvar=False), layout

    def summary(
        self,
        X,
        y,
        sample_weight=None,
        *,
        alpha=0.05,
        method="wald",
        n_boot=200,
        n_jobs=None,
        random_state=None,
    ):
        """Table of the coefficients with standard errors, z and p-values.

        One row per coefficient, in the data's units: every gate's
        coefficients of its children ``1 .. k - 1`` relative to child 0
        for a gate of ``k`` children (the reference, fixed at zero, as
        flexmix reports a concomitant model; ``k = n_experts`` in a
        balanced tree), and every expert's coefficients (a classifier's
        softmax experts: classes ``classes_[1:]`` relative to
        ``classes_[0]``). Learner experts have no coefficients: their
        table holds the gates only.

        ``method="wald"``: standard errors from the observed information
        matrix of the log-likelihood of ``(X, y)`` at the fitted
        parameters, exactly (Louis' identity, per sample; see the user
        guide), with the variances, dispersions and gamma shapes among the
        parameters and the Student-t degrees of freedom held at their
        estimates. The L2 penalties are not part of the information: with
        the defaults the estimates are those of a likelihood with a prior
        worth about ``1e-2`` samples; set ``gate_alpha`` and
        ``expert_alpha`` to ``1e-8`` for maximum likelihood proper (as
        flexmix). The Wald errors are those of the maximum: fit with a small
        ``tol`` (e.g. ``1e-8``; the default ``1e-4`` stops EM a little short,
        which on a flat likelihood can leave the information indefinite).
        ``method="bootstrap"``: the standard deviation and the percentile
        interval of ``n_boot`` refits on rows drawn with
        replacement, each started from this model's responsibilities on
        its rows (so that the leaves keep their labels).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The data the model was fit on (or other data from the same
            population, for the Wald standard errors).
        y : array-like of shape (n_samples,)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights; for binomial experts, the trials of every row.
        alpha : float, default=0.05
            The intervals cover ``1 - alpha``.
        method : {"wald", "bootstrap"}, default="wald"
            How the standard errors are found.
        n_boot : int, default=200
            Bootstrap refits (``method="bootstrap"``).
        n_jobs : int, default=None
            Refits run in parallel (joblib; None: one at a time).
        random_state : int, RandomState instance or None, default=None
            Seed of the bootstrap's draws.

        Returns
        -------
        table : pandas.DataFrame
            Columns ``kind`` ("gate" or "expert"), ``node`` (the gate's
            node in ``tree_``, node 0 the root, numbered level by level in
            a balanced tree; or the expert's leaf), ``output`` (the gate's
            child, the class, or the target's column: 0 for one target),
            ``feature`` (the column's name, or its index without names;
            "intercept"), ``estimate``, ``std_error``, ``z``, ``p_value``
            (two-sided), ``ci_low`` and ``ci_high``. The gates come first,
            in the order of ``tree_.gates`` (that of ``gate_coef_``), then
            the experts by leaf.

        Examples
        --------
        >>> import numpy as np
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> rng = np.random.RandomState(0)
        >>> X = rng.uniform(-2, 2, size=(600, 2))
        >>> upper = rng.uniform(size=600) < 1 / (1 + np.exp(-3 * X[:, 1]))
        >>> eta = np.where(upper, 1 + 0.8 * X[:, 0], 2 - 0.5 * X[:, 0])
        >>> y = rng.poisson(np.exp(eta))
        >>> model = MixtureOfExpertsRegressor(
        ...     2, expert="poisson", gate_features=[1], expert_features=[0],
        ...     random_state=0,
        ... ).fit(X, y)
        >>> table = model.summary(X, y)
        >>> list(table["feature"])
        [1, 'intercept', 0, 'intercept', 0, 'intercept']
        >>> bool((table["p_value"][table["feature"] == 0] < 1e-6).all())
        True
        """
        alpha = check_alpha(alpha)
        estimate, cov, layout = self._covariance(
            X, y, sample_weight, method, n_boot, n_jobs, random_state
        )
        std_error, z, p_value, low, high = wald_table(estimate, cov, alpha)
        if method == "bootstrap":
            low, high = np.percentile(
                self._bootstrap, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0
            )
            del self._bootstrap
        pandas = _pandas()
        table = pandas.DataFrame(
            {
                "kind": [row["kind"] for row in layout.rows],
                "node": [row["node"] for row in layout.rows],
                "output": [row["output"] for row in layout.rows],
                "feature": [feature_label(self, row["column"]) for row in layout.rows],
                "estimate": estimate,
                "std_error": std_error,
                "z": z,
                "p_value": p_value,
                "ci_low": low,
                "ci_high": high,
            },
            columns=_COLUMNS,
        )
        return table

    def vcov(
        self,
        X,
        y,
        sample_weight=None,
        *,
        method="wald",
        n_boot=200,
        n_jobs=None,
        random_state=None,
    ):
        """Covariance matrix of the coefficients that ``summary`` reports.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights; for binomial experts, the trials of every row.
        method : {"wald", "bootstrap"}, default="wald"
            The inverse observed information, or the covariance of
            bootstrap refits (see ``summary``).
        n_boot : int, default=200
            Bootstrap refits.
        n_jobs : int, default=None
            Refits run in parallel (joblib).
        random_state : int, RandomState instance or None, default=None
            Seed of the bootstrap's draws.

        Returns
        -------
        cov : ndarray of shape (n_coefficients, n_coefficients)
            In the data's units, rows and columns in the order of the rows
            of ``summary``.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(400, noise=0.2, random_state=0)
        >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
        >>> cov = model.vcov(X, y)
        >>> cov.shape == (len(model.summary(X, y)),) * 2
        True
        """
        _, cov, _ = self._covariance(
            X, y, sample_weight, method, n_boot, n_jobs, random_state
        )
        self.__dict__.pop("_bootstrap", None)
        return cov

    def icl(self, X, y, sample_weight=None):
        """Integrated completed likelihood criterion; lower is better.

        ``bic(X, y) + 2 sum_i w_i sum_j -r_ij log r_ij``: the BIC plus
        twice the entropy of the posterior classification of the samples
        among the leaves (Biernacki, Celeux & Govaert, 2000), which favours
        mixtures whose experts are well separated.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights; for binomial experts, the trials of every row.

        Returns
        -------
        icl : float
            The criterion, never below ``bic``.

        References
        ----------
        C. Biernacki, G. Celeux and G. Govaert (2000). Assessing a mixture
        model for clustering with the integrated completed likelihood. IEEE
        Transactions on Pattern Analysis and Machine Intelligence 22(7),
        719-725.

        Examples
        --------
        >>> from hmexperts import MixtureOfExpertsRegressor
        >>> from hmexperts.datasets import make_moe
        >>> X, y, _ = make_moe(400, noise=0.2, random_state=0)
        >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
        >>> bool(model.icl(X, y) >= model.bic(X, y))
        True
        """
        resp = np.asarray(self.predict_responsibilities(X, y, sample_weight))
        weight = self._frequency_weights(sample_weight, resp.shape[0])
        return self.bic(X, y, sample_weight) + 2 * entropy(resp, weight)
