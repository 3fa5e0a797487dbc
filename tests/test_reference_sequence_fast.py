"""ctc_loss's fast gradient tiers (loss_reference/sequence_fast.py): their balls hold the exact
gradients, they leave to the ball tiers every sample whose values underflow, and they certify
a typical batch.

The exact values come from an mpmath oracle: the forward-backward recursions over each
sample's extended labels at 60 digits, written apart from ``ctc_lattice`` (every quantity is a
sum of positive terms, so 60 digits hold far more than float64's). A ball that missed its exact
value would let the engine certify a wrong rounding; the end-to-end tests in
test_reference_sequence check roundings on shorter sequences, these check the bounds over up
to 48 frames, where the errors of the recursions add up.
"""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from mpmath import mp, mpf

from conformance.specs import SPECS
from loss_reference import ctc_lattice as lattice
from loss_reference import sequence as ref
from loss_reference import sequence_fast as fast
from loss_reference.balls import FLOAT64, LONG_DOUBLE
from loss_reference.formats import FORMATS, round_dyadic, round_to_format


def oracle(lp, rows, input_lengths, blank, upstream, divisors):
    """The exact gradients (T, N, C) of mpf: upstream_n / divisors_n times the posterior
    occupancy of each class at each frame t < L_n (0 elsewhere, and for impossible samples)."""
    frames, batch, classes = lp.shape
    out = np.full(lp.shape, mpf(0), dtype=object)
    with mp.workdps(60):
        for n in range(batch):
            ext = [blank]
            for label in rows[n]:
                ext += [int(label), blank]
            W, L = len(ext), int(input_lengths[n])
            p = [[mpf(0) if lp[t, n, ext[s]] == -np.inf else mp.exp(mpf(float(lp[t, n, ext[s]])))
                  for s in range(W)] for t in range(L)]

            def sources(s):
                allowed = [s, s - 1]
                if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                    allowed.append(s - 2)
                return [r for r in allowed if r >= 0]

            alpha = []
            for t in range(L):
                entering = [mpf(1) if s <= 1 else mpf(0) for s in range(W)] if t == 0 else [
                    mp.fsum(alpha[t - 1][r] for r in sources(s)) for s in range(W)]
                alpha.append([entering[s] * p[t][s] for s in range(W)])
            beta = [None] * L  # beta'_t: excludes frame t's own factor
            for t in range(L - 1, -1, -1):
                if t == L - 1:
                    beta[t] = [mpf(1) if s >= W - 2 else mpf(0) for s in range(W)]
                else:
                    beta[t] = [mp.fsum(beta[t + 1][r] * p[t + 1][r] for r in range(W)
                                       if s in sources(r)) for s in range(W)]
            total = mp.fsum(alpha[-1][s] for s in range(max(W - 2, 0), W)) if L else (
                mpf(1) if W == 1 else mpf(0))
            if total == 0:
                continue
            scale = mpf(float(upstream[n])) / int(divisors[n]) / total
            for t in range(L):
                for s in range(W):
                    out[t, n, ext[s]] += alpha[t][s] * beta[t][s] * scale
    return out


def _mpf(value) -> mpf:
    """A float64 number, exactly."""
    numerator, denominator = float(value).as_integer_ratio()
    return mpf(numerator) / denominator


def _rounded(value, fmt) -> float:
    """An exact mpf rounded once to fmt."""
    sign, mantissa, exponent, _ = value._mpf_
    return round_dyadic(-mantissa if sign else mantissa, exponent, fmt)[0]


def _assert_holds(values, relative, valid, exact):
    """For every valid sample, every exact gradient lies in its ball (values (n, T, C) and
    exact (T, n, C))."""
    with mp.workdps(60):
        for n in np.flatnonzero(valid):
            for (t, c), v in np.ndenumerate(values[n]):
                radius = abs(_mpf(v)) * _mpf(relative[n]) + _mpf(fast.ABSOLUTE)
                assert abs(_mpf(v) - exact[t, n, c]) <= radius, (n, t, c, v, exact[t, n, c])


def _balls(lp, targets, input_lengths, target_lengths, blank, upstream, divisors, precision):
    p = lattice.problem(lp, targets, input_lengths, target_lengths, blank)
    forward, backward, _ = lattice.path_counts(p)
    return fast.sample_balls(p, forward, backward, lattice.possible(p), upstream, divisors,
                             precision)


