"""linear_cross_entropy's float64 double-double tier (loss_reference/linear_float64.py): what
it certifies is the correctly rounded exact value, on layers drawn to make float64 err (spreads
of 1e6, products that cancel, tiny and zero entries), and it certifies a typical batch whole.
The layers and their exact values (an mpmath oracle at 100 digits) are
test_reference_linear_fast's.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mpmath import mp, mpf
from test_reference import correctly_round, to_format
from test_reference_double_double import soft_oracle
from test_reference_linear_fast import IGNORE, _assert_holds, cases, oracle

from conformance.specs import SPECS
from loss_reference import engine, linear, linear_fast
from loss_reference.compiled_kernels import exact_divisor
from loss_reference import linear_float64 as tier
from loss_reference.formats import FORMATS

pytest.importorskip("numba", reason="numba is not installed")
FLOAT64 = FORMATS["float64"]


def _call(x, W, target, b, w, g):
    call = linear.Call(x, W, target, b, w, IGNORE)
    call.grad_output = g
    return call


def _rounded(values) -> np.ndarray:
    return np.array([float(v) for v in values])  # mpmath rounds to nearest


def _record_exact_products(monkeypatch) -> list:
    """The shapes of the left operands of the tier's all-exact ``split_product`` calls, as the
    tier makes them (a list that fills as it runs)."""
    real, exact_calls = tier.split_product, []

    def recording(a, b, reuse=True, exact_levels=None, row_bound=False):
        if exact_levels is None:
            exact_calls.append(a.shape)
        return real(a, b, reuse, exact_levels, row_bound)

    monkeypatch.setattr(tier, "split_product", recording)
    return exact_calls


@settings(max_examples=60, deadline=None)
@given(cases(formats=("float64",)))
def test_what_it_certifies_is_the_correctly_rounded_value(case):
    x, W, target, b, w, reduction, g, _ = case
    call = _call(x, W, target, b, w, g)
    (N, D), C = x.shape, W.shape[0]
    with mp.workdps(100):
        exact = oracle(x, W, b, target, w, reduction, g)
    value = tier.loss(call, reduction)
    want = _rounded(exact["value"]).reshape(value.rounded.shape)
    assert np.array_equal(value.rounded[value.ok], want[value.ok])
    gradients = tier.gradients(call, reduction)
    if gradients is None:  # split_product steps aside: G holds values near float64's floor
        logits = x @ W.T + (0 if b is None else b)
        assert np.ptp(logits, axis=1).max() > 300
        return
    _assert_certified_are_rounded(*gradients, exact, N, D, C)


def _assert_certified_are_rounded(d_input, sums, exact, N, D, C):
    """Every gradient element the tier certified is the oracle's rounding."""
    want_input = _rounded(exact["input"]).reshape(N, D)
    assert np.array_equal(d_input.rounded[d_input.ok], want_input[d_input.ok])
    want_sums = np.concatenate([_rounded(exact["linear_weight"]).reshape(C, D),
                                _rounded(exact["linear_bias"]).reshape(C, 1)], axis=1)
    assert np.array_equal(sums.rounded[sums.ok], want_sums[sums.ok])


def _logit_parts(rng, n: int, C: int) -> tuple:
    """A fused kernel's logits as sum_parts takes them: three parts of decreasing size, a bias,
    an extra error and a bound that differ per element."""
    parts = rng.standard_normal((3, n, C)) * np.array([4.0, 2.0 ** -20, 2.0 ** -45])[:, None, None]
    bias, extra_error = rng.standard_normal((1, C)), rng.random((n, C)) * 1e-25
    return parts, bias, extra_error, rng.random((n, C)) * 1e-22


