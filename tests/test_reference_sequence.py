"""The ctc_loss reference against an independent computation in mpmath at 200 digits.

mpmath sums the probability of every alignment by brute-force enumeration of paths (no
recursion shared with the reference), for the loss and for the partial derivatives (the
occupancy of each class at each frame). The certified reference must equal the mpmath value
rounded to each format, on ordinary cases and on every edge: empty targets, input length 0,
impossible alignments (with and without zero_infinity), repeats, blank = C - 1, -inf and very
negative log-probabilities, unnormalized log-probabilities, a single alignment whose loss is a
tie of the format, and the unbatched and concatenated argument forms.
"""

from __future__ import annotations

import itertools

import mpmath
import numpy as np
import pytest

from loss_reference import ctc_lattice as lattice
from loss_reference import sequence as ref
from loss_reference.engine import EvaluationError
from loss_reference.balls import FLOAT64_BALLS, LONG_DOUBLE_BALLS
from loss_reference.formats import FORMATS, round_dyadic, round_to_format



@pytest.fixture(autouse=True)
def _digits():
    """The oracle's working precision, for this module's tests only (not a global: other
    modules' oracles set their own)."""
    with mpmath.workdps(200):
        yield


def _alignments(labels, frames, blank):
    """Every state sequence of ``frames`` frames that collapses to ``labels`` (brute force)."""
    ext = [blank]
    for label in labels:
        ext += [label, blank]
    found = []
    for path in itertools.product(range(len(ext)), repeat=frames):
        if path and path[0] > 1:
            continue
        if frames == 0:
            return [()] if len(ext) == 1 else []
        ok = path[-1] >= len(ext) - 2
        for a, b in zip(path, path[1:]):
            if not (b == a or b == a + 1 or (b == a + 2 and ext[b] != blank
                                               and ext[b] != ext[a])):
                ok = False
                break
        if ok:
            found.append(tuple(ext[s] for s in path))
    return found


def _exact(lp, rows, il, blank):
    """mpmath (losses, occupancy[t][n][k]) by enumeration."""
    frames, batch, classes = lp.shape
    losses, occupancy = [], np.zeros((frames, batch, classes), dtype=object)
    occupancy[...] = mpmath.mpf(0)
    for n in range(batch):
        total, weights = mpmath.mpf(0), []
        for labels in _alignments(list(rows[n]), int(il[n]), blank):
            w = mpmath.mpf(1)
            for t, k in enumerate(labels):
                v = lp[t, n, k]
                w *= mpmath.mpf(0) if v == -np.inf else mpmath.exp(mpmath.mpf(float(v)))
            total += w
            weights.append((labels, w))
        losses.append(mpmath.inf if total == 0 else -mpmath.log(total))
        if total:
            for labels, w in weights:
                for t, k in enumerate(labels):
                    occupancy[t, n, k] += w / total
    return losses, occupancy


def _round(value, fmt):
    """An mpmath value (200 digits, exact for the sums of inputs) rounded to fmt."""
    if value == mpmath.inf:
        return np.inf
    sign, man, exp, _ = mpmath.mpf(value)._mpf_
    return round_dyadic(-man if sign else man, exp, fmt)[0]


