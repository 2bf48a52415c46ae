"""A straightforward EM for a flat mixture of linear experts, from scikit-learn parts.

The baseline of ``bench_em.py --part baseline``: what a practitioner writes
without hmexperts.

- E-step: responsibilities from the gate's ``predict_log_proba`` and each
  expert's Gaussian log-density (``scipy.special.logsumexp``).
- M-step, gate: ``LogisticRegression`` fit on the data replicated once per
  expert, each copy labelled with its expert and weighted by the
  responsibility (the soft-target multinomial likelihood), warm-started.
- M-step, experts: one ``LinearRegression(sample_weight=...)`` per expert and
  the weighted residual variance.

It starts from the same k-means partition as hmexperts (``n_init=1``), runs
to the same tolerance on the same objective scale (mean log-likelihood per
sample), and reports its final mean log-likelihood.
"""

import numpy as np
from scipy.special import logsumexp
from sklearn.cluster import KMeans
from sklearn.linear_model import LinearRegression, LogisticRegression


def sklearn_em(X, y, n_experts, *, max_iter=100, tol=1e-4, random_state=0):
    """Fit the mixture by EM from scikit-learn parts.

    Returns
    -------
    log_likelihood : float
        Final mean log-likelihood per sample.
    n_iter : int
        EM iterations run.
    """
    n = X.shape[0]
    mean, scale = X.mean(axis=0), X.std(axis=0)
    Xs = (X - mean) / scale
    ys = (y - y.mean()) / y.std()
    labels = KMeans(
        n_clusters=n_experts, n_init=1, max_iter=30, random_state=random_state
    ).fit_predict(np.column_stack([Xs, ys]))
    resp = np.eye(n_experts)[labels]
    gate = LogisticRegression(C=100.0, max_iter=200, warm_start=True)
    experts = [LinearRegression() for _ in range(n_experts)]
    X_rep = np.tile(Xs, (n_experts, 1))
    y_rep = np.repeat(np.arange(n_experts), n)
    previous = -np.inf
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (returned)
        # M-step
        gate.fit(X_rep, y_rep, sample_weight=resp.T.reshape(-1) + 1e-12)
        means = np.empty((n, n_experts))
        variance = np.empty(n_experts)
        for j, expert in enumerate(experts):
            expert.fit(Xs, ys, sample_weight=resp[:, j] + 1e-12)
            means[:, j] = expert.predict(Xs)
            resid2 = (ys - means[:, j]) ** 2
            variance[j] = max(
                np.sum(resp[:, j] * resid2) / max(resp[:, j].sum(), 1e-12), 1e-3
            )
        # E-step
        log_density = -0.5 * (
            np.log(2 * np.pi * variance) + (ys[:, None] - means) ** 2 / variance
        )
        log_joint = gate.predict_log_proba(Xs) + log_density
        log_norm = logsumexp(log_joint, axis=1)
        resp = np.exp(log_joint - log_norm[:, None])
        log_likelihood = log_norm.mean() - np.log(y.std())
        if abs(log_likelihood - previous) < tol:
            break
        previous = log_likelihood
    return log_likelihood, n_iter