def test_the_fused_loss_kernel_is_the_sum_of_parts_then_the_loss_rows():
    """softmax_loss_parts adds the parts a row at a time instead of writing the logits out;
    its results are those of sum_parts followed by softmax_loss_rows, bit for bit, with a bias,
    an extra error and a bound that differ per element."""
    dd = pytest.importorskip("loss_reference.double_double")
    rng = np.random.default_rng(4)
    n, C = 9, 70
    parts, bias, extra_error, bound = _logit_parts(rng, n, C)
    target, weight = rng.integers(0, C, n), rng.random(n) + 0.5
    weight[2] = 0.0
    fused = [np.empty(n) for _ in range(3)] + [np.empty(n, dtype=bool)]
    dd.softmax_loss_parts(parts, bias, extra_error, bound, target, weight, 1 / 64,
                          *dd.exp_constants(), *fused)
    hi, lo, error = np.empty((n, C)), np.empty((n, C)), np.empty((n, C))
    dd.sum_parts(parts, bias, extra_error, bound, hi, lo, error)
    apart = [np.empty(n) for _ in range(3)] + [np.empty(n, dtype=bool)]
    dd.softmax_loss_rows(hi, lo, error.max(axis=1), np.argmax(hi, axis=1), target, weight,
                         1 / 64, *dd.exp_constants(), *apart)
    for got, want in zip(fused, apart):
        assert np.array_equal(got, want)
    assert fused[3].sum() >= n - 1


def test_the_fused_gradient_kernel_is_the_sum_of_parts_then_the_gradient_rows():
    """softmax_gradient_parts adds the parts a row at a time instead of writing the logits
    out; its G, bounds and verdicts are those of sum_parts followed by softmax_gradient_rows,
    bit for bit, with either exponential, a zero row (no parts added) and a row whose target
    is its largest logit."""
    dd = pytest.importorskip("loss_reference.double_double")
    rng = np.random.default_rng(5)
    n, C = 9, 70
    parts, bias, extra_error, bound = _logit_parts(rng, n, C)
    target, a, w = rng.integers(0, C, n), rng.standard_normal(n), rng.random(n) + 0.5
    zero = np.zeros(n, dtype=bool)
    zero[3] = True
    parts[0, 5, target[5]] += 50.0
    for quick in (True, False):
        fused = [np.empty((n, C)), np.empty((n, C)), np.empty(n), np.empty(n, dtype=bool)]
        dd.softmax_gradient_parts(parts, bias, extra_error, bound, target, a, w, 3.0, 0.0, zero,
                                  1 / 64, *dd.exp_constants(), *fused, quick)
        hi, lo, error = np.empty((n, C)), np.empty((n, C)), np.empty((n, C))
        dd.sum_parts(parts, bias, extra_error, bound, hi, lo, error)
        apart = [np.empty((n, C)), np.empty((n, C)), np.empty(n), np.empty(n, dtype=bool)]
        dd.softmax_gradient_rows(hi, lo, error.max(axis=1), np.argmax(hi, axis=1), target, a, w,
                                 3.0, 0.0, zero, 1 / 64, *dd.exp_constants(), *apart, quick)
        for got, want in zip(fused, apart):
            assert np.array_equal(got, want), quick
        assert fused[3].sum() >= n - 2 and fused[3][3] and not fused[0][3].any()