CASES = {
    "ordinary": (np.log(np.random.default_rng(1).dirichlet(np.ones(4), (5, 2))),
                 np.array([[1, 2, 0], [3, 3, 1]]), (5, 4), (2, 2), 0),
    "empty-target-and-zero-input": (np.log(np.random.default_rng(2).dirichlet(np.ones(3), (4, 3))),
                                    np.array([[1, 9], [2, 1], [1, 1]]), (0, 4, 0), (0, 0, 1), 0),
    "impossible-repeats": (np.log(np.random.default_rng(3).dirichlet(np.ones(3), (3, 2))),
                           np.array([[1, 1], [2, 1]]), (3, 2), (2, 2), 0),
    "blank-last": (np.log(np.random.default_rng(4).dirichlet(np.ones(4), (5, 2))),
                   np.array([[0, 2, 2], [1, 0, 0]]), (5, 5), (3, 1), 3),
    "very-negative": (np.array([[[-1e4, -0.5, -np.inf]], [[-np.inf, -1e4, -0.25]],
                                [[-0.75, -2.0, -1e4]]]), np.array([[1, 2]]), (3,), (2,), 0),
    "unnormalized": (np.random.default_rng(5).uniform(-4, 3, (4, 2, 3)),
                     np.array([[1, 2], [2, 2]]), (4, 4), (2, 2), 0),
    "single-alignment-tie": (np.array([[[-3.0, -1.5, -7.0]], [[-3.0, -7.0, -1.25]],
                                       [[-2.0, -3.0, -1.0000001]]]), np.array([[1, 2, 2]]),
                             (3,), (2,), 0),
    "two-classes": (np.log(np.random.default_rng(6).dirichlet(np.ones(2), (5, 1))),
                    np.array([[1, 1]]), (5,), (2,), 0),
}


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_loss_and_gradient_against_mpmath(name, dtype, reduction, zero_infinity):
    lp, targets, il, tl, blank = CASES[name]
    fmt = FORMATS[dtype]
    lp = np.where(np.isinf(lp), lp, round_to_format(np.nan_to_num(lp), fmt)[0])
    rows = lattice.target_lists(targets, tl, lp.shape[1])
    losses, occupancy = _exact(lp, rows, np.array(il), blank)
    if zero_infinity:
        losses = [mpmath.mpf(0) if v == mpmath.inf else v for v in losses]
    n = lp.shape[1]
    divisors = [max(t, 1) * n if reduction == "mean" else 1 for t in tl]
    got = ref.ctc_loss(lp, targets, il, tl, blank, reduction, zero_infinity, fmt=fmt)
    if reduction == "none":
        expected = [_round(v, fmt) for v in losses]
    else:
        total = mpmath.fsum(v / d for v, d in zip(losses, divisors))
        expected = [_round(total, fmt)]
    assert np.array_equal(np.reshape(got.rounded, -1), np.array(expected)), (got.rounded, expected)

    g = np.linspace(-1.5, 2.0, n) if reduction == "none" else np.array(0.75)
    grad = ref.ctc_loss_grad(g, lp, targets, il, tl, blank, reduction, zero_infinity, fmt=fmt)
    gs = np.broadcast_to(g.reshape(-1), (n,))
    for t, b, k in itertools.product(*map(range, lp.shape)):
        got_tbk = grad.rounded[t, b, k]
        if t >= il[b]:
            assert got_tbk == 0
        elif losses[b] == mpmath.inf:
            assert np.isnan(got_tbk)
        elif zero_infinity and CASES[name] and _infinite(lp, rows, il, blank, b):
            assert got_tbk == 0
        else:
            exact = -mpmath.mpf(float(gs[b])) / divisors[b] * occupancy[t, b, k]
            assert got_tbk == _round(exact, fmt), (t, b, k, got_tbk, exact)


def _infinite(lp, rows, il, blank, b):
    return not _alignments(list(rows[b]), int(il[b]), blank) or all(
        any(lp[t, b, k] == -np.inf for t, k in enumerate(a))
        for a in _alignments(list(rows[b]), int(il[b]), blank))


def test_unbatched_and_concatenated_forms_agree():
    lp = np.log(np.random.default_rng(7).dirichlet(np.ones(4), (6, 2)))
    padded = ref.ctc_loss(lp, np.array([[1, 2, 2], [3, 0, 0]]), (6, 5), (3, 1), 0, "none",
                          fmt=FORMATS["float64"])
    joined = ref.ctc_loss(lp, np.array([1, 2, 2, 3]), np.array([6, 5]), np.array([3, 1]), 0,
                          "none", fmt=FORMATS["float64"])
    alone = ref.ctc_loss(lp[:, 1], np.array([3]), np.array(5), np.array(1), 0, "none",
                         fmt=FORMATS["float64"])
    assert np.array_equal(padded.rounded, joined.rounded)
    assert alone.rounded.shape == () and alone.rounded == padded.rounded[1]


@pytest.mark.parametrize("backend", [LONG_DOUBLE_BALLS, FLOAT64_BALLS], ids=lambda b: b.name)
def test_balls_enclose_the_mpmath_value(backend):
    """The fast passes' balls (before any arb fallback) contain the exact loss: the certificate
    is sound, not merely the rounded value right."""
    lp, targets, il, tl, blank = CASES["ordinary"]
    p = lattice.problem(lp, targets, il, tl, blank)
    ok = lattice.possible(p)
    ball = ref._sample_losses(backend, p, ok)
    losses, _ = _exact(lp, lattice.target_lists(targets, tl, 2), np.array(il), blank)
    for n, exact in enumerate(losses):
        high_part = float(ball.mid[n])  # long double = two doubles, exactly
        mid = mpmath.mpf(high_part) + mpmath.mpf(float(ball.mid[n] - np.longdouble(high_part)))
        rad = mpmath.mpf(float(ball.rad[n])) * (1 + mpmath.mpf(2) ** -50)
        low, high = mid - rad, mid + rad
        assert low <= exact <= high
        assert float(ball.rad[n]) < (1e-15 if backend is LONG_DOUBLE_BALLS else 1e-11)


