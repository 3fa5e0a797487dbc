"""linear_cross_entropy's fast tiers (loss_reference/linear_fast.py): their balls hold the
exact values, on cases drawn to make a float64 product err (logits that cancel, spreads of
1e6, tiny entries), and they certify the typical inputs of a language model's head.

The exact values come from an mpmath oracle written without cancellation, as the tier covers
the loss (index targets, no smoothing): every logit an exact sum at 100 digits, e_c =
exp(z_c - max z) and the target's softmax complement as the sum of the others, so that a row
whose softmax is 1 - 1e-76 keeps every digit of its gradient. A ball that misses its exact
value would let the engine certify a wrong rounding; the end-to-end tests in
test_reference_linear check roundings, these check the bounds themselves.
"""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from mpmath import mp, mpf
from test_reference import assert_certified, to_format

from conformance.specs import SPECS
from loss_reference import linear
from loss_reference.balls import FLOAT64, LONG_DOUBLE
from loss_reference.engine import certify
from loss_reference import linear_fast as fast
from loss_reference import linear_float64 as double_double_tier
from loss_reference.formats import FORMATS

IGNORE = -100


def _call(x, W, target, b, w, reduction, g):
    call = linear.Call(x, W, target, b, w, IGNORE)
    call.grad_output = g
    return call


def oracle(x, W, b, target, w, reduction, g, smoothing=0.0):
    """{'value': [...], 'input': [...], 'linear_weight': [...], 'linear_bias': [...]}, flat,
    exact to far more than float64's digits; with label smoothing e, torch's formula: per
    token (1 - e) w_t nlp_t + (e / C) sum_c w_c nlp_c, and its gradient in z_c,
    (1 - e) w_t (p_c - [c = t]) + (e / C) (S_w p_c - w_c)."""
    (N, D), C = x.shape, W.shape[0]
    b = np.zeros(C) if b is None else b
    w = np.ones(C) if w is None else w
    mp_ = lambda v: mpf(float(v))  # noqa: E731
    counted = [mp_(w[t]) for t in target if t != IGNORE]
    divisor = mp.fsum(counted) if reduction == "mean" else mpf(1)
    e = mp_(smoothing)
    weight_sum = mp.fsum(mp_(v) for v in w)
    losses, G = [], []
    for i in range(N):
        t = int(target[i])
        if t == IGNORE:
            losses.append(mpf(0))
            G.append([mpf(0)] * C)
            continue
        z = [mp.fsum(mp_(x[i, d]) * mp_(W[c, d]) for d in range(D)) + mp_(b[c])
             for c in range(C)]
        top = max(z)
        k = z.index(top)
        exps = [mp.exp(v - top) for v in z]
        others = mp.fsum(exps[c] for c in range(C) if c != k)
        total = 1 + others
        nlp = [(top - z[c]) + mp.log1p(others) for c in range(C)]
        losses.append((1 - e) * mp_(w[t]) * nlp[t]
                      + e / C * mp.fsum(mp_(w[c]) * nlp[c] for c in range(C)))
        a = mp_(np.ravel(g)[i]) if reduction == "none" else mp_(g) / divisor
        rest = mp.fsum(exps[c] for c in range(C) if c != t)
        G.append([a * ((1 - e) * mp_(w[t]) * (-rest if c == t else exps[c]) / total
                       + e / C * (weight_sum * exps[c] / total - mp_(w[c])))
                  for c in range(C)])
    value = losses if reduction == "none" else [mp.fsum(losses) / divisor]
    return {"value": value,
            "input": [mp.fsum(G[i][c] * mp_(W[c, d]) for c in range(C))
                      for i in range(N) for d in range(D)],
            "linear_weight": [mp.fsum(G[i][c] * mp_(x[i, d]) for i in range(N))
                              for c in range(C) for d in range(D)],
            "linear_bias": [mp.fsum(G[i][c] for i in range(N)) for c in range(C)]}


def _mpf(value) -> mpf:
    """A float64 or long double number, exactly."""
    numerator, denominator = value.as_integer_ratio()
    return mpf(numerator) / denominator