def test_the_tokens_left_take_dot_products_without_splitting_the_weight(monkeypatch):
    """With no exact level the first pass leaves most losses; up to DOT_TOKENS of them take
    ``dot_rows`` (Dot2) instead of exact products: no exact split_product runs, and every
    loss is certified and correctly rounded, with a bias and spread entries."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((24, 16)) * np.exp2(rng.integers(-30, 4, (24, 1)))
    W, b = rng.standard_normal((300, 16)) / 4, rng.standard_normal(300)
    target = rng.integers(0, 300, 24)
    target[::7] = IGNORE
    exact_calls = _record_exact_products(monkeypatch)
    monkeypatch.setattr(tier, "levels", lambda inner, rest=None: 0)
    got = tier.loss(_call(x, W, target, b, None, None), "none")
    assert not exact_calls and got.ok.all()
    with mp.workdps(100):
        want = _rounded(oracle(x, W, b, target, None, "none", np.ones(24))["value"])
    assert np.array_equal(got.rounded.reshape(-1), want)


def test_dot_rows_hold_the_exact_products_within_their_bounds():
    """Products of entries over 600 binades, some cancelling, and exact zeros: each logit
    within its bound of the exact sum (Fractions), its hi the sum rounded."""
    from fractions import Fraction

    dd = pytest.importorskip("loss_reference.double_double")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 12)) * np.exp2(rng.integers(-300, 300, (3, 12)))
    x[0, :3] = 0.0
    W = rng.standard_normal((40, 12)) * np.exp2(rng.integers(-300, 140, (40, 12)))
    W[5] = -W[5] * (x[1] != 0)  # a row whose products with x[1] cancel pairwise below
    W[5, ::2] = W[5, 1::2]
    b = rng.standard_normal(40)
    hi, lo, error = (np.empty((3, 40)) for _ in range(3))
    dd.dot_rows(x, np.ascontiguousarray(W.T), b, hi, lo, error)
    for i in range(3):
        for c in range(40):
            exact = Fraction(b[c]) + sum(Fraction(x[i, d]) * Fraction(W[c, d])
                                         for d in range(12))
            assert abs(Fraction(hi[i, c]) + Fraction(lo[i, c]) - exact) <= Fraction(error[i, c])
            assert hi[i, c] == float(Fraction(hi[i, c]) + Fraction(lo[i, c]))


def test_a_typical_batch_is_certified_by_this_tier():
    spec = SPECS["linear_cross_entropy"]
    case = spec.speed.case((64, 16, 256), "float64", np.random.default_rng(0))
    engine.STATS.clear()
    spec.reference(case)
    spec.reference_grad(case)
    assert engine.STATS[tier.TIER] == sum(engine.STATS.values()) > 0


def test_applies_to_float64_results_only():
    call = _call(np.ones((2, 3)), np.ones((4, 3)), np.array([0, 1]), None, None, 1.0)
    assert tier.applies(call, FLOAT64)
    assert not tier.applies(call, FORMATS["float32"])


def test_probability_targets_take_this_tier_for_float64_results():
    call = _call(np.ones((2, 3)), np.ones((4, 3)), np.full((2, 4), 0.25), None, None, 1.0)
    assert tier.applies(call, FLOAT64)
    assert not tier.applies(call, FORMATS["float32"])


@settings(max_examples=40, deadline=None)
@given(cases(formats=("float64",)), st.sampled_from([0.0, 0.1]), st.booleans())
def test_what_it_certifies_with_probability_targets_is_the_correctly_rounded_value(
        case, smoothing, distribution):
    """``soft_loss`` (the logits as double-doubles, then ``double_double.softmax_soft_rows``)
    on layers whose products err, targets that are distributions or any numbers in [0, 1],
    class weights, label smoothing: what it certifies is the oracle's rounding, and a
    loss of a few tokens whose logits spread moderately is certified whole."""
    x, W, _, b, w, reduction, g, _ = case
    (N, D), C = x.shape, W.shape[0]
    rng = np.random.default_rng(int(abs(x).sum() * 1e3) % 2 ** 32)
    p = rng.random((N, C))
    if distribution:
        p /= p.sum(axis=1, keepdims=True)
    value = tier.loss(_call(x, W, p, b, w, g), reduction, smoothing)
    if value is None:  # split_product steps aside
        return
    with mp.workprec(300):
        logits = np.array([[mp.fsum(mpf(x[i, d]) * mpf(W[c, d]) for d in range(D))
                            + mpf(0.0 if b is None else b[c]) for c in range(C)]
                           for i in range(N)], dtype=object)
    want, _, _, _ = soft_oracle(logits, p, w, reduction, 1.0, smoothing)
    assert np.array_equal(value.rounded[value.ok], want.reshape(value.rounded.shape)[value.ok])
    spread = max(float(max(row) - min(row)) for row in logits)
    if spread < 20 and C > 1:
        assert value.ok.all()


def _round_exact(value, fmt) -> float:
    """An mpmath number rounded once to ``fmt`` (float64 where None)."""
    if fmt is None:
        return float(value)
    sign, man, exp, _ = value._mpf_
    return correctly_round(Fraction(-man if sign else man) * Fraction(2) ** exp, fmt)[0]


def soft_gradients_oracle(x, W, b, p, w, reduction, g, smoothing, fmt=None):
    """{name: values rounded to fmt} of linear_cross_entropy's gradients with probability
    targets, at 300 bits: G = h (Q softmax - u) per token (u = w ((1 - e) p + e / C), Q =
    sum u, h = g / divisor), d input = G W, d W = G^T x, d b = G's column sums, d p =
    h (1 - e) w nlp and d w = the sum over tokens of h ((1 - e) p + e / C) nlp."""
    (N, D), C = x.shape, W.shape[0]
    b = np.zeros(C) if b is None else b
    w = np.ones(C) if w is None else w
    r = lambda v: _round_exact(v, fmt)  # noqa: E731
    out = {"input": np.empty((N, D)), "linear_weight": np.empty((C, D)),
           "linear_bias": np.empty(C), "target": np.empty((N, C)), "weight": np.empty(C)}
    with mp.workprec(300):
        e, divisor = mpf(smoothing), mpf(N) if reduction == "mean" else mpf(1)
        G, d_w = [], [mpf(0)] * C
        for i in range(N):
            z = [mp.fsum(mpf(x[i, d]) * mpf(W[c, d]) for d in range(D)) + mpf(b[c])
                 for c in range(C)]
            lse = mp.log(mp.fsum(mp.exp(v) for v in z))
            q = [(1 - e) * mpf(p[i, c]) + e / C for c in range(C)]
            u = [mpf(w[c]) * q[c] for c in range(C)]
            h = mpf(float(np.ravel(g)[i] if reduction == "none" else g)) / divisor
            G.append([h * (mp.fsum(u) * mp.exp(z[c] - lse) - u[c]) for c in range(C)])
            out["target"][i] = [r(h * (1 - e) * mpf(w[c]) * (lse - z[c])) for c in range(C)]
            d_w = [d_w[c] + h * q[c] * (lse - z[c]) for c in range(C)]
        out["input"][:] = [[r(mp.fsum(G[i][c] * mpf(W[c, d]) for c in range(C)))
                            for d in range(D)] for i in range(N)]
        out["linear_weight"][:] = [[r(mp.fsum(G[i][c] * mpf(x[i, d]) for i in range(N)))
                                    for d in range(D)] for c in range(C)]
        out["linear_bias"][:] = [r(mp.fsum(G[i][c] for i in range(N))) for c in range(C)]
        out["weight"][:] = [r(v) for v in d_w]
    return out


@settings(max_examples=60, deadline=None)
@given(cases(formats=("float64", "float32", "bfloat16")), st.sampled_from([0.0, 0.1]))
def test_what_it_certifies_of_the_probability_targets_gradients_is_correctly_rounded(
        case, smoothing):
    """``soft_gradients`` on layers whose products err, with class weights and label
    smoothing, rounded to float64 or (``certify_narrower``) float32 and bfloat16: each
    certified element of d input, d [W, b], d target and d weight is the oracle's rounding,
    and d input and d target of a few tokens whose logits spread moderately are all certified
    (d [W, b] sums over the tokens, which may cancel)."""
    x, W, _, b, w, reduction, g, fmt = case
    N, C = x.shape[0], W.shape[0]
    rng = np.random.default_rng(int(abs(x).sum() * 1e3) % 2 ** 32)
    p = to_format(rng.random((N, C)), fmt)
    known = tier.soft_gradients(_call(x, W, p, b, w, g), reduction, smoothing, True, fmt)
    if known is None:  # split_product steps aside
        return
    want = soft_gradients_oracle(x, W, b, p, w, reduction, g, smoothing,
                                 None if fmt == FLOAT64 else fmt)
    layer = np.concatenate([want["linear_weight"], want["linear_bias"][:, None]], axis=1)
    for name, expected in (("input", want["input"]), ("layer", layer),
                           ("target", want["target"].reshape(N, 1, C)),
                           ("weight", want["weight"])):
        got = known[name]
        assert np.array_equal(got.rounded[got.ok], expected[got.ok]), name
    logits = x @ W.T + (0 if b is None else b)
    if np.ptp(logits, axis=1).max() < 20 and C > 1:
        assert known["input"].ok.all() and known["target"].ok.all()


def test_narrower_results_are_certified_only_where_every_point_of_the_ball_rounds_alike():
    """``_certified`` for float32: an element on a float32 tie (1 + 2^-24) known within
    2^-60 is not certified, nor is its row where ok is per row; the exact tie and a value
    off the tie are."""
    dd = pytest.importorskip("loss_reference.double_double")
    tie = 1.0 + 2.0 ** -24
    hi, lo = np.array([[1.0, tie], [1.0, tie]]), np.zeros((2, 2))
    error = np.array([[0.0, 2.0 ** -60], [0.0, 0.0]])
    fp32 = FORMATS["float32"]
    elements = tier._certified(dd, hi, lo, error, fp32)
    assert elements.ok.tolist() == [[True, False], [True, True]]
    assert elements.rounded[1].tolist() == [1.0, 1.0]  # the exact tie: to even
    assert tier._certified(dd, hi, lo, error, fp32, rows_only=True).ok.tolist() == [False, True]


def test_probability_targets_gradients_through_this_tier_are_the_engines(monkeypatch):
    """The whole reference (``linear.loss_grad``) with this tier and without it (the engine's
    tiers alone) gives the same roundings of every gradient, with a bias, class weights and
    label smoothing; with it, every one is this tier's."""
    rng = np.random.default_rng(11)
    x, W, b = rng.standard_normal((6, 4)), rng.standard_normal((7, 4)), rng.standard_normal(7)
    p = rng.random((6, 7))
    p /= p.sum(axis=1, keepdims=True)
    weight = rng.uniform(0.5, 2.0, 7)
    args = (np.array(0.75), x, W, p, b, weight, None, 0.1, "mean", FLOAT64)
    engine.STATS.clear()
    fast_tier = linear.loss_grad(*args)
    assert engine.STATS[tier.TIER] == sum(engine.STATS.values())
    monkeypatch.setattr(tier, "applies", lambda call, fmt: False)
    engine_only = linear.loss_grad(*args)
    assert set(fast_tier) == {"input", "linear_weight", "linear_bias", "target", "weight"}
    for name, result in fast_tier.items():
        assert np.array_equal(result.rounded, engine_only[name].rounded), name


