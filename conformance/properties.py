"""Property checks: identities a conforming loss satisfies, judged without a reference value.

A property maps a Case A to a Case B whose exact result is known from A's by an identity that
holds exactly in the dtype under test (``Property.transform``). Which identities a loss has is
the loss's own knowledge: each Spec lists its own (``Spec.properties``: a binary loss's mirror
symmetry, a softmax's shift invariance, class permutation), built from the pieces here
(``snap_unit`` for exact 1 - y, ``replaced``, ``class_permutation``, ``batch_split``: the rows of
a sub-batch computed alone equal those rows of the whole batch's 'none'), and says how its
'mean' divides (``Spec.mean_divisor``). Every loss with reductions also gets the reduction
identities:

- sum-of-none: 'sum' equals the sum of the 'none' output.
- mean-of-none: 'mean' equals sum_i none_i / d_i, with d_i as torch defines the mean: the
  number of 'none' elements unless the spec's ``mean_divisor`` says otherwise (a weight sum, a
  per-sample divisor). batchmean-of-none (where a spec has that reduction): 'batchmean' equals
  sum / input.size(0) (the sum for a 0-d input). A zero divisor gives IEEE's quotient (nan for
  0 / 0, else the sum's infinity), or nan: a 'mean' that divides parts of its sum separately
  (label smoothing's separate part) is nan where one part is 0 / 0, which the 'none' output
  cannot show (the value check judges those exactly against the reference).

Verdict. The candidate is called on A and on B (for a reduction identity: the same case with
the two reductions). Each result may err from its exact value by at most the tolerance policy's
allowed error for its own case (conformance/accuracy.py: ``allowed_error(spec.reference(case),
spec.magnitude(case), fmt)``), and the exact values are tied by the identity, so the two results
must be consistent with one exact value: elementwise |a - b| <= allowed(A) + allowed(B); for a
reduction |b - sum_i a_i / d_i| <= allowed(B) + sum_i allowed(A)_i / |d_i|, the sum computed in
exact rational arithmetic. Where the exact value is nan or infinite its tolerance is zero, so
the two results must be the same nan or infinity (the sum of a 'none' output holding them is
IEEE's); an infinity stands for "at least the overflow threshold", as the tolerance policy
accepts an infinity where the exact value plus its tolerance reaches it. The reference is used
only for the size of the tolerance (and to know where the exact value is not finite), never for
the value; on a failure it names the call that is off. A failing property therefore means at
least one of the two calls breaks the tolerance policy: a real non-conformance.

Gradients are not compared (values only).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import numpy as np
from hypothesis import given, reject, seed
from hypothesis import strategies as st

from loss_reference.formats import format_of

from . import checks
from .accuracy import allowed_error
from .cases import Case, drawing_settings, round_to
from .checks import Verdict
from .references import value_reference


@dataclass(frozen=True)
class Pair:
    """The two calls a property compares: A (the drawn case, possibly snapped) and B."""

    a: Case
    b: Case
    rows: slice | None = None  # B's output equals A's at these rows (leading axis) only


@dataclass(frozen=True)
class Property:
    """One identity of one loss.

    ``transform(case, draw)`` returns the Pair to compare, or None where the property does not
    apply to the case (``draw`` is hypothesis's, for the property's own random choices).
    ``divisor`` is None for an elementwise identity (B's output equals A's); for a reduction
    identity it maps A to the d of B = sum_i a_i / d_i: one number, or an array of A's output
    shape. ``reductions``: the reductions A is drawn with (None: every one). ``applies_to``:
    the least share of drawn cases the transform should apply to (the suite's own tests check
    that a property is not vacuous).
    """

    name: str
    transform: Callable
    doc: str
    divisor: Callable | None = None
    reductions: tuple | None = None
    applies_to: float = 0.8


@dataclass
class PropertyVerdict(Verdict):
    """A Verdict with the call that is off the exact value (for the record and repro file)."""

    case: Case | None = None


def property_examples(examples: int) -> int:
    """A property check's random examples for a profile's ``examples``: a fifth (at least 4),
    since each calls the candidate twice and the value checks judge every case already."""
    return max(4, examples // 5)


def property_cases(spec, group, prop):
    """Cases of the group's members whose reduction the property starts from (one strategy
    object per loss, group and property: hypothesis validates each new one on its first draw)."""
    key = (spec.name, group, prop.name)
    if key not in _STRATEGIES:
        members = [v for v in group.members if prop.reductions is None
                   or v.option_dict().get("reduction") in prop.reductions]
        _STRATEGIES[key] = st.one_of(*(spec.cases(v) for v in members))
    return _STRATEGIES[key]


_STRATEGIES = {}


def draw_pairs(spec, group, prop, examples: int, run_seed: int) -> list:
    """The Pairs a property check draws with ``examples`` examples and ``run_seed``, where
    every pair is judged and passes: hypothesis's own draw, in order (the prefetch process
    draws them ahead for the check to replay)."""
    pairs = []

    @seed(run_seed)
    @drawing_settings(examples, shrink=False)
    @given(case=property_cases(spec, group, prop), data=st.data())
    def collect(case, data):
        pair = prop.transform(case, data.draw)
        if pair is None:
            reject()  # as the check does: the property does not apply to this case
        pairs.append(pair)

    collect()
    return pairs


# --- pieces for the specs' transforms -------------------------------------------------------------

def snap_unit(values, dtype) -> np.ndarray:
    """Values in [0, 1] rounded to multiples of 2**-p: then 1 - v is a number of the dtype too."""
    scale = 2.0 ** format_of(dtype).precision
    return np.asarray(np.round(np.asarray(values, np.float64) * scale) / scale)


def replaced(case: Case, args: dict, **changes) -> Case:
    """``case`` with some arguments (and other fields) replaced."""
    return dataclasses.replace(case, args={**case.args, **args}, **changes)


# --- batch split ----------------------------------------------------------------------------------

BATCH_SPLIT_DOC = ("the rows of a sub-batch, computed in a call of their own, get the losses "
                   "they get in the whole batch's call: a result that depends on how a kernel "
                   "chunks the batch fails it")


def batch_split_property(batched: tuple) -> Property:
    """The batch-split Property over the arguments ``batched`` (judged on 'none'; it applies to
    the batched cases of 2 rows or more: about half of those drawn)."""
    return Property("batch-split", batch_split(batched), BATCH_SPLIT_DOC, reductions=("none",),
                    applies_to=0.4)


def batch_split(batched: tuple):
    """A transform keeping a contiguous run of the batch (the leading axis of the arguments
    ``batched``, e.g. input and target), drawn, as a call of its own: its 'none' output must
    equal those rows of the whole call's. None for an unbatched case or a batch of one."""
    def split(case: Case, draw) -> Pair | None:
        x = np.asarray(case.args[batched[0]])
        if x.ndim < 2 or x.shape[0] < 2:
            return None
        n = x.shape[0]
        start = draw(st.integers(0, n - 1), label="split start")
        stop = draw(st.integers(start + 1, n), label="split stop")
        if stop - start == n:
            stop = start + 1 if start else n - 1
        rows = slice(start, stop)
        part = replaced(case, {name: np.asarray(case.args[name])[rows] for name in batched})
        return Pair(case, part, rows)
    return split


