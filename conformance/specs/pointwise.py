"""The pointwise family: l1_loss, mse_loss, huber_loss, smooth_l1_loss, soft_margin_loss.

Contract (torch 2.13's documentation, with these decisions; torch's behaviour verified):

- input and target have the same shape, any rank (0 to 3 drawn, empty included); the output
  is that shape for 'none', a 0-d tensor otherwise. The mean of no elements is nan, the sum 0.
  torch broadcasts a target of another broadcastable shape (l1, mse, huber, smooth_l1 with a
  warning, "This will likely lead to incorrect results"; soft_margin silently, as long as the
  result keeps the input's shape); the documented contract is the same shape, so such calls
  are outside the spec (never drawn, not required to raise). Shapes that do not broadcast, and
  a soft_margin target that would enlarge the input, raise; so do integer inputs.
- weight (l1, mse, huber; torch 2.13 has the keyword): the input's shape, any sign,
  differentiable. 'mean' is sum(w t) / sum(w) for l1_loss and mse_loss but mean(w t) for
  huber_loss (torch's Python code differs; the spec follows each). Weights that add up to
  exactly 0 leave that weighted mean undefined: nan for 0/0, else an infinity, gradients nan.
- huber_loss: delta > 0 (torch rejects 0, negatives and nan); smooth_l1_loss: beta >= 0
  (rejects negatives and nan), beta = 0 is l1_loss. Both are drawn per case from a set that
  includes values no half-precision format holds (torch rounds them to the dtype).
- soft_margin_loss: log(1 + exp(-y x)) for every real y. The documentation says y is 1 or -1,
  torch does not check, and its formula is defined for any y: the suite draws y = +-1 mostly,
  also soft targets in [-1, 1] and reals in [-2, 2]. torch refuses to differentiate it in its
  target ("not differentiable with respect to argument 'target'"), so only input is.
- Gradients for input and target (d/dy = -d/dx for the regression losses). At l1's kink x = y
  the gradient is 0 (torch: sign(0) = 0): the sign of x - y is decidable, so no slack. huber
  and smooth_l1 have continuous gradients; within rounding distance of |x - y| = delta (beta)
  either branch's gradient is accepted (one jump of slack, as at the margin loss's hinge).

Tolerances (conformance/accuracy.py; S per element from the magnitudes below, n = numel for
'sum' and 'mean', summation cascade as torch.sum on CPU):

- terms: l1 |r|, mse r^2, huber 0.5 r^2 or delta (|r| + delta/2), smooth_l1 0.5 r^2 / beta or
  |r| + beta/2 (r = x - y), soft margin softplus(t) + |t| sigmoid(t) with t = -y x (the second
  part bounds the effect of rounding t before exp), each times |w|; 'mean' divides by N, and a
  mean by sum(w) = W uses (sum |w t| + |A / W| sum |w|) / |W| (A = sum w t): the quotient is
  only as accurate as its denominator.
- gradients: |g w| times |d term / dx| (1, 2|r|, min(|r|, delta), min(|r| / beta, 1),
  |y| sigmoid(t) (1 + |t|)) over the divisor; weight: |g| times the term, and for a mean by W
  |g| (|t_i| sum|w| + sum|w t| + |A / W| sum |w|) / W^2.
- depth (rounded operations per term, a libm call counting 2, a squared rounding 2): l1 5
  (subtract, weight, sum of weights, divide, upstream), mse 6, huber 6, smooth_l1 6 (subtract
  twice for the square, square, beta, divide, upstream), soft margin 8 (product, exp, log1p or
  the backward's exp, product, 1 + z, divide, upstream).
- underflow: a term that lies below the dtype's smallest normal errs absolutely by up to a
  subnormal unit when rounded; a sum carries one such error per term (amplification: the
  count of such terms, over N for a mean), and later factors (1 / beta, |g|, |w|) magnify it.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from hypothesis import strategies as st

from loss_reference import pointwise as ref
from loss_reference.formats import format_of

from ..accuracy import Magnitude
from ..cases import (Case, float_arrays, layouts_for, make_expandable, regime_values, round_to,
                     saturation_tags, upstream_gradient)
from . import InvalidCall, Spec, Variant

REDUCTIONS = ("none", "sum", "mean")
FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")
DEPTH = {"l1_loss": 5, "mse_loss": 6, "huber_loss": 6, "smooth_l1_loss": 6,
         "soft_margin_loss": 8}
WEIGHTED = ("l1_loss", "mse_loss", "huber_loss")
THRESHOLD_OPTION = {"huber_loss": "delta", "smooth_l1_loss": "beta"}
# Thresholds every format holds exactly, so a grid of residuals lands exactly on the kink.
GRID_THRESHOLDS = (0.25, 0.5, 1.0, 1.5, 2.0)
# Others: ones no half-precision format holds (torch rounds them), tiny and large ones.
OTHER_THRESHOLDS = (0.1, 1e-3, 0.3, 3.7, 10.0, 100.0)


def _variants():
    return tuple(Variant(d, (("reduction", r),)) for d in FLOAT_DTYPES for r in REDUCTIONS)


# --- strategies ----------------------------------------------------------------------------------

SHAPE_KINDS = ("scalar", "empty", "vector", "matrix", "rank-3", "single", "large")
DRAWN_ELEMENTS = 24  # far fewer than cases.MAX_DRAWN_ELEMENTS: drawing elements is the slow part


@st.composite
def pointwise_shape(draw):
    """A shape of rank 0 to 3 from a drawn kind; returns (shape, kind)."""
    kind = draw(st.sampled_from(SHAPE_KINDS), label="shape kind")
    if kind == "scalar":
        return (), kind
    if kind == "empty":
        dims = draw(st.lists(st.integers(0, 4), min_size=1, max_size=3), label="dims")
        dims[draw(st.integers(0, len(dims) - 1), label="empty axis")] = 0
        return tuple(dims), kind
    if kind == "vector":
        return (draw(st.integers(1, 24), label="length"),), kind
    if kind == "matrix":
        return (draw(st.integers(1, 6)), draw(st.integers(1, 6))), kind
    if kind == "rank-3":
        return tuple(draw(st.lists(st.integers(1, 4), min_size=3, max_size=3))), kind
    if kind == "single":
        return (1,) * draw(st.integers(1, 3), label="rank"), kind
    return (draw(st.integers(1, 3)), draw(st.integers(1024, 2500))), kind


# Arrays of up to DRAWN_ELEMENTS have every element drawn (a failure shrinks element by
# element); larger ones are filled from a drawn seed with up to 8 drawn elements planted.
arrays = functools.partial(float_arrays, max_drawn=DRAWN_ELEMENTS, planted=8)


def _values(draw, shape, dtype, regime, label):
    """Values of a regime (cases.REGIMES, or 'subnormal'), rounded to the dtype."""
    return regime_values(draw, shape, dtype, regime, label, max_drawn=DRAWN_ELEMENTS)


def _step(values, steps, dtype):
    """values moved by ``steps`` (small integers) spacings of the dtype: just below / above."""
    fmt = format_of(dtype)
    return round_to(values + steps * fmt.ulp(values), dtype)


PAIR_REGIMES = ("normal", "large", "tiny", "mixed", "subnormal", "equal", "close", "kink-grid")
# One code per element of the kink grid: target k / 8 (k in -32..32), side and nudge in -1..1.
KINK_CODES = 65 * 9
KINK_CODE = st.integers(0, KINK_CODES - 1)
ULPS_APART = st.integers(-3, 3)


def _kink_grid(codes, threshold, dtype):
    y = round_to((codes // 9 - 32) / 8, dtype)
    side, nudge = (codes % 9) // 3 - 1, codes % 3 - 1
    return _step(round_to(y + side * threshold, dtype), nudge, dtype), y


@st.composite
def residual_pairs(draw, shape, dtype, threshold):
    """(input, target, regime) for the regression losses.

    'kink-grid' puts target on a grid of eighths and input at target + side * threshold
    (side -1, 0 or 1), moved by -1, 0 or 1 spacing of the dtype: residuals exactly at, just
    below and just above the kink (threshold 0: l1's kink x = y).
    """
    regime = draw(st.sampled_from(PAIR_REGIMES), label="residual regime")
    if regime in ("equal", "close"):
        x = _values(draw, shape, dtype, "normal", "input")
        if regime == "equal":
            return x, x, regime
        moves = draw(arrays(shape, ULPS_APART, lambda rng, n: rng.integers(-3, 4, n),
                            "ulps apart"))
        return x, _step(x, moves, dtype), regime
    if regime == "kink-grid":
        codes = draw(arrays(shape, KINK_CODE, lambda rng, n: rng.integers(0, KINK_CODES, n),
                            "kink codes"))
        return (*_kink_grid(codes.astype(np.int64), threshold, dtype), regime)
    return (_values(draw, shape, dtype, regime, "input"),
            _values(draw, shape, dtype, regime, "target"), regime)


SOFT_TARGETS = ("binary", "binary", "soft", "real")
TARGET_ELEMENTS = {  # elements and numpy fill of each kind of soft margin target
    "binary": (st.sampled_from([-1.0, 1.0]), lambda rng, n: rng.choice([-1.0, 1.0], n)),
    "soft": (st.one_of(st.floats(-1, 1), st.just(0.0)), lambda rng, n: rng.uniform(-1, 1, n)),
    "real": (st.one_of(st.floats(-2, 2), st.just(0.0)), lambda rng, n: rng.uniform(-2, 2, n)),
}


@st.composite
def margin_pairs(draw, shape, dtype):
    """(input, target, tags) for soft_margin_loss: logits in a regime, targets of a kind."""
    regime = draw(st.sampled_from(("normal", "large", "tiny", "mixed", "subnormal")),
                  label="logit regime")
    x = _values(draw, shape, dtype, regime, "input")
    kind = draw(st.sampled_from(SOFT_TARGETS), label="target kind")
    elements, bulk = TARGET_ELEMENTS[kind]
    y = draw(arrays(shape, elements, bulk, "target"))
    return x, round_to(y, dtype), (regime, f"target-{kind}")


WEIGHTINGS = ("none", "none", "uniform", "non-uniform", "with-zeros", "signed")
WEIGHT_LEVELS = [0.0, 0.5, 1.0, 2.5]
WEIGHT_ELEMENTS = {  # elements and numpy fill of each kind of weight
    "non-uniform": (st.floats(0.05, 3), lambda rng, n: rng.uniform(0.05, 3, n)),
    "with-zeros": (st.sampled_from(WEIGHT_LEVELS), lambda rng, n: rng.choice(WEIGHT_LEVELS, n)),
    "signed": (st.floats(-1, 3), lambda rng, n: rng.uniform(-1, 3, n)),
}


def _weights(draw, shape, dtype, kind):
    """A weight of the input's shape; signed weights never add up to exactly 0."""
    if kind == "none":
        return None
    if kind == "uniform":
        return round_to(np.full(shape, draw(st.floats(0.1, 4), label="weight value")), dtype)
    elements, bulk = WEIGHT_ELEMENTS[kind]
    w = round_to(draw(arrays(shape, elements, bulk, "weight")), dtype)
    if kind == "signed" and w.size and w.any() and math.fsum(w.reshape(-1)) == 0:
        w.reshape(-1)[np.flatnonzero(w)[0]] *= 2  # a cancelling sum: the mean is undefined
    return w


def _layout_tags(layouts):
    return tuple(sorted({f"layout-{v}" for v in layouts.values() if v != "contiguous"}))


UPSTREAM = st.floats(-4, 4)


def _output_shape(shape, reduction):
    return tuple(shape) if reduction == "none" else ()


def _cases(name):
    @st.composite
    def cases(draw, variant):
        """Random cases of one loss for one dtype and reduction."""
        dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
        shape, kind = draw(pointwise_shape())
        options = {"reduction": reduction}
        tags = [kind]
        if name == "soft_margin_loss":
            x, y, more = draw(margin_pairs(shape, dtype))
            tags += more
        else:
            threshold = 0.0
            if name in THRESHOLD_OPTION:
                grid = draw(st.booleans(), label="grid threshold")
                choices = GRID_THRESHOLDS if grid else OTHER_THRESHOLDS
                if name == "smooth_l1_loss":
                    choices = choices + (0.0,)
                threshold = draw(st.sampled_from(choices), label=THRESHOLD_OPTION[name])
                options[THRESHOLD_OPTION[name]] = threshold
                tags.append(f"{THRESHOLD_OPTION[name]}={threshold}")
            x, y, regime = draw(residual_pairs(shape, dtype, threshold))
            tags.append(regime)
        args = {"input": x, "target": y}
        if name in WEIGHTED:
            weighting = draw(st.sampled_from(WEIGHTINGS), label="weighting")
            args["weight"] = _weights(draw, shape, dtype, weighting)
            tags.append(f"weight-{weighting}")
        names = [n for n in args if args[n] is not None]
        layouts = draw(layouts_for(names, [shape] * len(names)), label="layouts")
        for n, layout in layouts.items():
            if layout == "expanded":
                args[n] = make_expandable(args[n])
        case = Case(dtype, args, options, layouts,
                    tuple(tags) + saturation_tags(x, dtype) + _layout_tags(layouts))
        out_shape = _output_shape(shape, reduction)
        case.grad_output = (upstream_gradient(draw, out_shape, dtype) if out_shape == () else
                            round_to(draw(arrays(out_shape, UPSTREAM, lambda rng, n:
                                                 rng.uniform(-4, 4, n), "grad_output")), dtype))
        return case

    return cases


# --- edge cases ----------------------------------------------------------------------------------

def _regression_edges(name, dtype, rng):
    """(id, input, target, weight, options) for the regression losses."""
    fmt = format_of(dtype)
    k = 1.0
    p = fmt.precision
    below, above = k * (1 - 2.0 ** -p), k * (1 + 2.0 ** (1 - p))  # one spacing either side
    kinks = np.array([0.0, k, -k, below, -below, above, -above, 0.0, 2 * k, 0.5 * k])
    y_kink = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, -1.0, 0.25])
    sub = fmt.smallest_subnormal
    big = rng.uniform(20, 40, 4096) * rng.choice([-1, 1], 4096)
    edges = [
        ("empty", np.zeros((2, 0, 3)), np.zeros((2, 0, 3)), None),
        ("scalar", np.array(1.5), np.array(-0.25), None),
        ("all-equal", *(2 * [rng.normal(size=(3, 4)) * 3]), None),
        ("at-kink", kinks + y_kink, y_kink, None),
        ("overflowing-element", np.array([6e4, 300.0, 0, 0, 0, 0, 0, 0]),
         np.array([-3e4, 0, 0, 0, 0, 0, 0, 0.0]), None),
        ("subnormal", np.array([sub, -3 * sub, 0.0, 7 * sub, 2.0 ** fmt.min_exponent]),
         np.array([0.0, 2 * sub, -sub, 7 * sub, -sub]), None),
        ("tiny-residuals", rng.uniform(-1, 1, (4, 8)) * 10.0 ** rng.uniform(-5, -2, (4, 8)),
         np.zeros((4, 8)), None),
        ("large-sum", big, np.zeros(4096), None),
    ]
    if name in WEIGHTED:
        x, y = rng.normal(size=(3, 4)) * 3, rng.normal(size=(3, 4))
        edges += [("zero-weights", x, y, np.zeros((3, 4))),
                  ("signed-weights", x, y, np.array([-1.0, 0.0, 0.5, 2.0] * 3).reshape(3, 4))]
    if name == "smooth_l1_loss":
        edges.append(("beta-zero", np.array([0.0, 1.0, -2.5, 0.5, 3.0]),
                      np.array([0.0, 1.0, 0.5, -0.5, 3.5]), None))
    return [(i, x, y, w, {"beta": 0.0} if i == "beta-zero" else {}) for i, x, y, w in edges]


