"""ctc_loss's float64 gradient tier (``sequence_fast.float64_gradient`` on
``double_double.ctc_gradient_samples``): the samples it certifies are the correctly rounded
gradients of test_reference_sequence_fast's mpmath oracle (60 digits, sums of positive terms),
on log-probabilities of full float64 precision spread up to 1e3 (values that leave the domain),
some -inf, impossible alignments, empty inputs and targets, repeated labels, zero and tiny
upstream gradients; it certifies typical and long sequences whole; and where it leaves a
sample, the engine's tiers complete the gradient. The losses (``sequence_fast.float64_loss``):
the same, against a forward recursion at 60 digits.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mpmath import mp, mpf
from test_reference_sequence_fast import _rounded, oracle

from conformance.specs import SPECS
from loss_reference import ctc_lattice as lattice
from loss_reference import engine
from loss_reference import sequence as ref
from loss_reference import sequence_fast as fast
from loss_reference.compiled_kernels import TIER
from loss_reference.formats import FORMATS

pytest.importorskip("numba", reason="numba is not installed")
FLOAT64 = FORMATS["float64"]


def _log_softmax(logits):
    top = logits.max(axis=2, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=2, keepdims=True))


@st.composite
def cases(draw):
    """Up to 40 frames, 4 samples, 6 classes, 5 labels, every argument anywhere in its range."""
    frames, batch = draw(st.integers(1, 40)), draw(st.integers(1, 4))
    classes = draw(st.integers(2, 6))
    blank = draw(st.integers(0, classes - 1))
    labels = [c for c in range(classes) if c != blank]
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    lp = _log_softmax(rng.normal(0, draw(st.sampled_from([1.0, 4.0, 30.0, 1e3])),
                                 (frames, batch, classes)))
    if draw(st.booleans()):
        lp[rng.random(lp.shape) < 0.1] = -np.inf
    target_lengths = [draw(st.integers(0, min(5, frames))) for _ in range(batch)]
    targets = np.array([[draw(st.sampled_from(labels)) for _ in range(max(target_lengths + [1]))]
                        for _ in range(batch)])
    input_lengths = [draw(st.integers(0, frames)) for _ in range(batch)]
    upstream = np.array([draw(st.sampled_from([1.0, -0.75, 0.0, 3e-30, -2.5e5]))
                         for _ in range(batch)])
    divisors = np.array([draw(st.sampled_from([1, 3, 7 * batch])) for _ in range(batch)],
                        dtype=np.float64)
    return lp, targets, input_lengths, target_lengths, blank, upstream, divisors


def _known(lp, targets, input_lengths, target_lengths, blank, upstream, divisors):
    p = lattice.problem(lp, targets, input_lengths, target_lengths, blank)
    return fast.gradient(p, lattice.possible(p), upstream, divisors, FLOAT64)


def _want(lp, targets, input_lengths, target_lengths, blank, upstream, divisors):
    """The oracle's gradients rounded to float64, (N, T, C)."""
    rows = lattice.target_lists(targets, target_lengths, lp.shape[1])
    exact = oracle(lp, rows, input_lengths, blank, upstream, divisors)
    return np.moveaxis(np.vectorize(lambda v: _rounded(v, FLOAT64), otypes=[float])(exact), 1, 0)


@settings(max_examples=60, deadline=None)
@given(cases())
def test_certified_samples_are_the_correctly_rounded_gradients(case):
    known = _known(*case)
    want = _want(*case)
    assert np.array_equal(known.rounded[known.ok], want[known.ok])
    lp, _, input_lengths, _, _, _, _ = case
    # nothing near the domain's edge: a state's forward value falls below its frame's largest
    # by at most e^(spread) a frame, and e^-600 stays above the domain's 2^-960
    plain = np.isfinite(lp).all() and np.ptp(lp) * lp.shape[0] < 600
    possible = lattice.possible(lattice.problem(*case[:5]))
    if plain:
        assert known.ok[possible].all()


def test_long_and_typical_sequences_are_certified_whole():
    """200 frames of near-uniform probabilities (the longest chains of roundings), and the
    speed ladder's inputs: every sample certified, each element the oracle's rounding."""
    rng = np.random.default_rng(3)
    lp = np.log(rng.dirichlet(np.full(3, 50.0), (200, 2)))
    case = (lp, np.array([[1, 2, 1, 1], [2, 2, 1, 2]]), [200, 170], [4, 4], 0,
            np.array([1.0, -1.0]), np.array([1.0, 2.0]))
    known = _known(*case)
    assert known.ok.all()
    assert np.array_equal(known.rounded, _want(*case))
    a = SPECS["ctc_loss"].speed.case((64, 16, 32), "float64", np.random.default_rng(0)).args
    typical = (a["log_probs"], a["targets"], a["input_lengths"], a["target_lengths"], 0,
               np.full(16, -1.0), np.full(16, 16.0))
    known = _known(*typical)
    assert known.ok.all()
    assert np.array_equal(known.rounded[:2], _want(*typical)[:2])


def test_the_engine_completes_the_samples_this_tier_leaves():
    """Sample 1's labels lie 400 nats below its blank at every frame: its occupancies leave the
    double-double domain (below 2^-960), so the engine's tiers take it; the whole gradient is
    the oracle's rounding."""
    lp = np.log(np.random.default_rng(4).dirichlet(np.ones(4), (12, 2)))
    lp[:, 1] = [0.0, -400.0, -400.0, -1.0]
    targets, il, tl = np.array([[1, 2], [1, 2]]), [12, 12], [2, 2]
    assert _known(lp, targets, il, tl, 0, np.array([1.0, 1.0]), np.ones(2)).ok.tolist() == [
        True, False]
    engine.STATS.clear()
    grad = ref.ctc_loss_grad(np.array(-1.0), lp, targets, il, tl, 0, "sum", fmt=FLOAT64)
    assert 0 < engine.STATS[TIER] < sum(engine.STATS.values())
    want = _want(lp, targets, il, tl, 0, np.array([1.0, 1.0]), np.ones(2))
    assert np.array_equal(grad.rounded, np.moveaxis(want, 0, 1))


