"""Fits beyond memory: peak memory of Dask fits from disk, and the time of one
EM iteration in memory, on Dask's threads and on a ``LocalCluster``.

Three parts (``--part memory huge schedulers``, all by default), each fit in a
fresh process so that its peak memory is its own:

- ``memory``: ``MixtureOfExpertsRegressor(n_experts=4)`` on ``n`` rows of 5
  float32 features drawn from a known 4-expert mixture and stored in ``.npy``
  files, read as a Dask array of 2**18-row blocks, each block a memmap of
  its rows opened when a task needs it (``npy_dask_array``: Dask's
  ``from_array`` would copy a whole memmap into memory, dask/dask#11850);
  next to it the same fit with the files read into memory. The process's
  peak resident memory is split as Linux counts it: anonymous memory (what
  the fit allocates) and file-backed pages (the memmap's page cache, which
  the kernel may drop at any time).
- ``huge``: one Dask fit from disk at ``--huge-n`` rows (1e8 by default) of
  8 float32 features, ``max_iter=5``: seconds per EM iteration and peak
  memory.
- ``schedulers``: at ``--sched-n`` rows (1e7 by default) of 5 features, the
  seconds per EM iteration and the data passes per iteration of the
  in-memory fit, of the Dask fit on the local threaded scheduler and of the
  Dask fit on a ``distributed.LocalCluster`` of 2 single-threaded worker
  processes, as it comes (``cluster``) and with the workers' glibc mmap
  threshold raised to 32 MiB (``cluster+mmap``, see the user guide).

The data files are written once into ``--data-dir`` and kept (3.6 GB for
1e8 rows of 8 features); delete them by hand.

Seconds per iteration are the median of the intervals between the objective
values EM reports (one per iteration), so the start (sampling, k-means,
the first M-step) is not in them; ``passes/it`` is the data passes per EM
iteration from EM's own count.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import numpy as np
from _common import print_machine

FEATURES = 5
HUGE_FEATURES = 8
BLOCK_ROWS = 2**18
WRITE_ROWS = 2**20


def data_paths(data_dir, n, n_features):
    stem = os.path.join(data_dir, f"moe_{n}x{n_features}")
    return stem + "_X.npy", stem + "_y.npy"


def write_data(data_dir, n, n_features):
    """Rows of a known 4-expert mixture, written block by block (float32)."""
    from hmexperts.datasets import make_moe

    X_path, y_path = data_paths(data_dir, n, n_features)
    if os.path.exists(X_path) and os.path.exists(y_path):
        return X_path, y_path
    os.makedirs(data_dir, exist_ok=True)
    truth = make_moe(1000, n_features, n_experts=4, random_state=0)[2].model
    rng = np.random.RandomState(0)
    X_out = np.lib.format.open_memmap(
        X_path + ".part", mode="w+", dtype=np.float32, shape=(n, n_features)
    )
    y_out = np.lib.format.open_memmap(
        y_path + ".part", mode="w+", dtype=np.float32, shape=(n,)
    )
    for start in range(0, n, WRITE_ROWS):
        rows = slice(start, min(start + WRITE_ROWS, n))
        X = rng.standard_normal((rows.stop - rows.start, n_features))
        X_out[rows] = X
        y_out[rows] = truth.sample(X, random_state=rng)
    X_out.flush()
    y_out.flush()
    del X_out, y_out
    os.replace(X_path + ".part", X_path)
    os.replace(y_path + ".part", y_path)
    return X_path, y_path


def _load_rows(path, start, stop):
    return np.load(path, mmap_mode="r")[start:stop]


def npy_dask_array(path, rows):
    """The ``.npy`` file ``path`` as a Dask array of ``rows``-row blocks,
    each read from disk (a memmap of its rows) only when a task needs it."""
    import dask
    import dask.array as da

    whole = np.load(path, mmap_mode="r")  # reads the header only
    shape, dtype = whole.shape, whole.dtype
    del whole
    load = dask.delayed(_load_rows, pure=True)
    blocks = [
        da.from_delayed(
            load(path, start, min(start + rows, shape[0])),
            shape=(min(start + rows, shape[0]) - start,) + shape[1:],
            dtype=dtype,
        )
        for start in range(0, shape[0], rows)
    ]
    return da.concatenate(blocks, axis=0)


class MemoryWatch:
    """The peak of VmRSS, RssAnon and RssFile of this process, polled."""

    FIELDS = ("VmRSS", "RssAnon", "RssFile")

    def __init__(self, interval=0.02):
        self.interval = interval
        self.peak = dict.fromkeys(self.FIELDS, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def read(self):
        values = {}
        with open("/proc/self/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in self.FIELDS or key == "VmHWM":
                    values[key] = int(rest.split()[0]) * 1024
        return values

    def _run(self):
        while not self._stop.is_set():
            for key, value in self.read().items():
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], value)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak["VmHWM"] = self.read()["VmHWM"]


def instrument():
    """Record when EM reports each objective and keep EM's monitors."""
    import hmexperts._base as base
    import hmexperts._em as em

    times, monitors = [], []
    report = em.ConvergenceMonitor.report

    def timed_report(self, objective):
        times.append(time.perf_counter())
        report(self, objective)

    run_em = base.run_em

    def kept_run_em(*args, **kwargs):
        monitor = run_em(*args, **kwargs)
        monitors.append((monitor, list(times)))
        times.clear()
        return monitor

    em.ConvergenceMonitor.report = timed_report
    base.run_em = kept_run_em
    return monitors


