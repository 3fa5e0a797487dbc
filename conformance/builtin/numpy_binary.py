"""Built-in NumPy candidate, binary family: binary_cross_entropy, binary_cross_entropy_with_logits.

Registered in ``numpy_losses`` (``--impl=numpy``) and following its protocol and numeric
policy: torch's signatures (with the legacy ``size_average`` / ``reduce``), float inputs of any
dtype converted exactly to float64, all arithmetic in float64, each result rounded once to its
argument's dtype, ``<loss>_vjp`` gradients (input and target, the arguments torch
differentiates), ``ValueError`` for invalid arguments. The contract is the one in
``conformance/specs/binary.py``: the logs clamped at -100, torch's EPSILON in the probability
gradient, and at infinite logits the limits of the loss and its derivatives.
"""

import numpy as np

from .numpy_reduction import resolve_reduction as _reduction

__all__ = ["binary_cross_entropy", "binary_cross_entropy_vjp",
           "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_vjp"]

_EPSILON = float(np.float32(1e-12))  # torch's constant is a float
_ieee = np.errstate(all="ignore")  # inf and nan are the intended IEEE results


def _as_float(fn, name, array):
    if array.dtype.kind in "biu":
        raise ValueError(f"{fn}: {name} must be floating, got {array.dtype}")
    return np.asarray(array, dtype=np.float64)


def _broadcast(fn, name, array, shape):
    """A weight broadcast to the input's shape; it may not enlarge it."""
    if array is None:
        return np.ones(shape)
    values = _as_float(fn, name, array)
    try:
        if np.broadcast_shapes(values.shape, shape) != tuple(shape):
            raise ValueError
    except ValueError:
        raise ValueError(f"{fn}: {name} of shape {values.shape} does not broadcast to the "
                         f"input's shape {tuple(shape)}") from None
    return np.broadcast_to(values, shape)


def _parts(fn, input, target, weight, pos_weight=None):
    x, y = _as_float(fn, "input", input), _as_float(fn, "target", target)
    if y.shape != x.shape:
        raise ValueError(f"{fn}: target shape {y.shape} does not match input shape {x.shape}")
    w = _broadcast(fn, "weight", weight, x.shape)
    q = _broadcast(fn, "pos_weight", pos_weight, x.shape)
    return x, y, w, q


def _reduce(terms, reduction):
    if reduction == "none":
        return terms
    total = terms.sum()
    return total if reduction == "sum" else total / terms.size


def _upstream(fn, grad_output, x, reduction):
    """The upstream gradient per element, divided by the count for 'mean'."""
    g = np.asarray(grad_output, dtype=np.float64)
    expected = x.shape if reduction == "none" else ()
    if g.shape != expected:
        raise ValueError(f"{fn}_vjp: grad_output has shape {g.shape}, expected {expected}")
    if reduction == "mean":
        g = g / max(x.size, 1)
    return np.broadcast_to(g, x.shape)


def _times(factor, derivative):
    """factor * derivative, with 0 where the derivative is 0 (0 * inf stays nan)."""
    return np.where(derivative == 0, 0.0, factor * derivative)


# --- binary_cross_entropy ------------------------------------------------------------------------

def _probability_parts(input, target, weight):
    fn = "binary_cross_entropy"
    p, y, w, _ = _parts(fn, input, target, weight)
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"{fn}: all elements of input should be between 0 and 1")
    if not np.all((y >= 0) & (y <= 1)):
        raise ValueError(f"{fn}: all elements of target should be between 0 and 1")
    return p, y, w


@_ieee
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """Binary cross entropy between probabilities and targets, as ``F.binary_cross_entropy``:
    -w (y max(log p, -100) + (1 - y) max(log(1 - p), -100)), weight broadcast to the input."""
    reduction = _reduction(size_average, reduce, reduction)
    p, y, w = _probability_parts(input, target, weight)
    terms = -w * (y * np.maximum(np.log(p), -100.0) + (1 - y) * np.maximum(np.log1p(-p), -100.0))
    return np.asarray(_reduce(terms, reduction)).astype(input.dtype)


@_ieee
def binary_cross_entropy_vjp(grad_output, input, target, weight=None, size_average=None,
                             reduce=None, reduction="mean"):
    """Gradients of ``binary_cross_entropy`` for input and target (torch's formulas:
    (p - y) / max(p (1 - p), 1e-12) and log(1 - p) - log p, both times g w / N')."""
    reduction = _reduction(size_average, reduce, reduction)
    p, y, w = _probability_parts(input, target, weight)
    g = _upstream("binary_cross_entropy", grad_output, p, reduction)
    # the upstream gradient last: a subnormal g times w rounds to 0 where g w times a slope
    # of up to 1e12 (or an infinite one, at p = 0 and 1) does not
    d_input = g * (w * (p - y) / np.maximum(p * (1 - p), _EPSILON))
    d_target = _times(g, w * (np.log1p(-p) - np.log(p)))
    return {"input": d_input.astype(input.dtype), "target": d_target.astype(target.dtype)}


# --- binary_cross_entropy_with_logits ------------------------------------------------------------

def _softplus(z):
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


def _limit(coefficient):
    """The limit of coefficient * |x| as |x| -> inf: +-inf, or 0 for a zero coefficient."""
    return np.where(coefficient > 0, np.inf, np.where(coefficient < 0, -np.inf, 0.0))


def _logit_terms(x, y, q):
    """(1 - y) softplus(x) + q y softplus(-x), with its limits at infinite x."""
    finite = np.where(np.isinf(x), 0.0, x)
    terms = (1 - y) * _softplus(finite) + q * y * _softplus(-finite)
    limits = np.where(x > 0, _limit(1 - y), _limit(q * y))
    return np.where(np.isinf(x), limits, terms)


@_ieee
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Binary cross entropy on logits, as ``F.binary_cross_entropy_with_logits``:
    w ((1 - y) softplus(x) + pos_weight y softplus(-x)), weights broadcast to the input."""
    reduction = _reduction(size_average, reduce, reduction)
    x, y, w, q = _parts("binary_cross_entropy_with_logits", input, target, weight, pos_weight)
    terms = _times(w, _logit_terms(x, y, q))
    return np.asarray(_reduce(terms, reduction)).astype(input.dtype)


@_ieee
def binary_cross_entropy_with_logits_vjp(grad_output, input, target, weight=None,
                                         size_average=None, reduce=None, reduction="mean",
                                         pos_weight=None):
    """Gradients of ``binary_cross_entropy_with_logits`` for input and target."""
    reduction = _reduction(size_average, reduce, reduction)
    fn = "binary_cross_entropy_with_logits"
    x, y, w, q = _parts(fn, input, target, weight, pos_weight)
    g = _upstream(fn, grad_output, x, reduction)  # last, as in binary_cross_entropy's
    d_input = g * (w * ((1 - y) * _sigmoid(x) - q * y * _sigmoid(-x)))
    finite = np.where(np.isinf(x), 0.0, x)
    slope = q * _softplus(-finite) - _softplus(finite)  # log sigmoid(-x) - q log sigmoid(x)
    slope = np.where(np.isinf(x), np.where(x > 0, -np.inf, _limit(q)), slope)
    return {"input": d_input.astype(input.dtype),
            "target": _times(g, w * slope).astype(target.dtype)}
