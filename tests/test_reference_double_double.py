"""The double-double tier of cross_entropy's float64 gradient (loss_reference/double_double.py,
loss_reference/classification_fast.py).

The arithmetic is checked against exact rationals (Fraction) and mpmath at 300 bits: the
error-free transformations are exact (a fused multiply-add or a reassociation in the compiled
code would break them), every operation is within its documented bound, and the exponential
within EXP_ERROR u^2 over its whole domain, with a lo part. The tier is checked against an
mpmath oracle of the gradient written without cancellation: every element it certifies is the
correctly rounded exact value, and the rows it cannot judge are left to the engine.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mpmath import mp, mpf

from loss_reference import classification as cl
from loss_reference import classification_fast as fast
from loss_reference import engine
from loss_reference.compiled_kernels import certified_total, certify_narrower
from loss_reference.formats import FORMATS
from test_reference import correctly_round, to_format

njit = pytest.importorskip("numba", reason="numba is not installed").njit
dd = pytest.importorskip("loss_reference.double_double")
FLOAT64 = FORMATS["float64"]
U2 = Fraction(2) ** -106
finite = st.floats(-1e30, 1e30, allow_nan=False, allow_infinity=False).filter(
    lambda v: v == 0 or 1e-200 < abs(v))


def _pairs(values):
    return np.array(values, dtype=np.float64)


def _compiled(function, arity):
    """A loop over arrays of a compiled scalar operation of ``arity`` floats."""
    if arity == 2:
        @njit
        def run(a, b, out_hi, out_lo):
            for i in range(a.size):
                out_hi[i], out_lo[i] = function(a[i], b[i])
    else:
        @njit
        def run(a, b, c, d, out_hi, out_lo):
            for i in range(a.size):
                out_hi[i], out_lo[i] = function(a[i], b[i], c[i], d[i])
    return run


TWO_SUM, TWO_PROD = _compiled(dd.two_sum, 2), _compiled(dd.two_prod, 2)
ADD, MUL, DIV = _compiled(dd.add, 4), _compiled(dd.mul, 4), _compiled(dd.div, 4)


def _apply(run, *arrays):
    out = np.empty(len(arrays[0])), np.empty(len(arrays[0]))
    run(*[_pairs(a) for a in arrays], *out)
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=20))
def test_two_sum_and_two_prod_are_exact(pairs):
    a, b = zip(*pairs)
    s, e = _apply(TWO_SUM, a, b)
    p, f = _apply(TWO_PROD, a, b)
    for i in range(len(a)):
        assert Fraction(s[i]) + Fraction(e[i]) == Fraction(a[i]) + Fraction(b[i])
        product = Fraction(a[i]) * Fraction(b[i])
        if product == 0 or abs(product) > dd.SMALLEST:  # the domain: no underflow
            assert Fraction(p[i]) + Fraction(f[i]) == Fraction(a[i]) * Fraction(b[i])


def _double_double(draw_value):
    """(hi, lo) normalised: hi = fl(hi + lo)."""
    hi, fraction = draw_value
    return hi, float(np.spacing(hi)) * fraction / 2 if hi else 0.0


moderate = st.floats(1e-100, 1e100).flatmap(lambda v: st.sampled_from([v, -v]))
words = st.tuples(moderate, st.floats(-1, 1)).map(_double_double)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(words, words), min_size=1, max_size=10))
def test_add_mul_div_are_within_their_bounds(pairs):
    (ah, al), (bh, bl) = zip(*[p[0] for p in pairs]), zip(*[p[1] for p in pairs])
    exact_a = [Fraction(h) + Fraction(lo) for h, lo in zip(ah, al)]
    exact_b = [Fraction(h) + Fraction(lo) for h, lo in zip(bh, bl)]
    for run, exact, bound in ((ADD, lambda x, y: x + y, dd.ADD_ERROR),
                              (MUL, lambda x, y: x * y, dd.MUL_ERROR),
                              (DIV, lambda x, y: x / y, dd.DIV_ERROR)):
        hi, lo = _apply(run, ah, al, bh, bl)
        for i in range(len(ah)):
            want = exact(exact_a[i], exact_b[i])
            got = Fraction(hi[i]) + Fraction(lo[i])
            assert abs(got - want) <= bound * U2 * abs(want), run
            assert hi[i] == float(got)  # normalised: hi is the sum rounded


def _exp(d_hi, d_lo, kernel):
    d_hi, d_lo = _pairs(d_hi), _pairs(d_lo)
    out_hi, out_lo, scratch = np.empty_like(d_hi), np.empty_like(d_hi), np.empty_like(d_hi)
    kernel(d_hi, d_lo, out_hi, out_lo, scratch, *dd.exp_constants())
    return out_hi, out_lo


exponents = st.one_of(st.floats(dd.EXP_LOWEST, 1.0), st.floats(-1e-3, 1e-3),
                      st.floats(-1e-300, 0.0), st.floats(1.0, dd.EXP_HIGHEST),
                      st.sampled_from([0.0, dd.EXP_LOWEST, 1.0, dd.EXP_HIGHEST]))
# each exponential with its bound, in u^2, and the largest error measured on a spread
EXPONENTIALS = {"exp": (dd.exp, dd.EXP_ERROR, 16.0),
                "quick_exp": (dd.quick_exp, dd.QUICK_EXP_ERROR, 2.0 ** 36)}


@pytest.mark.parametrize("name", EXPONENTIALS)
@settings(max_examples=100, deadline=None)
@given(draws=st.lists(st.tuples(exponents, st.floats(-1, 1)), min_size=1, max_size=30))
def test_exp_is_within_its_bound_with_a_lo_part(name, draws):
    """The lo part counts: dropping it (or rounding it into r) errs by up to 2^-97 at -650,
    2^-44 for quick_exp. The results are normalised (hi = fl(hi + lo)), as ``lane_sum``
    needs."""
    kernel, bound, _ = EXPONENTIALS[name]
    d_hi = [h for h, _ in draws]
    d_lo = [float(np.spacing(h)) * f / 2 if h else 0.0 for h, f in draws]
    hi, lo = _exp(d_hi, d_lo, kernel)
    with mp.workprec(300):
        for i in range(len(d_hi)):
            want = mp.exp(mpf(d_hi[i]) + mpf(d_lo[i]))
            got = mpf(hi[i]) + mpf(lo[i])
            assert abs(got - want) <= bound * mpf(2) ** -106 * want
            assert hi[i] == hi[i] + lo[i]
    assert (hi[np.array(d_hi) == 0] == 1).all()


@pytest.mark.parametrize("name", EXPONENTIALS)
def test_exp_is_far_inside_its_bound(name):
    """The chains' bounds are generous, not loose by accident: on a spread of arguments the
    largest error is a few u^2 for exp (measured 3.4; bound 256), 2^-71.2 for quick_exp (its
    analysis 2^-69.0; bound 2^-68)."""
    kernel, _, measured = EXPONENTIALS[name]
    d = np.linspace(dd.EXP_LOWEST, dd.EXP_HIGHEST, 4001)
    lo = np.spacing(d) * np.sin(np.arange(d.size)) / 2
    hi, low = _exp(d, lo, kernel)
    with mp.workprec(300):
        worst = max(abs((mpf(hi[i]) + mpf(low[i])) / mp.exp(mpf(d[i]) + mpf(lo[i])) - 1)
                    for i in range(d.size))
    assert worst < measured * mpf(2) ** -106


@njit
def _lane_sum(hi, lo):
    return dd.lane_sum(hi, lo)


terms = st.tuples(st.floats(0, 1e30).filter(lambda v: v == 0 or v > 1e-290),
                  st.floats(-1, 1)).map(_double_double)


@settings(max_examples=200, deadline=None)
@given(st.lists(terms, max_size=300), st.integers(0, 60))
def test_lane_sum_is_within_its_bound(draws, repeats):
    """Any count (the lanes' remainder included), magnitudes over 300 decades, and a long run
    of equal terms, where each lane's float64 sum of errors grows most."""
    draws = draws + draws[:1] * repeats * 50
    hi, lo = _pairs([h for h, _ in draws]), _pairs([v for _, v in draws])
    got_hi, got_lo = _lane_sum(hi, lo)
    want = sum((Fraction(h) + Fraction(v) for h, v in zip(hi, lo)), Fraction(0))
    got = Fraction(got_hi) + Fraction(got_lo)
    assert abs(got - want) <= Fraction(dd.lane_sum_error(len(hi))) * U2 * want
    assert got_hi == float(got)



@njit
def _spread(x, x_lo, k, w):
    return dd._spread(x, x_lo, x[k], k, w)


logit_rows = st.lists(st.tuples(st.floats(-60, 60), st.floats(-1, 1), moderate),
                      min_size=1, max_size=200)


@settings(max_examples=200, deadline=None)
@given(logit_rows, st.booleans(), st.integers(0, 40))
def test_the_spread_is_within_its_bound(row, with_lo, repeats):
    """label smoothing's spread sum_c w_c (m - z_c) of a row (``_spread``), with class weights
    of both signs and magnitudes (so that it cancels), the logits' lo parts or none, and a
    long run of equal terms: within the bound that ``_smoothed_loss_row`` gives it."""
    row = row + row[:1] * repeats * 20
    x = _pairs([v for v, _, _ in row])
    x_lo = (_pairs([float(np.spacing(v)) * f / 2 for v, f, _ in row]) if with_lo
            else np.empty(0))
    w, k = _pairs([c for _, _, c in row]), int(np.argmax(x))
    got_hi, got_lo, size, in_domain = _spread(x, x_lo, k, w)
    lo = [Fraction(v) for v in x_lo] if with_lo else [Fraction(0)] * len(x)
    m = Fraction(x[k]) + lo[k]
    terms = [Fraction(c) * (m - Fraction(v) - v_lo) for v, v_lo, c in zip(x, lo, w)]
    if not in_domain:  # only where a product is out of the domain (a logit of 1e-300, say)
        assert any(t and not dd.SMALLEST <= abs(t) <= dd.LARGEST for t in terms)
        return  # (a product that underflows to 0 is out of it: hypothesis drew 1.7e-270 w_0
        # with w_0 = 3.3e-79, whose exact 5.8e-349 the bound of an exact zero missed)
    want = sum(terms, Fraction(0))
    difference = dd.difference_error(float(x.min()), float(x[k]), with_lo, 0.0)
    bound = (Fraction(difference) * sum(Fraction(abs(c)) for c in w)
             + Fraction(dd.sum2_error(len(x)) + dd.MUL_ERROR) * U2 * Fraction(size))
    assert abs(Fraction(got_hi) + Fraction(got_lo) - want) <= bound * (1 + Fraction(1, 2**30))
    assert got_hi == float(Fraction(got_hi) + Fraction(got_lo))  # normalised


def test_a_spread_with_a_product_out_of_the_domain_is_left():
    """A product below the double-doubles' domain (its TwoProduct's error is not exact) or a
    NaN weight: the row is left, not given a bound that does not hold."""
    x = np.array([0.0, -1.0, -2.0])
    for w in ([1.0, 2.0 ** -1000, 1.0], [1.0, np.nan, 1.0], [1.0, 2.0 ** 1000, 1.0]):
        assert not _spread(x, np.empty(0), 0, np.array(w))[3]
    tiny = np.array([2.0 ** -900, 0.0])  # its margin times 2^-300 underflows to 0
    assert not _spread(tiny, np.empty(0), 0, np.array([1.0, 2.0 ** -300]))[3]
    assert _spread(x, np.empty(0), 0, np.array([1.0, 0.0, 1.0]))[3]  # an exact zero is fine


def test_a_product_of_nonzero_factors_that_underflows_to_0_leaves_the_element():
    """0.25 x 2^-1074 rounds to 0 where its exact value is not: the kernels that check their
    products' domain leave such an element (an infinite bound), and keep one whose factor is
    exactly 0. Each checked ``p == 0 or safe(p)`` before, which took the underflow for an
    exact zero and bounded it by 0."""
    tiny = 2.0 ** -1074
    out = [np.empty(2) for _ in range(3)] + [np.empty(2, dtype=bool)]
    # poisson's g (exp(x) - y) / count with exp(0) - 0.75 = 0.25, exact
    dd.exp_minus(np.zeros(2), np.full(2, 0.75), False, False, np.array([tiny, 0.0]), 1.0,
                 4.0, *dd.exp_constants(), *out)
    assert np.isposinf(out[2][0]) and out[2][1] == 0.0 and out[0][1] == 0.0
    # a weighted mean's slope: t W with t = 2^-1074, W = 0.25
    dd.weighted_mean_slopes(np.array([tiny, 0.0]), np.zeros(2), np.zeros(2), 0.0, 0.0, 0.0,
                            0.25, 0.0, np.ones(2), 4.0, *out)
    assert np.isposinf(out[2][0]) and np.isfinite(out[2][1])
    # label smoothing's k = (e / C) a / D with a = 2^-1074, D = 4 (and a = 0 beside it)
    G_hi, G_lo, eps = np.ones((2, 3)) / 3, np.zeros((2, 3)), np.zeros(2)
    dd.smoothed_gradient_rows(G_hi, G_lo, eps, np.zeros(2, dtype=np.int64),
                              np.array([tiny, 0.0]), np.ones(2), 4.0, 0.0, 0.1, 3, 3.0, 0.0,
                              np.ones(3), np.empty((2, 3)))
    assert np.isposinf(eps[0]) and np.isfinite(eps[1])

def test_a_total_whose_quotient_underflows_to_0_is_not_an_exact_zero():
    """A 'mean' of rows' double-doubles: 2^-950 over 2^125 - 2^60 is just above 2^-1075, so it
    rounds to 2^-1074, while the quotient's hi, 2^-950 / 2^125, is a tie that rounds to 0.
    ``certified_total`` took that 0 for a total of exact zeros; it decides so by the sum."""
    hi, nothing = np.array([2.0 ** -950]), np.zeros(1)
    rounded, _, ok = certified_total(hi, nothing, nothing, (2.0 ** 125, -2.0 ** 60))
    assert not ok or rounded == 2.0 ** -1074
    assert certified_total(nothing, nothing, nothing, (3.0, 0.0))[::2] == (0.0, True)


# --- the tier ------------------------------------------------------------------------------------

def oracle(x, target, weight, reduction, g, only=None, smoothing=0.0, fmt=None):
    """d loss / d x (N, C) in mpmath at 300 bits (the rows ``only``, by default all), rounded
    to float64 or to ``fmt``: softmax from exp(x_c - max), the target's complement as the sum
    of the others; label smoothing e adds (e / C)(S softmax_c - w_c) to (1 - e) w_t (softmax -
    onehot(t)), S the sum of the class weights."""
    N, C = x.shape
    w = np.ones(C) if weight is None else weight
    with mp.workprec(300):
        valid = [t != -100 for t in target]
        divisor = (mp.fsum(mpf(w[t]) for t, v in zip(target, valid) if v)
                   if reduction == "mean" else mpf(1))
        e, S = mpf(smoothing), mp.fsum(mpf(v) for v in w)
        out = []
        for i in range(N) if only is None else only:
            if not valid[i]:
                out.append([0.0] * C)
                continue
            t = int(target[i])
            a = mpf(float(g if np.ndim(g) == 0 else g[i])) / divisor
            top = max(mpf(v) for v in x[i])
            p = [mp.exp(mpf(v) - top) for v in x[i]]
            total = mp.fsum(p)
            rest = mp.fsum(p[c] for c in range(C) if c != t)
            hard = [p[c] / total for c in range(C)]
            hard[t] = -rest / total
            row = [a * ((1 - e) * mpf(w[t]) * hard[c] + e / C * (S * p[c] / total - mpf(w[c])))
                   for c in range(C)]
            if fmt is None:
                out.append([float(v) for v in row])  # mpmath rounds to nearest: the oracle
            else:
                out.append([correctly_round(_exactly(v), fmt)[0] for v in row])
    return np.array(out)


def _exactly(value) -> Fraction:
    """An mpf's binary value as a Fraction."""
    sign, mantissa, exponent, _ = value._mpf_
    return (-1) ** sign * Fraction(mantissa) * Fraction(2) ** exponent


rows_of_logits = st.integers(1, 5).flatmap(lambda n: st.integers(1, 12).flatmap(
    lambda c: st.tuples(st.just((n, c)), st.integers(0, 2 ** 32 - 1),
                        st.sampled_from([1e-3, 1.0, 30.0, 300.0]),
                        st.sampled_from(["mean", "sum", "none"]), st.booleans(),
                        st.sampled_from([0.0, 0.1, 1.0]))))


def _case(draw):
    """(logits, targets with a fifth ignored, class weight or None, reduction, the rng,
    label smoothing)."""
    (N, C), seed, scale, reduction, weighted, smoothing = draw
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C)) * scale
    target = rng.integers(0, C, N)
    target[rng.random(N) < 0.2] = -100
    weight = rng.uniform(0.25, 4, C) if weighted else None
    return x, target, weight, reduction, rng, smoothing