@st.composite
def cases(draw):
    """Up to 48 frames, 4 samples, 6 classes and 5 labels; log-softmax of logits spread up to
    1e3 (probabilities down to e^-2000: underflow in float64), some -inf; lengths and the
    blank anywhere; repeated labels; upstream gradients of both signs, zero and tiny."""
    frames = draw(st.integers(1, 48))
    batch = draw(st.integers(1, 4))
    classes = draw(st.integers(2, 6))
    blank = draw(st.integers(0, classes - 1))
    labels = [c for c in range(classes) if c != blank]
    spread = draw(st.sampled_from([1.0, 4.0, 30.0, 1e3]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    logits = rng.normal(0, spread, (frames, batch, classes))
    lp = logits - np.log(np.exp(logits - logits.max(axis=2, keepdims=True)).sum(
        axis=2, keepdims=True)) - logits.max(axis=2, keepdims=True)
    if draw(st.booleans()):
        lp[rng.random(lp.shape) < 0.1] = -np.inf
    target_lengths = [draw(st.integers(0, min(5, frames))) for _ in range(batch)]
    width = max(target_lengths + [1])
    targets = np.array([[draw(st.sampled_from(labels)) for _ in range(width)]
                        for _ in range(batch)])
    input_lengths = [draw(st.integers(0, frames)) for _ in range(batch)]
    upstream = np.array([draw(st.sampled_from([1.0, -0.75, 0.0, 3e-30, -2.5e5]))
                         for _ in range(batch)])
    divisors = np.array([draw(st.sampled_from([1, 3, 7 * batch])) for _ in range(batch)])
    fmt = FORMATS[draw(st.sampled_from(["float32", "bfloat16", "float16"]))]
    lp = np.where(np.isinf(lp), lp, round_to_format(np.where(np.isinf(lp), 0, lp), fmt)[0])
    return lp, targets, input_lengths, target_lengths, blank, upstream, divisors


@settings(max_examples=60, deadline=None)
@given(cases(), st.sampled_from([FLOAT64, LONG_DOUBLE]))
def test_balls_hold_the_exact_gradients(case, precision):
    lp, targets, il, tl, blank, upstream, divisors = case
    values, relative, valid = _balls(*case, precision)
    rows = lattice.target_lists(targets, tl, lp.shape[1])
    _assert_holds(values, relative, valid, oracle(lp, rows, il, blank, upstream, divisors))


def test_long_sequences_keep_their_error_in_their_balls():
    """200 frames of near-uniform probabilities over 3 classes: the most alignments, the
    longest chains of roundings; both precisions' balls hold, and certify."""
    rng = np.random.default_rng(3)
    lp = np.log(rng.dirichlet(np.full(3, 50.0), (200, 2)))
    targets, il, tl = np.array([[1, 2, 1, 1], [2, 2, 1, 2]]), [200, 170], [4, 4]
    upstream, divisors = np.array([1.0, -1.0]), np.array([1, 1])
    exact = oracle(lp, lattice.target_lists(targets, tl, 2), il, 0, upstream, divisors)
    for precision in (FLOAT64, LONG_DOUBLE):
        values, relative, valid = _balls(lp, targets, il, tl, 0, upstream, divisors, precision)
        assert valid.all()
        _assert_holds(values, relative, valid, exact)


def _deep_case():
    """Sample 0 ordinary; sample 1's labels 400 nats below its blank at every frame: each
    label's occupancy is the product of a forward and a backward value each about e^-400
    below its frame's largest, which underflows in float64 and not in long double."""
    lp = np.log(np.random.default_rng(4).dirichlet(np.ones(4), (12, 2)))
    lp[:, 1] = [0.0, -400.0, -400.0, -1.0]
    return lp, np.array([[1, 2], [1, 2]]), [12, 12], [2, 2], 0


def test_samples_whose_values_underflow_are_left_to_the_later_tiers():
    lp, targets, il, tl, blank = _deep_case()
    upstream, divisors = np.array([1.0, 1.0]), np.array([1, 1])
    exact = oracle(lp, lattice.target_lists(targets, tl, 2), il, blank, upstream, divisors)
    values, relative, valid = _balls(lp, targets, il, tl, blank, upstream, divisors, FLOAT64)
    assert valid.tolist() == [True, False]
    _assert_holds(values, relative, valid, exact)
    values, relative, valid = _balls(lp, targets, il, tl, blank, upstream, divisors, LONG_DOUBLE)
    assert valid.all()
    _assert_holds(values, relative, valid, exact)


def test_a_bound_beyond_the_exponential_range_is_inf_without_a_warning():
    """Sample 1's log-probabilities of -1e18 at one of its labels: each frame's rounding
    bound is about 110, twelve frames' exp-1 overflows. Its relative bound is inf (the
    sample left to the later tiers), without numpy's RuntimeWarning (seed 1 of the default
    profile printed one for torch's float32 gradient)."""
    lp = np.log(np.random.default_rng(5).dirichlet(np.ones(4), (12, 2)))
    lp[:, 1, 2] = -1e18
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, relative, _ = _balls(lp, np.array([[1, 2], [1, 2]]), [12, 12], [2, 2], 0,
                                np.array([1.0, 1.0]), np.array([1, 1]), FLOAT64)
    assert np.isfinite(relative[0]) and np.isposinf(relative[1])


def test_subnormal_values_are_left_to_the_later_tiers():
    """Every path passes through one state at frame 2 whose forward value is about e^-721 below
    frame 0's: a float64 subnormal, rounded to 37 bits. A small upstream gradient keeps the
    quotients finite, so nothing but the underflow test stops float64's ball (a relative
    bound of 3e-14) from missing its exact value by 7e-11; long double holds it."""
    lp = np.zeros((12, 1, 4))  # classes: the blank, the two labels, a filler (the shift)
    lp[0, 0] = [-360.25, -360.5, -np.inf, 0]
    lp[1, 0] = [-np.inf, -360.75, 0, 0]
    lp[2, 0] = [-np.inf, 0, -np.inf, 0]
    lp[3:, 0] = [-0.5, -1.25, -0.75, 0]
    case = (lp, np.array([[1, 2]]), [12], [2], 0, np.array([3e-30]), np.array([1]))
    exact = oracle(lp, [[1, 2]], [12], 0, [3e-30], [1])
    values, relative, valid = _balls(*case, FLOAT64)
    assert not valid.any()
    values, relative, valid = _balls(*case, LONG_DOUBLE)
    assert valid.all()
    _assert_holds(values, relative, valid, exact)


def test_the_whole_gradient_is_right_where_a_tier_leaves_a_sample():
    """float16 takes the float64 tier only: the deep sample goes to the ball tiers, and every
    rounded gradient equals the oracle's rounding."""
    lp, targets, il, tl, blank = _deep_case()
    fmt = FORMATS["float16"]
    lp = round_to_format(lp, fmt)[0]
    grad = ref.ctc_loss_grad(np.array(1.0), lp, targets, il, tl, blank, "sum", fmt=fmt)
    exact = oracle(lp, lattice.target_lists(targets, tl, 2), il, blank, [-1.0, -1.0], [1, 1])
    expected = [_rounded(v, fmt) for v in exact.ravel()]
    np.testing.assert_array_equal(grad.rounded.ravel(), expected)


def test_certifies_a_typical_batch():
    """The speed ladder's inputs (log-softmax of N(0, 1) logits, targets T/8 long): float64
    certifies most samples of a float32 gradient, long double the rest, nothing is left to
    the ball tiers; bfloat16 takes float64 alone."""
    spec = SPECS["ctc_loss"]
    for dtype, tiers in (("float32", {"float64", "longdouble"}), ("bfloat16", {"float64"})):
        case = spec.speed.case((128, 16, 32), dtype, np.random.default_rng(0))
        a = case.args
        p = lattice.problem(a["log_probs"], a["targets"], a["input_lengths"],
                            a["target_lengths"], 0)
        known = fast.gradient(p, lattice.possible(p), np.full(16, -1.0), np.full(16, 16.0),
                              FORMATS[dtype])
        assert known.ok.all()
        assert set(known.tiers) <= tiers
        assert known.tiers["float64"] >= 0.75 * known.rounded.size


def test_the_ball_tiers_apply_to_formats_narrower_than_float64_only(monkeypatch):
    """float64 results take the double-double tier (test_reference_sequence_float64), and
    nothing here where numba does not import."""
    assert fast.applies(FORMATS["float32"]) and fast.applies(FORMATS["bfloat16"])
    assert not fast.applies(FORMATS["float64"])
    lp = np.log(np.full((3, 1, 3), 1 / 3))
    p = lattice.problem(lp, np.array([[1]]), [3], [1], 0)
    monkeypatch.setattr(fast, "kernels", lambda: None)
    assert fast.gradient(p, lattice.possible(p), np.ones(1), np.ones(1),
                         FORMATS["float64"]) is None
