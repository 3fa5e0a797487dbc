"""Built-in NumPy candidate, probabilistic family: kl_div, poisson_nll_loss, gaussian_nll_loss.

Registered in ``numpy_losses`` (``--impl=numpy``) and following its protocol and numeric
policy: torch's signatures (legacy ``size_average`` / ``reduce`` where torch has them), float
inputs converted exactly to float64, all arithmetic in float64, each result rounded once to
its argument's dtype, ``<loss>_vjp`` gradients, ``ValueError`` for invalid arguments. Input and
target must have the same shape. The semantics are those of conformance/specs/probabilistic.py:
a zero target probability contributes 0 to kl_div whatever the input; full adds the Stirling
term where y > 1; gaussian_nll_loss clamps var to eps and passes var's gradient through.
"""

import math

import numpy as np

from .numpy_reduction import REDUCTIONS, resolve_reduction as _reduction

__all__ = ["kl_div", "kl_div_vjp", "poisson_nll_loss", "poisson_nll_loss_vjp",
           "gaussian_nll_loss", "gaussian_nll_loss_vjp"]


_ieee = np.errstate(all="ignore")  # inf and nan are the intended IEEE results


def _floats(fn, **arrays):
    """The arrays as float64; ValueError for integer or boolean dtypes."""
    out = []
    for name, array in arrays.items():
        if array.dtype.kind in "biu":
            raise ValueError(f"{fn}: {name} must be floating, got {array.dtype}")
        out.append(np.asarray(array, dtype=np.float64))
    return out


def _pair(fn, input, target):
    x, y = _floats(fn, input=input, target=target)
    if y.shape != x.shape:
        raise ValueError(f"{fn}: target shape {y.shape} does not match input shape {x.shape}")
    return x, y


def _divisor(reduction, shape):
    if reduction == "mean":
        return float(np.prod(shape))
    if reduction == "batchmean":
        return float(shape[0]) if len(shape) else 1.0
    return 1.0


def _reduce(terms, reduction):
    if reduction == "none":
        return terms
    total = terms.sum()
    return total if reduction == "sum" else total / _divisor(reduction, terms.shape)


def _upstream(fn, grad_output, shape, reduction):
    """g / divisor broadcast to the input's shape."""
    g = np.asarray(grad_output, dtype=np.float64)
    expected = shape if reduction == "none" else ()
    if g.shape != expected:
        raise ValueError(f"{fn}_vjp: grad_output has shape {g.shape}, expected {expected}")
    return np.broadcast_to(g / _divisor(reduction, shape), shape)


# --- kl_div --------------------------------------------------------------------------------------

def _kl(x, t, log_target):
    """(terms, d/dx, d/dt): a zero target probability contributes exactly 0."""
    if log_target:
        zero = np.isneginf(t)
        e = np.exp(t)
        # exp(t) > 0 for finite t, however small: against x = -inf the term is +inf
        infinite = np.isneginf(x) & ~zero
        return (np.where(zero, 0.0, np.where(infinite, np.inf, e * (t - x))), -e,
                np.where(zero, 0.0, np.where(infinite, np.inf, e * (t - x + 1))))
    zero = t == 0
    log_t = np.log(np.where(zero, 1.0, t))
    return (np.where(zero, 0.0, t * (log_t - x)), -t,
            np.where(zero, np.nan, log_t + 1 - x))  # t log t has no slope at 0


