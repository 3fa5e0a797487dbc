"""The exact reference, proved against independent exact arithmetic.

Every expected value here is computed without the code under test: rational quantities with
``fractions.Fraction`` (exact), transcendental ones with mpmath at 70+ significant digits (more
where the definition cancels), and then rounded to the target format by ``correctly_round``, a
few lines that apply IEEE 754's round-to-nearest-even to an exact rational. That helper is itself
checked against the hardware's conversions before anything relies on it.

Covered: ``round_dyadic`` and ``round_to_format`` (ties, subnormals, overflow, huge exponents),
the long double libm bound ``LIBM_ULPS``, the multi-label losses and their gradients on every
reduction and format, and ``multi_hot`` (including the seed post's wrong third example).
"""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction
from functools import lru_cache

import numpy as np
import pytest
from mpmath import mp, mpf

from loss_reference import multilabel as ml
from loss_reference.balls import FLOAT64_BALLS, LD, LIBM_ULPS, LONG_DOUBLE_BALLS, Ball
from loss_reference.engine import ESTIMATE_ULPS
from loss_reference.formats import FORMATS, round_dyadic, round_float64, round_to_format
from conformance.specs import REDUCTIONS

FORMAT_NAMES = tuple(FORMATS)
LD_BITS = np.finfo(LD).nmant + 1  # 64 for x87 extended precision


# --- the independent oracle ----------------------------------------------------------------------

def pow2(k: int) -> Fraction:
    return Fraction(1 << k) if k >= 0 else Fraction(1, 1 << -k)


def correctly_round(q, fmt) -> tuple[float, bool]:
    """(q rounded to fmt, whether q lay exactly halfway), by IEEE 754's definition.

    The representable numbers of binade [2**e, 2**(e+1)) are multiples of 2**(e - p + 1), with
    e clamped to min_exponent below (the subnormals share the smallest normal binade's spacing);
    pick the nearest multiple, the even one on a tie, and overflow to infinity when that
    multiple exceeds the largest finite number.
    """
    q = Fraction(q)
    if q == 0:
        return 0.0, False
    sign = -1.0 if q < 0 else 1.0
    a = abs(q)
    e = a.numerator.bit_length() - a.denominator.bit_length()  # floor(log2 a) is e or e - 1
    if pow2(e) > a:
        e -= 1
    assert pow2(e) <= a < pow2(e + 1)
    spacing = pow2(max(e, fmt.min_exponent) - fmt.precision + 1)
    n, rest = divmod(a, spacing)
    tie = rest == spacing / 2
    if rest > spacing / 2 or (tie and n % 2 == 1):
        n += 1
    value = n * spacing
    if value > Fraction(fmt.max_finite):
        return sign * math.inf, tie
    return sign * float(value), tie  # exact: every format's numbers are float64 numbers


def ld_to_fraction(value) -> Fraction:
    """The exact rational value of a finite long double."""
    value = LD(value)
    if value == 0:
        return Fraction(0)
    m, e = np.frexp(value)  # value = m * 2**e, 0.5 <= |m| < 1
    integer = np.ldexp(m, LD_BITS)  # an integer: the significand has LD_BITS bits
    high = np.float64(integer)
    low = integer - LD(high)  # exact (a small integer)
    assert low == np.trunc(low) and abs(low) < 2.0 ** 16
    return (Fraction(int(high)) + Fraction(int(low))) * pow2(int(e) - LD_BITS)


def ld_from(mantissa: int, exponent: int):
    """The long double mantissa * 2**exponent, built exactly (|mantissa| < 2**64)."""
    sign = -1 if mantissa < 0 else 1
    mantissa = abs(mantissa)
    assert mantissa < 2 ** LD_BITS
    high, low = mantissa >> 32 << 32, mantissa & 0xFFFFFFFF  # each exact in float64
    value = np.ldexp(LD(float(high)) + LD(float(low)), exponent) * sign
    assert ld_to_fraction(value) == sign * Fraction(mantissa) * pow2(exponent)
    return value


def to_fraction(value) -> Fraction:
    if isinstance(value, Fraction):
        return value
    if isinstance(value, mp.mpf):
        sign, man, exp, _ = value._mpf_  # (mpf.man_exp drops the sign)
        return (-1) ** sign * Fraction(man) * pow2(exp)
    if isinstance(value, np.longdouble):
        return ld_to_fraction(value)
    return Fraction(float(value))


def is_nan(value) -> bool:
    return not isinstance(value, Fraction) and (value != value)


def round_value(value, fmt) -> tuple[float, bool]:
    if is_nan(value):
        return math.nan, False
    if isinstance(value, mp.mpf) and mp.isinf(value):
        return float(value), False
    return correctly_round(to_fraction(value), fmt)


def to_format(values, fmt) -> np.ndarray:
    """Test inputs made representable in fmt (the values a candidate of that dtype receives)."""
    values = np.asarray(values, dtype=np.float64)
    flat = [correctly_round(Fraction(float(v)), fmt)[0] for v in values.reshape(-1)]
    return np.array(flat, dtype=np.float64).reshape(values.shape)


def assert_certified(evaluated, exact_values, shape, fmt):
    """The reference's rounding equals the oracle's, and its estimate is close to the truth.

    Returns the oracle's tie flags (so a test can show that it exercised exact ties).
    """
    rounded_ties = [round_value(v, fmt) for v in exact_values]
    expected = np.array([r for r, _ in rounded_ties], dtype=np.float64).reshape(shape)
    np.testing.assert_array_equal(evaluated.rounded, expected, strict=True)
    estimate = np.asarray(evaluated.exact)
    assert estimate.shape == tuple(shape)
    for est, true in zip(estimate.reshape(-1), exact_values):
        if is_nan(true):
            assert np.isnan(est)
            continue
        # compare() measures errors from this estimate: the engine promises it within
        # ESTIMATE_ULPS of an ulp of the format (where the value is finite).
        q = to_fraction(true)
        if abs(q) >= min(2 * Fraction(fmt.max_finite), pow2(1024)):
            continue  # rounds to an infinity: no error is measured there
        ulp = Fraction(float(fmt.ulp(np.array(float(q)))))
        assert abs(ld_to_fraction(est) - q) <= ulp * Fraction(ESTIMATE_ULPS) + pow2(-1074), \
            (est, float(q))
    return [t for _, t in rounded_ties]


