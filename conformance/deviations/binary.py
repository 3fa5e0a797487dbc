"""torch 2.13's known deviations in the binary family."""

from __future__ import annotations

import numpy as np

from loss_reference.formats import FORMATS

from ..cases import Case
from . import KnownDeviation

BCE = "binary_cross_entropy"
LOGITS = "binary_cross_entropy_with_logits"
_QUIET = {"over": "ignore", "invalid": "ignore", "divide": "ignore", "under": "ignore"}
# exp(-x) overflows the precision torch computes sigmoid in (float32 for bfloat16; float16's
# sigmoid never gets there: its results are above float16's subnormals long before).
SIGMOID_FLUSH = {"float64": 709.78, "float32": 88.72, "bfloat16": 88.72}


def _parts(case: Case):
    """float64 x, y, q (pos_weight, ones where None) and |g|, broadcast to the input."""
    x = np.asarray(case.args["input"], dtype=np.float64)
    y = np.asarray(case.args["target"], dtype=np.float64)
    q = case.args.get("pos_weight")
    q = np.broadcast_to(np.ones(()) if q is None else np.asarray(q, np.float64), x.shape)
    g = 1.0 if case.grad_output is None else np.asarray(case.grad_output, np.float64)
    return x, y, q, np.broadcast_to(np.abs(g), x.shape)


def nan_at_infinite_logit(case: Case) -> bool:
    """Whether some logit is -inf, or +inf with target 1: torch's (1 - y) x - c log sigmoid(x)
    is 0 * inf or inf - inf there."""
    x, y, _, _ = _parts(case)
    return bool(np.any(x == -np.inf) or np.any((x == np.inf) & (y == 1)))


@np.errstate(**_QUIET)
def sigmoid_flushes(case: Case) -> bool:
    """Whether d/dx = (1 - y) sigmoid(x) - q y sigmoid(-x) is a subnormal torch flushes: x below
    -log(max) of the precision sigmoid is computed in, with q y not a normal number."""
    limit = SIGMOID_FLUSH.get(case.dtype)
    if limit is None:
        return False
    x, y, q, _ = _parts(case)
    tiny = 2.0 ** FORMATS[case.dtype].min_exponent
    return bool(np.any((x < -limit) & np.isfinite(x) & (np.abs(q * y) < tiny)))


@np.errstate(**_QUIET)
def _logit_intermediate_overflows(case: Case) -> bool:
    """Whether a value torch rounds to the dtype before the mean's division leaves its range:
    in the loss c log sigmoid(x) (c = 1 + (q - 1) y) and the element's loss times its weight;
    in the target gradient, with pos_weight its slope log sigmoid(-x) - q log sigmoid(x) alone
    (then times g: inf, or nan at g = 0), g times it, and that times the weight; without
    pos_weight g x and that times the weight."""
    x, y, q, g = _parts(case)
    w = case.args.get("weight")
    w = np.broadcast_to(np.abs(np.asarray(1.0 if w is None else w, np.float64)), x.shape)
    finite = np.isfinite(x)
    x = np.where(finite, x, 0.0)
    log_sig, log_sig_neg = -np.logaddexp(0.0, -x), -np.logaddexp(0.0, x)
    scaled_log = np.abs((1 + (q - 1) * y) * log_sig)
    loss = np.abs((1 - y) * x - (1 + (q - 1) * y) * log_sig)
    slope = np.abs(log_sig_neg - q * log_sig)
    target_grad = g * slope
    limit = FORMATS[case.dtype].max_finite
    quantities = (scaled_log, w * loss, target_grad, w * target_grad)
    if case.args.get("pos_weight") is not None:
        quantities += (slope,)
    return any(bool(np.any(finite & (v > limit))) for v in quantities)


@np.errstate(**_QUIET)
def _half_gradient_breaks(case: Case) -> bool:
    """Whether torch's float16 probability gradient g (p - y) / max(p (1 - p), eps) meets
    p = 0 or 1 (eps = 1e-12 is 0 in float16), or overflows before the weight and the mean's
    division."""
    if case.dtype != "float16":
        return False
    p, y, _, g = _parts(case)
    quotient = g * np.abs(p - y) / np.maximum(p * (1 - p), 1e-12)
    return bool(np.any((p == 0) | (p == 1)) or np.any(quotient > FORMATS["float16"].max_finite))


