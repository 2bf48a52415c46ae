"""Does a compiled kernel earn its place? One pass of EM in Numba against
the plain-NumPy reference and hmexperts.

The issue on speed allows a compiled kernel (Numba) only if it beats the
best NumPy version of the same algorithm; this script measures that for the
pass over the data, which is all of an iteration's time at large ``n`` (the
M-step works on the sums only). The model is a flat mixture (one softmax
gate over ``K`` linear-Gaussian experts); the pass computes what
``reference_numpy_em.Reference.statistics`` computes for it: the
log-likelihood, the experts' ``X^T R X`` (upper triangles), ``X^T R y``,
``sum r y^2`` and masses, and the gate's gradient and class-pair sums
``sum_i s_i g_ai g_bi x_i x_i^T``.

Three implementations of one pass, from the same parameters:

- ``numpy``: ``Reference.statistics`` of ``reference_numpy_em.py`` (the best
  NumPy version we could write: chunks of rows, products with BLAS);
- ``numba``: one fused loop over a chunk's rows makes every row's
  posteriors and weights (no temporary per operation), then two matrix
  products (BLAS, from inside Numba) sum them against the chunk's outer
  products and rows; chunks are spread over ``numba.prange`` with a set of
  sums per chunk, added at the end in chunk order (so the result does not
  depend on the threads). A first version accumulated every product in
  the row loop too: 2.4 times slower than NumPy at 4 experts and 5
  features, n=1e5;
- ``hmexperts``: one pass of the library (``_em.statistics``).

They must agree (sums to 1e-9 relative); printed: seconds per pass, best of
``--repeats``, for Numba on 1 thread and on ``--threads`` threads, and the
ratios. Numba is not a dependency of hmexperts: ``pip install numba`` to
run this.

Run from the repository root, one BLAS thread::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/reference_numba_em.py
"""

import argparse
import functools
import math
import sys
import time
import warnings

import numba
import numpy as np
from _common import code_version, print_machine
from array_api_compat import array_namespace
from reference_numpy_em import Reference
from sklearn.exceptions import ConvergenceWarning

from hmexperts import MixtureOfExpertsRegressor
from hmexperts._em import InMemoryData, statistics
from hmexperts.datasets import make_moe

_LOG_2PI = math.log(2 * math.pi)
# rows per chunk of the Numba pass (each chunk one task of prange, with its
# own sums)
_NUMBA_CHUNK = 8192


@numba.njit(parallel=True, cache=True)
def _numba_pass(X, y, gate, coef, variance, iu0, iu1, chunk):
    n, p = X.shape
    k = coef.shape[0]
    width = iu0.shape[0]
    n_pairs = k * (k - 1) // 2
    n_chunks = (n + chunk - 1) // chunk
    log_lik = np.zeros(n_chunks)
    # per chunk: the products of the rows' weights with their outer products
    # (the experts' posteriors, then the gate's pairs) and with the rows
    products = np.zeros((n_chunks, k + n_pairs, width))
    rows_sums = np.zeros((n_chunks, 2 * k, p))  # X^T R y, then the gradient
    yy = np.zeros((n_chunks, k))
    mass = np.zeros((n_chunks, k))
    half_log_var = 0.5 * (_LOG_2PI + np.log(variance))
    inv_var = 0.5 / variance
    for c in numba.prange(n_chunks):
        first = c * chunk
        m = min(first + chunk, n) - first
        weights = np.empty((m, k + n_pairs))  # rows' weights of the outer products
        row_weights = np.empty((m, 2 * k))  # r y and r - s g: of the rows
        outer = np.empty((m, width))
        logits = np.empty(k)
        prob = np.empty(k)
        for row in range(m):
            i = first + row
            for t in range(width):
                outer[row, t] = X[i, iu0[t]] * X[i, iu1[t]]
            top = -np.inf
            for a in range(k):
                v = 0.0
                for q in range(p):
                    v += X[i, q] * gate[q, a]
                logits[a] = v
                top = max(top, v)
            total = 0.0
            for a in range(k):
                prob[a] = math.exp(logits[a] - top)
                total += prob[a]
            log_norm = math.log(total) + top
            top = -np.inf
            for a in range(k):
                prob[a] /= total
                fit = 0.0
                for q in range(p):
                    fit += coef[a, q] * X[i, q]
                r = y[i] - fit
                joint = logits[a] - log_norm - half_log_var[a] - inv_var[a] * r * r
                weights[row, a] = joint
                top = max(top, joint)
            total = 0.0
            for a in range(k):
                e = math.exp(weights[row, a] - top)
                weights[row, a] = e
                total += e
            log_lik[c] += math.log(total) + top
            s = 0.0
            for a in range(k):
                ra = weights[row, a] / total
                weights[row, a] = ra
                s += ra
                row_weights[row, a] = ra * y[i]
                yy[c, a] += ra * y[i] * y[i]
                mass[c, a] += ra
            j = k
            for a in range(k):
                wa = s * prob[a]
                row_weights[row, k + a] = weights[row, a] - wa
                for b in range(a + 1, k):
                    weights[row, j] = wa * prob[b]
                    j += 1
        # the sums over the chunk's rows: matrix products (BLAS)
        products[c] = np.dot(weights.T, outer)
        rows_sums[c] = np.dot(row_weights.T, X[first : first + m])
    # the chunks' sums in chunk order
    products = products.sum(axis=0)
    rows_sums = rows_sums.sum(axis=0)
    return (
        log_lik.sum(),
        products[:k],
        rows_sums[:k],
        yy.sum(axis=0),
        mass.sum(axis=0),
        rows_sums[k:],
        products[k:],
    )


