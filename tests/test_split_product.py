"""The error-free products under the logits of linear_cross_entropy (``split_product``) and the
balls built on them: the exact product, in rational arithmetic, always lies within the bound."""

from fractions import Fraction
from unittest import mock

import flint
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from loss_reference.arb import ArbBackend
from loss_reference.balls import FLOAT64_BALLS, LONG_DOUBLE_BALLS, Ball
from loss_reference import split_product as split_module
from loss_reference.split_product import blocked_product, slice_bits, split_product


def _exact_product(a: np.ndarray, b: np.ndarray) -> list:
    return [[sum((Fraction(float(a[i, k])) * Fraction(float(b[k, j]))
                  for k in range(a.shape[1])), Fraction(0))
             for j in range(b.shape[1])] for i in range(a.shape[0])]


def _assert_holds(a: np.ndarray, b: np.ndarray, parts, bound) -> list:
    """Assert that the exact product a b lies within ``bound`` of the parts' sum, elementwise;
    return it (rows of Fractions)."""
    exact = _exact_product(a, b)
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            total = sum(Fraction(float(p[i, j])) for p in parts)
            assert abs(exact[i][j] - total) <= Fraction(float(bound[i, j]))
    return exact


def _fraction(value) -> Fraction:
    return Fraction(*value.as_integer_ratio())


def _ball_fractions(values, i, j) -> tuple:
    """(midpoint, radius) of entry (i, j) of a Ball or of an array of arb balls, exactly."""
    if isinstance(values, Ball):
        return _fraction(values.mid[i, j]), _fraction(values.rad[i, j])
    mantissa, exponent = values[i, j].mid().man_exp()
    rad_mantissa, rad_exponent = values[i, j].rad().man_exp()
    return (Fraction(int(mantissa)) * Fraction(2) ** int(exponent),
            Fraction(int(rad_mantissa)) * Fraction(2) ** int(rad_exponent))


def _matrices(elements):
    def pair(shape):
        n, k, m = shape
        return st.tuples(arrays(np.float64, (n, k), elements=elements),
                         arrays(np.float64, (k, m), elements=elements))
    return st.tuples(st.integers(1, 4), st.integers(1, 70), st.integers(1, 4)).flatmap(pair)


FLOAT32 = st.floats(-1e4, 1e4, width=32)
# float32 numbers within 30 binades of each other (and zeros): what a layer's inputs look like
LAYER_FLOAT32 = st.one_of(st.just(0.0), st.floats(2.0 ** -16, 1e4, width=32),
                          st.floats(-1e4, -(2.0 ** -16), width=32))
# any exponent, so that entries far below their row's largest are left to the bound
UNDERFLOW = Fraction(2) ** -1074
WIDE = st.one_of(st.floats(-1e30, 1e30), st.floats(-1e-30, 1e-30), st.just(0.0))


@settings(max_examples=80, deadline=None)
@given(_matrices(WIDE), st.integers(1, 9), st.integers(1, 40))
def test_blocked_products_hold_the_exact_product_within_their_bound(operands, block, elements):
    """``blocked_product`` by blocks of ``block`` terms (a shorter one last), its partial sums
    a few rows at a time (``elements`` at a time), lies within gamma (|a| @ |b|) of the exact
    product, for entries over 60 decades that cancel, plus half the smallest subnormal for
    each product that underflows; its gamma is one product's or less."""
    a, b = operands
    with mock.patch.object(split_module, "BLOCKED_ELEMENTS", elements):
        product, gamma = blocked_product(a, b, block)
    inner = a.shape[1]
    assert gamma <= inner * 2.0 ** -53 / (1 - inner * 2.0 ** -53) * (1 + 2.0 ** -50)
    exact, magnitude = _exact_product(a, b), _exact_product(np.abs(a), np.abs(b))
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            assert abs(_fraction(product[i, j]) - exact[i][j]) <= (
                _fraction(gamma) * magnitude[i][j] + (inner + 1) * UNDERFLOW), (i, j, block)


