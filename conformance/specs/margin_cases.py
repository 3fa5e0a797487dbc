"""Case strategies and edge cases of the margin family (the contract is in margin.py).

Random cases put options inside the drawn case (margin, p, weight, target kind, layout), so a
loss has only dtype x reduction variants. Hinges are probed on a grid: values whose hinge
m - y (x1 - x2), m - x or m - x[y] + x[i] is exactly 0, or one spacing of the dtype either side.
"""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import strategies as st

from loss_reference.formats import format_of

from ..cases import (Case, batch_shape, float_array, layouts_for, logits, make_expandable,
                     regime_values, round_to, saturation_tags, upstream_gradient)

DRAWN_ELEMENTS = 16  # drawing elements one by one is the slow part of a case
arrays = functools.partial(float_array, max_drawn=DRAWN_ELEMENTS, planted=8)

# Margins every format holds (a grid of values lands exactly on the hinge), and others that no
# half-precision format holds (torch rounds them), large and negative ones. None: the default.
GRID_MARGINS = (0.0, 0.5, 1.0, 2.0, -1.0, -0.5, 0.25)
OTHER_MARGINS = (0.1, 0.3, 3.7, -0.7, 10.0, 100.0)
UPSTREAM = st.floats(-4, 4)


def draw_margin(draw, options, tags):
    """Draw a margin (or leave the default) into options; tag it."""
    kind = draw(st.sampled_from(("default", "grid", "grid", "other")), label="margin kind")
    if kind == "default":
        tags.append("margin-default")
        return None
    margin = draw(st.sampled_from(GRID_MARGINS if kind == "grid" else OTHER_MARGINS),
                  label="margin")
    options["margin"] = margin
    tags.append(f"margin={margin}")
    return margin


def layout_tags(layouts):
    """Region tags for the non-contiguous layouts of a case."""
    return tuple(sorted({f"layout-{v}" for v in layouts.values() if v != "contiguous"}))


def apply_layouts(draw, args, names):
    """Draw a layout per array argument; expanded ones get equal rows."""
    layouts = draw(layouts_for(names, [np.shape(args[n]) for n in names]), label="layouts")
    for name, layout in layouts.items():
        if layout == "expanded":
            args[name] = make_expandable(args[name])
    return layouts


def output_gradient(draw, shape, dtype):
    """A random upstream gradient: per element for 'none', a scalar other than 1 otherwise."""
    if shape == ():
        return upstream_gradient(draw, (), dtype)
    # Few drawn elements: an upstream gradient rarely needs shrinking element by element.
    return round_to(float_array(draw, shape, UPSTREAM, lambda rng, n: rng.uniform(-4, 4, n),
                                "grad_output", max_drawn=6, planted=2), dtype)


def values(draw, shape, dtype, regime, label):
    """Values of a regime (cases.REGIMES, or 'subnormal'), rounded to the dtype."""
    return regime_values(draw, shape, dtype, regime, label, max_drawn=DRAWN_ELEMENTS)


def step(x, steps, dtype):
    """x moved by ``steps`` (small integers) spacings of the dtype."""
    return round_to(x + steps * format_of(dtype).ulp(x), dtype)


# --- shapes ------------------------------------------------------------------------------------

ELEMENTWISE_KINDS = ("scalar", "empty", "vector", "vector", "matrix", "rank-3", "single",
                     "large")


def elementwise_shape(draw, max_rank=3):
    """A shape of rank 0 to max_rank from a drawn kind; returns (shape, kind)."""
    kinds = [k for k in ELEMENTWISE_KINDS if k != "rank-3" or max_rank >= 3]
    kind = draw(st.sampled_from(kinds), label="shape kind")
    if kind == "scalar":
        return (), kind
    if kind == "empty":
        return (0,) if max_rank < 3 else (2, 0), kind
    if kind == "vector":
        return (draw(st.integers(1, 24), label="length"),), kind
    if kind == "matrix":
        return (draw(st.integers(1, 5)), draw(st.integers(1, 5))), kind
    if kind == "rank-3":
        return tuple(draw(st.lists(st.integers(1, 3), min_size=3, max_size=3))), kind
    if kind == "single":
        return (1,), kind
    return (draw(st.integers(1024, 2500), label="length"),), kind


# --- margin_ranking_loss -----------------------------------------------------------------------

TARGET_KINDS = ("binary", "binary", "binary", "real")
TARGETS = {"binary": (st.sampled_from([-1.0, 1.0]), lambda rng, n: rng.choice([-1.0, 1.0], n)),
           "real": (st.one_of(st.floats(-2, 2), st.just(0.0)),
                    lambda rng, n: rng.uniform(-2, 2, n))}
KINK_CODES = 65 * 9  # target k / 8 (k in -32..32), side and nudge in -1..1


