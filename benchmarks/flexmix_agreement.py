"""Agreement with R's flexmix: log-likelihoods, estimates, standard errors.

Draws three data sets of ``--n`` rows from known 2-component models and fits
each with flexmix (``Rscript benchmarks/flexmix_agreement.R``, Debian's
``r-cran-flexmix``) and with ``MixtureOfExpertsRegressor(n_experts=2,
gate_alpha=1e-8, expert_alpha=1e-8)`` (no penalty: maximum likelihood, as
flexmix):

- ``poisson``: Poisson experts on ``x1``, a concomitant logistic gate on
  ``x2`` (``flexmix(y ~ x1, k=2, model=FLXMRglm(family="poisson"),
  concomitant=FLXPmultinom(~x2))``; ``expert="poisson",
  gate_features=["x2"], expert_features=["x1"]``);
- ``binomial``: binomial experts on ``x1`` with 1 to 40 trials a row, a
  concomitant gate on ``x2`` (``FLXMRglm(cbind(succ, fail) ~ x1,
  family="binomial")``; ``expert="binomial"``, ``y = succ / trials``,
  ``sample_weight = trials``);
- ``gaussian``: linear-Gaussian experts on ``x1`` with a constant gate
  (``FLXMRglm(y ~ x1)``, ``FLXPconstant``; ``expert="linear",
  gate_features=[]``).

flexmix keeps the best of ``--nrep`` random starts (``stepFlexmix``) at
``tolerance=1e-10``, then ``refit()``: BFGS from the EM estimates over all
parameters (the Gaussian ``log(sigma)`` included) with ``optim``'s
numerical Hessian, whose inverse gives the standard errors that
``summary(refit(fit))`` prints. hmexperts keeps the best of ``--nrep``
k-means starts (``n_init``) at ``tol=1e-10`` and its ``summary`` gives Wald
standard errors from the exact observed information. Components are matched
by their expert coefficients; a gate's sign flips when the reference
component differs.

A third opinion, independent of both libraries: this script's own numpy
log-likelihood of each model, evaluated at hmexperts' estimates (checked
against ``log_likelihood(...).sum()``), and its Hessian by central
differences (``num SE``), inverted.

Printed: per data set, the total log-likelihoods (flexmix's EM ``logLik``,
flexmix at its refit's BFGS optimum, hmexperts with ``n_init=nrep`` and
with ``n_init=1``), the wall-clock times (the fastest of ``--repeats``; also
at each library's default tolerance), then one row per parameter:
estimates, their difference in flexmix standard errors, both standard
errors and their relative difference ``(hmexperts - flexmix) / flexmix``.

Run from the repository root, one BLAS thread (R and Python)::

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \\
        python benchmarks/flexmix_agreement.py
"""

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _common import print_machine
from scipy.special import expit, gammaln, log_expit, logsumexp
from sklearn.exceptions import ConvergenceWarning

from hmexperts import MixtureOfExpertsRegressor

R_SCRIPT = Path(__file__).with_name("flexmix_agreement.R")
TIGHT_TOL = 1e-10


def simulate(n, seed):
    """The three data sets, as DataFrames of their CSV columns."""
    rng = np.random.default_rng(seed)
    # Poisson: gate P(component 2 | x2) = expit(-0.5 + 1.5 x2).
    x1, x2 = rng.uniform(-2, 2, size=(2, n))
    second = rng.uniform(size=n) < expit(-0.5 + 1.5 * x2)
    eta = np.where(second, 2.0 - 0.5 * x1, 1.0 + 0.8 * x1)
    poisson = pd.DataFrame({"x1": x1, "x2": x2, "y": rng.poisson(np.exp(eta))})
    # Binomial: gate expit(0.3 - 1.0 x2), 1 to 40 trials a row.
    x1 = rng.normal(size=n)
    x2 = rng.uniform(-2, 2, size=n)
    second = rng.uniform(size=n) < expit(0.3 - 1.0 * x2)
    eta = np.where(second, 1.0 - 0.7 * x1, -1.5 + 1.0 * x1)
    trials = rng.integers(1, 41, size=n)
    succ = rng.binomial(trials, expit(eta))
    binomial = pd.DataFrame(
        {"x1": x1, "x2": x2, "succ": succ, "fail": trials - succ, "trials": trials}
    )
    # Gaussian: constant gate P(component 2) = 0.35.
    x1 = rng.uniform(-2, 2, size=n)
    second = rng.uniform(size=n) < 0.35
    y = np.where(
        second,
        -0.5 - 1.0 * x1 + rng.normal(scale=1.0, size=n),
        1.0 + 2.0 * x1 + rng.normal(scale=0.5, size=n),
    )
    gaussian = pd.DataFrame({"x1": x1, "y": y})
    return {"poisson": poisson, "binomial": binomial, "gaussian": gaussian}