def test_blocked_products_bound_a_vocabulary_tighter():
    """Over 50,257 classes the blocks' bound is 2^-43.7 where one product's is 2^-37.4; below
    two blocks, one product's."""
    assert split_module.blocked_gamma(50257) < 2.0 ** -43.6
    assert split_module.blocked_gamma(1000) == pytest.approx(1000 * 2.0 ** -53, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(_matrices(LAYER_FLOAT32))
def test_float32_products_are_exact(operands):
    """Inputs within 30 binades fit in the slices: no bound, and the parts add up exactly."""
    a, b = operands
    parts, bound = split_product(a, b)
    total = [[sum(Fraction(float(p[i, j])) for p in parts) for j in range(b.shape[1])]
             for i in range(a.shape[0])]
    assert not bound.any() and total == _exact_product(a, b)


def _row_bound_covers(exact, split, row_split) -> None:
    """``row_bound``'s split: the same parts, and one bound per row that holds every element
    of the row's exact product (near the row's largest element bound: within its rounding)."""
    (parts, bound), (row_parts, row_bound) = split, row_split
    assert row_bound.shape == (bound.shape[0], 1)
    assert all(np.array_equal(p, q) for p, q in zip(parts, row_parts))
    assert (row_bound[:, 0] * (1 + 2.0 ** -40) >= np.max(bound, axis=1, initial=0.0)).all()
    for i in range(bound.shape[0]):
        for j in range(bound.shape[1]):
            total = sum(Fraction(float(p[i, j])) for p in parts)
            assert abs(exact[i][j] - total) <= Fraction(float(row_bound[i, 0]))


@settings(max_examples=80, deadline=None)
@given(_matrices(WIDE))
def test_the_bound_holds_for_any_exponents(operands):
    a, b = operands
    split = split_product(a, b)
    if split is None:
        return
    exact = _assert_holds(a, b, *split)
    _row_bound_covers(exact, split, split_product(a, b, row_bound=True))


# full float64 significands within a few binades: no slice captures them whole, so every
# rounded product of a leveled split is there
FULL = st.one_of(st.floats(-8.0, 8.0), st.floats(-1e-3, 1e-3), st.just(0.0))
# numbers whose products' rests fall among the subnormals: only the bound's floor covers them
TINY = st.builds(lambda m, e: m * 2.0 ** -52 * 10.0 ** e,
                st.integers(2 ** 52, 2 ** 53 - 1) | st.integers(1 - 2 ** 53, -(2 ** 52)),
                st.integers(-175, -140))  # full significands, exponents spread by 35 decades


@settings(max_examples=120, deadline=None)
@given(operands=st.sampled_from([FULL, WIDE, LAYER_FLOAT32, TINY]).flatmap(_matrices),
       levels=st.integers(1, 3),
       data=st.data())
def test_leveled_products_hold_the_exact_product_within_their_bound(operands, levels, data):
    """With ``exact_levels``, the parts (exact products of the leading slices, and one part of
    the rounded rest) add up to the exact product within the bound, which covers the rounded
    rest's error; a zero row or column is exact, with no bound (zero results certify)."""
    a, b = operands
    if data.draw(st.booleans(), label="a zero row"):
        a[0] = 0.0
    reuse = data.draw(st.booleans(), label="reuse")
    split = split_product(a, b, reuse=reuse, exact_levels=levels)
    if split is None:
        return
    parts, bound = split
    assert len(parts) <= levels * (levels + 1) // 2 + 1
    exact = _exact_product(a, b)
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            total = sum(Fraction(float(p[i, j])) for p in parts)
            assert abs(exact[i][j] - total) <= Fraction(float(bound[i, j]))
            if not a[i].any() or not b[:, j].any():
                assert total == 0 and bound[i, j] == 0
    # the same reuse: a reused operand's rounded rest may be one stacked product, whose
    # rounding differs from the products one by one (hypothesis seed 132: 1 x 1 by 1 x 3)
    row_split = split_product(a, b, reuse=reuse, exact_levels=levels, row_bound=True)
    _row_bound_covers(exact, split, row_split)
    assert (row_split[1][~a.any(axis=1)] == 0).all()  # a zero row is exact


@settings(max_examples=60, deadline=None)
@given(st.tuples(st.integers(1, 4), st.integers(1, 8)).flatmap(
           lambda shape: st.tuples(arrays(np.float64, shape, elements=FULL | WIDE),
                                   arrays(np.float64, (shape[1], 33), elements=FULL | WIDE))),
       st.integers(1, 3), st.booleans())
def test_a_rounded_rest_summed_as_one_product_holds_the_exact_product(operands, levels, reuse):
    """More outputs than the rounded products' terms (a vocabulary's logits): the rounded
    products are one product of the stacked operands (``_rounded_sum``), whose rounding the
    bound covers as one sum of all their terms; the right operand's stack, made once with its
    reused split, serves the next call too."""
    a, b = operands
    calls, rounded_sum = [], split_module._rounded_sum

    def recorded(rounded, *args):
        calls.append((len(rounded), rounded_sum(rounded, *args)))
        return calls[-1][1]

    with split_module.reusing_splits(), mock.patch.object(split_module, "_rounded_sum",
                                                          recorded):
        for _ in range(2 if reuse else 1):
            split = split_product(a, b, reuse=reuse, exact_levels=levels)
            if split is None:
                return
            _assert_holds(a, b, *split)
    n, inner = a.shape
    for products, terms in calls:  # one product over the stack's terms, but where it would
        stacked = products * inner  # copy a right operand made afresh and larger than the sum
        one = products > 1 and (reuse or n > stacked)
        assert terms == (stacked if one else inner + products - 1)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan, 2.0 ** 450])
