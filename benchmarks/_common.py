"""What every benchmark prints first: the machine, versions and code measured."""

import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import scipy
import sklearn
from threadpoolctl import threadpool_info

import hmexperts


def print_machine():
    """Print the CPU, Python, library versions and BLAS/OpenMP thread pools."""
    print(f"machine : {platform.machine()} {platform.processor() or '?'}")
    print(f"cpus    : {os.cpu_count()}")
    print(f"python  : {platform.python_version()}")
    print(
        f"numpy {np.__version__}, scipy {scipy.__version__}, "
        f"scikit-learn {sklearn.__version__}, hmexperts {hmexperts.__version__}"
    )
    for pool in threadpool_info():
        print(
            f"threads : {pool['internal_api']} ({pool['user_api']}), "
            f"{pool['num_threads']} threads"
        )
    print()


def code_version():
    """The commit of the tree hmexperts is imported from, whether its
    hmexperts/ has uncommitted changes, and that tree's path."""
    root = Path(hmexperts.__file__).resolve().parents[1]

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "hmexperts")
    return commit, bool(dirty), root
