"""Built-in NumPy candidate, embedding family: cosine_embedding_loss, triplet_margin_loss,
triplet_margin_with_distance_loss.

Registered in ``numpy_losses`` (``--impl=numpy``) with its protocol and numeric policy: torch's
signatures, float inputs converted exactly to float64, all arithmetic in float64 (norms scaled
by the row's largest element where squares could overflow), each result rounded once to its
argument's dtype, ``<loss>_vjp`` gradients, ``ValueError`` for invalid arguments. A user
``distance_function`` is called on the arrays as given; its gradients come from its ``vjp``
attribute, ``vjp(grad, a, b) -> (d a, d b)`` (numpy has no autodiff).
"""

import math

import numpy as np

from .numpy_reduction import resolve_reduction as _reduction

__all__ = ["cosine_embedding_loss", "cosine_embedding_loss_vjp", "triplet_margin_loss",
           "triplet_margin_loss_vjp", "triplet_margin_with_distance_loss",
           "triplet_margin_with_distance_loss_vjp"]

EPS = float.fromhex("0x1.197998p-40")  # torch's EPSILON: 1e-12 as a float32
_ieee = np.errstate(all="ignore")


def _reduce(per_row, reduction):
    if reduction == "none":
        return per_row
    if reduction == "sum":
        return per_row.sum()
    return per_row.mean() if per_row.size else np.float64(np.nan)


def _upstream(fn, grad_output, reduction, rows, batch_shape):
    """The upstream gradient per row (float64, shape (rows,)), divided by N for 'mean'."""
    g = np.asarray(grad_output, dtype=np.float64)
    expected = batch_shape if reduction == "none" else ()
    if g.shape != expected:
        raise ValueError(f"{fn}_vjp: grad_output has shape {g.shape}, expected {expected}")
    if reduction == "mean":
        g = g / max(rows, 1)
    return np.broadcast_to(g.reshape(-1) if g.ndim else g, (rows,))


def _row_scale(x):
    """Per row, the largest |element| where squares could overflow float64, else 1."""
    top = np.abs(x).max(-1, initial=0.0)
    return np.where(top > 1e100, top, 1.0)


# --- cosine_embedding_loss -----------------------------------------------------------------------

def _cosine_parts(input1, input2, target):
    fn = "cosine_embedding_loss"
    if input1.ndim not in (1, 2) or input2.shape != input1.shape:
        raise ValueError(f"{fn}: inputs must both be (N, D) or (D,), got {input1.shape} and "
                         f"{input2.shape}")
    if target.ndim != input1.ndim - 1 or (target.ndim and target.shape[0] != input1.shape[0]):
        raise ValueError(f"{fn}: target shape {target.shape} does not fit inputs {input1.shape}")
    x1, x2 = (np.atleast_2d(np.asarray(v, np.float64)) for v in (input1, input2))
    y = np.asarray(target, np.float64).reshape(-1)
    s1, s2 = _row_scale(x1)[:, None], _row_scale(x2)[:, None]
    u1, u2 = x1 / s1, x2 / s2
    a = (u1 * u1).sum(-1) + EPS / s1[:, 0] ** 2
    b = (u2 * u2).sum(-1) + EPS / s2[:, 0] ** 2
    p = (u1 * u2).sum(-1)
    root = np.sqrt(a * b)
    return u1, u2, s1, s2, a, b, p, root, p / root, y


@_ieee
def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                          reduction="mean"):
    """1 - cos where y = 1, max(0, cos - margin) where y = -1 (0 for other y), cos with
    EPS = 1e-12 (float32) added to both squared norms, as ``F.cosine_embedding_loss``."""
    reduction = _reduction(size_average, reduce, reduction)
    *_, cos, y = _cosine_parts(input1, input2, target)
    per_row = np.where(y == 1, 1 - cos, np.where(y == -1, np.maximum(cos - margin, 0), 0.0))
    out = _reduce(per_row.reshape(input1.shape[:-1]), reduction)
    return np.asarray(out).astype(input1.dtype)