@pytest.mark.parametrize("where", ["left", "right"])
@pytest.mark.parametrize("reuse", [False, True])
def test_no_split_of_entries_beyond_its_range(bad, where, reuse):
    """An infinity, a NaN or an entry of 2^450 and more in either operand, wherever it lies
    among finite ones: None (the caller computes one product with its bound instead), also
    where the right operand's check is the block's reused one."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    (a if where == "left" else b)[1, 2] = bad
    with split_module.reusing_splits():
        for _ in range(2):  # the second call reuses the right operand's check
            assert split_product(a, b, reuse=reuse) is None
            assert split_product(a, b, reuse=reuse, exact_levels=1) is None


def test_a_reused_right_operand_is_checked_once_a_block():
    """A layer's weight, the right operand of every chunk's product, is scanned for its
    largest magnitude once within ``reusing_splits``, not once a chunk; again in a new block."""
    rng = np.random.default_rng(0)
    b = rng.standard_normal((8, 50))
    scans = []
    largest = split_module._largest_magnitude

    def counted(values):
        scans.append(values is b)
        return largest(values)

    with mock.patch.object(split_module, "_largest_magnitude", counted):
        for _ in range(2):
            with split_module.reusing_splits():
                for rows in range(1, 4):
                    assert split_product(rng.standard_normal((rows, 8)), b, exact_levels=1)
        assert scans.count(True) == 2 and scans.count(False) == 6


def test_leveled_products_among_the_subnormals_hold_the_exact_product():
    """Entries spread over 35 decades near 1e-160: the rounded rest's products fall among the
    subnormals, whose absolute rounding only the bound's floor covers."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        k = int(rng.integers(1, 6))
        a = rng.standard_normal((2, k)) * 10.0 ** rng.integers(-175, -140, (2, k))
        b = rng.standard_normal((k, 2)) * 10.0 ** rng.integers(-175, -140, (k, 2))
        split = split_product(a, b, reuse=False, exact_levels=int(rng.integers(1, 3)))
        if split is None:
            continue
        _assert_holds(a, b, *split)


