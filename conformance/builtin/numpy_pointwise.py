"""Built-in NumPy candidate, pointwise family: l1, mse, huber, smooth_l1 and soft_margin losses.

Registered in ``numpy_losses`` (``--impl=numpy``) and following its protocol and numeric
policy: torch's signatures (legacy ``size_average`` / ``reduce`` where torch has them), float
inputs of any dtype converted exactly to float64, all arithmetic in float64, each result
rounded once to its argument's dtype, ``<loss>_vjp`` gradients, ``ValueError`` for invalid
arguments. Input and target must have the same shape (torch's documented contract; torch
broadcasts others with a warning). ``weight`` has the input's shape; 'mean' with a weight is
sum(w t) / sum(w) for l1/mse and mean(w t) for huber, as in torch.
"""

import math

import numpy as np

from .numpy_reduction import product_over, resolve_reduction as _reduction

_ieee = np.errstate(all="ignore")  # inf and nan are the intended IEEE results


def _floats(fn, **arrays):
    """The arrays as float64 (None passes); ValueError for integer or boolean dtypes."""
    out = []
    for name, array in arrays.items():
        if array is None:
            out.append(None)
            continue
        if array.dtype.kind in "biu":
            raise ValueError(f"{fn}: {name} must be floating, got {array.dtype}")
        out.append(np.asarray(array, dtype=np.float64))
    return out


def _parts(fn, input, target, weight=None):
    """Validated float64 x, y and weight (or None)."""
    x, y, w = _floats(fn, input=input, target=target, weight=weight)
    if y.shape != x.shape:
        raise ValueError(f"{fn}: target shape {y.shape} does not match input shape {x.shape}")
    if w is not None and w.shape != x.shape:
        raise ValueError(f"{fn}: weight shape {w.shape} does not match input shape {x.shape}")
    return x, y, w


def _check_threshold(fn, name, value, allow_zero):
    value = float(value)
    if not (value > 0 or (allow_zero and value == 0)):
        raise ValueError(f"{fn}: {name} must be {'>=' if allow_zero else '>'} 0, got {value}")
    return value


def _divisor(fn, x, w, reduction):
    """What 'mean' divides by: sum(w) for l1/mse with a weight, else the element count."""
    if reduction != "mean":
        return 1.0
    if w is not None and fn in ("l1_loss", "mse_loss"):
        return math.fsum(w.reshape(-1))
    return float(x.size)


def _weighted_mean(terms, w) -> float:
    """sum(w terms) / sum(w) (l1/mse's 'mean' with a weight), the weights first scaled by a
    power of two that brings the largest to [1/2, 1) where it is smaller: scaling up loses no
    digit and leaves the mean as it is, where products of subnormal weights would lose theirs
    (a single weight 5e-324 times 2422.29 rounds to 2422 times it)."""
    largest = float(np.max(np.abs(w), initial=0.0))
    if 0 < largest < 0.5:
        w = np.ldexp(w, -math.frexp(largest)[1])
    with np.errstate(all="ignore"):  # 0 / 0 (no element, zero weights) is the IEEE nan
        return np.sum(terms * w) / np.float64(math.fsum(w.reshape(-1)))


def _reduce(fn, terms, x, w, reduction):
    """Weight and reduce float64 terms; the mean of nothing is nan."""
    if reduction == "mean" and w is not None and fn in ("l1_loss", "mse_loss"):
        return _weighted_mean(terms, w)
    if w is not None:
        terms = terms * w
    if reduction == "none":
        return terms
    total = terms.sum()
    return total if reduction == "sum" else total / _divisor(fn, x, w, reduction)


def _vjp(fn, grad_output, input, target, x, w, weight, reduction, terms, slope,
         with_target=True):
    """Gradients from the unweighted terms and d term / d input (float64; or a tuple of
    factors whose product it is), by argument: each a product of the upstream, the weight and
    the slope over the mean's divisor (``product_over``: no overflow on the way)."""
    g = np.asarray(grad_output, dtype=np.float64)
    expected = x.shape if reduction == "none" else ()
    if g.shape != expected:
        raise ValueError(f"{fn}_vjp: grad_output has shape {g.shape}, expected {expected}")
    divisor = _divisor(fn, x, w, reduction)
    upstream = np.broadcast_to(g, x.shape)
    slopes = slope if isinstance(slope, tuple) else (slope,)
    d_input = product_over((upstream,) + (() if w is None else (w,)) + slopes, divisor)
    grads = {"input": d_input.astype(input.dtype)}
    if with_target:
        grads["target"] = (-d_input).astype(target.dtype)
    if w is not None:
        if reduction == "mean" and fn in ("l1_loss", "mse_loss"):
            terms = terms - _weighted_mean(terms, w)  # d/dw of sum(wt)/sum(w)
        grads["weight"] = product_over((upstream, terms), divisor).astype(weight.dtype)
    return grads


def _residual(x, y):
    """Factors whose product is x - y, the second correctly rounded: x/2 - y/2 and 2 where x
    or y is at least 2^1022 (whose difference may overflow where a gradient's product with
    it does not), x - y and 1 elsewhere."""
    huge = (np.abs(x) >= 2.0 ** 1022) | (np.abs(y) >= 2.0 ** 1022)
    return np.where(huge, 2.0, 1.0), np.where(huge, x / 2 - y / 2, x - y)


# --------------------------------------------------------------------------
# The losses: elementwise terms and their slopes
# --------------------------------------------------------------------------

def _l1(x, y):
    r = x - y
    return np.abs(r), np.sign(r)  # torch's gradient at r = 0 is 0