def _margin_edges(dtype, rng):
    big = {"float64": [37.4, 88.7, 750.0, 1e4, 1e30], "float32": [17.0, 88.7, 100.0, 1e4],
           "float16": [9.0, 11.0, 17.0, 100.0, 1e4], "bfloat16": [9.0, 88.7, 1e4, 1e30]}[dtype]
    saturated = np.array([s * b for b in big for s in (1, -1)])
    signs = np.sign(saturated)
    sub = format_of(dtype).smallest_subnormal
    edges = [
        ("empty", np.zeros((2, 0, 3)), np.zeros((2, 0, 3))),
        ("scalar", np.array(-1.5), np.array(1.0)),
        ("zero-input", np.zeros((3, 4)), rng.choice([-1.0, 1.0], (3, 4))),
        ("saturated-agree", saturated, signs),
        ("saturated-disagree", saturated, -signs),
        ("soft-targets", rng.normal(size=(4, 6)) * 3, rng.uniform(-1, 1, (4, 6))),
        ("zero-targets", rng.normal(size=(2, 5)) * 3, np.zeros((2, 5))),
        ("subnormal", np.array([sub, -sub, 5 * sub, 0.0]), np.array([1.0, 1.0, -1.0, -1.0])),
        ("large-sum", -rng.uniform(2, 8, 4096), np.ones(4096)),
    ]
    return [(i, x, y, None, {}) for i, x, y in edges]