def _upstream(rng, rows: int, reduction: str):
    """An upstream gradient: one per row for 'none', else a scalar."""
    return rng.standard_normal(rows) if reduction == "none" else rng.standard_normal()


@settings(max_examples=80, deadline=None)
@given(rows_of_logits, st.sampled_from(["float64", "float32", "bfloat16"]))
def test_certified_elements_are_the_correctly_rounded_gradient(draw, dtype):
    """float64 results (the kernels certify them), and float32 and bfloat16 ones (each
    element's double-double rounded by ``certify_narrower``), on inputs the format holds:
    label smoothing, class weights, ignored rows."""
    fmt = FORMATS[dtype]
    x, target, weight, reduction, rng, smoothing = _case(draw)
    x = to_format(x, fmt)
    weight = None if weight is None else to_format(weight, fmt)
    g = to_format(_upstream(rng, len(x), reduction), fmt)
    rows = cl.rows_of(x, target, weight)
    if reduction == "mean" and not rows.valid.any():
        return
    a = np.where(rows.valid, cl.upstream_rows(g, rows, reduction), 0.0)
    known = fast.gradient(rows, cl.stats_of(rows.x), a, reduction, smoothing, fmt)
    want = oracle(x, target, weight, reduction, g, smoothing=smoothing,
                  fmt=None if dtype == "float64" else fmt)
    assert np.array_equal(known.rounded[known.ok], want[known.ok])
    # a typical row is certified, not left; but with smoothing 1 and a softmax that
    # underflows, G is -a w_c / C (3 a / 8 at the target) plus a tiny term, which can sit on
    # a tie of the format below the double-double's reach (hypothesis drew a float64 row and
    # a bfloat16 one, 0.0572509765625 - 5.7e-43): the engine's
    # Nor where the softmax saturates beyond 60 nats: there G = a w_t (1 - 5e-36), say, and
    # a w_t of two bfloat16 numbers is often a tie of the format (hypothesis drew logits 43.5
    # and -37.75, a w_t = 0.0355224609375), which that tiny term's side decides below the
    # bound's reach: the engine's too.
    top = np.sort(x, axis=1)
    spread, gap = top[:, -1] - top[:, 0], top[:, -1] - top[:, -2] if x.shape[1] > 1 else 0.0
    if smoothing < 1:
        assert known.ok[(spread < 600) & (gap < 60)].all()


