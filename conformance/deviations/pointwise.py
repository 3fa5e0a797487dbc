"""torch 2.13's known deviations in the pointwise family."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from loss_reference.formats import FORMATS

from ..cases import Case
from . import KnownDeviation


def _regression_intermediate_overflows(loss: str) -> Callable[[Case], bool]:
    """Whether a value torch 2.13 rounds to the dtype before its final result leaves the
    dtype's range: the residual x - y, the elementwise loss (before smooth_l1's division by
    beta), twice the residual (mse_loss's backward), and with a weight the weighted loss, the
    weighted sum that l1/mse divide by sum(w), the upstream gradient over sum(w) that
    their backward starts from (a subnormal sum of weights), and the two parts of the weight's
    gradient, that times each term and times the weighted sum over sum(w)."""
    def applies(case: Case) -> bool:
        x = np.asarray(case.args["input"], dtype=np.float64)
        y = np.asarray(case.args["target"], dtype=np.float64)
        if x.size == 0:
            return False
        k = float(case.options.get("delta", case.options.get("beta", 1.0)))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            z = np.abs(x - y)
            terms = {"l1_loss": z, "mse_loss": z * z,
                     "huber_loss": np.where(z < k, 0.5 * z * z, k * (z - k / 2)),
                     "smooth_l1_loss": np.where(z < k, 0.5 * z * z, z - k / 2)}[loss]
            quantities = [z, terms] + ([2 * z] if loss == "mse_loss" else [])
            weight = case.args.get("weight")
            if weight is not None:
                weighted = np.asarray(weight, dtype=np.float64) * terms
                quantities += [np.abs(weighted), np.abs(np.sum(weighted))]
                if loss in ("l1_loss", "mse_loss") and case.options.get("reduction") == "mean":
                    upstream = np.abs(np.asarray(case.grad_output if case.grad_output is not None
                                                 else 1.0, dtype=np.float64))
                    per_weight = upstream / np.abs(np.sum(weight))
                    # the weight's gradient: upstream / sum(w) times each term, and the
                    # divisor's part, upstream sum(w terms) / sum(w) / sum(w)
                    quantities += [per_weight, per_weight * terms,
                                   per_weight * np.abs(np.sum(weighted)) / np.abs(np.sum(weight))]
        limit = FORMATS[case.dtype].max_finite
        return any(bool(np.any(np.isnan(q) | (q > limit))) for q in quantities)

    return applies


def smooth_l1_quadratic_underflows(case: Case) -> bool:
    """Whether smooth_l1's quadratic term 0.5 z^2, which torch 2.13 rounds to the dtype before
    dividing it by beta, lies below the dtype's smallest normal (a subnormal, or 0 once
    rounded) for a nonzero z while beta < 1 scales it up: its absolute rounding error (up to
    half the subnormal spacing) then grows into a relative error of many ulps. bfloat16 is
    computed in float32, whose subnormals are far below any bfloat16 ulp, so it is not
    affected."""
    beta = float(case.options.get("beta", 1.0))
    if case.dtype == "bfloat16" or not 0 < beta < 1:
        return False
    x = np.asarray(case.args["input"], dtype=np.float64)
    y = np.asarray(case.args["target"], dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        z = np.abs(x - y)
    # 0.5 z^2 < 2^e_min, compared through z so that float64's own squares cannot underflow
    subnormal_below = math.sqrt(2.0 ** (FORMATS[case.dtype].min_exponent + 1))
    return bool(np.any((z > 0) & (z < beta) & (z < subnormal_below)))


def soft_margin_exp_overflows(case: Case) -> bool:
    """Whether exp(-y x), which torch forms before log1p (and multiplies by y in the
    backward), leaves the dtype's range."""
    x = np.asarray(case.args["input"], dtype=np.float64)
    y = np.asarray(case.args["target"], dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        z = np.exp(-x * y)
        limit = FORMATS[case.dtype].max_finite
        return bool(np.any(z > limit) or np.any(np.abs(y) * z > limit))


def _intermediate_overflow_reason(loss: str, example: str) -> str:
    return (f"torch 2.13 CPU computes {loss}'s elementwise loss (and, with a weight, the "
            "weighted sum before dividing by the sum of weights) in the input dtype, so where an "
            "intermediate overflows it returns inf (or nan, inf * 0 at a zero weight) although "
            "the exact result is finite"
            + (", and a subnormal sum of weights turns the upstream gradient over it into inf "
               "and the gradient into nan; the weight's gradient is nan (inf - inf) where its "
               "two parts, upstream / sum(w) times a term and upstream sum(w terms) / sum(w)^2, "
               "overflow (float16 x = -30000, y = -101.6, w = 0.895, upstream -3.03: exact -0)"
               if loss in ("l1_loss", "mse_loss") else "")
            + f"; {example}")


VERIFIED_ON = ("2.13.0",)  # torch releases these deviations were verified on

DEVIATIONS = (
    KnownDeviation(
        impl="torch", loss="soft_margin_loss", applies=soft_margin_exp_overflows,
        reason="torch 2.13 CPU computes soft_margin_loss as log1p(exp(-y x)) and its gradient "
               "as -y exp(-y x) / (1 + exp(-y x)) in the input dtype, so where exp(-y x) "
               "overflows (-y x > 11.09 in float16, 88.7 in float32/bfloat16, 709.8 in float64) "
               "it returns inf and a nan gradient although the loss is about -y x and the "
               "gradient about -y; e.g. float32 x = -100, y = 1 gives inf and nan, exact 100 "
               "and -1"),
    KnownDeviation(
        impl="torch", loss="l1_loss", applies=_regression_intermediate_overflows("l1_loss"),
        reason=_intermediate_overflow_reason(
            "l1_loss", "e.g. float16 x = [6e4, 0], y = [-3e4, 0], 'mean' gives inf, exact "
            "45000; x = [1000, 1000], y = 0, weight [40, 40] gives inf, exact 1000")),
    KnownDeviation(
        impl="torch", loss="mse_loss", applies=_regression_intermediate_overflows("mse_loss"),
        reason=_intermediate_overflow_reason(
            "mse_loss", "e.g. float16 x = [300, 0, 0, 0], y = 0, 'mean' gives inf, exact "
            "22500 (float32 x = [2e19, 0, 0, 0]: inf, exact 1e38); float32 x = [1e30, 1], "
            "y = 0, weight [0, 1], 'none' gives [nan, 1], exact [0, 1]")),
    KnownDeviation(
        impl="torch", loss="huber_loss", applies=_regression_intermediate_overflows("huber_loss"),
        reason=_intermediate_overflow_reason(
            "huber_loss", "e.g. float16 x = [6e4, 0], y = [-3e4, 0], 'mean' gives inf, exact "
            "44999.75")),
    KnownDeviation(
        impl="torch", loss="smooth_l1_loss",
        applies=_regression_intermediate_overflows("smooth_l1_loss"),
        reason=_intermediate_overflow_reason(
            "smooth_l1_loss", "e.g. float16 x = [6e4, 0], y = [-3e4, 0], 'mean' gives inf, "
            "exact 44999.75")),
    KnownDeviation(
        impl="torch", loss="smooth_l1_loss", applies=smooth_l1_quadratic_underflows,
        checks=("value",),
        reason="torch 2.13 CPU computes smooth_l1_loss's quadratic branch as 0.5 z * z / beta "
               "in the input dtype (float16, float32, float64), so where 0.5 z^2 falls among the "
               "dtype's subnormals its rounding error, absolute, becomes a large relative error "
               "once divided by a beta below 1; e.g. float16 x = 0, y = -0.000445, beta = 0.001 "
               "gives 1.1915e-4, exact 9.907e-5 (337 ulp for 'sum' over two such elements; "
               "float32 z = 3e-20 and float64 z = 3e-155 are off by 7 and 20 ulp). The gradient, "
               "z / beta, is not affected"),
)
