"""The pointwise family: l1_loss, mse_loss, huber_loss, smooth_l1_loss, soft_margin_loss.

Contract (torch 2.13's documentation, with these decisions; torch's behaviour verified):

- input and target have the same shape, any rank (0 to 3 drawn, empty included); the output
  is that shape for 'none', a 0-d tensor otherwise. The mean of no elements is nan, the sum 0.
  torch broadcasts a target of another broadcastable shape (l1, mse, huber, smooth_l1 with a
  warning, "This will likely lead to incorrect results"; soft_margin silently, as long as the
  result keeps the input's shape); the documented contract is the same shape, so such calls
  are outside the spec (never drawn, not required to raise). Shapes that do not broadcast, and
  a soft_margin target that would enlarge the input, raise; so do integer inputs.
- weight (l1, mse, huber; torch 2.13 has the keyword): the input's shape, any sign,
  differentiable. 'mean' is sum(w t) / sum(w) for l1_loss and mse_loss but mean(w t) for
  huber_loss (torch's Python code differs; the spec follows each). Weights that add up to
  exactly 0 leave that weighted mean undefined: nan for 0/0, else an infinity, gradients nan.
- huber_loss: delta > 0 (torch rejects 0, negatives and nan); smooth_l1_loss: beta >= 0
  (rejects negatives and nan), beta = 0 is l1_loss. Both are drawn per case from a set that
  includes values no half-precision format holds (torch rounds them to the dtype).
- soft_margin_loss: log(1 + exp(-y x)) for every real y. The documentation says y is 1 or -1,
  torch does not check, and its formula is defined for any y: the suite draws y = +-1 mostly,
  also soft targets in [-1, 1] and reals in [-2, 2]. torch refuses to differentiate it in its
  target ("not differentiable with respect to argument 'target'"), so only input is.
- Gradients for input and target (d/dy = -d/dx for the regression losses). At l1's kink x = y
  the gradient is 0 (torch: sign(0) = 0): the sign of x - y is decidable, so no slack. huber
  and smooth_l1 have continuous gradients; within rounding distance of |x - y| = delta (beta)
  either branch's gradient is accepted (one jump of slack, as at the margin loss's hinge).

Tolerances (conformance/accuracy.py; S per element from the magnitudes below, n = numel for
'sum' and 'mean', summation cascade as torch.sum on CPU):

- terms: l1 |r|, mse r^2, huber 0.5 r^2 or delta (|r| + delta/2), smooth_l1 0.5 r^2 / beta or
  |r| + beta/2 (r = x - y), soft margin softplus(t) + |t| sigmoid(t) with t = -y x (the second
  part bounds the effect of rounding t before exp), each times |w|; 'mean' divides by N, and a
  mean by sum(w) = W uses (sum |w t| + |A / W| sum |w|) / |W| (A = sum w t): the quotient is
  only as accurate as its denominator.
- gradients: |g w| times |d term / dx| (1, 2|r|, min(|r|, delta), min(|r| / beta, 1),
  |y| sigmoid(t) (1 + |t|)) over the divisor; weight: |g| times the term, and for a mean by W
  |g| (|t_i| sum|w| + sum|w t| + |A / W| sum |w|) / W^2.
- depth (rounded operations per term, a libm call counting 2, a squared rounding 2): l1 5
  (subtract, weight, sum of weights, divide, upstream), mse 6, huber 6, smooth_l1 6 (subtract
  twice for the square, square, beta, divide, upstream), soft margin 8 (product, exp, log1p or
  the backward's exp, product, 1 + z, divide, upstream).
- underflow: a term that lies below the dtype's smallest normal errs absolutely by up to a
  subnormal unit when rounded; a sum carries one such error per term (amplification: the
  count of such terms, over N for a mean), and later factors (1 / beta, |g|, |w|) magnify it.
"""

from __future__ import annotations

import math

import numpy as np

from loss_reference import pointwise as ref
from loss_reference.formats import format_of

from ..accuracy import Magnitude
from ..properties import exact_sum
from . import Spec, reduction_variants
from .speed import elementwise_weights, ladder, normal_values, signs, typical_case, variant
from .pointwise_cases import THRESHOLD_OPTION, WEIGHTED, cases, edges, invalid

DEPTH = {"l1_loss": 5, "mse_loss": 6, "huber_loss": 6, "smooth_l1_loss": 6,
         "soft_margin_loss": 8}


def _variants():
    return reduction_variants()


