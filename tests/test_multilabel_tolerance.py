"""multilabel_soft_margin_loss's tolerance where its terms underflow: every term that rounds to
the subnormal grid can lose up to a unit, so a reduction's allowance counts them (and a mean
divides the count again)."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.accuracy import compare
from conformance.cases import Case
from conformance.specs import SPECS
from loss_reference.formats import FORMATS

torch = pytest.importorskip("torch")

SPEC = SPECS["multilabel_soft_margin_loss"]
ROWS = 99
# the soak's default seed 428: logits near 0, class weights 0 and 2^-149 (float32's smallest
# subnormal), so each row's value, 0.69 x 2^-149 / 2, lies below a unit
LOGITS = np.repeat(np.linspace(-1e-4, 1e-4, ROWS).astype(np.float32)[:, None], 2, axis=1)
WEIGHT = np.array([0.0, 2.0 ** -149])


def _case(reduction, weight=WEIGHT):
    x = LOGITS.astype(np.float64)
    grad = np.ones(ROWS) if reduction == "none" else np.array(1.0)
    return Case("float32", {"input": x, "target": np.zeros_like(x), "weight": weight},
                {"reduction": reduction}, grad_output=grad)


def _float32_arithmetic(reduction):
    """torch's formula, each operation correctly rounded to float32: a row's weighted terms
    -log sigmoid(-x) w_c, their sum over the classes divided by C, then the reduction."""
    x = LOGITS
    terms = np.log1p(np.exp(x)).astype(np.float32) * WEIGHT.astype(np.float32)
    rows = terms.sum(axis=1, dtype=np.float32) / np.float32(2)
    if reduction == "none":
        return rows.astype(np.float64)
    total = rows.sum(dtype=np.float32)
    return np.array(float(total / np.float32(ROWS) if reduction == "mean" else total))


@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
def test_terms_that_each_underflow_pass_as_float32_computes_them(reduction):
    """Each row's 0.69 x 2^-149 rounds to one unit and its division by C = 2 to 0 (a tie, to
    even): float32 arithmetic gives 0 where the exact 'sum' is 34 units. Before the spec
    counted the underflowing terms, the allowance was 34 units (one term's chain of
    roundings) and the 'sum' failed by 0.3 of a unit."""
    case = _case(reduction)
    reference = SPEC.reference(case)
    candidate = _float32_arithmetic(reduction)
    assert np.all(candidate == 0.0)
    if reduction == "sum":
        assert float(reference.exact) > 34 * 2.0 ** -149
    verdict = compare(candidate, reference, SPEC.magnitude(case), FORMATS["float32"])
    assert verdict.passed, verdict
    x = torch.tensor(LOGITS)
    output = torch.nn.functional.multilabel_soft_margin_loss(
        x, torch.zeros_like(x), weight=torch.tensor(WEIGHT, dtype=torch.float32),
        reduction=reduction)
    verdict = compare(output.double().numpy(), reference, SPEC.magnitude(case),
                      FORMATS["float32"])
    assert verdict.passed, verdict


def test_the_allowance_counts_the_terms_that_underflow_and_a_mean_divides_them():
    """A row's terms below the smallest normal count |w_c| (at least 1) / C each, the row's own
    value below it one more; a 'sum' adds the rows, a 'mean' divides by them; terms of normal
    size add nothing (the rule's floor is then one chain of roundings, as before)."""
    per_row = 1 / 2 + 1  # the term weighted 2^-149 underflows (the zero weight's is exact)
    assert SPEC.magnitude(_case("sum")).amplification == ROWS * per_row
    assert SPEC.magnitude(_case("mean")).amplification == per_row
    np.testing.assert_array_equal(SPEC.magnitude(_case("none")).amplification,
                                  np.full(ROWS, per_row))
    # a weight of 1 keeps every intermediate normal
    assert SPEC.magnitude(_case("sum", np.array([0.0, 1.0]))).amplification == 0.0
