"""A least-recently-used cache bounded by the bytes of the arrays its entries hold.

The run keeps two such caches: the certified references of Cases (``references``), and the
random Cases a check drew, which the sibling checks of the same loss and variant replay
(``ConformanceRun.drawn``). Both are worth keeping only up to a budget of memory.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


def nbytes(value, depth: int = 3) -> int:
    """The bytes of the numpy arrays ``value`` holds: itself, or inside its dicts, lists,
    tuples and attributes (``depth`` levels down), plus 64 a container."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if depth == 0:
        return 64
    if isinstance(value, dict):
        return 64 + sum(nbytes(v, depth - 1) for v in value.values())
    if isinstance(value, (tuple, list)):
        return 64 + sum(nbytes(v, depth - 1) for v in value)
    return 64 + sum(nbytes(v, depth - 1) for v in getattr(value, "__dict__", {}).values())


class BoundedCache:
    """Least recently used entries, bounded by the bytes of the arrays they hold."""

    def __init__(self, limit_bytes: int):
        self.limit = limit_bytes
        self.entries = OrderedDict()  # key -> (value, bytes)
        self.bytes = 0

    def __contains__(self, key) -> bool:
        return key in self.entries

    def lookup(self, key, default=None):
        """The value stored under ``key`` (now the most recently used), else ``default``."""
        if key not in self.entries:
            return default
        self.entries.move_to_end(key)
        return self.entries[key][0]

    def store(self, key, value) -> None:
        """Keep ``value`` under ``key``, dropping the least recently used entries beyond the
        budget (never the one just stored)."""
        if key in self.entries:
            self.bytes -= self.entries.pop(key)[1]
        size = nbytes(value)
        self.entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.limit and len(self.entries) > 1:
            _, (_, dropped) = self.entries.popitem(last=False)
            self.bytes -= dropped

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0