def test_a_double_double_on_a_tie_of_the_format_rounds_to_its_lo_parts_side():
    """hi = -0.505859375 is halfway between two bfloat16 numbers: the ball hi +- (|lo| +
    error) holds that tie, but hi + lo lies on lo's side of it wherever |lo| exceeds the error
    (the gradient of a row that hypothesis drew: -0.505859375 + 2.3e-18, left before)."""
    tie = -0.505859375
    hi, lo = np.array([tie, tie, tie, 0.5]), np.array([2.3e-18, -2.3e-18, 1e-31, 0.0])
    error = np.array([1e-29, 1e-29, 1e-29, 0.0])
    rounded, ok = certify_narrower(hi, lo, error, FORMATS["bfloat16"])
    assert ok.tolist() == [True, True, False, True]
    assert rounded[[0, 1, 3]].tolist() == [-0.50390625, -0.5078125, 0.5]


@pytest.mark.parametrize("quick", [False, True])
def test_gradient_rows_are_within_their_relative_bound(quick):
    """softmax_gradient_rows' G, with either exponential: every element within the row's
    relative bound of the exact r (softmax - onehot), against mpmath at 300 bits; the quick
    bound is about 2^-65.7 (the target's rest doubles it twice), the other about 2^-93."""
    rng = np.random.default_rng(7)
    x, target = rng.standard_normal((4, 50)) * 5, rng.integers(0, 50, 4)
    a, w = rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    hi, lo, eps = np.empty((4, 50)), np.empty((4, 50)), np.empty(4)
    dd.softmax_gradient_rows(x, np.empty((0, 0)), np.zeros(4), np.argmax(x, axis=1), target, a,
                             w, 3.0, 0.0, np.zeros(4, dtype=bool), 0.0, *dd.exp_constants(),
                             hi, lo, eps, np.empty(4, dtype=bool), quick)
    assert (eps < (2.0 ** -65 if quick else 2.0 ** -92)).all()
    with mp.workprec(300):
        for i in range(4):
            e = [mp.exp(mpf(v) - mpf(x[i].max())) for v in x[i]]
            r = mpf(a[i]) * mpf(w[i]) / (3 * mp.fsum(e))
            for c in range(50):
                want = r * (e[c] - (mp.fsum(e) if c == target[i] else 0))
                assert abs(mpf(hi[i, c]) + mpf(lo[i, c]) - want) <= mpf(eps[i]) * abs(want)