def _assert_holds(ball, exact, name):
    """Every exact value lies in its ball: |mid - exact| <= rad, in mpmath (an infinite radius
    holds anything)."""
    mids, rads = np.ravel(ball.mid), np.ravel(np.broadcast_to(ball.rad, np.shape(ball.mid)))
    assert len(mids) == len(exact), name
    for i, (mid, rad, value) in enumerate(zip(mids, rads, exact)):
        if rad == np.inf:  # a tier's way of leaving an output to the next
            continue
        assert abs(_mpf(mid) - value) <= _mpf(rad), (
            f"{name}[{i}]: {float(mid)!r} +- {float(rad)!r} misses {mp.nstr(value, 25)}")


@st.composite
def cases(draw, formats=("float32", "bfloat16", "float16")):
    """Small layers whose products err: entries of spreads up to 1e6, logits whose sums
    cancel, tiny and zero entries; inputs of one of ``formats``."""
    fmt = FORMATS[draw(st.sampled_from(formats))]
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    N, D, C = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 6))
    spread = draw(st.sampled_from([1.0, 30.0, 1e3]))
    x = rng.normal(size=(N, D)) * spread ** rng.uniform(-1, 1, (N, D))
    W = rng.normal(size=(C, D)) * spread ** rng.uniform(-1, 1, (C, D))
    if D > 2 and draw(st.booleans()):
        # x_0 w_0 + x_1 w_1 - x_0 w_0: the first sum rounds away x_1 w_1's bits, and the
        # third term cancels what is left (in the order most products add)
        x[:, 1] *= 2.0 ** -30
        x[:, 2], W[:, 2] = -x[:, 0], W[:, 0]
    if draw(st.booleans()):
        x[rng.random((N, D)) < 0.3] = 0.0
    b = to_format(rng.normal(size=C) * spread, fmt) if draw(st.booleans()) else None
    w = to_format(rng.uniform(0.0, 2.0, C), fmt) if draw(st.booleans()) else None
    target = rng.integers(0, C, N)
    target[rng.random(N) < 0.25] = IGNORE
    reduction = draw(st.sampled_from(["none", "sum", "mean"]))
    if reduction == "mean" and (target == IGNORE).all():
        target[0] = 0
    g = to_format(rng.normal(size=N) if reduction == "none" else np.array(rng.normal()), fmt)
    return to_format(x, fmt), to_format(W, fmt), target, b, w, reduction, g, fmt


def _assert_fast_tier_holds(x, W, target, b, w, reduction, g,
                            chunk_logits=linear.ROW_CHUNK_LOGITS, smoothing=0.0):
    """The fast tier's loss and every gradient hold the oracle's exact values."""
    call = _call(x, W, target, b, w, reduction, g)
    with mp.workdps(100):
        exact = oracle(x, W, b, target, w, reduction, g, smoothing)
        _assert_holds(fast.loss_balls(call, reduction, chunk_logits, smoothing),
                      exact["value"], "value")
        D = x.shape[1]
        for sharp in (True, False):
            d_input, layer = fast.gradient_balls(call, reduction, chunk_logits, sharp,
                                                 smoothing=smoothing)
            _assert_holds(d_input, exact["input"], f"input (sharp {sharp})")
            _assert_holds(layer[:, :D], exact["linear_weight"], f"linear_weight (sharp {sharp})")
            _assert_holds(layer[:, D], exact["linear_bias"], f"linear_bias (sharp {sharp})")
        # the later tiers, on every token and class (float64 and long double balls), and
        # float64 from the cheap first tier's kept softmax
        kept = fast.KeptRows(len(x))
        fast.gradient_balls(call, reduction, chunk_logits, False, kept=kept, smoothing=smoothing)
        d_input, layer = fast.refine_from_kept(call, reduction, np.arange(len(x)),
                                               np.arange(W.shape[0]), kept, smoothing)
        _assert_holds(d_input, exact["input"], "input (kept)")
        _assert_holds(layer[:, :D], exact["linear_weight"], "linear_weight (kept)")
        _assert_holds(layer[:, D], exact["linear_bias"], "linear_bias (kept)")
        _assert_double_double_tiers_hold(call, reduction, exact, D, smoothing)
        for precision in (FLOAT64, LONG_DOUBLE):
            refined = fast.refine(call, reduction, chunk_logits, np.arange(len(x)),
                                  np.arange(W.shape[0]), precision, smoothing)
            if refined is not None:
                d_input, layer = refined
                name = precision.name
                _assert_holds(d_input, exact["input"], f"input ({name})")
                _assert_holds(layer[:, :D], exact["linear_weight"], f"linear_weight ({name})")
                _assert_holds(layer[:, D], exact["linear_bias"], f"linear_bias ({name})")


