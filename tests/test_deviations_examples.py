"""A known deviation is real: on its documented example torch 2.13 gives what the reason says,
the reference gives the exact value, and the predicate excuses that case and not its twin
without the trigger."""

from __future__ import annotations

import math

import numpy as np
import torch

from conformance.cases import Case
from conformance.deviations.binary import _logit_intermediate_overflows
from conformance.deviations.classification import (log_probability_overflows,
                                                    smoothed_target_gradient_overflows)
from conformance.deviations.pointwise import smooth_l1_quadratic_underflows
from conformance.deviations.probabilistic import _poisson_backward_underflows
from conformance.specs import SPECS


def _smoothing_case(smoothing: float) -> Case:
    args = {"input": np.array([[0.0, -7244.0], [0.0, 0.0]]),
            "target": np.array([[1.0, 0.0], [1.0, 0.0]]), "weight": np.array([2.5, 2.5])}
    return Case("float16", args, {"reduction": "sum", "label_smoothing": smoothing}, {}, (),
                grad_output=np.array(-3.6640625))


def _torch_target_gradient(case: Case) -> float:
    a = case.args
    p = torch.tensor(a["target"], dtype=torch.float16, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(
        torch.tensor(a["input"], dtype=torch.float16), p,
        weight=torch.tensor(a["weight"], dtype=torch.float16), reduction="sum",
        label_smoothing=case.options["label_smoothing"])
    (grad,) = torch.autograd.grad(loss, [p], torch.tensor(case.grad_output, dtype=torch.float16))
    return float(grad[0, 1])


def test_the_smoothed_target_gradient_overflow_is_real_and_excused_only_with_smoothing():
    case = _smoothing_case(0.05)
    exact = SPECS["cross_entropy"].reference_grad(case)["target"].rounded[0, 1]
    assert exact == -63040.0  # -0.95 * 3.664 * 2.5 * 7244, in float16's range
    assert _torch_target_gradient(case) == -math.inf
    assert smoothed_target_gradient_overflows(case)
    assert not smoothed_target_gradient_overflows(_smoothing_case(0.0))


def _pos_weight_case(g: float, pos_weight: bool) -> Case:
    args = {"input": np.array([-65504.0, 17.0]), "target": np.array([0.0, 0.0]),
            "weight": None, "pos_weight": np.array([2.0, 2.0]) if pos_weight else None}
    return Case("float16", args, {"reduction": "none"}, {}, (), grad_output=np.full(2, g))


def _torch_logits_target_gradient(case: Case) -> float:
    a = case.args
    y = torch.tensor(a["target"], dtype=torch.float16, requires_grad=True)
    pos_weight = None if a["pos_weight"] is None else torch.tensor(a["pos_weight"],
                                                                   dtype=torch.float16)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(a["input"], dtype=torch.float16), y, pos_weight=pos_weight,
        reduction="none")
    (grad,) = torch.autograd.grad(loss, [y], torch.tensor(case.grad_output, dtype=torch.float16))
    return float(grad[0])


def test_the_pos_weight_slope_overflow_is_real_and_excused_only_with_pos_weight():
    """Default profile seed 19: torch rounds log sigmoid(-x) - q log sigmoid(x) = 131008 to
    float16 (inf) before its product with g; without pos_weight it computes g x, right."""
    for g, expected_torch in ((0.25, math.inf), (0.0, math.nan)):
        case = _pos_weight_case(g, pos_weight=True)
        exact = SPECS["binary_cross_entropy_with_logits"].reference_grad(case)["target"]
        assert exact.rounded[0] == 0.25 * 131008.0 * (g > 0)  # 32752, or 0, in range
        got = _torch_logits_target_gradient(case)
        assert got == expected_torch or (math.isnan(expected_torch) and math.isnan(got))
        assert _logit_intermediate_overflows(case)
    twin = _pos_weight_case(0.25, pos_weight=False)
    assert _torch_logits_target_gradient(twin) == 16376.0  # g x, exact
    assert not _logit_intermediate_overflows(twin)


def _index_target_case(target_weight: float, reduction: str = "none") -> Case:
    args = {"input": np.array([[780.0, -65504.0, 0.0]]), "target": np.array([1]),
            "weight": np.array([1.0, target_weight, 1.0])}
    return Case("float16", args, {"reduction": reduction}, {}, ())


def _torch_cross_entropy(case: Case) -> float:
    a = case.args
    return float(torch.nn.functional.cross_entropy(
        torch.tensor(a["input"], dtype=torch.float16), torch.tensor(a["target"]),
        weight=torch.tensor(a["weight"], dtype=torch.float16),
        reduction=case.options["reduction"]).reshape(-1)[0])


