"""The C allocator's state for a fit's temporaries.

EM makes and frees the same temporaries in every pass: arrays of a chunk's
rows times the leaves, classes or parameters, from about 100 KiB to a few
MiB. glibc's ``malloc`` (Linux) serves a block above its *mmap threshold*
(128 KiB at the start of a process) with pages fresh from the kernel, and
returns them on ``free``; below it, from its heap, whose free top it gives
back once it exceeds the *trim threshold* (twice the mmap threshold). Either
way a pass's temporaries come back on pages the kernel has to map and zero
again: a depth-3 tree at n=16,000 (3 inputs) took 57,000 page faults per fit
and 0.32 s; after the allocator was settled, none and 0.18 s
(``benchmarks/results/allocator.txt``).

The thresholds are dynamic: freeing a block that was mapped raises the mmap
threshold to its size (up to 32 MiB on 64 bits) and the trim threshold to
twice that, so that a process that has once freed a large array (reading a
large file, say) keeps such temporaries in its heap. ``settle_allocator``
puts the process in that state at the start of a fit, of a prediction
(a pickled model loaded in a fresh process makes the same temporaries) and
of a restart in a joblib worker process (``n_jobs``), by allocating and
freeing one such block, which is never written, so costs no page. The
process may then keep up to twice the block's size of freed memory
instead of returning it to the system. Other allocators (macOS, Windows,
musl) have their own policies; on them the block is allocated and freed,
and nothing else happens. A threshold set by the user
(``MALLOC_MMAP_THRESHOLD_``, ``mallopt``) turns glibc's adjustment off,
and is kept.
"""

import numpy as np

# The largest block whose free raises glibc's thresholds is 32 MiB on 64
# bits (DEFAULT_MMAP_THRESHOLD_MAX); the block stays below it with the
# allocator's header and page rounding.
_BLOCK_BYTES = 31 * 2**20


def settle_allocator():
    """Allocate and free one large block, unwritten, so that glibc keeps a
    fit's temporaries in its heap (the module's docstring)."""
    np.empty(_BLOCK_BYTES, dtype=np.uint8)
