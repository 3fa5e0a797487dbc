"""Built-in NumPy candidate, margin family: margin_ranking_loss, hinge_embedding_loss and
multi_margin_loss.

Registered in ``numpy_losses`` (``--impl=numpy``) and following its protocol and numeric
policy: torch's signatures (legacy ``size_average`` / ``reduce`` included), float inputs of any
dtype converted exactly to float64, all arithmetic in float64, each result rounded once to its
argument's dtype, ``<loss>_vjp`` gradients, ``ValueError`` for invalid arguments. The semantics
are torch 2.13's (see conformance/specs/margin.py): margin_ranking broadcasts tensors of the
same rank; hinge_embedding keeps x where y != -1 and adds the hinge where y != 1; multi_margin
weights a sample by w[y]. At a hinge's kink (exactly 0) the gradient is the active side's for
the first two (torch's clamp_min) and 0 for multi_margin (torch's z > 0).
"""

import math

import numpy as np

from .numpy_reduction import resolve_reduction as _reduction

__all__ = ["margin_ranking_loss", "margin_ranking_loss_vjp", "hinge_embedding_loss",
           "hinge_embedding_loss_vjp", "multi_margin_loss", "multi_margin_loss_vjp"]

_ieee = np.errstate(all="ignore")  # inf and nan are the intended IEEE results


def _reduce(terms, reduction):
    """float64 terms reduced; the mean of nothing is nan."""
    if reduction == "none":
        return terms
    total = terms.sum()
    if reduction == "sum":
        return total
    return total / terms.size if terms.size else np.float64(np.nan)


def _upstream(fn, grad_output, shape, reduction):
    """The float64 upstream gradient over the mean's divisor, broadcast to ``shape``."""
    g = np.asarray(grad_output, dtype=np.float64)
    expected = shape if reduction == "none" else ()
    if g.shape != tuple(expected):
        raise ValueError(f"{fn}_vjp: grad_output has shape {g.shape}, expected {expected}")
    if reduction == "mean":
        g = g / max(math.prod(shape), 1)
    return np.broadcast_to(g, shape)


def _sum_to(values, shape):
    """A broadcast-shaped gradient summed back to an argument's shape."""
    for axis, n in enumerate(shape):
        if n == 1 and values.shape[axis] != 1:
            values = values.sum(axis=axis, keepdims=True)
    return values.reshape(shape)


# --------------------------------------------------------------------------
# margin_ranking_loss
# --------------------------------------------------------------------------

def _ranking_parts(input1, input2, target, margin):
    """float64 broadcast x1, x2, y, the hinge z = m - y (x1 - x2)."""
    if not (input1.ndim == input2.ndim == target.ndim):
        raise ValueError("margin_ranking_loss: input1, input2 and target must have the same "
                         f"number of dimensions, got {input1.shape}, {input2.shape}, "
                         f"{target.shape}")
    try:
        x1, x2, y = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64)
                                          for a in (input1, input2, target)))
    except ValueError:
        raise ValueError(f"margin_ranking_loss: shapes {input1.shape}, {input2.shape} and "
                         f"{target.shape} do not broadcast") from None
    return x1, x2, y, float(margin) - y * (x1 - x2)


@_ieee
def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                        reduction="mean"):
    """Ranking hinge, as ``F.margin_ranking_loss``: max(0, margin - y (x1 - x2))."""
    reduction = _reduction(size_average, reduce, reduction)
    *_, z = _ranking_parts(input1, input2, target, margin)
    return np.asarray(_reduce(np.maximum(z, 0.0), reduction)).astype(input1.dtype)


@_ieee
def margin_ranking_loss_vjp(grad_output, input1, input2, target, margin=0, size_average=None,
                            reduce=None, reduction="mean"):
    """Gradients of ``margin_ranking_loss`` for input1, input2 and target."""
    reduction = _reduction(size_average, reduce, reduction)
    x1, x2, y, z = _ranking_parts(input1, input2, target, margin)
    g = _upstream("margin_ranking_loss", grad_output, z.shape, reduction) * (z >= 0)
    return {"input1": _sum_to(-g * y, input1.shape).astype(input1.dtype),
            "input2": _sum_to(g * y, input2.shape).astype(input2.dtype),
            "target": _sum_to(-g * (x1 - x2), target.shape).astype(target.dtype)}


# --------------------------------------------------------------------------
# hinge_embedding_loss
# --------------------------------------------------------------------------

def _hinge_parts(input, target, margin):
    """float64 x, y (broadcast) and the hinge m - x."""
    try:
        x, y = np.broadcast_arrays(np.asarray(input, dtype=np.float64),
                                   np.asarray(target, dtype=np.float64))
    except ValueError:
        raise ValueError(f"hinge_embedding_loss: shapes {input.shape} and {target.shape} do "
                         "not broadcast") from None
    return x, y, float(margin) - x