# --- class permutation ---------------------------------------------------------------------------

def _permutation(draw, classes: int, fixed: int | None) -> np.ndarray:
    """perm[c] = the new position of class c; ``fixed`` (a class) stays where it is."""
    seed = draw(st.integers(0, 2**32 - 1), label="permutation seed")
    perm = np.random.default_rng(seed).permutation(classes)
    if fixed is not None and 0 <= fixed < classes:
        where = int(np.flatnonzero(perm == fixed)[0])
        perm[where], perm[fixed] = perm[fixed], fixed
    return perm


def _permute_axis(values, axis, perm):
    """values with the entry of class c moved to position perm[c] along ``axis``."""
    out = np.empty_like(values)
    index = [slice(None)] * values.ndim
    index[axis] = perm
    out[tuple(index)] = values
    return out


def class_permutation(ignore_index=None):
    """A transform permuting the class axis (1, or 0 for 1-D input) of the input, of
    probability targets and of the class weight together, index targets remapped; a target
    equal to ``ignore_index(case)`` stays, and when that is itself a class the permutation fixes
    it (so that no counted row becomes an ignored one)."""
    def permute(case: Case, draw) -> Pair:
        x = np.asarray(case.args["input"])
        axis = 0 if x.ndim == 1 else 1
        target = np.asarray(case.args["target"])
        changes = {}
        if target.dtype.kind == "f":  # probability targets: permuted like the input
            perm = _permutation(draw, x.shape[axis], None)
            changes["target"] = _permute_axis(target, axis, perm)
        else:
            ignore = ignore_index(case) if ignore_index is not None else None
            perm = _permutation(draw, x.shape[axis], ignore)
            counted = target != ignore
            changes["target"] = np.where(counted, perm[np.where(counted, target, 0)], target)
        changes["input"] = _permute_axis(x, axis, perm)
        if case.args.get("weight") is not None:
            changes["weight"] = _permute_axis(np.asarray(case.args["weight"]), 0, perm)
        return Pair(case, replaced(case, changes))
    return permute


