"""
====================================================
Data larger than memory: Dask arrays and partial_fit
====================================================

EM needs nothing from the data but sums over samples, so a mixture of experts
can be fit without ever holding the data in memory. This example stores a data
set in ``.npy`` files, opens them as memory maps and fits
:class:`~hmexperts.MixtureOfExpertsRegressor` on a Dask array made of them,
block by block; the fit equals the one on the same data in memory. Then it
learns the same data as a stream of mini-batches with ``partial_fit``
(stepwise EM), and follows how close the stream comes to the batch fit.

The data here have 200 000 rows, small enough to fit in memory as well, so
that the two can be compared; the code is the same for files of any size.
It needs Dask (``pip install "hmexperts[dask]"``). The user guide's
:ref:`larger-than-memory` explains what happens underneath.
"""

# %%
# Data on disk
# ------------
# 200 000 samples of 5 features from a known mixture of 4 linear-Gaussian
# experts (:func:`~hmexperts.datasets.make_moe`), in float32, which halves
# the files; the fit keeps its sums in float64 all the same. The held-out
# set is drawn from the same true model with its
# :meth:`~hmexperts.MixtureOfExpertsRegressor.sample` method.
#
# ``np.save`` writes each array at once. Data that do not fit in memory are
# written block by block instead, into a file made by
# :func:`numpy.lib.format.open_memmap`.
import os
import tempfile

import numpy as np

from hmexperts.datasets import make_moe

X, y, truth = make_moe(200_000, 5, n_experts=4, noise=0.3, random_state=1)
X, y = X.astype(np.float32), y.astype(np.float32)
X_test = np.random.default_rng(1).standard_normal((20_000, 5)).astype(np.float32)
y_test = truth.model.sample(X_test, random_state=1)

workdir = tempfile.TemporaryDirectory()
X_path = os.path.join(workdir.name, "X.npy")
y_path = os.path.join(workdir.name, "y.npy")
np.save(X_path, X)
np.save(y_path, y)
print(f"X.npy: {os.path.getsize(X_path) / 2**20:.1f} MiB")

# %%
# A Dask array over memory maps
# -----------------------------
# Every block of 50 000 whole rows is a task that opens the file as a memory
# map (``np.load(..., mmap_mode="r")``, which reads nothing yet) and reads
# its own rows when the fit needs them; the blocks are never all in memory.
# (``da.from_array`` on a memory map would copy the whole file into memory
# first: `dask/dask#11850 <https://github.com/dask/dask/issues/11850>`_.)
import dask
import dask.array as da


def read_rows(path, start, stop):
    return np.load(path, mmap_mode="r")[start:stop]


def npy_as_dask(path, rows):
    """A .npy file as a Dask array of blocks of ``rows`` rows."""
    header = np.load(path, mmap_mode="r")  # reads the header only
    n, shape, dtype = header.shape[0], header.shape[1:], header.dtype
    blocks = [
        da.from_delayed(
            dask.delayed(read_rows)(path, start, min(start + rows, n)),
            shape=(min(start + rows, n) - start, *shape),
            dtype=dtype,
        )
        for start in range(0, n, rows)
    ]
    return da.concatenate(blocks)


X_dask, y_dask = npy_as_dask(X_path, 50_000), npy_as_dask(y_path, 50_000)
print(X_dask)

# %%
# Fit on the Dask array, and in memory
# ------------------------------------
# Every EM iteration is one pass over the blocks: for each block, a task
# computes the responsibilities and adds up the statistics of the gates and
# experts (weighted Gram matrices, gradients, curvatures), and only these
# sums come back. The standardisation and the k-means start read a strided
# sample of at most 65 536 rows, the same rows an in-memory fit reads. So
# from the same ``random_state`` the two fits agree up to the order of the
# sums. The passes run on Dask's threads here; connect a
# ``distributed.Client`` first and they run on a cluster, with no other
# change.
import time

from hmexperts import MixtureOfExpertsRegressor

start = time.perf_counter()
model = MixtureOfExpertsRegressor(n_experts=4, random_state=0).fit(X_dask, y_dask)
dask_seconds = time.perf_counter() - start

start = time.perf_counter()
in_memory = MixtureOfExpertsRegressor(n_experts=4, random_state=0).fit(X, y)
memory_seconds = time.perf_counter() - start