def test_rows_beyond_its_range_are_left_to_the_engine():
    x = np.array([[0.0, -700.0, 1.0], [0.5, 0.25, -1.0], [1.0, -np.inf, 2.0]])
    rows = cl.rows_of(x, np.array([0, 1, 2]))
    known = fast.gradient(rows, cl.stats_of(rows.x), np.ones(3), "sum")
    assert known.ok.tolist() == [False, True, False]
    out = cl.loss_grad("cross_entropy", np.array(1.0), x, np.array([0, 1, 2]), None, -100,
                       0.0, "sum", FLOAT64)["input"]
    assert np.array_equal(out.rounded[:2], oracle(x[:2], [0, 1], None, "sum", 1.0))


def test_an_underflowing_upstream_is_not_taken_for_an_exact_zero():
    """a w_t = 1e-200 * 1e-200 underflows in float64: the row is left, not certified as 0."""
    x = np.array([[0.0, 1.0]])
    rows = cl.rows_of(x, np.array([0]), np.array([1e-200, 1.0]))
    known = fast.gradient(rows, cl.stats_of(rows.x), np.array([1e-200]), "sum")
    assert not known.ok[0]


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_a_typical_batch_is_certified_by_this_tier(smoothing):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1000)) * 3
    target = rng.integers(0, 1000, 64)
    engine.STATS.clear()
    out = cl.loss_grad("cross_entropy", np.array(1.0), x, target, None, -100, smoothing,
                       "mean", FLOAT64)["input"]
    assert engine.STATS[fast.TIER] == 64 and sum(engine.STATS.values()) == 64
    assert np.array_equal(out.rounded[:3], oracle(x, target, None, "mean", 1.0, only=range(3),
                                                  smoothing=smoothing))


def test_a_smoothed_gradient_that_cancels_is_left_to_the_engine():
    """Two classes, smoothing 0.1, target 0: G_1 = a (softmax_1 - 0.05), which cancels where
    x_1 is near log(1/19). Its terms' sizes bound G's error, not |G| (a bound relative to |G|
    certifies wrong roundings here): the rows the tier leaves, the engine completes, and every
    element is the correctly rounded value."""
    x1 = [math.log(1 / 19)]
    for _ in range(20):
        x1 = [np.nextafter(x1[0], -1.0)] + x1 + [np.nextafter(x1[-1], 1.0)]
    x = np.array([[0.0, v] for v in x1])
    target = np.zeros(len(x), dtype=np.int64)
    out = cl.loss_grad("cross_entropy", np.array(1.0), x, target, None, -100, 0.1, "sum",
                       FLOAT64)["input"]
    assert np.array_equal(out.rounded, oracle(x, target, None, "sum", 1.0, smoothing=0.1))


def test_without_numba_the_engine_computes_the_same_rows(monkeypatch):
    rng = np.random.default_rng(1)
    x, target = rng.standard_normal((6, 9)), rng.integers(0, 9, 6)
    monkeypatch.setattr(fast, "kernels", lambda: None)
    engine.STATS.clear()
    out = cl.loss_grad("cross_entropy", np.array(1.0), x, target, None, -100, 0.0, "mean",
                       FLOAT64)["input"]
    assert engine.STATS[fast.TIER] == 0
    assert np.array_equal(out.rounded, oracle(x, target, None, "mean", 1.0))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 30), st.floats(-1, 1)), min_size=1, max_size=20))
