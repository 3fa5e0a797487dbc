"""Cases of the binary family: hypothesis strategies, the edge catalogue and invalid calls.

The contract these cases probe is stated in ``conformance/specs/binary.py``. Shapes have rank 0
to 3 (empty ones included, and a few of 1024 to 2048 elements); probabilities are drawn
uniformly, at the ends 0 and 1, tiny (down to the subnormals, across the clamp exp(-100)), near
1 and exactly around the clamp; logits in the shared regimes plus subnormal and infinite ones;
targets hard (0/1), soft in [0, 1] or equal to the probability; weight and pos_weight with a
drawn kind of values and a drawn broadcast shape (the input's, its last dimension, a scalar,
leading ones, or a column).
"""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import strategies as st

from loss_reference.binary import CLAMP_BELOW
from loss_reference.formats import format_of

from ..cases import (REGIMES, Case, bulk_values, float_array, layouts_for, make_expandable,
                     round_to, saturation_tags, subnormals, upstream_gradient)
from . import InvalidCall

BCE = "binary_cross_entropy"
LOGITS = "binary_cross_entropy_with_logits"
DRAWN_ELEMENTS = 24  # every element drawn up to this size (so failures shrink); seeded above

arrays = functools.partial(float_array, max_drawn=DRAWN_ELEMENTS, planted=8)

# --- shapes --------------------------------------------------------------------------------------

SHAPE_KINDS = ("scalar", "empty", "vector", "matrix", "matrix", "rank-3", "single", "large")


def binary_shape(draw):
    """A shape of rank 0 to 3 from a drawn kind; returns (shape, kind)."""
    kind = draw(st.sampled_from(SHAPE_KINDS), label="shape kind")
    if kind == "scalar":
        return (), kind
    if kind == "empty":
        dims = draw(st.lists(st.integers(0, 4), min_size=1, max_size=3), label="dims")
        dims[draw(st.integers(0, len(dims) - 1), label="empty axis")] = 0
        return tuple(dims), kind
    if kind == "vector":
        return (draw(st.integers(1, 16), label="length"),), kind
    if kind == "matrix":
        return (draw(st.integers(1, 5)), draw(st.integers(1, 5))), kind
    if kind == "rank-3":
        return tuple(draw(st.lists(st.integers(1, 3), min_size=3, max_size=3))), kind
    if kind == "single":
        return (1,) * draw(st.integers(1, 3), label="rank"), kind
    return (draw(st.integers(1, 2)), draw(st.integers(1024, 1024 + 1024))), kind


def _broadcast_shapes(shape):
    """The shapes a weight may take: the input's, its last dimension, a scalar, leading ones
    before the last dimension, a column (the last dimension 1)."""
    kinds = {"full": tuple(shape), "scalar": ()}
    if len(shape) >= 1:
        kinds["last"] = tuple(shape[-1:])
    if len(shape) >= 2:
        kinds["leading-ones"] = (1,) * (len(shape) - 1) + tuple(shape[-1:])
        kinds["column"] = tuple(shape[:-1]) + (1,)
    return kinds


# --- values --------------------------------------------------------------------------------------

def _tiny(rng, n):
    return 10.0 ** rng.uniform(-46, -2, n)


PROBABILITY_ELEMENTS = {  # elements and numpy fill of each probability regime
    "uniform": (st.floats(0, 1), lambda rng, n: rng.random(n)),
    "ends": (st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1)),
             lambda rng, n: np.where(rng.random(n) < 0.5, rng.integers(0, 2, n), rng.random(n))),
    "tiny": (st.floats(-46, -2).map(lambda e: 10.0 ** e), _tiny),
    "near-one": (st.floats(-17, -1).map(lambda e: 1 - 10.0 ** e), lambda rng, n: 1 - _tiny(rng, n)),
    # around exp(-100), where the log is clamped: float64 neighbours and float32 subnormals
    "clamp": (st.sampled_from([CLAMP_BELOW, float(np.nextafter(CLAMP_BELOW, 1)),
                               26 * 2.0 ** -149, 27 * 2.0 ** -149, 2.0 ** -149, 5e-324]),
              lambda rng, n: rng.integers(20, 34, n) * 2.0 ** -149),
}
_MIXED_BULK = tuple(f for r, (_, f) in PROBABILITY_ELEMENTS.items() if r != "clamp")
PROBABILITY_ELEMENTS["mixed"] = (
    st.one_of(*(e for e, _ in PROBABILITY_ELEMENTS.values())),
    lambda rng, n: np.choose(rng.integers(0, len(_MIXED_BULK), n),
                             [f(rng, n) for f in _MIXED_BULK]))
PROBABILITY_REGIMES = tuple(PROBABILITY_ELEMENTS)