gate_difference = max(
    np.max(np.abs(a - b))
    for a, b in zip(model.gate_coef_, in_memory.gate_coef_, strict=True)
)
print(
    f"Dask fit:      {model.n_iter_} EM iterations in {dask_seconds:.1f} s, "
    f"lower_bound_ {model.lower_bound_:.6f}"
)
print(
    f"in-memory fit: {in_memory.n_iter_} EM iterations in {memory_seconds:.1f} s, "
    f"lower_bound_ {in_memory.lower_bound_:.6f}"
)
print(
    "difference of lower_bound_: "
    f"{abs(model.lower_bound_ - in_memory.lower_bound_):.1e}"
)
print(f"largest difference of the gate coefficients:   {gate_difference:.1e}")
print(
    "largest difference of the expert coefficients: "
    f"{np.max(np.abs(model.expert_coef_ - in_memory.expert_coef_)):.1e}"
)

# %%
# The fitted attributes come back in the data's dtype, float32, and agree to
# the last digit; the objective, a float64 sum, agrees to round-off. On
# data this small Dask's scheduling costs more time than it saves; on data
# larger than memory it is what makes the fit possible.
#
# Predictions on a Dask array are lazy Dask arrays with the same blocks,
# computed block by block when asked:
log_likelihood = model.log_likelihood(X_dask, y_dask)
print(log_likelihood)
print(f"training mean log-likelihood: {log_likelihood.mean().compute():.4f}")

# %%
# A stream of mini-batches
# ------------------------
# ``partial_fit`` updates the model with one mini-batch at a time: a step of
# stepwise EM (Cappé & Moulines, 2009). It runs the E-step on the batch,
# blends the batch's statistics into running ones with a step that decays
# as :math:`(t + 1)^{-0.6}` with the number :math:`t` of batches seen, and
# takes the M-step from the running statistics. The first call fits its
# batch as ``fit`` would, and the stream goes on from there.
#
# Here the stream reads the files, mapped into memory, in batches of 1000
# rows, one pass over the data, and after every batch we score the held-out
# set.
X_file = np.load(X_path, mmap_mode="r")
y_file = np.load(y_path, mmap_mode="r")
stream = MixtureOfExpertsRegressor(n_experts=4, random_state=0)
batch_size = 1000
held_out = []
for first in range(0, len(X_file), batch_size):
    rows = slice(first, first + batch_size)
    stream.partial_fit(X_file[rows], y_file[rows])
    held_out.append(stream.log_likelihood(X_test, y_test).mean())
held_out = np.array(held_out)

batch_fit = model.log_likelihood(X_test, y_test).mean()
true_model = truth.model.log_likelihood(X_test, y_test).mean()
print(f"batches seen: {stream.n_iter_}")
print(f"held-out mean log-likelihood, true model:  {true_model:.4f}")
print(f"held-out mean log-likelihood, batch fit:   {batch_fit:.4f}")
for n_batches in (1, 10, 100, len(held_out)):
    print(
        f"held-out mean log-likelihood, stream after batch {n_batches:3d}: "
        f"{held_out[n_batches - 1]:.4f}"
    )

# %%
# The held-out mean log-likelihood per sample after every batch, against the
# batch fit's:
import matplotlib.pyplot as plt

rows_seen = batch_size * np.arange(1, len(held_out) + 1)
fig, ax = plt.subplots(figsize=(7.2, 3.8), layout="constrained")
ax.plot(rows_seen, held_out, color="tab:blue", lw=2, label="partial_fit (stream)")
ax.axhline(batch_fit, color="k", ls="--", lw=1.2, label="fit on all rows (Dask)")
ax.axhline(true_model, color="tab:green", ls=":", lw=1.5, label="true model")
top = max(batch_fit, true_model, held_out.max())
ax.set(
    ylim=(held_out.min() - 0.002, top + 0.004),
    xscale="log",
    xlabel="rows seen by the stream",
    ylabel="held-out mean log-likelihood",
    title="Stepwise EM on a stream of 1000-row batches",
)
ax.grid(alpha=0.3)
ax.legend(loc="lower right")
plt.show()

# %%
# The first batch alone gives a rough fit: 1000 samples for 4 experts and
# the gate over them. Every further batch moves the parameters
# less, and after one pass over the data the stream scores the held-out set
# about as well as the batch fit, which needed all 200 000 rows at every
# iteration. The first batch matters: the stream never restarts, so a first
# fit in a poor local maximum stays poor. Make the first batch large enough
# to show every regime, and give the model ``n_init`` starts, which the
# first call uses.
#
# The temporary files go with their directory (the memory maps must be
# closed first on some systems, so we drop them).
del X_file, y_file, X_dask, y_dask
workdir.cleanup()