@_ieee
def cosine_embedding_loss_vjp(grad_output, input1, input2, target, margin=0,
                              size_average=None, reduce=None, reduction="mean"):
    """Gradients of ``cosine_embedding_loss`` for input1 and input2."""
    reduction = _reduction(size_average, reduce, reduction)
    u1, u2, s1, s2, a, b, p, root, cos, y = _cosine_parts(input1, input2, target)
    g = _upstream("cosine_embedding_loss", grad_output, reduction, u1.shape[0],
                  input1.shape[:-1])
    factor = np.where(y == 1, -1.0, np.where((y == -1) & (cos - margin > 0), 1.0, 0.0))
    scale = (g * factor / root)[:, None]
    d1 = scale * (u2 - (p / a)[:, None] * u1) / s1
    d2 = scale * (u1 - (p / b)[:, None] * u2) / s2
    return {"input1": d1.reshape(input1.shape).astype(input1.dtype),
            "input2": d2.reshape(input2.shape).astype(input2.dtype)}


# --- triplet losses ------------------------------------------------------------------------------

def _pairwise(u, v, p, eps):
    """(||u - v + eps||_p per row, its derivative per element with respect to u)."""
    w = u - v + eps
    z = np.abs(w)
    if p == math.inf:
        d = z.max(-1, initial=0.0)
        top = (z == d[:, None]) & (z.shape[-1] > 0)
        return d, np.sign(w) * top / np.maximum(top.sum(-1, keepdims=True), 1)
    if p == 1:
        return z.sum(-1), np.sign(w)
    m = z.max(-1, initial=0.0)
    m = np.where(m > 0, m, 1.0)[:, None]
    d = m[:, 0] * ((z / m) ** p).sum(-1) ** (1 / p)
    safe = np.where(d > 0, d, 1.0)[:, None]
    return d, np.where(d[:, None] > 0, np.sign(w) * (z / safe) ** (p - 1), 0.0)


def _validate(fn, anchor, positive, negative, margin):
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise ValueError(f"{fn}: anchor, positive and negative must have the same number of "
                         f"dimensions, got {anchor.ndim}, {positive.ndim}, {negative.ndim}")
    if not (anchor.shape == positive.shape == negative.shape) or anchor.ndim not in (1, 2):
        raise ValueError(f"{fn}: expected (N, D) or (D,) arrays of one shape, got "
                         f"{anchor.shape}, {positive.shape}, {negative.shape}")
    if not margin > 0:
        raise ValueError(f"{fn}: margin must be greater than 0, got {margin}")
    return [np.atleast_2d(np.asarray(x, np.float64)) for x in (anchor, positive, negative)]


class _Pairwise:
    """pairwise_distance as a distance object: float64 values and derivatives."""

    def __init__(self, p, eps):
        self.p, self.eps = p, eps

    def parts(self, u, v):
        d, slope = _pairwise(u, v, self.p, self.eps)
        return d, slope, -slope


class _User:
    """A user distance function: called on the dtype's arrays; gradients from its vjp."""

    def __init__(self, function, dtype):
        self.function, self.dtype = function, dtype

    def parts(self, u, v):
        a, b = u.astype(self.dtype), v.astype(self.dtype)
        d = np.asarray(self.function(a, b), np.float64)
        vjp = getattr(self.function, "vjp", None)
        if vjp is None:
            return d, None, None
        da, db = vjp(np.ones(d.shape), a, b)
        return d, np.asarray(da, np.float64), np.asarray(db, np.float64)


