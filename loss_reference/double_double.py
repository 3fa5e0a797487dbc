"""Double-double arithmetic, compiled by numba: each number is an unevaluated sum hi + lo of
two float64s with |lo| <= ulp(hi) / 2, about 106 bits, and every operation has a proven
relative error bound of a few u^2 (u = 2^-53). With it, the kernels of the double-double tiers
(``*_fast.py`` modules say what each computes and why its bound holds).

Why: long double balls leave float64 results about 11 bits of room, and a softmax's chain (an
exponential, a row sum, a quotient) spends most of them, so float64 gradients fell to arb, a
Python call per element (1e5 elements/s). No well-kept library offers double-double on arrays:
python-flint and mpmath work per element, numpy's long double is the x87 format here, and the
same algorithms as numpy expressions ran 150 ns per exponential on one core (a few hundred
passes over the data, the GIL between them). numba compiles them to loops that release the
GIL. The algorithms are the classic error-free transformations (Knuth, Dekker) and the
double-word operations whose bounds Joldes, Muller and Popescu proved ("Tight and rigorous
error bounds for basic building blocks of double-word arithmetic", ACM TOMS 44, 2017); the
bounds here (``*_ERROR``, relative, in units of u^2) are theirs, doubled or more. numba does not
contract a * b + c into a fused multiply-add, nor reassociate, without ``fastmath``, which is
never set here: the transformations need every operation rounded as written. The one fused
multiply-add is explicit: TwoProduct's (``two_prod``), whose exact error term it computes.

Domain: magnitudes between SMALLEST and LARGEST (a lo part must stay normal, products of
hi and lo parts far from overflow), or exact zeros; callers check it (``safe``).

Every compiled function lives in this one module, so that numba's on-disk cache (keyed on a
module's source) never keeps a kernel compiled against an older version of the operations it
inlines. Importing it imports numba (0.4 s): the tiers import it when they first run, and step
aside where it does not import (``compiled_kernels.kernels``).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

U = 2.0 ** -53
U2 = U * U
ADD_ERROR = 8.0  # DWPlusDW (accurate): 3u^2 + 13u^3 (JMP, Thm 3.1)
ADD_FLOAT_ERROR = 4.0  # DWPlusFP: 2u^2 (Thm 2.2)
MUL_ERROR = 16.0  # DWTimesDW1: 7u^2 (Thm 5.1)
DIV_ERROR = 40.0  # DWDivDW1-style: 15u^2 + 56u^3 (Thm 7.1)
EXP_ERROR = 256.0  # ``exp``: its own chain (its docstring), measured at most 3.4 u^2
SMALLEST = 2.0 ** -960  # below it a lo part may be subnormal
LARGEST = 2.0 ** 990  # far enough below overflow for a product's terms
TABLE_BITS = 8  # exp(d) = 2^k 2^(j / 256) exp(r), |r| <= ln 2 / 512
EXP_LOWEST = -650.0  # exp of less would leave SMALLEST
EXP_HIGHEST = 680.0  # exp of more would approach LARGEST (and |N| below 2^18, for exp's L1)
POWERS_LOWEST = -1000  # the table of 2^k runs from 2^-1000 (below EXP_LOWEST's) to 2^990
SLACK = 1 + 2.0 ** -50  # for the rounding of a certification's own few operations
compiled = njit(cache=True, nogil=True)  # every function here: cached on disk, no GIL
# inlined into their callers by numba itself: a call left in a loop keeps it from vectorising
inlined = njit(cache=True, nogil=True, inline="always")


def _constant(numerator: int, denominator: int) -> tuple:
    """numerator / denominator as a double-double (hi, lo), within u^2 of it."""
    value = Fraction(numerator, denominator)
    return float(value), float(value - Fraction(float(value)))


SIXTH, TWENTYFOURTH = _constant(1, 6), _constant(1, 24)


def exp_constants() -> tuple:
    """``exp``'s last arguments: 1 / (ln2 / 256), ln2 / 256 in three parts L1 + L2 + L3 (L1 of
    35 bits: N L1 is exact for |N| < 2^18), the table of 2^(j/256) as hi and lo arrays, and
    the powers 2^k from 2^POWERS_LOWEST; from mpmath at 300 bits, made once."""
    return _EXP_CONSTANTS


def _exp_constants() -> tuple:
    import mpmath

    with mpmath.workprec(300):
        step = mpmath.log(2) / 2 ** TABLE_BITS
        l1 = float(mpmath.floor(step * 2 ** 43)) / 2 ** 43  # an integer below 2^35: exact
        l2 = float(step - l1)
        l3 = float(step - l1 - l2)
        exact = [mpmath.power(2, mpmath.mpf(j) / 2 ** TABLE_BITS)
                 for j in range(2 ** TABLE_BITS)]
        hi = np.array([float(p) for p in exact])
        lo = np.array([float(p - mpmath.mpf(h)) for p, h in zip(exact, hi)])
        inverse = float(1 / step)
    return inverse, l1, l2, l3, hi, lo, 2.0 ** np.arange(POWERS_LOWEST, 991)


_EXP_CONSTANTS = _exp_constants()


def _ln2() -> tuple:
    """ln 2 as a double-double (hi, lo), from mpmath at 300 bits."""
    import mpmath

    with mpmath.workprec(300):
        hi = float(mpmath.log(2))
        return hi, float(mpmath.log(2) - mpmath.mpf(hi))


LN2_HI, LN2_LO = _ln2()



# --- error-free transformations and double-word operations (scalars; hi, lo pairs) ------------

@compiled
def two_sum(a, b):
    """(s, e): s = fl(a + b), s + e = a + b exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@compiled
def fast_two_sum(a, b):
    """(s, e): s + e = a + b exactly, for |a| >= |b| or a = 0 (Dekker)."""
    s = a + b
    return s, b - (s - a)


@intrinsic
def fused_multiply_add(typingctx, a, b, c):
    """a b + c rounded once: LLVM's llvm.fma, the processor's instruction (libm's correctly
    rounded fma where it has none; never a product and a sum rounded apart)."""
    signature = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, sig, args):
        double = ir.DoubleType()
        fma = builder.module.declare_intrinsic("llvm.fma", [double],
                                               ir.FunctionType(double, [double] * 3))
        return builder.call(fma, args)

    return signature, codegen


@compiled
def two_prod(a, b):
    """(p, e): p = fl(a b), p + e = a b exactly, barring underflow: e = fma(a, b, -p), the
    product's rounding error, which is a float64 (TwoProductFMA; Dekker's splitting took 17
    operations for the same e, which is unique, and 40 % of ``quick_exp``'s time)."""
    p = a * b
    return p, fused_multiply_add(a, b, -p)


@compiled
def add(ah, al, bh, bl):
    """a + b of two double-doubles, within ADD_ERROR u^2 of it relatively."""
    s, e = two_sum(ah, bh)
    t, f = two_sum(al, bl)
    s, e = fast_two_sum(s, e + t)
    return fast_two_sum(s, e + f)


@compiled
def add_float(ah, al, b):
    """a + b of a double-double and a float64, within ADD_FLOAT_ERROR u^2 relatively."""
    s, e = two_sum(ah, b)
    return fast_two_sum(s, e + al)


@compiled
def mul(ah, al, bh, bl):
    """a b of two double-doubles, within MUL_ERROR u^2 relatively."""
    p, e = two_prod(ah, bh)
    return fast_two_sum(p, e + (ah * bl + al * bh))


@compiled
def div(ah, al, bh, bl):
    """a / b of two double-doubles, within DIV_ERROR u^2 relatively."""
    q = ah / bh
    p, e = two_prod(q, bh)
    remainder = (ah - p) - e + al - q * bl
    return fast_two_sum(q, remainder / bh)


@compiled
def safe(hi):
    """Whether a double-double with this hi lies in the module's domain (zero excluded)."""
    magnitude = abs(hi)
    return SMALLEST <= magnitude <= LARGEST


@inlined
def product_in_domain(product, a, b):
    """Whether a product a b (of double-doubles with these hi parts) with this hi lies in the
    domain or is exactly 0 (a factor 0): a product of nonzero factors that underflows to 0
    errs by up to 2^-1075, which no bound here counts. For a quotient a / b pass a twice."""
    return safe(product) or (product == 0.0 and (a == 0.0 or b == 0.0))


@inlined
def exactly_zero(hi, lo, error):
    """Whether a double-double within ``error`` is exactly 0. Ask it of a product's factors,
    not of the product: one of nonzero factors may underflow to 0 (``product_in_domain``)."""
    return hi == 0.0 and lo == 0.0 and error == 0.0


@compiled
def certified(hi, lo, radius, estimate_ulps):
    """Whether every point within ``radius`` of hi + lo (normalised) rounds to hi in float64:
    strictly inside hi's rounding interval (half the gap to each neighbour, the lower gap half
    as wide just above a power of two), the radius within ``estimate_ulps`` of an ulp, hi in
    the domain (``safe``: a zero may have underflowed)."""
    if not safe(hi):
        return False
    fraction, exponent = math.frexp(abs(hi))
    up = math.ldexp(1.0, exponent - 53)  # the gap above |hi|
    down = up / 2 if fraction == 0.5 else up
    away = -lo if hi < 0 else lo
    return ((away + radius) * SLACK < up / 2 and (radius - away) * SLACK < down / 2
            and radius <= down * estimate_ulps)


@inlined
def _exp_reduced(d_hi, d_lo, inverse, l1, l2, l3):
    """exp(r) as a double-double and n, for d = n ln2 / 256 + r (``exp``'s first half)."""
    n = np.rint(d_hi * inverse)
    t = d_hi - n * l1  # exact: Sterbenz's lemma (or n = 0)
    p, p_err = two_prod(n, l2)
    s, e = two_sum(t, -p)
    s, e_lo = two_sum(s, d_lo)  # exactly: its rounding would be 2^-97 of r
    rh, rl = two_sum(s, e + e_lo - (p_err + n * l3))
    tail = 1.0 / 362880.0
    tail = 1.0 / 40320.0 + rh * tail
    tail = 1.0 / 5040.0 + rh * tail
    tail = 1.0 / 720.0 + rh * tail
    tail = 1.0 / 120.0 + rh * tail
    h, g = add_float(TWENTYFOURTH[0], TWENTYFOURTH[1], rh * tail)
    h, g = mul(rh, rl, h, g)
    h, g = add(SIXTH[0], SIXTH[1], h, g)
    h, g = mul(rh, rl, h, g)
    h, g = add_float(h, g, 0.5)
    h, g = mul(rh, rl, h, g)
    h, g = add_float(h, g, 1.0)
    h, g = mul(rh, rl, h, g)
    h, g = add_float(h, g, 1.0)
    return h, g, n


@inlined
def _exp_scaled(h, g, n, table_hi, table_lo, powers):
    """exp(r) times 2^(n / 256) (``exp``'s second half)."""
    i = np.int64(n)
    j = i & (2 ** TABLE_BITS - 1)
    scale = powers[((i - j) >> TABLE_BITS) - POWERS_LOWEST]
    return mul(table_hi[j] * scale, table_lo[j] * scale, h, g)


@compiled
def exp(d_hi, d_lo, out_hi, out_lo, scratch, inverse, l1, l2, l3, table_hi, table_lo, powers):
    """exp of each element of the 1-D double-double d_hi + d_lo into out_hi + out_lo (other
    arrays: in place, the compiler cannot vectorise it, three times slower; scratch: a float64
    array of the size), within EXP_ERROR u^2 each, for
    EXP_LOWEST <= d_hi <= EXP_HIGHEST. The last arguments: ``exp_constants()``.

    d = (256 k + j) ln2 / 256 + r, |r| <= ln2 / 512 plus a few ulps: r from the three parts of
    ln2 / 256 (the first part's product with the integer exact, the subtraction exact by
    Sterbenz's lemma, lo added exactly, the rest below 2^-110 of r's scale); exp(r) by its
    Taylor series to degree 9 (the tail, below 2^-117, dropped), degrees 5 to 9 in float64
    (their sum is below 2^-54, so float64's error is below 2^-106 of the result), the rest by
    Horner in double-double, each step's error damped by |r| < 2^-9 but the last two; times
    the table's 2^(j/256) (within u^2) scaled by 2^k exactly. About 2 (MUL + ADD_FLOAT) u^2
    + MUL_ERROR u^2 + 4 u^2 in all, far below EXP_ERROR u^2.

    Two loops: the table's gather in the first would keep the compiler from vectorising it,
    and its dependency chain runs four times faster on vectors."""
    for q in range(d_hi.size):
        out_hi[q], out_lo[q], scratch[q] = _exp_reduced(d_hi[q], d_lo[q], inverse, l1, l2, l3)
    for q in range(d_hi.size):
        out_hi[q], out_lo[q] = _exp_scaled(out_hi[q], out_lo[q], scratch[q], table_hi,
                                           table_lo, powers)


@compiled
def exp_one(d_hi, d_lo, inverse, l1, l2, l3, table_hi, table_lo, powers):
    """``exp`` of one double-double."""
    h, g, n = _exp_reduced(d_hi, d_lo, inverse, l1, l2, l3)
    return _exp_scaled(h, g, n, table_hi, table_lo, powers)


QUICK_EXP_ERROR = 2.0 ** 38  # ``quick_exp``: 2^-68 relatively (its docstring), measured 2^-71.2


@inlined
def _quick_exp_reduced(d_hi, d_lo, inverse, l1, l2, l3):
    """(s, v, n): exp(r) = 1 + s + v within 2^-69.5 for d = n ln2 / 256 + r (``quick_exp``'s
    first half)."""
    n = np.rint(d_hi * inverse)
    t = d_hi - n * l1  # exact, as in ``_exp_reduced``
    s, e = two_sum(t, -(n * l2))
    r_lo = (e + d_lo) - n * l3
    tail = 0.5 + s * (1.0 / 6.0 + s * (1.0 / 24.0 + s * (1.0 / 120.0 + s * (1.0 / 720.0))))
    w = (s * s) * tail
    return s, w + r_lo * ((1.0 + s) + w), n


@inlined
def _quick_exp_scaled(s, v, n, table_hi, table_lo, powers):
    """2^(n / 256) (1 + s + v) as a double-double (``quick_exp``'s second half)."""
    i = np.int64(n)
    j = i & (2 ** TABLE_BITS - 1)
    scale = powers[((i - j) >> TABLE_BITS) - POWERS_LOWEST]
    t_hi, t_lo = table_hi[j], table_lo[j]
    a, a_error = two_prod(t_hi, s)
    h, g = fast_two_sum(t_hi, a)
    h, g = fast_two_sum(h, g + (a_error + (t_hi * v + t_lo * ((1.0 + s) + v))))
    return h * scale, g * scale


@compiled
def quick_exp(d_hi, d_lo, out_hi, out_lo, scratch, inverse, l1, l2, l3, table_hi, table_lo,
              powers):
    """``exp``'s contract with a bound of QUICK_EXP_ERROR u^2 (2^-68) instead of u^2: a
    fourth of its time (4 ns an element), for what needs 60-odd bits (a float64 loss).

    The same reduction d = n ln2 / 256 + r, r = s + r_lo: t - n L2 by TwoSum (n L2's rounding
    below 2^-80: |n| < 2^18, |L2| < 2^-43.8), r_lo = e + d_lo - n L3 (its roundings below
    2^-97; |r_lo| < 2^-43.9, d_lo being at most half an ulp of |d_hi| <= 650).
    exp(r) = exp(s) exp(r_lo) = 1 + s + w + r_lo exp(s) + ..., w = s^2 P(s), P's Taylor
    coefficients 1/2 ... 1/720 by Horner in float64 (|s| < 2^-9.5: the dropped tail below
    2^-78.8; P within 8.6 u of itself, so w within 9.7 u of |w| < 2^-20: 2^-69.7), r_lo exp(s)
    from (1 + s) + w (2^-95), r_lo^2 / 2 dropped (2^-88), and v = w + r_lo exp(s) rounded
    (2^-73): 1 + s + v within 2^-69.55 of exp(r). Times the table's T = T_hi + T_lo (within
    u^2): T_hi s exactly by TwoProduct, T_hi plus its high part by FastTwoSum (|T_hi s| <
    2^-9.5 T_hi), the rest (below 2^-19 T) in float64: four roundings of 2^-73 T each,
    2^-70.8 in all, and normalised by FastTwoSum (exact: |lo| <= u hi after it). So 2^-69.0,
    bounded by 2^-68 with room for the scaling by 2^k: exact, but for a lo part that falls
    below the normal range, 2^-1075 absolutely, below 2^-137 of a result of at least
    exp(EXP_LOWEST) > 2^-938."""
    for q in range(d_hi.size):
        out_hi[q], out_lo[q], scratch[q] = _quick_exp_reduced(d_hi[q], d_lo[q], inverse, l1,
                                                              l2, l3)
    for q in range(d_hi.size):
        out_hi[q], out_lo[q] = _quick_exp_scaled(out_hi[q], out_lo[q], scratch[q], table_hi,
                                                 table_lo, powers)


LANES = 8  # ``lane_sum``'s independent sums, one vector's worth


@inlined
def lane_sum(e_hi, e_lo):
    """The sum of double-doubles e_hi + e_lo (1-D; e_hi >= 0, |e_lo| <= u e_hi) within
    ``lane_sum_error`` u^2 of it relatively, three times faster than a chain of ``add``: LANES
    sums side by side, each of the his by TwoSum, their errors and the los added in float64
    (Ogita, Rump and Oishi's Sum2); the lanes then added by ``add``."""
    a, b = np.zeros(LANES), np.zeros(LANES)
    C = e_hi.size
    full = C - C % LANES
    for c in range(0, full, LANES):
        for lane in range(LANES):
            a[lane], e = two_sum(a[lane], e_hi[c + lane])
            b[lane] += e + e_lo[c + lane]
    for c in range(full, C):
        a[0], e = two_sum(a[0], e_hi[c])
        b[0] += e + e_lo[c]
    s_hi, s_lo = 0.0, 0.0
    for lane in range(LANES):
        h, g = fast_two_sum(a[lane], b[lane])
        s_hi, s_lo = add(s_hi, s_lo, h, g)
    return s_hi, s_lo


@inlined
def lane_min(x, sign=1.0):
    """The smallest element of sign x for a 1-D array x (at least one element; sign = -1: minus
    the largest of x), or NaN where one is NaN or infinite (the callers' domain checks then
    leave the row): LANES minima side by side, which the compiler vectorises where one
    running minimum ran a third as fast."""
    low, check = np.full(LANES, np.inf), np.zeros(LANES)
    C = x.size
    full = C - C % LANES
    for c in range(0, full, LANES):
        for lane in range(LANES):
            v = sign * x[c + lane]
            low[lane] = v if v < low[lane] else low[lane]
            check[lane] += v * 0.0  # NaN once any v is NaN or infinite
    for c in range(full, C):
        v = sign * x[c]
        low[0] = v if v < low[0] else low[0]
        check[0] += v * 0.0
    return low.min() + check.sum()


@inlined
def lane_argmax(x):
    """``np.argmax`` of a 1-D array of finite numbers (the first of equal largest), as
    ``lane_min`` does it."""
    top, where = np.full(LANES, -np.inf), np.zeros(LANES, dtype=np.int64)
    C = x.size
    full = C - C % LANES
    for c in range(0, full, LANES):
        for lane in range(LANES):
            if x[c + lane] > top[lane]:
                top[lane], where[lane] = x[c + lane], c + lane
    for c in range(full, C):
        if x[c] > top[0]:
            top[0], where[0] = x[c], c
    best = 0
    for lane in range(1, LANES):
        if top[lane] > top[best] or (top[lane] == top[best] and where[lane] < where[best]):
            best = lane
    return where[best]


@compiled
def sum2_error(n):
    """Ogita, Rump and Oishi's Sum2 over n double-doubles p_i (a TwoSum chain of the his,
    its errors and the los added in float64), relative to H = sum |p_i|, in u^2: each partial
    sum is at most (1 + gamma(n)) H, so each TwoSum error at most u of that, and the los
    at most u H in all; float64 adds those 2 n numbers within gamma(2 n) of their
    magnitudes: gamma(2 n) (n (1 + gamma(n)) + 1) u H."""
    g_n, g_2n = n * U / (1 - n * U), 2 * n * U / (1 - 2 * n * U)
    return g_2n / U * (n * (1 + g_n) + 1) * (1 + 2.0 ** -40)


