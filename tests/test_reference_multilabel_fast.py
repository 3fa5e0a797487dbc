"""multilabel_margin_loss's fast tier for the value (loss_reference/multilabel_fast.py): each
row's ball holds its exact sum of hinges, on inputs drawn to make the float64 hinges err (wide
spreads, values near the kinks, tiny and huge magnitudes); it leaves rows that are not finite
and exact ties to the ball tiers, and certifies a typical batch.

The exact sums are Fractions: every hinge max(0, 1 - x_j + x_i) of float64 inputs is a
rational, added without rounding.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_reference import assert_certified, margin_loss_exact, round_value, to_format

from conformance.specs import SPECS
from loss_reference import multilabel as ml
from loss_reference import engine
from loss_reference import multilabel_fast as fast
from loss_reference.compiled_kernels import TIER
from loss_reference.formats import FORMATS


def exact_sums(x, target):
    """Each row's exact sum over listed labels j (to the first -1, repeats again) and unlisted
    classes i of max(0, 1 - x_j + x_i)."""
    sums = []
    for row, labels in zip(np.atleast_2d(x), np.atleast_2d(target)):
        listed = []
        for label in labels:
            if label == -1:
                break
            listed.append(int(label))
        xs = [Fraction(float(v)) for v in row]
        unlisted = [i for i in range(len(xs)) if i not in listed]
        sums.append(sum((max(Fraction(0), 1 - xs[j] + xs[i]) for j in listed for i in unlisted),
                        Fraction(0)))
    return sums


def _assert_holds(x, target):
    _, x_label, counted = ml.counted_pairs(x, target)
    sums, radii, finite = fast.row_sums(np.atleast_2d(x), x_label, counted)
    for n, exact in enumerate(exact_sums(x, target)):
        if finite[n]:
            assert abs(Fraction(float(sums[n])) - exact) <= Fraction(float(radii[n])), n
    return finite


@st.composite
def cases(draw):
    """Up to 6 rows of up to 12 classes; values N(0, spread) with spreads from 1e-8 to 1e30
    (where 1 - x_j rounds away the 1), some moved onto a kink (1 - x_j + x_i within an ulp of
    0), rounded to a format; label rows with repeats, a -1 terminator anywhere, or every class
    listed."""
    rows, classes = draw(st.integers(1, 6)), draw(st.integers(1, 12))
    spread = draw(st.sampled_from([1e-8, 1.0, 3.0, 1e3, 1e12, 1e30]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    x = rng.normal(0.0, spread, (rows, classes))
    target = rng.integers(0, classes, (rows, classes))
    for n in range(rows):
        cut = draw(st.integers(0, classes))
        target[n, cut:cut + 1] = -1
        if classes > 1 and draw(st.booleans()):  # a pair on its kink, then an ulp off
            j, i = int(target[n, 0]), int((target[n, 0] + 1) % classes)
            x[n, i] = np.nextafter(x[n, j] - 1.0, draw(st.sampled_from([-np.inf, 0, np.inf])))
    fmt = FORMATS[draw(st.sampled_from(["float32", "bfloat16", "float16"]))]
    return to_format(np.clip(x, -6e4, 6e4) if fmt.name == "float16" else x, fmt), target, fmt


@settings(max_examples=80, deadline=None)
@given(cases())
def test_balls_hold_the_exact_sums(case):
    x, target, _ = case
    assert _assert_holds(x, target).all()


@settings(max_examples=40, deadline=None)
@given(cases(), st.sampled_from(["none", "sum", "mean"]))
def test_what_it_certifies_is_the_correct_rounding(case, reduction):
    x, target, fmt = case
    x32 = x.astype(np.float32) if fmt.name == "float32" else x  # the candidate's own dtype
    _, x_label, counted = ml.counted_pairs(x32, target)
    known = fast.value(np.atleast_2d(x32), x_label, counted, reduction, x.shape[1], fmt)
    per_row = [s / x.shape[1] for s in exact_sums(x, target)]
    exact = per_row if reduction == "none" else [
        sum(per_row, Fraction(0)) / (len(per_row) if reduction == "mean" else 1)]
    for rounded, ok, value in zip(np.ravel(known.rounded), np.ravel(known.ok), exact):
        if ok:
            assert rounded == round_value(value, fmt)[0]


def test_a_long_row_keeps_its_summation_error_in_its_ball():
    """50 labels x 2,000 classes: 100,000 hinges near 1 with full significands, whose sum's
    rounding errors add up to far more than one ulp of it."""
    rng = np.random.default_rng(5)
    x = to_format(rng.uniform(0.0, 1e-3, (1, 2000)), FORMATS["float32"])
    target = np.full((1, 2000), -1)
    target[0, :50] = rng.choice(2000, 50, replace=False)
    assert _assert_holds(x, target).all()


def test_rows_that_are_not_finite_and_exact_ties_are_left():
    """A row holding an infinity or a sum beyond float64 is left to the ball tiers, and so
    is a loss that is exactly a tie of float32 (a ball of positive radius cannot certify it),
    while the ordinary row is certified."""
    p = FORMATS["float32"].precision
    x = np.array([[0.0, 2.0 ** -p, -8.0, -8.0],  # one hinge 1 + 2^-p: the sum, / 4, a tie
                  [1.0, np.inf, 0.5, 0.25],
                  [1.7e308, -1.7e308, 0.0, 0.0],
                  [0.25, -0.5, 1.0, 0.75]])
    target = np.array([[0, -1, -1, -1], [0, -1, -1, -1], [1, -1, -1, -1], [2, 0, -1, -1]])
    _, x_label, counted = ml.counted_pairs(x, target)
    known = fast.value(x, x_label, counted, "none", 4, FORMATS["float32"])
    assert known.ok.tolist() == [False, False, False, True]
    assert _assert_holds(x[[0, 3]], target[[0, 3]]).all()
    # the engine completes the rows left: the tie rounds to even
    result = ml.multilabel_margin_loss(x[[0, 3]], target[[0, 3]], "none", FORMATS["float32"])
    values, shape = margin_loss_exact(x[[0, 3]], target[[0, 3]], "none")
    assert all(assert_certified(result, values, shape, FORMATS["float32"])[:1])


def test_certifies_a_typical_batch():
    """The speed ladder's inputs, in the candidate's dtype: every row and every total."""
    spec = SPECS["multilabel_margin_loss"]
    for dtype in ("float32", "bfloat16"):
        case = spec.speed.case((256, 500), dtype, np.random.default_rng(0))
        x, target = case.args["input"], case.args["target"]
        _, x_label, counted = ml.counted_pairs(x, target)
        for reduction in ("none", "mean"):
            known = fast.value(np.atleast_2d(x), x_label, counted, reduction, 500,
                               FORMATS[dtype])
            assert np.all(known.ok)


# --- float64 results: the double-double rows ----------------------------------------------------

def _fraction_oracle(x, target):
    """(losses per row, gradients (N, C) for g = 1 and 'sum') in exact rationals, rounded to
    float64: hinges max(0, 1 - x_j + x_i) over listed j and unlisted i, over C; a hinge at
    exactly 0 is off."""
    losses, grads = [], np.zeros(x.shape)
    for n in range(x.shape[0]):
        listed = []
        for label in target[n]:
            if label == -1:
                break
            listed.append(int(label))
        total, C = Fraction(0), x.shape[1]
        for j in listed:
            for i in range(C):
                if i in listed:
                    continue
                h = 1 - Fraction(float(x[n, j])) + Fraction(float(x[n, i]))
                if h > 0:
                    total += h
                    grads[n, i] += 1
                    grads[n, j] -= 1
        value = total / C
        losses.append(value.numerator / value.denominator)
    return np.array(losses), grads / x.shape[1]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(2, 9), st.integers(0, 2 ** 32 - 1))
def test_float64_losses_and_gradients_are_exact(rows, classes, seed):
    """Hinges at exactly 0 (x_i = x_j - 1), repeated labels, -1 terminators, full-mantissa
    values: the references' float64 results (this tier, the engine for what it leaves) are the
    exact ones rounded."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, classes))
    target = np.where(rng.random((rows, classes)) < 0.4, -1,
                      rng.integers(0, classes, (rows, classes)))
    x[0, -1] = x[0, target[0, 0]] - 1 if target[0, 0] >= 0 else x[0, -1]  # a kink, exactly
    fmt = FORMATS["float64"]
    want_loss, want_grad = _fraction_oracle(x, target)
    loss = ml.multilabel_margin_loss(x, target, "none", fmt)
    assert np.array_equal(loss.rounded, want_loss)
    grad = ml.multilabel_margin_loss_grad(np.array(1.0), x, target, "sum", fmt)["input"]
    assert np.array_equal(grad.rounded, want_grad)


def test_float64_rows_of_a_typical_batch_are_this_tiers():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 50))
    target = np.full((64, 50), -1)
    target[:, :4] = rng.integers(0, 50, (64, 4))
    engine.STATS.clear()
    ml.multilabel_margin_loss(x, target, "none", FORMATS["float64"])
    assert engine.STATS[TIER] == sum(engine.STATS.values()) == 64