def _assert_double_double_tiers_hold(call, reduction, exact, D, smoothing=0.0):
    """float32's first tier where numba imports (every token's double-double softmax, BLAS
    products; with label smoothing, of the unsmoothed gradient with K for w_t, plus
    smoothing's own terms) and the second from its kept softmax gradient (on every token and
    class) hold the exact values; the second also where none was kept."""
    first = double_double_tier.blas_gradients(call, reduction, smoothing)
    if first is None:  # exponents beyond split_product's range
        return
    d_input, layer, kept = first
    terms = fast.SmoothingTerms(call, reduction, smoothing) if smoothing else None
    if terms is not None:
        d_input, layer = terms.added(d_input, layer)
    _assert_holds(d_input, exact["input"], "input (blas)")
    _assert_holds(layer[:, :D], exact["linear_weight"], "linear_weight (blas)")
    _assert_holds(layer[:, D], exact["linear_bias"], "linear_bias (blas)")
    tokens, classes = np.arange(call.row_count), np.arange(call.classes)
    sharp = double_double_tier.sharpen(kept, tokens, classes)
    if kept is not None:  # the sharp bounds, on every token and class
        if terms is not None:
            sharp = terms.added(*sharp, tokens, classes)
        _assert_holds(sharp[0], exact["input"], "input (sharp)")
        _assert_holds(sharp[1][:, :D], exact["linear_weight"], "linear_weight (sharp)")
        _assert_holds(sharp[1][:, D], exact["linear_bias"], "linear_bias (sharp)")
        # some tokens and classes alone (the smoothed gather of a subset of columns)
        some = tokens[::2], classes[1::2]
        refined = double_double_tier.refine(call, reduction, *some, kept, smoothing)
        for k, (name, rows) in enumerate((("input", some[0]), ("linear_weight", some[1]))):
            if refined[k] is not None:
                want = [exact[name][r * D + d] for r in rows for d in range(D)]
                _assert_holds(refined[k][:, :D], want, f"{name} (double-double, some)")
    for source in (kept, None):
        d_input, layer = double_double_tier.refine(call, reduction, tokens, classes, source,
                                                   smoothing)
        name = "double-double, " + ("kept" if source is not None else "recomputed")
        _assert_holds(d_input, exact["input"], f"input ({name})")
        _assert_holds(layer[:, :D], exact["linear_weight"], f"linear_weight ({name})")
        _assert_holds(layer[:, D], exact["linear_bias"], f"linear_bias ({name})")


@settings(max_examples=60, deadline=None)
@given(cases())
def test_balls_hold_the_exact_values(case):
    x, W, target, b, w, reduction, g, fmt = case
    assert fast.applies(_call(x, W, target, b, w, reduction, g), 0.0, fmt)
    _assert_fast_tier_holds(x, W, target, b, w, reduction, g)


@settings(max_examples=40, deadline=None)
@given(cases(), st.sampled_from([0.1, 0.5, 1.0, 0.3333333333333333]))
def test_smoothed_balls_hold_the_exact_values(case, smoothing):
    """Label smoothing's terms (``linear_fast.Smoothing``): the smoothing part of the loss,
    sum_c w_c nlp_c, and of G, s (S_w [c = t] - w_c), which cancels against r g where p_c
    is near e w_c / (C K)."""
    x, W, target, b, w, reduction, g, fmt = case
    assert fast.applies(_call(x, W, target, b, w, reduction, g), smoothing, fmt)
    _assert_fast_tier_holds(x, W, target, b, w, reduction, g, smoothing=smoothing)


