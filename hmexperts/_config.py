"""Global configuration: the threads that BLAS and OpenMP may use in a fit.

EM's matrix products are small (a few columns against chunks of rows), and
BLAS threads gain nothing on them; on a busy machine they lose a lot (a fit
at n=1e5 with OpenBLAS's default 2 threads on a loaded 2-core machine took
27 times as long as with one). So every fit runs its EM loop, its k-means
start and its learner experts under a limit of ``n_threads`` threads for
BLAS and OpenMP (``threadpoolctl``), one by default. The configuration is
thread-local, as scikit-learn's is.
"""

import threading
from contextlib import contextmanager, nullcontext

from threadpoolctl import ThreadpoolController

__all__ = ["config_context", "get_config", "set_config"]

_GLOBAL = {"n_threads": 1}
_LOCAL = threading.local()


def _config():
    if not hasattr(_LOCAL, "config"):
        _LOCAL.config = dict(_GLOBAL)
    return _LOCAL.config


def get_config():
    """The current configuration of hmexperts.

    Returns
    -------
    config : dict
        ``n_threads``: the number of threads BLAS and OpenMP may use while a
        mixture fits (``None``: no limit).

    See Also
    --------
    set_config : Change the configuration.
    config_context : Change it within a ``with`` block.

    Examples
    --------
    >>> import hmexperts
    >>> hmexperts.get_config()["n_threads"]
    1
    """
    return dict(_config())


def set_config(n_threads="unchanged"):
    """Change the configuration of hmexperts (in the calling thread).

    Parameters
    ----------
    n_threads : int or None, default="unchanged"
        Threads that BLAS and OpenMP may use while a mixture fits. 1 (the
        default) suits EM's small matrix products and a busy machine; more
        may help a learner expert that multi-threads (a k-NN regressor on
        a large leaf) on an idle machine; ``None`` leaves the libraries'
        own settings.

    See Also
    --------
    config_context : Change the configuration within a ``with`` block.

    Examples
    --------
    >>> import hmexperts
    >>> hmexperts.set_config(n_threads=2)
    >>> hmexperts.get_config()["n_threads"]
    2
    >>> hmexperts.set_config(n_threads=1)
    """
    if n_threads != "unchanged":
        if n_threads is not None and (
            isinstance(n_threads, bool)
            or not isinstance(n_threads, int)
            or n_threads < 1
        ):
            raise ValueError(
                f"n_threads={n_threads!r}; expected a positive int, or None for no "
                "limit."
            )
        _config()["n_threads"] = n_threads


@contextmanager
def config_context(*, n_threads="unchanged"):
    """Change the configuration of hmexperts within a ``with`` block.

    Parameters
    ----------
    n_threads : int or None, default="unchanged"
        Threads that BLAS and OpenMP may use while a mixture fits (see
        :func:`set_config`).

    Yields
    ------
    None

    See Also
    --------
    set_config : Change the configuration for good.

    Examples
    --------
    >>> import hmexperts
    >>> with hmexperts.config_context(n_threads=None):
    ...     hmexperts.get_config()["n_threads"] is None
    True
    >>> hmexperts.get_config()["n_threads"]
    1
    """
    old = get_config()
    set_config(n_threads=n_threads)
    try:
        yield
    finally:
        set_config(**old)


_CONTROLLER = []


def _controller():
    """One ``ThreadpoolController`` for the process: finding the loaded
    libraries costs about 4 ms, which every limit would pay again (as
    scikit-learn, the controller is made once)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


@contextmanager
def _limited(n_threads):
    _LOCAL.limited = n_threads
    try:
        with _controller().limit(limits=n_threads):
            yield
    finally:
        _LOCAL.limited = None


def thread_limit():
    """A context in which BLAS and OpenMP use at most ``n_threads`` threads
    (nothing to do inside another such context with the same limit)."""
    n_threads = _config()["n_threads"]
    if n_threads is None or getattr(_LOCAL, "limited", None) == n_threads:
        return nullcontext()
    return _limited(n_threads)