def _triplet(distance, a, p_, n_, margin, swap):
    """Per row: the loss, and (d loss / d anchor, positive, negative) per unit upstream."""
    d_pos, pa, pp = distance.parts(a, p_)
    d_neg, na, nn = distance.parts(a, n_)
    grads = None
    if pa is not None:
        grads = [pa - na, pp, -nn]
    if swap:
        d_swap, sp, sn = distance.parts(p_, n_)
        take_swap = np.where(d_swap < d_neg, 1.0, np.where(d_swap == d_neg, 0.5, 0.0))[:, None]
        d_neg = np.minimum(d_neg, d_swap)
        if grads is not None:
            take_neg = 1 - take_swap
            grads = [pa - take_neg * na, pp - take_swap * sp, -take_neg * nn - take_swap * sn]
    h = margin + d_pos - d_neg
    active = (h > 0)[:, None]
    return np.maximum(h, 0), None if grads is None else [active * x for x in grads]


@_ieee
def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-06, swap=False,
                        size_average=None, reduce=None, reduction="mean"):
    """max(0, margin + d(a, p) - d(a, n)), d = ||a - b + eps||_p, as ``F.triplet_margin_loss``
    (swap: d(a, n) replaced by min(d(a, n), d(p, n)))."""
    reduction = _reduction(size_average, reduce, reduction)
    a, p_, n_ = _validate("triplet_margin_loss", anchor, positive, negative, margin)
    loss, _ = _triplet(_Pairwise(float(p), float(eps)), a, p_, n_, margin, swap)
    return np.asarray(_reduce(loss.reshape(anchor.shape[:-1]), reduction)).astype(anchor.dtype)


def _triplet_vjp(fn, grad_output, anchor, positive, negative, distance, margin, swap,
                 reduction):
    a, p_, n_ = _validate(fn, anchor, positive, negative, margin)
    _, grads = _triplet(distance, a, p_, n_, margin, swap)
    if grads is None:
        raise ValueError(f"{fn}_vjp: the distance function has no vjp(grad, a, b)")
    g = _upstream(fn, grad_output, reduction, a.shape[0], anchor.shape[:-1])[:, None]
    return {name: (g * grad).reshape(x.shape).astype(x.dtype)
            for name, grad, x in zip(("anchor", "positive", "negative"), grads,
                                     (anchor, positive, negative))}


@_ieee
def triplet_margin_loss_vjp(grad_output, anchor, positive, negative, margin=1.0, p=2,
                            eps=1e-06, swap=False, size_average=None, reduce=None,
                            reduction="mean"):
    """Gradients of ``triplet_margin_loss`` for anchor, positive and negative."""
    reduction = _reduction(size_average, reduce, reduction)
    return _triplet_vjp("triplet_margin_loss", grad_output, anchor, positive, negative,
                        _Pairwise(float(p), float(eps)), margin, swap, reduction)


def _distance(distance_function, dtype):
    return _Pairwise(2.0, 1e-6) if distance_function is None else _User(distance_function,
                                                                        dtype)


@_ieee
def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None,
                                      margin=1.0, swap=False, reduction="mean"):
    """The triplet loss with a user distance (default pairwise_distance, p = 2, eps = 1e-6),
    as ``F.triplet_margin_with_distance_loss``."""
    reduction = _reduction(None, None, reduction)
    a, p_, n_ = _validate("triplet_margin_with_distance_loss", anchor, positive, negative,
                          margin)
    loss, _ = _triplet(_distance(distance_function, anchor.dtype), a, p_, n_, margin, swap)
    return np.asarray(_reduce(loss.reshape(anchor.shape[:-1]), reduction)).astype(anchor.dtype)


@_ieee
def triplet_margin_with_distance_loss_vjp(grad_output, anchor, positive, negative, *,
                                          distance_function=None, margin=1.0, swap=False,
                                          reduction="mean"):
    """Gradients of ``triplet_margin_with_distance_loss`` for anchor, positive and negative."""
    reduction = _reduction(None, None, reduction)
    return _triplet_vjp("triplet_margin_with_distance_loss", grad_output, anchor, positive,
                        negative, _distance(distance_function, anchor.dtype), margin, swap,
                        reduction)