def test_log_of_sum_is_within_its_bound(draws):
    """One Newton step on libm's log: dropping the step (libm's 2^-50 alone) fails."""
    with mp.workprec(300):
        for exponent, fraction in draws:
            e_hi = 2.0 ** exponent
            e_lo = float(np.spacing(e_hi)) * fraction / 2
            y_hi, y_lo, error = dd.log_of_sum(e_hi, e_lo, 0.0, *dd.exp_constants())
            want = mp.log(mpf(e_hi) + mpf(e_lo))
            assert abs(mpf(y_hi) + mpf(y_lo) - want) <= error
            assert error < 2.0 ** -90 * max(1.0, float(want))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-300, -10), st.floats(-1, 1)), min_size=1, max_size=20))
def test_log1p_series_is_within_its_bound(draws):
    """Where S' is far below 1 (a saturated softmax), log1p by its series: Newton's step on
    log(1 + S') would leave an absolute error of a few u^2, larger than log1p(S') itself."""
    with mp.workprec(300):
        for exponent, fraction in draws:
            s_hi = 2.0 ** exponent * (1 + abs(fraction))
            s_lo = float(np.spacing(s_hi)) * fraction / 2
            y_hi, y_lo = dd.log1p_series(s_hi, s_lo)
            want = mp.log1p(mpf(s_hi) + mpf(s_lo))
            assert abs(mpf(y_hi) + mpf(y_lo) - want) <= dd.LOG1P_SERIES_ERROR * U2 * want


def loss_oracle(x, target, weight, reduction, smoothing=0.0):
    """The loss in mpmath at 300 bits, rounded to nearest: per row w_t nlp_t, nlp_c = lse -
    x_c written without cancellation; label smoothing e takes (1 - e) w_t nlp_t + (e / C)
    sum_c w_c nlp_c."""
    N, C = x.shape
    w = np.ones(C) if weight is None else weight
    with mp.workprec(300):
        e = mpf(smoothing)
        losses, counted = [], []
        for i in range(N):
            t = int(target[i])
            if t == -100:
                losses.append(mpf(0))
                continue
            row = [mpf(v) for v in x[i]]
            k = row.index(max(row))
            # (top - x_c) + log1p(the others): log of a sum near 1 would lose them at 300 bits
            others = mp.fsum(mp.exp(v - row[k]) for c, v in enumerate(row) if c != k)
            nlp = [(row[k] - v) + mp.log1p(others) for v in row]
            spread = mp.fsum(mpf(w[c]) * nlp[c] for c in range(C))
            losses.append((1 - e) * mpf(w[t]) * nlp[t] + e / C * spread)
            counted.append(mpf(w[t]))
        if reduction == "none":
            return np.array([float(v) for v in losses])
        total = mp.fsum(losses)
        return np.array(float(total / mp.fsum(counted) if reduction == "mean" else total))


@settings(max_examples=60, deadline=None)
@given(rows_of_logits)
def test_certified_losses_are_the_correctly_rounded_values(draw):
    x, target, weight, reduction, _, smoothing = _case(draw)
    scale, C = draw[2], x.shape[1]
    rows = cl.rows_of(x, target, weight)
    if reduction == "mean" and not rows.valid.any():
        return
    known = fast.loss(rows, cl.stats_of(rows.x), reduction, smoothing)
    want = loss_oracle(x, target, weight, reduction, smoothing)
    assert np.array_equal(known.rounded[known.ok], want[known.ok])
    if reduction != "none" and C > 1 and scale < 100:
        assert known.ok.all()  # a typical total is certified, not left


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_losses_of_a_typical_batch_are_certified_by_this_tier(smoothing):
    rng = np.random.default_rng(2)
    x, target = rng.standard_normal((64, 1000)) * 3, rng.integers(0, 1000, 64)
    for reduction in ("none", "mean"):
        engine.STATS.clear()
        out = cl.loss("cross_entropy", x, target, None, -100, smoothing, reduction, FLOAT64)
        assert engine.STATS[fast.TIER] == sum(engine.STATS.values())
        assert np.array_equal(out.rounded, loss_oracle(x, target, None, reduction, smoothing))


def test_smoothing_counts_a_target_of_zero_weight():
    """With label smoothing a row whose target weighs 0 still has a loss and a gradient (the
    smoothing's share of every class), and an ignored row has neither: both certified by
    this tier, both the correctly rounded values."""
    rng = np.random.default_rng(5)
    x, target = rng.standard_normal((4, 6)) * 2, np.array([0, 1, -100, 2])
    weight = np.array([0.0, 1.5, 0.5, 2.0, 1.0, 0.75])
    rows = cl.rows_of(x, target, weight)
    st_ = cl.stats_of(rows.x)
    for reduction in ("none", "sum", "mean"):
        known = fast.loss(rows, st_, reduction, 0.2)
        assert known.ok.all()
        assert np.array_equal(known.rounded, loss_oracle(x, target, weight, reduction, 0.2))
    g = rng.standard_normal(4)
    a = np.where(rows.valid, g, 0.0)
    known = fast.gradient(rows, st_, a, "none", 0.2)
    assert known.ok.all()
    assert np.array_equal(known.rounded, oracle(x, target, weight, "none", g, smoothing=0.2))
    assert known.rounded[0].all() and not known.rounded[2].any()


def test_a_loss_the_quick_exponentials_leave_the_double_double_ones_certify():
    """softmax_loss_rows tries ``quick_exp`` first and computes a row again with ``exp`` where
    that leaves it uncertified. At estimate_ulps = 2^-24 (a radius of 2^-76 of the loss) the
    quick bound, 2^-68, certifies no row and exp's every one: each row certified, each the
    correctly rounded loss."""
    rng = np.random.default_rng(3)
    x, target = rng.standard_normal((20, 300)) * 3, rng.integers(0, 300, 20)
    out = [np.empty(20) for _ in range(3)] + [np.empty(20, dtype=bool)]
    dd.softmax_loss_rows(x, np.empty((0, 0)), np.zeros(20), np.argmax(x, axis=1), target,
                         np.ones(20), 2.0 ** -24, *dd.exp_constants(), *out)
    assert out[3].all()
    assert np.array_equal(out[0], loss_oracle(x, target, None, "none"))


# --- probability targets -------------------------------------------------------------------------