def numba_pass(reference):
    """One pass of the Numba kernel at ``reference``'s parameters, in the
    reference's layout of the sums."""
    k, p = reference.k, reference.p
    iu0, iu1 = (np.ascontiguousarray(a, dtype=np.int64) for a in reference.iu)
    log_lik, gram, xy, yy, mass, grad, pairs = _numba_pass(
        reference.X,
        reference.y,
        np.ascontiguousarray(reference.gates[0][0]),
        reference.coef,
        reference.variance,
        iu0,
        iu1,
        _NUMBA_CHUNK,
    )
    return {
        "log_lik": log_lik,
        "grads": [grad.reshape(k, p)],
        "pairs": [pairs[None]],
        "gram": gram,
        "xy": xy,
        "yy": yy,
        "mass": mass,
    }


def setup(n, k, n_features, fit_rows):
    """A flat mixture of ``k`` experts fit 2 iterations on ``fit_rows`` rows
    of ``n``; the library's data and components and a reference at that
    start."""
    X, y, _ = make_moe(n, n_features, n_experts=k, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MixtureOfExpertsRegressor(k, max_iter=2, random_state=0)
        model.fit(X[:fit_rows], y[:fit_rows])
    xp = array_namespace(model._scaling.x_mean)
    Xd = model._scaling.design(X, xp)
    y_fit = (y - model._scaling.y_mean) / model._scaling.y_scale
    data = InMemoryData(Xd, y_fit, np.ones(n), xp, model._chunk_width(k))
    gates, experts = model._gates, model._experts
    reference = Reference(
        np.ascontiguousarray(Xd, dtype=np.float64),
        np.ascontiguousarray(y_fit, dtype=np.float64),
        k,
        1,
        gates.alpha,
        experts.alpha,
        experts.min_variance,
    )
    reference.set_params(list(gates.coefs), experts.coef, experts.variance)
    return data, gates, experts, reference, xp


def best_of(function, repeats):
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def check(ours, theirs):
    for key in ("gram", "xy", "yy", "mass"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours["grads"][0], theirs["grads"][0], atol=1e-7)
    np.testing.assert_allclose(ours["pairs"][0], theirs["pairs"][0], rtol=1e-9)
    assert abs(ours["log_lik"] - theirs["log_lik"]) <= 1e-9 * abs(theirs["log_lik"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--configs", nargs="+", default=["4x5", "16x8"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fit-rows", type=int, default=100_000)
    args = parser.parse_args()
    print_machine()
    print(f"command : python {' '.join(sys.argv)}")
    commit, dirty, root = code_version()
    print(
        f"hmexperts from {root}, commit {commit}"
        f"{' (uncommitted changes in hmexperts/)' if dirty else ''}; numba "
        f"{numba.__version__}; seconds per pass, best of {args.repeats}"
    )
    many = f"numba {args.threads}"
    print(
        f"{'n':>9}{'experts':>8}{'feat':>5}{'numpy':>9}{'numba 1':>9}{many:>9}"
        f"{'hmexperts':>10}{'numpy/numba1':>13}{'hmexp/numpy':>12}"
        f"{'numba 1/' + str(args.threads):>13}"
    )
    for n in args.n:
        for config in args.configs:
            k, features = (int(v) for v in config.split("x"))
            data, gates, experts, reference, xp = setup(n, k, features, args.fit_rows)
            ours = functools.partial(numba_pass, reference)
            library = functools.partial(statistics, data, gates, experts, xp)
            numba.set_num_threads(1)
            ours()  # compile (cached on disk after the first run)
            t_numpy, theirs = best_of(reference.statistics, args.repeats)
            t_one, result = best_of(ours, args.repeats)
            check(result, theirs)
            numba.set_num_threads(args.threads)
            t_many, result = best_of(ours, args.repeats)
            check(result, theirs)
            numba.set_num_threads(1)
            t_lib, _ = best_of(library, args.repeats)
            print(
                f"{n:>9}{k:>8}{features:>5}{t_numpy:>9.4f}{t_one:>9.4f}"
                f"{t_many:>9.4f}{t_lib:>10.4f}{t_numpy / t_one:>13.2f}"
                f"{t_lib / t_numpy:>12.2f}{t_one / t_many:>13.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