def test_oracle_agrees_with_hardware_conversions():
    """correctly_round matches the conversions numpy and ml_dtypes perform (all correctly
    rounded): float64 -> float32 / float16, float32 -> bfloat16, including subnormals, ties and
    overflow. Everything below trusts it."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(7)
    exponents = rng.integers(-160, 132, 400)
    x64 = np.ldexp(rng.uniform(1, 2, 400), exponents) * rng.choice([-1, 1], 400)
    # exact float32 ties: odd multiples of half the float32 spacing
    ties32 = np.ldexp(2.0 * rng.integers(2 ** 23, 2 ** 24, 50) + 1,
                      rng.integers(-150, 104, 50) - 24)
    x64 = np.concatenate([x64, ties32, [65519.0, 65520.0, 2.0 ** -25, 3 * 2.0 ** -26]])
    with np.errstate(over="ignore"):
        assert [correctly_round(Fraction(v), FORMATS["float32"])[0] for v in x64] == \
            np.float32(x64).astype(np.float64).tolist()
        assert [correctly_round(Fraction(v), FORMATS["float16"])[0] for v in x64] == \
            np.float16(x64).astype(np.float64).tolist()
        x32 = np.float32(x64)
        x32 = x32[np.isfinite(x32)]
        assert [correctly_round(Fraction(float(v)), FORMATS["bfloat16"])[0] for v in x32] == \
            x32.astype(ml_dtypes.bfloat16).astype(np.float64).tolist()
    assert all(correctly_round(Fraction(v), FORMATS["float64"])[0] == v for v in x64)


# --- round_dyadic --------------------------------------------------------------------------------

def edge_dyadics(fmt):
    """(name, mantissa, exponent): ties, subnormals, overflow and extreme exponents for fmt."""
    p, emin = fmt.precision, fmt.min_exponent
    sub = emin - p + 1  # exponent of the smallest subnormal
    top = math.frexp(fmt.max_finite)[1] - 1  # exponent of the largest binade
    max_mantissa = 2 ** p - 1  # max_finite = max_mantissa * 2**(top - p + 1)
    return [
        ("one", 1, 0),
        ("tie-down-to-even", 2 ** p + 1, -p),  # 1 + 2**-p: between 1 and 1 + 2**(1-p)
        ("tie-up-to-even", 2 ** p + 3, -p),
        ("above-tie", 2 ** (p + 8) + 2 ** 8 + 1, -p - 8),
        ("below-tie", 2 ** (p + 8) + 2 ** 8 - 1, -p - 8),
        ("negative-tie", -(2 ** p + 3), -p),
        ("carry-into-next-binade", 2 ** (p + 1) - 1, -p),  # 2 - 2**-p rounds up to 2
        ("smallest-normal", 1, emin),
        ("largest-subnormal", 2 ** (p - 1) - 1, sub),
        ("subnormal-to-normal-tie", 2 ** p - 1, sub - 1),
        ("smallest-subnormal", 1, sub),
        ("half-smallest-subnormal", 1, sub - 1),  # a tie: rounds to 0 (even)
        ("above-half-subnormal", 2 ** 40 + 1, sub - 41),
        ("three-halves-subnormal", 3, sub - 1),  # a tie: rounds to 2 subnormals
        ("five-halves-subnormal", 5, sub - 1),  # a tie: rounds to 2 subnormals
        ("quarter-subnormal", 1, sub - 2),
        ("far-below", 12345, sub - 400),
        ("negative-underflow", -1, sub - 2),
        ("max-finite", max_mantissa, top - p + 1),
        ("max-plus-below-half-ulp", (2 * max_mantissa + 1) * 2 ** 8 - 1, top - p - 8),
        ("max-plus-half-ulp", 2 * max_mantissa + 1, top - p),  # tie: overflows
        ("twice-max", max_mantissa, top - p + 2),
        ("just-past-1024", 1, 1050),
        ("past-1100", 3, 1200),
        ("negative-overflow", -max_mantissa, top - p + 2),
        ("huge-exponent", 7, 10 ** 6),
        ("hugely-negative-exponent", 7, -10 ** 6),
        ("huge-mantissa-near-one", 2 ** 5000 + 1, -5000),
        ("huge-mantissa-tie", 2 ** 5000 + 2 ** (5000 - p), -5000),
        ("huge-mantissa-huge-exponent", 3 ** 3000, -4700),
        ("huge-mantissa-tiny", 3 ** 3000 + 1, -4755 - 1100),
    ]


@pytest.mark.parametrize("fmt_name", FORMAT_NAMES)
def test_round_dyadic_edges(fmt_name):
    fmt = FORMATS[fmt_name]
    for name, mantissa, exponent in edge_dyadics(fmt):
        expected = correctly_round(Fraction(mantissa) * pow2(exponent), fmt)
        got = round_dyadic(mantissa, exponent, fmt)
        assert got == expected, (name, got, expected)
        assert math.copysign(1, got[0]) == math.copysign(1, expected[0]), name


@pytest.mark.parametrize("fmt_name", FORMAT_NAMES)
def test_round_dyadic_landmarks(fmt_name):
    """The oracle and the code agree on what the edges *are* (no shared blind spot)."""
    fmt = FORMATS[fmt_name]
    p, sub = fmt.precision, fmt.min_exponent - fmt.precision + 1
    top = math.frexp(fmt.max_finite)[1] - 1
    assert round_dyadic(2 ** p + 1, -p, fmt) == (1.0, True)
    assert round_dyadic(2 ** p + 3, -p, fmt) == (1.0 + 2.0 ** (2 - p), True)
    assert round_dyadic(1, sub - 1, fmt) == (0.0, True)
    assert round_dyadic(3, sub - 1, fmt) == (2 * fmt.smallest_subnormal, True)
    assert round_dyadic(1, sub, fmt) == (fmt.smallest_subnormal, False)
    assert round_dyadic(2 * (2 ** p - 1) + 1, top - p, fmt) == (math.inf, True)
    assert round_dyadic(-(2 ** p - 1), top - p + 1, fmt) == (-fmt.max_finite, False)
    assert round_dyadic(1, 10 ** 12, fmt) == (math.inf, False)
    assert round_dyadic(1, -10 ** 12, fmt) == (0.0, False)
    assert round_dyadic(0, 5, fmt) == (0.0, False)


@pytest.mark.parametrize("fmt_name", FORMAT_NAMES)
def test_round_dyadic_random(fmt_name):
    fmt = FORMATS[fmt_name]
    rng = random.Random(fmt_name)
    p, sub = fmt.precision, fmt.min_exponent - fmt.precision + 1
    top = math.frexp(fmt.max_finite)[1] - 1
    ties = 0
    for i in range(600):
        if i % 3 == 0:  # an exact tie: an odd multiple of half the spacing of some binade
            binade = rng.randint(fmt.min_exponent - 3, top + 1)
            spacing = max(binade, fmt.min_exponent) - p + 1
            kept = rng.randrange(0, 2 ** p) | (0 if binade < fmt.min_exponent else 2 ** (p - 1))
            mantissa, exponent = 2 * kept + 1, spacing - 1
            extra = rng.randint(0, 40)
            mantissa, exponent = mantissa << extra, exponent - extra
        else:
            bits = rng.randint(1, 200)
            mantissa = rng.getrandbits(bits) | 1 << (bits - 1)
            exponent = rng.randint(sub - 3, top + 3) - bits + 1
        mantissa *= rng.choice([-1, 1])
        expected = correctly_round(Fraction(mantissa) * pow2(exponent), fmt)
        ties += expected[1]
        assert round_dyadic(mantissa, exponent, fmt) == expected, (mantissa, exponent)
    assert ties >= 150


# --- round_to_format -----------------------------------------------------------------------------

def edge_long_doubles(fmt):
    """(name, mantissa, exponent) edges that fit a long double (|mantissa| < 2**64)."""
    return [(name, m, e) for name, m, e in edge_dyadics(fmt)
            if abs(m).bit_length() <= LD_BITS and -16000 < e + abs(m).bit_length() < 16000]


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("fmt_name", FORMAT_NAMES)
def test_round_to_format_edges(fmt_name):
    fmt = FORMATS[fmt_name]
    cases = edge_long_doubles(fmt)
    assert len(cases) >= 20
    values = np.array([ld_from(m, e) for _, m, e in cases], dtype=LD)
    rounded, is_tie = round_to_format(values, fmt)
    expected = [correctly_round(Fraction(m) * pow2(e), fmt) for _, m, e in cases]
    for (name, _, _), got, tie, (want, want_tie) in zip(cases, rounded, is_tie, expected):
        assert (got, bool(tie)) == (want, want_tie), name
        assert math.copysign(1, got) == math.copysign(1, want), name
    assert rounded.dtype == np.float64 and rounded.shape == values.shape


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("fmt_name", FORMAT_NAMES)
def test_round_to_format_specials_and_shape(fmt_name):
    fmt = FORMATS[fmt_name]
    values = np.array([[np.nan, np.inf], [-np.inf, 0.0], [LD("1e4000"), -LD("1e-4000")]], dtype=LD)
    rounded, is_tie = round_to_format(values, fmt)
    assert rounded.shape == (3, 2) and is_tie.shape == (3, 2)
    assert np.isnan(rounded[0, 0])
    assert rounded[0, 1] == np.inf and rounded[1, 0] == -np.inf
    assert rounded[1, 1] == 0.0 and rounded[2, 0] == np.inf
    assert rounded[2, 1] == 0.0 and np.signbit(rounded[2, 1])
    assert not is_tie.any()


@pytest.mark.parametrize("fmt_name", FORMAT_NAMES)
def test_round_to_format_random(fmt_name):
    """Random long doubles with full 64-bit significands from below the subnormals to beyond
    the largest finite number, plus exact ties in random binades."""
    fmt = FORMATS[fmt_name]
    rng = random.Random("ld" + fmt_name)
    p, sub = fmt.precision, fmt.min_exponent - fmt.precision + 1
    top = math.frexp(fmt.max_finite)[1] - 1
    pairs = []
    for i in range(500):
        if i % 4 == 0:
            binade = rng.randint(fmt.min_exponent - 3, top + 1)
            spacing = max(binade, fmt.min_exponent) - p + 1
            kept = rng.randrange(0, 2 ** p) | (0 if binade < fmt.min_exponent else 2 ** (p - 1))
            pairs.append((2 * kept + 1, spacing - 1))
        else:
            bits = rng.randint(1, LD_BITS)
            mantissa = rng.getrandbits(bits) | 1 << (bits - 1)
            pairs.append((mantissa, rng.randint(sub - 3, top + 3) - bits + 1))
    pairs = [(m * rng.choice([-1, 1]), e) for m, e in pairs]
    values = np.array([ld_from(m, e) for m, e in pairs], dtype=LD)
    rounded, is_tie = round_to_format(values, fmt)
    expected = [correctly_round(Fraction(m) * pow2(e), fmt) for m, e in pairs]
    assert rounded.tolist() == [v for v, _ in expected]
    assert is_tie.tolist() == [t for _, t in expected]
    assert sum(is_tie.tolist()) >= 125


# --- the long double libm bound ------------------------------------------------------------------

LIBM_DPS = 120


EXP_INPUTS = {
    "tiny": [1e-300, -1e-300, 2.0 ** -64, 1e-20, -1e-10],
    "normal": [0.5, -0.5, 1.0, -1.0, LD(1) / LD(3), -LD(10) / LD(7), 2.5, 10.0, -17.0, 40.0,
               -40.0, 88.7, -88.7],
    "large": [700.0, -700.0, 750.0, -750.0, 1000.0, 5000.5, -1e4, 1e4, LD(34000) / LD(3)],
    "near-overflow": [11356.5, LD("11356.52"), -11355.0],  # exp(11356.52) ~ 0.99 * LD max
}
LOG1P_INPUTS = {
    "tiny": [1e-300, -1e-300, 2.0 ** -70, 1e-20, -1e-20, 1e-10, 3e-5],
    "normal": [LD(1) / LD(3), 0.5, -0.5, -0.9375, 0.75, 1.0, 2.5, 100.0,
               LD(1) - LD(2) ** -63, -1 + LD(2) ** -60],
    "softplus-arguments": ["exp:-17", "exp:-40", "exp:-88.7", "exp:-750", "exp:-1e4", "exp:-0.3"],
    "large": [1e10, 1e300, LD("1e4000"), LD("1e4931")],
}


def _inputs(table):
    out = []
    for regime, values in table.items():
        for v in values:
            if isinstance(v, str) and v.startswith("exp:"):
                v = np.exp(LD(v[4:]))  # a long double with a full significand, as softplus sees
            label = np.format_float_scientific(LD(v), precision=6, trim="-")
            out.append(pytest.param(LD(v), id=f"{regime}-{label}"))
    return out


def _measure(ball, truth):
    """(error of the midpoint in units of the ball's unit roundoff relative to |truth|, whether
    the ball contains the truth)."""
    error = abs(ld_to_fraction(ball.mid) - to_fraction(truth))
    unit = ld_to_fraction(LD(ball.precision.unit_roundoff))
    units = error / (abs(to_fraction(truth)) * unit)
    return units, error <= ld_to_fraction(ball.rad)


def _exact_mpf(value):
    q = ld_to_fraction(value)
    return mpf(q.numerator) / q.denominator  # exact: the denominator is a power of two


BACKENDS = {"longdouble": LONG_DOUBLE_BALLS, "float64": FLOAT64_BALLS}


def _in(backend, x):
    """x as the backend holds it (an input beyond float64's range or precision is skipped)."""
    with np.errstate(over="ignore"):  # beyond float64: inf, skipped below
        value = np.asarray(x, dtype=backend.precision.dtype)
    if LD(value) != LD(x):
        pytest.skip(f"{x} is not a {backend.precision.name} number")
    return value


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("x", _inputs(EXP_INPUTS))
def test_exp_within_libm_bound(x, name):
    backend = BACKENDS[name]
    x = _in(backend, x)
    with mp.workdps(LIBM_DPS):
        ball = backend.exp(backend.asarray(np.array(x)))
        truth = mp.exp(_exact_mpf(x))
        if not np.isfinite(ball.mid):
            assert to_fraction(truth) > ld_to_fraction(np.finfo(ball.precision.dtype).max) / 2
            return
        if abs(to_fraction(truth)) <= ld_to_fraction(LD(ball.precision.tiny)):
            pytest.skip("below the normal numbers: test_exp_into_subnormals_contained")
        units, contains = _measure(ball, truth)
    assert units <= LIBM_ULPS, f"exp({x}) is {float(units):.3g} units off"
    assert contains


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("x", _inputs(LOG1P_INPUTS))
def test_log1p_within_libm_bound(x, name):
    backend = BACKENDS[name]
    x = _in(backend, x)
    with mp.workdps(LIBM_DPS):
        ball = backend.log1p(backend.asarray(np.array(x)))
        truth = mp.log1p(_exact_mpf(x))
        units, contains = _measure(ball, truth)
    assert units <= LIBM_ULPS, f"log1p({x}) is {float(units):.3g} units off"
    assert contains


@pytest.mark.parametrize("name", BACKENDS)
def test_exp_and_log1p_within_libm_bound_on_random_arguments(name):
    """2,000 random arguments over the whole range of each function (numpy's SIMD float64 code
    takes different paths by magnitude)."""
    backend = BACKENDS[name]
    dtype = backend.precision.dtype
    rng = np.random.default_rng(7)
    top = 700.0 if dtype is np.float64 else 11000.0
    xs = np.concatenate([rng.uniform(-top, top, 500), rng.uniform(-1, 1, 500),
                         rng.choice([-1, 1], 1000) * 10.0 ** rng.uniform(-30, 2, 1000)])
    xs = xs.astype(dtype)
    worst = 0
    with mp.workdps(LIBM_DPS):
        for function, truth_of, args in (
                (backend.exp, mp.exp, xs),
                (backend.log1p, mp.log1p, np.abs(xs))):
            balls = function(backend.asarray(args))
            for i, x in enumerate(args):
                truth = truth_of(_exact_mpf(LD(x)))
                if abs(to_fraction(truth)) <= ld_to_fraction(LD(backend.precision.tiny)):
                    continue
                units, contains = _measure(balls[i], truth)
                assert contains, (function.__name__, x)
                worst = max(worst, units)
    assert worst <= LIBM_ULPS, f"{float(worst):.3g} units"


@pytest.mark.parametrize("x", [LD(-11380), LD(-11400.5), LD(-740), LD(-745.1)],
                         ids=["-11380", "-11400.5", "-740", "-745.1"])
def test_exp_into_subnormals_contained(x):
    """Results below the normals: the absolute floor ``tiny`` keeps the truth in."""
    for backend in BACKENDS.values():
        with mp.workdps(LIBM_DPS):
            ball = backend.exp(backend.asarray(np.array(x, dtype=backend.precision.dtype)))
            value = LD(np.asarray(x, dtype=backend.precision.dtype))
            _, contains = _measure(ball, mp.exp(_exact_mpf(value)))
        assert contains, backend.name


@pytest.mark.parametrize("mid, rad", [(-800.0, 750.0), (-5.6e30, 2.5e15), (-1e5, 9.99e4),
                                      (-3.0, 1e300)])
def test_exp_of_a_wide_ball_whose_midpoint_underflows(mid, rad):
    """exp(x) underflows to 0 while the radius is huge (a logit of 1e30 minus its row's max,
    rounded): the ball is finite where it can be and holds exp at both ends."""
    for backend in BACKENDS.values():
        dtype = backend.precision.dtype
        ball = backend.exp(Ball(np.array([mid], dtype), np.array([rad], dtype)))
        assert not np.isnan(ball.rad).any(), backend.name
        low, high = ball.mid[0] - ball.rad[0], ball.mid[0] + ball.rad[0]
        for end in (LD(mid) - LD(rad), LD(mid) + LD(rad)):
            if end < -12000:  # exp(end) is positive and below either precision's normals
                assert low <= 0 < high, (backend.name, mid, rad)
            elif end > 12000:
                assert high == np.inf, (backend.name, mid, rad)
            else:
                with mp.workdps(LIBM_DPS):
                    _, contains = _measure(ball[0], mp.exp(_exact_mpf(end)))
                assert contains, (backend.name, mid, rad)
        if mid + rad < -12000:
            assert ball.rad[0] <= backend.precision.tiny * 2, backend.name


SOFTPLUS_INPUTS = [0.0, 1e-8, -1e-8, 0.5, -3.25, 17.0, -17.0, 40.0, 88.7, -88.7, 750.0, -750.0,
                   1e4, -1e4]


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("x", SOFTPLUS_INPUTS)
def test_softplus_and_sigmoid_balls_contain_truth(x, name):
    """The composed balls the losses use still contain the exact value."""
    backend = BACKENDS[name]
    with mp.workdps(LIBM_DPS):
        X = mpf(x)
        for function, truth in ((backend.softplus, mp.log1p(mp.exp(X))),
                                (backend.sigmoid, 1 / (1 + mp.exp(-X)))):
            ball = function(backend.asarray(np.array([x])))[0]
            error = abs(ld_to_fraction(ball.mid) - to_fraction(truth))
            assert error <= ld_to_fraction(ball.rad), (function.__name__, x)


# --- multilabel_soft_margin_loss: the mpmath oracle ----------------------------------------------

BASE_DPS = 70
GUARD_DPS = 40  # every expectation is computed twice, the second time with this many more digits


def case_dps(x) -> int:
    """Digits that keep BASE_DPS correct ones in every output of a case with logits x.

    softplus(x) - x = log1p(e^-x) and sigmoid(x) - 1 are about e^-|x| while their terms are about
    |x| and 1; and a term of about |x| beside a tail of about e^-|x| (softplus(-|x|)) decides the
    rounding when the rest of the sum is an exact tie. |x| / ln 10 more digits keep both.
    """
    largest = float(np.max(np.abs(x), initial=0.0))
    return BASE_DPS + math.ceil(largest / math.log(10))


@lru_cache(maxsize=None)
def mp_soft_term(x: float, y: float, dps: int):
    """softplus(x) - y x = log(1 + e^x) - y x, straight from the definition."""
    with mp.workdps(dps):
        return mp.log1p(mp.exp(mpf(x))) - mpf(y) * mpf(x)


@lru_cache(maxsize=None)
def mp_sigmoid_minus(x: float, y: float, dps: int):
    """sigmoid(x) - y = 1 / (1 + e^-x) - y."""
    with mp.workdps(dps):
        return 1 / (1 + mp.exp(-mpf(x))) - mpf(y)


def soft_margin_loss_exact(x, y, w, reduction, guard):
    """mean over classes of w_c (softplus(x_c) - y_c x_c) per sample, then the reduction."""
    x2, y2 = np.atleast_2d(x), np.atleast_2d(y)
    n_samples, classes = x2.shape
    w = np.ones(classes) if w is None else w
    dps = case_dps(x) + guard
    with mp.workdps(dps):
        per_sample = [mp.fsum(mpf(float(w[c])) * mp_soft_term(float(x2[n, c]), float(y2[n, c]), dps)
                              for c in range(classes)) / classes for n in range(n_samples)]
        if reduction == "none":
            return per_sample, x.shape[:-1]
        total = mp.fsum(per_sample)
        if reduction == "sum":
            return [total], ()
        return [total / n_samples if n_samples else mp.nan], ()  # the mean of no samples


def per_sample_upstream(g, reduction, x):
    """g_n for every sample and N' (N for mean, else 1)."""
    n_samples = np.atleast_2d(x).shape[0]
    if reduction == "none":
        return [float(v) for v in np.asarray(g).reshape(-1)], 1
    return [float(g)] * n_samples, (n_samples if reduction == "mean" else 1)


def soft_margin_grad_exact(g, x, y, w, reduction, guard):
    """By hand: d/dx = g w (sigmoid(x) - y) / (C N'), d/dy = -g w x / (C N'),
    d/dw_c = sum_n g_n (softplus(x_nc) - y_nc x_nc) / (C N')."""
    x2, y2 = np.atleast_2d(x), np.atleast_2d(y)
    n_samples, classes = x2.shape
    gs, n_prime = per_sample_upstream(g, reduction, x)
    weight = np.ones(classes) if w is None else w
    out = {}
    dps = case_dps(x) + guard
    with mp.workdps(dps):
        out["input"] = ([mpf(gs[n]) * mpf(float(weight[c]))
                         * mp_sigmoid_minus(float(x2[n, c]), float(y2[n, c]), dps)
                         / (classes * n_prime) for n in range(n_samples) for c in range(classes)],
                        x.shape)
        out["target"] = ([-Fraction(gs[n]) * Fraction(float(weight[c])) * Fraction(float(x2[n, c]))
                          / (classes * n_prime) for n in range(n_samples) for c in range(classes)],
                         x.shape)
        if w is not None:
            # An empty batch leaves an empty sum: 0 (whatever N' is).
            out["weight"] = ([mp.fsum(mpf(gs[n])
                                      * mp_soft_term(float(x2[n, c]), float(y2[n, c]), dps)
                                      for n in range(n_samples)) / (classes * max(n_prime, 1))
                              for c in range(classes)], (classes,))
    return out


def exact_twice(compute, fmt):
    """compute(guard) at two precisions; both must round alike, and a value that rounds as an
    exact tie must have come out identical at both (an exact computation, not an approximation
    that happens to sit on a tie). Returns the more precise values."""
    low, high = compute(0), compute(GUARD_DPS)
    pairs = ([(low[k][0], high[k][0]) for k in low] if isinstance(low, dict)
             else [(low[0], high[0])])
    for coarse, fine in pairs:
        for a, b in zip(coarse, fine):
            if is_nan(a) or is_nan(b):
                assert is_nan(a) and is_nan(b)
                continue
            assert round_value(a, fmt) == round_value(b, fmt), (a, b)
            if round_value(b, fmt)[1]:
                assert to_fraction(a) == to_fraction(b), "a tie from an inexact computation"
    return high


# --- multilabel_soft_margin_loss: the regimes ----------------------------------------------------

G_VECTOR = [0.75, -2.5, 1.25, -0.375, 2.0, 0.5, -1.0]
G_SCALAR = -2.5
LARGE = [17.0, 40.0, 88.7, 750.0, 1e4]  # beyond fp32's sigmoid saturation, exp overflow, ...
NORMAL = [[1.25, -3.5, 4.75, -1.0625, 2.5], [-4.5, 1.75, -2.25, 3.125, -5.0],
          [0.8125, 2.0, -1.5, 4.0, -0.625]]


def soft_margin_regime(name, fmt):
    """(x, y, w, g for 'none', g for 'sum'/'mean'), representable in fmt."""
    tie_g = 1 + 2.0 ** (1 - fmt.precision)  # g * 1.5 needs p + 1 bits: g w / (2C) is a tie
    g_vector, g_scalar, w = None, G_SCALAR, None
    if name == "normal":
        x, y = NORMAL, [[1, 0, 1, 1, 0], [0, 0, 1, 1, 1], [1, 1, 0, 0, 0]]
    elif name == "large":
        x = [LARGE, LARGE, [-v for v in LARGE], [-v for v in LARGE]]
        y = [[1, 0, 1, 0, 1], [0, 1, 0, 1, 0]] * 2  # saturated agreeing and disagreeing
    elif name == "large-soft-weighted":
        x = [LARGE, [-v for v in LARGE]]
        y = [[0.25, 0.5, 0.875, 0.125, 0.75], [0.75, 0.125, 0.5, 0.875, 0.25]]
        w = [0.5, 2.0, 1.5, 0.25, 3.0]
    elif name == "tiny":
        x = [[1e-8, -3e-8, 2.5e-9, -7e-9], [5e-9, 1e-8, -1e-8, 2e-8]]
        y = [[1, 0, 1, 0], [0, 1, 1, 0]]
    elif name == "soft-targets":
        x = NORMAL[:2]
        y = [[0.25, 0.5, 0.75, 0.0625, 1.0], [0.0, 0.9375, 0.5, 0.3125, 0.125]]
    elif name == "zero-weights":
        x, y, w = [r[:4] for r in NORMAL], [[1, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0]], [0.0] * 4
    elif name == "non-uniform-weights":
        x, y, w = [r[:4] for r in NORMAL], [[1, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0]], \
            [0.25, 1.5, 3.0, 0.75]
    elif name == "signed-weights":
        x, y, w = [r[:4] for r in NORMAL], [[1, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0]], \
            [-1.0, 0.0, 0.5, 2.0]
    elif name == "exact-ties":
        # sigmoid(0) = 1/2 exactly: g w (1/2 - y) / (C N') is an exact tie of the format, and
        # x = 0 with y = 1/2 has an exactly zero input gradient.
        x, y, w = [[0.0, 0.0, 0.0, 1.5], [0.0, -2.0, 0.0, 0.0]], \
            [[0, 1, 0.5, 1], [1, 0, 0, 0.5]], [1.5] * 4
        g_vector, g_scalar = [tie_g, -tie_g], tie_g
    elif name == "empty-batch":
        x, y, w = np.zeros((0, 4)), np.zeros((0, 4)), [0.25, 1.5, 3.0, 0.75]
    elif name == "unbatched":
        x, y, w = [1.25, -3.5, 17.0, -0.5, 0.0], [1, 0, 1, 0.5, 0], [0.5, 1.0, 2.0, 1.5, 0.25]
    elif name == "one-class":
        x, y = [[2.5], [-1.25], [40.0]], [[1], [0], [1]]
    elif name == "overflow":  # sum of 7 samples of about 1e4 each: beyond float16's range
        x, y = np.full((7, 4), -1e4), np.ones((7, 4))
    else:
        raise AssertionError(name)
    x = to_format(x, fmt)
    y = to_format(y, fmt)
    w = None if w is None else to_format(w, fmt)
    batch = x.shape[:-1]
    g_none = to_format(np.resize(g_vector or G_VECTOR, batch) if batch else G_VECTOR[0], fmt)
    return x, y, w, g_none, to_format(g_scalar, fmt)


SOFT_REGIMES = ("normal", "large", "large-soft-weighted", "tiny", "soft-targets", "zero-weights",
                "non-uniform-weights", "signed-weights", "exact-ties", "empty-batch", "unbatched",
                "one-class", "overflow")


def _grid(regimes):
    return [pytest.param(r, red, f, id=f"{r}-{red}-{f}")
            for r, red, f in itertools.product(regimes, REDUCTIONS, FORMAT_NAMES)]


@pytest.mark.parametrize("regime, reduction, fmt_name", _grid(SOFT_REGIMES))
def test_soft_margin_loss(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x, y, w, _, _ = soft_margin_regime(regime, fmt)
    values, shape = exact_twice(lambda guard: soft_margin_loss_exact(x, y, w, reduction, guard),
                                fmt)
    result = ml.multilabel_soft_margin_loss(x, y, w, reduction, fmt)
    assert_certified(result, values, shape, fmt)
    if regime == "empty-batch" and reduction == "mean":
        assert np.isnan(result.rounded)
    if regime == "overflow" and reduction == "sum":
        assert (result.rounded == np.inf) == (fmt_name == "float16")
        if fmt_name == "bfloat16":
            # x = -1e4 is -9984 in bfloat16; 7 * 9984 = 69888 lies exactly halfway between
            # 69632 and 70144, and the tail 7 softplus(-9984) ~ 1e-4335 decides: up.
            assert result.rounded == 70144.0


def test_soft_margin_loss_tie_with_tail_beyond_arb_precision():
    """-3e4 is -29952 in bfloat16 (and the strategy's 'large' logits include 3e4 and 1e30);
    three saturated, disagreeing samples of 117, 117 and 119 times 256 sum to 353 * 256 = 90368,
    exactly halfway between 90112 (even, where a tie goes) and 90624, plus the positive tail
    sum softplus(x) ~ 1e-13008: the exact sum rounds up to 90624."""
    fmt = FORMATS["bfloat16"]
    x, y = np.array([[-29952.0], [-29952.0], [-30464.0]]), np.ones((3, 1))
    assert correctly_round(Fraction(90368), fmt) == (90112.0, True)  # the dyadic part: a tie
    assert correctly_round(Fraction(90368) + pow2(-50000), fmt) == (90624.0, False)
    result = ml.multilabel_soft_margin_loss(x, y, None, "sum", fmt)
    assert result.rounded == 90624.0


@pytest.mark.parametrize("regime, reduction, fmt_name", _grid(SOFT_REGIMES))
def test_soft_margin_loss_grad(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x, y, w, g_none, g_scalar = soft_margin_regime(regime, fmt)
    g = g_none if reduction == "none" else g_scalar
    expected = exact_twice(lambda guard: soft_margin_grad_exact(g, x, y, w, reduction, guard), fmt)
    grads = ml.multilabel_soft_margin_loss_grad(g, x, y, w, reduction, fmt)
    assert set(grads) == set(expected)
    ties = {name: assert_certified(grads[name], *expected[name], fmt) for name in expected}
    if regime == "exact-ties":
        assert any(ties["input"]), "the regime must put an input gradient exactly on a tie"
        assert (grads["input"].rounded == 0).any()  # x = 0, y = 1/2


# --- multilabel_margin_loss: the Fraction oracle -------------------------------------------------

def listed_and_unlisted(row, classes):
    listed = []
    for label in row:
        if label == -1:
            break
        listed.append(int(label))  # repeats count once each
    return listed, [i for i in range(classes) if i not in listed]


def margin_loss_exact(x, t, reduction):
    """Per sample: sum over listed j and unlisted i of max(0, 1 - x_j + x_i), divided by C."""
    x2, t2 = np.atleast_2d(x), np.atleast_2d(t)
    n_samples, classes = x2.shape
    per_sample = []
    for n in range(n_samples):
        xs = [Fraction(float(v)) for v in x2[n]]
        listed, unlisted = listed_and_unlisted(t2[n], classes)
        per_sample.append(sum((max(Fraction(0), 1 - xs[j] + xs[i])
                               for j in listed for i in unlisted), Fraction(0)) / classes)
    if reduction == "none":
        return per_sample, x.shape[:-1]
    if reduction == "sum":
        return [sum(per_sample, Fraction(0))], ()
    return ([sum(per_sample, Fraction(0)) / n_samples] if n_samples else [math.nan]), ()


def margin_grad_exact(g, x, t, reduction):
    """Each pair with 1 - x_j + x_i > 0 (a hinge exactly at 0 is off) adds -1 at j and +1 at i,
    times g_n / (C N')."""
    x2, t2 = np.atleast_2d(x), np.atleast_2d(t)
    n_samples, classes = x2.shape
    gs, n_prime = per_sample_upstream(g, reduction, x)
    out = []
    for n in range(n_samples):
        xs = [Fraction(float(v)) for v in x2[n]]
        count = [0] * classes
        listed, unlisted = listed_and_unlisted(t2[n], classes)
        for j in listed:
            for i in unlisted:
                if 1 - xs[j] + xs[i] > 0:
                    count[j] -= 1
                    count[i] += 1
        out += [Fraction(gs[n]) * c / (classes * n_prime) for c in count]
    return out, x.shape


def margin_regime(name, fmt):
    """(x, target, g for 'none', g for 'sum'/'mean'), x representable in fmt."""
    p = fmt.precision
    tie_g = 1 + 2.0 ** (1 - p)
    g_vector, g_scalar = None, 0.75
    if name == "normal":
        x = [[1.25, -0.5, 2.75, 0.125, -1.0], [0.5, 0.375, -2.0, 1.5, 0.25],
             [3.0, -1.75, 0.625, 0.0, 1.125]]
        t = [[3, 0, -1, 2, 1], [1, 4, 2, -1, -1], [2, -1, -1, -1, -1]]
    elif name == "repeated-labels":  # each repeat counts again
        x = [[0.25, -0.5, 1.0, 0.75, -1.25], [1.5, 0.0, -0.25, 2.0, 0.5]]
        t = [[1, 1, 3, -1, 0], [4, 2, 4, 2, -1]]
    elif name == "after-terminator-and-empty-rows":  # mean counts label-less rows too
        x = [[0.25, -0.5, 1.0, 0.75, -1.25], [1.5, 0.0, -0.25, 2.0, 0.5],
             [1.0, 2.0, 3.0, 4.0, 5.0]]
        t = [[2, -1, 0, 1, 3], [-1, 4, 3, 2, 1], [-1, -1, -1, -1, -1]]
    elif name == "every-class-listed":
        x, t = [[0.5, -0.25, 3.0, 1.0], [2.0, 2.0, -1.0, 0.0]], [[0, 1, 2, 3], [3, 2, 1, 0]]
    elif name == "large":
        x = [[1e4, -1e4, 750.0, 88.7, -17.0], [40.0, 17.0, -750.0, 1e4, -88.7]]
        t = [[1, 0, -1, 3, 2], [3, 4, 1, -1, 0]]
    elif name == "overflow":  # float16: the sum 5 * 3 * 20001 / 4 is beyond 65504
        x, t = [[-1e4, 1e4, 1e4, 1e4]] * 5, [[0, -1, -1, -1]] * 5
    elif name == "tiny":
        x = [[1e-8, -1e-8, 3e-9, 0.0, -2.5e-8], [2e-8, 5e-9, -5e-9, 1e-8, 0.0]]
        t = [[0, 2, -1, 1, 1], [4, -1, 0, 0, 0]]
    elif name == "exact-kinks":  # 1 - x_j + x_i == 0: no gradient; x = 0 rows: count 3 ties
        x = [[1.0, 0.0, 0.5, 3.0], [0.0, 1.0, 2.0, -1.0], [0.5, -0.5, 1.5, 0.5],
             [0.0, 0.0, 0.0, 0.0]]
        t = [[0, -1, 0, 0], [1, -1, 0, 0], [0, 3, -1, 2], [0, -1, -1, -1]]
        g_vector, g_scalar = [tie_g, -tie_g, 0.75, tie_g], tie_g  # 3 g / C needs p + 1 bits
    elif name == "exact-ties":  # one hinge of 1 + 2**-p per row: the loss is a tie
        x = [[0.0, 2.0 ** -p, -8.0, -8.0], [2.0 ** -p, 0.0, -8.0, -8.0]]
        t = [[0, -1, -1, -1], [1, -1, -1, -1]]
    elif name == "empty-batch":
        x, t = np.zeros((0, 4)), np.zeros((0, 4), dtype=np.int64)
    elif name == "unbatched":
        x, t = [0.75, -1.25, 2.0, 0.5, -0.25], [3, 0, -1, 4, 4]
    else:
        raise AssertionError(name)
    x = to_format(x, fmt)
    t = np.asarray(t, dtype=np.int64)
    batch = x.shape[:-1]
    g_none = to_format(np.resize(g_vector or G_VECTOR, batch) if batch else G_VECTOR[0], fmt)
    return x, t, g_none, to_format(g_scalar, fmt)


MARGIN_REGIMES = ("normal", "repeated-labels", "after-terminator-and-empty-rows",
                  "every-class-listed", "large", "overflow", "tiny", "exact-kinks", "exact-ties",
                  "empty-batch", "unbatched")


@pytest.mark.parametrize("regime, reduction, fmt_name", _grid(MARGIN_REGIMES))
def test_margin_loss(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x, t, _, _ = margin_regime(regime, fmt)
    values, shape = margin_loss_exact(x, t, reduction)
    result = ml.multilabel_margin_loss(x, t, reduction, fmt)
    ties = assert_certified(result, values, shape, fmt)
    if regime == "exact-ties":
        assert all(ties), "every output of this regime lies exactly on a tie"
    if regime == "empty-batch" and reduction == "mean":
        assert np.isnan(result.rounded)
    if regime == "overflow" and reduction == "sum":
        assert (result.rounded == np.inf) == (fmt_name == "float16")


@pytest.mark.parametrize("regime, reduction, fmt_name", _grid(MARGIN_REGIMES))
def test_margin_loss_grad(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x, t, g_none, g_scalar = margin_regime(regime, fmt)
    g = g_none if reduction == "none" else g_scalar
    values, shape = margin_grad_exact(g, x, t, reduction)
    grads = ml.multilabel_margin_loss_grad(g, x, t, reduction, fmt)
    assert set(grads) == {"input"}
    ties = assert_certified(grads["input"], values, shape, fmt)
    if regime == "exact-kinks":
        assert any(ties)
        # the pair (0, 1) of row 0 sits exactly at its kink: class 1 gets no gradient
        assert grads["input"].rounded[0, 1] == 0.0


def test_margin_grad_kink_is_inactive_by_hand():
    """x = [1, 0, 0.5, 3], labels [0]: the hinge 1 - x_0 + x_1 is exactly 0 (off), the other two
    are on, so with g = 1 the gradient is [-2, 0, 1, 1] / 4 (mean over one sample)."""
    fmt = FORMATS["float64"]
    grads = ml.multilabel_margin_loss_grad(np.array(1.0), np.array([[1.0, 0.0, 0.5, 3.0]]),
                                           np.array([[0, -1, -1, -1]]), "mean", fmt)
    assert grads["input"].rounded.tolist() == [[-0.5, 0.0, 0.25, 0.25]]


# --- multi_hot ----------------------------------------------------------------------------------

SEED_EXAMPLE3_LABELS = [[0, 2], [1, 2, 0]]
# What the seed post's Example 3 ("Final Constructed targets") produces: pad_sequence gives the
# padded rows [[0, 2, -1], [1, 2, 0]]; it masks *positions* where the padded row is -1, i.e.
# position 2 of row 0, and so wipes class 2 of sample 0, although sample 0 is labelled [0, 2].
SEED_EXAMPLE3_CLAIMED = [[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]


def test_multi_hot_seed_example():
    out = ml.multi_hot(SEED_EXAMPLE3_LABELS, num_classes=3)
    assert out.tolist() == [[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
    assert out.dtype == np.float64


def test_seed_example3_output_is_wrong():
    torch = pytest.importorskip("torch")
    rnn_utils = torch.nn.utils.rnn
    # The seed post's Example 3, as written (prints and the loss dropped).
    batch_size, num_classes = 2, 3
    target_labels = SEED_EXAMPLE3_LABELS
    padded_labels = rnn_utils.pad_sequence([torch.tensor(x) for x in target_labels],
                                           batch_first=True, padding_value=-1)
    targets = torch.zeros((batch_size, num_classes)).masked_fill_(padded_labels == -1, 0.0)
    for i, labels in enumerate(target_labels):
        for label in labels:
            targets[i, label] = 1.0
    targets = targets.masked_fill_(padded_labels == -1, 0.0)
    assert targets.tolist() == SEED_EXAMPLE3_CLAIMED  # what the post's code prints

    reference = ml.multi_hot(target_labels, num_classes)
    assert reference.tolist() != SEED_EXAMPLE3_CLAIMED
    assert reference[0].tolist() == [1.0, 0.0, 1.0]  # sample 0 is labelled [0, 2]
    assert reference[1].tolist() == SEED_EXAMPLE3_CLAIMED[1]


@pytest.mark.parametrize("labels, num_classes, padding, expected", [
    pytest.param([[0, 2, -1], [1, -1, -1]], 3, -1, [[1, 0, 1], [0, 1, 0]], id="padded"),
    pytest.param([[-1, 2], [0, -1]], 3, -1, [[0, 0, 1], [1, 0, 0]], id="label-after-padding"),
    pytest.param([[2, 2, 0]], 3, -1, [[1, 0, 1]], id="repeats-are-indicators"),
    pytest.param([[-100, 1], [3, -100]], 4, -100, [[0, 1, 0, 0], [0, 0, 0, 1]],
                 id="padding-value"),
    pytest.param(np.array([[0, 3], [-1, -1]]), 4, -1, [[1, 0, 0, 1], [0, 0, 0, 0]],
                 id="numpy-input"),
    pytest.param([], 3, -1, np.zeros((0, 3)), id="no-samples"),
])
def test_multi_hot_cases(labels, num_classes, padding, expected):
    out = ml.multi_hot(labels, num_classes, padding_value=padding)
    np.testing.assert_array_equal(out, np.asarray(expected, dtype=np.float64), strict=True)


@pytest.mark.parametrize("labels, num_classes, padding", [
    pytest.param([[0, 3]], 3, -1, id="equal-to-num-classes"),
    pytest.param([[0, 7]], 3, -1, id="above"),
    pytest.param([[-2, 0]], 3, -1, id="negative-not-padding"),
    pytest.param([[-1, 0]], 3, -100, id="minus-one-when-padding-differs"),
    pytest.param([[1], [0, 2, 5]], 3, -1, id="later-row"),
])
def test_multi_hot_rejects_out_of_range(labels, num_classes, padding):
    with pytest.raises(ValueError, match="outside"):
        ml.multi_hot(labels, num_classes, padding_value=padding)


@pytest.mark.parametrize("name", list(FORMATS))
def test_fast_float64_rounding_matches_the_exact_rounding(name):
    """round_float64 (bit arithmetic, used on every drawn input) agrees with round_to_format
    on random values of every magnitude, on exact ties between neighbours, on subnormals, on
    the largest finite value and on specials: mixed in one array and one magnitude at a time
    (an array of normal values alone takes a shorter path)."""
    fmt, rng = FORMATS[name], np.random.default_rng(7)
    scales = [rng.standard_normal(2000) * scale for scale in
              (1e-320, 1e-45, 1e-40, 1e-8, 1.0, 6e4, 1e30, 1e38, 1e300)]
    values = np.clip(np.concatenate(scales), -fmt.max_finite, fmt.max_finite)
    rounded = round_to_format(values, fmt)[0]
    with np.errstate(over="ignore"):
        ties = (rounded + (rounded + fmt.ulp(rounded))) / 2
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, fmt.max_finite, -fmt.max_finite])
    zero_d = round_float64(np.array(1.5), fmt)
    assert isinstance(zero_d, np.ndarray) and zero_d.shape == ()  # a Case's 0-d argument
    finite_ties = ties[np.isfinite(ties)]
    for sample in (values, finite_ties, specials, *scales, *np.array_split(finite_ties, 9)):
        expected = round_to_format(sample, fmt)[0]
        got = round_float64(sample, fmt)
        np.testing.assert_array_equal(got, expected)
        assert np.array_equal(np.signbit(got), np.signbit(expected))



# --- certification --------------------------------------------------------------------------------

@pytest.fixture(params=["compiled", "numpy"])
def certification(request, monkeypatch):
    """Each test of ``certify`` twice: by the compiled kernel (float64 balls, where numba
    imports) and by numpy's blocks alone (where it does not)."""
    from loss_reference import engine

    if request.param == "numpy":
        monkeypatch.setattr(engine, "_certify_kernel", lambda: None)
    return request.param


@pytest.mark.parametrize("name", BACKENDS)
def test_certify_by_blocks_equals_certify_of_small_pieces(name, certification):
    """A ball larger than engine.CERTIFY_BLOCK is certified block by block: the same values
    and verdicts, in its shape, as small pieces of it (exact inputs, with Ball.exact's
    broadcast zero radius, and inexact values alike)."""
    from loss_reference import engine

    backend, fmt = BACKENDS[name], FORMATS["bfloat16"]
    rng = np.random.default_rng(2)
    size = (2 * engine.CERTIFY_BLOCK // 11 + 7) * 11
    values = to_format(rng.standard_normal(size), fmt).astype(backend.precision.dtype)
    dtype = backend.precision.dtype
    wide = np.where(rng.random(size) < 0.3, dtype(1), dtype(1e-12) * np.abs(values))
    for ball in (backend.asarray(values.reshape(-1, 11)),
                 backend.exp(backend.asarray(values.reshape(-1, 11))),
                 Ball(values.reshape(-1, 11), wide.reshape(-1, 11))):  # 30 % never certified
        rounded, ok = engine.certify(ball, fmt)
        assert rounded.shape == ok.shape == ball.shape
        flat_mid, flat_rad = ball.mid.reshape(-1), np.broadcast_to(ball.rad, ball.shape).reshape(-1)
        pieces = [engine.certify(Ball(flat_mid[i:i + 1000], flat_rad[i:i + 1000]), fmt)
                  for i in range(0, size, 1000)]
        np.testing.assert_array_equal(rounded.reshape(-1), np.concatenate([p[0] for p in pieces]))
        np.testing.assert_array_equal(ok.reshape(-1), np.concatenate([p[1] for p in pieces]))
        assert 0.6 < ok.mean()


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("fmt_name", FORMAT_NAMES)
def test_certify_is_sound(name, fmt_name, certification):
    """Whatever certify() accepts, the whole ball rounds to that one number and holds no tie
    (checked in exact rational arithmetic); and it accepts most balls well inside an interval.
    Balls are drawn around numbers of the format: ties, neighbours, powers of two, the smallest
    subnormals, the largest finite values and beyond."""
    from loss_reference.engine import Ball, certify

    backend, fmt = BACKENDS[name], FORMATS[fmt_name]
    if backend is FLOAT64_BALLS and fmt.precision + 8 > 53:
        pytest.skip("the float64 tier does not certify float64 results")
    rng = np.random.default_rng(11)
    landmarks = np.array([0.0, fmt.smallest_subnormal, 2.0 ** fmt.min_exponent, 0.75, 1.0, 1.5,
                          2.0, 3.0, fmt.max_finite, 1e-3, 1e3])
    base = np.concatenate([landmarks, to_format(rng.standard_normal(400) * 10.0 **
                                                rng.uniform(-5, 5, 400), fmt)])
    base = np.concatenate([base, -base])
    base = base[np.isfinite(base)]
    ulp = fmt.ulp(base)
    dtype = backend.precision.dtype
    offsets = np.array([0.0, 0.5, -0.5, 0.25, -0.49, 0.499999, 0.5000001, 1.0, 1e-9, -1e-12])
    mids, rads, centred = [], [], []
    with np.errstate(over="ignore", invalid="ignore"):  # beyond the largest finite value
        for offset in offsets:
            for radius in (0.0, 1e-12, 1e-6, 0.01, 0.3):
                mids.append(base.astype(dtype) + dtype(offset) * ulp.astype(dtype))
                rads.append(np.full(base.shape, radius, dtype) * ulp.astype(dtype))
                centred.append(np.full(base.shape, offset == 0 and radius <= 1e-6))
    ball = Ball(np.concatenate(mids), np.concatenate(rads))
    rounded, ok = certify(ball, fmt)
    # a ball of a millionth of an ulp around a number of the format is always certified, and
    # so is every exact value (radius 0)
    assert ok[np.concatenate(centred)].all() and ok[ball.rad == 0].all()
    assert ok.mean() > 0.2
    tiny = to_fraction(ball.precision.tiny)
    for mid, rad, value in zip(ball.mid[ok], ball.rad[ok], rounded[ok]):
        if rad == 0:  # an exact value: its own correct rounding, a tie to even
            assert correctly_round(to_fraction(mid), fmt)[0] == value, (mid, value)
            continue
        widened = to_fraction(rad) * Fraction(10001, 10000) + tiny
        low, low_tie = correctly_round(to_fraction(mid) - widened, fmt)
        high, high_tie = correctly_round(to_fraction(mid) + widened, fmt)
        assert low == high == value and not low_tie and not high_tie, (mid, rad, value)


@pytest.mark.parametrize("fmt_name", FORMAT_NAMES)
def test_an_arb_ball_wider_than_the_estimates_promise_is_not_certified(fmt_name):
    """A ball that one number of the format holds whole, but whose midpoint (the estimate) may
    lie farther than ESTIMATE_ULPS of an ulp from the exact value, is left to more bits, as
    the ball tiers leave it (at 128 bits, a triplet sum near 2e38 had a radius of 0.9: its
    estimate in bfloat16 was 0.89 off, beyond 32 / 64)."""
    import flint

    from loss_reference.arb import certify_arb, certify_arb_array
    from loss_reference.engine import ESTIMATE_ULPS

    fmt = FORMATS[fmt_name]
    number = float(to_format(np.array(1000.25), fmt))
    _, narrower = fmt.gaps(np.array(number))
    with flint.ctx.workprec(256):  # the ends of the ball at 53 bits would round outwards
        for scale, certified in ((0.5, True), (2.0, False), (16.0, False)):
            ball = flint.arb(number, float(narrower) * ESTIMATE_ULPS * scale)
            assert certify_arb(ball, fmt)[2] is certified
            array = np.empty(1, dtype=object)
            array[0] = ball
            assert certify_arb_array(array, fmt)[2][0] == certified
        # an exact 0 in arb's tails (log(1 - p) - log p at p = 1/2): a 64th of the smallest
        # gap, 2^-1080 in float64, must not underflow to 0 on the way
        zero = flint.arb(0, flint.arb(2) ** -1200)
        assert certify_arb(zero, fmt)[2]
        array[0] = zero
        assert certify_arb_array(array, fmt)[2][0]


@pytest.mark.parametrize("fmt_name", FORMAT_NAMES)
def test_certify_arb_array_gives_certify_arb_answers(fmt_name):
    """certify_arb_array's vectorised test settles most arb balls at once; its rounded values
    (signs of zero included), verdicts and estimates are certify_arb's, element by element, on
    balls at and about the rounding boundaries of numbers of the format (exact ties, a hair
    inside and outside them, powers of two, subnormals, the largest finite values), zeros,
    values beyond float64's range and non-finite ones."""
    import flint

    from loss_reference.arb import certify_arb, certify_arb_array

    fmt = FORMATS[fmt_name]
    rng = np.random.default_rng(5)
    landmarks = [fmt.smallest_subnormal, 2.0 ** fmt.min_exponent, 1.0, 1.5, 2.0, 3.0,
                 fmt.max_finite, 1e-3, 1e3]
    drawn = to_format(rng.standard_normal(60) * 10.0 ** rng.uniform(-5, 5, 60), fmt)
    base = landmarks + list(drawn[np.isfinite(drawn)])
    hair = Fraction(1, 2 ** 80)
    offsets = [Fraction(0), Fraction(1, 2), Fraction(1, 2) - hair, Fraction(1, 2) + hair,
               Fraction(-1, 4), Fraction(-1, 2) + hair, Fraction(-1, 2) - hair, Fraction(1)]
    radii = [Fraction(0), hair, Fraction(1, 2 ** 20), Fraction(3, 10)]
    with flint.ctx.workprec(256):
        values = [flint.arb(0), flint.arb(2) ** -1200, -flint.arb(2) ** -1200,
                  flint.arb(10) ** 400, -flint.arb(10) ** 400, flint.arb("nan"),
                  flint.arb("inf"), flint.arb(0, 1e-300), flint.arb(1e-50, 1e-49),
                  flint.arb(-1e-50, 1e-49), flint.arb(1e-50, 1e-60), flint.arb(-1e-50, 1e-60),
                  0.0, 0.75, -3, 2.5]  # a reference may return plain numbers beside balls
        for number in base:
            ulp = to_fraction(fmt.ulp(np.array(number)))
            for sign, offset, radius in itertools.product((1, -1), offsets, radii):
                mid = sign * (to_fraction(number) + offset * ulp)
                values.append(flint.arb(flint.fmpq(mid.numerator, mid.denominator),
                                        flint.arb(flint.fmpq(*(radius * ulp).as_integer_ratio()))))
        array = np.empty(len(values), dtype=object)
        array[:] = values
        rounded, estimate, ok = certify_arb_array(array.reshape(-1, 2), fmt)
        expected = [certify_arb(value, fmt) for value in values]
    rounded, estimate, ok = rounded.reshape(-1), estimate.reshape(-1), ok.reshape(-1)
    np.testing.assert_array_equal(ok, [e[2] for e in expected])
    np.testing.assert_array_equal(rounded, [e[0] for e in expected])
    np.testing.assert_array_equal(np.signbit(rounded), np.signbit([e[0] for e in expected]))
    known = np.array([np.isfinite(e[1]) for e in expected])
    expected_estimate = np.array([e[1] for e in expected], dtype=LD)[known]
    assert (np.abs(estimate[known] - expected_estimate)  # both within an ulp of long double
            <= LD(2.0 ** -62) * np.abs(expected_estimate)).all()
    assert 0.3 < ok.mean() < 0.95  # certified and uncertified balls both tested


@pytest.mark.parametrize("x", [-0.5, -183.0, -3000.0, -16348.25, -1e5, -1e28, 0.0, 2.5, 700.0])
@pytest.mark.parametrize("precision", [128, 4096, 20000])
def test_arb_exp_holds_the_truth_to_the_precision_absolutely(x, precision):
    """ArbBackend.exp computes a small exp(x) at fewer bits, its absolute error still within
    2^-precision (what the full precision gives a number near 1), and encloses exp(x)."""
    import flint

    from loss_reference.arb import ArbBackend

    backend = ArbBackend(precision)
    with flint.ctx.workprec(precision):
        ball = backend.exp(backend.asarray(np.array([x])))[0]
    mantissa, exponent = ball.mid().man_exp()
    rad_mantissa, rad_exponent = ball.rad().man_exp()
    with mp.workprec(precision + 64):  # mpmath: exponents such as -1.4e28 stay symbolic
        mid = mp.ldexp(mpf(int(mantissa)), int(exponent))
        rad = mp.ldexp(mpf(int(rad_mantissa)), int(rad_exponent))
        truth = mp.exp(mpf(x))
        assert abs(truth - mid) <= rad
        assert rad <= max(mp.ldexp(1, -precision), mp.ldexp(truth, 2 - precision))