INFINITE = st.one_of(st.sampled_from([np.inf, -np.inf]), REGIMES["normal"])
LOGIT_REGIMES = ("normal", "large", "tiny", "mixed", "subnormal", "infinite")


def _logits(draw, shape, dtype):
    regime = draw(st.sampled_from(LOGIT_REGIMES), label="logit regime")
    if regime == "subnormal":
        elements, bulk = subnormals(dtype)
    elif regime == "infinite":
        elements = INFINITE

        def bulk(rng, n):
            return np.where(rng.random(n) < 0.25, rng.choice([-np.inf, np.inf], n),
                            rng.uniform(-8, 8, n))
    else:
        elements, bulk = REGIMES[regime], (lambda rng, n: bulk_values(rng, regime, n))
    values = arrays(draw, shape, elements, bulk, "input")
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(values)
        return np.where(finite, round_to(np.where(finite, values, 0.0), dtype), values), regime


TARGET_KINDS = ("binary", "binary", "soft", "equal")
HARD = (st.sampled_from([0.0, 1.0]), lambda rng, n: rng.integers(0, 2, n) * 1.0)
SOFT = (st.floats(0, 1), lambda rng, n: rng.random(n))


def _targets(draw, shape, dtype, probabilities):
    """Targets of a drawn kind; 'equal' copies the probabilities (binary_cross_entropy only)."""
    kinds = TARGET_KINDS if probabilities is not None else TARGET_KINDS[:3]
    kind = draw(st.sampled_from(kinds), label="target kind")
    if kind == "equal":
        return probabilities.copy(), kind
    elements, bulk = HARD if kind == "binary" else SOFT
    return round_to(arrays(draw, shape, elements, bulk, "target"), dtype), kind


WEIGHTINGS = ("none", "none", "uniform", "non-uniform", "with-zeros", "signed")
WEIGHT_LEVELS = [0.0, 0.5, 1.0, 2.5]
WEIGHT_ELEMENTS = {
    "non-uniform": (st.floats(0.05, 3), lambda rng, n: rng.uniform(0.05, 3, n)),
    "with-zeros": (st.sampled_from(WEIGHT_LEVELS), lambda rng, n: rng.choice(WEIGHT_LEVELS, n)),
    "signed": (st.floats(-1, 3), lambda rng, n: rng.uniform(-1, 3, n)),
}
POS_WEIGHTINGS = ("none", "none", "uniform", "non-uniform", "levels")
POS_LEVELS = [0.0, 0.5, 1.0, 3.0, 10.0]
POS_ELEMENTS = {
    "non-uniform": (st.floats(0.05, 10), lambda rng, n: rng.uniform(0.05, 10, n)),
    "levels": (st.sampled_from(POS_LEVELS), lambda rng, n: rng.choice(POS_LEVELS, n)),
}


def _weight(draw, shape, dtype, name, kinds, elements_of):
    """(weight or None, tags): values of a drawn kind on a drawn broadcastable shape."""
    kind = draw(st.sampled_from(kinds), label=f"{name} kind")
    if kind == "none":
        return None, ()
    shapes = _broadcast_shapes(shape)
    form = draw(st.sampled_from(sorted(shapes)), label=f"{name} shape")
    if kind == "uniform":
        value = draw(st.floats(0.1, 4), label=f"{name} value")
        values = np.full(shapes[form], value)
    else:
        elements, bulk = elements_of[kind]
        values = arrays(draw, shapes[form], elements, bulk, name)
    return round_to(values, dtype), (f"{name}-{kind}", f"{name}-{form}")


def _layout_tags(layouts):
    return tuple(sorted({f"layout-{v}" for v in layouts.values() if v != "contiguous"}))


UPSTREAM = st.floats(-4, 4)


def output_shape(shape, reduction):
    return tuple(shape) if reduction == "none" else ()


