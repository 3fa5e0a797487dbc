"""The compiled certification (``certify_kernel``) decides exactly as the numpy form
(``engine._certify_block``, ``compiled_kernels.certify_narrower_numpy``): the same rounding,
bit for bit, and the same verdict, on every kind of element a ball or a double-double can
hold, in every format."""

from __future__ import annotations

import numpy as np
import pytest

from loss_reference import engine
from loss_reference.balls import Ball
from loss_reference.compiled_kernels import certify_narrower, certify_narrower_numpy
from loss_reference.formats import DTYPES, FORMATS

pytest.importorskip("numba")


def _format_numbers(fmt, rng, n):
    """Numbers of the format over its whole range: normal, subnormal, the largest."""
    exponents = rng.integers(fmt.min_exponent - fmt.precision, 2 ** 10 if fmt.precision == 53
                             else int(np.log2(fmt.max_finite)) + 1, n)
    significands = rng.integers(2 ** (fmt.precision - 1), 2 ** fmt.precision, n)
    values = np.ldexp(significands.astype(np.float64), exponents - fmt.precision + 1)
    quantum = fmt.smallest_subnormal
    with np.errstate(over="ignore"):
        values = np.where(values < 2.0 ** fmt.min_exponent,
                          np.round(values / quantum) * quantum, values)
    values = np.minimum(values, fmt.max_finite)
    return values * rng.choice([-1.0, 1.0], n)


def _hard_elements(fmt, rng):
    """(mid, rad) pairs of every kind: format numbers and ties between them, their float64
    neighbours, powers of two, the ends of the range, float64 subnormals, zeros of both
    signs, infinities and NaN; radii from zero to infinite and NaN."""
    numbers = _format_numbers(fmt, rng, 4000)
    gaps = fmt.ulp(numbers)
    ties = numbers + np.copysign(gaps / 2, numbers)
    powers = np.ldexp(1.0, rng.integers(fmt.min_exponent - fmt.precision,
                                        min(int(np.log2(fmt.max_finite)), 1023) + 1, 500))
    landmarks = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, fmt.max_finite,
                          float(np.float64(fmt.overflow_threshold)), 2.0 ** fmt.min_exponent,
                          fmt.smallest_subnormal, fmt.smallest_subnormal / 2, 5e-324,
                          2.0 ** -1022, np.finfo(np.float64).max])
    exact = np.concatenate([numbers, ties, powers, -powers, landmarks, -landmarks])
    with np.errstate(over="ignore"):
        neighbours = np.concatenate([np.nextafter(exact, np.inf),
                                     np.nextafter(exact, -np.inf)])
    wide = np.exp2(rng.uniform(-1100, 1024, 4000)) * rng.choice([-1.0, 1.0], 4000)
    mids = np.concatenate([exact, neighbours, wide, rng.normal(size=4000)])
    relative = np.exp2(rng.uniform(-70, 0, mids.size)) * np.abs(mids)
    choices = np.stack([np.zeros(mids.size), relative, np.full(mids.size, 5e-324),
                        np.full(mids.size, np.inf), np.full(mids.size, np.nan),
                        np.exp2(rng.uniform(-1074, 1023, mids.size))])
    rads = choices[rng.choice(len(choices), mids.size, p=[.15, .6, .05, .07, .03, .1]),
                   np.arange(mids.size)]
    return mids, rads


@pytest.mark.parametrize("name", DTYPES)
def test_the_compiled_certification_decides_as_the_numpy_form(name):
    fmt = FORMATS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    mid, rad = _hard_elements(fmt, rng)
    with np.errstate(all="ignore"):
        want_rounded, want_ok = engine._certify_block(mid, rad, fmt)
    rounded, ok = engine.certify(Ball(mid, rad), fmt)
    np.testing.assert_array_equal(rounded, want_rounded)
    np.testing.assert_array_equal(np.signbit(rounded), np.signbit(want_rounded))
    np.testing.assert_array_equal(ok, want_ok)
    # the test is not vacuous: both verdicts, every kind of rounding
    assert ok.any() and not ok.all()
    assert np.isinf(rounded).any() and np.isnan(rounded).any()
    assert (rounded != mid)[np.isfinite(mid)].any() or fmt.precision == 53


def test_large_balls_go_by_shares_on_the_threads_with_the_same_results(monkeypatch):
    """A ball beyond one thread's share, its radius broadcast, certifies as its pieces do."""
    monkeypatch.setattr(engine, "CERTIFY_SHARE", 1000)
    fmt = FORMATS["bfloat16"]
    mid = np.random.default_rng(5).normal(size=(700, 13))
    rounded, ok = engine.certify(Ball(mid, np.float64(2.0 ** -17)), fmt)
    want_rounded, want_ok = engine._certify_block(mid.reshape(-1), np.full(mid.size, 2.0 ** -17),
                                                  fmt)
    assert rounded.shape == ok.shape == mid.shape
    np.testing.assert_array_equal(rounded.reshape(-1), want_rounded)
    np.testing.assert_array_equal(ok.reshape(-1), want_ok)
    assert ok.any() and not ok.all()


def test_a_zero_dimensional_ball():
    rounded, ok = engine.certify(Ball(np.array(1.0 + 2.0 ** -30), np.array(0.0)),
                                 FORMATS["float32"])
    assert rounded.shape == ok.shape == () and ok and rounded == 1.0


@pytest.mark.parametrize("name", [n for n in DTYPES if n != "float64"])
def test_the_compiled_narrower_certification_decides_as_the_numpy_form(name):
    """``certify_narrower``'s compiled pass against its numpy form on double-doubles of every
    kind: the hard balls' midpoints as hi (the format's ties among them), lo within half an
    ulp of hi (zeros, and parts beyond the error, which decide a tie's side), the radii as
    errors."""
    fmt = FORMATS[name]
    rng = np.random.default_rng(sum(map(ord, name)) + 1)
    hi, error = _hard_elements(fmt, rng)
    with np.errstate(all="ignore"):
        lo = np.spacing(hi) / 2 * rng.uniform(-1, 1, hi.size) * rng.choice([0.0, 1.0], hi.size)
        lo = np.where(np.isfinite(lo), lo, 0.0)
        pick = rng.random(hi.size)  # errors far below lo, as large as lo, or the radii
        error = np.where(pick < 0.3, np.abs(lo) * 2.0 ** -20,
                         np.where(pick < 0.4, np.abs(lo), error))
        want_rounded, want_ok = certify_narrower_numpy(hi, lo, error, fmt)
    rounded, ok = certify_narrower(hi, lo, error, fmt)
    np.testing.assert_array_equal(rounded, want_rounded)
    np.testing.assert_array_equal(np.signbit(rounded), np.signbit(want_rounded))
    np.testing.assert_array_equal(ok, want_ok)
    # not vacuous: both verdicts, and ties whose side lo decides (the plain ball fails them)
    assert ok.any() and not ok.all()
    _, ball_ok = engine.certify(Ball(hi, np.abs(lo) + error), fmt)
    assert (ok & ~ball_ok).any()
