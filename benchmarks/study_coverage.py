"""How often the 95% Wald intervals of ``summary`` cover the true coefficients.

Two known flat mixtures of 2 experts (``from_parameters``):

- ``poisson``: Poisson experts on ``x0`` (``log mu_j = b_j + c_j x0``), the
  gate on a concomitant variable ``x1`` alone (``gate_features=[1],
  expert_features=[0]``);
- ``gaussian``: linear-Gaussian experts and the gate on the same single
  feature ``x``.

For each of ``--n-sims`` data sets of ``--n`` rows (``x`` uniform on
``[-2, 2]``, ``y`` drawn by ``sample``) the model is fit by maximum
likelihood (``gate_alpha=expert_alpha=1e-8``, ``tol=1e-8``, ``max_iter=1000``)
and ``summary(X, y)`` gives the Wald intervals. For every expert slope and
intercept and every gate coefficient (child 1 relative to child 0) the table
prints the true value, the share of data sets whose interval covers it, its
binomial Monte-Carlo standard error ``sqrt(p (1 - p) / n_sims)``, the mean
bias of the estimate, the mean ``std_error`` and the empirical standard
deviation of the estimates across data sets (the two should agree). The
pooled rows count every interval of a kind in every data set; their
standard error is that of the per-data-set mean (the intervals of one data
set are not independent).

The leaves' labels: with ``--start truth`` (the default) EM starts from the
true model's posterior responsibilities of the data set
(``init_params=truth.predict_responsibilities(X, y)``), so that the fit's
leaf ``j`` is the true leaf ``j`` and the study measures the intervals, not
EM's local optima. With ``--start kmeans`` EM starts from k-means
(``random_state`` the data set's seed) and each fit's leaves are matched to
the true leaves by the largest agreement of the fit's most responsible leaf
with the leaf that drew each row; the truth is then re-expressed in the
fit's labels (a swap of 2 leaves negates the gate's relative coefficients).

Run from the repository root::

    OPENBLAS_NUM_THREADS=1 python benchmarks/study_coverage.py --n-sims 200
"""

import argparse
import itertools
import time
import warnings

import numpy as np
from _common import print_machine
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning

from hmexperts import MixtureOfExpertsRegressor

#: The two known models: features, gate (child 1 relative to child 0, per
#: column of X, and intercept) and experts (per column of X, and intercept).
MODELS = {
    "poisson": {
        "n_features": 2,
        "gate_coef": [0.0, 2.0],
        "gate_intercept": 0.3,
        "expert_coef": [[0.8, 0.0], [-0.5, 0.0]],
        "expert_intercept": [1.0, 2.0],
        "params": {"expert": "poisson", "gate_features": [1], "expert_features": [0]},
        "extra": {},
    },
    "gaussian": {
        "n_features": 1,
        "gate_coef": [-2.0],
        "gate_intercept": 0.5,
        "expert_coef": [[1.0], [-0.8]],
        "expert_intercept": [1.0, -1.0],
        "params": {"expert": "linear"},
        "extra": {"expert_variance": np.array([0.25, 0.5])},
    },
}


def true_model(spec):
    """The known mixture of ``spec`` (child 0 of the gate at zero)."""
    gate = np.zeros((1, spec["n_features"], 2))
    gate[0, :, 1] = spec["gate_coef"]
    return MixtureOfExpertsRegressor.from_parameters(
        gate_coef=[gate],
        gate_intercept=[np.array([[0.0, spec["gate_intercept"]]])],
        expert_coef=np.array(spec["expert_coef"], dtype=float),
        expert_intercept=np.array(spec["expert_intercept"], dtype=float),
        **spec["params"],
        **spec["extra"],
    )


def true_coefficients(spec, table, perm):
    """The true value of every row of ``table`` when the fit's leaf ``k``
    is the true leaf ``perm[k]``."""
    gate = np.zeros((spec["n_features"] + 1, 2))
    gate[:-1, 1] = spec["gate_coef"]
    gate[-1, 1] = spec["gate_intercept"]
    coef = np.array(spec["expert_coef"], dtype=float)
    intercept = np.array(spec["expert_intercept"], dtype=float)
    values = []
    for kind, node, output, feature in table[
        ["kind", "node", "output", "feature"]
    ].itertuples(index=False):
        column = -1 if feature == "intercept" else int(feature)
        if kind == "gate":
            values.append(gate[column, perm[output]] - gate[column, perm[0]])
        elif feature == "intercept":
            values.append(intercept[perm[node]])
        else:
            values.append(coef[perm[node], column])
    return np.array(values)


def best_permutation(fit_leaves, true_leaves, n_leaves):
    """``perm[k]``: the true leaf of the fit's leaf ``k``, the permutation
    with the most rows whose fitted leaf matches their true leaf."""
    return max(
        itertools.permutations(range(n_leaves)),
        key=lambda p: np.sum(np.asarray(p)[fit_leaves] == true_leaves),
    )


def label(kind, node, feature):
    name = "intercept" if feature == "intercept" else f"x{feature} slope"
    return f"gate {name}" if kind == "gate" else f"expert {node} {name}"