def test_a_typical_batch_with_probability_targets_is_certified_by_this_tier():
    """The loss of 64 tokens of 256 classes with probability targets, 'none' and 'mean': every
    token's from this tier (the engine's long double balls and arb took 1.4 s at 512 x 4096)."""
    spec = SPECS["linear_cross_entropy"]
    case = spec.speed.case((64, 16, 256), "float64", np.random.default_rng(0))
    p = np.random.default_rng(1).random((64, 256))
    p /= p.sum(axis=1, keepdims=True)
    for reduction in ("none", "mean"):
        options = {**case.options, "label_smoothing": 0.1, "reduction": reduction}
        engine.STATS.clear()
        spec.reference(dataclasses.replace(case, args={**case.args, "target": p},
                                           options=options))
        assert engine.STATS[tier.TIER] == sum(engine.STATS.values()) > 0


@settings(max_examples=40, deadline=None)
@given(cases(formats=("float64",)), st.sampled_from([0.1, 0.5, 1.0, 0.3333333333333333]))
def test_what_it_certifies_with_label_smoothing_is_the_correctly_rounded_value(case, smoothing):
    """The loss with label smoothing (``double_double.softmax_smoothed_loss_parts``) and the
    gradients (``SoftmaxGradient.smoothed_rows``: the kernel's gradient of unit weight times K,
    plus k (S [c = t] - w_c)), where G cancels as the softmax meets the smoothing's share:
    what it certifies is the oracle's rounding."""
    x, W, target, b, w, reduction, g, _ = case
    call = _call(x, W, target, b, w, g)
    (N, D), C = x.shape, W.shape[0]
    with mp.workdps(100):
        exact = oracle(x, W, b, target, w, reduction, g, smoothing)
    value = tier.loss(call, reduction, smoothing)
    if value is not None:
        want = _rounded(exact["value"]).reshape(value.rounded.shape)
        assert np.array_equal(value.rounded[value.ok], want[value.ok])
    gradients = tier.gradients(call, reduction, smoothing)
    if gradients is None:  # split_product steps aside
        return
    _assert_certified_are_rounded(*gradients, exact, N, D, C)