def test_leveled_products_are_accurate_to_their_level():
    """The bound shrinks by about 2^-beta a level: for inner 64 (beta 23) and full float64
    operands, within 2^-(53 + 23 s - 12) of the operands' norms (the rounded rest's gamma(72)
    and Cauchy-Schwarz), and far below the products themselves."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((20, 64)), rng.standard_normal((64, 30))
    scale = np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=0))
    for levels in (1, 2, 3):
        _, bound = split_product(a, b, exact_levels=levels)
        assert 0 < (bound / scale).max() < 2.0 ** (-53 - 23 * levels + 12)


@pytest.mark.parametrize("backend", [FLOAT64_BALLS, LONG_DOUBLE_BALLS], ids=lambda b: b.name)
@settings(max_examples=40, deadline=None)
@given(operands=_matrices(st.one_of(FLOAT32, WIDE)))
def test_the_ball_of_an_exact_product_holds_it(backend, operands):
    a, b = operands
    ball = backend.matmul(a, b)
    exact = _exact_product(a, b)
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            error = abs(exact[i][j] - _fraction(ball.mid[i, j]))
            assert error <= _fraction(ball.rad[i, j])


def test_slices_keep_every_sum_within_53_bits():
    for inner in (1, 2, 3, 128, 129, 1024, 4096, 65537):
        beta = slice_bits(inner)
        assert inner * 2 ** (2 * beta) <= 2 ** 53 < inner * 2 ** (2 * beta + 2)



# bfloat16-like numbers (8-bit significands, so that rows collide), and a few enormous ones
COARSE = st.one_of(st.integers(-255, 255).map(lambda k: k / 64.0),
                   st.sampled_from([1e30, -1e30, 3e4, -2.5e28, 0.0]))


@pytest.mark.parametrize("backend", [FLOAT64_BALLS, LONG_DOUBLE_BALLS, ArbBackend(256)],
                         ids=lambda b: b.name)
@settings(max_examples=60, deadline=None)
@given(operands=_matrices(COARSE), data=st.data())
def test_rows_minus_their_max_hold_the_exact_differences(backend, operands, data):
    """affine_minus_max: each row of a @ b + c minus its entry at k holds the exact difference,
    and k is a largest entry up to the radii (no difference is above 0 beyond its radius),
    also where the logits reach 1e30 and differ by far less than their rounding."""
    a, b = operands
    c = np.array(data.draw(st.lists(COARSE, min_size=b.shape[1], max_size=b.shape[1])))
    with flint.ctx.workprec(256):  # the precision arb_evaluate would set
        shifted, k = backend.affine_minus_max(backend.asarray(a), backend.asarray(b),
                                              backend.asarray(c), b.shape[1])
    exact = _exact_product(a, b)
    for i in range(a.shape[0]):
        row = [exact[i][j] + Fraction(float(c[j])) for j in range(b.shape[1])]
        for j in range(b.shape[1]):
            mid, rad = _ball_fractions(shifted, i, j)
            assert abs(row[j] - row[k[i]] - mid) <= rad
            assert mid <= rad


@pytest.mark.parametrize("backend", [FLOAT64_BALLS, LONG_DOUBLE_BALLS], ids=lambda b: b.name)
def test_logits_of_1e30_keep_their_small_differences_exact(backend):
    """One activation of 1e30 (a bfloat16 outlier) and classes whose weights on it coincide:
    their logits differ by small numbers that rounding the logits (about 1e30 u = 1e14 in
    float64) would hide; the shifted rows keep them to within 1e-10."""
    x = np.array([[1e30, 3.0, -2.0]])
    W = np.array([[0.5, 1.25, 0.5], [0.5, -0.75, 2.0], [0.25, 8.0, 1.0], [0.5, 0.0, 0.125]])
    shifted, k = backend.affine_minus_max(x, W.T, np.zeros(4), 4)
    assert k.tolist() == [0]
    small = [0, 1, 3]  # 1e30 / 2 + 2.75, + -6.25, + -0.25
    assert shifted.mid[0, small].tolist() == [0.0, -9.0, -3.0]
    assert (shifted.rad[0, small] < 1e-10).all()
    assert shifted.mid[0, 2] < -1e29  # the class whose weight on the outlier differs


def test_within_reusing_splits_a_right_operand_is_split_once(monkeypatch):
    """A layer's weight, multiplied by every chunk of tokens, is split once per block (the
    same array object), another operand anew, and nothing is kept after the block; the
    products are those computed without reuse."""
    from loss_reference import split_product as module

    rng = np.random.default_rng(5)
    a1, a2 = (rng.standard_normal((3, 16)).astype(np.float32).astype(np.float64)
              for _ in range(2))
    b, b2 = (rng.standard_normal((16, 7)).astype(np.float32).astype(np.float64)
             for _ in range(2))
    right_splits = []
    real = module._split

    def counting(values, axis, beta):
        if axis == 0:
            right_splits.append(values)
        return real(values, axis, beta)

    monkeypatch.setattr(module, "_split", counting)
    with module.reusing_splits():
        products = [module.split_product(a, w) for a, w in ((a1, b), (a2, b), (a1, b2), (a2, b2))]
    assert [w is b for w in right_splits] == [True, False]
    module.split_product(a1, b)
    assert len(right_splits) == 3  # the block's split is gone with it
    monkeypatch.setattr(module, "_split", real)
    for (parts, bound), (a, w) in zip(products, ((a1, b), (a2, b), (a1, b2), (a2, b2))):
        fresh_parts, fresh_bound = module.split_product(a, w)
        assert all(np.array_equal(p, q) for p, q in zip(parts, fresh_parts))
        assert np.array_equal(bound, fresh_bound)


def _wide_balls(a64, rng):
    """Long double balls around a64 plus bits beyond float64 (a 64-bit significand's last
    11), with radii from 0 to 1e-3 of their midpoints."""
    LD = np.longdouble
    extra = a64.astype(LD) * LD(2.0 ** -55) * rng.integers(-1023, 1024, a64.shape).astype(LD)
    mid = a64.astype(LD) + extra / LD(1024)
    rad = np.abs(mid) * LD(10.0) ** rng.integers(-20, -3, a64.shape).astype(LD)
    rad[rng.random(a64.shape) < 0.3] = 0
    return Ball(mid, rad)


@settings(max_examples=60, deadline=None)
@given(operands=_matrices(st.one_of(FLOAT32, LAYER_FLOAT32)), seed=st.integers(0, 2 ** 32 - 1))
def test_long_double_balls_times_exact_numbers_hold_every_product(operands, seed):
    """A long double ball times exact numbers goes through float64 BLAS
    (``_wide_times_exact``: each midpoint as two float64 numbers, the first's product exact):
    every product of a number in the ball with the exact operand lies in the result."""
    a64, b = operands
    ball = _wide_balls(a64, np.random.default_rng(seed))
    result = LONG_DOUBLE_BALLS.matmul(ball, b)
    assert LONG_DOUBLE_BALLS._wide_times_exact(ball, b) is not None  # the BLAS path was taken
    for i in range(a64.shape[0]):
        mids = [_fraction(v) for v in ball.mid[i]]
        rads = [_fraction(v) for v in ball.rad[i]]
        for j in range(b.shape[1]):
            column = [Fraction(float(v)) for v in b[:, j]]
            exact = sum((m * c for m, c in zip(mids, column)), Fraction(0))
            spread = sum((r * abs(c) for r, c in zip(rads, column)), Fraction(0))
            error = abs(exact - _fraction(result.mid[i, j])) + spread
            assert error <= _fraction(result.rad[i, j]), (i, j)


ANY_EXPONENT = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.just(0.0),
                         st.floats(-1e-300, 1e-300), st.floats(-1e300, 1e300))


@settings(max_examples=150, deadline=None)
@given(st.tuples(st.integers(1, 5), st.integers(1, 40)).flatmap(
    lambda shape: arrays(np.float64, shape, elements=ANY_EXPONENT)), st.sampled_from([0, 1]))
def test_norms_are_within_a_few_roundings_of_the_exact_norms(values, axis):
    """One pass of squares where none overflows, the scaled form for the rest (rows whose
    squares underflow, all-zero rows, entries beyond 2^500): every norm within 8 u of the exact
    one, as its callers' slack assumes (and where it is subnormal, at or above it within a few
    units of 2^-1074: a bound on a product multiplies it by the other operand's norm, which
    may be large; inf beyond the range), and an all-zero row's exactly 0."""
    got = split_module.norms(values, axis)
    rows = values if axis == 1 else values.T
    assert got.shape == (rows.shape[0],)
    for row, norm in zip(rows, got):
        exact = sum((_fraction(v) ** 2 for v in row), Fraction(0))
        if exact == 0:
            assert norm == 0
        elif norm == np.inf:  # only for a norm at the end of the range
            assert exact > (Fraction(np.finfo(np.float64).max) * (1 - Fraction(2) ** -50)) ** 2
        elif np.isfinite(norm) and exact < Fraction(2) ** -2044:  # a subnormal norm
            assert _fraction(norm) ** 2 >= exact
            assert abs(_fraction(norm) ** 2 - exact) <= (4 * UNDERFLOW) ** 2 + 4 * UNDERFLOW * (
                _fraction(norm) + 4 * UNDERFLOW)
        else:  # |norm^2 - exact| <= 16 u exact: the norm within about 8 u
            assert abs(_fraction(norm) ** 2 - exact) <= Fraction(16, 2 ** 53) * exact