PERMUTATION_DOC = "permuting the classes, with their weights and the targets, leaves the loss"


# --- reduction identities ------------------------------------------------------------------------

def _twin(reduction: str):
    def transform(case: Case, draw) -> Pair:
        options = {**case.options, "reduction": reduction}
        return Pair(case, dataclasses.replace(case, options=options,
                                              grad_output=round_to(np.array(1.0), case.dtype)))
    return transform


# Divisors: (case A, shape of its 'none' output) -> d, one number (int or Fraction) or a positive
# int per 'none' element. A spec's mean_divisor replaces _count for its 'mean'.

def _one(case: Case, none_shape):
    return 1


def _count(case: Case, none_shape):
    return int(np.prod(none_shape))


def _batch_size(case: Case, none_shape):
    shape = np.shape(case.args["input"])
    return shape[0] if len(shape) else 1


def _reduction_properties(spec) -> list:
    have = {v.option_dict().get("reduction") for v in spec.variants}
    if "none" not in have:
        return []
    identities = [
        ("sum", "sum-of-none", "reduction='sum' is the sum of the 'none' output", _one),
        ("mean", "mean-of-none", "reduction='mean' is the 'none' output summed over torch's "
         "divisor", spec.mean_divisor or _count),
        ("batchmean", "batchmean-of-none", "reduction='batchmean' is the sum of the 'none' "
         "output over input.size(0)", _batch_size),
    ]
    return [Property(name, _twin(reduction), doc, divisor=divisor, reductions=("none",))
            for reduction, name, doc, divisor in identities if reduction in have]


def properties_of(spec) -> list:
    """The properties a loss's tests check, in the order they run: its own, then the reduction
    identities."""
    return list(spec.properties) + _reduction_properties(spec)


# --- exact arithmetic ----------------------------------------------------------------------------