@compiled
def lane_sum_error(C):
    """``lane_sum``'s relative bound over C terms, in u^2: each lane of n <= C / LANES + LANES
    terms is Sum2 (``sum2_error``) but for its FastTwoSum, exact (a lane's terms are
    nonnegative), and each of the LANES additions of lanes errs by ADD_ERROR u^2 of a partial
    sum, at most the total."""
    return sum2_error(C // LANES + LANES) + LANES * ADD_ERROR


@compiled
def log_of_sum(e_hi, e_lo, e_error, inverse, l1, l2, l3, table_hi, table_lo, powers):
    """(log E as a double-double, its absolute error bound) for a double-double E between
    exp(-EXP_HIGHEST) and 2^900 known within ``e_error`` of it, relatively (an absolute bound
    of a few u^2: near E = 1, ``log_dd`` takes the series): one Newton step from libm's
    log of hi,
    y1 = y0 + (E exp(-y0) - 1). With y0 = y + delta, E exp(-y0) = exp(-delta), so y1 errs by
    delta^2 / 2 + O(delta^3) < delta^2, plus the step's own roundings (the exponential's and
    the product's, relative to E exp(-y0) ~ 1, and E's own error). libm's log is within 8
    ulps (``balls.LIBM_ULPS``, measured in tests/test_reference.py), and log(hi) is within u
    of log(E): |delta| <= (8 |y0| + 2) u."""
    y0 = math.log(e_hi)
    x_hi, x_lo = exp_one(-y0, 0.0, inverse, l1, l2, l3, table_hi, table_lo, powers)
    p_hi, p_lo = mul(e_hi, e_lo, x_hi, x_lo)
    t_hi, t_lo = add_float(p_hi, p_lo, -1.0)
    y_hi, y_lo = add_float(t_hi, t_lo, y0)
    delta = (8 * abs(y0) + 2) * U * (1 + 2.0 ** -20)
    error = ((EXP_ERROR + MUL_ERROR + 2 * ADD_FLOAT_ERROR) * U2 * abs(p_hi) * 2
             + e_error * abs(p_hi) * 2 + ADD_FLOAT_ERROR * U2 * abs(y_hi) + delta * delta)
    return y_hi, y_lo, error


SERIES_BELOW = 2.0 ** -10  # log1p by its series below this: 10 terms reach 2^-106
LOG1P_SERIES_ERROR = 128.0
_INVERSES = tuple(_constant(1, k) for k in range(1, 12))


@compiled
def log1p_series(s_hi, s_lo):
    """log1p(s) for a double-double |s| < SERIES_BELOW, within LOG1P_SERIES_ERROR u^2 of it
    relatively: sum_{k=1}^{11} (-1)^(k+1) s^k / k by Horner in double-double (the tail below
    |s|^11 / 12 < 2^-113 of |s|; each step's error damped by |s| < 2^-10 but the last two, 2
    (MUL + ADD) u^2 with the 1/k's own u^2; each step 1/k - s h adds a term below 2^-9 of
    1/k, so it cancels nothing, whatever s's sign). Where E = 1 + S' is near 1, Newton's step
    on log E (``log_of_sum``) leaves an absolute error of a few u^2, far from log E's ulp."""
    h_hi, h_lo = _INVERSES[10]
    for k in range(9, -1, -1):
        h_hi, h_lo = mul(s_hi, s_lo, -h_hi, -h_lo)
        h_hi, h_lo = add(_INVERSES[k][0], _INVERSES[k][1], h_hi, h_lo)
    return mul(s_hi, s_lo, h_hi, h_lo)


# --- kernels ---------------------------------------------------------------------------------
# Their logits are x + x_lo (x_lo of shape (0, C) where the logits are float64 numbers) within
# logit_error of the exact ones, per row; m is the row's largest x (a decision: any shift is
# exact in the formulas), at class k.

@compiled
def softmax_terms(x, x_lo, m, k, d_hi, d_lo, e_hi, e_lo, scratch, inverse, l1, l2, l3,
                  table_hi, table_lo, powers, quick=False):
    """Into e_hi + e_lo, e_c = exp((x_c + x_lo_c) - (m + m_lo)) for a row x (1-D, finite,
    within -EXP_LOWEST of m; m_lo = x_lo at k), e_k = 1 exactly; returns S' = sum_{c != k}
    e_c within (EXP_ERROR + (C + 2) ADD_ERROR) u^2 of the sum of the exponentials of the
    computed differences, relatively (``terms_error``): nonnegative terms in four interleaved
    sums (independent chains run side by side), each partial sum at most S', so each of the
    C + 2 additions errs by at most ADD_ERROR u^2 S'. Where ``quick``, the exponentials by
    ``quick_exp``, and their sum by ``lane_sum``. The differences are exact (TwoSum) without
    x_lo, else within ``difference_error`` (into d_hi + d_lo)."""
    C = x.size
    if x_lo.size:
        m_lo = x_lo[k]
        for c in range(C):
            s, e = two_sum(x[c], -m)
            d_hi[c], d_lo[c] = two_sum(s, e + (x_lo[c] - m_lo))
    else:
        for c in range(C):
            d_hi[c], d_lo[c] = two_sum(x[c], -m)
    if quick:
        quick_exp(d_hi, d_lo, e_hi, e_lo, scratch, inverse, l1, l2, l3, table_hi, table_lo,
                  powers)
        e_hi[k], e_lo[k] = 0.0, 0.0
        total = lane_sum(e_hi, e_lo)
        e_hi[k] = 1.0
        return total
    exp(d_hi, d_lo, e_hi, e_lo, scratch, inverse, l1, l2, l3, table_hi, table_lo, powers)
    e_hi[k], e_lo[k] = 0.0, 0.0
    a0, a1, b0, b1, c0, c1, f0, f1 = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for c in range(0, C - 3, 4):
        a0, a1 = add(a0, a1, e_hi[c], e_lo[c])
        b0, b1 = add(b0, b1, e_hi[c + 1], e_lo[c + 1])
        c0, c1 = add(c0, c1, e_hi[c + 2], e_lo[c + 2])
        f0, f1 = add(f0, f1, e_hi[c + 3], e_lo[c + 3])
    for c in range(C - C % 4, C):
        a0, a1 = add(a0, a1, e_hi[c], e_lo[c])
    a0, a1 = add(a0, a1, b0, b1)
    c0, c1 = add(c0, c1, f0, f1)
    e_hi[k] = 1.0
    return add(a0, a1, c0, c1)


@compiled
def terms_error(C, quick):
    """``softmax_terms``'s relative bound, in u^2, over a row of C logits."""
    if quick:
        return QUICK_EXP_ERROR + lane_sum_error(C)
    return EXP_ERROR + (C + 2) * ADD_ERROR


@compiled
def difference_error(low, m, has_lo, logit_error):
    """A bound on |(computed x_c - m) - (exact z_c - m)| over a row whose smallest x is
    ``low`` (m its largest): the logits' own error, plus, with lo parts, the rounding of
    e + (x_lo_c - m_lo) in ``softmax_terms`` (three operations on numbers below
    2 u (|x_c| + |m|), 6 u^2 (|x_c| + |m|) with room)."""
    error = logit_error
    if has_lo:
        error += 12.0 * U2 * max(abs(low), abs(m))
    return error


@compiled
def exp_relative_error(difference):
    """The relative error of an e_c = exp(computed difference) beyond the exponential's own:
    exp(delta) - 1 <= 2 delta for an error delta <= 1/2 of its argument (the exponential's
    own bound: ``terms_error``, with the sum's)."""
    return 2 * difference


@compiled
def softmax_gradient_rows(x, x_lo, logit_error, k, t, a, w, divisor_hi, divisor_lo, zero,
                          estimate_ulps, inverse, l1, l2, l3, table_hi, table_lo, powers,
                          out_hi, out_lo, out_error, ok, quick=False):
    """Per row i of the logits (n, C), all finite: r_i (softmax_i - onehot(t_i)) as
    double-doubles into out_hi + out_lo, with r_i = a_i w_i / (D E_i) (D = divisor_hi +
    divisor_lo, within u^2 of the exact divisor; E_i the softmax's denominator over the row's
    largest logit), the row's relative error bound into ``out_error`` (0 for an exact row, inf
    for a row left), and ``ok[i]`` whether every element is ``certified`` to round to its hi
    (``estimate_ulps``: how close the estimate must be; 0 certifies nothing, for a caller
    that only bounds products of the rows).

    e_c and S' = sum_{c != k} e_c by ``softmax_terms``; E = 1 + S'. At the target, -r rest
    with rest = sum_{c != t} e_c: S' when t = k, else E - e_t without cancellation (rest >=
    e_k = 1 >= e_t, so E's and e_t's absolute errors are at most twice their relative bounds
    of rest). Rows with ``zero`` set are exactly 0; rows whose logits spread beyond
    -EXP_LOWEST, or whose r leaves the domain, are not ok. Every bound is relative and
    first-order; the second-order terms (below 2^-150) are covered by a factor 1 + 2^-30.
    ``quick``: the exponentials by ``quick_exp`` (2^-68), for what needs 60-odd bits."""
    n, C = x.shape
    d_hi, d_lo, scratch = np.empty(C), np.empty(C), np.empty(C)
    empty = np.empty(0)
    for i in range(n):
        row_lo = x_lo[i] if x_lo.size else empty
        out_error[i], ok[i] = _gradient_row(
            x[i], row_lo, logit_error[i], k[i], t[i], a[i], w[i], divisor_hi, divisor_lo,
            zero[i], estimate_ulps, d_hi, d_lo, scratch, inverse, l1, l2, l3, table_hi,
            table_lo, powers, out_hi[i], out_lo[i], quick)


@compiled
def softmax_gradient_parts(parts, extra, extra_error, bound, t, a, w, divisor_hi, divisor_lo,
                           zero, estimate_ulps, inverse, l1, l2, l3, table_hi, table_lo,
                           powers, out_hi, out_lo, out_error, ok, quick=False):
    """``softmax_gradient_rows`` of the logits that ``sum_parts`` makes of its first four
    arguments, a row at a time (as ``softmax_loss_parts``): the logits' double-doubles never
    leave the cache, each row's error bound is the largest of its elements', its k the
    largest hi's class; a row whose gradient is exactly 0 adds no parts."""
    P, n, C = parts.shape
    z_hi, z_lo, z_error = np.empty(C), np.empty(C), np.empty(C)
    d_hi, d_lo, scratch = np.empty(C), np.empty(C), np.empty(C)
    for i in range(n):
        logit_error, k = 0.0, 0
        if not zero[i]:
            _sum_parts_row(parts, extra, extra_error, bound, i, z_hi, z_lo, z_error)
            logit_error, k = -lane_min(z_error, -1.0), lane_argmax(z_hi)
        out_error[i], ok[i] = _gradient_row(
            z_hi, z_lo, logit_error, k, t[i], a[i], w[i], divisor_hi, divisor_lo, zero[i],
            estimate_ulps, d_hi, d_lo, scratch, inverse, l1, l2, l3, table_hi, table_lo, powers,
            out_hi[i], out_lo[i], quick)


@inlined
def _gradient_row(x, x_lo, logit_error, k, t, a, w, divisor_hi, divisor_lo, zero,
                  estimate_ulps, d_hi, d_lo, scratch, inverse, l1, l2, l3, table_hi, table_lo,
                  powers, e_hi, e_lo, quick):
    """(error bound, certified) of one row of ``softmax_gradient_rows``, its G into e_hi +
    e_lo (1-D); a zero row's x is not read."""
    if zero:
        e_hi[:] = 0.0
        e_lo[:] = 0.0
        return 0.0, True
    m, low = x[k], lane_min(x)
    if not (m - low <= -EXP_LOWEST):
        return np.inf, False
    C = x.size
    s_hi, s_lo = softmax_terms(x, x_lo, m, k, d_hi, d_lo, e_hi, e_lo, scratch, inverse, l1,
                               l2, l3, table_hi, table_lo, powers, quick)
    shift_error = exp_relative_error(difference_error(low, m, x_lo.size > 0, logit_error))
    e_error = (QUICK_EXP_ERROR if quick else EXP_ERROR) * U2 + shift_error
    others_error = shift_error + terms_error(C, quick) * U2
    total_hi, total_lo = add_float(s_hi, s_lo, 1.0)
    total_error = others_error + ADD_FLOAT_ERROR * U2
    if t == k:
        rest_hi, rest_lo, rest_error = s_hi, s_lo, others_error
    else:
        rest_hi, rest_lo = add(total_hi, total_lo, -e_hi[t], -e_lo[t])
        rest_error = ADD_ERROR * U2 + 2 * total_error + 2 * e_error
    up_hi, up_lo = two_prod(a, w)
    den_hi, den_lo = mul(divisor_hi, divisor_lo, total_hi, total_lo)
    r_hi, r_lo = div(up_hi, up_lo, den_hi, den_lo)
    if not (safe(up_hi) and safe(den_hi) and safe(r_hi) and total_error < 2.0 ** -31):
        return np.inf, False
    r_error = (MUL_ERROR + 1.0 + DIV_ERROR) * U2 + total_error  # D E, D, the quotient, E
    error = (MUL_ERROR * U2 + r_error + max(e_error, rest_error)) * (1 + 2.0 ** -30)
    unsafe = False  # a term e_c r below the domain: its relative bound would not hold
    for c in range(C):
        term = e_hi[c]
        e_hi[c], e_lo[c] = mul(e_hi[c], e_lo[c], r_hi, r_lo)
        unsafe |= _out_of_domain(e_hi[c], term != 0.0)  # r is in the domain
    e_hi[t], e_lo[t] = mul(rest_hi, rest_lo, -r_hi, -r_lo)
    if unsafe or not product_in_domain(e_hi[t], rest_hi, r_hi):
        return np.inf, False
    if estimate_ulps <= 0:
        return error, False  # the caller takes the error only
    for c in range(C):
        if not certified(e_hi[c], e_lo[c], error * abs(e_hi[c]), estimate_ulps):
            return error, False
    return error, True


@compiled
def softmax_loss_rows(x, x_lo, logit_error, k, t, w, estimate_ulps, inverse, l1, l2, l3,
                      table_hi, table_lo, powers, out_hi, out_lo, out_error, ok):
    """Per row i of the logits (n, C), all finite: w_i ((m_i - z_it) + log E_i) (the negative
    log-softmax of class t_i, weighted; m_i the row's largest logit, E_i the softmax's
    denominator over it) as a double-double into out_hi + out_lo, its absolute error bound
    into out_error (inf where the row leaves the domain), and ``ok[i]`` whether it is
    ``certified`` to round to its hi. A row with w_i = 0 is exactly 0.

    E = 1 + S' as in ``softmax_gradient_rows``, its exponentials first by ``quick_exp``, and
    by ``exp`` for a row that this leaves uncertified (its loss a few ulps from a rounding
    boundary, or far below its terms); log E by ``log_of_sum``; m - z_t >= 0 (exactly, by
    TwoSum, for float64 logits), so its sum with log E does not cancel."""
    n, C = x.shape
    d_hi, d_lo, scratch = np.empty(C), np.empty(C), np.empty(C)
    e_hi, e_lo = np.empty(C), np.empty(C)
    empty = np.empty(0)
    for i in range(n):
        row_lo = x_lo[i] if x_lo.size else empty
        out_hi[i], out_lo[i], out_error[i], ok[i] = _loss_row(
            x[i], row_lo, logit_error[i], k[i], t[i], w[i], estimate_ulps, d_hi, d_lo, e_hi,
            e_lo, scratch, inverse, l1, l2, l3, table_hi, table_lo, powers)


@compiled
def softmax_loss_parts(parts, extra, extra_error, bound, t, w, estimate_ulps, inverse, l1, l2,
                       l3, table_hi, table_lo, powers, out_hi, out_lo, out_error, ok):
    """``softmax_loss_rows`` of the logits that ``sum_parts`` makes of its first four
    arguments, a row at a time: the logits' double-doubles never leave the cache (writing
    and reading them back took as long as the softmax), each row's error bound is the largest
    of its elements', and its m the largest hi."""
    P, n, C = parts.shape
    z_hi, z_lo, z_error = np.empty(C), np.empty(C), np.empty(C)
    d_hi, d_lo, scratch = np.empty(C), np.empty(C), np.empty(C)
    e_hi, e_lo = np.empty(C), np.empty(C)
    for i in range(n):
        _sum_parts_row(parts, extra, extra_error, bound, i, z_hi, z_lo, z_error)
        out_hi[i], out_lo[i], out_error[i], ok[i] = _loss_row(
            z_hi, z_lo, -lane_min(z_error, -1.0), lane_argmax(z_hi), t[i], w[i], estimate_ulps,
            d_hi, d_lo, e_hi, e_lo, scratch, inverse, l1, l2, l3, table_hi, table_lo, powers)


@inlined
def _log_total(x, x_lo, m, k, difference, d_hi, d_lo, e_hi, e_lo, scratch, inverse, l1, l2,
               l3, table_hi, table_lo, powers, quick):
    """(log E as a double-double, its absolute error bound; inf where E's bound is too wide)
    of a row whose differences from m err by at most ``difference``: log1p's series where
    S' is small, else ``log_of_sum``."""
    s_hi, s_lo = softmax_terms(x, x_lo, m, k, d_hi, d_lo, e_hi, e_lo, scratch, inverse,
                               l1, l2, l3, table_hi, table_lo, powers, quick)
    total_error = (exp_relative_error(difference)
                   + (terms_error(x.size, quick) + ADD_FLOAT_ERROR) * U2)
    return _log_of_terms(s_hi, s_lo, total_error, inverse, l1, l2, l3, table_hi, table_lo,
                         powers)


@inlined
def _log_of_terms(s_hi, s_lo, total_error, inverse, l1, l2, l3, table_hi, table_lo, powers):
    """(log E = log1p(S') as a double-double, its absolute error bound; inf where E's relative
    bound ``total_error`` is too wide) for the sum S' of a row's terms but its largest."""
    if not total_error < 2.0 ** -31:
        return 0.0, 0.0, np.inf
    if s_hi < SERIES_BELOW:  # log E = log1p(S') far below 1: Newton's bound is absolute
        y_hi, y_lo = log1p_series(s_hi, s_lo)
        return y_hi, y_lo, (LOG1P_SERIES_ERROR * U2 + total_error * (1 + 2.0 ** -8)) * abs(y_hi)
    total_hi, total_lo = add_float(s_hi, s_lo, 1.0)
    return log_of_sum(total_hi, total_lo, total_error, inverse, l1, l2, l3, table_hi,
                      table_lo, powers)


@inlined
def _margin(x, x_lo, m, k, c):
    """m - z_c as a double-double: exact for float64 logits (TwoSum), else within
    ``difference_error``."""
    g_hi, g_lo = two_sum(m, -x[c])
    if x_lo.size:
        g_hi, g_lo = two_sum(g_hi, g_lo + (x_lo[k] - x_lo[c]))
    return g_hi, g_lo


@inlined
def _target_nlp(x, x_lo, m, k, t, difference, d_hi, d_lo, e_hi, e_lo, scratch, inverse, l1,
                l2, l3, table_hi, table_lo, powers, quick):
    """(nlp_t = (m - z_t) + log E and its absolute bound, log E and its bound) as
    double-doubles; the bounds inf where E's is too wide. The two parts of nlp_t are
    nonnegative: their sum cancels nothing."""
    y_hi, y_lo, y_error = _log_total(x, x_lo, m, k, difference, d_hi, d_lo, e_hi, e_lo,
                                     scratch, inverse, l1, l2, l3, table_hi, table_lo, powers,
                                     quick)
    if not y_error < np.inf:
        return 0.0, 0.0, np.inf, 0.0, 0.0, np.inf
    g_hi, g_lo = _margin(x, x_lo, m, k, t)
    n_hi, n_lo = add(g_hi, g_lo, y_hi, y_lo)
    return n_hi, n_lo, y_error + difference + ADD_ERROR * U2 * abs(n_hi), y_hi, y_lo, y_error


@inlined
def _loss_row(x, x_lo, logit_error, k, t, w, estimate_ulps, d_hi, d_lo, e_hi, e_lo, scratch,
              inverse, l1, l2, l3, table_hi, table_lo, powers):
    """(hi, lo, error bound, certified) of one row's loss (``softmax_loss_rows``): with
    ``quick_exp``, then with ``exp`` if that leaves it uncertified."""
    if w == 0:
        return 0.0, 0.0, 0.0, True
    m, low = x[k], lane_min(x)
    if not (m - low <= -EXP_LOWEST and safe(w)):
        return 0.0, 0.0, np.inf, False
    difference = difference_error(low, m, x_lo.size > 0, logit_error)
    result = (0.0, 0.0, np.inf, False)
    for quick in (True, False):
        s_hi, s_lo, s_error, _, _, _ = _target_nlp(
            x, x_lo, m, k, t, difference, d_hi, d_lo, e_hi, e_lo, scratch, inverse, l1, l2, l3,
            table_hi, table_lo, powers, quick)
        if not s_error < np.inf:
            return result
        l_hi, l_lo = mul(s_hi, s_lo, w, 0.0)
        l_error = (s_error * abs(w) + MUL_ERROR * U2 * abs(l_hi)) * (1 + 2.0 ** -30)
        if not safe(l_hi):
            return result
        result = (l_hi, l_lo, l_error, certified(l_hi, l_lo, l_error, estimate_ulps))
        if result[3]:
            break
    return result


@compiled
def softmax_smoothed_loss_parts(parts, extra, extra_error, bound, t, w_t, counted, w,
                                smoothing, S_hi, S_lo, estimate_ulps, inverse, l1, l2, l3,
                                table_hi, table_lo, powers, out_hi, out_lo, out_error, ok):
    """``softmax_loss_parts`` with label smoothing e: per counted row (1 - e) w_t nlp_t +
    (e / C) sum_c w_c nlp_c, nlp_c = (m - z_c) + log E (``_smoothed_loss_row``), S_hi + S_lo
    the sum of the class weights w within u^2 of it; rows not counted are exactly 0."""
    P, n, C = parts.shape
    z_hi, z_lo, z_error = np.empty(C), np.empty(C), np.empty(C)
    d_hi, d_lo, scratch = np.empty(C), np.empty(C), np.empty(C)
    e_hi, e_lo = np.empty(C), np.empty(C)
    magnitude = 0.0
    for c in range(C):
        magnitude += abs(w[c])
    for i in range(n):
        if not counted[i]:
            out_hi[i], out_lo[i], out_error[i], ok[i] = 0.0, 0.0, 0.0, True
            continue
        _sum_parts_row(parts, extra, extra_error, bound, i, z_hi, z_lo, z_error)
        out_hi[i], out_lo[i], out_error[i], ok[i] = _smoothed_loss_row(
            z_hi, z_lo, -lane_min(z_error, -1.0), lane_argmax(z_hi), t[i], w_t[i], w,
            magnitude * (1 + 2.0 ** -40), smoothing, S_hi, S_lo, estimate_ulps, d_hi, d_lo,
            e_hi, e_lo, scratch, inverse, l1, l2, l3, table_hi, table_lo, powers)


@compiled
def softmax_smoothed_loss_rows(x, x_lo, logit_error, k, t, w_t, counted, w, smoothing, S_hi,
                               S_lo, estimate_ulps, inverse, l1, l2, l3, table_hi, table_lo,
                               powers, out_hi, out_lo, out_error, ok):
    """``softmax_smoothed_loss_parts`` of logits given whole (as ``softmax_loss_rows``)."""
    n, C = x.shape
    d_hi, d_lo, scratch = np.empty(C), np.empty(C), np.empty(C)
    e_hi, e_lo = np.empty(C), np.empty(C)
    empty = np.empty(0)
    magnitude = 0.0
    for c in range(C):
        magnitude += abs(w[c])
    for i in range(n):
        if not counted[i]:
            out_hi[i], out_lo[i], out_error[i], ok[i] = 0.0, 0.0, 0.0, True
            continue
        row_lo = x_lo[i] if x_lo.size else empty
        out_hi[i], out_lo[i], out_error[i], ok[i] = _smoothed_loss_row(
            x[i], row_lo, logit_error[i], k[i], t[i], w_t[i], w, magnitude * (1 + 2.0 ** -40),
            smoothing, S_hi, S_lo, estimate_ulps, d_hi, d_lo, e_hi, e_lo, scratch, inverse,
            l1, l2, l3, table_hi, table_lo, powers)


@inlined
def _smoothed_loss_row(x, x_lo, logit_error, k, t, w_t, w, w_magnitude, smoothing, S_hi, S_lo,
                       estimate_ulps, d_hi, d_lo, e_hi, e_lo, scratch, inverse, l1, l2, l3,
                       table_hi, table_lo, powers):
    """(hi, lo, error bound, certified) of one counted row's smoothed loss, (1 - e) w_t nlp_t
    + (e / C) (sum_c w_c (m - z_c) + S log E): the spread sum_c w_c (m - z_c) once (each
    difference within ``difference_error``, times w_c and added in double-double: C ADD_ERROR
    + MUL_ERROR u^2 of sum_c |w_c (m - z_c)|), log E as ``_loss_row``'s (``quick_exp`` first,
    ``exp`` where that leaves it uncertified). 1 - e is exact (TwoSum), e / C within
    DIV_ERROR u^2."""
    m, low = x[k], lane_min(x)
    if not (m - low <= -EXP_LOWEST and (w_t == 0.0 or safe(w_t))):
        return 0.0, 0.0, np.inf, False
    C = x.size
    difference = difference_error(low, m, x_lo.size > 0, logit_error)
    sp_hi, sp_lo, sp_size, sp_in_domain = _spread(x, x_lo, m, k, w)
    if not sp_in_domain:
        return 0.0, 0.0, np.inf, False
    sp_error = (difference * w_magnitude
                + (sum2_error(C) + MUL_ERROR) * U2 * sp_size) * (1 + 2.0 ** -30)
    keep_hi, keep_lo = two_sum(1.0, -smoothing)
    share_hi, share_lo = div(smoothing, 0.0, float(C), 0.0)
    result = (0.0, 0.0, np.inf, False)
    for quick in (True, False):
        n_hi, n_lo, n_error, y_hi, y_lo, y_error = _target_nlp(
            x, x_lo, m, k, t, difference, d_hi, d_lo, e_hi, e_lo, scratch, inverse, l1, l2, l3,
            table_hi, table_lo, powers, quick)
        if not n_error < np.inf:
            return result
        q_hi, q_lo = mul(n_hi, n_lo, w_t, 0.0)
        a_hi, a_lo = mul(q_hi, q_lo, keep_hi, keep_lo)
        a_error = (n_error * abs(w_t) + MUL_ERROR * U2 * abs(q_hi)) * keep_hi \
            + MUL_ERROR * U2 * abs(a_hi)
        r_hi, r_lo = mul(y_hi, y_lo, S_hi, S_lo)
        b_hi, b_lo = add(sp_hi, sp_lo, r_hi, r_lo)
        b_error = (sp_error + y_error * abs(S_hi) + (MUL_ERROR + 1.0) * U2 * abs(r_hi)
                   + ADD_ERROR * U2 * (abs(sp_hi) + abs(r_hi)))
        c_hi, c_lo = mul(b_hi, b_lo, share_hi, share_lo)
        c_error = b_error * share_hi + (MUL_ERROR + DIV_ERROR) * U2 * abs(c_hi)
        l_hi, l_lo = add(a_hi, a_lo, c_hi, c_lo)
        l_error = (a_error + c_error + ADD_ERROR * U2 * (abs(a_hi) + abs(c_hi))) \
            * (1 + 2.0 ** -30)
        if not (product_in_domain(q_hi, n_hi, w_t) and product_in_domain(a_hi, q_hi, keep_hi)
                and product_in_domain(r_hi, y_hi, S_hi)
                and product_in_domain(c_hi, b_hi, share_hi) and (l_hi == 0.0 or safe(l_hi))):
            return result
        result = (l_hi, l_lo, l_error, certified(l_hi, l_lo, l_error, estimate_ulps))
        if result[3]:
            break
    return result


@inlined
def _spread(x, x_lo, m, k, w):
    """(hi, lo, size, in the domain) of the spread sum_c w_c (m - z_c) of a row: each
    difference by ``_margin``'s steps, times w_c by ``mul``, the products added by Ogita, Rump
    and Oishi's Sum2 (a chain of TwoSum, its errors and the lo parts added in float64), within
    (``sum2_error(C)`` + MUL_ERROR) u^2 of size = sum_c |w_c (m - z_c)| (for terms of either
    sign: every partial sum is at most size): a third of the time of ``add``'s chain with
    ``_margin`` inside. Out of the domain where a product of nonzero factors is not ``safe``
    (one that underflows to 0 included)."""
    a, b, size, unsafe = 0.0, 0.0, 0.0, False
    if x_lo.size:  # a loop for each case: ``_margin``'s branch inside the loop cost 3x
        m_lo = x_lo[k]
        for c in range(x.size):
            g_hi, g_lo = two_sum(m, -x[c])
            g_hi, g_lo = two_sum(g_hi, g_lo + (m_lo - x_lo[c]))
            a, b, size, unsafe = _spread_step(a, b, size, unsafe, g_hi, g_lo, w[c])
    else:
        for c in range(x.size):
            g_hi, g_lo = two_sum(m, -x[c])
            a, b, size, unsafe = _spread_step(a, b, size, unsafe, g_hi, g_lo, w[c])
    s_hi, s_lo = two_sum(a, b)
    return s_hi, s_lo, size, not (unsafe or np.isnan(size))


@inlined
def _spread_step(a, b, size, unsafe, g_hi, g_lo, w_c):
    """``_spread``'s state after the term w_c (g_hi + g_lo)."""
    p_hi, p_lo = mul(g_hi, g_lo, w_c, 0.0)
    a, e = two_sum(a, p_hi)
    magnitude = abs(p_hi)
    # a zero is exact only as a zero factor's: a product that underflows to 0 is not
    unsafe |= (((magnitude < SMALLEST) & (g_hi != 0.0) & (w_c != 0.0))
               | (magnitude > LARGEST))
    return a, b + (e + p_lo), size + magnitude, unsafe


@compiled
def smoothed_gradient_rows(g_hi, g_lo, eps, t, a, w_t, divisor_hi, divisor_lo, smoothing,
                           classes, S_hi, S_lo, w, magnitude):
    """Label smoothing's softmax gradient, in place, from the unsmoothed one of unit weight
    (``softmax_gradient_rows`` with w = 1: g = a (softmax - onehot(t)) / D, within eps |g| per
    row). torch's smoothed loss (1 - e) w_t nlp_t + (e / C) sum_c w_c nlp_c has the gradient
    G_c = K g_c + k (S [c = t] - w_c), K = (1 - e) w_t + (e / C) S, k = (e / C) a / D, S the
    sum of the class weights w (S_hi + S_lo within u^2 of it). G goes into g_hi + g_lo, into
    ``magnitude`` the sizes of its terms before they cancel, (|(1 - e) w_t| + |(e / C) S|) |g_c|
    + |k| (|S| + |w_t| at the target, else |w_c|), and into eps the row's bound relative to
    them: |G - (g_hi + g_lo)| <= eps magnitude. K and k are double-doubles (1 - e exact, e / C
    and the divisor's quotient within DIV_ERROR u^2); a row whose terms leave the domain (a
    subnormal product) gets eps = inf. g's columns may be some of the ``classes`` classes
    (w their weights, t the target's column or -1 where the target is not among them)."""
    n, C = g_hi.shape
    keep_hi, keep_lo = two_sum(1.0, -smoothing)
    share_hi, share_lo = div(smoothing, 0.0, float(classes), 0.0)
    c1_hi, c1_lo = mul(share_hi, share_lo, S_hi, S_lo)
    K_error = (DIV_ERROR + 2 * MUL_ERROR + ADD_ERROR + 1.0) * U2
    k_error = (2 * DIV_ERROR + MUL_ERROR + 1.0) * U2
    T_error = k_error + (ADD_FLOAT_ERROR + 1.0 + MUL_ERROR) * U2
    for i in range(n):
        if not eps[i] < np.inf:
            continue
        kw_hi, kw_lo = mul(keep_hi, keep_lo, w_t[i], 0.0)
        K_hi, K_lo = add(kw_hi, kw_lo, c1_hi, c1_lo)
        K_size = abs(kw_hi) + abs(c1_hi)
        q_hi, q_lo = div(a[i], 0.0, divisor_hi, divisor_lo)
        k_hi, k_lo = mul(q_hi, q_lo, share_hi, share_lo)
        row_ok = ((K_hi == 0.0 or safe(K_hi)) and product_in_domain(q_hi, a[i], a[i])
                  and product_in_domain(k_hi, q_hi, share_hi)
                  and product_in_domain(kw_hi, keep_hi, w_t[i])
                  and product_in_domain(c1_hi, share_hi, S_hi))
        for c in range(C):
            gh = g_hi[i, c]
            p_hi, p_lo = mul(gh, g_lo[i, c], K_hi, K_lo)
            if c == t[i]:
                s_hi, s_lo = add_float(S_hi, S_lo, -w[c])
                target_size = abs(S_hi) + abs(w[c])
            else:
                s_hi, s_lo = -w[c], 0.0
                target_size = abs(w[c])
            r_hi, r_lo = mul(s_hi, s_lo, k_hi, k_lo)
            if not (product_in_domain(p_hi, gh, K_hi) and product_in_domain(r_hi, s_hi, k_hi)):
                row_ok = False
            g_hi[i, c], g_lo[i, c] = add(p_hi, p_lo, r_hi, r_lo)
            magnitude[i, c] = (K_size * abs(gh) + abs(k_hi) * target_size) * (1 + 2.0 ** -50)
        if row_ok:
            eps[i] = (max(eps[i] + K_error + MUL_ERROR * U2, T_error)
                      + ADD_ERROR * U2) * (1 + 2.0 ** -30)
        else:
            eps[i] = np.inf


@compiled
def softmax_soft_rows(logits, k, p, w, smoothing, divisor, a, gradients, estimate_ulps, inverse,
                      l1, l2, l3, table_hi, table_lo, powers, loss_hi, loss_lo, loss_error,
                      loss_ok, gx_hi, gx_lo, gx_error, gx_ok, gp_hi, gp_lo, gp_error, gp_ok,
                      gw_hi, gw_lo,
                      gw_error):
    """Cross entropy with probability targets, per row i of the logits (x, x_lo,
    logit_error): x + x_lo (n, C) (x_lo of shape (0, C) for float64 logits, whose differences
    are then exact), all finite, within logit_error (n,) of the exact ones, x's largest at k_i,
    targets p (n, C), class weights w (C,), label smoothing e: with
    u_c = w_c q_c, q_c = (1 - e) p_c + e / C, Q = sum_c u_c and nlp_c = (m - x_c) + log E,

    - the loss sum_c u_c nlp_c = sum_c u_c (m - x_c) + Q log E as a double-double into
      loss_hi + loss_lo, its absolute error bound into loss_error (inf for a row left), and
      into loss_ok whether it is ``certified``;
    - where ``gradients``, for h = a_i / divisor: d loss / d x_c = h (Q e_c / E - u_c) into
      gx_hi + gx_lo and d loss / d p_c = h (1 - e) w_c nlp_c into gp_hi + gp_lo, and into
      gx_ok and gp_ok whether every element of the row is ``certified`` (or exactly 0);
      where gx_error and gp_error have rows too, d x's and d p's absolute error bounds into
      them (inf for a row left: its d x then holds zeros);
      where gw_hi has rows too, the row's part of d loss / d w_c, h q_c nlp_c, into
      gw_hi + gw_lo and its absolute error bound into gw_error (inf for a row left).

    e_c, S' and log E as ``softmax_loss_rows`` computes them, each m - x_c (``softmax_terms``'
    differences, negated) within ``difference_error``. Every bound is absolute, each
    operation's relative bound on its result's magnitude: u's terms can cancel in Q where
    weights have both signs, and the gradient's two terms where the softmax meets the target;
    second-order terms are covered by a factor 1 + 2^-30. A row whose logits spread beyond
    -EXP_LOWEST, or with a nonzero product outside the domain (``safe``), is left."""
    x, x_lo, logit_error = logits
    n, C = x.shape
    d_hi, d_lo, scratch = np.empty(C), np.empty(C), np.empty(C)
    e_hi, e_lo = np.empty(C), np.empty(C)
    u_hi, u_lo, u_error = np.empty(C), np.empty(C), np.empty(C)
    v_hi, v_lo, v_error = np.empty(C), np.empty(C), np.empty(C)  # q
    empty = np.empty(0)
    weight_parts = gw_hi.shape[0] > 0
    keep_hi, keep_lo = two_sum(1.0, -smoothing)
    share_hi, share_lo = div(smoothing, 0.0, float(C), 0.0)
    h_relative = 0.0 if divisor == 1.0 else DIV_ERROR * U2
    total_error = (terms_error(C, False) + ADD_FLOAT_ERROR) * U2
    grow = 1 + 2.0 ** -30
    for i in range(n):
        loss_hi[i], loss_lo[i], loss_error[i], loss_ok[i] = 0.0, 0.0, np.inf, False
        if gradients:
            gx_ok[i], gp_ok[i] = False, False
            if gx_error.size:
                gx_hi[i, :], gx_lo[i, :], gx_error[i, :] = 0.0, 0.0, np.inf
            if gp_error.size:
                gp_error[i, :] = np.inf
        if weight_parts:
            gw_error[i, :] = np.inf
        row, row_lo = x[i], x_lo[i] if x_lo.size else empty
        m, low = row[k[i]], lane_min(row)
        if not (m - low <= -EXP_LOWEST):
            continue
        difference = difference_error(low, m, x_lo.size > 0, logit_error[i])
        row_error = total_error + exp_relative_error(difference)  # E's, relatively
        s_hi, s_lo = softmax_terms(row, row_lo, m, k[i], d_hi, d_lo, e_hi, e_lo, scratch,
                                   inverse, l1, l2, l3, table_hi, table_lo, powers, False)
        y_hi, y_lo, y_error = _log_of_terms(s_hi, s_lo, row_error, inverse, l1, l2, l3,
                                            table_hi, table_lo, powers)
        if not y_error < np.inf:
            continue
        unsafe = False  # a product out of the domain (one that underflows to 0 included)
        if smoothing != 0.0:  # q = (1 - e) p + e / C; a loop of each kind (a branch in one
            for c in range(C):  # loop kept it from compiling tight)
                t_hi, t_lo = mul(keep_hi, keep_lo, p[i, c], 0.0)
                v_hi[c], v_lo[c] = add(t_hi, t_lo, share_hi, share_lo)
                v_error[c] = (MUL_ERROR * abs(t_hi) + DIV_ERROR * share_hi
                              + ADD_ERROR * (abs(t_hi) + share_hi)) * U2
                unsafe |= _out_of_domain(t_hi, (keep_hi != 0.0) & (p[i, c] != 0.0))
        else:
            for c in range(C):
                v_hi[c], v_lo[c], v_error[c] = p[i, c], 0.0, 0.0
        # Q = sum_c u_c and the spread sum_c u_c (m - x_c) by Sum2 (``sum2_error``), as
        # ``_spread``: a third of the time of ``add``'s chains
        q_hi, q_lo, q_error, q_size = 0.0, 0.0, 0.0, 0.0
        sp_hi, sp_lo, sp_error, sp_size, u_size = 0.0, 0.0, 0.0, 0.0, 0.0
        for c in range(C):
            u_hi[c], u_lo[c] = mul(v_hi[c], v_lo[c], w[c], 0.0)
            u_error[c] = (abs(w[c]) * v_error[c] + MUL_ERROR * U2 * abs(u_hi[c])) * grow
            q_hi, e = two_sum(q_hi, u_hi[c])
            q_lo += e + u_lo[c]
            q_error += u_error[c]
            q_size += abs(u_hi[c])
            P_hi, P_lo = mul(u_hi[c], u_lo[c], -d_hi[c], -d_lo[c])  # m - x_c >= 0
            u_size += abs(u_hi[c]) + u_error[c]
            sp_hi, f = two_sum(sp_hi, P_hi)
            sp_lo += f + P_lo
            sp_error += -d_hi[c] * u_error[c] + MUL_ERROR * U2 * abs(P_hi)
            sp_size += abs(P_hi)
            unsafe |= (_out_of_domain(u_hi[c], (v_hi[c] != 0.0) & (w[c] != 0.0))
                       | _out_of_domain(P_hi, (u_hi[c] != 0.0) & (d_hi[c] != 0.0)))
        q_hi, q_lo = two_sum(q_hi, q_lo)
        sp_hi, sp_lo = two_sum(sp_hi, sp_lo)
        ok = not unsafe  # (a NaN weight or target makes l NaN, which ``safe`` leaves below)
        q_error = (q_error + sum2_error(C) * U2 * q_size) * grow
        sp_error = (sp_error + sum2_error(C) * U2 * sp_size + difference * u_size) * grow
        R_hi, R_lo = mul(q_hi, q_lo, y_hi, y_lo)
        R_error = (abs(q_hi) * y_error + abs(y_hi) * q_error + MUL_ERROR * U2 * abs(R_hi)) * grow
        l_hi, l_lo = add(sp_hi, sp_lo, R_hi, R_lo)
        l_error = (sp_error + R_error + ADD_ERROR * U2 * (abs(sp_hi) + abs(R_hi))) * grow
        if not (ok and product_in_domain(R_hi, q_hi, y_hi) and (l_hi == 0.0 or safe(l_hi))):
            continue
        loss_hi[i], loss_lo[i], loss_error[i] = l_hi, l_lo, l_error
        loss_ok[i] = ((l_hi == 0.0 and l_lo == 0.0 and l_error == 0.0)
                      or certified(l_hi, l_lo, l_error, estimate_ulps))
        if gradients:
            w_hi, w_lo, w_error = empty, empty, empty  # the weight's parts: not wanted
            if weight_parts:
                w_hi, w_lo, w_error = gw_hi[i], gw_lo[i], gw_error[i]
            x_error = gx_error[i] if gx_error.size else empty  # d x's bounds: not wanted
            p_error = gp_error[i] if gp_error.size else empty
            gx_ok[i], gp_ok[i] = _soft_gradient_row(  # (at most 30 arguments: numba)
                (d_hi, d_lo, difference), a[i], divisor, h_relative, (s_hi, s_lo, row_error),
                (y_hi, y_lo, y_error), (q_hi, q_lo, q_error), u_hi, u_lo, u_error, v_hi, v_lo,
                v_error, e_hi, e_lo, w, keep_hi, keep_lo, estimate_ulps, gx_hi[i], gx_lo[i],
                x_error, gp_hi[i], gp_lo[i], p_error, w_hi, w_lo, w_error)


@inlined
def _out_of_domain(product, nonzero_factors):
    """Whether a double-double product with this hi leaves the domain: beyond LARGEST, or
    below SMALLEST where its factors are all nonzero (``nonzero_factors``): an underflow to
    0 is not an exact zero. ``product_in_domain``'s negation without its branches, for the
    hot loops (a NaN stays in, for the result's own check)."""
    magnitude = abs(product)
    return ((magnitude < SMALLEST) & nonzero_factors) | (magnitude > LARGEST)


@inlined
def _soft_gradient_row(differences, a, divisor, h_relative, S, log_E, Q, u_hi, u_lo, u_error,
                       v_hi, v_lo, v_error, e_hi, e_lo, w, keep_hi, keep_lo, estimate_ulps, gx_hi,
                       gx_lo, gx_error, gp_hi, gp_lo, gp_error, gw_hi, gw_lo, gw_error):
    """(d loss / d x certified, d loss / d p certified) of one row of ``softmax_soft_rows``,
    the gradients into gx and gp (1-D): r = h Q / E within its absolute bound, then per class
    r e_c - h u_c and h (1 - e) w_c nlp_c; where gw has elements, h q_c nlp_c (q = v) and its
    bound into gw (inf where a product leaves the domain). S, log_E and Q: (hi, lo, bound) of
    S' (relative: E's, the shift's included), log E and Q (absolute); ``differences``: the row's
    x_c - m as double-doubles (d_hi, d_lo) and their bound; where gx_error and gp_error have
    elements, d x's and d p's absolute bounds into them (inf where a product leaves the
    domain)."""
    d_hi, d_lo, difference = differences
    s_hi, s_lo, total_error = S
    y_hi, y_lo, y_error = log_E
    q_hi, q_lo, q_error = Q
    C = d_hi.size
    grow = 1 + 2.0 ** -30
    weight_parts, x_bounds, p_bounds = gw_hi.size > 0, gx_error.size > 0, gp_error.size > 0
    if a == 0.0:
        for c in range(C):
            gx_hi[c], gx_lo[c], gp_hi[c], gp_lo[c] = 0.0, 0.0, 0.0, 0.0
            if x_bounds:
                gx_error[c] = 0.0
            if p_bounds:
                gp_error[c] = 0.0
            if weight_parts:
                gw_hi[c], gw_lo[c], gw_error[c] = 0.0, 0.0, 0.0
        return True, True
    h_hi, h_lo = div(a, 0.0, divisor, 0.0)
    E_hi, E_lo = add_float(s_hi, s_lo, 1.0)
    hq_hi, hq_lo = mul(h_hi, h_lo, q_hi, q_lo)
    r_hi, r_lo = div(hq_hi, hq_lo, E_hi, E_lo)
    r_error = (abs(h_hi) * q_error / E_hi
               + (h_relative + (MUL_ERROR + DIV_ERROR) * U2 + total_error) * abs(r_hi)) * grow
    kh_hi, kh_lo = mul(h_hi, h_lo, keep_hi, keep_lo)
    kh_error = (h_relative + MUL_ERROR * U2) * abs(kh_hi)
    if not (safe(h_hi) and product_in_domain(hq_hi, h_hi, q_hi)
            and product_in_domain(r_hi, hq_hi, hq_hi) and product_in_domain(kh_hi, h_hi, keep_hi)):
        return False, False
    x_ok, p_ok = True, True
    for c in range(C):
        f_hi, f_lo = mul(r_hi, r_lo, e_hi[c], e_lo[c])
        f_error = (abs(e_hi[c]) * r_error
                   + ((EXP_ERROR + MUL_ERROR) * U2 + exp_relative_error(difference)) * abs(f_hi))
        b_hi, b_lo = mul(h_hi, h_lo, u_hi[c], u_lo[c])
        b_error = abs(h_hi) * u_error[c] + (h_relative + MUL_ERROR * U2) * abs(b_hi)
        G_hi, G_lo = add(f_hi, f_lo, -b_hi, -b_lo)
        G_error = (f_error + b_error + ADD_ERROR * U2 * (abs(f_hi) + abs(b_hi))) * grow
        gx_hi[c], gx_lo[c] = G_hi, G_lo
        in_domain = (product_in_domain(f_hi, r_hi, e_hi[c])
                     and product_in_domain(b_hi, h_hi, u_hi[c]) and (G_hi == 0.0 or safe(G_hi)))
        if x_bounds:
            gx_error[c] = G_error if in_domain else np.inf
        x_ok = x_ok and in_domain and (
            (G_hi == 0.0 and G_lo == 0.0 and G_error == 0.0)
            or certified(G_hi, G_lo, G_error, estimate_ulps))
        n_hi, n_lo = add(-d_hi[c], -d_lo[c], y_hi, y_lo)  # both parts >= 0: no cancellation
        n_error = y_error + difference + ADD_ERROR * U2 * abs(n_hi)
        z_hi, z_lo = mul(n_hi, n_lo, w[c], 0.0)
        z_error = abs(w[c]) * n_error + MUL_ERROR * U2 * abs(z_hi)
        t_hi, t_lo = mul(z_hi, z_lo, kh_hi, kh_lo)
        t_error = (abs(kh_hi) * z_error + abs(z_hi) * kh_error + MUL_ERROR * U2 * abs(t_hi)) * grow
        gp_hi[c], gp_lo[c] = t_hi, t_lo
        in_domain = product_in_domain(z_hi, n_hi, w[c]) and product_in_domain(t_hi, z_hi, kh_hi)
        if p_bounds:
            gp_error[c] = t_error if in_domain else np.inf
        p_ok = p_ok and in_domain and (
            (t_hi == 0.0 and t_lo == 0.0 and t_error == 0.0)
            or certified(t_hi, t_lo, t_error, estimate_ulps))
        if weight_parts:
            o_hi, o_lo = mul(n_hi, n_lo, v_hi[c], v_lo[c])
            o_error = abs(v_hi[c]) * n_error + abs(n_hi) * v_error[c] + MUL_ERROR * U2 * abs(o_hi)
            gw_hi[c], gw_lo[c] = mul(o_hi, o_lo, h_hi, h_lo)
            gw_error[c] = (abs(h_hi) * o_error + (h_relative + MUL_ERROR * U2)
                           * abs(gw_hi[c])) * grow
            if not (product_in_domain(o_hi, n_hi, v_hi[c])
                    and product_in_domain(gw_hi[c], o_hi, h_hi)):
                gw_error[c] = np.inf
    return x_ok, p_ok


@compiled
def column_sums(hi, lo, error, out_hi, out_lo, out_error):
    """Per column j of the double-doubles hi + lo (n, C), each within ``error``: their sum into
    out_hi + out_lo and its absolute error bound into out_error: their errors, plus each of the
    n additions' ADD_ERROR u^2 of a partial sum, at most the sum of the magnitudes."""
    n, C = hi.shape
    magnitude = np.zeros(C)
    out_hi[:] = 0.0
    out_lo[:] = 0.0
    out_error[:] = 0.0
    for i in range(n):
        for j in range(C):
            out_hi[j], out_lo[j] = add(out_hi[j], out_lo[j], hi[i, j], lo[i, j])
            out_error[j] += error[i, j]
            magnitude[j] += abs(hi[i, j]) + abs(lo[i, j])
    for j in range(C):
        out_error[j] = (out_error[j] + n * ADD_ERROR * U2 * magnitude[j]) * (1 + 2.0 ** -30)


@compiled
def sum_with_error(hi, lo, error):
    """(sum of the double-doubles hi + lo, its absolute error bound) for values each known
    within ``error``: their errors, plus each addition's ADD_ERROR u^2 of a partial sum, at
    most the sum of the magnitudes."""
    s_hi, s_lo, total_error, magnitude = 0.0, 0.0, 0.0, 0.0
    for i in range(hi.size):
        s_hi, s_lo = add(s_hi, s_lo, hi[i], lo[i])
        total_error += error[i]
        magnitude += abs(hi[i]) + abs(lo[i])
    n = hi.size + 2
    return s_hi, s_lo, (total_error + n * ADD_ERROR * U2 * magnitude) * (1 + n * 2.0 ** -52)


@compiled
def sum_parts(parts, extra, extra_error, bound, out_hi, out_lo, out_error):
    """Elementwise sums of float64 arrays parts (P >= 1, n, m) and ``extra`` (n, m), or (1, m)
    added to every row, or (0, m): none (within ``extra_error`` (n, m) of its exact value,
    elementwise) as
    double-doubles into out_hi + out_lo, their absolute error bounds into out_error (n, m): the
    P + 1 additions err by ADD_FLOAT_ERROR u^2 of a partial sum each, at most the sum of the
    magnitudes, plus ``bound`` (n, m), the parts' own (``split_product``'s remainder)."""
    for i in range(parts.shape[1]):
        _sum_parts_row(parts, extra, extra_error, bound, i, out_hi[i], out_lo[i], out_error[i])


@inlined
def _sum_parts_row(parts, extra, extra_error, bound, i, hi, lo, error):
    """``sum_parts``'s row i into hi, lo, error (1-D)."""
    P, n, m = parts.shape
    first = parts[0, i]
    for j in range(m):  # error holds the magnitudes until the last loop
        hi[j], lo[j], error[j] = first[j], 0.0, abs(first[j])
    for p in range(1, P + (extra.shape[0] > 0)):  # ``extra`` of no rows: none to add
        row = parts[p, i] if p < P else extra[i] if extra.shape[0] == n else extra[0]
        for j in range(m):  # a row's elements innermost: independent chains, vectorised
            hi[j], lo[j] = add_float(hi[j], lo[j], row[j])
            error[j] += abs(row[j])
    for j in range(m):
        error[j] = ((P + 1) * ADD_FLOAT_ERROR * U2 * error[j] * (1 + 2.0 ** -40)
                    + bound[i, j] + extra_error[i, j])


@compiled
def dot_rows(x, wt, b, out_hi, out_lo, out_error):
    """The products x wt + b (x (n, D), wt (D, C) C-contiguous, b (C,), all below 2^450 in
    magnitude) as double-doubles into out_hi + out_lo (n, C), absolute error bounds into
    out_error: each term x_d w_dc exactly by TwoProduct, added by ``add`` (ADD_ERROR u^2 of a
    partial sum each, at most the sum of the magnitudes M = sum_d |x_d w_dc|), the bias by
    ``add_float``, M from float64 (within (D + 2) u of it); what underflows (a TwoProduct
    below 2^-969, an addition among subnormals: 2^-1070 or so each) covered by D 2^-1000.
    Ogita, Rump and Oishi's Dot2 in double-double, vectorised over the classes: for a few
    rows, far cheaper than splitting the weight for exact products."""
    n, D = x.shape
    C = wt.shape[1]
    for i in range(n):
        hi, lo, magnitude = out_hi[i], out_lo[i], out_error[i]
        hi[:], lo[:], magnitude[:] = 0.0, 0.0, 0.0
        for d in range(D):
            a = x[i, d]
            row = wt[d]
            for c in range(C):
                p, e = two_prod(a, row[c])
                hi[c], lo[c] = add(hi[c], lo[c], p, e)
                magnitude[c] += abs(p)
        for c in range(C):
            hi[c], lo[c] = add_float(hi[c], lo[c], b[c])
            magnitude[c] = ((D * ADD_ERROR + ADD_FLOAT_ERROR) * U2
                            * (magnitude[c] + abs(b[c])) * (1 + (D + 4) * 2 * U)
                            + D * 2.0 ** -1000)


@compiled
def ball_sum(a_mid, a_rad, b_mid, b_rad, out_mid, out_rad, unit, tiny):
    """``balls.Ball``'s addition of two float64 balls (2-D, one shape) that are not exact, in
    one pass: mid = a + b, rad = ((a_rad + b_rad) + unit |mid|) + tiny, the roundings of
    Ball's numpy expression in its order, so the same bits."""
    n, m = a_mid.shape
    for i in range(n):
        for j in range(m):
            total = a_mid[i, j] + b_mid[i, j]
            out_mid[i, j] = total
            out_rad[i, j] = ((a_rad[i, j] + b_rad[i, j]) + unit * abs(total)) + tiny


@compiled
def accumulate(hi, lo, error, add_hi, add_lo, add_error):
    """hi + lo += add_hi + add_lo elementwise (2-D arrays), error += add_error and the
    addition's own ADD_ERROR u^2 of the result."""
    n, m = hi.shape
    for i in range(n):
        for j in range(m):
            hi[i, j], lo[i, j] = add(hi[i, j], lo[i, j], add_hi[i, j], add_lo[i, j])
            error[i, j] = (error[i, j] + add_error[i, j]
                           + ADD_ERROR * U2 * abs(hi[i, j])) * (1 + 2.0 ** -50)


@compiled
def certify_elements(hi, lo, error, estimate_ulps, ok):
    """``certified`` elementwise (2-D arrays), exact zeros (0 with an error of 0) included."""
    n, m = hi.shape
    for i in range(n):
        for j in range(m):
            ok[i, j] = ((hi[i, j] == 0 and lo[i, j] == 0 and error[i, j] == 0)
                        or certified(hi[i, j], lo[i, j], error[i, j], estimate_ulps))


@compiled
def sqrt_dd(v_hi, v_lo):
    """sqrt of a double-double v > 0 (in the domain), within SQRT_ERROR u^2 of it relatively:
    one Newton step from libm's sqrt of hi (correctly rounded, IEEE): y0 (1 + d), |d| <= u,
    gives y0 + (v - y0^2) / (2 y0) within d^2 / 2 plus the step's own roundings (v - y0^2 by
    TwoProduct exactly but for its last addition, relative to v; the quotient's u relative to
    the correction, itself u of y)."""
    y0 = math.sqrt(v_hi)
    p, e = two_prod(y0, y0)
    residual = ((v_hi - p) - e) + v_lo
    return fast_two_sum(y0, residual / (2.0 * y0))


SQRT_ERROR = 16.0


ENTRY_SMALLEST = 2.0 ** -480  # a product of two nonzero entries stays above SMALLEST
ENTRY_LARGEST = 2.0 ** 485  # a sum of fewer than 2^10 products stays below LARGEST


@inlined
def _cosine_parts(u, v, eps):
    """For rows u, v (D,): P = u . v (an absolute bound), A = |u|^2 + eps, B = |v|^2 + eps and
    R = sqrt(A B) (a relative bound), as double-doubles, the sums' relative bound, and whether
    A, B and A B lie in the domain, and every nonzero entry within [ENTRY_SMALLEST,
    ENTRY_LARGEST] (D < 2^10), so that TwoProduct is exact on every pair (a subnormal entry
    of 2.8e-321 broke the products' bounds). P, A and B sum exact products (TwoProduct) in
    double-double: each within (D + 2) ADD_ERROR u^2 of the sum of the magnitudes |u_d v_d| (A
    and B of themselves, their terms nonnegative); R within (2 MUL + SQRT) u^2 plus half of A's
    and B's relative errors."""
    D = u.size
    p_hi, p_lo, a_hi, a_lo, b_hi, b_lo, p_mag = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    entries_in_range = D < 2 ** 10
    for d in range(D):
        for x in (u[d], v[d]):  # every product of two entries in the domain, or exactly 0
            if x != 0.0 and not ENTRY_SMALLEST <= abs(x) <= ENTRY_LARGEST:
                entries_in_range = False
        t_hi, t_lo = two_prod(u[d], v[d])
        p_hi, p_lo = add(p_hi, p_lo, t_hi, t_lo)
        p_mag += abs(t_hi)
        t_hi, t_lo = two_prod(u[d], u[d])
        a_hi, a_lo = add(a_hi, a_lo, t_hi, t_lo)
        t_hi, t_lo = two_prod(v[d], v[d])
        b_hi, b_lo = add(b_hi, b_lo, t_hi, t_lo)
    a_hi, a_lo = add_float(a_hi, a_lo, eps)
    b_hi, b_lo = add_float(b_hi, b_lo, eps)
    sums_error = ((D + 2) * ADD_ERROR + ADD_FLOAT_ERROR) * U2
    p_error = sums_error * p_mag * (1 + 2.0 ** -40)  # absolute
    ab_hi, ab_lo = mul(a_hi, a_lo, b_hi, b_lo)
    in_domain = entries_in_range and safe(a_hi) and safe(b_hi) and safe(ab_hi)
    r_hi, r_lo = sqrt_dd(ab_hi, ab_lo) if in_domain else (1.0, 0.0)
    r_error = ((2 * MUL_ERROR + SQRT_ERROR) * U2 + sums_error) * (1 + 2.0 ** -30)
    return (p_hi, p_lo, p_error, a_hi, a_lo, b_hi, b_lo, r_hi, r_lo, r_error, sums_error,
            in_domain)


@inlined
def _cosine_slope(x_other, x_self, q_hi, q_lo, q_abs, q_rel, r_hi, r_lo, r_error):
    """(x_other - q x_self) / R as (hi, lo, absolute error bound, whether its partial results
    lie in the domain), for q within q_rel of itself plus q_abs (P / A: P's absolute bound
    over A) and R within r_error of itself, relatively: cos's slope in one element of the row
    x_self (``_cosine_parts``). The difference, which cancels, is bounded relative to its
    terms' magnitudes; the quotient's rounding and R's error relative to the result."""
    m_hi, m_lo = mul(q_hi, q_lo, -x_self, 0.0)
    t_hi, t_lo = add_float(m_hi, m_lo, x_other)
    in_domain = product_in_domain(m_hi, q_hi, x_self) and (t_hi == 0.0 or safe(t_hi))
    y_hi, y_lo = div(t_hi, t_lo, r_hi, r_lo)
    magnitude = (abs(x_other) + abs(m_hi)) / abs(r_hi)
    error = ((q_rel + (MUL_ERROR + ADD_FLOAT_ERROR) * U2) * magnitude
             + q_abs * abs(x_self) / abs(r_hi)
             + (r_error + DIV_ERROR * U2) * (abs(y_hi) + magnitude)) * (1 + 2.0 ** -30)
    return y_hi, y_lo, error, in_domain


@compiled
def cosine_gradient_rows(x1, x2, scale, count, eps, estimate_ulps, out1_hi, out1_lo,
                         out2_hi, out2_lo, ok):
    """Per row i of x1, x2 (n, D), finite: d1 = s (x2 - (P / A) x1) / (R count) and d2 =
    s (x1 - (P / B) x2) / (R count) with P = x1 . x2, A = |x1|^2 + eps, B = |x2|^2 + eps,
    R = sqrt(A B), s = scale_i, as double-doubles, and ``ok[i]`` whether every element is
    ``certified``.

    P, A and B sum exact products (TwoProduct) in double-double: each within (D + 2)
    ADD_ERROR u^2 of the sum of the magnitudes |x1_d x2_d| (A and B of themselves, their terms
    nonnegative); R within (2 MUL + SQRT) u^2 plus half of A's and B's relative errors; an
    element's two terms can cancel, so its bound is relative to the sum of their magnitudes."""
    n, D = x1.shape
    for i in range(n):
        ok[i] = False
        (p_hi, p_lo, p_error, a_hi, a_lo, b_hi, b_lo, r_hi, r_lo, r_error, sums_error,
         in_domain) = _cosine_parts(x1[i], x2[i], eps)
        if not in_domain:
            continue
        qa_hi, qa_lo = div(p_hi, p_lo, a_hi, a_lo)
        qb_hi, qb_lo = div(p_hi, p_lo, b_hi, b_lo)
        # |P / A| within (DIV + sums) u^2 of itself plus P's absolute error over A
        q_rel = (DIV_ERROR * U2 + sums_error) * (1 + 2.0 ** -30)
        qa_abs = p_error / a_hi * (1 + 2.0 ** -40)
        qb_abs = p_error / b_hi * (1 + 2.0 ** -40)
        s = scale[i]
        row_ok = safe(r_hi) and math.isfinite(s)
        for d in range(D):
            for which in range(2):
                u_x, v_x = (x2[i, d], x1[i, d]) if which == 0 else (x1[i, d], x2[i, d])
                q_hi, q_lo, q_abs = (qa_hi, qa_lo, qa_abs) if which == 0 else (
                    qb_hi, qb_lo, qb_abs)
                t_hi, t_lo, error, in_domain = _cosine_slope(u_x, v_x, q_hi, q_lo, q_abs, q_rel,
                                                            r_hi, r_lo, r_error)
                row_ok = row_ok and in_domain
                zero = s == 0.0 or exactly_zero(t_hi, t_lo, error)
                t_hi, t_lo = mul(t_hi, t_lo, s, 0.0)
                if count != 1.0:
                    t_hi, t_lo = div(t_hi, t_lo, count, 0.0)
                error = (error * abs(s) / count
                         + (MUL_ERROR + DIV_ERROR) * U2 * abs(t_hi)) * (1 + 2.0 ** -30)
                if which == 0:
                    out1_hi[i, d], out1_lo[i, d] = t_hi, t_lo
                else:
                    out2_hi[i, d], out2_lo[i, d] = t_hi, t_lo
                if row_ok and not zero:
                    row_ok = certified(t_hi, t_lo, error, estimate_ulps)
        ok[i] = row_ok


DIFFERENCE_SMALLEST = 2.0 ** -470  # a nonzero difference's square stays above SMALLEST
DIFFERENCE_LARGEST = 2.0 ** 490  # a row's sum of squares stays below LARGEST (D < 2^10)


@compiled
def pairwise_distance_rows(u, v, eps, p, out_hi, out_lo, out_error):
    """Per row i of u, v (n, D), finite: ||u_i - v_i + eps||_p for p = 1 or 2 (torch's
    pairwise_distance) as a double-double into out_hi + out_lo, its relative error bound into
    out_error (0 for an exact zero; inf where the row leaves the domain: a nonzero difference
    outside DIFFERENCE_SMALLEST..DIFFERENCE_LARGEST, or a sum beyond LARGEST).

    Each difference by TwoSum, then eps by DWPlusFP: within ADD_FLOAT_ERROR u^2 of itself;
    for p = 2 its square within MUL_ERROR u^2 plus twice that, for p = 1 its magnitude
    exactly (a normalised double-double's sign is its hi's); the terms, nonnegative, in two
    interleaved sums, each partial sum at most the total, so each of the D + 1 additions errs
    by at most ADD_ERROR u^2 of it; for p = 2 the root within SQRT_ERROR u^2 plus half the
    sum's."""
    n, D = u.shape
    squares = p == 2.0
    term_error = MUL_ERROR + 2 * ADD_FLOAT_ERROR if squares else ADD_FLOAT_ERROR
    sum_error = (term_error + (D + 1) * ADD_ERROR) * U2
    for i in range(n):
        a0, a1, b0, b1 = 0.0, 0.0, 0.0, 0.0
        smallest, largest = np.inf, 0.0
        for d in range(D):
            t_hi, t_lo = difference(u[i, d], v[i, d], eps)
            magnitude = abs(t_hi)
            largest = max(largest, magnitude)
            smallest = min(smallest, magnitude if magnitude > 0 else np.inf)
            if squares:
                q_hi, q_lo = mul(t_hi, t_lo, t_hi, t_lo)
            else:
                q_hi, q_lo = (t_hi, t_lo) if t_hi >= 0 else (-t_hi, -t_lo)
            if d % 2 == 0:
                a0, a1 = add(a0, a1, q_hi, q_lo)
            else:
                b0, b1 = add(b0, b1, q_hi, q_lo)
        s_hi, s_lo = add(a0, a1, b0, b1)
        out_hi[i], out_lo[i], out_error[i] = 0.0, 0.0, 0.0
        if largest == 0.0:
            continue  # every difference exactly 0
        if not (DIFFERENCE_SMALLEST <= smallest and largest <= DIFFERENCE_LARGEST
                and safe(s_hi)):
            out_error[i] = np.inf
            continue
        if squares:
            out_hi[i], out_lo[i] = sqrt_dd(s_hi, s_lo)
            out_error[i] = (SQRT_ERROR * U2 + sum_error / 2) * (1 + 2.0 ** -30)
        else:
            out_hi[i], out_lo[i] = s_hi, s_lo
            out_error[i] = sum_error * (1 + 2.0 ** -30)


@inlined
def difference(a, b, eps):
    """a - b + eps as a double-double, within ADD_FLOAT_ERROR u^2 of it relatively."""
    t_hi, t_lo = two_sum(a, -b)
    return add_float(t_hi, t_lo, eps)


@inlined
def decided_sign(hi, lo, error):
    """The sign of the number within ``error`` of hi + lo, where that ball excludes 0; else 0."""
    if abs(hi) > (abs(lo) + error) * SLACK:
        return 1.0 if hi > 0 else -1.0
    return 0.0


@inlined
def absolute_error(hi, relative):
    """The absolute error bound of a double-double with this hi within ``relative`` of itself
    (inf for an infinite ``relative``, also at hi = 0)."""
    if not math.isfinite(relative):
        return np.inf
    return relative * abs(hi) * (1 + 2.0 ** -40)


@compiled
def triplet_hinge_rows(margin, d_hi, d_lo, d_error, swap, estimate_ulps, out_hi, out_lo,
                       out_error, ok, hinge, order):
    """Per row i: max(0, margin + d0 - d1'), d1' = min(d1, d2) under ``swap`` (else d1), from
    the distances d_k = d_hi[k, i] + d_lo[k, i] within d_error[k, i] of themselves relatively
    (``pairwise_distance_rows``), as a double-double into out_hi + out_lo, its absolute error
    bound into out_error, ``ok[i]`` whether it is ``certified`` (or exactly 0); ``hinge[i]``
    the sign of margin + d0 - d1' and ``order[i]`` that of d1 - d2 (0 where their balls
    cannot decide; the decisions of the gradient). min and max(0, .) are 1-Lipschitz: a
    computed value within e of the exact one stays within e through them, decided or not."""
    n = d_hi.shape[1]
    for i in range(n):
        out_hi[i], out_lo[i], out_error[i], ok[i], hinge[i], order[i] = (
            0.0, 0.0, np.inf, False, 0.0, 0.0)
        e0 = absolute_error(d_hi[0, i], d_error[0, i])
        m_hi, m_lo, e1 = d_hi[1, i], d_lo[1, i], absolute_error(d_hi[1, i], d_error[1, i])
        if swap:
            e2 = absolute_error(d_hi[2, i], d_error[2, i])
            g_hi, g_lo = add(m_hi, m_lo, -d_hi[2, i], -d_lo[2, i])
            order[i] = decided_sign(g_hi, g_lo, (e1 + e2 + ADD_ERROR * U2 * abs(g_hi))
                                    * (1 + 2.0 ** -40))
            if g_hi > 0:
                m_hi, m_lo = d_hi[2, i], d_lo[2, i]
            e1 = max(e1, e2)
        if not (math.isfinite(e0) and math.isfinite(e1)):
            order[i] = 0.0
            continue
        p_hi, p_lo = add_float(d_hi[0, i], d_lo[0, i], margin)
        h_hi, h_lo = add(p_hi, p_lo, -m_hi, -m_lo)
        error = (e0 + e1 + ADD_FLOAT_ERROR * U2 * abs(p_hi) + ADD_ERROR * U2 * abs(h_hi)) * (
            1 + 2.0 ** -30)
        hinge[i] = decided_sign(h_hi, h_lo, error)
        if hinge[i] < 0:
            out_error[i], ok[i] = 0.0, True  # exactly 0
        elif h_hi > 0:
            out_hi[i], out_lo[i], out_error[i] = h_hi, h_lo, error
            ok[i] = certified(h_hi, h_lo, error, estimate_ulps)
        else:
            out_error[i] = error  # max(0, h) = 0 within it


@inlined
def _scaled_sum(y_hi, y_lo, error, s, count):
    """(y s / count as a double-double, its absolute error bound) for a sum y of a gradient
    element's terms within ``error`` of them: that error scaled, plus the sum's, the
    product's and the quotient's roundings of the result."""
    y_hi, y_lo = mul(y_hi, y_lo, s, 0.0)
    if count != 1.0:
        y_hi, y_lo = div(y_hi, y_lo, count, 0.0)
    error = (error * abs(s) / count
             + (ADD_ERROR + MUL_ERROR + DIV_ERROR) * U2 * abs(y_hi)) * (1 + 2.0 ** -30)
    return y_hi, y_lo, error


@compiled
def triplet_gradient_rows(a, p, n, eps, norm, d_hi, d_lo, d_error, scale, take_neg,
                          take_swap, count, estimate_ulps, out_hi, out_lo, ok):
    """Per row i of a, p, n (rows, D), finite, with the distances of ``triplet_hinge_rows``
    (k = 0: (a, p), 1: (a, n), 2: (p, n)): the gradients s (w0 - t1 w1), s (-w0 - t2 w2) and
    s (t1 w1 + t2 w2) of the anchor, positive and negative, the slopes of the p-norm
    distances (``norm``: p = 1 or 2) w_k = (u - v + eps) / d_k for p = 2 (0 where d_k = 0:
    torch's slope at a zero distance), sign(u - v + eps) for p = 1 (0 at 0, torch's sign),
    s = scale_i / count, t1 = take_neg_i, t2 = take_swap_i (0, 1/2 or 1), as double-doubles
    into out_hi + out_lo (rows, D, 3), and ``ok[i]`` whether every element is ``certified``
    (or exactly 0).

    w_k within (ADD_FLOAT + DIV) u^2 plus d_k's relative error for p = 2, exact for p = 1; an
    element's two terms can cancel, so its bound is relative to the sum of their magnitudes,
    plus the addition's, the product's and the quotient's roundings of the result."""
    rows, D = a.shape
    w_hi, w_lo, w_error = np.empty(3), np.empty(3), np.empty(3)
    coefficient = np.empty((3, 3))  # [output, distance]
    for i in range(rows):
        ok[i] = False
        s = scale[i]
        if s == 0.0:
            out_hi[i], out_lo[i], ok[i] = 0.0, 0.0, True
            continue
        t1, t2 = take_neg[i], take_swap[i]
        coefficient[0, 0], coefficient[0, 1], coefficient[0, 2] = 1.0, -t1, 0.0
        coefficient[1, 0], coefficient[1, 1], coefficient[1, 2] = -1.0, 0.0, -t2
        coefficient[2, 0], coefficient[2, 1], coefficient[2, 2] = 0.0, t1, t2
        used = (True, t1 != 0.0, t2 != 0.0)
        row_ok = math.isfinite(s)
        for k in range(3):
            if used[k] and not math.isfinite(d_error[k, i]):
                row_ok = False
        if not row_ok:
            continue
        for d in range(D):
            for k in range(3):
                w_hi[k], w_lo[k], w_error[k] = 0.0, 0.0, 0.0
                if not used[k] or d_hi[k, i] == 0.0:
                    continue
                u, v = (a[i, d], p[i, d]) if k == 0 else (
                    (a[i, d], n[i, d]) if k == 1 else (p[i, d], n[i, d]))
                t_hi, t_lo = difference(u, v, eps)
                if norm == 1.0:
                    w_hi[k] = 1.0 if t_hi > 0 else (-1.0 if t_hi < 0 else 0.0)
                    continue
                w_hi[k], w_lo[k] = div(t_hi, t_lo, d_hi[k, i], d_lo[k, i])
                w_error[k] = (ADD_FLOAT_ERROR + DIV_ERROR) * U2 + d_error[k, i]
                if w_hi[k] != 0.0 and not safe(w_hi[k]):
                    row_ok = False
            for j in range(3):
                y_hi, y_lo, magnitude = 0.0, 0.0, 0.0
                for k in range(3):
                    c = coefficient[j, k]
                    if c != 0.0 and w_hi[k] != 0.0:
                        y_hi, y_lo = add(y_hi, y_lo, c * w_hi[k], c * w_lo[k])
                        magnitude += abs(c * w_hi[k]) * w_error[k]
                zero = exactly_zero(y_hi, y_lo, magnitude)  # s is not 0
                y_hi, y_lo, error = _scaled_sum(y_hi, y_lo, magnitude, s, count)
                out_hi[i, d, j], out_lo[i, d, j] = y_hi, y_lo
                if row_ok and not zero:
                    row_ok = certified(y_hi, y_lo, error, estimate_ulps)
        ok[i] = row_ok


# torch's cosine_similarity divides by max(|u|, 1e-8) max(|v|, 1e-8): a squared norm above
# twice (1e-8)^2 (its double-double's own error aside) keeps the clamp away; below, the row is left
COSINE_NORM_FLOOR = 2 * 1e-8 * 1e-8


@inlined
def _cosine_quotients(u, v):
    """For rows u, v (D,): (P / A, P / B as double-doubles, their absolute parts q_abs (P's
    absolute bound over A and B), their common relative bound, R = |u| |v|, its relative
    bound, P / R (cos) with its absolute bound, whether all lie in the domain) from
    ``_cosine_parts`` without eps: torch's cosine_similarity where neither norm is clamped
    (COSINE_NORM_FLOOR)."""
    (p_hi, p_lo, p_error, a_hi, a_lo, b_hi, b_lo, r_hi, r_lo, r_error, sums_error,
     in_domain) = _cosine_parts(u, v, 0.0)
    in_domain = (in_domain and safe(r_hi) and a_hi > COSINE_NORM_FLOOR
                 and b_hi > COSINE_NORM_FLOOR)
    if not in_domain:  # the quotients go unused: divisors of 1 (a zero row's norm is 0, and
        a_hi, a_lo, b_hi, b_lo, r_hi, r_lo = 1.0, 0.0, 1.0, 0.0, 1.0, 0.0  # numba raises)
    qa_hi, qa_lo = div(p_hi, p_lo, a_hi, a_lo)
    qb_hi, qb_lo = div(p_hi, p_lo, b_hi, b_lo)
    q_rel = (DIV_ERROR * U2 + sums_error) * (1 + 2.0 ** -30)
    qa_abs = p_error / a_hi * (1 + 2.0 ** -40)
    qb_abs = p_error / b_hi * (1 + 2.0 ** -40)
    c_hi, c_lo = div(p_hi, p_lo, r_hi, r_lo)
    c_error = (p_error / r_hi * (1 + 2.0 ** -40)
               + (DIV_ERROR * U2 + r_error) * abs(c_hi))
    return (qa_hi, qa_lo, qb_hi, qb_lo, qa_abs, qb_abs, q_rel, r_hi, r_lo, r_error, c_hi, c_lo,
            c_error, in_domain)


@compiled
def cosine_distance_rows(u, v, out_hi, out_lo, out_error):
    """Per row i of u, v (n, D), finite: 1 - cos(u_i, v_i), torch's cosine distance (1 -
    F.cosine_similarity), as a double-double into out_hi + out_lo, its relative error bound
    into out_error (inf where the row is left: outside the domain, a norm the clamp may reach
    (``_cosine_quotients``), or a distance whose ball holds 0). cos carries P's absolute bound
    over R and R's and the quotient's relative ones; 1 - cos, which cancels for nearly
    parallel rows, their absolute sum."""
    n = u.shape[0]
    for i in range(n):
        out_hi[i], out_lo[i], out_error[i] = 0.0, 0.0, np.inf
        parts = _cosine_quotients(u[i], v[i])
        c_hi, c_lo, c_error, in_domain = parts[10], parts[11], parts[12], parts[13]
        if not in_domain:
            continue
        d_hi, d_lo = add_float(-c_hi, -c_lo, 1.0)
        error = (c_error + ADD_FLOAT_ERROR * U2 * abs(d_hi)) * (1 + 2.0 ** -30)
        if not (safe(d_hi) and error < abs(d_hi)):
            continue
        out_hi[i], out_lo[i] = d_hi, d_lo
        out_error[i] = error / abs(d_hi) * (1 + 2.0 ** -40)


@compiled
def triplet_cosine_gradient_rows(a, p, n, scale, take_neg, take_swap, count, estimate_ulps,
                                 out_hi, out_lo, ok):
    """``triplet_gradient_rows`` under the cosine distance d(u, v) = 1 - P / R (P = u . v,
    R = |u| |v|, A = |u|^2, B = |v|^2), whose slopes are not opposite: d/du = -(v - (P / A) u)
    / R and d/dv = -(u - (P / B) v) / R, each element within ``_cosine_slope``'s bound. The
    anchor's gradient is s (d/da d(a, p) - t1 d/da d(a, n)), the positive's s (d/dp d(a, p) -
    t2 d/dp d(p, n)), the negative's -s (t1 d/dn d(a, n) + t2 d/dn d(p, n)); their sums,
    products and quotient add their roundings of the result. A row whose pair leaves the
    domain (``_cosine_quotients``) is left."""
    rows, D = a.shape
    q_hi, q_lo, q_abs = np.empty((3, 2)), np.empty((3, 2)), np.empty((3, 2))
    q_rel, r_hi, r_lo, r_error = np.empty(3), np.empty(3), np.empty(3), np.empty(3)
    # output j's two terms: coefficient (set per row), pair k and side (0: d/du, 1: d/dv)
    coefficient = np.empty((3, 2))
    pair = np.array([[0, 1], [0, 2], [1, 2]])
    side = np.array([[0, 0], [1, 0], [1, 1]])
    for i in range(rows):
        ok[i] = False
        s = scale[i]
        if s == 0.0:
            out_hi[i], out_lo[i], ok[i] = 0.0, 0.0, True
            continue
        t1, t2 = take_neg[i], take_swap[i]
        coefficient[0, 0], coefficient[0, 1] = 1.0, -t1
        coefficient[1, 0], coefficient[1, 1] = 1.0, -t2
        coefficient[2, 0], coefficient[2, 1] = -t1, -t2
        weight = (1.0, t1, t2)
        row_ok = math.isfinite(s)
        for k in range(3):
            if weight[k] == 0.0:
                continue
            u, v = (a[i], p[i]) if k == 0 else ((a[i], n[i]) if k == 1 else (p[i], n[i]))
            (q_hi[k, 0], q_lo[k, 0], q_hi[k, 1], q_lo[k, 1], q_abs[k, 0], q_abs[k, 1],
             q_rel[k], r_hi[k], r_lo[k], r_error[k], _, _, _, in_domain) = _cosine_quotients(u, v)
            row_ok = row_ok and in_domain
        if not row_ok:
            continue
        for d in range(D):
            x = (a[i, d], p[i, d], n[i, d])
            for j in range(3):
                y_hi, y_lo, error = 0.0, 0.0, 0.0
                for term in range(2):
                    c, k, which = coefficient[j, term], pair[j, term], side[j, term]
                    if c == 0.0:
                        continue
                    first, second = (x[0], x[1]) if k == 0 else (
                        (x[0], x[2]) if k == 1 else (x[1], x[2]))
                    x_other, x_self = (second, first) if which == 0 else (first, second)
                    h_hi, h_lo, h_error, in_domain = _cosine_slope(
                        x_other, x_self, q_hi[k, which], q_lo[k, which], q_abs[k, which],
                        q_rel[k], r_hi[k], r_lo[k], r_error[k])
                    row_ok = row_ok and in_domain
                    y_hi, y_lo = add(y_hi, y_lo, -c * h_hi, -c * h_lo)  # d = 1 - cos
                    error += abs(c) * h_error
                zero = exactly_zero(y_hi, y_lo, error)  # s is not 0
                y_hi, y_lo, error = _scaled_sum(y_hi, y_lo, error, s, count)
                out_hi[i, d, j], out_lo[i, d, j] = y_hi, y_lo
                if row_ok and not zero:
                    row_ok = certified(y_hi, y_lo, error, estimate_ulps)
        ok[i] = row_ok


HALF_LOG_2PI = (0.9189385332046728, -3.8782941580672414e-17)  # log(2 pi) / 2, within 2^-109


@inlined
def stirling(y, inverse, l1, l2, l3, table_hi, table_lo, powers):
    """(s = (y + 1/2) log y - y + log(2 pi) / 2 as a double-double, its absolute error bound)
    for 1 < y <= LOG_HIGHEST: torch's Stirling term of poisson_nll_loss (full). log y by
    ``log_dd``, y + 1/2 exact (TwoSum), the product's, the two additions' (each relative to
    its own result) and the constant's bounds added."""
    L_hi, L_lo, L_error = log_dd(y, 0.0, 0.0, inverse, l1, l2, l3, table_hi, table_lo, powers)
    b_hi, b_lo = two_sum(y, 0.5)
    a_hi, a_lo = mul(b_hi, b_lo, L_hi, L_lo)
    d_hi, d_lo = add_float(a_hi, a_lo, -y)
    s_hi, s_lo = add(d_hi, d_lo, HALF_LOG_2PI[0], HALF_LOG_2PI[1])
    error = (abs(b_hi) * L_error + MUL_ERROR * U2 * abs(a_hi) + ADD_FLOAT_ERROR * U2 * abs(d_hi)
             + U2 * HALF_LOG_2PI[0] + ADD_ERROR * U2 * abs(s_hi))
    return s_hi, s_lo, error * (1 + 2.0 ** -30)


@compiled
def exp_minus(x, y, times_x, full, g, count, estimate_ulps, inverse, l1, l2, l3, table_hi,
              table_lo, powers, out_hi, out_lo, out_error, ok):
    """Per element q of the 1-D arrays: g_q (exp(x_q) - y_q x_q) / count (``times_x``, else
    g_q (exp(x_q) - y_q) / count), with ``full`` (and times_x) plus the Stirling term
    (``stirling``) where y_q > 1, as a double-double into out_hi + out_lo, its absolute error
    bound into out_error (inf outside the domain: x outside EXP_LOWEST..EXP_HIGHEST, a product
    or result out of range), and ``ok[q]`` whether it is ``certified`` (``estimate_ulps`` > 0,
    else False: the caller takes the bounds for a total).

    The exponential within EXP_ERROR u^2 of itself, y x exact (TwoProduct), the difference,
    which can cancel, within ADD_ERROR u^2 of its result, the Stirling term's sum likewise,
    then g's product (MUL_ERROR u^2) and count's quotient (DIV_ERROR u^2): the exponential's
    and the sums' bounds are relative to them, the rest to the result."""
    n = x.size
    scratch, clamped = np.empty(n), np.empty(n)
    for q in range(n):  # ``exp`` outside its domain would index its tables out of bounds
        clamped[q] = min(max(x[q], EXP_LOWEST), EXP_HIGHEST) if math.isfinite(x[q]) else 0.0
    exp(clamped, np.zeros(n), out_hi, out_lo, scratch, inverse, l1, l2, l3, table_hi,
        table_lo, powers)
    for q in range(n):
        e_hi, e_lo, xq, yq = out_hi[q], out_lo[q], x[q], y[q]
        if times_x:
            p, e = two_prod(yq, xq)
            in_range = p == 0.0 and (yq == 0.0 or xq == 0.0) or safe(p)
        else:
            p, e, in_range = yq, 0.0, abs(yq) <= LARGEST
        t_hi, t_lo = add(e_hi, e_lo, -p, -e)
        sum_error = (EXP_ERROR * e_hi + ADD_ERROR * abs(t_hi)) * U2
        if times_x and full and yq > 1.0:
            in_range = in_range and yq <= LOG_HIGHEST
            s_hi, s_lo, s_error = stirling(min(yq, LOG_HIGHEST), inverse, l1, l2, l3,
                                           table_hi, table_lo, powers)
            t_hi, t_lo = add(t_hi, t_lo, s_hi, s_lo)
            sum_error += s_error + ADD_ERROR * U2 * abs(t_hi)
        difference = t_hi
        t_hi, t_lo = mul(t_hi, t_lo, g[q], 0.0)
        if count != 1.0:
            t_hi, t_lo = div(t_hi, t_lo, count, 0.0)
        error = (sum_error * abs(g[q]) / count
                 + (MUL_ERROR + DIV_ERROR) * U2 * abs(t_hi)) * (1 + 2.0 ** -30)
        out_hi[q], out_lo[q], out_error[q], ok[q] = t_hi, t_lo, error, False
        if not (EXP_LOWEST <= xq <= EXP_HIGHEST and in_range and math.isfinite(g[q])
                and product_in_domain(t_hi, difference, g[q])):
            out_error[q] = np.inf
        elif estimate_ulps > 0:
            ok[q] = certified(t_hi, t_lo, error, estimate_ulps)


@inlined
def upstream_times(v_hi, v_lo, error, g, count, estimate_ulps):
    """(hi, lo, absolute error bound, certified) of g v / count for a double-double v within
    ``error``: an exact 0 (a zero upstream gradient, or v exactly 0) certified, a result
    outside the domain left (an infinite bound), ``certified`` only where estimate_ulps > 0.
    Exactness is the factors': a product of nonzero ones that underflows to 0 is left."""
    if g == 0.0 or exactly_zero(v_hi, v_lo, error):
        return 0.0, 0.0, 0.0, True
    v_hi, v_lo = mul(v_hi, v_lo, g, 0.0)
    error = error * abs(g) + MUL_ERROR * U2 * abs(v_hi)
    if count != 1.0:
        v_hi, v_lo = div(v_hi, v_lo, count, 0.0)
        error = error / count + DIV_ERROR * U2 * abs(v_hi)
    error *= 1 + 2.0 ** -30
    if not safe(v_hi):
        return 0.0, 0.0, np.inf, False
    return v_hi, v_lo, error, estimate_ulps > 0 and certified(v_hi, v_lo, error, estimate_ulps)


@compiled
def poisson_target_slopes(x, y, full, g, count, estimate_ulps, inverse, l1, l2, l3, table_hi,
                          table_lo, powers, out_hi, out_lo, out_error, ok):
    """Per element q of the 1-D arrays: g_q times poisson_nll_loss's (log_input) slope in its
    target, -x_q, plus with ``full`` the Stirling term's log y_q + 1 / (2 y_q) where y_q > 1,
    over count, as a double-double into out_hi + out_lo, its absolute error bound into
    out_error (inf where the element is left: non-finite, outside the domain), and ``ok[q]``
    whether it is ``certified`` (or exactly 0). log y by ``log_dd``, 1 / (2 y) within
    DIV_ERROR u^2, their sum (both positive) and the sum with -x, which cancels where x is
    near log y, each within its operation's bound of its result."""
    for q in range(x.size):
        xq, yq, gq = x[q], y[q], g[q]
        out_hi[q], out_lo[q], out_error[q], ok[q] = 0.0, 0.0, np.inf, False
        if not (math.isfinite(xq) and math.isfinite(gq) and abs(xq) <= LARGEST / 4):
            continue
        v_hi, v_lo, error = -xq, 0.0, 0.0
        if full and yq > 1.0:
            if not yq <= LOG_HIGHEST:
                continue
            L_hi, L_lo, L_error = log_dd(yq, 0.0, 0.0, inverse, l1, l2, l3, table_hi,
                                         table_lo, powers)
            r_hi, r_lo = div(0.5, 0.0, yq, 0.0)
            s_hi, s_lo = add(L_hi, L_lo, r_hi, r_lo)
            v_hi, v_lo = add_float(s_hi, s_lo, -xq)
            error = (L_error + DIV_ERROR * U2 * r_hi + ADD_ERROR * U2 * abs(s_hi)
                     + ADD_FLOAT_ERROR * U2 * abs(v_hi))
        out_hi[q], out_lo[q], out_error[q], ok[q] = upstream_times(v_hi, v_lo, error, gq,
                                                                    count, estimate_ulps)


LOG_HIGHEST = 2.0 ** 900  # ``log_of_sum``'s domain: exp(-log x) stays within ``exp``'s
LOG_LOWEST = 2.0 ** -960  # SMALLEST, above exp(-EXP_HIGHEST)


@compiled
def kl_div_terms(x, t, log_target, what, g, count, estimate_ulps, inverse, l1, l2, l3,
                 table_hi, table_lo, powers, out_hi, out_lo, out_error, ok):
    """Per element q of the 1-D arrays, times g_q / count: kl_div's term (``what`` 0), its
    slope in the input (1) or in the target (2), as a double-double into out_hi + out_lo, its
    absolute error bound into out_error (inf where the element is left: non-finite, outside
    the domain), and ``ok[q]`` whether it is ``certified`` (estimate_ulps > 0, else False).

    Without log_target: t (log t - x), -t, log t + 1 - x, where log t (``log_dd``)
    carries an absolute bound and the sums, which cancel, one relative to their result; a zero
    target's term is exactly 0 (the specials' convention). With log_target: exp(t) (t - x),
    -exp(t), exp(t) (t - x + 1), t - x exact (TwoSum), exp(t) within EXP_ERROR u^2, and a
    -inf target's term exactly 0."""
    for q in range(x.size):
        xq, tq, gq = x[q], t[q], g[q]
        out_hi[q], out_lo[q], out_error[q], ok[q] = 0.0, 0.0, np.inf, False
        zero_target = tq == -np.inf if log_target else tq == 0.0
        if zero_target and what == 0:
            out_error[q], ok[q] = 0.0, True
            continue
        if not (math.isfinite(xq) and math.isfinite(gq) and abs(xq) <= LARGEST / 4):
            continue
        if log_target:
            if not EXP_LOWEST <= tq <= EXP_HIGHEST:
                continue
            f_hi, f_lo = exp_one(tq, 0.0, inverse, l1, l2, l3, table_hi, table_lo, powers)
            d_hi, d_lo = two_sum(tq, -xq)
            d_error = 0.0
            if what == 2:
                d_hi, d_lo = add_float(d_hi, d_lo, 1.0)
                d_error = ADD_FLOAT_ERROR * U2 * abs(d_hi)
            if what == 1:
                v_hi, v_lo = -f_hi, -f_lo
                error = EXP_ERROR * U2 * f_hi
            else:
                v_hi, v_lo = mul(f_hi, f_lo, d_hi, d_lo)
                error = (EXP_ERROR + MUL_ERROR) * U2 * abs(v_hi) + f_hi * d_error
        else:
            if not LOG_LOWEST <= tq <= LOG_HIGHEST:
                continue
            y_hi, y_lo, y_error = log_dd(tq, 0.0, 0.0, inverse, l1, l2, l3, table_hi,
                                         table_lo, powers)
            if what == 1:
                v_hi, v_lo, error = -tq, 0.0, 0.0
            elif what == 2:
                c_hi, c_lo = two_sum(1.0, -xq)
                v_hi, v_lo = add(y_hi, y_lo, c_hi, c_lo)
                error = y_error + ADD_ERROR * U2 * abs(v_hi)
            else:
                d_hi, d_lo = add_float(y_hi, y_lo, -xq)
                v_hi, v_lo = mul(d_hi, d_lo, tq, 0.0)
                error = ((y_error + ADD_FLOAT_ERROR * U2 * abs(d_hi)) * tq
                         + MUL_ERROR * U2 * abs(v_hi))
        out_hi[q], out_lo[q], out_error[q], ok[q] = upstream_times(v_hi, v_lo, error, gq,
                                                                    count, estimate_ulps)


CTC_FRAME_ERROR = 2 * ADD_ERROR + MUL_ERROR + EXP_ERROR + 1.0  # a step of either recursion


@inlined
def _scaled(hi, lo, k):
    """(hi, lo) times 2^k: exact while lo stays normal (a lo part of a value above SMALLEST
    that leaves the normal range loses below 2^-114 of the value)."""
    return math.ldexp(hi, k), math.ldexp(lo, k)


@inlined
def _rescale(a_hi, a_lo):
    """Scale the row a_hi + a_lo in place so that its largest hi lies in [0.5, 1); return the
    exponent taken out (0 for a row of zeros), and whether a nonzero value left the domain."""
    top = 0.0
    for s in range(a_hi.size):
        top = max(top, a_hi[s])
    if top == 0.0:
        return 0, False
    e = math.frexp(top)[1]
    lost = False
    for s in range(a_hi.size):
        a_hi[s], a_lo[s] = _scaled(a_hi[s], a_lo[s], -e)
        lost |= a_hi[s] != 0.0 and a_hi[s] < SMALLEST
    return e, lost


@inlined
def _product_lost(a, b, product):
    """Whether a product of nonzero nonnegative numbers left the domain (underflowed)."""
    return a != 0.0 and b != 0.0 and product < SMALLEST


@compiled
def _ctc_forward(lp, shift, skip, L, inverse, l1, l2, l3, table_hi, table_lo, powers, p_hi,
                 p_lo, a_hi, a_lo, a_exp):
    """One sample's probabilities p_t(s) = exp(lp - shift) (x exact by TwoSum) and forward
    values alpha_t = (stay + step + skip) p_t for t < L, rescaled after every frame (a_exp:
    the exponents taken out), into the arrays given (T, W); returns whether a value left the
    domain: an x below EXP_LOWEST, nan or +inf, a nonzero product or rescaled value below
    SMALLEST."""
    W = lp.shape[1]
    lost = False
    for t in range(L):
        for s in range(W):
            v = lp[t, s]
            if v == -np.inf:
                p_hi[t, s], p_lo[t, s] = 0.0, 0.0
                continue
            x_hi, x_lo = two_sum(v, -shift[t])
            if not (x_hi >= EXP_LOWEST and x_hi <= 0.0):  # nan, +inf, too deep
                lost = True
                x_hi, x_lo = 0.0, 0.0
            p_hi[t, s], p_lo[t, s] = exp_one(x_hi, x_lo, inverse, l1, l2, l3, table_hi,
                                             table_lo, powers)
    for t in range(L):
        for s in range(W):
            if t == 0:  # from the virtual frame before: one unit of mass in state 0
                s_hi, s_lo = (1.0, 0.0) if s <= 1 else (0.0, 0.0)
            else:
                s_hi, s_lo = a_hi[t - 1, s], a_lo[t - 1, s]
                if s >= 1:
                    s_hi, s_lo = add(s_hi, s_lo, a_hi[t - 1, s - 1], a_lo[t - 1, s - 1])
                if s >= 2 and skip[s]:
                    s_hi, s_lo = add(s_hi, s_lo, a_hi[t - 1, s - 2], a_lo[t - 1, s - 2])
            a_hi[t, s], a_lo[t, s] = mul(s_hi, s_lo, p_hi[t, s], p_lo[t, s])
            lost |= _product_lost(s_hi, p_hi[t, s], a_hi[t, s])
        a_exp[t], lost_here = _rescale(a_hi[t], a_lo[t])
        lost |= lost_here
    return lost


@compiled
def ctc_gradient_samples(lp, shift, skip, final, labels, lengths, upstream, divisors,
                         possible, estimate_ulps, inverse, l1, l2, l3, table_hi, table_lo,
                         powers, out_hi, out_lo, ok):
    """Per sample n: upstream_n / divisors_n times the occupancy of each class at each running
    frame, sum over the states s of that label of alpha_t(s) beta'_t(s) / P, as double-doubles
    into out_hi + out_lo (N, T, C; 0 at frames t >= L_in), and ``ok[n]`` whether every element
    is ``certified`` (or exactly 0). lp (N, T, W): each state's log-probability, shift (N, T)
    the frame's largest; skip, final (N, W): whether state s may be entered from s - 2, and
    may end a path; labels (N, W) each state's class.

    The recursions of ``sequence_fast`` in double-double: every quantity is a sum of products
    of nonnegative numbers, so each operation's error is relative and the bounds of one sample
    add up: each step of either recursion within CTC_FRAME_ERROR u^2 (two additions, a product,
    the exponential of an exact x = lp - shift), the occupancy one product and W additions, the
    total P L_in steps and an addition, the factor two quotients, the element a product. Values
    are rescaled by powers of two after every frame; a sample whose nonzero value leaves the
    domain (underflows), whose x lies below EXP_LOWEST, whose running log-probability is nan or
    +inf, that is impossible, or whose upstream gradient is not finite, is left (not ok)."""
    N, T, W = lp.shape
    C = out_hi.shape[2]
    p_hi, p_lo = np.empty((T, W)), np.empty((T, W))
    a_hi, a_lo = np.empty((T, W)), np.empty((T, W))
    b_hi, b_lo = np.empty((T, W)), np.empty((T, W))
    a_exp, b_exp = np.zeros(T, dtype=np.int64), np.zeros(T, dtype=np.int64)
    for n in range(N):
        out_hi[n], out_lo[n], ok[n] = 0.0, 0.0, False
        L = lengths[n]
        g = upstream[n]
        if not (possible[n] and math.isfinite(g) and math.isfinite(divisors[n])):
            continue
        if L == 0 or g == 0.0:
            ok[n] = True
            continue
        lost = _ctc_forward(lp[n], shift[n], skip[n], L, inverse, l1, l2, l3, table_hi,
                            table_lo, powers, p_hi, p_lo, a_hi, a_lo, a_exp)
        for s in range(W):  # backward: beta'_{t-1} = sum of p_t beta'_t over the successors
            b_hi[L - 1, s], b_lo[L - 1, s] = (1.0, 0.0) if final[n, s] else (0.0, 0.0)
        b_exp[L - 1] = 0
        for t in range(L - 1, 0, -1):
            for s in range(W):
                w_hi, w_lo = 0.0, 0.0
                for k in range(3):
                    r = s + k
                    if r >= W or (k == 2 and not skip[n, r]):
                        continue
                    q_hi, q_lo = mul(b_hi[t, r], b_lo[t, r], p_hi[t, r], p_lo[t, r])
                    lost |= _product_lost(b_hi[t, r], p_hi[t, r], q_hi)
                    w_hi, w_lo = add(w_hi, w_lo, q_hi, q_lo)
                b_hi[t - 1, s], b_lo[t - 1, s] = w_hi, w_lo
            b_exp[t - 1], lost_here = _rescale(b_hi[t - 1], b_lo[t - 1])
            lost |= lost_here
        total_hi, total_lo = 0.0, 0.0
        for s in range(W):
            if final[n, s]:
                total_hi, total_lo = add(total_hi, total_lo, a_hi[L - 1, s], a_lo[L - 1, s])
        if lost or total_hi == 0.0:
            continue
        f_hi, f_lo = div(g, 0.0, divisors[n], 0.0)
        f_hi, f_lo = div(f_hi, f_lo, total_hi, total_lo)
        # alpha_t's scale 2^(a_exp up to t), beta'_t's 2^(b_exp from t on), P's 2^(all a_exp)
        a_scale, b_scale = 0, 0
        for t in range(L):
            b_scale += b_exp[t]
        relative = ((3 * L * CTC_FRAME_ERROR + (W + 2) * ADD_ERROR + 2 * MUL_ERROR
                     + 2 * DIV_ERROR) * U2 * (1 + 2.0 ** -20))
        a_total = 0
        for t in range(L):
            a_total += a_exp[t]
        row_ok = True
        for t in range(L):
            a_scale += a_exp[t]
            for s in range(W):
                o_hi, o_lo = mul(a_hi[t, s], a_lo[t, s], b_hi[t, s], b_lo[t, s])
                row_ok &= not _product_lost(a_hi[t, s], b_hi[t, s], o_hi)
                c = labels[n, s]
                out_hi[n, t, c], out_lo[n, t, c] = add(out_hi[n, t, c], out_lo[n, t, c],
                                                       o_hi, o_lo)
            k = a_scale + b_scale - a_total
            b_scale -= b_exp[t]
            t_hi, t_lo = _scaled(f_hi, f_lo, k)
            for c in range(C):
                if out_hi[n, t, c] == 0.0:
                    continue  # no state of this class is occupied: exactly 0
                v_hi, v_lo = mul(out_hi[n, t, c], out_lo[n, t, c], t_hi, t_lo)
                out_hi[n, t, c], out_lo[n, t, c] = v_hi, v_lo
                row_ok &= certified(v_hi, v_lo, relative * abs(v_hi) * (1 + 2.0 ** -40),
                                    estimate_ulps)
        ok[n] = row_ok


@compiled
def log_dd(x_hi, x_lo, relative, inverse, l1, l2, l3, table_hi, table_lo, powers):
    """(log x as a double-double, its absolute error bound) for a double-double x in
    LOG_LOWEST..LOG_HIGHEST known within ``relative`` of itself: log1p's series of x - 1
    (exact but for its last addition, by TwoSum) within SERIES_BELOW of 1, where Newton's
    absolute bound would be too wide for log x, else one Newton step (``log_of_sum``); x's own
    error adds at most ``relative`` (1 + relative) to log x's."""
    if abs(x_hi - 1.0) < SERIES_BELOW:
        s_hi, s_lo = two_sum(x_hi - 1.0, x_lo)
        y_hi, y_lo = log1p_series(s_hi, s_lo)
        error = LOG1P_SERIES_ERROR * U2 * abs(y_hi) + relative * (1 + relative)
        return y_hi, y_lo, error * (1 + 2.0 ** -40)
    return log_of_sum(x_hi, x_lo, relative, inverse, l1, l2, l3, table_hi, table_lo, powers)


@compiled
def ctc_loss_samples(lp, shift, skip, final, lengths, possible, divisors, estimate_ulps,
                     inverse, l1, l2, l3, table_hi, table_lo, powers, out_hi, out_lo, out_error,
                     ok):
    """Per sample n: -log P / divisors_n (``ctc_gradient_samples``' arguments) as a
    double-double into
    out_hi + out_lo, its absolute error bound into out_error (inf where the sample is left),
    and ``ok[n]`` whether it is ``certified`` (estimate_ulps > 0, else False). An impossible
    sample's is 0 here (its infinity is the caller's).

    P = P' 2^A e^S: P' the rescaled forward values' sum over the final states (within L_in
    CTC_FRAME_ERROR u^2 and an addition, relatively), A the exponents the rescaling took out,
    S the frames' shifts; -log P = -(log P' + A ln 2 + S), the three summed in double-double
    with absolute bounds (they can cancel)."""
    N, T, W = lp.shape
    p_hi, p_lo = np.empty((T, W)), np.empty((T, W))
    a_hi, a_lo = np.empty((T, W)), np.empty((T, W))
    a_exp = np.zeros(T, dtype=np.int64)
    for n in range(N):
        out_hi[n], out_lo[n], out_error[n], ok[n] = 0.0, 0.0, np.inf, False
        L = lengths[n]
        if not possible[n] or L == 0:  # an impossible sample, or the empty path (P = 1)
            out_error[n], ok[n] = 0.0, True
            continue
        if _ctc_forward(lp[n], shift[n], skip[n], L, inverse, l1, l2, l3, table_hi, table_lo,
                        powers, p_hi, p_lo, a_hi, a_lo, a_exp):
            continue
        total_hi, total_lo = 0.0, 0.0
        for s in range(W):
            if final[n, s]:
                total_hi, total_lo = add(total_hi, total_lo, a_hi[L - 1, s], a_lo[L - 1, s])
        if not (LOG_LOWEST <= total_hi <= LOG_HIGHEST):
            continue
        relative = (L * CTC_FRAME_ERROR + ADD_ERROR) * U2 * (1 + 2.0 ** -20)
        y_hi, y_lo, error = log_dd(total_hi, total_lo, relative, inverse, l1, l2, l3,
                                   table_hi, table_lo, powers)
        exponent, shifts_hi, shifts_lo, magnitude = 0, 0.0, 0.0, 0.0
        for t in range(L):
            exponent += a_exp[t]
            shifts_hi, shifts_lo = add_float(shifts_hi, shifts_lo, shift[n, t])
            magnitude += abs(shift[n, t])
        error += (L + 1) * ADD_FLOAT_ERROR * U2 * magnitude  # each addition's, below the sum
        e_hi, e_lo = mul(LN2_HI, LN2_LO, float(exponent), 0.0)
        error += (MUL_ERROR + 1) * U2 * abs(e_hi)  # the product's and ln 2's own
        y_hi, y_lo = add(y_hi, y_lo, e_hi, e_lo)
        error += ADD_ERROR * U2 * abs(y_hi)
        y_hi, y_lo = add(y_hi, y_lo, shifts_hi, shifts_lo)
        error = (error + ADD_ERROR * U2 * abs(y_hi)) * (1 + 2.0 ** -30)
        if not (math.isfinite(y_hi) and (y_hi == 0.0 or safe(y_hi))):
            continue
        if divisors[n] != 1.0:
            y_hi, y_lo = div(y_hi, y_lo, divisors[n], 0.0)
            error = error / divisors[n] + DIV_ERROR * U2 * abs(y_hi) * (1 + 2.0 ** -30)
        out_hi[n], out_lo[n], out_error[n] = -y_hi, -y_lo, error
        if estimate_ulps > 0:
            ok[n] = certified(-y_hi, -y_lo, error, estimate_ulps)


LOGISTIC_LARGEST = -EXP_LOWEST  # |x| beyond it: exp(-|x|) leaves the domain


@inlined
def _times_factors(r_hi, r_lo, error, w, g, count, estimate_ulps):
    """(r w g / count as hi, lo, its absolute error bound for r within ``error``, whether it is
    ``certified``): the elementwise kernels' weight, upstream gradient and divisor; the bound
    inf where the result, or a partial product, leaves the domain (below it, a product's
    relative bound fails: r = -8.25 times w = 2.2e-311 is subnormal, however normal the
    result after g = 5.6e20)."""
    r_hi, r_lo = mul(r_hi, r_lo, w, 0.0)
    if not safe(r_hi):
        return 0.0, 0.0, np.inf, False
    r_hi, r_lo = mul(r_hi, r_lo, g, 0.0)
    error = error * abs(w * g) * (1 + 2.0 ** -50) + 2 * MUL_ERROR * U2 * abs(r_hi)
    if count != 1.0:
        r_hi, r_lo = div(r_hi, r_lo, count, 0.0)
        error = error / count + DIV_ERROR * U2 * abs(r_hi)
    error *= 1 + 2.0 ** -30
    if not (math.isfinite(error) and safe(r_hi)):
        return 0.0, 0.0, np.inf, False
    return r_hi, r_lo, error, estimate_ulps > 0 and certified(r_hi, r_lo, error, estimate_ulps)


@compiled
def logistic_terms(x, y, q, w, g, count, what, estimate_ulps, inverse, l1, l2, l3, table_hi,
                   table_lo, powers, out_hi, out_lo, out_error, ok):
    """Per element of the 1-D arrays, times w g / count: (1 - y) softplus(x) + q y softplus(-x)
    (``what`` 0: the logistic loss, torch's binary_cross_entropy_with_logits with pos_weight
    q), (1 - y) sigmoid(x) - q y sigmoid(-x) (1: its slope in x) or (q - 1) softplus(-x) - x
    (2: its slope in y; -x, exact, for q = 1), as a double-double into out_hi + out_lo, its
    absolute error bound into out_error (inf where the element is left: |x| beyond
    LOGISTIC_LARGEST but for -x, a non-finite or huge argument), and ``ok`` whether it is
    ``certified`` (estimate_ulps > 0, else False).

    From e = exp(-|x|) (EXP_ERROR u^2): softplus(+-x) = max(+-x, 0) + log1p(e), log1p(e) by its
    series below SERIES_BELOW (relative), else ``log_dd`` of 1 + e (absolute, log1p(e) above
    2^-11); sigmoid(|x|) = 1 / (1 + e), sigmoid(-|x|) = e / (1 + e). 1 - y (TwoSum) and q y
    (TwoProduct) are exact; the two products and their sum carry a bound relative to their
    magnitudes (they cancel in the slope, and for y outside [0, 1] in the loss). In y's slope
    q - 1 is exact (TwoSum), and its product with softplus(-x) minus x, which cancels at its
    root, carries an absolute bound."""
    for i in range(x.size):
        xi, yi, qi = x[i], y[i], q[i]
        out_hi[i], out_lo[i], out_error[i], ok[i] = 0.0, 0.0, np.inf, False
        factor = w[i] * g[i]
        exact = what == 2 and qi == 1.0
        if not ((abs(xi) <= LOGISTIC_LARGEST or exact and abs(xi) <= 2.0 ** 400)
                and abs(yi) <= 2.0 ** 400 and abs(qi) <= 2.0 ** 400 and math.isfinite(factor)
                and abs(w[i]) <= 2.0 ** 400 and abs(g[i]) <= 2.0 ** 400):
            continue
        if exact:
            r_hi, r_lo, error = -xi, 0.0, 0.0
        elif what == 2:
            _, _, _, v_hi, v_lo, v_error = _softplus_pair(xi, inverse, l1, l2, l3, table_hi,
                                                         table_lo, powers)
            a_hi, a_lo = two_sum(qi, -1.0)
            t_hi, t_lo = mul(a_hi, a_lo, v_hi, v_lo)
            r_hi, r_lo = add_float(t_hi, t_lo, -xi)
            error = (abs(a_hi) * v_error + MUL_ERROR * U2 * abs(t_hi)
                     + ADD_FLOAT_ERROR * U2 * abs(r_hi)) * (1 + 2.0 ** -40)
        else:
            r_hi, r_lo, error = _logistic(xi, yi, qi, what, inverse, l1, l2, l3, table_hi,
                                          table_lo, powers)
        if r_hi == 0.0 and r_lo == 0.0 and error == 0.0 or w[i] == 0.0 or g[i] == 0.0:
            out_error[i], ok[i] = 0.0, True  # a factor exactly 0 (a product may underflow)
            continue
        out_hi[i], out_lo[i], out_error[i], ok[i] = _times_factors(
            r_hi, r_lo, error, w[i], g[i], count, estimate_ulps)


@inlined
def _softplus_pair(xi, inverse, l1, l2, l3, table_hi, table_lo, powers):
    """(softplus(x), softplus(-x)) of one |x| <= LOGISTIC_LARGEST, each as hi, lo and an
    absolute error bound: max(+-x, 0) + log1p(e), e = exp(-|x|), log1p(e) by its series below
    SERIES_BELOW (relative), else ``log_dd`` of 1 + e."""
    e_hi, e_lo = exp_one(-abs(xi), 0.0, inverse, l1, l2, l3, table_hi, table_lo, powers)
    if e_hi < SERIES_BELOW:
        l_hi, l_lo = log1p_series(e_hi, e_lo)
        l_error = (LOG1P_SERIES_ERROR + EXP_ERROR) * U2 * l_hi
    else:
        d_hi, d_lo = add_float(e_hi, e_lo, 1.0)
        l_hi, l_lo, l_error = log_dd(d_hi, d_lo, (EXP_ERROR + ADD_FLOAT_ERROR) * U2,
                                     inverse, l1, l2, l3, table_hi, table_lo, powers)
    u_hi, u_lo = add_float(l_hi, l_lo, max(xi, 0.0))  # softplus(x)
    v_hi, v_lo = add_float(l_hi, l_lo, max(-xi, 0.0))  # softplus(-x)
    return (u_hi, u_lo, l_error + ADD_FLOAT_ERROR * U2 * u_hi, v_hi, v_lo,
            l_error + ADD_FLOAT_ERROR * U2 * v_hi)


@inlined
def _logistic(xi, yi, qi, what, inverse, l1, l2, l3, table_hi, table_lo, powers):
    """``logistic_terms``' loss (what 0) or slope (1) of one element: (hi, lo, absolute error
    bound), the bound inf where q y leaves the domain."""
    a_hi, a_lo = two_sum(1.0, -yi)
    b_hi, b_lo = two_prod(qi, yi)
    if b_hi != 0.0 and not safe(b_hi):
        return 0.0, 0.0, np.inf
    if what == 0:
        u_hi, u_lo, u_error, v_hi, v_lo, v_error = _softplus_pair(
            xi, inverse, l1, l2, l3, table_hi, table_lo, powers)
        sign = 1.0
    else:
        e_hi, e_lo = exp_one(-abs(xi), 0.0, inverse, l1, l2, l3, table_hi, table_lo, powers)
        d_hi, d_lo = add_float(e_hi, e_lo, 1.0)
        d_error = (EXP_ERROR + ADD_FLOAT_ERROR) * U2  # relative, e's below 1 + e's
        big_hi, big_lo = div(1.0, 0.0, d_hi, d_lo)
        small_hi, small_lo = div(e_hi, e_lo, d_hi, d_lo)
        big_error = (DIV_ERROR * U2 + d_error) * big_hi
        small_error = (DIV_ERROR * U2 + d_error + EXP_ERROR * U2) * small_hi
        if xi >= 0:
            u_hi, u_lo, u_error, v_hi, v_lo, v_error = (big_hi, big_lo, big_error, small_hi,
                                                        small_lo, small_error)
        else:
            u_hi, u_lo, u_error, v_hi, v_lo, v_error = (small_hi, small_lo, small_error,
                                                        big_hi, big_lo, big_error)
        sign = -1.0
    t_hi, t_lo = mul(a_hi, a_lo, u_hi, u_lo)
    s_hi, s_lo = mul(b_hi, b_lo, v_hi, v_lo)
    r_hi, r_lo = add(t_hi, t_lo, sign * s_hi, sign * s_lo)
    error = (abs(a_hi) * u_error + abs(b_hi) * v_error
             + MUL_ERROR * U2 * (abs(t_hi) + abs(s_hi)) + ADD_ERROR * U2 * abs(r_hi))
    return r_hi, r_lo, error * (1 + 2.0 ** -40)  # |a| and |b| for their double-doubles


@compiled
def row_sums(hi, lo, error, out_hi, out_lo, out_error):
    """Each row's sum of the double-doubles hi + lo (n, m) within ``error`` each
    (``sum_with_error`` per row)."""
    for i in range(hi.shape[0]):
        out_hi[i], out_lo[i], out_error[i] = sum_with_error(hi[i], lo[i], error[i])


@compiled
def bce_slopes(p, y, clamp, w, g, count, epsilon, what, estimate_ulps, inverse, l1, l2, l3,
               table_hi, table_lo, powers, out_hi, out_lo, out_error, ok):
    """Per element of the 1-D arrays, times w g / count: binary_cross_entropy's slope in its
    input, (p - y) / D with D = p (1 - p), or ``epsilon`` where ``clamp`` (``what`` 1), or in
    its target, log(1 - p) - log p (2), as a double-double into out_hi + out_lo, its absolute
    error bound into out_error (inf where the element is left: p outside (LOG_LOWEST, 1), a
    non-finite or huge argument), and ``ok`` whether it is ``certified`` (estimate_ulps > 0).

    p - y and 1 - p are exact (TwoSum), p (1 - p) within MUL_ERROR u^2, so the input's slope
    has a relative bound; the logs (``log_dd``: 1 - p near 1 by log1p's series of the exact
    -p) carry absolute ones, and their difference, which cancels near p = 1/2, their sum."""
    for i in range(p.size):
        pi, yi = p[i], y[i]
        out_hi[i], out_lo[i], out_error[i], ok[i] = 0.0, 0.0, np.inf, False
        if not (LOG_LOWEST <= pi < 1.0 and abs(yi) <= 2.0 ** 400 and math.isfinite(w[i] * g[i])
                and abs(w[i]) <= 2.0 ** 400 and abs(g[i]) <= 2.0 ** 400):
            continue
        if w[i] == 0.0 or g[i] == 0.0:
            out_error[i], ok[i] = 0.0, True  # a factor exactly 0
            continue
        q_hi, q_lo = two_sum(1.0, -pi)
        if what == 1:
            n_hi, n_lo = two_sum(pi, -yi)
            if clamp[i]:
                d_hi, d_lo, relative = epsilon, 0.0, 0.0
            else:
                d_hi, d_lo = mul(q_hi, q_lo, pi, 0.0)
                relative = MUL_ERROR * U2
            r_hi, r_lo = div(n_hi, n_lo, d_hi, d_lo)
            error = (relative + DIV_ERROR * U2) * abs(r_hi)
        else:
            a_hi, a_lo, a_error = log_dd(q_hi, q_lo, 0.0, inverse, l1, l2, l3, table_hi,
                                         table_lo, powers)
            b_hi, b_lo, b_error = log_dd(pi, 0.0, 0.0, inverse, l1, l2, l3, table_hi, table_lo,
                                         powers)
            r_hi, r_lo = add(a_hi, a_lo, -b_hi, -b_lo)
            error = a_error + b_error + ADD_ERROR * U2 * abs(r_hi)
        if r_hi == 0.0 and r_lo == 0.0 and error == 0.0:
            out_error[i], ok[i] = 0.0, True  # p = y: exactly 0 (before a product underflows)
            continue
        out_hi[i], out_lo[i], out_error[i], ok[i] = _times_factors(
            r_hi, r_lo, error, w[i], g[i], count, estimate_ulps)


@compiled
def bce_losses(p, y, w, clamp_below, log_clamp, estimate_ulps, inverse, l1, l2, l3, table_hi,
               table_lo, powers, out_hi, out_lo, out_error, ok):
    """Per element of the 1-D arrays: binary_cross_entropy's loss -w (y L(p) + (1 - y) L(1 -
    p)), L(v) = log v but ``log_clamp`` for p <= ``clamp_below`` (L(p)) and for p = 1 (L(1 -
    p)): the exact decisions, the caller's constants), as a double-double into out_hi + out_lo,
    its absolute error bound into out_error (inf where the element is left: p outside [0, 1],
    a non-finite or huge y or w), and ``ok`` whether it is ``certified`` (estimate_ulps > 0).

    1 - p and 1 - y are exact (TwoSum); the logs (``log_dd``: 1 - p near 1 by log1p's series
    of the exact -p) carry absolute bounds, scaled by |y| and |1 - y|; the two products and
    their sum add MUL_ERROR and ADD_ERROR u^2 of their magnitudes (for y in [0, 1] the two
    products share a sign: no cancellation). An exactly zero loss (p = y at 0 or 1) is exact."""
    for i in range(p.size):
        pi, yi = p[i], y[i]
        out_hi[i], out_lo[i], out_error[i], ok[i] = 0.0, 0.0, np.inf, False
        if not (0.0 <= pi <= 1.0 and abs(yi) <= 2.0 ** 400 and abs(w[i]) <= 2.0 ** 400):
            continue
        if w[i] == 0.0:
            out_error[i], ok[i] = 0.0, True  # a factor exactly 0
            continue
        a_hi, a_lo, a_error = log_clamp, 0.0, 0.0
        if pi > clamp_below:
            a_hi, a_lo, a_error = log_dd(pi, 0.0, 0.0, inverse, l1, l2, l3, table_hi, table_lo,
                                         powers)
        b_hi, b_lo, b_error = log_clamp, 0.0, 0.0
        if pi < 1.0:
            q_hi, q_lo = two_sum(1.0, -pi)
            b_hi, b_lo, b_error = log_dd(q_hi, q_lo, 0.0, inverse, l1, l2, l3, table_hi,
                                         table_lo, powers)
        v_hi, v_lo = two_sum(1.0, -yi)
        a_hi, a_lo = mul(a_hi, a_lo, yi, 0.0)
        b_hi, b_lo = mul(b_hi, b_lo, v_hi, v_lo)
        r_hi, r_lo = add(a_hi, a_lo, b_hi, b_lo)
        magnitude = abs(a_hi) + abs(b_hi)
        error = (abs(yi) * a_error + abs(v_hi) * b_error
                 + (MUL_ERROR + ADD_ERROR) * U2 * magnitude) * (1 + 2.0 ** -40)
        if r_hi == 0.0 and r_lo == 0.0 and error == 0.0:
            out_error[i], ok[i] = 0.0, True  # exactly 0 (before a product underflows)
            continue
        out_hi[i], out_lo[i], out_error[i], ok[i] = _times_factors(
            -r_hi, -r_lo, error, w[i], 1.0, 1.0, estimate_ulps)


@compiled
def scaled_differences(u, v, f, g, count, estimate_ulps, out_hi, out_lo, out_error, ok):
    """Per element of the 1-D arrays: (u - v) f g / count as a double-double into out_hi +
    out_lo, its absolute error bound into out_error (inf where the element is left: a
    non-finite or huge argument, a result out of the domain), and ``ok`` whether it is
    ``certified``. u - v is exact (TwoSum), so the bound is relative (two products and a
    quotient): a gradient whose slope is a difference of inputs, or a sign. u - v alone
    (f = g = count = 1) is exact, and certified as its own rounding, ties included."""
    for i in range(u.size):
        out_hi[i], out_lo[i], out_error[i], ok[i] = 0.0, 0.0, np.inf, False
        if not (abs(u[i]) <= 2.0 ** 400 and abs(v[i]) <= 2.0 ** 400):
            continue
        d_hi, d_lo = two_sum(u[i], -v[i])
        if d_hi == 0.0 or f[i] == 0.0 or g[i] == 0.0:
            if math.isfinite(f[i] * g[i]):
                out_error[i], ok[i] = 0.0, True  # a factor exactly 0
            continue
        if not (math.isfinite(f[i] * g[i]) and abs(f[i]) <= 2.0 ** 400
                and abs(g[i]) <= 2.0 ** 400):
            continue
        if f[i] == 1.0 and g[i] == 1.0 and count == 1.0 and safe(d_hi):
            # u - v itself: TwoSum's hi is its rounding to nearest, a tie of float64 included
            out_hi[i], out_lo[i], out_error[i], ok[i] = d_hi, d_lo, 0.0, True
            continue
        out_hi[i], out_lo[i], out_error[i], ok[i] = _times_factors(
            d_hi, d_lo, 0.0, f[i], g[i], count, estimate_ulps)


@inlined
def three_sum(a, b, c):
    """(hi, lo, exact): a + b + c as the double-double hi + lo, hi its rounding to nearest,
    where ``exact`` (two TwoSums' errors add exactly: all but numbers some 53 binades apart);
    where not, hi + lo is within |the dropped rest| of it."""
    s, e = two_sum(b, c)
    s, e2 = two_sum(a, s)
    f, rest = two_sum(e2, e)
    hi, lo = two_sum(s, f)
    return hi, lo, rest == 0.0


@compiled
def squared_hinge_slopes(x, x_label, active, m, f, g, count, estimate_ulps, out_hi, out_lo,
                         ok, row_hi, row_lo, row_ok):
    """multi_margin_loss's slopes for p = 2, per row i of x (n, C): 2 f_i g_i h_ij / count at
    each active hinge h_ij = m - x_label_i + x_ij (``active`` 1; 0 elsewhere, exactly) into
    out_hi + out_lo (n, C), and the target's, -2 f_i g_i (sum_j h_ij) / count, into row_hi +
    row_lo (n,); ``ok`` and ``row_ok`` where ``certified`` (exact zeros included). Each hinge
    is exact (``three_sum``; a row with one that is not is left), so each slope carries the
    factors' relative bounds alone (``_times_factors``); the active hinges, positive, sum
    within C ADD_ERROR u^2 of their sum."""
    n, C = x.shape
    for i in range(n):
        row_hi[i], row_lo[i], row_ok[i] = 0.0, 0.0, False
        zero_factor = f[i] == 0.0 or g[i] == 0.0  # not f g == 0: that product may underflow
        inside = (abs(x_label[i]) <= 2.0 ** 400 and abs(m) <= 2.0 ** 400
                  and abs(f[i]) <= 2.0 ** 400 and abs(g[i]) <= 2.0 ** 400
                  and math.isfinite(f[i] * g[i]))
        s_hi, s_lo, every = 0.0, 0.0, inside
        for j in range(C):
            out_hi[i, j], out_lo[i, j], ok[i, j] = 0.0, 0.0, False
            if active[i, j] == 0.0 or zero_factor:
                ok[i, j] = inside and abs(x[i, j]) <= 2.0 ** 400  # exactly 0
                continue
            h_hi, h_lo, exact = three_sum(m, -x_label[i], x[i, j])
            if not (inside and exact and abs(x[i, j]) <= 2.0 ** 400 and safe(h_hi)):
                every = False
                continue
            out_hi[i, j], out_lo[i, j], _, ok[i, j] = _times_factors(
                2.0 * h_hi, 2.0 * h_lo, 0.0, f[i], g[i], count, estimate_ulps)
            s_hi, s_lo = add(s_hi, s_lo, h_hi, h_lo)
        if not every:
            continue
        if s_hi == 0.0 or zero_factor:
            row_ok[i] = True  # no active hinge, or a factor exactly 0
            continue
        error = C * ADD_ERROR * U2 * s_hi * 2.0 * (1 + 2.0 ** -40)
        row_hi[i], row_lo[i], _, row_ok[i] = _times_factors(
            -2.0 * s_hi, -2.0 * s_lo, error, f[i], g[i], count, estimate_ulps)


@compiled
def ranking_terms(x1, x2, y, m, estimate_ulps, out_hi, out_lo, out_error, ok):
    """Per element of the 1-D arrays: margin_ranking_loss's term max(0, m - y (x1 - x2)) as a
    double-double into out_hi + out_lo, its absolute error bound into out_error (inf where the
    element is left: its sign undecided, a non-finite or huge argument), and ``ok`` whether it
    is ``certified`` (estimate_ulps > 0).

    For y = +-1 the term is a sum of three numbers, m + y x2 - y x1, taken exactly where two
    TwoSums' errors add exactly (all but inputs some 53 binades apart): its sign is then
    decided exactly, and the sum, whose hi is its rounding to nearest, certified as its own
    rounding, ties of float64 included (m = 0: a difference of two inputs, often a tie). For
    other y, y (x1 - x2) carries MUL_ERROR and m minus it ADD_FLOAT_ERROR u^2 relative bounds;
    a sign within them is left."""
    for i in range(x1.size):
        out_hi[i], out_lo[i], out_error[i], ok[i] = 0.0, 0.0, np.inf, False
        yi = y[i]
        if not (abs(x1[i]) <= 2.0 ** 400 and abs(x2[i]) <= 2.0 ** 400 and abs(yi) <= 2.0 ** 400
                and abs(m) <= 2.0 ** 400):
            continue
        if yi == 1.0 or yi == -1.0:
            t_hi, t_lo, exact = three_sum(m, yi * x2[i], -(yi * x1[i]))
            if not exact:
                continue  # not a double-double
            if t_hi <= 0.0:
                out_error[i], ok[i] = 0.0, True  # inactive: exactly 0
            elif safe(t_hi):
                out_hi[i], out_lo[i], out_error[i], ok[i] = t_hi, t_lo, 0.0, True
            continue
        d_hi, d_lo = two_sum(x1[i], -x2[i])
        if d_hi == 0.0 or yi == 0.0:  # y (x1 - x2) exactly 0: the term max(0, m), exact
            out_hi[i], out_error[i], ok[i] = max(m, 0.0), 0.0, True
            continue
        p_hi, p_lo = mul(d_hi, d_lo, yi, 0.0)
        t_hi, t_lo = add_float(-p_hi, -p_lo, m)
        error = (MUL_ERROR * U2 * abs(p_hi) + ADD_FLOAT_ERROR * U2 * abs(t_hi)) * (1 + 2.0 ** -40)
        if abs(t_hi) <= error or not (t_hi < 0.0 or safe(t_hi)) or not safe(p_hi):
            continue  # the sign undecided, or the term below the domain
        if t_hi < 0.0:
            out_error[i], ok[i] = 0.0, True
            continue
        out_hi[i], out_lo[i], out_error[i] = t_hi, t_lo, error
        ok[i] = estimate_ulps > 0 and certified(t_hi, t_lo, error, estimate_ulps)


@compiled
def weighted_mean_slopes(t_hi, t_lo, t_error, a_hi, a_lo, a_error, w_hi, w_lo, g,
                         estimate_ulps, out_hi, out_lo, out_error, ok):
    """Per element of the 1-D arrays: g (t W - A) / W^2, the slope of a weighted mean A / W
    (A = sum w t, W = sum w) in the weight of a term t (within t_error of t_hi + t_lo); A
    within a_error of a_hi + a_lo, W within u^2 of w_hi + w_lo (``exact_divisor``): as a
    double-double into out_hi + out_lo, its absolute error bound into out_error (inf where
    the element is left), and ``ok`` whether it is ``certified`` (estimate_ulps > 0).

    t W carries W's error, t's and the product's; t W - A, which cancels where t is the
    mean, an absolute bound; the quotient by W^2 (W's error twice, the square's and the
    quotient's) a relative one. Exactly 0 where t W = A exactly (every term the mean)."""
    W2_hi, W2_lo = mul(w_hi, w_lo, w_hi, w_lo)
    if not (safe(w_hi) and safe(W2_hi) and math.isfinite(a_error)
            and (a_hi == 0.0 or safe(a_hi))):
        for i in range(t_hi.size):
            out_hi[i], out_lo[i], out_error[i], ok[i] = 0.0, 0.0, np.inf, False
        return
    for i in range(t_hi.size):
        out_hi[i], out_lo[i], out_error[i], ok[i] = 0.0, 0.0, np.inf, False
        if not (math.isfinite(t_error[i]) and abs(g[i]) <= 2.0 ** 400):
            continue
        if g[i] == 0.0:
            out_error[i], ok[i] = 0.0, True  # a factor exactly 0
            continue
        p_hi, p_lo = mul(t_hi[i], t_lo[i], w_hi, w_lo)
        if not product_in_domain(p_hi, t_hi[i], w_hi):
            continue
        p_error = t_error[i] * abs(w_hi) * (1 + 2.0 ** -50) + (MUL_ERROR + 1) * U2 * abs(p_hi)
        d_hi, d_lo = add(p_hi, p_lo, -a_hi, -a_lo)
        error = p_error + a_error + ADD_ERROR * U2 * abs(d_hi)
        if d_hi == 0.0 and d_lo == 0.0 and error == 0.0:
            out_error[i], ok[i] = 0.0, True  # t W = A exactly
            continue
        if not safe(d_hi):
            continue
        q_hi, q_lo = div(d_hi, d_lo, W2_hi, W2_lo)
        error = (error / W2_hi * (1 + 2.0 ** -50)
                 + (DIV_ERROR + MUL_ERROR + 3) * U2 * abs(q_hi)) * (1 + 2.0 ** -40)
        out_hi[i], out_lo[i], out_error[i], ok[i] = _times_factors(
            q_hi, q_lo, error, 1.0, g[i], 1.0, estimate_ulps)


POINTWISE_KINDS = {"l1_loss": 0, "mse_loss": 1, "huber_loss": 2, "smooth_l1_loss": 3}


@compiled
def pointwise_terms(x, y, w, g, kind, k, slope, divisor_hi, divisor_lo, estimate_ulps, out_hi,
                    out_lo, out_error, ok):
    """Per element of the 1-D arrays, times w g / D (D = divisor_hi + divisor_lo within u^2 of
    the exact divisor): a pointwise loss's term t(z) of z = x - y, or where ``slope`` its
    derivative (``POINTWISE_KINDS``: l1 |z| and sign(z), 0 at 0 as torch's; mse z^2 and 2 z;
    huber with delta k 0.5 z^2 and z below the kink |z| < k, else k (|z| - k / 2) and k
    sign(z); smooth_l1 with beta k > 0 0.5 z^2 / k and z / k, else |z| - k / 2 and sign(z)),
    as a double-double into out_hi + out_lo, its absolute error bound into out_error (inf
    where the element is left: non-finite, huge, or outside the domain), and ``ok`` whether it
    is ``certified`` (or exactly 0).

    z is exact (TwoSum), so the branch is decided exactly and every bound is relative: the
    square's product, huber's and smooth_l1's linear sum with -k / 2 (exact halving), the
    product by k or quotient by k, then w's and g's products (unless 1) and D's quotient
    (unless 1). An exact result (|z|, a sign, 2 z, z, times 1) is certified as its own
    rounding, a tie of float64 included: TwoSum's hi is the difference rounded to nearest."""
    for i in range(x.size):
        out_hi[i], out_lo[i], out_error[i], ok[i] = 0.0, 0.0, np.inf, False
        xi, yi, wi, gi = x[i], y[i], w[i], g[i]
        if not (abs(xi) <= 2.0 ** 400 and abs(yi) <= 2.0 ** 400 and abs(wi) <= 2.0 ** 400
                and abs(gi) <= 2.0 ** 400):
            continue  # non-finite or huge: the engine's
        z_hi, z_lo = two_sum(xi, -yi)
        if z_hi == 0.0 or wi == 0.0 or gi == 0.0:
            out_error[i], ok[i] = 0.0, True  # every term and slope is 0 at z = 0
            continue
        sign = 1.0 if z_hi > 0 else -1.0
        a_hi, a_lo = sign * z_hi, sign * z_lo  # |z|, exact
        quadratic = kind == 1 or (kind >= 2 and (a_hi < k or (a_hi == k and a_lo < 0.0)))
        relative = 0.0  # of r, in u^2
        if slope:
            if kind == 0 or (kind == 3 and not quadratic):
                r_hi, r_lo = sign, 0.0
            elif kind == 1:
                r_hi, r_lo = 2.0 * z_hi, 2.0 * z_lo
            elif kind == 2:
                r_hi, r_lo = (z_hi, z_lo) if quadratic else (k * sign, 0.0)
            else:
                r_hi, r_lo = div(z_hi, z_lo, k, 0.0)
                relative = DIV_ERROR
        elif kind == 0:
            r_hi, r_lo = a_hi, a_lo
        elif quadratic:
            r_hi, r_lo = mul(z_hi, z_lo, z_hi, z_lo)
            relative = MUL_ERROR
            if kind >= 2:
                r_hi, r_lo = 0.5 * r_hi, 0.5 * r_lo
            if kind == 3:
                r_hi, r_lo = div(r_hi, r_lo, k, 0.0)
                relative += DIV_ERROR
        else:
            r_hi, r_lo = add_float(a_hi, a_lo, -0.5 * k)
            relative = ADD_FLOAT_ERROR
            if kind == 2:
                r_hi, r_lo = mul(r_hi, r_lo, k, 0.0)
                relative += MUL_ERROR
        in_domain = safe(r_hi)
        for factor in (wi, gi):  # a factor 1 keeps an exact value exact
            if factor != 1.0:
                r_hi, r_lo = mul(r_hi, r_lo, factor, 0.0)
                relative += MUL_ERROR
                in_domain = in_domain and safe(r_hi)  # a partial product's bound needs it
        if not in_domain:
            continue
        if not (divisor_hi == 1.0 and divisor_lo == 0.0):
            r_hi, r_lo = div(r_hi, r_lo, divisor_hi, divisor_lo)
            relative += DIV_ERROR + 1.0
        if not safe(r_hi):
            continue
        error = relative * U2 * abs(r_hi) * (1 + 2.0 ** -30)
        out_hi[i], out_lo[i], out_error[i] = r_hi, r_lo, error
        # an exact value (TwoSum's, a sign, 2 z): hi is its rounding to nearest, ties to even
        ok[i] = error == 0.0 or (estimate_ulps > 0 and certified(r_hi, r_lo, error,
                                                                  estimate_ulps))


@compiled
def multilabel_margin_rows(x, labels, counted, out_hi, out_lo, out_error, active_count):
    """Per row n of x (N, C), its listed labels (N, K; any class where a pair is not counted)
    and the counted pairs (N, K, C): the sum of max(0, 1 - x_j + x_i) over the counted pairs
    (j = labels[n, k]) as a double-double into out_hi + out_lo, its absolute error bound into
    out_error (inf where a value is not finite or huge), and into active_count (N, C) +1 at
    class i and -1 at label j for each pair whose hinge is positive (the gradient's counts; a
    hinge at exactly 0 is off, torch's side).

    1 - x_j is exact (TwoSum) and adding x_i (DWPlusFP) errs by at most ADD_FLOAT_ERROR u^2 of
    the hinge, so its sign is exact; the positive hinges, summed, err by at most ADD_ERROR u^2
    of the row's sum per addition."""
    N, K, C = counted.shape
    for n in range(N):
        active_count[n] = 0.0
        out_hi[n], out_lo[n], out_error[n] = 0.0, 0.0, np.inf
        in_range = True
        for c in range(C):
            in_range &= abs(x[n, c]) <= 2.0 ** 500
        if not in_range:
            continue
        s_hi, s_lo, pairs = 0.0, 0.0, 0
        for k in range(K):
            j = labels[n, k]
            a_hi, a_lo = two_sum(1.0, -x[n, j])
            for c in range(C):
                if not counted[n, k, c]:
                    continue
                h_hi, h_lo = add_float(a_hi, a_lo, x[n, c])
                if h_hi > 0.0:
                    s_hi, s_lo = add(s_hi, s_lo, h_hi, h_lo)
                    pairs += 1
                    active_count[n, c] += 1.0
                    active_count[n, j] -= 1.0
        out_hi[n], out_lo[n] = s_hi, s_lo
        out_error[n] = (ADD_FLOAT_ERROR + (pairs + 1) * ADD_ERROR) * U2 * s_hi * (1 + 2.0 ** -30)


@compiled
def cosine_loss_rows(x1, x2, y, margin, eps, estimate_ulps, out_hi, out_lo, out_error, ok,
                     hinge):
    """Per row i of x1, x2 (n, D), finite: cosine_embedding_loss's 1 - cos (y = 1) or
    max(0, cos - margin) (y = -1; 0 for another y), cos = P / R (``_cosine_parts``), as a
    double-double into out_hi + out_lo, its absolute error bound into out_error, ``ok[i]``
    whether it is ``certified`` (or exactly 0), and ``hinge[i]`` the sign of cos - margin
    where its ball excludes 0 (else 0: the row is left, the engine's balls decide it). cos
    carries P's absolute bound over R and R's and the quotient's relative ones."""
    n, D = x1.shape
    for i in range(n):
        out_hi[i], out_lo[i], out_error[i], ok[i], hinge[i] = 0.0, 0.0, np.inf, False, 0.0
        (p_hi, p_lo, p_error, a_hi, a_lo, b_hi, b_lo, r_hi, r_lo, r_error, sums_error,
         in_domain) = _cosine_parts(x1[i], x2[i], eps)
        if not (in_domain and safe(r_hi)):
            continue
        c_hi, c_lo = div(p_hi, p_lo, r_hi, r_lo)
        c_error = (p_error / r_hi * (1 + 2.0 ** -40)
                   + (DIV_ERROR * U2 + r_error) * abs(c_hi))
        h_hi, h_lo = add_float(c_hi, c_lo, -margin)
        h_error = (c_error + ADD_FLOAT_ERROR * U2 * abs(h_hi)) * (1 + 2.0 ** -40)
        hinge[i] = decided_sign(h_hi, h_lo, h_error)
        if y[i] == 1.0:
            v_hi, v_lo = add_float(-c_hi, -c_lo, 1.0)
            error = (c_error + ADD_FLOAT_ERROR * U2 * abs(v_hi)) * (1 + 2.0 ** -30)
        elif y[i] == -1.0 and hinge[i] > 0:
            v_hi, v_lo, error = h_hi, h_lo, h_error * (1 + 2.0 ** -30)
        elif y[i] == -1.0 and hinge[i] == 0:
            continue  # at the kink: the engine's balls decide, then evaluate
        else:
            out_error[i], ok[i] = 0.0, True  # an inactive hinge, or another y: exactly 0
            continue
        if v_hi == 0.0 and v_lo == 0.0:
            continue
        out_hi[i], out_lo[i], out_error[i] = v_hi, v_lo, error
        ok[i] = certified(v_hi, v_lo, error, estimate_ulps)


@compiled
def gaussian_terms(x, y, v, g, count, what, full, estimate_ulps, inverse, l1, l2, l3, table_hi,
                   table_lo, powers, out_hi, out_lo, out_error, ok):
    """Per element of the 1-D arrays, times g / count: gaussian_nll_loss's term, (log v + (x -
    y)^2 / v) / 2, plus log(2 pi) / 2 where ``full`` (``what`` 0), its slope in its input,
    (x - y) / v (1), or in its variance, (1 - (x - y)^2 / v) / (2 v) (2), v the clamped
    variance, as a double-double into out_hi + out_lo, its absolute error bound into
    out_error (inf where the element is left), and ``ok`` whether it is ``certified``. The
    last arguments before the outputs: ``exp_constants()`` (the term's log).

    x - y is exact (TwoSum); (x - y)^2 / v carries MUL and DIV relative bounds, and 1 minus
    it, which cancels near (x - y)^2 = v, an absolute one; so does log v (``log_dd``), which
    cancels against (x - y)^2 / v for v below 1, and log(2 pi) (within u^2 of itself)."""
    for i in range(x.size):
        out_hi[i], out_lo[i], out_error[i], ok[i] = 0.0, 0.0, np.inf, False
        if not (abs(x[i]) <= 2.0 ** 400 and abs(y[i]) <= 2.0 ** 400 and math.isfinite(g[i])
                and abs(g[i]) <= 2.0 ** 400 and 2.0 ** -400 <= v[i] <= 2.0 ** 400):
            continue
        r_hi, r_lo = two_sum(x[i], -y[i])
        if what == 1:
            if r_hi == 0.0 or g[i] == 0.0:
                out_error[i], ok[i] = 0.0, True  # exactly 0
                continue
            q_hi, q_lo = div(r_hi, r_lo, v[i], 0.0)
            if not (safe(r_hi) and safe(q_hi)):
                continue  # x - y or (x - y) / v below the domain: the quotient's bound fails
            error = DIV_ERROR * U2 * abs(q_hi)
            scale = 1.0
        else:
            if g[i] == 0.0:
                out_error[i], ok[i] = 0.0, True
                continue
            s_hi, s_lo = mul(r_hi, r_lo, r_hi, r_lo)
            s_hi, s_lo = div(s_hi, s_lo, v[i], 0.0)
            if r_hi != 0.0 and not (abs(r_hi) <= 2.0 ** 200 and safe(r_hi) and safe(s_hi)):
                continue  # the square or the quotient beyond the domain: their bounds fail
            s_error = (MUL_ERROR + DIV_ERROR) * U2 * s_hi
            scale = 0.5  # exact
            if what == 0:
                l_hi, l_lo, l_error = log_dd(v[i], 0.0, 0.0, inverse, l1, l2, l3, table_hi,
                                             table_lo, powers)
                q_hi, q_lo = add(l_hi, l_lo, s_hi, s_lo)
                error = l_error + s_error + ADD_ERROR * U2 * (abs(l_hi) + s_hi)
                if full:
                    c_hi, c_lo = 2 * HALF_LOG_2PI[0], 2 * HALF_LOG_2PI[1]  # log(2 pi)
                    error += ADD_ERROR * U2 * (abs(q_hi) + c_hi) + U2 * c_hi
                    q_hi, q_lo = add(q_hi, q_lo, c_hi, c_lo)
                error *= 1 + 2.0 ** -40
            else:
                d_hi, d_lo = add_float(-s_hi, -s_lo, 1.0)
                d_error = s_error + ADD_FLOAT_ERROR * U2 * abs(d_hi)
                q_hi, q_lo = div(d_hi, d_lo, v[i], 0.0)
                error = d_error / v[i] * (1 + 2.0 ** -50) + DIV_ERROR * U2 * abs(q_hi)
        if q_hi == 0.0 and q_lo == 0.0 and error == 0.0:
            out_error[i], ok[i] = 0.0, True
            continue
        out_hi[i], out_lo[i], out_error[i], ok[i] = _times_factors(
            q_hi, q_lo, error, scale, g[i], count, estimate_ulps)