def _parts(name, case):
    """float64 x, y, weight (or None), the threshold and the reduction of a case."""
    a = case.args
    threshold = float(case.options.get(THRESHOLD_OPTION.get(name, ""), 1.0))
    return (np.asarray(a["input"], np.float64), np.asarray(a["target"], np.float64),
            a.get("weight"), threshold, case.options["reduction"])


def _reference(name):
    def reference(case):
        x, y, w, _, reduction = _parts(name, case)
        return ref.loss(name, x, y, w, case.options, reduction, format_of(case.dtype))

    return reference


def _reference_grad(name):
    def reference_grad(case):
        x, y, w, _, reduction = _parts(name, case)
        return ref.loss_grad(name, case.grad_output, x, y, w, case.options, reduction,
                             format_of(case.dtype))

    return reference_grad


def _softplus(t):
    return np.logaddexp(0.0, t)


def _sigmoid(t):
    return np.exp(-_softplus(-t))


def _term_sizes(name, x, y, k):
    """(|term|, |d term / d input|, factor applied after the term's first rounding)."""
    with np.errstate(over="ignore", invalid="ignore"):
        r = x - y
        z = np.abs(r)
        ones = np.ones(z.shape)
        if name == "l1_loss" or (name == "smooth_l1_loss" and k == 0):
            return z, ones, ones
        if name == "mse_loss":
            return r * r, 2 * z, ones
        quadratic = z < k
        if name == "huber_loss":
            return (np.where(quadratic, 0.5 * z * z, k * (z + k / 2)),
                    np.where(quadratic, z, k), ones)
        if name == "smooth_l1_loss":
            return (np.where(quadratic, 0.5 * z * z / k, z + k / 2),
                    np.where(quadratic, z / k, 1.0), np.where(quadratic, max(1.0, 1 / k), 1.0))
        t = -y * x
        return (_softplus(t) + np.abs(t) * _sigmoid(t),
                np.abs(y) * _sigmoid(t) * (1 + np.abs(t)), ones)


def _weight_sum_parts(w, terms):
    """W = sum w, sum |w| and A / W for a mean by the weights (terms signed by w)."""
    total_w = math.fsum(w.reshape(-1))
    quotient = float(np.sum(w * terms)) / total_w if total_w else math.inf
    return total_w, float(np.abs(w).sum()), quotient


_QUIET = {"over": "ignore", "invalid": "ignore", "divide": "ignore"}


def _magnitude(name):
    @np.errstate(**_QUIET)
    def magnitude(case):
        x, y, weight, k, reduction = _parts(name, case)
        fmt = format_of(case.dtype)
        w = np.ones(x.shape) if weight is None else np.asarray(weight, np.float64)
        t, _, after = _term_sizes(name, x, y, k)
        scale = np.abs(w) * t
        # Terms below the smallest normal may round to the subnormal grid (an absolute error).
        underflow = np.where(scale < 2.0 ** fmt.min_exponent, np.maximum(1, np.abs(w)) * after, 0)
        depth = DEPTH[name]
        if reduction == "none":
            return Magnitude(scale, 1, depth, amplification=np.maximum(1, np.abs(w)) * after)
        n = x.size
        if reduction == "sum" or n == 0:
            return Magnitude(np.array(scale.sum()), max(n, 1), depth,
                             amplification=underflow.sum())
        if ref.divides_by_weight_sum(name, weight, reduction):
            total_w, sum_abs_w, quotient = _weight_sum_parts(w, t)
            if total_w == 0:
                return Magnitude(np.array(np.inf), n, depth)  # nan or inf: judged exactly
            s = (scale.sum() + abs(quotient) * sum_abs_w) / abs(total_w)
            return Magnitude(np.array(s), n, depth, amplification=underflow.sum() / abs(total_w))
        return Magnitude(np.array(scale.sum() / n), n, depth, amplification=underflow.sum() / n)

    return magnitude


def _near_kink(x, y, k, fmt) -> np.ndarray:
    """|x - y| within rounding distance of the threshold (torch rounds both), not exactly on it."""
    z = np.abs(x - y)
    near = np.abs(z - k) <= 4 * fmt.unit_roundoff * (z + k)
    return near & ~ref.exactly_at_kink(x, y, k) if near.any() else near


