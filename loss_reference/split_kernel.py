"""``split_product``'s slicing of an operand as one compiled pass a slice (numba): the same
slices and remainders, bit for bit, as its numpy form (``split_product._split``).

Why: a slice took seven numpy passes over its operand (the maxima, two scalings, the rounding,
the squares, the subtraction, each with its temporary). The double-double softmax gradient of
256 tokens by 4096 classes took 13 ms to split in three slices for its product by the weight
(whose ten matrix products take 25); one loop per slice, which scales, rounds, scales back,
squares and subtracts each element and finds the next slice's maxima on the way, takes 8 ms,
about the memory traffic of writing each slice and remainder.

Each element takes the numpy form's operations: rest times 2^-e rounded to an integer (``rint``,
ties to even), times 2^e, and rest minus that. The scalings multiply by the power of two where
it is a normal number, and call ``ldexp`` otherwise; either is the correctly rounded product,
and so is numpy's, which makes the same choice for a whole operand at once. The squares are
integers whose sums are exact in any order where ``slice_bits`` chose the bits (at most 2^53).
``tests/test_split_kernel.py`` checks the two forms agree on every kind of operand. Its own
module, as ``certify_kernel``: numba's on-disk cache of one never holds a kernel compiled
against an older version of another.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_LOWEST_NORMAL_EXPONENT, _HIGHEST_EXPONENT = -1022, 1023


@njit(cache=True, nogil=True, inline="always")
def _scaled(value, exponent, factor):
    """value 2^exponent, correctly rounded: by ``factor`` (= 2^exponent) where that is a
    normal number, else by ldexp."""
    if _LOWEST_NORMAL_EXPONENT <= exponent <= _HIGHEST_EXPONENT:
        return value * factor
    return math.ldexp(value, exponent)


@njit(cache=True, nogil=True)
def largest_magnitudes(values, along_rows, out):
    """max |v| of each row (``along_rows``) or each column of a C-contiguous 2-D array, into
    ``out``."""
    n, m = values.shape
    out[:] = 0.0
    for i in range(n):
        for j in range(m):
            v = abs(values[i, j])
            k = i if along_rows else j
            if v > out[k]:
                out[k] = v


@njit(cache=True, nogil=True)
def split_off(rest, units, along_rows, part, new_rest, squares, largest):
    """One slice of a C-contiguous 2-D ``rest``: part = rint(rest 2^-e) 2^e with e = ``units``
    of each row (``along_rows``) or each column, new_rest = rest - part (``new_rest`` may be
    ``rest`` itself), and per row or column the sum of the slice's squared integers
    (``squares``) and max |new_rest| (``largest``)."""
    n, m = rest.shape
    squares[:] = 0.0
    largest[:] = 0.0
    down = np.empty(units.size)
    up = np.empty(units.size)
    for k in range(units.size):
        e = units[k]
        down[k] = math.ldexp(1.0, -e) if _LOWEST_NORMAL_EXPONENT <= -e <= _HIGHEST_EXPONENT \
            else 0.0
        up[k] = math.ldexp(1.0, e) if _LOWEST_NORMAL_EXPONENT <= e <= _HIGHEST_EXPONENT else 0.0
    for i in range(n):
        for j in range(m):
            k = i if along_rows else j
            e = units[k]
            q = np.rint(_scaled(rest[i, j], -e, down[k]))
            squares[k] += q * q
            p = _scaled(q, e, up[k])
            r = rest[i, j] - p
            part[i, j] = p
            new_rest[i, j] = r
            if abs(r) > largest[k]:
                largest[k] = abs(r)