def test_smoothed_chunks_and_signed_weights_hold_the_exact_values():
    """Several chunks of tokens (smoothing's weight term over every token at once), class
    weights of both signs and a zero, a zero upstream gradient."""
    fmt = FORMATS["float32"]
    rng = np.random.default_rng(5)
    x, W = to_format(rng.normal(size=(6, 3)), fmt), to_format(rng.normal(size=(4, 3)), fmt)
    target = np.array([0, 3, IGNORE, 1, 1, 2])
    w = np.array([1.5, -0.5, 0.0, 2.0])
    for reduction, g in (("mean", np.array(1.0)), ("none", np.array([1, 0, 1, -2, 0.5, 3.0]))):
        _assert_fast_tier_holds(x, W, target, None, w, reduction, g, chunk_logits=4,
                                smoothing=0.2)


def test_logits_that_cancel_keep_their_error_in_their_balls():
    """x_0 w_0 of 1e6 cancelled by x_2 w_2 beside a small x_1 w_1: the product's rounding of
    the first sum (1e6 u) is far beyond the logits' own size, and the balls still hold; a
    bias of 40 on the last class makes the loss of the other targets their margin alone (and
    with smoothing, sum_c w_c (z_k - z_c) carries every logit's error: at e = 1 it is the
    loss's only term)."""
    fmt = FORMATS["float32"]
    for seed in range(4):
        rng = np.random.default_rng(seed)
        x, W = rng.normal(size=(3, 3)), rng.normal(size=(4, 3))
        x[:, 0] *= 1e3
        W[:, 0] *= 1e3
        x[:, 1] *= 2.0 ** -20
        x[:, 2], W[:, 2] = -x[:, 0], W[:, 0]
        x, W, target = to_format(x, fmt), to_format(W, fmt), np.array([0, 3, 1])
        b = np.array([0.0, 0.0, 0.0, 40.0])
        for reduction, g in (("mean", np.array(1.0)), ("none", np.array([1.0, -2.0, 0.5]))):
            for smoothing in (0.0, 0.5, 1.0):
                _assert_fast_tier_holds(x, W, target, b, None, reduction, g,
                                        smoothing=smoothing)


def test_chunks_hold_the_exact_values_too():
    """Several chunks of tokens (their weight gradients added) bound the same sums."""
    fmt = FORMATS["float32"]
    rng = np.random.default_rng(1)
    x, W = to_format(rng.normal(size=(6, 3)), fmt), to_format(rng.normal(size=(4, 3)), fmt)
    target = np.array([0, 3, IGNORE, 1, 1, 2])
    _assert_fast_tier_holds(x, W, target, None, None, "mean", np.array(1.0),
                            chunk_logits=4)  # a token per chunk


def test_the_double_double_first_tier_by_chunks_holds_the_exact_values_too(monkeypatch):
    """float32's first tier a token per chunk, with its softmax gradient kept and, beyond
    KEPT_LOGITS, with each chunk's products taken as it goes (nothing kept: the second tier
    recomputes every row's softmax)."""
    fmt = FORMATS["float32"]
    rng = np.random.default_rng(3)
    x, W = to_format(rng.normal(size=(5, 3)), fmt), to_format(rng.normal(size=(4, 3)), fmt)
    target = np.array([0, 3, IGNORE, 1, 1])
    monkeypatch.setattr(double_double_tier, "CHUNK_LOGITS", 4)
    for kept_logits in (double_double_tier.KEPT_LOGITS, 0):
        monkeypatch.setattr(double_double_tier, "KEPT_LOGITS", kept_logits)
        for reduction, g in (("mean", np.array(1.0)), ("none", rng.normal(size=5))):
            call = _call(x, W, target, None, None, reduction, to_format(g, fmt))
            assert (double_double_tier.blas_gradients(call, reduction)[2] is None) == (
                kept_logits == 0)
            with mp.workdps(100):
                exact = oracle(x, W, None, target, None, reduction, call.grad_output)
                _assert_double_double_tiers_hold(call, reduction, exact, 3)


