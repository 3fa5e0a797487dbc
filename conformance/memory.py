"""Peak memory of one call on the CPU: the growth of the process's peak resident set.

Method ("rss"): glibc malloc is told to map every block of 64 KiB or more with mmap of its own
(``mallopt(M_MMAP_THRESHOLD)``), so an array freed during the call leaves the resident set at
once rather than staying in malloc's free lists, and the free memory of its heaps is handed
back (``malloc_trim``), so a block reused from them counts too; the kernel's peak resident
set (VmHWM) is reset (``/proc/self/clear_refs``, "5"); the call runs; the peak minus the resident
set before the call is its peak memory: every array the call (or its backward) held at once, from
any framework (torch, numpy and jax all allocate through malloc), counted by the page. Resolution:
the kernel updates its resident-set counters in batches, so figures are good to about 64 pages
(256 KiB) per thread; blocks under 64 KiB come from malloc's heap and may not show. The
thresholds the timing uses (``settle``) are restored afterwards.

Where the method is not available (not Linux, no writable clear_refs, not glibc) ``peak_growth``
returns None and the rows say so. On CUDA the framework adapter measures the allocator's peak
instead (``TorchFramework.peak_memory``).
"""

from __future__ import annotations

import ctypes
import functools
import gc
from pathlib import Path

METHOD = "rss"
METHOD_TEXT = ("peak resident memory growth over one call (VmHWM reset through "
               "/proc/self/clear_refs; malloc maps every block of 64 KiB or more, so freed "
               "arrays leave the resident set; good to about 256 KiB)")
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4  # mallopt (glibc malloc.h)
MEASURE_MMAP_BYTES = 64 << 10
# glibc's default count of mmapped blocks (``allocator.keep_freed_memory`` sets 0: no mmap)
DEFAULT_MMAP_MAX = 65536
# The thresholds while timing: those glibc reaches in a long-running process that has freed a
# large array (its dynamic threshold rises to the largest mmapped block freed, at most 32 MiB),
# fixed so that no row depends on the sizes timed before it.
TIMING_MMAP_BYTES = 32 << 20
TIMING_TRIM_BYTES = 64 << 20
CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


@functools.cache
def _libc():
    """glibc's (mallopt, malloc_trim), or None (another C library, or none to be found)."""
    try:
        libc = ctypes.CDLL(None)
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return mallopt, trim


def _mallopt():
    return None if _libc() is None else _libc()[0]


def settle() -> bool:
    """Fix malloc's thresholds at the timing values; False where mallopt is missing."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, TIMING_MMAP_BYTES)
                and mallopt(M_TRIM_THRESHOLD, TIMING_TRIM_BYTES))


def _status(key: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


@functools.cache
def available() -> bool:
    """Whether ``peak_growth`` can measure here (Linux's clear_refs and VmHWM, glibc)."""
    if _mallopt() is None:
        return False
    try:
        CLEAR_REFS.write_text("5")
        _status("VmHWM")
    except (OSError, KeyError, ValueError):
        return False
    return True


def peak_growth(call) -> int | None:
    """Bytes by which the peak resident set grew over ``call()`` (see the module's method);
    None where the method is not available. ``call``'s result is dropped inside."""
    if not available():
        return None
    mallopt, trim = _libc()
    mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)  # the method maps blocks: even in a process that
    mallopt(M_MMAP_THRESHOLD, MEASURE_MMAP_BYTES)  # kept freed memory (then it stops keeping)
    mallopt(M_TRIM_THRESHOLD, MEASURE_MMAP_BYTES)
    trim(0)  # free chunks in malloc's heaps would be reused without growing the resident set
    enabled = gc.isenabled()
    gc.disable()  # no collection inside the call (a full one takes 0.2 s in the test process)
    try:
        CLEAR_REFS.write_text("5")
        before = _status("VmRSS")
        call()
        peak = _status("VmHWM")
    finally:
        if enabled:
            gc.enable()
        settle()
    return max(peak - before, 0)