def _edges(name):
    def edges(variant, rng):
        """The fixed catalogue of edge cases of one loss for one dtype and reduction."""
        dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
        rows = (_margin_edges(dtype, rng) if name == "soft_margin_loss"
                else _regression_edges(name, dtype, rng))
        out = []
        for edge_id, x, y, w, options in rows:
            x, y = round_to(x, dtype), round_to(y, dtype)
            args = {"input": x, "target": y}
            if name in WEIGHTED:
                args["weight"] = None if w is None else round_to(w, dtype)
            if name in THRESHOLD_OPTION:
                options = {THRESHOLD_OPTION[name]: 1.0, **options}
            shape = _output_shape(x.shape, reduction)
            g = (rng.uniform(-3, 3, shape) if shape else np.array(rng.choice([-2.5, 0.75])))
            layouts = {}
            if edge_id == "all-equal":  # also a non-contiguous layout
                layouts = {"input": "transposed", "target": "sliced"}
            out.append((edge_id, Case(dtype, args, {"reduction": reduction, **options}, layouts,
                                      (edge_id,), grad_output=round_to(g, dtype))))
        return out

    return edges


# --- invalid calls -------------------------------------------------------------------------------

def _invalid(name):
    def invalid_calls():
        """Calls torch 2.13 rejects (each verified), that a conforming candidate must reject."""
        x, y = np.zeros((2, 4)), np.zeros((2, 4))
        ints = np.zeros((2, 4), dtype=np.int64)
        calls = [
            ("target-shape", "target has shape (2, 5), input (2, 4): they do not broadcast",
             {"input": x, "target": np.zeros((2, 5))}, {}),
            ("unknown-reduction", "reduction 'avg' is not one of none, sum, mean",
             {"input": x, "target": y}, {"reduction": "avg"}),
            ("integer-input", "input and target are int64, not floating",
             {"input": ints, "target": ints}, {}),
        ]
        if name in WEIGHTED:
            calls.append(("weight-shape", "weight has shape (4,) but input has (2, 4)",
                          {"input": x, "target": y, "weight": np.ones(4)}, {}))
        if name == "huber_loss":
            calls += [(f"delta-{label}", f"delta = {value} is not positive",
                       {"input": x, "target": y}, {"delta": value})
                      for label, value in (("zero", 0.0), ("negative", -1.0), ("nan", math.nan))]
        if name == "smooth_l1_loss":
            calls += [(f"beta-{label}", f"beta = {value} is negative or nan",
                       {"input": x, "target": y}, {"beta": value})
                      for label, value in (("negative", -1.0), ("nan", math.nan))]
        if name == "soft_margin_loss":
            calls.append(("target-broadcasts-larger", "target (3, 2, 4) would enlarge input "
                          "(2, 4)", {"input": x, "target": np.zeros((3, 2, 4))}, {}))
        out = []
        for call_id, reason, args, options in calls:
            if name in WEIGHTED:
                args.setdefault("weight", None)
            out.append(InvalidCall(call_id, reason, Case("float32", args,
                                                          {"reduction": "mean", **options})))
        return out

    return invalid_calls