@pytest.mark.parametrize("backend", [FLOAT64_BALLS, LONG_DOUBLE_BALLS], ids=lambda b: b.name)
def test_the_ball_of_a_product_whose_norm_is_subnormal_holds_it(backend):
    """A hypothesis find: 19 entries of 8.06e16 by 19 of 5e-324, whose slices fall below the
    subnormals, so the product is all bound: the subnormal norm (4.36 units) rounded to 4 made
    the bound 7.53e-306 where the exact product is 7.57e-306."""
    a, b = np.full((1, 19), 8.06062701e16), np.full((19, 1), 5e-324)
    ball = backend.matmul(a, b)
    exact = _exact_product(a, b)[0][0]
    mid, rad = _ball_fractions(ball, 0, 0)
    assert abs(exact - mid) <= rad


def test_norms_neither_underflow_nor_overflow():
    """Squares of 1e-200 underflow to 0 and the sum of three squares of 1e154 overflows: those
    norms come from the scaled form."""
    values = np.array([[1e-200, -3e-200, 0.0], [0.0, 0.0, 0.0], [1.0, 1e-200, 2.0]])
    got = split_module.norms(values, 1)
    assert got[0] == pytest.approx(np.sqrt(10) * 1e-200, rel=1e-15)
    assert got[1] == 0 and got[2] == pytest.approx(np.sqrt(5), rel=1e-15)
    huge = np.full((2, 3), 1e154)
    assert split_module.norms(huge, 0) == pytest.approx([np.sqrt(2) * 1e154] * 3, rel=1e-15)


def test_a_subnormal_row_by_a_large_column_keeps_its_rounding_in_the_bound():
    """Hypothesis's find: a row of 1e-311 (its rest a subnormal of 16 bits) by a column of
    2e28. The rest's product, 9e-291, rounds by 5e-307; its bound was the norms' product
    times gamma, and the subnormal norm times gamma underflowed to 0 first, leaving the floor
    (3e-307) alone."""
    a = np.full((1, 2), float.fromhex("0x0.004189374bc6ap-1022"))
    b = np.full((2, 1), float.fromhex("0x1.0000000007316p+94"))
    exact = _exact_product(a, b)
    for row_bound in (False, True):
        parts, bound = split_product(a, b, reuse=False, exact_levels=1, row_bound=row_bound)
        total = sum(Fraction(float(p[0, 0])) for p in parts)
        assert total != exact[0][0]  # the rest's product rounded
        assert abs(exact[0][0] - total) <= Fraction(float(bound[0, 0]))