def _mse(x, y):
    r = x - y
    return r * r, (2.0,) + _residual(x, y)


def _huber(x, y, delta):
    r = x - y
    z = np.abs(r)
    return (np.where(z < delta, 0.5 * z * z, delta * (z - 0.5 * delta)),
            np.clip(r, -delta, delta))


def _smooth_l1(x, y, beta):
    if beta == 0:
        return _l1(x, y)  # torch: beta = 0 is l1_loss
    r = x - y
    z = np.abs(r)
    return np.where(z < beta, 0.5 * z * z / beta, z - 0.5 * beta), np.clip(r / beta, -1, 1)


def _soft_margin(x, y):
    t = -y * x
    e = np.exp(-np.abs(t))
    sigmoid_t = np.where(t >= 0, 1.0, e) / (1.0 + e)
    return np.logaddexp(0.0, t), -y * sigmoid_t  # log(1 + exp(t)), stable for every t


@_ieee
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error, as ``F.l1_loss``: |x - y| elementwise (times weight)."""
    reduction = _reduction(size_average, reduce, reduction)
    x, y, w = _parts("l1_loss", input, target, weight)
    terms, _ = _l1(x, y)
    return np.asarray(_reduce("l1_loss", terms, x, w, reduction)).astype(input.dtype)


@_ieee
def l1_loss_vjp(grad_output, input, target, size_average=None, reduce=None, reduction="mean",
                weight=None):
    """Gradients of ``l1_loss`` for input, target (and weight)."""
    reduction = _reduction(size_average, reduce, reduction)
    x, y, w = _parts("l1_loss", input, target, weight)
    return _vjp("l1_loss", grad_output, input, target, x, w, weight, reduction, *_l1(x, y))


@_ieee
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error, as ``F.mse_loss``: (x - y)^2 elementwise (times weight)."""
    reduction = _reduction(size_average, reduce, reduction)
    x, y, w = _parts("mse_loss", input, target, weight)
    terms, _ = _mse(x, y)
    return np.asarray(_reduce("mse_loss", terms, x, w, reduction)).astype(input.dtype)


@_ieee
def mse_loss_vjp(grad_output, input, target, size_average=None, reduce=None, reduction="mean",
                 weight=None):
    """Gradients of ``mse_loss`` for input, target (and weight)."""
    reduction = _reduction(size_average, reduce, reduction)
    x, y, w = _parts("mse_loss", input, target, weight)
    return _vjp("mse_loss", grad_output, input, target, x, w, weight, reduction, *_mse(x, y))


@_ieee
def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """Huber loss, as ``F.huber_loss``: 0.5 r^2 for |r| < delta, else delta (|r| - delta/2)."""
    reduction = _reduction(None, None, reduction)
    delta = _check_threshold("huber_loss", "delta", delta, allow_zero=False)
    x, y, w = _parts("huber_loss", input, target, weight)
    terms, _ = _huber(x, y, delta)
    return np.asarray(_reduce("huber_loss", terms, x, w, reduction)).astype(input.dtype)


@_ieee
def huber_loss_vjp(grad_output, input, target, reduction="mean", delta=1.0, weight=None):
    """Gradients of ``huber_loss`` for input, target (and weight)."""
    reduction = _reduction(None, None, reduction)
    delta = _check_threshold("huber_loss", "delta", delta, allow_zero=False)
    x, y, w = _parts("huber_loss", input, target, weight)
    return _vjp("huber_loss", grad_output, input, target, x, w, weight, reduction,
                *_huber(x, y, delta))


@_ieee
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """Smooth L1 loss, as ``F.smooth_l1_loss``: 0.5 r^2 / beta for |r| < beta, else
    |r| - beta / 2; beta = 0 is l1_loss."""
    reduction = _reduction(size_average, reduce, reduction)
    beta = _check_threshold("smooth_l1_loss", "beta", beta, allow_zero=True)
    x, y, _ = _parts("smooth_l1_loss", input, target)
    terms, _ = _smooth_l1(x, y, beta)
    return np.asarray(_reduce("smooth_l1_loss", terms, x, None, reduction)).astype(input.dtype)


@_ieee
def smooth_l1_loss_vjp(grad_output, input, target, size_average=None, reduce=None,
                       reduction="mean", beta=1.0):
    """Gradients of ``smooth_l1_loss`` for input and target."""
    reduction = _reduction(size_average, reduce, reduction)
    beta = _check_threshold("smooth_l1_loss", "beta", beta, allow_zero=True)
    x, y, _ = _parts("smooth_l1_loss", input, target)
    return _vjp("smooth_l1_loss", grad_output, input, target, x, None, None, reduction,
                *_smooth_l1(x, y, beta))


@_ieee
def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Two-class logistic loss, as ``F.soft_margin_loss``: log(1 + exp(-y x)) for any real y."""
    reduction = _reduction(size_average, reduce, reduction)
    x, y, _ = _parts("soft_margin_loss", input, target)
    terms, _ = _soft_margin(x, y)
    return np.asarray(_reduce("soft_margin_loss", terms, x, None, reduction)).astype(input.dtype)


@_ieee
def soft_margin_loss_vjp(grad_output, input, target, size_average=None, reduce=None,
                         reduction="mean"):
    """Gradient of ``soft_margin_loss`` for input (torch does not differentiate the target)."""
    reduction = _reduction(size_average, reduce, reduction)
    x, y, _ = _parts("soft_margin_loss", input, target)
    return _vjp("soft_margin_loss", grad_output, input, target, x, None, None, reduction,
                *_soft_margin(x, y), with_target=False)