# --- references and magnitudes -------------------------------------------------------------------

def _parts(name, case):
    """float64 x, y, weight (or None), the threshold and the reduction of a case."""
    a = case.args
    threshold = float(case.options.get(THRESHOLD_OPTION.get(name, ""), 1.0))
    return (np.asarray(a["input"], np.float64), np.asarray(a["target"], np.float64),
            a.get("weight"), threshold, case.options["reduction"])


def _reference(name):
    def reference(case):
        x, y, w, _, reduction = _parts(name, case)
        return ref.loss(name, x, y, w, case.options, reduction, format_of(case.dtype))

    return reference


def _reference_grad(name):
    def reference_grad(case):
        x, y, w, _, reduction = _parts(name, case)
        return ref.loss_grad(name, case.grad_output, x, y, w, case.options, reduction,
                             format_of(case.dtype))

    return reference_grad


def _softplus(t):
    return np.logaddexp(0.0, t)


def _sigmoid(t):
    return np.exp(-_softplus(-t))


def _term_sizes(name, x, y, k):
    """(|term|, |d term / d input|, factor applied after the term's first rounding)."""
    with np.errstate(over="ignore", invalid="ignore"):
        r = x - y
        z = np.abs(r)
        ones = np.ones(z.shape)
        if name == "l1_loss" or (name == "smooth_l1_loss" and k == 0):
            return z, ones, ones
        if name == "mse_loss":
            return r * r, 2 * z, ones
        quadratic = z < k
        if name == "huber_loss":
            return (np.where(quadratic, 0.5 * z * z, k * (z + k / 2)),
                    np.where(quadratic, z, k), ones)
        if name == "smooth_l1_loss":
            return (np.where(quadratic, 0.5 * z * z / k, z + k / 2),
                    np.where(quadratic, z / k, 1.0), np.where(quadratic, max(1.0, 1 / k), 1.0))
        t = -y * x
        return (_softplus(t) + np.abs(t) * _sigmoid(t),
                np.abs(y) * _sigmoid(t) * (1 + np.abs(t)), ones)


