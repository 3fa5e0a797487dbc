"""The reference is right where a result underflows: a product of nonzero factors that
rounds to 0 is not an exact zero.

test_reference_totality.py plants subnormals at random; here each case is aimed. The first
test aims the upstream gradient so that one gradient element lands within a few units of the
smallest subnormal (``underflowing_upstream_cases``: g v rounds first, then its quotient by the
count, to 0 where the exact value rounds up), with explicit cases of the underflows it found
(``UNDERFLOW_CASES``); the second aims a weight the same way (one value of the loss, a product
of the weight and a term, half a unit or so from 0). Each compares with the oracles of
test_reference_totality.py (``check``) and draws from its seed (``TOTALITY_SEED``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, note, reject, seed, settings
from hypothesis import strategies as st
from test_reference_totality import (LOSSES, MAX_ELEMENTS, ORACLES, SEED, _covers, _elements,
                                     capped_digits, check)

from conformance.cases import DRAWING, Case
from conformance.specs import SPECS
from conformance.specs.embedding_cases import Distance
from loss_reference.engine import EvaluationError
from loss_reference.formats import format_of


# --- an upstream gradient that underflows ---------------------------------------------------------

UNDERFLOW_EXAMPLES = 30
GRADIENT_LOSSES = [name for name in LOSSES if SPECS[name].reference_grad is not None]
# where the aimed element lands, in units of the smallest subnormal: just above the half that
# rounds to 0, and beside the ties that round to even
AIMS = (0.51, 0.6, 0.75, 0.99, 1.5, 2.5)


def _underflow_case(args, grad=2.0 ** -1074, **options) -> Case:
    """A float64 case under 'mean' whose upstream gradient is ``grad`` (by default the
    smallest subnormal)."""
    return Case("float64", {k: None if v is None else np.array(v) for k, v in args.items()},
                {"reduction": "mean", **options}, grad_output=np.array(grad))


# Each makes an element whose exact value is 0.5-0.75 units of 2^-1074 (rounded: one unit),
# where g v rounds to one unit first and its quotient by a count of 2 to 0 (a tie to even),
# which the kernels' exact-zero shortcuts certified; a row repeated makes the count 2.
UNDERFLOW_CASES = {
    "kl_div": [_underflow_case({"input": [0.0, 0.0], "target": [1.5, 1.5]},
                               log_target=False)],  # (log 1.5 + 1) / 2
    "poisson_nll_loss": [_underflow_case({"input": [-1.4, -1.4], "target": [1.0, 1.0]},
                                         log_input=True, full=False, eps=1e-8)],  # 1.4 / 2
    "multi_margin_loss": [_underflow_case(  # 2 (1 + 0.25) w / (C N) = 0.625 (f g was 0)
        {"input": [[0.0, -0.25]], "target": [1], "weight": [0.5, 0.5]}, p=2, margin=1.0)],
    "cosine_embedding_loss": [_underflow_case(  # sin(45 deg) / |x1| / 2 = 0.71
        {"input1": [[0.5, 0.0]] * 2, "input2": [[1.0, 1.0]] * 2, "target": [1, 1]},
        margin=0.0)],
    "triplet_margin_loss": [_underflow_case(  # the anchor's -0.6 - 0.6 over 2
        {"anchor": [[0.0, 0.0]] * 2, "positive": [[-0.8, 0.6]] * 2,
         "negative": [[-4.0, -3.0]] * 2}, margin=5.0, p=2.0, eps=0.0, swap=False)],
    "triplet_margin_with_distance_loss": [_underflow_case(  # the cosine distance's slope
        {"anchor": [[0.5, 0.0]] * 2, "positive": [[1.0, 1.0]] * 2,
         "negative": [[0.5, 0.0]] * 2}, margin=1.0, swap=False,
        distance_function=Distance("cosine"))],
    # logits [0, 0, 0, 85]: each weight-gradient term g e^-85 x of a class off the target
    # underflowed in the softmax kernel's G = r e_c to 0, within a relative bound of 0
    "linear_cross_entropy": [_underflow_case(
        {"input": [[17.0]], "linear_weight": [[0.0], [0.0], [0.0], [5.0]], "target": [0],
         "linear_bias": None, "weight": None}, grad=1.2188124262832857e-288)],
}


def _aimed_units(draw, values: np.ndarray) -> float:
    """How many units of a subnormal make one of ``values`` (a result at a factor of 1)
    about one of AIMS units: one drawn among the finite, neither tiny nor huge."""
    values = np.abs(values)
    values = values[np.isfinite(values) & (values > 2.0 ** -1000) & (values < 2.0 ** 20)]
    assume(values.size)
    value = draw(st.sampled_from(sorted(set(values.tolist()))), label="aimed value")
    return max(1.0, round(draw(st.sampled_from(AIMS), label="aim") / value))


def _compared(name, cases, examples=()) -> dict:
    """Run ``check`` over UNDERFLOW_EXAMPLES of the strategy ``cases`` and the explicit
    ``examples``; the counts of what was compared, uncovered, inconclusive, uncertified."""
    counts = {"compared": 0, "uncovered": 0, "inconclusive": 0, "uncertified": 0}

    @seed(SEED)
    @settings(max_examples=UNDERFLOW_EXAMPLES, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), backend=DRAWING)
    @given(case=cases)
    def right(case):
        note(repr(case))
        check(name, case, counts)

    for case in examples:
        right = example(case=case)(right)
    with capped_digits(), np.errstate(all="ignore"):
        right()
    return counts


@st.composite
def underflowing_upstream_cases(draw, name):
    """A case of the spec's strategy under the 'mean' reduction, its upstream gradient g aimed
    so that one gradient element g v / count lies about AIMS units of its format's smallest
    subnormal from 0 (v / count from the reference at g = 1). g v rounds first, then its
    quotient, and the double-double kernels' exact-zero shortcuts took a 0 so made for the
    product of a zero factor (kl_div, poisson_nll_loss, cosine_embedding_loss, the triplets)."""
    spec = SPECS[name]
    case = draw(spec.cases(draw(st.sampled_from(spec.variants), label="variant")), label="case")
    # float64 mostly (the double-double kernels compute in float64, where the subnormals of
    # narrower formats are normal numbers), the others rounding into their own subnormals
    assume(case.dtype == "float64" or draw(st.booleans(), label="narrower"))
    assume("reduction" in case.options and _elements(case) <= MAX_ELEMENTS)
    case.options = {**case.options, "reduction": "mean"}
    case.grad_output = np.array(1.0)
    assume(name not in ORACLES or _covers(name, case))  # the oracle compares it
    try:
        with np.errstate(all="ignore"):
            unit = spec.reference_grad(case)
    except EvaluationError:
        reject()
    units = _aimed_units(draw, np.concatenate([np.ravel(e.rounded) for e in unit.values()]))
    sign = draw(st.sampled_from((1.0, -1.0)), label="sign")
    case.grad_output = np.array(sign * units * format_of(case.dtype).smallest_subnormal)
    assume(math.isfinite(float(case.grad_output)))
    return case


@pytest.mark.parametrize("name", GRADIENT_LOSSES)
def test_reference_is_right_where_the_upstream_gradient_underflows(name):
    counts = _compared(name, underflowing_upstream_cases(name), UNDERFLOW_CASES.get(name, ()))
    if name in ORACLES:  # not vacuous: most drawn cases are compared
        assert counts["compared"] >= UNDERFLOW_EXAMPLES // 5, counts


# --- a weight that underflows ---------------------------------------------------------------------

WEIGHTED_LOSSES = [name for name in LOSSES
                   if "weight" in SPECS[name].positional + SPECS[name].keyword_arrays]


@st.composite
def underflowing_weight_cases(draw, name):
    """A case of the spec's strategy with a weight (float64 mostly), under 'none' or 'sum',
    the weight filled with one value w aimed so that one element of the value, w v (v at
    w = 1), lies about AIMS units of its format's smallest subnormal from 0: a product of
    the weight and a term that underflows, in the value and in the gradients (the upstream
    gradient 1)."""
    spec = SPECS[name]
    case = draw(spec.cases(draw(st.sampled_from(spec.variants), label="variant")), label="case")
    weight = case.args.get("weight")
    assume(case.dtype == "float64" or draw(st.booleans(), label="narrower"))  # as above
    assume(isinstance(weight, np.ndarray) and weight.size and "reduction" in case.options
           and _elements(case) <= MAX_ELEMENTS)
    reduction = draw(st.sampled_from(("none", "sum")), label="reduction")
    case.options = {**case.options, "reduction": reduction}
    case.args = {**case.args, "weight": np.ones_like(weight)}
    case.grad_output = np.array(1.0)
    assume(_covers(name, case))
    try:
        with np.errstate(all="ignore"):
            unit = spec.reference(case)
    except EvaluationError:
        reject()
    if reduction == "none":
        case.grad_output = np.ones(np.shape(unit.rounded))
    units = _aimed_units(draw, np.ravel(unit.rounded))
    case.args["weight"] = np.full_like(weight, units * format_of(case.dtype).smallest_subnormal)
    return case


@pytest.mark.parametrize("name", WEIGHTED_LOSSES)
def test_reference_is_right_where_a_weight_underflows(name):
    counts = _compared(name, underflowing_weight_cases(name))
    assert counts["compared"] >= UNDERFLOW_EXAMPLES // 5, counts