def test_a_product_below_the_domain_leaves_its_sample():
    """Frame 0 puts 2^-160 of its mass on label 1; at frame 1 every state's probability is
    2^-900 (a filler class takes the frame's largest log-probability), so the forward values
    entering states 2 and 3 from there are about 2^-1060: subnormal products, with 14 bits,
    which frame 1's rescaling lifts back into the normal range. Only the product's own check
    sees it; class 2's gradient at frame 1 rests on them alone."""
    lp = np.zeros((3, 1, 4))  # classes: the blank, labels 1 and 2, a filler
    lp[0, 0] = [0.0, -160 * np.log(2), -np.inf, -np.inf]
    lp[1, 0] = [-900 * np.log(2)] * 3 + [0.0]
    lp[2, 0] = [0.0, -1.0, -1.0, -np.inf]
    case = (lp, np.array([[1, 2]]), [3], [2], 0, np.array([1.0]), np.array([1.0]))
    known, want = _known(*case), _want(*case)
    assert np.array_equal(known.rounded[known.ok], want[known.ok])  # unchecked: 3 wrong
    assert not known.ok.any()
    grad = ref.ctc_loss_grad(np.array(-1.0), *case[:5], "sum", fmt=FLOAT64)
    assert np.array_equal(grad.rounded, np.moveaxis(want, 0, 1))


# --- the loss ------------------------------------------------------------------------------------

def loss_oracle(lp, rows, input_lengths, blank):
    """-log P per sample at 60 digits (0 for an impossible sample, whose infinity is the
    caller's), by the forward recursion, written apart from ``ctc_lattice``."""
    losses = []
    with mp.workdps(60):
        for n, row in enumerate(rows):
            ext = [blank]
            for label in row:
                ext += [int(label), blank]
            W, L = len(ext), int(input_lengths[n])
            alpha = [mpf(1) if s == 0 else mpf(0) for s in range(W)]  # the virtual frame
            for t in range(L):
                entering = [alpha[s] + (alpha[s - 1] if s >= 1 else 0)
                            + (alpha[s - 2] if s >= 2 and ext[s] != blank
                               and ext[s] != ext[s - 2] else 0) for s in range(W)]
                alpha = [mpf(0) if lp[t, n, ext[s]] == -np.inf else
                         entering[s] * mp.exp(mpf(float(lp[t, n, ext[s]]))) for s in range(W)]
            total = mp.fsum(alpha[max(W - 2, 0):]) if L else mpf(1 if W == 1 else 0)
            losses.append(-mp.log(total) if total > 0 else mpf(0))
    return losses


@settings(max_examples=60, deadline=None)
@given(cases(), st.sampled_from(["none", "sum", "mean"]))
def test_certified_losses_are_the_correctly_rounded_ones(case, reduction):
    lp, targets, il, tl, blank, _, _ = case
    p = lattice.problem(lp, targets, il, tl, blank)
    possible = lattice.possible(p)
    divisors = np.maximum(np.asarray(tl), 1).astype(np.float64) * lp.shape[1]
    out = fast.float64_loss(p, possible, divisors, reduction)
    losses = loss_oracle(lp, lattice.target_lists(targets, tl, lp.shape[1]), il, blank)
    with mp.workdps(60):
        if reduction == "mean":
            losses = [v / mpf(d) for v, d in zip(losses, divisors)]
        want = ([_rounded(v, FLOAT64) for v in losses] if reduction == "none"
                else _rounded(mp.fsum(losses), FLOAT64))
    if out is not None:
        assert np.array_equal(out.rounded, np.array(want))
    # a sample with one path has the sum of its log-probabilities for loss, which can be a tie
    # of float64 (two numbers' sum needs a bit more): no bound certifies it, arb does; nor does
    # a loss that cancels far below its terms (e^-6.3e-7 + e^-14.28 is 1 - 1.8e-14: the tier's
    # absolute bound, some hundred u^2, is then 2^-51 of the loss, wider than a 64th of its ulp)
    unique = lattice.paths(p)[1]
    plain = np.isfinite(lp).all() and np.ptp(lp) * lp.shape[0] < 600 and not unique.any()
    if plain and reduction == "none" and (np.abs(want) > 2.0 ** -30).all():
        assert out is not None


def test_the_engine_takes_the_losses_when_a_sample_is_left():
    """The deep sample of the gradient's test: the tier leaves it, so the engine computes the
    whole result, the oracle's rounding."""
    lp = np.log(np.random.default_rng(4).dirichlet(np.ones(4), (12, 2)))
    lp[:, 1] = [0.0, -800.0, -800.0, -1.0]
    targets, il, tl = np.array([[1, 2], [1, 2]]), [12, 12], [2, 2]
    p = lattice.problem(lp, targets, il, tl, 0)
    assert fast.float64_loss(p, lattice.possible(p), np.ones(2), "none") is None
    out = ref.ctc_loss(lp, targets, il, tl, 0, "none", fmt=FLOAT64)
    want = [_rounded(v, FLOAT64) for v in loss_oracle(lp, [[1, 2], [1, 2]], il, 0)]
    assert np.array_equal(out.rounded, np.array(want))