def problem(name, data):
    """``(X, y, sample_weight, estimator keywords)`` of a data set."""
    if name == "poisson":
        return data[["x1", "x2"]], data["y"].to_numpy(float), None, {
            "expert": "poisson", "gate_features": ["x2"], "expert_features": ["x1"],
        }  # fmt: skip
    if name == "binomial":
        trials = data["trials"].to_numpy(float)
        return data[["x1", "x2"]], data["succ"] / trials, trials, {
            "expert": "binomial", "gate_features": ["x2"], "expert_features": ["x1"],
        }  # fmt: skip
    return data[["x1"]], data["y"].to_numpy(float), None, {
        "expert": "linear", "gate_features": [],
    }  # fmt: skip


def fit_hmexperts(X, y, weight, keywords, n_init, tol, repeats):
    """The fastest of ``repeats`` identical fits, and its model."""
    best = np.inf
    for _ in range(repeats):
        model = MixtureOfExpertsRegressor(
            2, gate_alpha=1e-8, expert_alpha=1e-8, n_init=n_init, tol=tol,
            max_iter=5000, random_state=0, **keywords,
        )  # fmt: skip
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y, sample_weight=weight)
        best = min(best, time.perf_counter() - start)
    return model, best


# --- an independent log-likelihood, in flexmix's parametrisation -----------
# theta = [comp 1 expert coefficients (intercept, x1) (+ log sigma),
#          comp 2 expert coefficients (+ log sigma),
#          gate of comp 2 against comp 1 (intercept (, x2))]


def numpy_loglik(name, data, theta):
    """Total log-likelihood of the 2-component model at ``theta``."""
    x1 = data["x1"].to_numpy()
    width = 3 if name == "gaussian" else 2
    comps = []
    for k in range(2):
        b = theta[k * width : (k + 1) * width]
        eta = b[0] + b[1] * x1
        if name == "poisson":
            y = data["y"].to_numpy(float)
            comps.append(y * eta - np.exp(eta) - gammaln(y + 1))
        elif name == "binomial":
            s, f = data["succ"].to_numpy(float), data["fail"].to_numpy(float)
            coef = gammaln(s + f + 1) - gammaln(s + 1) - gammaln(f + 1)
            comps.append(coef + s * log_expit(eta) + f * log_expit(-eta))
        else:
            y = data["y"].to_numpy(float)
            z = (y - eta) / np.exp(b[2])
            comps.append(-0.5 * z**2 - b[2] - 0.5 * np.log(2 * np.pi))
    gate = theta[2 * width :]
    logit = np.full(len(x1), gate[0])
    if len(gate) > 1:
        logit += gate[1] * data["x2"].to_numpy()
    log_prior = np.stack([log_expit(-logit), log_expit(logit)], axis=1)
    return logsumexp(log_prior + np.stack(comps, axis=1), axis=1).sum()


def numerical_hessian(fun, theta, step=1e-4):
    """Central-difference Hessian of ``fun`` at ``theta``."""
    p = len(theta)
    hess = np.empty((p, p))
    for i in range(p):
        for j in range(i, p):
            total = 0.0
            for si, sj, sign in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)):
                point = np.array(theta, dtype=float)
                point[i] += si * step
                point[j] += sj * step
                total += sign * fun(point)
            hess[i, j] = hess[j, i] = total / (4 * step * step)
    return hess


def hmexperts_theta(name, model, table, leaves):
    """hmexperts' estimates in the layout of ``numpy_loglik``, with
    ``leaves[k]`` the leaf standing for flexmix's component ``k + 1``."""
    expert = table[table["kind"] == "expert"]
    theta = []
    for leaf in leaves:
        rows = expert[expert["node"] == leaf].set_index("feature")["estimate"]
        theta += [rows["intercept"], rows["x1"]]
        if name == "gaussian":
            theta.append(0.5 * np.log(model.expert_variance_[leaf]))
    gate = table[table["kind"] == "gate"].set_index("feature")["estimate"]
    sign = 1.0 if leaves[0] == 0 else -1.0
    theta.append(sign * gate["intercept"])
    if "x2" in gate.index:
        theta.append(sign * gate["x2"])
    return np.array(theta)


