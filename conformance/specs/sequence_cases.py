"""Cases of the sequence family (ctc_loss): random strategies and the fixed edge catalogue.

A case is (log_probs (T, N, C) or (T, C), targets, input_lengths, target_lengths) with the
options blank, reduction and zero_infinity. Drawn per case: the shape kind, the blank (0, C - 1
or between), each sample's target (labels other than the blank, repeats made likely) and
length, each input length (full, ragged, the minimum a path needs, one frame short of it, 0),
the target form (padded rows with arbitrary padding values, or one concatenated 1-D array),
the length form (tuple of ints or int64 array), the log-probability regime and the layout.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ..cases import Case, float_array, layouts_for, make_expandable, round_to, upstream_gradient

SHAPE_KINDS = ("small", "small", "small", "unbatched", "single-frame", "two-classes", "long")
VALUE_REGIMES = ("log-softmax", "log-softmax", "peaked", "unnormalized", "very-negative")
LENGTH_KINDS = ("full", "ragged", "minimal", "impossible", "zero")
# Arrays up to this size have every element drawn (and shrink element by element); larger ones
# are filled by numpy from a drawn seed: drawing elements is the slow part of a case.
DRAWN = 8


def minimal_length(labels) -> int:
    """The fewest frames a path through these labels needs: one per label, plus a blank
    between each pair of equal neighbours."""
    labels = np.asarray(labels)
    return int(labels.size + np.count_nonzero(labels[1:] == labels[:-1]))


def _dims(draw):
    """(T, N or None for unbatched, C, S_max, kind)."""
    kind = draw(st.sampled_from(SHAPE_KINDS), label="shape kind")
    frames, batch = draw(st.integers(1, 10)), draw(st.integers(1, 3))
    classes, longest = draw(st.integers(2, 6)), draw(st.integers(0, 5))
    if kind == "unbatched":
        batch = None
    elif kind == "single-frame":
        frames, longest = 1, draw(st.integers(0, 2))
    elif kind == "two-classes":
        classes = 2
    elif kind == "long":
        frames, batch = draw(st.integers(20, 40)), 2
        classes, longest = draw(st.integers(6, 30)), draw(st.integers(5, 15))
    return frames, batch, classes, longest, kind


def _labels(draw, n, classes, blank, longest):
    """Each sample's target labels (no blank); a small alphabet makes repeats likely."""
    others = [c for c in range(classes) if c != blank]
    alphabet = draw(st.lists(st.sampled_from(others), min_size=1, max_size=3, unique=True),
                    label="alphabet") if draw(st.booleans(), label="few labels") else others
    return [np.array(draw(st.lists(st.sampled_from(alphabet), max_size=longest),
                          label="target"), dtype=np.int64) for _ in range(n)]


def _input_length(draw, labels, frames):
    kind = draw(st.sampled_from(LENGTH_KINDS), label="input length kind")
    need = minimal_length(labels)
    if kind == "full":
        return frames, kind
    if kind == "ragged":
        return draw(st.integers(0, frames), label="input length"), kind
    if kind == "minimal" and need <= frames:
        return need, kind
    if kind == "impossible" and 0 < need <= frames + 1:
        return need - 1, kind
    return 0, "zero"


def _log_probs(draw, shape, dtype, regime):
    """log-probabilities of a regime, rounded to the dtype (float64 array)."""
    size = int(np.prod(shape))
    if regime in ("log-softmax", "peaked"):
        width = 4.0 if regime == "log-softmax" else 40.0
        logits = float_array(draw, shape, st.floats(-width, width), lambda rng, n:
                             rng.uniform(-width, width, n), "logits", max_drawn=DRAWN,
                             planted=4)
        top = logits.max(axis=-1, keepdims=True)
        values = logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))
    elif regime == "unnormalized":
        values = float_array(draw, shape, st.floats(-8, 4), lambda rng, n: rng.uniform(-8, 4, n),
                             "log_probs", max_drawn=DRAWN, planted=4)
    else:
        values = float_array(draw, shape, st.floats(-6, 0), lambda rng, n: rng.uniform(-6, 0, n),
                             "log_probs", max_drawn=DRAWN, planted=4)
        specials = draw(st.lists(st.tuples(st.integers(0, size - 1),
                                           st.sampled_from([-1e4, -np.inf, -300.0, -1e30])),
                                 min_size=1, max_size=6), label="very negative")
        values = round_to(values, dtype)
        flat = values.reshape(-1)
        for index, value in specials:  # after rounding, which would clip -inf
            flat[index] = value if value == -np.inf else round_to(value, dtype)
    return round_to(values, dtype) if regime != "very-negative" else values


def _pack_targets(draw, rows, unbatched):
    """(targets, form): padded rows (padding values arbitrary, ignored) or concatenated."""
    width = max((len(r) for r in rows), default=0)
    form = draw(st.sampled_from(("padded", "concatenated")), label="target form")
    if form == "concatenated":  # unbatched: the 1-D target, exactly target_length long
        return np.concatenate(rows + [np.zeros(0, np.int64)]).astype(np.int64), form
    width += draw(st.integers(0, 2), label="extra padding")
    pad = draw(st.sampled_from([0, -1, 1, 99]), label="padding value")
    out = np.full((len(rows), width), pad, dtype=np.int64)
    for n, row in enumerate(rows):
        out[n, :len(row)] = row
    return out, form  # unbatched: one padded row, (1, S)


def pack_lengths(values, as_array, unbatched):
    """Lengths as a tuple of ints, or an int64 array (0-d for an unbatched call)."""
    if as_array:
        array = np.asarray(values, dtype=np.int64)
        return array.reshape(()) if unbatched else array
    return tuple(int(v) for v in values)


