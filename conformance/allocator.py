"""Large temporaries without a page fault per page: glibc told to keep freed memory.

The references and the tolerances work through numpy temporaries of megabytes (a
language-model case's are hundreds: 3.9e7 logits are 312 MB per float64 array). glibc serves
every allocation above its mmap threshold (at most 32 MiB) with a fresh mapping and unmaps it
on free, and hands the top of its heap back above its trim threshold, so each such temporary
costs one page fault per 4 KiB page when it is first written. Measured on this project's
2-core machine:

- one cross_entropy case of the llm tier (256 tokens x 151,936 classes, value and gradient):
  2.6 million minor faults, 24.5 s of system time, 40.8 s wall; with the heap kept, 0.46
  million faults, 13.2 s and 28.8 s, the same results;
- the reference's throughput benchmark, every loss at its ladder's third rung in float32:
  21 s, 17.5 s with the heap kept (linear_cross_entropy's gradient 55 -> 47-50 ms,
  poisson_nll_loss's 100 -> 80 ms).

``keep_freed_memory()`` makes glibc serve large allocations from its heap (no mmap) and not
return freed memory to the system below 2 GiB at its top: the process keeps its peak memory
until it exits, and later temporaries reuse it without faults. The run's own process only
(candidates run in worker processes of their own, whose memory the suite measures; with
``--isolation=none`` the memory measurement restores mmap for its own call, ``memory``).
Where the C library is not glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD_BYTES = 2**31 - 1  # the largest an int parameter holds


def keep_freed_memory() -> bool:
    """Tell glibc to keep freed memory for reuse; True where it took the settings."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