def test_a_typical_batch_with_label_smoothing_is_certified_by_this_tier():
    """float64 with label smoothing 0.1, some tokens ignored: every loss and gradient element
    from this tier (the engine's arb took 6 s for the gradient of 64 tokens of 512 classes),
    and the losses' few tokens left to exact logits (Dot2) too."""
    spec = SPECS["linear_cross_entropy"]
    case = spec.speed.case((64, 16, 256), "float64", np.random.default_rng(0))
    for reduction in ("none", "mean"):
        options = {**case.options, "label_smoothing": 0.1, "reduction": reduction}
        engine.STATS.clear()
        spec.reference(dataclasses.replace(case, options=options))
        spec.reference_grad(dataclasses.replace(case, options=options))
        assert engine.STATS[tier.TIER] == sum(engine.STATS.values()) > 0


def test_the_smoothed_loss_of_exact_logits_is_the_parts_ones():
    """``softmax_smoothed_loss_rows`` (logits given whole: the Dot2 tokens) and
    ``softmax_smoothed_loss_parts`` give the same bits on the same logits; a row not counted
    is exactly 0."""
    dd = pytest.importorskip("loss_reference.double_double")
    rng = np.random.default_rng(6)
    n, C = 7, 40
    parts, bias, extra_error, bound = _logit_parts(rng, n, C)
    target, w_t = rng.integers(0, C, n), rng.random(n) + 0.5
    counted = np.ones(n, dtype=bool)
    counted[4], w_t[4] = False, 0.0
    weight = rng.uniform(-0.5, 2.0, C)
    S = exact_divisor(weight)
    fused = [np.empty(n) for _ in range(3)] + [np.empty(n, dtype=bool)]
    dd.softmax_smoothed_loss_parts(parts, bias, extra_error, bound, target, w_t, counted,
                                   weight, 0.2, *S, 1 / 64, *dd.exp_constants(), *fused)
    hi, lo, error = np.empty((n, C)), np.empty((n, C)), np.empty((n, C))
    dd.sum_parts(parts, bias, extra_error, bound, hi, lo, error)
    apart = [np.empty(n) for _ in range(3)] + [np.empty(n, dtype=bool)]
    dd.softmax_smoothed_loss_rows(hi, lo, error.max(axis=1), np.argmax(hi, axis=1), target,
                                  w_t, counted, weight, 0.2, *S, 1 / 64, *dd.exp_constants(),
                                  *apart)
    for got, want in zip(fused, apart):
        assert np.array_equal(got, want)
    assert fused[0][4] == fused[1][4] == fused[2][4] == 0 and fused[3][4]
    assert fused[3].sum() >= n - 1


