"""Case strategies, edge cases and invalid calls of the pointwise family (the contract is in
pointwise.py): l1_loss, mse_loss, huber_loss, smooth_l1_loss, soft_margin_loss.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from hypothesis import strategies as st

from loss_reference.formats import format_of

from ..cases import (Case, float_array, layouts_for, make_expandable, regime_values, round_to,
                     saturation_tags, upstream_gradient)
from . import InvalidCall

WEIGHTED = ("l1_loss", "mse_loss", "huber_loss")
THRESHOLD_OPTION = {"huber_loss": "delta", "smooth_l1_loss": "beta"}
# Thresholds every format holds exactly, so a grid of residuals lands exactly on the kink.
GRID_THRESHOLDS = (0.25, 0.5, 1.0, 1.5, 2.0)
# Others: ones no half-precision format holds (torch rounds them), tiny and large ones.
OTHER_THRESHOLDS = (0.1, 1e-3, 0.3, 3.7, 10.0, 100.0)


# --- strategies ----------------------------------------------------------------------------------

SHAPE_KINDS = ("scalar", "empty", "vector", "matrix", "rank-3", "single", "large")
DRAWN_ELEMENTS = 24  # far fewer than cases.MAX_DRAWN_ELEMENTS: drawing elements is the slow part


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
arrays = functools.partial(float_array, max_drawn=DRAWN_ELEMENTS, planted=8)


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
        moves = arrays(draw, shape, ULPS_APART, lambda rng, n: rng.integers(-3, 4, n),
                       "ulps apart")
        return x, _step(x, moves, dtype), regime
    if regime == "kink-grid":
        codes = arrays(draw, shape, KINK_CODE, lambda rng, n: rng.integers(0, KINK_CODES, n),
                       "kink codes")
        return (*_kink_grid(codes.astype(np.int64), threshold, dtype), regime)
    return (_values(draw, shape, dtype, regime, "input"),
            _values(draw, shape, dtype, regime, "target"), regime)


SOFT_TARGETS = ("binary", "binary", "soft", "real")
TARGET_ELEMENTS = {  # elements and numpy fill of each kind of soft margin target
    "binary": (st.sampled_from([-1.0, 1.0]), lambda rng, n: rng.choice([-1.0, 1.0], n)),
    "soft": (st.one_of(st.floats(-1, 1), st.just(0.0)), lambda rng, n: rng.uniform(-1, 1, n)),
    "real": (st.one_of(st.floats(-2, 2), st.just(0.0)), lambda rng, n: rng.uniform(-2, 2, n)),
}


def margin_pairs(draw, shape, dtype):
    """(input, target, tags) for soft_margin_loss: logits in a regime, targets of a kind."""
    regime = draw(st.sampled_from(("normal", "large", "tiny", "mixed", "subnormal")),
                  label="logit regime")
    x = _values(draw, shape, dtype, regime, "input")
    kind = draw(st.sampled_from(SOFT_TARGETS), label="target kind")
    elements, bulk = TARGET_ELEMENTS[kind]
    y = arrays(draw, shape, elements, bulk, "target")
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
    w = round_to(arrays(draw, shape, elements, bulk, "weight"), dtype)
    if kind == "signed" and w.size and w.any() and math.fsum(w.reshape(-1)) == 0:
        w.reshape(-1)[np.flatnonzero(w)[0]] *= 2  # a cancelling sum: the mean is undefined
    return w


def _layout_tags(layouts):
    return tuple(sorted({f"layout-{v}" for v in layouts.values() if v != "contiguous"}))


UPSTREAM = st.floats(-4, 4)


def _output_shape(shape, reduction):
    return tuple(shape) if reduction == "none" else ()


def cases(name):
    @st.composite
    def cases(draw, variant):
        """Random cases of one loss for one dtype and reduction."""
        dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
        shape, kind = pointwise_shape(draw)
        options = {"reduction": reduction}
        tags = [kind]
        if name == "soft_margin_loss":
            x, y, more = margin_pairs(draw, shape, dtype)
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
            x, y, regime = residual_pairs(draw, shape, dtype, threshold)
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
                            round_to(arrays(draw, out_shape, UPSTREAM, lambda rng, n:
                                            rng.uniform(-4, 4, n), "grad_output"), dtype))
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


def edges(name):
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

def invalid(name):
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