def cases(name):
    """The hypothesis strategy of random cases of one loss, per Variant (dtype, reduction)."""
    @st.composite
    def draw_case(draw, variant):
        dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
        shape, kind = binary_shape(draw)
        tags = [kind]
        if name == BCE:
            regime = draw(st.sampled_from(PROBABILITY_REGIMES), label="probability regime")
            elements, bulk = PROBABILITY_ELEMENTS[regime]
            x = round_to(arrays(draw, shape, elements, bulk, "input"), dtype)
            y, target_kind = _targets(draw, shape, dtype, x)
        else:
            x, regime = _logits(draw, shape, dtype)
            y, target_kind = _targets(draw, shape, dtype, None)
        tags += [regime, f"target-{target_kind}"]
        args = {"input": x, "target": y}
        args["weight"], more = _weight(draw, shape, dtype, "weight", WEIGHTINGS, WEIGHT_ELEMENTS)
        tags += more
        if name == LOGITS:
            args["pos_weight"], more = _weight(draw, shape, dtype, "pos_weight", POS_WEIGHTINGS,
                                               POS_ELEMENTS)
            tags += more
        names = [n for n in args if args[n] is not None]
        layouts = draw(layouts_for(names, [np.shape(args[n]) for n in names]), label="layouts")
        for n, layout in layouts.items():
            if layout == "expanded":
                args[n] = make_expandable(args[n])
        with np.errstate(invalid="ignore"):
            region = saturation_tags(np.where(np.isfinite(x), x, 1e30), dtype) if name == LOGITS \
                else ()
        case = Case(dtype, args, {"reduction": reduction}, layouts,
                    tuple(tags) + region + _layout_tags(layouts))
        out_shape = output_shape(shape, reduction)
        case.grad_output = (upstream_gradient(draw, out_shape, dtype) if out_shape == () else
                            round_to(arrays(draw, out_shape, UPSTREAM, lambda rng, n:
                                            rng.uniform(-4, 4, n), "grad_output"), dtype))
        return case

    return draw_case


# --- edge cases ----------------------------------------------------------------------------------

def _probability_edges(dtype, rng):
    """(id, p, y, weight) rows for binary_cross_entropy."""
    fmt = format_of(dtype)
    below_one = [1 - 2.0 ** -k for k in (fmt.precision, 24, 11)]
    clamp = [CLAMP_BELOW, float(np.nextafter(CLAMP_BELOW, 1)), 26 * 2.0 ** -149,
             27 * 2.0 ** -149, fmt.smallest_subnormal, 2.0 ** fmt.min_exponent, 1e-300]
    low = np.array(clamp + below_one)
    tiny = 10.0 ** -np.arange(1.0, 41.0)
    soft_p = rng.uniform(0.01, 0.99, (4, 6))
    return [
        ("empty", np.zeros((2, 0, 3)), np.zeros((2, 0, 3)), None),
        ("scalar", np.array(0.25), np.array(1.0), None),
        ("ends", np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5]),
         np.array([0.0, 1.0, 0.5, 0.0, 1.0, 0.5, 0.5]), None),
        ("clamp-boundary", np.concatenate([low, 1 - low]),
         np.concatenate([np.ones(low.size), np.zeros(low.size)]), None),
        ("tiny-probabilities", np.concatenate([tiny, 1 - tiny]),
         np.concatenate([np.zeros(40), np.ones(40)]), None),
        ("soft-targets", soft_p, rng.random((4, 6)), None),
        ("equal", soft_p, soft_p, None),
        ("weight-last-dim", rng.random((3, 4)), rng.random((3, 4)), rng.uniform(0.1, 3, 4)),
        ("weight-scalar", rng.random((2, 3)), (rng.random((2, 3)) < 0.5) * 1.0, np.array(2.5)),
        ("weight-column", rng.random((3, 4)), rng.random((3, 4)), np.array([[0.0], [-1.0], [2.0]])),
        ("large-sum", rng.uniform(0, 1e-35, 4096), np.ones(4096), None),
    ]


def _logit_edges(dtype, rng):
    """(id, x, y, weight, pos_weight) rows for binary_cross_entropy_with_logits."""
    big = np.array([20.0, 40.0, 100.0, 1e4, 1e30])
    saturated = np.concatenate([big, -big])
    sub = format_of(dtype).smallest_subnormal
    inf = np.inf
    return [
        ("empty", np.zeros((2, 0, 3)), np.zeros((2, 0, 3)), None, None),
        ("scalar", np.array(-1.5), np.array(1.0), None, None),
        ("saturated-agree", saturated, (saturated > 0) * 1.0, None, None),
        ("saturated-disagree", saturated, (saturated < 0) * 1.0, None, None),
        ("saturated-soft", saturated, np.full(10, 0.25), None, np.full(10, 3.0)),
        ("infinite", np.array([inf, inf, inf, -inf, -inf, -inf, 0.5, -2.0]),
         np.array([1.0, 0.0, 0.5, 1.0, 0.0, 0.5, 0.25, 1.0]), None, None),
        ("pos-weight-soft", rng.normal(size=(4, 6)) * 3, rng.random((4, 6)), None,
         rng.uniform(0.5, 5, 6)),
        ("pos-weight-scalar-weight", rng.normal(size=(3, 4)) * 3, (rng.random((3, 4)) < 0.5) * 1.0,
         rng.uniform(0.1, 3, (3, 4)), np.array(3.0)),
        ("pos-weight-leading-ones", rng.normal(size=(2, 3, 4)) * 3, rng.random((2, 3, 4)),
         rng.uniform(0.1, 3, 4), rng.uniform(0.5, 5, (1, 1, 4))),
        ("zero-weights", rng.normal(size=(3, 4)), rng.random((3, 4)), np.zeros(4), None),
        ("tiny-logits", rng.choice([-1, 1], 8) * 10.0 ** rng.uniform(-9, -4, 8),
         rng.integers(0, 2, 8) * 1.0, None, None),
        ("subnormal", np.array([sub, -sub, 5 * sub, 0.0]), np.array([1.0, 0.0, 1.0, 0.5]),
         None, None),
        ("large-sum", -rng.uniform(2e3, 8e3, 4096), np.ones(4096), None, None),
    ]