@settings(max_examples=40, deadline=None)
@given(cases())
def test_as_a_later_tier_its_balls_hold_the_exact_values(case):
    """For float32, bfloat16 and float16 layers, the refinement's float64 balls (hi, with lo
    and the bound as the radius) on every token and class hold the oracle's values."""
    x, W, target, b, w, reduction, g, _ = case
    call = _call(x, W, target, b, w, g)
    D = x.shape[1]
    with mp.workdps(100):
        exact = oracle(x, W, b, target, w, reduction, g)
        d_input, layer = tier.refine(call, reduction, np.arange(len(x)),
                                     np.arange(W.shape[0]))
        _assert_holds(d_input, exact["input"], "input")
        _assert_holds(layer[:, :D], exact["linear_weight"], "linear_weight")
        _assert_holds(layer[:, D], exact["linear_bias"], "linear_bias")
        exact = oracle(x, W, b, target, w, reduction, g, 0.25)
        d_input, layer = tier.refine(call, reduction, np.arange(len(x)),
                                     np.arange(W.shape[0]), smoothing=0.25)
        _assert_holds(d_input, exact["input"], "input (smoothing)")
        _assert_holds(layer[:, :D], exact["linear_weight"], "linear_weight (smoothing)")
        _assert_holds(layer[:, D], exact["linear_bias"], "linear_bias (smoothing)")