def simulate(name, spec, n_sims, n, start, level):
    """Estimates, standard errors, truths and coverage of every row, per
    data set; the row labels; the number of fits that did not converge."""
    truth = true_model(spec)
    z = norm.ppf(0.5 + level / 2)
    rows, estimates, errors, truths, covered = None, [], [], [], []
    not_converged = swapped = 0
    for seed in range(n_sims):
        rng = np.random.RandomState(seed)
        X = rng.uniform(-2, 2, size=(n, spec["n_features"]))
        y, leaves = truth.sample(X, random_state=rng, return_leaves=True)
        init = truth.predict_responsibilities(X, y) if start == "truth" else start
        model = MixtureOfExpertsRegressor(
            2,
            gate_alpha=1e-8,
            expert_alpha=1e-8,
            tol=1e-8,
            max_iter=1000,
            init_params=init,
            random_state=seed,
            **spec["params"],
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        not_converged += not model.converged_
        table = model.summary(X, y, alpha=1 - level)
        if start == "truth":
            perm = (0, 1)
        else:
            fit_leaves = model.predict_responsibilities(X, y).argmax(axis=1)
            perm = best_permutation(fit_leaves, leaves, 2)
        swapped += perm != (0, 1)
        value = true_coefficients(spec, table, perm)
        estimate = table["estimate"].to_numpy()
        error = table["std_error"].to_numpy()
        # In the true labels, so that the rows pool across data sets: a
        # swap of the 2 leaves swaps the experts and negates the gate.
        inverse = np.argsort(perm)
        order = np.array(
            [
                r if kind == "gate" else _row_of(table, kind, inverse[node], feature)
                for r, (kind, node, feature) in enumerate(
                    table[["kind", "node", "feature"]].itertuples(index=False)
                )
            ]
        )
        sign = np.where(
            (table["kind"] == "gate").to_numpy() & (perm != (0, 1)), -1.0, 1.0
        )
        estimates.append(sign * estimate[order])
        errors.append(error[order])
        truths.append(sign * value[order])
        covered.append(np.abs(estimate - value)[order] <= z * error[order])
        if rows is None:
            rows = [
                (kind, label(kind, node, feature))
                for kind, node, feature in table[
                    ["kind", "node", "feature"]
                ].itertuples(index=False)
            ]
    return {
        "name": name,
        "rows": rows,
        "estimate": np.array(estimates),
        "std_error": np.array(errors),
        "truth": np.array(truths),
        "covered": np.array(covered),
        "not_converged": not_converged,
        "swapped": swapped,
    }


def _row_of(table, kind, node, feature):
    """Index of the row of ``table`` of that expert's coefficient."""
    match = (
        (table["kind"] == kind)
        & (table["node"] == node)
        & (table["feature"].astype(str) == str(feature))
    )
    return int(np.flatnonzero(match.to_numpy())[0])


def report(result, level, band):
    n_sims = result["covered"].shape[0]
    print(
        f"\n{result['name']}: {n_sims} data sets; fits not converged "
        f"(tol=1e-8, max_iter=1000): {result['not_converged']}; "
        f"leaves swapped: {result['swapped']}"
    )
    print(
        f"{'parameter':<22} {'truth':>6} {'cover %':>8} {'MC se':>6} "
        f"{'bias':>8} {'mean se':>8} {'sd est':>8} {'se/sd':>6} {'band':>5}"
    )
    low, high = band
    for j, (_, name) in enumerate(result["rows"]):
        p = result["covered"][:, j].mean()
        mc = np.sqrt(p * (1 - p) / n_sims)
        bias = (result["estimate"][:, j] - result["truth"][:, j]).mean()
        se = result["std_error"][:, j].mean()
        sd = result["estimate"][:, j].std(ddof=1)
        inside = "yes" if low <= 100 * p <= high else "NO"
        print(
            f"{name:<22} {result['truth'][0, j]:6.2f} {100 * p:8.1f} "
            f"{100 * mc:6.2f} {bias:8.4f} {se:8.4f} {sd:8.4f} {se / sd:6.3f} "
            f"{inside:>5}"
        )
    groups = {
        "pooled expert slopes": ("expert", False),
        "pooled expert intcpts": ("expert", True),
        "pooled gate slopes": ("gate", False),
        "pooled gate intcpts": ("gate", True),
    }
    for name, (kind, is_intercept) in groups.items():
        columns = [
            j
            for j, (k, row) in enumerate(result["rows"])
            if k == kind and row.endswith("intercept") == is_intercept
        ]
        per_set = result["covered"][:, columns].mean(axis=1)
        p = per_set.mean()
        mc = per_set.std(ddof=1) / np.sqrt(n_sims)
        print(f"{name:<22} {'':>6} {100 * p:8.1f} {100 * mc:6.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sims", type=int, default=200)
    parser.add_argument("--n", type=int, default=500, help="rows per data set")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--start", choices=["truth", "kmeans"], default="truth")
    parser.add_argument("--level", type=float, default=0.95)
    args = parser.parse_args()
    print_machine()
    band = (100 * args.level - 2, 100 * args.level + 2)
    print(
        f"n={args.n} rows per data set, start={args.start}, "
        f"{100 * args.level:g}% Wald intervals; band {band[0]:g}-{band[1]:g}%"
    )
    for name in args.models:
        start = time.perf_counter()
        result = simulate(
            name, MODELS[name], args.n_sims, args.n, args.start, args.level
        )
        report(result, args.level, band)
        print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