def soft_oracle(x, p, weight, reduction, g, smoothing, fmt=None):
    """(the loss: per row or the total, d loss / d x, d loss / d p, d loss / d w) with
    probability targets, in mpmath at 300 bits, rounded to nearest (the gradients to ``fmt``
    where given, else to float64): u_c = w_c q_c,
    q_c = (1 - e) p_c + e / C, the loss sum_c u_c nlp_c, d x_c = h (Q softmax_c - u_c),
    d p_c = h (1 - e) w_c nlp_c and d w_c = sum over rows of h q_c nlp_c for h = g / divisor
    (N for 'mean'), Q = sum_c u_c."""
    N, C = x.shape
    w = np.ones(C) if weight is None else weight
    losses, d_x, d_p = [], np.empty((N, C)), np.empty((N, C))
    d_w = [[] for _ in range(C)]

    def rounded(value):
        return float(value) if fmt is None else correctly_round(_exactly(value), fmt)[0]

    with mp.workprec(300):
        e = mpf(smoothing)
        divisor = mpf(N) if reduction == "mean" else mpf(1)
        for i in range(N):
            row = [mpf(v) for v in x[i]]
            top = max(row)
            terms = [mp.exp(v - top) for v in row]
            total = mp.fsum(terms)
            log_total = mp.log1p(mp.fsum(t for t in terms if t != 1) if terms.count(1) == 1
                                 else total - 1)
            nlp = [(top - v) + log_total for v in row]
            u = [mpf(w[c]) * ((1 - e) * mpf(p[i, c]) + e / C) for c in range(C)]
            Q = mp.fsum(u)
            losses.append(mp.fsum(u[c] * nlp[c] for c in range(C)))
            h = mpf(float(g if np.ndim(g) == 0 else g[i])) / divisor
            d_x[i] = [rounded(h * (Q * terms[c] / total - u[c])) for c in range(C)]
            d_p[i] = [rounded(h * (1 - e) * mpf(w[c]) * nlp[c]) for c in range(C)]
            for c in range(C):
                d_w[c].append(h * ((1 - e) * mpf(p[i, c]) + e / C) * nlp[c])
        loss = (np.array([float(v) for v in losses]) if reduction == "none"
                else np.array(float(mp.fsum(losses) / divisor)))
        d_w = np.array([rounded(mp.fsum(column)) for column in d_w])
    return loss, d_x, d_p, d_w


def _soft_case(draw):
    """(logits, probability targets (rows of a distribution, or any numbers in [0, 1]),
    class weight or None, reduction, the rng, label smoothing)."""
    x, _, weight, reduction, rng, smoothing = _case(draw)
    p = rng.random(x.shape)
    if rng.random() < 0.5:
        p /= p.sum(axis=1, keepdims=True)
    return x, p, weight, reduction, rng, smoothing


@settings(max_examples=60, deadline=None)
@given(rows_of_logits)
def test_certified_soft_target_results_are_the_correctly_rounded_ones(draw):
    x, p, weight, reduction, rng, smoothing = _soft_case(draw)
    g = _upstream(rng, len(x), reduction)
    rows = cl.rows_of(x, p, weight)
    st_ = cl.stats_of(rows.x)
    loss, d_x, d_p, d_w = soft_oracle(x, p, weight, reduction, g, smoothing)
    known = fast.soft_loss(rows, st_, reduction, smoothing)
    assert np.array_equal(known.rounded[known.ok], loss.reshape(known.ok.shape)[known.ok])
    a = cl.upstream_rows(g, rows, reduction)
    d_input, d_target, d_weight = fast.soft_gradients(rows, st_, a, reduction, smoothing,
                                                      weight_gradient=True)
    assert np.array_equal(d_input.rounded[d_input.ok], d_x[d_input.ok])
    assert np.array_equal(d_target.rounded[d_target.ok], d_p[d_target.ok])
    assert np.array_equal(d_weight.rounded[d_weight.ok], d_w[d_weight.ok])
    typical = x.max(axis=1) - x.min(axis=1) < 600
    assert d_target.ok[typical].all()  # its two parts do not cancel: a typical row certified
    if reduction != "none" and x.shape[1] > 1 and draw[2] < 100:
        assert known.ok.all()


@settings(max_examples=60, deadline=None)
@given(rows_of_logits, st.sampled_from(["float32", "bfloat16", "float16"]))
def test_certified_soft_target_gradients_of_narrower_formats_are_correctly_rounded(draw, dtype):
    """float32, bfloat16 and float16 results: each element's double-double within the
    kernel's bound, rounded by ``certify_narrower``, on inputs the format holds; d loss / d p
    does not cancel, so a row whose logits spread less than 30 is certified."""
    fmt = FORMATS[dtype]
    x, p, weight, reduction, rng, smoothing = _soft_case(draw)
    x, p = to_format(x, fmt), to_format(p, fmt)
    weight = None if weight is None else to_format(weight, fmt)
    g = to_format(_upstream(rng, len(x), reduction), fmt)
    rows = cl.rows_of(x, p, weight)
    _, d_x, d_p, d_w = soft_oracle(x, p, weight, reduction, g, smoothing, fmt)
    a = cl.upstream_rows(g, rows, reduction)
    d_input, d_target, d_weight = fast.soft_gradients(rows, cl.stats_of(rows.x), a, reduction,
                                                      smoothing, weight_gradient=True, fmt=fmt)
    assert np.array_equal(d_input.rounded[d_input.ok], d_x[d_input.ok])
    assert np.array_equal(d_target.rounded[d_target.ok], d_p[d_target.ok])
    assert np.array_equal(d_weight.rounded[d_weight.ok], d_w[d_weight.ok])
    assert d_target.ok[x.max(axis=1) - x.min(axis=1) < 30].all()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_soft_targets_of_a_typical_batch_are_certified_by_this_tier(smoothing):
    rng = np.random.default_rng(4)
    x, p = rng.standard_normal((32, 500)) * 3, rng.random((32, 500))
    p /= p.sum(axis=1, keepdims=True)
    weight = rng.uniform(0.5, 2, 500)
    loss, d_x, d_p, d_w = soft_oracle(x, p, weight, "mean", 0.75, smoothing)
    engine.STATS.clear()
    out = cl.loss("cross_entropy", x, p, weight, -100, smoothing, "mean", FLOAT64)
    assert engine.STATS[fast.TIER] == sum(engine.STATS.values()) == 1
    assert out.rounded == loss
    engine.STATS.clear()
    grads = cl.loss_grad("cross_entropy", np.array(0.75), x, p, weight, -100, smoothing,
                         "mean", FLOAT64)
    assert engine.STATS[fast.TIER] == sum(engine.STATS.values()) == 64 + 500  # rows, classes
    assert np.array_equal(grads["input"].rounded, d_x)
    assert np.array_equal(grads["target"].rounded, d_p)
    assert np.array_equal(grads["weight"].rounded, d_w)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_soft_target_gradients_of_a_typical_batch_in_narrower_formats_are_this_tiers(dtype):
    """The reference's float32 and bfloat16 gradients with probability targets: every row
    and class certified by this tier, each the correctly rounded value."""
    fmt = FORMATS[dtype]
    rng = np.random.default_rng(4)
    x, p = rng.standard_normal((32, 500)) * 3, rng.random((32, 500))
    p /= p.sum(axis=1, keepdims=True)
    x, p, weight = to_format(x, fmt), to_format(p, fmt), to_format(rng.uniform(0.5, 2, 500), fmt)
    _, d_x, d_p, d_w = soft_oracle(x, p, weight, "mean", 0.75, 0.1, fmt)
    engine.STATS.clear()
    grads = cl.loss_grad("cross_entropy", np.array(0.75), x, p, weight, -100, 0.1, "mean", fmt)
    assert engine.STATS[fast.TIER] == sum(engine.STATS.values()) == 64 + 500  # rows, classes
    assert np.array_equal(grads["input"].rounded, d_x)
    assert np.array_equal(grads["target"].rounded, d_p)
    assert np.array_equal(grads["weight"].rounded, d_w)