def test_certifies_a_language_model_head():
    """The speed ladder's typical case (activations N(0,1), classifier N(0, 1/hidden), a
    tenth of the targets ignored): the first tier alone certifies every loss and, in
    bfloat16 and float16, every gradient (with its cheap bounds); in float32 it leaves the
    weight gradient's sums that cancel below a 64th of their ulp (about one in a thousand),
    and the second tier takes them all."""
    spec = SPECS["linear_cross_entropy"]
    for dtype in ("bfloat16", "float16", "float32"):
        case = spec.speed.case((256, 64, 1024), dtype, np.random.default_rng(0))
        a, fmt = case.args, FORMATS[dtype]
        call = _call(a["input"], a["linear_weight"], a["target"], None, None, "mean",
                     np.array(1.0))
        assert fast.loss(call, "none", fmt, linear.ROW_CHUNK_LOGITS).ok.all()
        assert fast.loss(call, "mean", fmt, linear.ROW_CHUNK_LOGITS).ok.all()
        d_input, layer = fast.gradient_balls(call, "mean", linear.ROW_CHUNK_LOGITS,
                                             sharp=dtype == "float32")
        first = certify(layer, fmt)[1].mean()
        assert first == 1 if dtype != "float32" else 0.99 < first < 1, (dtype, first)
        known_input, known_sums = fast.gradients(call, "mean", fmt, linear.ROW_CHUNK_LOGITS)
        assert known_input.ok.all() and known_sums.ok.all(), dtype


def test_what_the_cheap_bounds_leave_takes_float64_before_long_double(monkeypatch):
    """bfloat16: where the cheap bounds leave outputs (about one batch in three at the ladder's
    third rung leaves a class; here forced by widening one class's balls and one token's, which
    still hold the exact values), float64 with sharp bounds from the first tier's kept softmax
    certifies them: long double, whose softmax of every row costs three times more, is not
    run."""
    first_tier = fast.gradient_balls

    def looser(call, reduction, chunk_logits, sharp=True, kept=None, smoothing=0.0):
        d_input, layer = first_tier(call, reduction, chunk_logits, sharp, kept, smoothing)
        if not sharp:
            layer.rad[3] += np.abs(layer.mid[3])
            d_input.rad[5] += np.abs(d_input.mid[5])
        return d_input, layer

    later_tiers, refine, from_kept = [], fast.refine, fast.refine_from_kept

    def recorded(call, reduction, chunk_logits, tokens, classes, precision, smoothing=0.0):
        later_tiers.append((precision.name, len(tokens), len(classes)))
        return refine(call, reduction, chunk_logits, tokens, classes, precision, smoothing)

    def recorded_from_kept(call, reduction, tokens, classes, kept, smoothing=0.0):
        later_tiers.append(("kept float64", len(tokens), len(classes)))
        return from_kept(call, reduction, tokens, classes, kept, smoothing)

    monkeypatch.setattr(fast, "gradient_balls", looser)
    monkeypatch.setattr(fast, "refine", recorded)
    monkeypatch.setattr(fast, "refine_from_kept", recorded_from_kept)
    spec = SPECS["linear_cross_entropy"]
    case = spec.speed.case((256, 64, 1024), "bfloat16", np.random.default_rng(0))
    a, fmt = case.args, FORMATS["bfloat16"]
    call = _call(a["input"], a["linear_weight"], a["target"], None, None, "mean",
                 np.array(1.0))
    known_input, known_sums = fast.gradients(call, "mean", fmt, linear.ROW_CHUNK_LOGITS)
    # the token and the class, each once (side by side: ``_side_by_side``)
    assert sorted(later_tiers) == [("kept float64", 0, 1), ("kept float64", 1, 0)]
    assert known_input.ok.all() and known_sums.ok.all()
    assert known_sums.tiers == {FLOAT64.name: known_sums.ok.size}
    assert known_input.tiers == {FLOAT64.name: known_input.ok.size}


