"""What every benchmark prints first: the machine and library versions."""

import os
import platform

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
