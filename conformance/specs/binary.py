"""The binary family: binary_cross_entropy, binary_cross_entropy_with_logits.

Contract (torch 2.13's documentation, with these decisions; torch's behaviour verified):

- input and target have the same shape, any rank (0 to 3 drawn, empty included); the output is
  that shape for 'none', a 0-d tensor otherwise; the mean of no elements is nan, the sum 0.
  torch raises for a target of any other shape, broadcastable or not. Targets are drawn in
  [0, 1] (hard 0/1, soft, and for binary_cross_entropy equal to the input). Integer inputs
  raise. weight (both losses) and pos_weight (with_logits) broadcast to the input's shape
  without enlarging it: drawn with the input's shape, its last dimension (C,), 0-d, leading
  ones (1, .., C) and a column (.., 1) (pos_weight all but the column); a shape that does not
  broadcast, or would enlarge the input, raises. Weights may be zero or negative; pos_weight is
  drawn >= 0 (a weight of the positive term), 0 included.
- binary_cross_entropy: input p in [0, 1] (torch raises for p outside it, nan included, and
  for a target outside [0, 1]). loss = -w (y max(log p, -100) + (1 - y) max(log(1 - p), -100)):
  the clamp is part of the contract (p = 0 or 1 give 100 per wrong element, 0 per right one);
  log p is clamped exactly where p < exp(-100) (float32 subnormals 26 and 27 times 2**-149 sit
  on either side). Gradients are torch's formulas, not the derivative of the clamped loss:
  d/dp = g w (p - y) / max(p (1 - p), eps) (so finite at p = 0 and 1; eps = 1e-12 rounded
  to float32, 9.99999996e-13, as torch's constant is a float) and d/dy =
  g w (log(1 - p) - log p) (= -logit(p): +inf at p = 0, -inf at p = 1, nan where g w = 0),
  divided by N for 'mean'. torch refuses to differentiate weight.
- binary_cross_entropy_with_logits: loss = w ((1 - y) softplus(x) + q y softplus(-x)), q =
  pos_weight (1 when None), which is torch's (1 - y) x - (1 + (q - 1) y) log sigmoid(x).
  Gradients for input and target: d/dx = g w ((1 - y) sigmoid(x) - q y sigmoid(-x)), d/dy =
  g w (log sigmoid(-x) - q log sigmoid(x)); torch refuses to differentiate weight and
  pos_weight. At x = +-inf the loss and both derivatives are their limits as x -> +-inf
  (loss: 0 at +inf with y = 1, +inf at +inf with y < 1, +inf at -inf with q y > 0, else 0;
  d/dx: 1 - y and -q y; d/dy: -inf at +inf, +inf at -inf with q > 0, 0 with q = 0), multiplied
  by w, g and 1 / N with 0 * inf = nan. torch 2.13 gives nan for x = +inf, y = 1 and for every
  x = -inf (a known deviation, conformance/deviations/binary.py).
- Legacy keywords size_average / reduce as torch; the half-precision dtypes are supported by
  both torch losses on CPU.

Tolerances (conformance/accuracy.py; S per element, n = numel for 'sum' and 'mean', summation
cascade as torch.sum on CPU, a 'mean' divides S by N):

- binary_cross_entropy, value: S = |w| (y |max(log p, -100)| + (1 - y) |max(log(1 - p), -100)|),
  the two non-negative parts; depth 10 (log 2, clamp, product, 1 - y, log1p 2, product,
  subtract, weight, divide by N).
- its gradients: input |g w| |p - y| / max(p (1 - p), 1e-12) / N', depth 8 (subtract, 1 - p,
  product, the constant 1e-12 rounded to the dtype, divide, upstream, weight, divide by N);
  target |g w| (|log p| + |log(1 - p)|) / N' (the magnitudes of the two logs subtracted), depth
  8 (1 - p, divide, log 2, negate, upstream, weight, divide by N).
- binary_cross_entropy_with_logits, value: S = |w| (|1 - y| |x| + (1 + |q - 1| y) softplus(-x)),
  the magnitudes of torch's form (1 - y) x - c log sigmoid(x) with c = 1 + (q - 1) y (it cancels
  where x << 0, y = 0: S keeps |x|, as for the multi-label soft margin loss); depth 14 (log
  sigmoid 5, c 3, product, 1 - y, product, subtract, weight, divide by N). Infinite logits
  contribute exactly (S 0).
- its gradients: input |g w| ((|q y| + |1 - y|) sigmoid(x) + |q y|) / N', the parts of torch's
  (q y + 1 - y) sigmoid(x) - q y, depth 12 (sigmoid 4, q y, + 1 - y 2, product, subtract,
  upstream, weight, divide by N); target |g w| (softplus(x) + |q| softplus(-x)) / N' (the
  magnitudes of log sigmoid(-x) - q log sigmoid(x)), depth 12.
- underflow: a part below the dtype's smallest normal errs absolutely by up to a subnormal unit
  when rounded; later factors magnify it (amplification): |w|, c, |g|, for the probability
  gradient 1 / max(p (1 - p), 1e-12), since torch rounds g (p - y) before dividing (a subnormal
  p - y in float32 is then off by 1e-5 relative), and for the target gradients the size of the
  log terms (g w rounded to a subnormal first, then times log(p / (1 - p)) ~ 100: seen 43
  subnormal units in float64, seed 8 of the quick profile).
"""