def _weight_sum_parts(w, terms):
    """W = sum w, sum |w| and A / W for a mean by the weights (terms signed by w)."""
    total_w = math.fsum(w.reshape(-1))
    quotient = float(np.sum(w * terms)) / total_w if total_w else math.inf
    return total_w, float(np.abs(w).sum()), quotient


_QUIET = {"over": "ignore", "invalid": "ignore", "divide": "ignore"}


def _magnitude(name):
    @np.errstate(**_QUIET)
    def magnitude(case):
        x, y, weight, k, reduction = _parts(name, case)
        fmt = format_of(case.dtype)
        w = np.ones(x.shape) if weight is None else np.asarray(weight, np.float64)
        t, _, after = _term_sizes(name, x, y, k)
        scale = np.abs(w) * t
        # Terms below the smallest normal may round to the subnormal grid (an absolute error).
        underflow = np.where(scale < 2.0 ** fmt.min_exponent, np.maximum(1, np.abs(w)) * after, 0)
        depth = DEPTH[name]
        if reduction == "none":
            return Magnitude(scale, 1, depth, amplification=np.maximum(1, np.abs(w)) * after)
        n = x.size
        if reduction == "sum" or n == 0:
            return Magnitude(np.array(scale.sum()), max(n, 1), depth,
                             amplification=underflow.sum())
        if ref._divides_by_weight_sum(name, weight, reduction):
            total_w, sum_abs_w, quotient = _weight_sum_parts(w, t)
            if total_w == 0:
                return Magnitude(np.array(np.inf), n, depth)  # nan or inf: judged exactly
            s = (scale.sum() + abs(quotient) * sum_abs_w) / abs(total_w)
            return Magnitude(np.array(s), n, depth, amplification=underflow.sum() / abs(total_w))
        return Magnitude(np.array(scale.sum() / n), n, depth, amplification=underflow.sum() / n)

    return magnitude