def test_a_later_tier_recomputes_only_the_samples_left(monkeypatch):
    """The gradient is evaluated by samples: where the float64 ball tier leaves one sample
    uncertified, the long double tier computes that sample alone, and the gradient is the
    same as when every tier computes every sample (the fast tiers, which would certify every
    sample first, are off)."""
    from loss_reference import engine

    monkeypatch.setattr(ref.sequence_fast, "gradient", lambda *args: None)
    lp = np.log(np.random.default_rng(8).dirichlet(np.ones(4), (6, 3)))
    args = (np.array(1.0), lp, np.array([[1, 2], [3, 3], [2, 1]]), (6, 6, 5), (2, 2, 2), 0)
    fmt = FORMATS["float32"]
    whole = ref.ctc_loss_grad(*args, fmt=fmt)
    seen, certify = [], engine.certify

    def refusing(ball, fmt):
        rounded, ok = certify(ball, fmt)
        seen.append((ball.mid.dtype, ball.mid.shape[0]))
        if ball.mid.dtype == np.float64:
            ok = ok.copy()
            ok[1] = False  # the second sample (rows are samples)
        return rounded, ok

    monkeypatch.setattr(engine, "certify", refusing)
    again = ref.ctc_loss_grad(*args, fmt=fmt)
    assert np.array_equal(whole.rounded, again.rounded)
    assert seen == [(np.float64, 3), (np.longdouble, 1)]


def test_the_mean_gradient_divides_exactly():
    """'mean' divides a sample's gradient by N max(S, 1), here 3: the engine divides, so the
    estimate of every float64 gradient is within a 64th of an ulp of the exact one (a
    quotient rounded in float64 beforehand was off by up to half an ulp)."""
    lp = np.log(np.random.default_rng(9).dirichlet(np.ones(4), (5, 1)))
    targets, il, tl = np.array([[1, 2, 3]]), (5,), (3,)
    _, occupancy = _exact(lp, lattice.target_lists(targets, tl, 1), np.array(il), 0)
    grad = ref.ctc_loss_grad(np.array(1.0), lp, targets, il, tl, 0, "mean",
                             fmt=FORMATS["float64"])
    for t, k in itertools.product(range(5), range(4)):
        exact = -occupancy[t, 0, k] / 3
        if exact == 0:
            continue
        numerator, denominator = grad.exact[t, 0, k].as_integer_ratio()
        error = abs(mpmath.mpf(numerator) / denominator - exact)
        ulp = mpmath.mpf(2) ** (mpmath.floor(mpmath.log(abs(exact), 2)) - 52)
        assert error <= ulp / 64, (t, k, float(error / ulp))


def test_the_arb_tier_takes_samples_too(monkeypatch):
    """With every ball result refused (and the fast tiers off), arb computes the gradient by
    samples (its arguments are arb objects, the sample numbers among them) and certifies the
    same numbers."""
    from loss_reference import engine

    monkeypatch.setattr(ref.sequence_fast, "gradient", lambda *args: None)
    lp = np.log(np.random.default_rng(8).dirichlet(np.ones(4), (4, 2)))
    args = (np.array(1.0), lp, np.array([[1, 2], [3, 3]]), (4, 4), (2, 1), 0)
    fmt = FORMATS["float32"]
    balls = ref.ctc_loss_grad(*args, fmt=fmt)
    certify = engine.certify
    monkeypatch.setattr(engine, "certify", lambda ball, fmt: (
        certify(ball, fmt)[0], np.zeros(np.shape(ball.mid), dtype=bool)))
    before = engine.STATS["arb"]
    arb = ref.ctc_loss_grad(*args, fmt=fmt)
    assert engine.STATS["arb"] > before
    assert np.array_equal(balls.rounded, arb.rounded)


def test_a_log_probability_at_the_float_range_s_edge():
    """-1.8e308 on the only path (the blank's, for an empty target): arb's exponential sizes
    its precision by the argument's binades, and -1.8e308 / ln 2 overflowed a float into an
    integer conversion in the gradient's evaluation (OverflowError; found by the totality
    test's seed 1). The loss, 1.8e308 plus a few, rounds to float64's largest number; the
    gradient, -1 at the path's state (the blank) at every frame, is certified or declined
    (EvaluationError: arb cannot yet), never another exception."""
    lp = np.array([[[-np.finfo(np.float64).max, -2.9970842341031863, -4.8275897527245917]],
                   [[-7.5427325686295585, -1.1687917392556118, -0.37290903463601732]],
                   [[-1.4530682697774351, -0.47018198804288691, -1.9571545441914910]]])
    out = ref.ctc_loss(lp, np.zeros((1, 0), dtype=np.int64), (3,), (0,), 0, "none", False,
                       fmt=FORMATS["float64"])
    assert out.rounded.tolist() == [np.finfo(np.float64).max]
    try:
        grad = ref.ctc_loss_grad(np.array([1.0]), lp, np.zeros((1, 0), dtype=np.int64), (3,),
                                 (0,), 0, "none", False, fmt=FORMATS["float64"])
    except EvaluationError:
        return
    assert grad.rounded[:, 0].tolist() == [[-1.0, 0.0, 0.0]] * 3