from __future__ import annotations

import numpy as np

from loss_reference import binary as ref
from loss_reference.formats import format_of

from ..accuracy import Magnitude
from ..properties import Pair, Property, replaced, snap_unit
from . import Spec, reduction_variants
from .speed import (class_weights, ladder, normal_values, typical_case, uniform_values,
                    variant)
from .binary_cases import BCE, LOGITS, cases, edges, invalid

DEPTH = {BCE: 10, LOGITS: 14}
GRAD_DEPTH = {BCE: 8, LOGITS: 12}
_QUIET = {"over": "ignore", "invalid": "ignore", "divide": "ignore", "under": "ignore"}


def _variants():
    return reduction_variants()


def _parts(case):
    """float64 x, y, w and q (ones where None) broadcast to the input, the reduction."""
    a = case.args
    x = np.asarray(a["input"], np.float64)
    ones = np.ones(())

    def full(name):
        value = a.get(name)
        return np.broadcast_to(ones if value is None else np.asarray(value, np.float64), x.shape)

    return x, np.asarray(a["target"], np.float64), full("weight"), full("pos_weight"), \
        case.options["reduction"]


# --- references ----------------------------------------------------------------------------------

def _reference(name):
    def reference(case):
        a, fmt = case.args, format_of(case.dtype)
        if name == BCE:
            return ref.binary_cross_entropy(a["input"], a["target"], a["weight"],
                                            case.options["reduction"], fmt)
        return ref.binary_cross_entropy_with_logits(a["input"], a["target"], a["weight"],
                                                    a["pos_weight"], case.options["reduction"],
                                                    fmt)

    return reference


def _reference_grad(name):
    def reference_grad(case):
        a, fmt = case.args, format_of(case.dtype)
        if name == BCE:
            return ref.binary_cross_entropy_grad(case.grad_output, a["input"], a["target"],
                                                 a["weight"], case.options["reduction"], fmt)
        return ref.binary_cross_entropy_with_logits_grad(
            case.grad_output, a["input"], a["target"], a["weight"], a["pos_weight"],
            case.options["reduction"], fmt)

    return reference_grad


# --- magnitudes ----------------------------------------------------------------------------------

def _softplus(t):
    return np.logaddexp(0.0, t)


def _sigmoid(t):
    return np.exp(-_softplus(-t))


@np.errstate(**_QUIET)
def _value_terms(name, x, y, q):
    """(|parts| per element, factor after the first rounding) of the loss, before the weight."""
    if name == BCE:
        log_p = np.maximum(np.log(x), ref.LOG_CLAMP)
        log_q = np.maximum(np.log1p(-x), ref.LOG_CLAMP)
        return np.abs(y * log_p) + np.abs((1 - y) * log_q), np.ones(x.shape)
    c = 1 + np.abs(q - 1) * np.abs(y)
    finite = np.isfinite(x)
    safe = np.where(finite, x, 0.0)
    parts = np.abs(1 - y) * np.abs(safe) + c * _softplus(-safe)
    return np.where(finite, parts, 0.0), c


def _magnitude(name):
    @np.errstate(**_QUIET)
    def magnitude(case):
        x, y, w, q, reduction = _parts(case)
        fmt = format_of(case.dtype)
        t, after = _value_terms(name, x, y, q)
        scale = np.abs(w) * t
        amplification = np.maximum(1, np.abs(w)) * after
        depth = DEPTH[name]
        if reduction == "none":
            return Magnitude(scale, 1, depth, amplification=amplification)
        n = x.size
        underflow = np.where(scale < 2.0 ** fmt.min_exponent, amplification, 0).sum()
        if reduction == "sum" or n == 0:
            return Magnitude(np.array(scale.sum()), max(n, 1), depth, amplification=underflow)
        return Magnitude(np.array(scale.sum() / n), n, depth, amplification=underflow / n)

    return magnitude