def test_what_float32_first_tier_leaves_takes_it_before_long_double(monkeypatch):
    """float32 at (256, 64, 1024): the first tier's norms leave classes, the sharp bounds
    take most of them and leave sums that cancel (a few tokens and classes); this tier
    certifies them all, and long double's tier is not run."""
    long_double, sharpened, refined = [], [], []
    sharpen, refine = tier.sharpen, tier.refine

    def recorded_sharpen(kept, tokens, classes):
        sharpened.append(len(classes))
        return sharpen(kept, tokens, classes)

    def recorded_refine(call, reduction, tokens, classes, kept=None, smoothing=0.0):
        refined.append(len(classes))
        return refine(call, reduction, tokens, classes, kept, smoothing)

    monkeypatch.setattr(tier, "sharpen", recorded_sharpen)
    monkeypatch.setattr(tier, "refine", recorded_refine)
    monkeypatch.setattr(linear_fast, "refine", lambda *args: long_double.append(args))
    spec = SPECS["linear_cross_entropy"]
    case = spec.speed.case((256, 64, 1024), "float32", np.random.default_rng(0))
    a = case.args
    call = _call(a["input"], a["linear_weight"], a["target"], None, None, np.array(1.0))
    known_input, known_sums = linear_fast.gradients(call, "mean", FORMATS["float32"],
                                                    linear.ROW_CHUNK_LOGITS)
    assert known_input.ok.all() and known_sums.ok.all() and not long_double
    assert known_sums.tiers.get(tier.TIER, 0) > 0
    # each tier once for the tokens and once for the classes (side by side)
    assert len(sharpened) == len(refined) == 2 and 0 < sum(refined) < sum(sharpened)


def test_without_numba_the_engine_and_long_double_compute_the_same(monkeypatch):
    """Where numba does not import, this tier steps aside: float64 results come from the
    engine's tiers, float32's later tier from long double, and they are the same roundings."""
    x, W = np.array([[0.5, -1.25], [2.0, 0.75]]), np.array([[1.0, 0.5], [-0.5, 2.0], [3.0, 1.0]])
    target, g = np.array([2, 0]), np.array(1.0)
    with mp.workdps(100):
        exact = oracle(x, W, None, target, None, "mean", g)
    monkeypatch.setattr(tier, "kernels", lambda: None)
    engine.STATS.clear()
    value = linear.loss(x, W, target, None, None, IGNORE, 0.0, "mean", FLOAT64)
    grads = linear.loss_grad(g, x, W, target, None, None, IGNORE, 0.0, "mean", FLOAT64)
    assert engine.STATS[tier.TIER] == 0
    assert float(value.rounded) == float(exact["value"][0])
    assert np.array_equal(grads["input"].rounded, _rounded(exact["input"]).reshape(2, 2))
    assert np.array_equal(grads["linear_weight"].rounded,
                          _rounded(exact["linear_weight"]).reshape(3, 2))
    assert tier.refine(_call(x, W, target, None, None, g), "mean", np.arange(2),
                       np.arange(3)) is None


def test_what_the_cheap_products_leave_the_exact_products_certify(monkeypatch):
    """With no exact level (each product one BLAS product, its rounding bounded: 2^-45 of the
    operands' norms), the first pass leaves most losses and gradient elements; the second
    pass, from exact products on the tokens and classes left, certifies them: every result
    certified, and each the one all-exact products give."""
    rng = np.random.default_rng(1)
    x, W = rng.standard_normal((64, 16)), rng.standard_normal((2048, 16)) / 4
    target = rng.integers(0, 2048, 64)
    target[::10] = IGNORE

    def results(levels):
        monkeypatch.setattr(tier, "levels", lambda inner, rest=None: levels)
        call = _call(x, W, target, None, None, np.array(1.0))
        return tier.loss(call, "none"), *tier.gradients(call, "mean")

    exact_calls = _record_exact_products(monkeypatch)
    reference = results(6)  # 138 bits: no rest left for these operands
    assert not exact_calls
    cheap = results(0)
    assert exact_calls  # the second pass ran, on what the first left
    for got, want in zip(cheap, reference):
        assert got.ok.all() and want.ok.all()
        assert np.array_equal(got.rounded, want.rounded)