def edges(name):
    """The fixed catalogue of edge cases of one loss, per Variant."""
    def edge_cases(variant, rng):
        dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
        if name == BCE:
            rows = [(i, x, y, w, None) for i, x, y, w in _probability_edges(dtype, rng)]
        else:
            rows = _logit_edges(dtype, rng)
        out = []
        for edge_id, x, y, w, q in rows:
            with np.errstate(invalid="ignore"):
                finite = np.isfinite(x)
                x = np.where(finite, round_to(np.where(finite, x, 0.0), dtype), x)
            args = {"input": x, "target": round_to(y, dtype),
                    "weight": None if w is None else round_to(w, dtype)}
            if name == LOGITS:
                args["pos_weight"] = None if q is None else round_to(q, dtype)
            shape = output_shape(x.shape, reduction)
            g = rng.uniform(-3, 3, shape) if shape else np.array(rng.choice([-2.5, 0.75]))
            layouts = {"input": "transposed", "target": "sliced"} if edge_id == "soft-targets" \
                else {}
            out.append((edge_id, Case(dtype, args, {"reduction": reduction}, layouts, (edge_id,),
                                      grad_output=round_to(g, dtype))))
        return out

    return edge_cases


# --- invalid calls -------------------------------------------------------------------------------

def invalid(name):
    """Calls torch 2.13 rejects (each verified), that a conforming candidate must reject."""
    def invalid_calls():
        x, y = np.full((2, 4), 0.25), np.full((2, 4), 0.5)
        ints = np.zeros((2, 4), dtype=np.int64)
        calls = [
            ("target-shape", "target has shape (2, 5), input (2, 4)",
             {"input": x, "target": np.zeros((2, 5))}, {}),
            ("target-broadcasts", "target (2, 1) broadcasts to input (2, 4) but is not its shape",
             {"input": x, "target": np.zeros((2, 1))}, {}),
            ("unknown-reduction", "reduction 'avg' is not one of none, sum, mean",
             {"input": x, "target": y}, {"reduction": "avg"}),
            ("integer-input", "input and target are int64, not floating",
             {"input": ints, "target": ints}, {}),
            ("weight-shape", "weight (3,) does not broadcast to input (2, 4)",
             {"input": x, "target": y, "weight": np.ones(3)}, {}),
            ("weight-enlarges", "weight (3, 2, 4) would enlarge input (2, 4)",
             {"input": x, "target": y, "weight": np.ones((3, 2, 4))}, {}),
        ]
        if name == BCE:
            calls += [
                ("input-above-one", "input 1.5 is not a probability",
                 {"input": np.array([0.5, 1.5]), "target": np.array([0.0, 1.0])}, {}),
                ("input-negative", "input -0.25 is not a probability",
                 {"input": np.array([-0.25, 0.5]), "target": np.array([0.0, 1.0])}, {}),
                ("input-nan", "input nan is not a probability",
                 {"input": np.array([np.nan, 0.5]), "target": np.array([0.0, 1.0])}, {}),
                ("target-above-one", "target 1.5 is outside [0, 1]",
                 {"input": np.array([0.5, 0.5]), "target": np.array([1.5, 1.0])}, {}),
                ("target-negative", "target -0.5 is outside [0, 1]",
                 {"input": np.array([0.5, 0.5]), "target": np.array([-0.5, 1.0])}, {}),
            ]
        else:
            calls += [
                ("pos-weight-shape", "pos_weight (3,) does not broadcast to input (2, 4)",
                 {"input": x, "target": y, "pos_weight": np.ones(3)}, {}),
                ("pos-weight-enlarges", "pos_weight (5, 2, 4) would enlarge input (2, 4)",
                 {"input": x, "target": y, "pos_weight": np.ones((5, 2, 4))}, {}),
            ]
        out = []
        for call_id, reason, args, options in calls:
            args.setdefault("weight", None)
            if name == LOGITS:
                args.setdefault("pos_weight", None)
            out.append(InvalidCall(call_id, reason, Case("float32", args,
                                                          {"reduction": "mean", **options})))
        return out

    return invalid_calls