@np.errstate(**_QUIET)
def _grad_sizes(name, x, y, q):
    """{argument: (|d term / d argument| bound, factor after the first rounding)}."""
    if name == BCE:
        divisor = np.maximum(x * (1 - x), ref.EPSILON)
        logs = np.abs(np.log(x)) + np.abs(np.log1p(-x))
        return {"input": (np.abs(x - y) / divisor, 1 / divisor),
                "target": (logs, np.maximum(1, logs))}
    safe = np.where(np.isfinite(x), x, 0.0)
    qy = np.abs(q * y)
    sig = np.where(np.isfinite(x), _sigmoid(safe), (x > 0) * 1.0)
    c = qy + np.abs(1 - y)
    target = _softplus(safe) + np.abs(q) * _softplus(-safe)
    return {"input": ((qy + np.abs(1 - y)) * sig + qy, np.maximum(1, c)),
            "target": (target, np.maximum(1, np.maximum(np.abs(q), target)))}


def _grad_magnitudes(name):
    @np.errstate(**_QUIET)
    def grad_magnitudes(case):
        x, y, w, q, reduction = _parts(case)
        g = np.broadcast_to(np.abs(np.asarray(case.grad_output, np.float64)), x.shape)
        divisor = max(x.size, 1) if reduction == "mean" else 1
        out = {}
        for argument, (size, after) in _grad_sizes(name, x, y, q).items():
            amplification = np.maximum(1, g) * np.maximum(1, np.abs(w)) * after
            out[argument] = Magnitude(g * np.abs(w) * size / divisor, 1, GRAD_DEPTH[name],
                                      amplification=amplification)
        return out

    return grad_magnitudes


# --- properties: mirror symmetry ------------------------------------------------------------------

def _mirror_logits(case, draw):
    """(x, y, w) and (-x, 1 - y, w), y snapped to multiples of 2**-p so that 1 - y is exact;
    without pos_weight, which breaks the symmetry."""
    y = snap_unit(case.args["target"], case.dtype)
    tags = tuple(t for t in case.tags if not t.startswith("pos_weight"))
    layouts = {k: v for k, v in case.layouts.items() if k != "pos_weight"}
    a = replaced(case, {"target": y, "pos_weight": None}, tags=tags, layouts=layouts)
    return Pair(a, replaced(a, {"input": np.asarray(-np.asarray(case.args["input"])),
                                "target": np.asarray(1.0 - y)}))


def _mirror_probabilities(case, draw):
    """(p, y, w) and (1 - p, 1 - y, w), p and y snapped to multiples of 2**-p (0 and 1 stay;
    the -100 clamp of both logs is symmetric too)."""
    p = snap_unit(case.args["input"], case.dtype)
    y = snap_unit(case.args["target"], case.dtype)
    a = replaced(case, {"input": p, "target": y})
    return Pair(a, replaced(a, {"input": np.asarray(1.0 - p), "target": np.asarray(1.0 - y)}))


PROPERTIES = {
    LOGITS: (Property("mirror", _mirror_logits, "loss(x, y, w) = loss(-x, 1 - y, w) without "
                      "pos_weight"),),
    BCE: (Property("mirror", _mirror_probabilities, "loss(p, y, w) = loss(1 - p, 1 - y, w)"),),
}
KEYWORD_ARRAYS = {BCE: ("weight",), LOGITS: ("weight", "pos_weight")}


# --- speed ladder --------------------------------------------------------------------------------

def _speed_case(name):
    def case(size, dtype, rng):
        """Typical multi-label training inputs: probabilities in [0.01, 0.99] (bce) or logits
        N(0,2) (with logits), labels 0 or 1 (a tenth positive), no weights, 'mean'."""
        x = (uniform_values(size, dtype, rng, 0.01, 0.99) if name == BCE
             else normal_values(size, dtype, rng, 2.0))
        y = (rng.random(size, dtype=np.float32) < 0.1).astype(np.float64)
        args = {"input": x, "target": y, **{n: None for n in KEYWORD_ARRAYS[name]}}
        return typical_case(dtype, args, {"reduction": "mean"})
    return case


def _speed(name):
    variants = [("weighted", variant(arrays={"weight": class_weights})),
                ("none", variant(reduction="none"))]
    if name == LOGITS:
        variants.insert(1, ("pos_weight", variant(arrays={"pos_weight": class_weights})))
    return ladder(_speed_case(name), read=("input", "target") + KEYWORD_ARRAYS[name],
                  kernel="two_logs" if name == BCE else "softplus", variants=variants,
                  inputs=("probabilities" if name == BCE else "logits N(0,2)")
                  + ", labels 0/1 (a tenth positive), no weight, 'mean'")


def _spec(name):
    return Spec(
        name=name, family="binary", positional=("input", "target"),
        keyword_arrays=KEYWORD_ARRAYS[name],
        variants=_variants(), cases=cases(name), edge_cases=edges(name),
        invalid_calls=invalid(name), reference=_reference(name), magnitude=_magnitude(name),
        differentiable=("input", "target"), reference_grad=_reference_grad(name),
        grad_magnitudes=_grad_magnitudes(name), properties=PROPERTIES[name],
        speed=_speed(name),
    )


SPECS = tuple(_spec(name) for name in ref.LOSSES)