def test_the_smoothing_kernel_bounds_each_element_by_its_terms_sizes():
    """``double_double.smoothed_gradient_rows`` on exact g (eps 0) with inexact constants
    (e = 1/3, weights, upstream and divisor of 53 random bits): every element of G lies within
    eps times its magnitude of the exact K g + k (S [c = t] - w_c), also where g is 0 (the
    smoothing term alone), where w_t is 0 (K is the smoothing's share alone) and where the
    terms cancel."""
    dd = pytest.importorskip("loss_reference.double_double")
    rng = np.random.default_rng(7)
    n, C = 6, 5
    g_hi = rng.standard_normal((n, C)) * np.exp(rng.uniform(-30, 0, (n, C)))
    g_hi[:, 1] = 0.0
    g_lo = g_hi * rng.uniform(-1, 1, (n, C)) * 2.0 ** -60
    t = rng.integers(0, C, n)
    a = rng.standard_normal(n)
    weight = rng.uniform(-1, 2, C)
    w_t = weight[t]
    w_t[2], a[2] = 0.0, 1e-25  # K the smoothing's share alone, the term k (...) negligible
    divisor = (3.7, 1.1e-16)
    smoothing = 1 / 3
    S = exact_divisor(weight)
    eps, magnitude = np.zeros(n), np.empty((n, C))
    G_hi, G_lo = g_hi.copy(), g_lo.copy()
    dd.smoothed_gradient_rows(G_hi, G_lo, eps, t, a, w_t, *divisor, smoothing, C, *S, weight,
                              magnitude)
    assert np.isfinite(eps).all() and (eps > 0).all()
    with mp.workdps(60):
        e, D = mpf(smoothing), mpf(divisor[0]) + mpf(divisor[1])
        S_exact = mp.fsum(mpf(v) for v in weight)
        for i in range(n):
            K = (1 - e) * mpf(w_t[i]) + e / C * S_exact
            k = e / C * mpf(a[i]) / D
            for c in range(C):
                g = mpf(g_hi[i, c]) + mpf(g_lo[i, c])
                exact = K * g + k * ((S_exact if c == t[i] else 0) - mpf(weight[c]))
                got = mpf(G_hi[i, c]) + mpf(G_lo[i, c])
                assert abs(got - exact) <= mpf(eps[i]) * mpf(magnitude[i, c]), (i, c)


def test_the_smoothed_loss_bound_holds_for_any_logits_within_their_error():
    """``softmax_smoothed_loss_parts`` with logits known within 1e-12 each (``bound``): the
    exact loss of logits moved by 1e-12 in the direction that raises it most (each against
    the sign of its own term's derivative) stays within the returned bound, with class
    weights that nearly cancel, a zero target weight and e = 1 (the smoothing term alone)."""
    dd = pytest.importorskip("loss_reference.double_double")
    rng = np.random.default_rng(8)
    n, C, beta = 5, 9, 1e-12
    z = rng.standard_normal((n, C)) * 3
    target, w_t = rng.integers(0, C, n), rng.random(n) + 0.5
    # weights of both signs that nearly cancel (S = 0.01): the spread's own error, beta
    # sum |w_c|, is then far beyond what log E's carries, beta |S|
    weight = np.where(np.arange(C) % 2, -1.0, 1.0) * rng.uniform(1.0, 2.0, C)
    weight[-1] -= weight.sum() - 0.01
    w_t[1] = 0.0
    S = exact_divisor(weight)
    for smoothing in (0.3, 1.0):
        out = [np.empty(n) for _ in range(3)] + [np.empty(n, dtype=bool)]
        dd.softmax_smoothed_loss_parts(z[None], np.empty((0, C)), np.zeros((n, C)),
                                       np.full((n, C), beta), target, w_t, np.ones(n, bool),
                                       weight, smoothing, *S, 1 / 64, *dd.exp_constants(), *out)
        assert np.isfinite(out[2]).all()
        with mp.workdps(60):
            e = mpf(smoothing)
            for i in range(n):
                row = [mpf(v) for v in z[i]]
                total = mp.fsum(mp.exp(v) for v in row)
                p = [mp.exp(v) / total for v in row]
                t = int(target[i])
                slope = [(1 - e) * mpf(w_t[i]) * (p[c] - (c == t))
                         + e / C * (mp.fsum(mpf(v) for v in weight) * p[c] - mpf(weight[c]))
                         for c in range(C)]
                moved = [row[c] + (beta if slope[c] > 0 else -beta) for c in range(C)]
                lse = mp.log(mp.fsum(mp.exp(v) for v in moved))
                exact = ((1 - e) * mpf(w_t[i]) * (lse - moved[t])
                         + e / C * mp.fsum(mpf(weight[c]) * (lse - moved[c]) for c in range(C)))
                got = mpf(out[0][i]) + mpf(out[1][i])
                assert abs(got - exact) <= mpf(out[2][i]), (smoothing, i)