def _grad_magnitudes(name):
    @np.errstate(**_QUIET)
    def grad_magnitudes(case):
        x, y, weight, k, reduction = _parts(name, case)
        fmt = format_of(case.dtype)
        w = np.ones(x.shape) if weight is None else np.abs(np.asarray(weight, np.float64))
        signed_w = w if weight is None else np.asarray(weight, np.float64)
        g = np.broadcast_to(np.abs(np.asarray(case.grad_output, np.float64)), x.shape)
        t, slope, after = _term_sizes(name, x, y, k)
        n = x.size
        depth = DEPTH[name]
        divisor, terms, spread = 1.0, 1, 1.0
        by_weight_sum = ref.divides_by_weight_sum(name, weight, reduction)
        if by_weight_sum:
            total_w, sum_abs_w, quotient = _weight_sum_parts(signed_w, t)
            if total_w == 0:
                return {a: Magnitude(np.full(x.shape, np.inf), 1, depth)
                        for a in ("input", "target", "weight")}
            divisor, terms, spread = abs(total_w), n, sum_abs_w / abs(total_w)
        elif reduction == "mean":
            divisor = max(n, 1)
        slack = 0.0
        if name in THRESHOLD_OPTION and k > 0:
            # Either branch's gradient within rounding distance of the kink: their difference.
            jump = np.abs(np.abs(x - y) - k) / (k if name == "smooth_l1_loss" else 1.0)
            slack = np.where(_near_kink(x, y, k, fmt), g * w * jump / divisor, 0.0)
        amplification = np.maximum(1, g) * np.maximum(1, w) * np.maximum(1, slope) * after
        d_input = Magnitude(g * w * slope * spread / divisor, terms, depth, slack=slack,
                            amplification=amplification)
        out = {"input": d_input}
        if name != "soft_margin_loss":
            out["target"] = d_input
        if weight is not None:
            amplification = np.maximum(1, g) * np.maximum(1, t) * after
            if by_weight_sum:
                spread_terms = (t * sum_abs_w + np.sum(w * t) + abs(quotient) * sum_abs_w)
                scale = g * spread_terms / divisor / divisor
                # torch forms t_i (g / W) - g (A / W) / W: an underflow in a term t_i is then
                # multiplied by g / W, one in each of the n products w t inside A by g / W^2.
                amplification = amplification * max(1, 1 / divisor) * max(
                    1, n * max(1, float(w.max(initial=1))) / divisor)
            else:
                scale = g * t / divisor
            out["weight"] = Magnitude(scale, terms, depth, amplification=amplification)
        return out

    return grad_magnitudes


def _weight_sum(case, none_shape):
    """What a weighted l1_loss / mse_loss 'mean' divides by: the sum of the weight (the input's
    shape); the element count without a weight."""
    w = case.args.get("weight")
    if w is None:
        return int(np.prod(none_shape))
    return exact_sum(np.broadcast_to(np.asarray(w, np.float64), np.shape(case.args["input"])))


# --- speed ladder --------------------------------------------------------------------------------

SPEED_KERNELS = {"l1_loss": "abs_difference", "mse_loss": "squared_difference",
                 "huber_loss": "huber", "smooth_l1_loss": "huber", "soft_margin_loss": "softplus"}


def _speed_case(name):
    def case(size, dtype, rng):
        """Typical regression inputs: prediction and target N(0,1), no weight, the default
        delta/beta, 'mean' (soft_margin_loss: logits N(0,2), targets +-1)."""
        if name == "soft_margin_loss":
            args = {"input": normal_values(size, dtype, rng, 2.0), "target": signs(size, rng)}
        else:
            args = {"input": normal_values(size, dtype, rng),
                    "target": normal_values(size, dtype, rng)}
        if name in WEIGHTED:
            args["weight"] = None
        return typical_case(dtype, args, {"reduction": "mean"})
    return case


def _speed(name):
    variants = [("none", variant(reduction="none"))]
    if name in WEIGHTED:
        variants.insert(0, ("weighted", variant(arrays={"weight": elementwise_weights})))
    return ladder(_speed_case(name), read=("input", "target", "weight"),
                  kernel=SPEED_KERNELS[name], variants=variants,
                  inputs="logits N(0,2), targets +-1, 'mean'" if name == "soft_margin_loss"
                  else "input and target N(0,1), no weight, 'mean'")


def _spec(name):
    return Spec(
        name=name, family="pointwise", positional=("input", "target"),
        keyword_arrays=("weight",) if name in WEIGHTED else (),
        variants=_variants(), cases=cases(name), edge_cases=edges(name),
        invalid_calls=invalid(name), reference=_reference(name), magnitude=_magnitude(name),
        differentiable=("input",) if name == "soft_margin_loss" else
        ("input", "target") + (("weight",) if name in WEIGHTED else ()),
        reference_grad=_reference_grad(name), grad_magnitudes=_grad_magnitudes(name),
        mean_divisor=_weight_sum if name in ref.WEIGHT_SUM_MEAN else None, speed=_speed(name),
    )


SPECS = tuple(_spec(name) for name in ref.LOSSES)