def child(spec):
    """One fit, as ``spec`` says; prints a JSON line of what it measured."""
    from sklearn.exceptions import ConvergenceWarning

    from hmexperts import MixtureOfExpertsRegressor

    monitors = instrument()
    X_path, y_path = spec["paths"]
    client = None
    with MemoryWatch() as watch:
        start = time.perf_counter()
        if spec["mode"] == "memory":
            X, y = np.load(X_path), np.load(y_path)
        else:
            X = npy_dask_array(X_path, BLOCK_ROWS)
            y = npy_dask_array(y_path, BLOCK_ROWS)
            if spec["mode"].startswith("cluster"):
                import dask
                from distributed import Client, LocalCluster

                if spec["mode"] == "cluster+mmap":
                    # distributed's workers run with MALLOC_TRIM_THRESHOLD_
                    # set, which makes glibc map every temporary array of
                    # more than 128 KiB afresh; a higher mmap threshold
                    # serves them from the heap again
                    dask.config.set(
                        {
                            "distributed.nanny.pre-spawn-environ."
                            "MALLOC_MMAP_THRESHOLD_": 2**25
                        }
                    )

                client = Client(
                    LocalCluster(
                        n_workers=2,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                    )
                )
        model = MixtureOfExpertsRegressor(
            n_experts=4, max_iter=spec["max_iter"], tol=0, random_state=0
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        seconds = time.perf_counter() - start
    if client is not None:
        client.close()
    monitor, times = monitors[-1]
    steps = np.diff(times)
    passes = (len(monitor.passes) - monitor.initial_passes - 1) / monitor.n_iter
    print(
        json.dumps(
            {
                "fit_s": seconds,
                "s_per_iter": float(np.median(steps)),
                "passes_per_iter": passes,
                "n_iter": monitor.n_iter,
                "lower_bound": model.lower_bound_,
                "peak": watch.peak,
            }
        )
    )


def run_child(spec):
    env = dict(os.environ)
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child {spec} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


MIB = 2.0**20


def header():
    print(
        f"{'n':>11}{'mode':>13}{'data MiB':>10}{'fit s':>8}{'s/iter':>9}"
        f"{'passes/it':>10}{'peak RSS':>10}{'anon':>8}{'file':>8}  MiB"
    )


def row(n, mode, paths, result):
    size = sum(os.path.getsize(p) for p in paths) / MIB
    peak = result["peak"]
    print(
        f"{n:>11}{mode:>13}{size:>10.0f}{result['fit_s']:>8.1f}"
        f"{result['s_per_iter']:>9.3f}{result['passes_per_iter']:>10.2f}"
        f"{peak['VmHWM'] / MIB:>10.0f}{peak['RssAnon'] / MIB:>8.0f}"
        f"{peak['RssFile'] / MIB:>8.0f}",
        flush=True,
    )


def memory(args):
    print(f"\npeak memory, d={FEATURES} float32, 4 experts, max_iter={args.max_iter}")
    header()
    for n in args.n:
        paths = write_data(args.data_dir, n, FEATURES)
        for mode in ("dask", "memory"):
            spec = {"paths": paths, "mode": mode, "max_iter": args.max_iter}
            row(n, mode, paths, run_child(spec))


def huge(args):
    print(f"\none fit from disk, d={HUGE_FEATURES} float32, 4 experts, max_iter=5")
    header()
    paths = write_data(args.data_dir, args.huge_n, HUGE_FEATURES)
    spec = {"paths": paths, "mode": "dask", "max_iter": 5}
    row(args.huge_n, "dask", paths, run_child(spec))


def schedulers(args):
    n = args.sched_n
    print(
        f"\nschedulers, n={n}, d={FEATURES} float32, 4 experts, "
        f"max_iter={args.max_iter}"
    )
    header()
    paths = write_data(args.data_dir, n, FEATURES)
    for mode in ("memory", "dask", "cluster", "cluster+mmap"):
        spec = {"paths": paths, "mode": mode, "max_iter": args.max_iter}
        row(n, mode, paths, run_child(spec))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part",
        nargs="+",
        default=["memory", "huge", "schedulers"],
        choices=["memory", "huge", "schedulers"],
    )
    parser.add_argument(
        "--n", type=int, nargs="+", default=[1_000_000, 4_000_000, 16_000_000]
    )
    parser.add_argument("--huge-n", type=int, default=100_000_000)
    parser.add_argument("--sched-n", type=int, default=10_000_000)
    parser.add_argument("--max-iter", type=int, default=5)
    parser.add_argument(
        "--data-dir", default=os.path.join(tempfile.gettempdir(), "hmexperts-bench")
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    print_machine()
    for part in args.part:
        {"memory": memory, "huge": huge, "schedulers": schedulers}[part](args)


if __name__ == "__main__":
    main()
