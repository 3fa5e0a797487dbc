"""Exact operations on floating-point operands, vectorised over numpy arrays.

The error of a sum or a product of two floating-point numbers is itself a floating-point
number, and it can be computed exactly (Knuth's TwoSum, Dekker's TwoProduct): ``balls`` uses it
as the radius of a sum or product of exact balls, zero where the result is exact. And some
products are exact by their operands alone, which cheap tests of the operands tell: two numbers
of float32's significand and range, or a mask of 0 and +-1 times a finite number.
"""

from __future__ import annotations

import numpy as np

# At most 24 significant bits (the float64 significand's low 29 bits clear) and a magnitude in
# [2^-149, 2^128) or zero, as every float32, float16 and bfloat16 value: the product of two such
# numbers has at most 48 significant bits and lies in float64's normal range, so it is exact.
SHORT_LOW_BITS = np.uint64((1 << 29) - 1)


def is_short(mid) -> bool:
    """Every value a float64 with float32's significand and exponent range (see
    ``SHORT_LOW_BITS``)."""
    if mid.dtype != np.float64 or np.any(mid.view(np.uint64) & SHORT_LOW_BITS):
        return False
    magnitude = np.abs(mid)
    return np.all(((magnitude >= 2.0 ** -149) & (magnitude < 2.0 ** 128)) | (magnitude == 0))


def is_unit(mid) -> bool:
    """Every value 0, 1 or -1."""
    magnitude = np.abs(mid)
    return np.all((magnitude == 1) | (magnitude == 0))


def all_finite(mid) -> bool:
    """Every value finite."""
    return np.all(np.isfinite(mid))


def two_sum_error(a, b, total):
    """a + b - total exactly, for total = fl(a + b) (Knuth's TwoSum: any magnitudes, and
    subnormal results are exact; nan where total overflowed)."""
    b_virtual = total - a
    a_virtual = total - b_virtual
    return (a - a_virtual) + (b - b_virtual)


def two_product_error(a, b, product, dtype, tiny):
    """a * b - product exactly, for product = fl(a * b) in ``dtype`` (float64 or long double,
    ``tiny`` its smallest normal) by Dekker's TwoProduct with Veltkamp's splitting; nan where
    that is not guaranteed: a split that could overflow, or a product whose error could
    underflow (|product| below 2^(precision bits) times the smallest normal), except exact
    zeros (a zero factor)."""
    bits = 53 if dtype is np.float64 else 64
    splitter = dtype(2.0 ** ((bits + 1) // 2) + 1)
    limit = dtype(np.finfo(dtype).max) / splitter / 4
    a, b = np.broadcast_arrays(a, b)

    def split(v):
        scaled = splitter * v
        high = scaled - (scaled - v)
        return high, v - high

    a_high, a_low = split(a)
    b_high, b_low = split(b)
    error = ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low
    safe = ((np.abs(a) < limit) & (np.abs(b) < limit)
            & (np.abs(product) >= tiny * dtype(2.0 ** bits)))
    zero = (product == 0) & ((a == 0) | (b == 0))
    return np.where(zero, 0, np.where(safe, error, np.nan))


def exact_error(bound, error):
    """The radius |error| where the exact error is known (finite), else the rounding bound."""
    return np.where(np.isfinite(error), np.abs(error), bound).astype(bound.dtype)
