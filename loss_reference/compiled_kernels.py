"""The double-double tiers' access to their compiled kernels (``double_double``, whose import
imports numba, 0.4 s): made on first use, and None where numba does not import, so that the
tiers step aside and the engine's tiers compute what they would have. TIER is the name the
tiers count their results under (``engine.STATS``, the benchmark's columns)."""

from __future__ import annotations

from functools import lru_cache

TIER = "double-double"


@lru_cache(maxsize=None)
def kernels():
    """``loss_reference.double_double``, or None where numba is missing."""
    try:
        from . import double_double
    except ImportError:
        return None
    return double_double
