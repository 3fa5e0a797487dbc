"""The reference side of a check, computed once per Case: exact results and tolerance magnitudes.

Every candidate of a run is judged on the same Cases (hypothesis draws them from the seed, the
edge catalogue is built once), so the certified reference of a Case, and the magnitudes its
tolerance is made of, are computed for the first candidate and looked up for the others. The
cache is keyed by the Case's content (dtype, argument values, options, upstream gradient; not
its layouts, which do not change a value), holds the most recent results up to
``CACHE_BYTES``, and remembers an ``EvaluationError`` as well as a result.

Where a serial run has a core to spare, references known ahead of need (``prefetch``) are
computed there and land in the same cache (``conformance.prefetch``).
"""

from __future__ import annotations

import hashlib

import numpy as np

from loss_reference.engine import EvaluationError

from .bounded_cache import BoundedCache
from . import prefetch as ahead_of_need

CACHE_BYTES = 512 << 20  # results kept, at most (the arrays they hold)


def _feed(digest, value) -> None:
    if isinstance(value, np.ndarray):
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).reshape(-1).view(np.uint8))  # no copy
    else:
        digest.update(repr(value).encode())
    digest.update(b"\0")


def fingerprint(spec, case, kind: str) -> bytes:
    """A digest of everything ``kind`` ("value" or "gradient") of ``spec`` reads from ``case``:
    SHA-256, which processors compute in hardware (3 times blake2b's speed here: a language
    model's logits are hundreds of MB)."""
    digest = hashlib.sha256()
    digest.update(f"{spec.name}\0{kind}\0{case.dtype}\0".encode())
    for name in sorted(case.args):
        digest.update(name.encode())
        _feed(digest, case.args[name])
    _feed(digest, sorted(case.options.items(), key=lambda item: item[0]))
    if kind == "gradient":
        _feed(digest, case.grad_output)
    return digest.digest()


_MISSING = object()
_CACHE = BoundedCache(CACHE_BYTES)


def _cached(key, compute):
    """``compute()``'s result (or EvaluationError, raised again) under ``key``, computed once
    while the cache keeps it (by the prefetch process, when it has it or is computing it)."""
    result = _CACHE.lookup(key, _MISSING)
    if result is _MISSING and ahead_of_need.active() is not None:
        ahead_of_need.settle(key)
        result = _CACHE.lookup(key, _MISSING)
    if result is _MISSING:
        try:
            result = compute()
        except EvaluationError as error:
            result = error
        _CACHE.store(key, result)
    if isinstance(result, EvaluationError):
        raise result
    return result


def compute_reference(spec, case, kind: str):
    """What ``value_reference`` ("value") or ``gradient_reference`` ("gradient") returns for
    ``case``, computed afresh (raising EvaluationError)."""
    if kind == "value":
        return spec.reference(case), (None if spec.exact else spec.magnitude(case))
    return spec.reference_grad(case), spec.grad_magnitudes(case)


def value_reference(spec, case):
    """(exact output, its tolerance Magnitude) of ``case``; the Magnitude is None for a spec
    compared exactly (``spec.exact``). Raises EvaluationError where the reference cannot
    certify the case."""
    return _cached(fingerprint(spec, case, "value"),
                   lambda: compute_reference(spec, case, "value"))


def gradient_reference(spec, case):
    """({argument: exact gradient}, {argument: Magnitude}) of ``case`` for its upstream
    gradient; EvaluationError where the reference cannot certify it."""
    return _cached(fingerprint(spec, case, "gradient"),
                   lambda: compute_reference(spec, case, "gradient"))


def prefetch(spec, case, kind: str, priority: tuple) -> None:
    """Have ``kind`` ("value" or "gradient") of ``case`` computed ahead, with ``priority``
    (``conformance.prefetch``), while prefetching is on; nothing otherwise, or when the cache
    has it."""
    if not ahead_of_need.allowed():
        return
    key = fingerprint(spec, case, kind)
    if key not in _CACHE:
        ahead_of_need.ask(key, priority, kind, spec.name, case)


ahead_of_need.keep_results("value", _CACHE.store)
ahead_of_need.keep_results("gradient", _CACHE.store)