def test_soft_targets_that_are_the_softmax_leave_their_cancelling_gradients_to_the_engine():
    """p = softmax(x) rounded to float64: d loss / d x = softmax - p cancels to about an ulp
    of its terms, which the tier's bound (relative to the terms' sizes) cannot certify; the
    engine completes those elements, and every element is the correctly rounded one."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 7))
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    rows = cl.rows_of(x, p)
    d_input, _, _ = fast.soft_gradients(rows, cl.stats_of(rows.x), np.ones(4), "sum", 0.0)
    assert not d_input.ok.any()
    grads = cl.loss_grad("cross_entropy", np.array(1.0), x, p, None, -100, 0.0, "sum", FLOAT64)
    _, d_x, d_p, _ = soft_oracle(x, p, None, "sum", 1.0, 0.0)
    assert np.array_equal(grads["input"].rounded, d_x)
    assert np.array_equal(grads["target"].rounded, d_p)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_soft_target_rows_with_a_masked_class_are_left_to_the_engine(dtype):
    """A row with a -inf logit: its softmax there is exactly 0 and its target's slope
    infinite, decided by the engine, not this tier (whose float32 results are certified from
    bounds); the other rows are the tier's."""
    x = np.array([[0.5, -np.inf, 1.0], [0.25, 2.0, -1.0]])
    p = np.array([[0.5, 0.0, 0.5], [0.2, 0.3, 0.5]])
    rows = cl.rows_of(x, p)
    d_input, d_target, d_weight = fast.soft_gradients(rows, cl.stats_of(rows.x), np.ones(2),
                                                      "sum", 0.0, weight_gradient=True,
                                                      fmt=FORMATS[dtype])
    assert d_input.ok.tolist() == [False, True] and d_target.ok.tolist() == [False, True]
    assert not d_weight.ok.any()  # every column sums the masked row's part
    grads = cl.loss_grad("cross_entropy", np.array(1.0), x, p, None, -100, 0.0, "sum", FLOAT64)
    _, d_x, _, _ = soft_oracle(x[:1, [0, 2]], p[:1, [0, 2]], None, "sum", 1.0, 0.0)  # unmasked
    assert grads["input"].rounded[0].tolist() == [d_x[0, 0], 0.0, d_x[0, 1]]
    assert np.isposinf(grads["target"].rounded[0, 1])
    _, d_x, d_p, _ = soft_oracle(x[1:], p[1:], None, "sum", 1.0, 0.0)
    assert np.array_equal(grads["input"].rounded[1:], d_x)
    assert np.array_equal(grads["target"].rounded[1:], d_p)


def _exact_sums(hi, lo) -> np.ndarray:
    """hi + lo elementwise as mpmath numbers at 300 bits (an object array, for the oracles)."""
    with mp.workprec(300):
        return np.array([[mpf(h) + mpf(v) for h, v in zip(*rows)] for rows in zip(hi, lo)],
                        dtype=object)


def _soft_rows(logits, p, weight, smoothing, a, estimate_ulps=engine.ESTIMATE_ULPS):
    """``softmax_soft_rows`` of every row with its gradients: ((loss hi, lo, error, ok),
    (d x hi, lo, ok), (d p hi, lo, ok))."""
    n, C = logits[0].shape
    loss = [np.empty(n) for _ in range(3)] + [np.empty(n, dtype=bool)]
    d_x, d_p = ([np.empty((n, C)), np.empty((n, C)), np.empty(n, dtype=bool)] for _ in range(2))
    w = np.ones(C) if weight is None else weight
    dd.softmax_soft_rows(logits, np.argmax(logits[0], axis=1), p, w, smoothing, 1.0, a, True,
                         estimate_ulps, *dd.exp_constants(), *loss, *d_x[:2], np.empty((0, 0)),
                         d_x[2], *d_p[:2], np.empty((0, 0)), d_p[2], *(np.empty((0, 0)),) * 3)
    return loss, d_x, d_p


@settings(max_examples=60, deadline=None)
@given(rows_of_logits)
def test_soft_rows_of_double_double_logits_are_the_correctly_rounded_ones(draw):
    """linear_cross_entropy's logits come as double-doubles: what the kernel certifies of
    x + x_lo (each lo within half an ulp of its hi) is the rounding of the exact results."""
    x, p, weight, _, rng, smoothing = _soft_case(draw)
    x_lo = np.spacing(x) * rng.uniform(-0.49, 0.49, x.shape)
    g = rng.standard_normal(len(x))
    loss, d_x, d_p = _soft_rows((x, x_lo, np.zeros(len(x))), p, weight, smoothing, g)
    want_loss, want_x, want_p, _ = soft_oracle(_exact_sums(x, x_lo), p, weight, "none", g,
                                               smoothing)
    ok = loss[3]
    assert np.array_equal(loss[0][ok], want_loss[ok])
    for (hi, _, rows_ok), want in ((d_x, want_x), (d_p, want_p)):
        assert np.array_equal(hi[rows_ok], want[rows_ok])
    if draw[2] <= 1 and x.shape[1] > 1:  # a typical row's loss and d p are certified
        # (not a softmax saturated by 40 nats: its largest class's nlp, log E, is far below
        # the margins' roundings, which the bound counts for every class)
        assert ok.all() and d_p[2].all()