@_ieee
def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None,
                         reduction="mean"):
    """Hinge embedding loss, as ``F.hinge_embedding_loss``: x where y != -1 plus
    max(0, margin - x) where y != 1."""
    reduction = _reduction(size_average, reduce, reduction)
    x, y, z = _hinge_parts(input, target, margin)
    terms = np.where(y != -1, x, 0.0) + np.where(y != 1, np.maximum(z, 0.0), 0.0)
    # x + max(0, m - x) (a target other than +-1) is max(x, m): exact, without m - x.
    terms = np.where((y != 1) & (y != -1), np.maximum(x, float(margin)), terms)
    return np.asarray(_reduce(terms, reduction)).astype(input.dtype)


@_ieee
def hinge_embedding_loss_vjp(grad_output, input, target, margin=1.0, size_average=None,
                             reduce=None, reduction="mean"):
    """Gradient of ``hinge_embedding_loss`` for input (the target is not differentiated)."""
    reduction = _reduction(size_average, reduce, reduction)
    x, y, z = _hinge_parts(input, target, margin)
    g = _upstream("hinge_embedding_loss", grad_output, x.shape, reduction)
    slope = (y != -1).astype(np.float64) - ((y != 1) & (z >= 0))
    return {"input": _sum_to(g * slope, input.shape).astype(input.dtype)}


# --------------------------------------------------------------------------
# multi_margin_loss
# --------------------------------------------------------------------------

def _multi_parts(input, target, p, margin, weight):
    """Validated float64 rows x (N, C), targets t (N,), hinges z, active mask, w[t] (N, 1)."""
    fn = "multi_margin_loss"
    if p not in (1, 2):
        raise ValueError(f"{fn}: only p == 1 and p == 2 are supported, got {p}")
    if input.dtype.kind in "biu":
        raise ValueError(f"{fn}: input must be floating, got {input.dtype}")
    if input.ndim not in (1, 2) or input.shape[-1] == 0:
        raise ValueError(f"{fn}: input must be (C,) or (N, C) with C >= 1, got {input.shape}")
    if target.dtype.kind not in "iu":
        raise ValueError(f"{fn}: target must hold integer class indices, got {target.dtype}")
    batch = input.shape[0] if input.ndim == 2 else 1
    allowed = [(batch,)] if input.ndim == 2 else [(), (1,)]
    if target.shape not in allowed:
        raise ValueError(f"{fn}: target shape {target.shape} for input {input.shape}")
    classes = input.shape[-1]
    t = np.asarray(target, dtype=np.int64).reshape(-1)
    if t.size and (t.min() < 0 or t.max() >= classes):
        raise ValueError(f"{fn}: target out of range [0, {classes})")
    if weight is None:
        w = np.ones(classes)
    elif weight.ndim != 1 or weight.shape[0] != classes:
        raise ValueError(f"{fn}: weight must have shape ({classes},), got {weight.shape}")
    else:
        w = np.asarray(weight, dtype=np.float64)
    x = np.asarray(input, dtype=np.float64).reshape(batch, classes)
    rows = np.arange(batch)
    z = float(margin) - x[rows, t][:, None] + x
    active = z > 0
    active[rows, t] = False
    return x, t, z, active, w[t][:, None]


@_ieee
def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None,
                      reduce=None, reduction="mean"):
    """Multi-class hinge loss, as ``F.multi_margin_loss``: per sample
    sum_{i != y} w[y] max(0, margin - x[y] + x[i])^p / C."""
    reduction = _reduction(size_average, reduce, reduction)
    x, _, z, active, w = _multi_parts(input, target, p, margin, weight)
    hinge = np.where(active, z if p == 1 else z * z, 0.0)
    per_sample = (w * hinge).sum(axis=1) / x.shape[1]
    if reduction == "none":
        return per_sample.reshape(target.shape).astype(input.dtype)
    return np.asarray(_reduce(per_sample, reduction)).astype(input.dtype)


@_ieee
def multi_margin_loss_vjp(grad_output, input, target, p=1, margin=1.0, weight=None,
                          size_average=None, reduce=None, reduction="mean"):
    """Gradient of ``multi_margin_loss`` for input (torch differentiates neither target nor
    weight)."""
    reduction = _reduction(size_average, reduce, reduction)
    x, t, z, active, w = _multi_parts(input, target, p, margin, weight)
    batch, classes = x.shape
    g = np.asarray(grad_output, dtype=np.float64)
    expected = target.shape if reduction == "none" else ()
    if g.shape != expected:
        raise ValueError(f"multi_margin_loss_vjp: grad_output has shape {g.shape}, expected "
                         f"{expected}")
    if reduction == "mean":
        g = g / max(batch, 1)
    g = np.broadcast_to(g.reshape(-1) if g.ndim else g, (batch,)).reshape(-1, 1)
    slope = np.where(active, 1.0 if p == 1 else 2 * z, 0.0)
    grad = g * w * slope / classes
    grad[np.arange(batch), t] = -grad.sum(axis=1)
    return {"input": grad.reshape(input.shape).astype(input.dtype)}