@st.composite
def ranking_cases(draw, variant):
    """Random margin_ranking_loss cases for one dtype and reduction."""
    dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
    shape, kind = elementwise_shape(draw, max_rank=2)
    options, tags = {"reduction": reduction}, [kind]
    margin = draw_margin(draw, options, tags)
    m = 0.0 if margin is None else margin
    target_kind = draw(st.sampled_from(TARGET_KINDS), label="target kind")
    y = round_to(arrays(draw, shape, *TARGETS[target_kind], "target"), dtype)
    regime = draw(st.sampled_from(("normal", "large", "tiny", "mixed", "subnormal", "equal",
                                   "kink-grid", "kink-grid")), label="regime")
    if regime == "kink-grid":
        # x1 - x2 = y (m + side / 2): the hinge is 0 (side 0) for y = +-1, then nudged
        codes = arrays(draw, shape, st.integers(0, KINK_CODES - 1),
                       lambda rng, n: rng.integers(0, KINK_CODES, n), "kink codes")
        codes = codes.astype(np.int64)
        x2 = round_to((codes // 9 - 32) / 8, dtype)
        side, nudge = (codes % 9) // 3 - 1, codes % 3 - 1
        x1 = step(round_to(x2 + y * (m + side / 2), dtype), nudge, dtype)
    else:
        x1 = values(draw, shape, dtype, "normal" if regime == "equal" else regime, "input1")
        x2 = x1.copy() if regime == "equal" else values(draw, shape, dtype, regime, "input2")
    args = {"input1": x1, "input2": x2, "target": y}
    layouts = apply_layouts(draw, args, list(args))
    tags += [regime, f"target-{target_kind}"]
    case = Case(dtype, args, options, layouts,
                tuple(tags) + saturation_tags(x1, dtype) + layout_tags(layouts))
    case.grad_output = output_gradient(draw, shape if reduction == "none" else (), dtype)
    return case


def ranking_edges(dtype, rng):
    """(id, {arrays}, options) for margin_ranking_loss."""
    fmt = format_of(dtype)
    below, above = 1 - 2.0 ** -fmt.precision, 1 + 2.0 ** (1 - fmt.precision)
    d = np.array([1.0, below, above, -1.0, -below, -above, 0.0, 2.0])
    x2 = np.array([0.5, 0.0, 0.0, 0.25, 0.0, 0.0, 3.0, -1.0])
    big = rng.uniform(2, 8, 4096)
    y = rng.choice([-1.0, 1.0], 4096)
    return [
        ("empty", {"input1": np.zeros(0), "input2": np.zeros(0), "target": np.zeros(0)}, {}),
        ("scalar", {"input1": np.array(0.75), "input2": np.array(1.5),
                    "target": np.array(1.0)}, {"margin": 0.5}),
        ("at-hinge", {"input1": x2 + d, "input2": x2, "target": np.sign(d) + (d == 0)},
         {"margin": 1.0}),
        ("ties", {"input1": np.array([1.5, -2.0, 0.0, 7.0]), "input2": np.array([1.5, -2.0,
                                                                                0.0, 7.0]),
                  "target": np.array([1.0, -1.0, 1.0, -1.0])}, {}),
        ("real-targets", {"input1": rng.normal(size=6) * 3, "input2": rng.normal(size=6),
                          "target": np.array([0.5, -0.25, 0.0, 2.0, -1.5, 1.0])},
         {"margin": 0.5}),
        ("negative-margin", {"input1": rng.normal(size=(3, 4)), "input2": rng.normal(size=(3, 4)),
                             "target": rng.choice([-1.0, 1.0], (3, 4))}, {"margin": -0.5}),
        ("overflowing-difference", {"input1": np.array([6e4, 1.0, 0.0, 0.0]),
                                    "input2": np.array([-3e4, 0.0, 0.0, 0.0]),
                                    "target": np.array([-1.0, 1.0, 1.0, -1.0])}, {}),
        ("subnormal", {"input1": np.array([fmt.smallest_subnormal, 0.0,
                                           3 * fmt.smallest_subnormal]),
                       "input2": np.array([0.0, fmt.smallest_subnormal, 0.0]),
                       "target": np.array([-1.0, -1.0, 1.0])}, {}),
        ("broadcast-target", {"input1": rng.normal(size=(3, 4)), "input2": rng.normal(size=(3, 4)),
                              "target": np.array([[1.0], [-1.0], [1.0]])}, {"margin": 0.5}),
        ("broadcast-input2", {"input1": rng.normal(size=5), "input2": np.array([0.25]),
                              "target": rng.choice([-1.0, 1.0], 5)}, {"margin": 1.0}),
        ("large-sum", {"input1": big, "input2": -big, "target": y}, {"margin": 2.0}),
    ]


# --- hinge_embedding_loss ----------------------------------------------------------------------

HINGE_TARGETS = {
    "binary": (st.sampled_from([-1.0, 1.0]), lambda rng, n: rng.choice([-1.0, 1.0], n)),
    "other": (st.one_of(st.sampled_from([-1.0, 1.0, 0.0, 2.0, -2.0, 0.5]), st.floats(-2, 2)),
              lambda rng, n: rng.choice([-1.0, 1.0, 0.0, 2.0, 0.5], n)),
}
HINGE_CODES = 33 * 9  # offset k / 8 (k in -16..16) times side, nudge in -1..1


@st.composite
def hinge_cases(draw, variant):
    """Random hinge_embedding_loss cases for one dtype and reduction."""
    dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
    shape, kind = elementwise_shape(draw)
    options, tags = {"reduction": reduction}, [kind]
    margin = draw_margin(draw, options, tags)
    m = 1.0 if margin is None else margin
    regime = draw(st.sampled_from(("normal", "large", "tiny", "mixed", "subnormal",
                                   "kink-grid", "kink-grid")), label="regime")
    if regime == "kink-grid":
        codes = arrays(draw, shape, st.integers(0, HINGE_CODES - 1),
                       lambda rng, n: rng.integers(0, HINGE_CODES, n), "kink codes")
        codes = codes.astype(np.int64)
        offset, nudge = (codes // 9 - 16) / 8 * ((codes % 9) // 3 - 1), codes % 3 - 1
        x = step(round_to(m + offset, dtype), nudge, dtype)
    else:
        x = values(draw, shape, dtype, regime, "input")
    target_kind = draw(st.sampled_from(("binary", "binary", "other")), label="target kind")
    y = round_to(arrays(draw, shape, *HINGE_TARGETS[target_kind], "target"), dtype)
    args = {"input": x, "target": y}
    layouts = apply_layouts(draw, args, list(args))
    tags += [regime, f"target-{target_kind}"]
    case = Case(dtype, args, options, layouts,
                tuple(tags) + saturation_tags(x, dtype) + layout_tags(layouts))
    case.grad_output = output_gradient(draw, shape if reduction == "none" else (), dtype)
    return case


def hinge_edges(dtype, rng):
    """(id, {arrays}, options) for hinge_embedding_loss."""
    fmt = format_of(dtype)
    below, above = 1 - 2.0 ** -fmt.precision, 1 + 2.0 ** (1 - fmt.precision)
    x_kink = np.array([1.0, below, above, 0.0, 2.0, 1.0])
    return [
        ("empty", {"input": np.zeros((2, 0)), "target": np.zeros((2, 0))}, {}),
        ("scalar", {"input": np.array(0.25), "target": np.array(-1.0)}, {}),
        ("at-hinge", {"input": x_kink, "target": np.array([-1.0, -1.0, -1.0, 1.0, -1.0, 0.0])},
         {}),
        ("other-targets", {"input": np.array([0.5, -1.0, 2.0, 0.25, 3.0, -0.5]),
                           "target": np.array([0.0, 2.0, 0.5, -2.0, 0.0, 1.5])}, {}),
        ("negative-margin", {"input": rng.normal(size=(2, 3)), "target":
                             rng.choice([-1.0, 1.0], (2, 3))}, {"margin": -0.5}),
        ("zero-margin", {"input": np.array([0.0, -1.0, 1.0, 0.0]),
                         "target": np.array([-1.0, -1.0, -1.0, 1.0])}, {"margin": 0.0}),
        ("rank-3", {"input": rng.normal(size=(2, 3, 2)), "target":
                    rng.choice([-1.0, 1.0], (2, 3, 2))}, {"margin": 0.5}),
        ("overflowing-hinge", {"input": np.array([-6.5e4, -6.5e4, 2.0, 0.0]),
                               "target": np.array([-1.0, 0.0, -1.0, 1.0])}, {"margin": 100.0}),
        ("subnormal", {"input": np.array([fmt.smallest_subnormal, -fmt.smallest_subnormal, 0.0]),
                       "target": np.array([1.0, 1.0, -1.0])}, {"margin": 0.0}),
        ("large-sum", {"input": -rng.uniform(2, 8, 4096), "target": np.full(4096, -1.0)}, {}),
    ]


# --- multi_margin_loss -------------------------------------------------------------------------

GRID = st.integers(-12, 12).map(lambda k: k / 4)
WEIGHTINGS = ("none", "none", "uniform", "non-uniform", "with-zeros", "signed")
WEIGHT_LEVELS = [0.0, 0.5, 1.0, 2.5]
WEIGHT_ELEMENTS = {
    "non-uniform": (st.floats(0.05, 3), lambda rng, n: rng.uniform(0.05, 3, n)),
    "with-zeros": (st.sampled_from(WEIGHT_LEVELS), lambda rng, n: rng.choice(WEIGHT_LEVELS, n)),
    "signed": (st.floats(-1, 3), lambda rng, n: rng.uniform(-1, 3, n)),
}


def _class_weights(draw, classes, dtype, kind):
    if kind == "none":
        return None
    if kind == "uniform":
        return round_to(np.full(classes, draw(st.floats(0.1, 4), label="weight value")), dtype)
    return round_to(arrays(draw, (classes,), *WEIGHT_ELEMENTS[kind], "weight"), dtype)


@st.composite
def multi_cases(draw, variant):
    """Random multi_margin_loss cases for one dtype and reduction."""
    dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
    shape, kind = batch_shape(draw, max_classes_wide=4500, wide_rows=2)
    batch, classes = (shape[0] if len(shape) == 2 else 1), shape[-1]
    options, tags = {"reduction": reduction}, [kind]
    p = draw(st.sampled_from((None, 1, 2, 2)), label="p")
    if p is not None:
        options["p"] = p
    tags.append(f"p={p or 1}")
    draw_margin(draw, options, tags)
    regime = draw(st.sampled_from(("logits", "grid", "grid", "ties")), label="regime")
    if regime == "grid":
        x = round_to(arrays(draw, shape, GRID, lambda rng, n: rng.integers(-12, 13, n) / 4,
                            "input"), dtype)
    elif regime == "ties":
        row = round_to(draw(st.floats(-8, 8), label="tied value"), dtype)
        x = np.full(shape, float(row))
    else:
        x, regime = logits(draw, shape, dtype)
    labels = arrays(draw, (batch,), st.integers(0, classes - 1),
                    lambda rng, n: rng.integers(0, classes, n), "target")
    target_shape = (batch,) if len(shape) == 2 else draw(st.sampled_from([(), (1,)]),
                                                         label="unbatched target shape")
    args = {"input": x, "target": labels.astype(np.int64).reshape(target_shape)}
    weighting = draw(st.sampled_from(WEIGHTINGS), label="weighting")
    args["weight"] = _class_weights(draw, classes, dtype, weighting)
    names = [n for n in args if args[n] is not None]
    layouts = apply_layouts(draw, args, names)
    tags += [regime, f"weight-{weighting}"]
    case = Case(dtype, args, options, layouts,
                tuple(tags) + saturation_tags(x, dtype) + layout_tags(layouts))
    case.grad_output = output_gradient(draw, target_shape if reduction == "none" else (), dtype)
    return case


def multi_edges(dtype, rng):
    """(id, {arrays}, options) for multi_margin_loss."""
    wide = rng.normal(size=(2, 4096)) * 3
    return [
        ("empty-batch", {"input": np.zeros((0, 4)), "target": np.zeros(0, np.int64)}, {}),
        ("unbatched", {"input": np.array([0.5, -1.0, 2.0, 0.75]), "target": np.array(2)}, {}),
        ("unbatched-target-1", {"input": np.array([0.5, -1.0, 2.0]), "target": np.array([0])},
         {"p": 2}),
        ("one-class", {"input": np.array([[0.5], [-2.0], [3.0]]), "target": np.zeros(3, np.int64)},
         {}),
        ("two-classes", {"input": np.array([[0.5, 1.0], [-2.0, 3.0], [1.0, 1.0]]),
                         "target": np.array([0, 1, 1])}, {"margin": 0.5}),
        ("ties", {"input": np.full((3, 5), 0.75), "target": np.array([0, 4, 2])}, {"p": 2}),
        ("at-hinge", {"input": np.array([[1.0, 0.0, 0.5, -3.0], [2.0, 1.0, 1.0, 1.5]]),
                      "target": np.array([0, 0])}, {}),
        ("saturated", {"input": np.array([[1e4, -1e4, 3e4, 0.0], [-3e4, 1e4, 0.0, 2.0]]),
                       "target": np.array([1, 0])}, {}),
        ("weighted-p2", {"input": rng.normal(size=(4, 5)) * 2, "target": np.array([0, 4, 2, 2]),
                         "weight": np.array([0.5, 2.0, 1.0, 3.0, 0.25])},
         {"p": 2, "margin": 0.5}),
        ("signed-weights", {"input": rng.normal(size=(3, 4)) * 2, "target": np.array([0, 1, 3]),
                            "weight": np.array([-1.0, 0.0, 0.5, 2.0])}, {}),
        ("zero-margin", {"input": np.array([[0.0, 0.0, 1.0], [2.0, -1.0, 2.0]]),
                         "target": np.array([0, 2])}, {"margin": 0.0}),
        ("negative-margin", {"input": rng.normal(size=(3, 4)), "target": np.array([3, 1, 0])},
         {"margin": -0.5, "p": 2}),
        ("large-classes", {"input": wide, "target": np.array([17, 4095]),
                           "weight": rng.uniform(0.1, 2, 4096)}, {}),
    ]