VERIFIED_ON = ("2.13.0",)  # torch releases these deviations were verified on

DEVIATIONS = (
    KnownDeviation(
        impl="torch", loss=LOGITS, applies=nan_at_infinite_logit,
        reason="torch 2.13 CPU computes binary_cross_entropy_with_logits as (1 - y) x - (1 + "
               "(q - 1) y) log sigmoid(x), which is nan (0 * inf, or -inf + inf) at x = +inf "
               "with y = 1 and at every x = -inf, where the loss's limit is 0 (x = +inf, y = 1; "
               "x = -inf, y = 0) or +inf (x = -inf, q y > 0); with pos_weight 0 its target "
               "gradient log sigmoid(-x) - q log sigmoid(x) is nan at x = -inf (0 * inf), "
               "limit 0. E.g. float32 x = [inf, -inf, -inf], y = [1, 0, 1], reduction 'none' "
               "gives [nan, nan, nan], exact [0, 0, inf] (pytorch/pytorch#102894, B27)"),
    KnownDeviation(
        impl="torch", loss=LOGITS, applies=sigmoid_flushes,
        reason="torch 2.13 CPU's input gradient uses sigmoid(x) = 1 / (1 + exp(-x)), which is 0 "
               "where exp(-x) overflows (x < -88.72 in float32 and bfloat16, < -709.78 in "
               "float64) although sigmoid(x) ~ exp(x) is still a subnormal number there, so "
               "with y = 0 the gradient flushes to 0: e.g. float32 x = -100, y = 0, 'sum' gives "
               "d/dx 0, exact 3.72e-44; float64 x = -720, y = 0 gives 0, exact 2.03e-313 (B29)"),
    KnownDeviation(
        impl="torch", loss=LOGITS, applies=_logit_intermediate_overflows,
        reason="torch 2.13 CPU rounds c log sigmoid(x) (c = 1 + (q - 1) y) and the target "
               "gradient's g (log sigmoid(-x) - q log sigmoid(x)) (g x without pos_weight) to "
               "the input dtype, then their products with the weight, all before the mean's "
               "division, so in float16 they overflow where the result is finite: e.g. x = "
               "-65504, y = 0.25, pos_weight 3, 'none' gives inf, exact 49128; x = 65504, y = "
               "1, g = 2.5, 'mean' over 10 elements gives d/dy -inf, exact -16376; x = 30000, "
               "y = 0, weight 3, 'mean' over 14 elements gives inf, exact 6428.6; x = 65504, "
               "y = 1, weight 0.5, g = 2, 'mean' over 14 gives d/dy -inf, exact -4678.9 "
               "(quick profile, seed 9). With pos_weight the target gradient's slope is "
               "rounded before its product with g: x = -65504, y = 0, pos_weight 2, 'none' "
               "gives d/dy inf at g = 0.25, exact 32752, and nan at g = 0, exact 0 (default "
               "profile, seed 19); without pos_weight g x is right (16376 at g = 0.25)"),
    KnownDeviation(
        impl="torch", loss=BCE, applies=_half_gradient_breaks,
        reason="torch 2.13 CPU's float16 binary_cross_entropy gradient is g (p - y) / max((1 - "
               "p) p, eps) with eps = 1e-12 rounded to float16, which is 0: at p = 0 or 1 it "
               "divides by 0 (nan where p = y, or at weight 0; exact 0), and the quotient, "
               "rounded to float16 before the weight and the mean's division, overflows where "
               "the result is finite: e.g. float16 p = [0, 1], y = [0, 1], 'sum' gives d/dp "
               "[nan, nan], exact [0, 0]; p = 1.0014e-5, y = 1, weight 0.5, 'none' gives -inf, "
               "exact -49932.19 (B32)"),
)