def _near_kink(x, y, k, fmt) -> np.ndarray:
    """|x - y| within rounding distance of the threshold (torch rounds both), not exactly on it."""
    z = np.abs(x - y)
    near = np.abs(z - k) <= 4 * fmt.unit_roundoff * (z + k)
    return near & ~ref.exactly_at_kink(x, y, k) if near.any() else near


def _grad_magnitudes(name):
    @np.errstate(**_QUIET)
    def grad_magnitudes(case):
        x, y, weight, k, reduction = _parts(name, case)
        fmt = format_of(case.dtype)
        w = np.ones(x.shape) if weight is None else np.abs(np.asarray(weight, np.float64))
        signed_w = w if weight is None else np.asarray(weight, np.float64)
        g = np.broadcast_to(np.abs(np.asarray(case.grad_output, np.float64)), x.shape)
        t, slope, after = _term_sizes(name, x, y, k)
        n = x.size
        depth = DEPTH[name]
        divisor, terms, spread = 1.0, 1, 1.0
        by_weight_sum = ref._divides_by_weight_sum(name, weight, reduction)
        if by_weight_sum:
            total_w, sum_abs_w, quotient = _weight_sum_parts(signed_w, t)
            if total_w == 0:
                return {a: Magnitude(np.full(x.shape, np.inf), 1, depth)
                        for a in ("input", "target", "weight")}
            divisor, terms, spread = abs(total_w), n, sum_abs_w / abs(total_w)
        elif reduction == "mean":
            divisor = max(n, 1)
        slack = 0.0
        if name in THRESHOLD_OPTION and k > 0:
            # Either branch's gradient within rounding distance of the kink: their difference.
            jump = np.abs(np.abs(x - y) - k) / (k if name == "smooth_l1_loss" else 1.0)
            slack = np.where(_near_kink(x, y, k, fmt), g * w * jump / divisor, 0.0)
        amplification = np.maximum(1, g) * np.maximum(1, w) * np.maximum(1, slope) * after
        d_input = Magnitude(g * w * slope * spread / divisor, terms, depth, slack=slack,
                            amplification=amplification)
        out = {"input": d_input}
        if name != "soft_margin_loss":
            out["target"] = d_input
        if weight is not None:
            amplification = np.maximum(1, g) * np.maximum(1, t) * after
            if by_weight_sum:
                spread_terms = (t * sum_abs_w + np.sum(w * t) + abs(quotient) * sum_abs_w)
                scale = g * spread_terms / divisor / divisor
                # torch forms t_i (g / W) - g (A / W) / W: an underflow in a term t_i is then
                # multiplied by g / W, one in each of the n products w t inside A by g / W^2.
                amplification = amplification * max(1, 1 / divisor) * max(
                    1, n * max(1, float(w.max(initial=1))) / divisor)
            else:
                scale = g * t / divisor
            out["weight"] = Magnitude(scale, terms, depth, amplification=amplification)
        return out

    return grad_magnitudes


def _spec(name):
    return Spec(
        name=name, family="pointwise", positional=("input", "target"),
        keyword_arrays=("weight",) if name in WEIGHTED else (),
        variants=_variants(), cases=_cases(name), edge_cases=_edges(name),
        invalid_calls=_invalid(name), reference=_reference(name), magnitude=_magnitude(name),
        differentiable=("input",) if name == "soft_margin_loss" else
        ("input", "target") + (("weight",) if name in WEIGHTED else ()),
        reference_grad=_reference_grad(name), grad_magnitudes=_grad_magnitudes(name),
    )


SPECS = tuple(_spec(name) for name in ref.LOSSES)