def flexmix_names(name):
    """flexmix's names of the parameters, in ``numpy_loglik``'s order."""
    names = []
    for k in (1, 2):
        names += [f"model.1_Comp.{k}_coef.(Intercept)", f"model.1_Comp.{k}_coef.x1"]
        if name == "gaussian":
            names.append(f"model.1_Comp.{k}_log(sigma)")
    if name == "gaussian":
        names.append("concomitant_Comp.2.alpha")
    else:
        names += ["concomitant_Comp.2.(Intercept)", "concomitant_Comp.2.x2"]
    return names


def hmexperts_ses(name, table, leaves):
    """hmexperts' Wald SEs in ``numpy_loglik``'s order (nan for log sigma)."""
    expert = table[table["kind"] == "expert"]
    ses = []
    for leaf in leaves:
        rows = expert[expert["node"] == leaf].set_index("feature")["std_error"]
        ses += [rows["intercept"], rows["x1"]]
        if name == "gaussian":
            ses.append(np.nan)
    gate = table[table["kind"] == "gate"].set_index("feature")["std_error"]
    ses.append(gate["intercept"])
    if "x2" in gate.index:
        ses.append(gate["x2"])
    return np.array(ses)


def run_flexmix(datasets, nrep, repeats):
    """Write the CSVs, run the R script, read its results back."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        raise SystemExit("Rscript not found: apt-get install r-cran-flexmix")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in datasets.items():
            data.to_csv(os.path.join(tmp, f"{name}.csv"), index=False)
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        subprocess.run(
            [rscript, str(R_SCRIPT), tmp, str(nrep), str(repeats)],
            check=True, env=env,
        )  # fmt: skip
        for name in datasets:
            coef = pd.read_csv(os.path.join(tmp, f"{name}_coef.csv"))
            info = pd.read_csv(os.path.join(tmp, f"{name}_info.csv")).iloc[0]
            results[name] = coef.set_index("parameter"), info
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1500, help="rows (default 1500)")
    parser.add_argument("--nrep", type=int, default=10, help="starts (default 10)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs, fastest kept (default 3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    args = parser.parse_args()
    print_machine()
    datasets = simulate(args.n, args.seed)
    flexmix = run_flexmix(datasets, args.nrep, args.repeats)
    info0 = next(iter(flexmix.values()))[1]
    print(f"flexmix {info0['flexmix']}, {info0['r']}\n")

    rows, summaries = [], []
    for name, data in datasets.items():
        coef, info = flexmix[name]
        X, y, weight, keywords = problem(name, data)
        model, seconds = fit_hmexperts(
            X, y, weight, keywords, args.nrep, TIGHT_TOL, args.repeats
        )
        one, one_seconds = fit_hmexperts(
            X, y, weight, keywords, 1, TIGHT_TOL, args.repeats
        )
        default, default_seconds = fit_hmexperts(
            X, y, weight, keywords, args.nrep, 1e-4, args.repeats
        )
        start = time.perf_counter()
        table = model.summary(X, y, weight)
        summary_seconds = time.perf_counter() - start
        loglik = model.log_likelihood(X, y, weight).sum()

        names = flexmix_names(name)
        fx_est = coef.loc[names, "estimate"].to_numpy()
        fx_se = coef.loc[names, "std_error"].to_numpy()
        fx_em = coef.loc[names, "em_estimate"].to_numpy()
        # Match the components by the expert coefficients.
        candidates = [(0, 1), (1, 0)]
        thetas = [hmexperts_theta(name, model, table, c) for c in candidates]
        width = 6 if name == "gaussian" else 4
        gaps = [np.sum((t[:width] - fx_est[:width]) ** 2) for t in thetas]
        leaves = candidates[int(np.argmin(gaps))]
        theta = thetas[int(np.argmin(gaps))]
        hm_se = hmexperts_ses(name, table, leaves)
        own = numpy_loglik(name, data, theta)
        own_fx = numpy_loglik(name, data, fx_est)
        hess = numerical_hessian(lambda t, d=data, n=name: numpy_loglik(n, d, t), theta)
        num_se = np.sqrt(np.diag(np.linalg.inv(-hess)))

        summaries.append(
            {
                "data set": name,
                "flexmix EM": info["loglik"],
                "flexmix refit": info["loglik_refit"],
                "hmexperts": loglik,
                "hmexp n_init=1": one.log_likelihood(X, y, weight).sum(),
                "hm - fx EM": loglik - info["loglik"],
                "hm - fx refit": loglik - info["loglik_refit"],
                "numpy @hm": own - loglik,
                "numpy @fx": own_fx - info["loglik_refit"],
                "fx (s)": info["seconds"],
                "hm (s)": seconds,
                "fx/hm": info["seconds"] / seconds,
                "hm 1 (s)": one_seconds,
                "fx dflt (s)": info["default_seconds"],
                "hm dflt (s)": default_seconds,
                "dflt fx/hm": info["default_seconds"] / default_seconds,
                "fx dflt LL": info["default_loglik"],
                "hm dflt LL": default.log_likelihood(X, y, weight).sum(),
                "refit (s)": info["refit_seconds"],
                "summary (s)": summary_seconds,
                "refit/summ": info["refit_seconds"] / summary_seconds,
                "fx iter": info["iterations"],
                "hm iter": model.n_iter_,
                "leaves": leaves,
            }
        )
        for i, parameter in enumerate(names):
            rows.append(
                {
                    "data set": name,
                    "parameter": parameter.replace("model.1_", "").replace(
                        "concomitant_", "gate_"
                    ),
                    "fx EM est": fx_em[i],
                    "fx est": fx_est[i],
                    "hm est": theta[i],
                    "dEst/fxSE": (theta[i] - fx_est[i]) / fx_se[i],
                    "fx SE": fx_se[i],
                    "hm SE": hm_se[i],
                    "rel SE": (hm_se[i] - fx_se[i]) / fx_se[i],
                    "num SE": num_se[i],
                    "num/fx-1": num_se[i] / fx_se[i] - 1,
                }
            )

    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    summary = pd.DataFrame(summaries).set_index("data set")
    print("log-likelihoods (total; 'numpy @' = this script's own numpy")
    print("log-likelihood minus the library's, at that library's estimates)")
    print(
        summary[
            ["flexmix EM", "flexmix refit", "hmexperts", "hmexp n_init=1",
             "hm - fx EM", "hm - fx refit", "numpy @hm", "numpy @fx"]
        ].to_string(float_format=lambda v: f"{v:.6g}")
    )  # fmt: skip
    print(f"\ntimes (s), fastest of {args.repeats}; {args.nrep} starts each unless")
    print("'hm 1' (n_init=1); tight tolerances (flexmix 1e-10 relative, hmexperts")
    print("tol=1e-10) unless 'dflt' (flexmix 1e-6, hmexperts 1e-4); refit =")
    print("flexmix's BFGS + numerical Hessian, summary = hmexperts' Wald table")
    print(
        summary[
            ["fx (s)", "hm (s)", "fx/hm", "hm 1 (s)", "fx dflt (s)", "hm dflt (s)",
             "dflt fx/hm", "fx dflt LL", "hm dflt LL", "refit (s)", "summary (s)",
             "refit/summ", "fx iter", "hm iter", "leaves"]
        ].to_string(float_format=lambda v: f"{v:.4g}")
    )  # fmt: skip
    print("\nestimates and standard errors (hmexperts' leaves matched to flexmix's")
    print("components, 'leaves' above; gate = component 2 against component 1;")
    print("'fx EM est' = flexmix's EM estimate, 'fx est' and 'fx SE' its refit's;")
    print("'num SE' = this script's numerical Hessian at hmexperts' estimates)")
    table = pd.DataFrame(rows).set_index(["data set", "parameter"])
    print(
        table.to_string(
            formatters={
                "fx EM est": "{:.5f}".format, "fx est": "{:.5f}".format,
                "hm est": "{:.5f}".format,
                "dEst/fxSE": "{:+.1e}".format, "fx SE": "{:.5f}".format,
                "hm SE": "{:.5f}".format, "rel SE": "{:+.2%}".format,
                "num SE": "{:.5f}".format, "num/fx-1": "{:+.2%}".format,
            }
        )
    )  # fmt: skip
    worst = table["rel SE"].abs().max()
    print(f"\nlargest |relative SE difference|: {worst:.2%} (tolerance 5%)")
    beats = (summary["hm - fx EM"] >= -1e-8 * summary["flexmix EM"].abs()).all()
    print(f"hmexperts' log-likelihood >= flexmix's best of {args.nrep}: {beats}")


if __name__ == "__main__":
    main()