def exact_sum(values) -> Fraction:
    """The exact sum of finite float64 values, as a Fraction."""
    parts = [float(v).as_integer_ratio() for v in np.asarray(values, np.float64).reshape(-1)]
    if not parts:
        return Fraction(0)
    common = max(d for _, d in parts)  # every denominator is a power of two
    return Fraction(sum(n * (common // d) for n, d in parts), common)


def _exact_quotient_sum(values, divisor) -> Fraction:
    """sum_i values_i / d_i exactly (d one number, or one positive int per value)."""
    if np.ndim(divisor) == 0:
        return exact_sum(values) / Fraction(divisor)
    divisor = np.asarray(divisor).reshape(-1)
    values = np.asarray(values, np.float64).reshape(-1)
    return sum((exact_sum(values[divisor == d]) / int(d) for d in np.unique(divisor)),
               Fraction(0))


# --- the verdict ---------------------------------------------------------------------------------

def _float(value: Fraction) -> float:
    """The nearest float64, or an infinity beyond float64's range."""
    try:
        return float(value)
    except OverflowError:  # the sign from a comparison: copysign would convert value again
        return math.inf if value > 0 else -math.inf


def _threshold(fmt) -> float:
    """Where rounding to the format gives infinity."""
    return fmt.max_finite + float(fmt.ulp(np.array(fmt.max_finite))) / 2


def _bounds(values, allowed, threshold):
    """The interval [lo, hi] of exact values each result is consistent with: value +- allowed;
    for an infinity everything beyond the overflow threshold less the allowance; for nan none
    (lo > hi)."""
    with np.errstate(invalid="ignore", over="ignore"):
        lo = np.where(values == np.inf, threshold - allowed,
                      np.where(values == -np.inf, -np.inf, values - allowed))
        hi = np.where(values == -np.inf, allowed - threshold,
                      np.where(values == np.inf, np.inf, values + allowed))
    nan = np.isnan(values)
    return np.where(nan, np.inf, lo), np.where(nan, -np.inf, hi)


def _tolerance(case, spec, fmt):
    """(reference, allowed error per element; 0 where the exact value is not finite)."""
    reference, magnitude = value_reference(spec, case)
    allowed = allowed_error(reference, magnitude, fmt)
    return reference, np.where(np.isfinite(reference.rounded), allowed, 0.0)


def _elementwise_ratio(a, b, special, allowed_a, allowed_b, threshold):
    """|a - b| / (allowed_a + allowed_b) per element; inf where no exact value is consistent
    with both (``special``: the exact value is nan or infinite, so both must be it)."""
    identical = (a == b) | (np.isnan(a) & np.isnan(b))
    lo_a, hi_a = _bounds(a, allowed_a, threshold)
    lo_b, hi_b = _bounds(b, allowed_b, threshold)
    consistent = ~special & (np.maximum(lo_a, lo_b) <= np.minimum(hi_a, hi_b))
    allowance = allowed_a + allowed_b
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        ratio = np.where(np.isfinite(a) & np.isfinite(b), np.abs(a - b) / allowance, 1.0)
    ratio = np.where(consistent, np.where(np.isnan(ratio), np.inf, ratio), np.inf)
    return np.where(identical, 0.0, ratio)


def _reduction_ratio(b, allowed_b, a, special, allowed_a, divisor, threshold):
    """(ratio, what the reduced result ``b`` should be) for B = sum_i a_i / d_i.

    Exactly non-finite elements of ``a`` (``special``) make the sum IEEE's: nan, or an
    infinity. An infinity where the exact value is finite (beyond the overflow threshold, less
    the tolerance) bounds the sum on its side only. The finite elements give the exact
    E = sum_i a_i / d_i and the radius R = sum_i allowed_i / |d_i|; B may be E +- (R + allowed_b).
    """
    finite = np.isfinite(a)
    if (special & finite).any() or np.isnan(a[~special]).any():
        return math.inf, "nothing: the 'none' output breaks its own nan/inf pattern"
    uniform = np.ndim(divisor) == 0
    sign = -1.0 if uniform and Fraction(divisor) < 0 else 1.0  # ctc's divisors are positive
    infinities = set((np.sign(a[special & ~np.isnan(a)]) * sign).tolist())
    if np.isnan(a[special]).any() or len(infinities) == 2:
        exact = math.nan
    elif infinities:
        exact = infinities.pop() * math.inf
    else:
        exact = None
    if exact is not None:
        same = (math.isnan(exact) and math.isnan(b)) or b == exact
        return (0.0 if same else math.inf), repr(exact)
    # The infinities left stand where the exact value is finite but beyond the overflow
    # threshold (less the tolerance): they bound the sum on their side only.
    with np.errstate(invalid="ignore"):
        up, down = ~finite & (np.sign(a) * sign > 0), ~finite & (np.sign(a) * sign < 0)
    if uniform and Fraction(divisor) == 0:  # every row ignored, weights adding to 0, N = 0
        total, r = exact_sum(a[finite]), Fraction(float(np.sum(allowed_a[finite])))
        # nan is admitted beside the sign: a loss whose 'mean' divides parts of its sum
        # separately (a likelihood part and a label-smoothing part) gives 0 / 0 = nan in a
        # part whose numerator is 0, which the 'none' output's sum cannot show; the value
        # check judges every zero-divisor 'mean' exactly against the reference
        options = {name for name, possible in (
            ("nan", True),
            ("inf", total + r > 0 or up.any()),
            ("-inf", total - r < 0 or down.any())) if possible}
        got = "nan" if math.isnan(b) else repr(b) if math.isinf(b) else "a finite value"
        return (0.0 if got in options else math.inf), " or ".join(sorted(options))
    scale = np.broadcast_to(np.abs(np.asarray(divisor, np.float64)), a.shape)
    center = _exact_quotient_sum(a[finite], divisor if uniform else np.asarray(divisor)[finite])
    radius = float(np.sum(allowed_a[finite] / scale[finite]))
    allowance = radius + allowed_b
    text = f"{_float(center)!r} +- {allowance:.3g}"
    beyond = (threshold - allowed_a) / scale
    low = -math.inf if down.any() else _float(center) - allowance + float(np.sum(beyond[up]))
    high = math.inf if up.any() else _float(center) + allowance - float(np.sum(beyond[down]))
    if math.isnan(b):
        return math.inf, text
    if math.isinf(b):
        return (1.0 if (high if b > 0 else -low) >= threshold else math.inf), text
    if (up | down).any():
        return (1.0 if low <= b <= high else math.inf), text
    if not math.isfinite(allowance):  # a subnormal divisor: the identity bounds nothing
        return 0.0, text
    error = abs(Fraction(b) - center)
    if allowance == 0:
        return (0.0 if error == 0 else math.inf), text
    return float(error / Fraction(allowance)), text


def _measurements(ratio: float) -> dict:
    """What the recorder keeps: the disagreement over the allowance (1 at most passes). No ulp
    or relative error: the reports read those as errors against the exact value."""
    return {"output": {"ratio": ratio}}


def _call_name(prop, case, twin: bool) -> str:
    if prop.divisor is not None:
        return f"reduction={case.options['reduction']!r}"
    return f"the {prop.name} twin" if twin else "the case"


def check_property(candidate, spec, pair: Pair, prop: Property) -> Verdict:
    """Call the candidate on both cases of ``pair`` and judge whether its two results are
    consistent with ``prop`` within both calls' tolerance (the rule heads this module).

    Returns a PropertyVerdict; on a failure its ``case`` is the call whose output the reference
    shows off its exact value, with that call's evidence.
    """
    outputs = []
    for twin, case in ((False, pair.a), (True, pair.b)):
        call, failure = checks._call(candidate, spec, case, with_grad=False)
        if failure:
            return PropertyVerdict(False, f"{_call_name(prop, case, twin)}: {failure.message}",
                                   fault=failure.fault, case=case)
        if call.modified:
            return PropertyVerdict(False, f"modified its input(s) in place: "
                                          f"{', '.join(call.modified)}", case=case)
        outputs.append((call.value, call.dtype))
    fmt = format_of(pair.a.dtype)
    references, allowed = zip(*(_tolerance(case, spec, fmt) for case in (pair.a, pair.b)))
    for twin, case, (value, dtype), reference in zip((False, True), (pair.a, pair.b), outputs,
                                                     references):
        if value.shape != np.shape(reference.rounded) or dtype != case.dtype:
            return PropertyVerdict(False, f"{_call_name(prop, case, twin)}: output {dtype} "
                                          f"{value.shape}, expected {case.dtype} "
                                          f"{np.shape(reference.rounded)}", case=case)
    (a, _), (b, _) = outputs
    special = ~np.isfinite(references[0].exact)  # nan or infinite exactly, not by rounding
    if pair.rows is not None:  # B is a part of A's batch: compare those rows of A
        a, special, allowed = a[pair.rows], special[pair.rows], (allowed[0][pair.rows],
                                                                   allowed[1])
    threshold = _threshold(fmt)
    if prop.divisor is None:
        ratio = _elementwise_ratio(a, b, special, allowed[0], allowed[1], threshold)
        if ratio.size == 0:
            return PropertyVerdict(True, "", _measurements(0.0))
        index = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        worst = float(ratio[index])
        measured = _measurements(worst)
        where = f" at index {tuple(int(i) for i in index)}" if a.ndim else ""
        problem = (f"{prop.name} ({prop.doc}): {float(a[index])!r} on the case, "
                   f"{float(b[index])!r} on its twin{where}: difference "
                   f"{abs(float(a[index]) - float(b[index])):.3g}, allowed "
                   f"{float(allowed[0][index] + allowed[1][index]):.3g} (both calls' tolerance)")
    else:
        divisor = prop.divisor(pair.a, a.shape)
        worst, should = _reduction_ratio(float(b), float(allowed[1]), a, special, allowed[0],
                                         divisor, threshold)
        measured = _measurements(worst)
        problem = (f"{prop.name} ({prop.doc}): reduction={pair.b.options['reduction']!r} gave "
                   f"{float(b)!r}; the candidate's own 'none' output gives {should} (summed in "
                   f"exact arithmetic; both calls' tolerance)")
    if worst <= 1.0:
        return PropertyVerdict(True, "", measured)
    for twin, case, (value, dtype), reference in zip((False, True), (pair.a, pair.b), outputs,
                                                     references):
        with warnings.catch_warnings():  # all-nan outputs: a diagnosis only, warn nothing
            warnings.simplefilter("ignore", RuntimeWarning)
            off = checks._judge("output", value, dtype, reference,
                                value_reference(spec, case)[1], case)
        if off is not None and not off.passed:
            return PropertyVerdict(False, f"{problem}\n  the call off its exact value: "
                                          f"{_call_name(prop, case, twin)}, {off.message}",
                                   measured, off.evidence, case=case)
    return PropertyVerdict(False, problem, measured, case=pair.a)