@_ieee
def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Kullback-Leibler divergence, as ``F.kl_div``: t (log t - x) (exp(t) (t - x) with
    log_target); reductions none, sum, mean (over elements), batchmean (over input.shape[0])."""
    reduction = _reduction(size_average, reduce, reduction, REDUCTIONS + ("batchmean",))
    x, t = _pair("kl_div", input, target)
    terms, _, _ = _kl(x, t, log_target)
    return np.asarray(_reduce(terms, reduction)).astype(input.dtype)


@_ieee
def kl_div_vjp(grad_output, input, target, size_average=None, reduce=None, reduction="mean",
               log_target=False):
    """Gradients of ``kl_div`` for input and target."""
    reduction = _reduction(size_average, reduce, reduction, REDUCTIONS + ("batchmean",))
    x, t = _pair("kl_div", input, target)
    _, d_x, d_t = _kl(x, t, log_target)
    g = _upstream("kl_div", grad_output, x.shape, reduction)
    return {"input": (g * d_x).astype(input.dtype), "target": (g * d_t).astype(target.dtype)}


# --- poisson_nll_loss ----------------------------------------------------------------------------

def _poisson(x, y, log_input, full, eps):
    """(terms, d/dx, d/dy)."""
    if log_input:
        e = np.exp(x)
        terms, d_x, d_y = e - y * x, e - y, -x
    else:
        z = x + eps
        log_z = np.log(z)
        terms, d_x, d_y = x - y * log_z, 1 - y / z, -log_z
    if full:
        on = y > 1
        ys = np.where(on, y, 2.0)
        log_y = np.log(ys)
        terms = terms + np.where(on, ys * log_y - ys + 0.5 * np.log(2 * math.pi * ys), 0.0)
        d_y = d_y + np.where(on, log_y + 0.5 / ys, 0.0)
    return terms, d_x, d_y


@_ieee
def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8,
                     reduce=None, reduction="mean"):
    """Poisson negative log likelihood, as ``F.poisson_nll_loss``: exp(x) - y x (log_input)
    or x - y log(x + eps), plus the Stirling term where y > 1 with full."""
    reduction = _reduction(size_average, reduce, reduction)
    x, y = _pair("poisson_nll_loss", input, target)
    terms, _, _ = _poisson(x, y, log_input, full, float(eps))
    return np.asarray(_reduce(terms, reduction)).astype(input.dtype)


@_ieee
def poisson_nll_loss_vjp(grad_output, input, target, log_input=True, full=False,
                         size_average=None, eps=1e-8, reduce=None, reduction="mean"):
    """Gradients of ``poisson_nll_loss`` for input and target."""
    reduction = _reduction(size_average, reduce, reduction)
    x, y = _pair("poisson_nll_loss", input, target)
    _, d_x, d_y = _poisson(x, y, log_input, full, float(eps))
    g = _upstream("poisson_nll_loss", grad_output, x.shape, reduction)
    # exp(x) beyond float64's range is still a finite number: a zero upstream gives 0, not nan;
    # without log_input the slope 1 - y / (x + eps) is infinite at x + eps = 0: 0 inf is nan
    overflowed = np.isinf(d_x) & bool(log_input)
    g_d_x = np.where((g == 0) & overflowed, g * np.sign(d_x), g * d_x)
    return {"input": g_d_x.astype(input.dtype), "target": (g * d_y).astype(target.dtype)}


# --- gaussian_nll_loss ---------------------------------------------------------------------------

def _var_axis(input_shape, var_shape):
    """None (same shape) or the axis var broadcasts along; ValueError for any other shape."""
    if var_shape == input_shape:
        return None
    if var_shape == input_shape[:-1]:
        return len(input_shape) - 1
    if len(var_shape) == len(input_shape):
        mismatched = [i for i, (a, b) in enumerate(zip(input_shape, var_shape)) if a != b]
        if len(mismatched) == 1 and var_shape[mismatched[0]] == 1:
            return mismatched[0]
    raise ValueError(f"gaussian_nll_loss: var of shape {var_shape} is of incorrect size for "
                     f"input {input_shape}")


def _gaussian_parts(input, target, var, eps, reduction):
    """x, y, max(var, eps) broadcast to x's shape, and var's broadcast axis."""
    reduction = _reduction(None, None, reduction)
    x, y = _pair("gaussian_nll_loss", input, target)
    if isinstance(var, float):
        if var < 0:
            raise ValueError("gaussian_nll_loss: var has a negative entry")
        v, axis = np.full(x.shape, var), None
    else:
        (v,) = _floats("gaussian_nll_loss", var=var)
        if np.any(v < 0):
            raise ValueError("gaussian_nll_loss: var has negative entries")
        axis = _var_axis(x.shape, v.shape)
        if axis is not None and v.ndim < x.ndim:
            v = np.expand_dims(v, axis)
        v = np.broadcast_to(v, x.shape)
    return x, y, np.maximum(v, float(eps)), axis, reduction


@_ieee
def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """Gaussian negative log likelihood, as ``F.gaussian_nll_loss``: (log v + (x - y)^2 / v) / 2
    with v = max(var, eps), plus log(2 pi) / 2 with full."""
    x, y, v, _, reduction = _gaussian_parts(input, target, var, eps, reduction)
    r = x - y
    terms = 0.5 * (np.log(v) + r * r / v)
    if full:
        terms = terms + 0.5 * math.log(2 * math.pi)
    return np.asarray(_reduce(terms, reduction)).astype(input.dtype)


@_ieee
def gaussian_nll_loss_vjp(grad_output, input, target, var, full=False, eps=1e-6,
                          reduction="mean"):
    """Gradients of ``gaussian_nll_loss`` for input, target and var (an array var only); var's
    gradient is taken at max(var, eps), below eps too, as torch's clamp passes it through."""
    x, y, v, axis, reduction = _gaussian_parts(input, target, var, eps, reduction)
    g = _upstream("gaussian_nll_loss", grad_output, x.shape, reduction)
    r = x - y
    d_x = g * r / v
    grads = {"input": d_x.astype(input.dtype), "target": (-d_x).astype(target.dtype)}
    if not isinstance(var, float):
        d_v = g * 0.5 * (1 - r * r / v) / v
        if axis is not None:
            d_v = d_v.sum(axis=axis)
        grads["var"] = d_v.reshape(var.shape).astype(var.dtype)
    return grads