def test_the_soft_loss_bound_holds_for_any_logits_within_their_error():
    """Logits known within 1e-12 each: the exact loss of logits moved by 1e-12 in the
    direction that raises it most (each against the sign of its own derivative, Q softmax_c -
    u_c) stays within the returned bound, with label smoothing and class weights of both
    signs (the spread's own error, 1e-12 sum_c |u_c|, is then beyond what log E's carries)."""
    rng = np.random.default_rng(9)
    n, C, beta = 5, 9, 1e-12
    z = rng.standard_normal((n, C)) * 3
    p = rng.random((n, C))
    p /= p.sum(axis=1, keepdims=True)
    weight = np.where(np.arange(C) % 2, -1.0, 1.0) * rng.uniform(1.0, 2.0, C)
    for smoothing in (0.0, 0.3):
        loss, _, _ = _soft_rows((z, np.empty((0, C)), np.full(n, beta)), p, weight, smoothing,
                                np.ones(n))
        assert np.isfinite(loss[2]).all()
        with mp.workdps(60):
            e = mpf(smoothing)
            for i in range(n):
                row = [mpf(v) for v in z[i]]
                total = mp.fsum(mp.exp(v) for v in row)
                u = [mpf(weight[c]) * ((1 - e) * mpf(p[i, c]) + e / C) for c in range(C)]
                Q = mp.fsum(u)
                slope = [Q * mp.exp(row[c]) / total - u[c] for c in range(C)]
                moved = [row[c] + (beta if slope[c] > 0 else -beta) for c in range(C)]
                lse = mp.log(mp.fsum(mp.exp(v) for v in moved))
                exact = mp.fsum(u[c] * (lse - moved[c]) for c in range(C))
                got = mpf(loss[0][i]) + mpf(loss[1][i])
                assert abs(got - exact) <= mpf(loss[2][i]), (smoothing, i)


def test_soft_rows_with_a_nan_target_or_a_product_that_underflows_are_left():
    """A NaN target or class weight, or a product of nonzero factors that underflows to 0
    (a weight of 2^-1000 times a target of 2^-100): the row is left (error inf, not ok), not
    given a bound that does not hold; the other rows are computed (a target of 0 makes an
    exact zero of that weight's product)."""
    z = np.array([[0.5, -1.0, 2.0]] * 3)
    p = np.array([[0.2, np.nan, 0.8], [0.2, 2.0 ** -100, 0.8], [0.5, 0.0, 0.5]])
    for weight in (np.array([1.0, 2.0 ** -1000, 1.0]), np.array([1.0, np.nan, 1.0])):
        loss, _, _ = _soft_rows((z, np.empty((0, 3)), np.zeros(3)), p, weight, 0.0, np.ones(3))
        assert not loss[3][:2].any() and np.isinf(loss[2][:2]).all()
        assert loss[3][2] == (not np.isnan(weight).any())


def test_the_soft_gradients_hold_every_logit_within_their_error():
    """Rows known within errors of 1e-20 to 1e-13: where the kernel certifies d x or d p (at
    2^40 ulps of room, so that certified means only that the ball does not cross a rounding
    boundary), the exact values at both extremes of each element over the logits' box round
    to it. Each is monotone in every logit (softmax_c rises with z_c and falls with the
    others, nlp_c the other way), so its extremes are z +- error (2 e_c - 1). A saturated
    row (its other classes 12 nats down) makes the margins' error, not log E's, decide: its
    largest class weighs 0, else its d p = (1 - e) w log E, far below 1, would stay
    uncertified with the whole row."""
    rng = np.random.default_rng(10)
    C = 6
    errors = np.array([1e-20, 1e-17, 1e-15, 1e-13] * 2)
    z = rng.standard_normal((len(errors), C))
    z[4:, 0] += 12.0
    p = rng.random(z.shape)
    p /= p.sum(axis=1, keepdims=True)
    weight = rng.uniform(0.5, 2.0, C)
    weight[0] = 0.0  # the saturated rows' largest class: its d p = 0, the others' decide
    _, d_x, d_p = _soft_rows((z, np.empty((0, C)), errors), p, weight, 0.1, np.ones(len(z)),
                             estimate_ulps=2.0 ** 40)
    assert d_x[2][[0, 4]].all() and d_p[2][0]  # the smallest errors: certified
    with mp.workdps(60):
        for i in np.flatnonzero(d_x[2] | d_p[2]):
            keep = 1 - mpf(0.1)  # of the float 0.1, as the kernel's 1 - e
            u = [mpf(weight[c]) * (keep * mpf(p[i, c]) + mpf(0.1) / C) for c in range(C)]
            Q = mp.fsum(u)
            for c in range(C):
                for sign in (1, -1):
                    row = [mpf(z[i, j]) + sign * mpf(errors[i]) * (1 if j == c else -1)
                           for j in range(C)]
                    lse = mp.log(mp.fsum(mp.exp(v) for v in row))
                    if d_x[2][i]:
                        assert float(Q * mp.exp(row[c] - lse) - u[c]) == d_x[0][i, c], (i, c)
                    if d_p[2][i]:
                        nlp = lse - row[c]
                        assert float(keep * mpf(weight[c]) * nlp) == d_p[0][i, c], (i, c)

@njit
def _lane_extremes(x):
    return dd.lane_min(x), -dd.lane_min(x, -1.0), dd.lane_argmax(x)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([-2.0, 0.0, 1.0, 3.0, -1e300, 5e-324]) | finite, min_size=1,
                max_size=40), st.sampled_from([None, np.nan, np.inf, -np.inf]), st.integers(0, 39))
def test_lane_extremes_are_numpys(values, special, where):
    """lane_min, its largest and lane_argmax are numpy's min, max and argmax (the first of
    equal largest), whatever the count; a NaN or an infinity makes lane_min NaN, so that its
    callers' domain checks leave the row."""
    x = np.array(values)
    low, high, k = _lane_extremes(x)
    assert (low, high, k) == (x.min(), x.max(), np.argmax(x))
    if special is not None:
        x[where % len(x)] = special
        assert np.isnan(_lane_extremes(x)[0])