def test_an_index_targets_log_probability_overflow_is_real_and_excused_only_there():
    """log_softmax(x)_1 = -66284 rounds to -inf in float16, so torch's loss w_1 * 66284 is
    inf where the exact loss 16571 (16576 in float16) is in range (soak, quick seed 282); a
    weight that takes the exact loss beyond the range too needs no excuse, and a target whose
    log-probability is in range is not excused."""
    for reduction in ("none", "sum"):  # a one-row 'mean' divides the weight out: 66284
        case = _index_target_case(0.25, reduction)
        assert SPECS["cross_entropy"].reference(case).rounded.reshape(-1)[0] == 16576.0
        assert _torch_cross_entropy(case) == math.inf
        assert log_probability_overflows(case)
    overflowing = _index_target_case(1.0)
    assert SPECS["cross_entropy"].reference(overflowing).rounded.reshape(-1)[0] == math.inf
    assert _torch_cross_entropy(overflowing) == math.inf
    in_range = _index_target_case(0.25)
    in_range.args["target"] = np.array([2])
    assert _torch_cross_entropy(in_range) == 780.0
    assert not log_probability_overflows(in_range)


def _smooth_l1_case(target: float, beta: float) -> Case:
    args = {"input": np.array([0.0, -0.0]), "target": np.full(2, target)}
    return Case("float16", args, {"reduction": "sum", "beta": beta}, {}, ())


def test_smooth_l1s_subnormal_quadratic_term_is_real_and_excused_only_below_the_normals():
    case = _smooth_l1_case(-0.00044512748718262, 0.001)  # soak quick seed 333
    exact = SPECS["smooth_l1_loss"].reference(case).rounded
    assert float(exact) == float(np.float16(2 * 0.00044512748718262 ** 2 / 2 / 0.001))
    got = torch.nn.functional.smooth_l1_loss(
        torch.tensor(case.args["input"], dtype=torch.float16),
        torch.tensor(case.args["target"], dtype=torch.float16), reduction="sum", beta=0.001)
    assert abs(float(got) - float(exact)) > 100 * float(np.spacing(np.float16(exact)))
    assert smooth_l1_quadratic_underflows(case)
    # its twins: 0.5 z^2 = 2e-4 is a normal float16 (and torch is within an ulp there), and
    # the same z beyond beta is in the linear branch
    normal = _smooth_l1_case(-0.02, 0.1)
    assert not smooth_l1_quadratic_underflows(normal)
    assert not smooth_l1_quadratic_underflows(_smooth_l1_case(-0.00044512748718262, 0.0001))
    got = torch.nn.functional.smooth_l1_loss(
        torch.tensor(normal.args["input"], dtype=torch.float16),
        torch.tensor(normal.args["target"], dtype=torch.float16), reduction="sum", beta=0.1)
    exact = SPECS["smooth_l1_loss"].reference(normal).rounded
    assert abs(float(got) - float(exact)) <= 2 * float(np.spacing(np.float16(exact)))


def _poisson_case(g: float, log_input: bool = False) -> Case:
    args = {"input": np.array([4.92110754e-06]), "target": np.array([2.0 ** -52])}
    return Case("float64", args, {"reduction": "none", "log_input": log_input, "full": False,
                                  "eps": 1e-12}, {}, (), grad_output=np.array([g]))


def _torch_poisson_input_gradient(case: Case) -> float:
    x = torch.tensor(case.args["input"], dtype=torch.float64, requires_grad=True)
    loss = torch.nn.functional.poisson_nll_loss(
        x, torch.tensor(case.args["target"], dtype=torch.float64),
        log_input=case.options["log_input"], eps=case.options["eps"], reduction="none")
    (grad,) = torch.autograd.grad(loss, [x], torch.tensor(case.grad_output))
    return float(grad[0])


def test_poissons_underflowing_backward_product_is_real_and_excused_only_there():
    """log_input=False: torch forms g y before dividing by x + eps; g y = 4.9e-325 flushes,
    so torch returns g itself (soak quick seed 403); with g = -1 the product is normal and
    torch is within an ulp, and with log_input nothing is divided."""
    case = _poisson_case(-2.225073858507203e-309)
    exact = float(SPECS["poisson_nll_loss"].reference_grad(case)["input"].rounded[0])
    assert exact == -2.225073858406804e-309
    assert _torch_poisson_input_gradient(case) == -2.225073858507203e-309
    assert _poisson_backward_underflows(case)
    normal = _poisson_case(-1.0)
    assert not _poisson_backward_underflows(normal)
    exact = float(SPECS["poisson_nll_loss"].reference_grad(normal)["input"].rounded[0])
    assert abs(_torch_poisson_input_gradient(normal) - exact) <= 2 * np.spacing(abs(exact))
    assert not _poisson_backward_underflows(_poisson_case(-2.225073858507203e-309, True))