@st.composite
def ctc_cases(draw, variant):
    """Random ctc_loss cases for one dtype and reduction."""
    dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
    frames, batch, classes, longest, kind = _dims(draw)
    unbatched = batch is None
    n = 1 if unbatched else batch
    blank = draw(st.sampled_from([0, 0, classes - 1, classes // 2]), label="blank")
    rows = _labels(draw, n, classes, blank, longest)
    lengths = [_input_length(draw, row, frames) for row in rows]
    regime = draw(st.sampled_from(VALUE_REGIMES), label="value regime")
    shape = (frames, classes) if unbatched else (frames, n, classes)
    lp = _log_probs(draw, shape, dtype, regime)
    targets, form = _pack_targets(draw, rows, unbatched)
    as_array = draw(st.booleans(), label="lengths as arrays")
    args = {"log_probs": lp, "targets": targets,
            "input_lengths": pack_lengths([il for il, _ in lengths], as_array, unbatched),
            "target_lengths": pack_lengths([len(r) for r in rows], as_array, unbatched)}
    options = {"blank": blank, "reduction": reduction,
               "zero_infinity": draw(st.booleans(), label="zero_infinity")}
    layouts = draw(layouts_for(["log_probs"], [shape]), label="layouts")
    if layouts["log_probs"] == "expanded":
        args["log_probs"] = make_expandable(lp)
    tags = (kind, regime, f"targets-{form}", f"blank-{'0' if blank == 0 else 'other'}",
            *sorted({f"input-{k}" for _, k in lengths}),
            *([f"layout-{layouts['log_probs']}"] if layouts["log_probs"] != "contiguous" else []))
    case = Case(dtype, args, options, layouts, tags)
    out_shape = (n,) if reduction == "none" and not unbatched else ()
    if out_shape:
        case.grad_output = round_to(float_array(draw, out_shape, st.floats(-4, 4),
                                                label="grad_output"), dtype)
    else:
        case.grad_output = upstream_gradient(draw, (), dtype)
    return case


# --- edge cases ----------------------------------------------------------------------------------

def _normalized(rng, shape, width=3.0):
    logits = rng.uniform(-width, width, shape)
    top = logits.max(axis=-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


def edge_rows(rng):
    """(id, log_probs, targets, input_lengths, target_lengths, options) of the catalogue."""
    lp = _normalized(rng, (6, 3, 4))
    very = lp.copy()
    very[:, :, 2] = -1e4
    very[1, :, 0] = -np.inf
    return [
        ("ragged-padded", lp, np.array([[1, 2, 2], [3, 99, 99], [-1, -1, -1]]), (6, 4, 2),
         (3, 1, 0), {}),
        ("concatenated", lp, np.array([1, 2, 2, 3]), np.array([6, 4, 2]), np.array([3, 1, 0]),
         {}),
        ("impossible", lp, np.array([[1, 1, 1], [2, 3, 1], [1, 2, 3]]), (4, 2, 6), (3, 3, 3),
         {}),
        ("impossible-zero-infinity", lp, np.array([[1, 1, 1], [2, 3, 1], [1, 2, 3]]), (4, 2, 6),
         (3, 3, 3), {"zero_infinity": True}),
        ("input-length-zero", lp, np.array([[1, 2], [3, 3], [1, 1]]), (0, 0, 5), (0, 1, 2),
         {}),
        ("blank-last", lp, np.array([[0, 1, 2], [2, 2, 0], [1, 0, 0]]), (6, 5, 6), (3, 2, 1),
         {"blank": 3}),
        ("single-frame", lp[:1], np.array([[1], [2], [3]]), (1, 1, 1), (1, 0, 1), {}),
        ("two-classes", _normalized(rng, (5, 2, 2)), np.array([[1, 1], [1, 1]]), (5, 3),
         (2, 2), {}),
        ("very-negative", very, np.array([[1, 2, 3], [2, 2, 1], [3, 1, 1]]), (6, 6, 5),
         (3, 2, 1), {}),
        ("unnormalized", rng.uniform(-5, 3, (6, 3, 4)), np.array([[1, 2], [3, 1], [2, 2]]),
         (6, 5, 6), (2, 2, 2), {}),
        ("unbatched", lp[:, 0], np.array([1, 2, 2]), (6,), (3,), {}),
        ("unbatched-padded", lp[:, 1], np.array([[3, 1, 0, 7]]), np.array(5), np.array(2), {}),
        ("long", _normalized(rng, (30, 2, 20), 6.0), rng.integers(1, 20, (2, 12)), (30, 26),
         (12, 10), {}),
    ]


def edge_cases(variant, rng):
    """The fixed catalogue of ctc_loss edge cases for one dtype and reduction."""
    dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
    out = []
    for edge_id, lp, targets, il, tl, options in edge_rows(rng):
        lp = np.where(lp == -np.inf, -np.inf, round_to(lp, dtype))  # round_to clips -inf
        unbatched = lp.ndim == 2
        args = {"log_probs": lp, "targets": np.asarray(targets, np.int64),
                "input_lengths": il, "target_lengths": tl}
        n = 1 if unbatched else lp.shape[1]
        shape = (n,) if reduction == "none" and not unbatched else ()
        g = rng.uniform(-3, 3, shape) if shape else np.array(rng.choice([-2.5, 0.75]))
        layouts = {"log_probs": "sliced"} if edge_id == "ragged-padded" else {}
        opts = {"blank": 0, "reduction": reduction, "zero_infinity": False, **options}
        out.append((edge_id, Case(dtype, args, opts, layouts, (edge_id,),
                                  grad_output=round_to(g, dtype))))
    return out