def test_applies_only_where_its_bounds_do():
    """Not for float64 results (float64 balls cannot certify them), probability targets or a
    K-dimensional weight: the engine's tiers take those. Label smoothing it covers."""
    x, W = np.ones((2, 3)), np.ones((4, 3))
    index, soft = np.array([0, 1]), np.full((2, 4), 0.25)
    float32 = FORMATS["float32"]
    assert fast.applies(_call(x, W, index, None, None, "mean", 1.0), 0.0, float32)
    assert not fast.applies(_call(x, W, index, None, None, "mean", 1.0), 0.0, FORMATS["float64"])
    assert fast.applies(_call(x, W, index, None, None, "mean", 1.0), 0.1, float32)
    assert not fast.applies(_call(x, W, soft, None, None, "mean", 1.0), 0.0, float32)
    assert not fast.applies(_call(x, np.ones((4, 2, 3)), np.zeros((2, 2), np.int64), None,
                                  None, "mean", 1.0), 0.0, float32)


def test_rows_the_fast_tier_leaves_are_completed_by_the_ball_tiers():
    """Tokens whose logits cancel from 1e30 (the fast tier's bound is then 1e14) beside an
    ordinary one: the fast tier certifies that one, the ball tiers (exact logits) the others,
    and every value and gradient is the oracle's rounding ('none' reshapes the fast tier's rows
    to the engine's (tokens, 1))."""
    fmt = FORMATS["float32"]
    rng = np.random.default_rng(2)
    x, W = rng.normal(size=(3, 3)), rng.normal(size=(4, 3))
    x[1:, 0], W[:, 0] = 1e15, 1e15 * rng.uniform(0.5, 1, 4)
    x[1:, 2], W[:, 2] = -x[1:, 0], W[:, 0]
    x, W, target = to_format(x, fmt), to_format(W, fmt), np.array([0, 3, 1])
    for reduction, g in (("none", np.array([1.0, -2.0, 0.5])), ("mean", np.array(1.0))):
        call = _call(x, W, target, None, None, reduction, g)
        left = fast.loss(call, "none", fmt, linear.ROW_CHUNK_LOGITS).ok
        assert left.tolist() == [True, False, False]
        with mp.workdps(100):
            exact = oracle(x, W, None, target, None, reduction, g)
            value = linear.loss(x, W, target, None, None, IGNORE, 0.0, reduction, fmt)
            assert_certified(value, exact["value"], (3,) if reduction == "none" else (), fmt)
            grads = linear.loss_grad(g, x, W, target, None, None, IGNORE, 0.0, reduction, fmt)
            assert_certified(grads["input"], exact["input"], (3, 3), fmt)
            assert_certified(grads["linear_weight"], exact["linear_weight"], (4, 3), fmt)


def test_an_ignored_token_has_an_exact_zero_row_factor():
    """r = a w_t / (1 + S') of an ignored token (w_t = 0) or of a zero upstream gradient is
    exactly 0, radius included: the balls' underflow floor as its radius made the weight
    gradient's bound products subnormal, which BLAS computed eight times slower."""
    rng = np.random.default_rng(0)
    x, W = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    target = np.array([0, IGNORE, 2, 3])
    g = np.array([1.0, 1.0, 0.0, 2.0])
    grad = fast.Gradient(_call(x, W, target, None, None, "none", g), "none")
    _, r, _, _, _ = grad.rows(slice(0, 4), sharp=True)
    assert r.mid.tolist()[1:3] == [0.0, 0.0] and r.rad.tolist()[1:3] == [0.0, 0.0]
    assert (r.mid[[0, 3]] > 0).all() and (r.rad[[0, 3]] > 0).all()


def test_a_row_left_by_an_earlier_tier_has_infinite_radii_not_nan():
    """A later tier's g of a row the first left (eta infinite, zeros in it) is bounded by an
    infinite radius, without inf x 0's NaN or its warning; other rows by eta |g| + floor."""
    g = np.array([[0.0, 2.0], [0.0, 4.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ball = fast._within(g, np.array([np.inf, 0.5]), np.array([1e-300, 1e-300]))
    assert ball.rad.tolist() == [[np.inf, np.inf], [1e-300, 2.0 + 1e-300]]
