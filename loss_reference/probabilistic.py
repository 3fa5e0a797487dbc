"""Exact references for the probabilistic family: kl_div, poisson_nll_loss, gaussian_nll_loss.

Each loss is a term per element, then reduced: 'none' keeps the terms, 'sum' adds them, 'mean'
divides that sum by the number of elements, kl_div's 'batchmean' by input.size(0) (the sum for
a 0-d input). The mean of no elements is nan (batchmean of a batch of 0 rows too).

- kl_div: t (log t - x), or exp(t) (t - x) with log_target. A zero target probability (t = 0,
  or t = -inf with log_target) contributes exactly 0 whatever the input, -inf included (the
  convention 0 log(0 / q) = 0 of the KL divergence); x = -inf against a positive target
  contributes +inf. Gradients: input -t (-exp(t)); target log t + 1 - x (nan at t = 0, where
  t log t has no derivative), or exp(t) (t - x + 1) (0 at t = -inf).
- poisson_nll_loss: exp(x) - y x (log_input), else x - y log(x + eps) with the double eps; full
  adds y log y - y + log(2 pi y) / 2 where y > 1. x + eps <= 0 follows IEEE: log 0 = -inf,
  log of a negative number nan. Gradients for input and target.
- gaussian_nll_loss: (log v' + (x - y)^2 / v') / 2 (+ log(2 pi) / 2 with full), v' =
  max(var, eps) with the double eps. var has input's shape or broadcasts along one axis (its
  gradient sums over that axis); the var gradient is d/dv' at v' for every var, also below eps
  (torch clamps under no_grad, so the clamp passes the gradient through).

Special elements (infinite inputs, x + eps <= 0, log_input exponentials beyond every format)
are decided exactly here and enter the sums as exact values; every finite term goes through
the engine (long double balls, arb fallback). Functions take float64 arrays of exactly the
values the candidate received and return certified ``Evaluated`` results.
"""

from __future__ import annotations


import flint
import numpy as np

from . import probabilistic_fast
from .ball_functions import flags, log, reciprocal
from .balls import LD, Ball, quiet
from .engine import Evaluated, evaluate, evaluate_total, filled, is_ball_backend
from .formats import Format

LOSSES = ("kl_div", "poisson_nll_loss", "gaussian_nll_loss")
# exp(x) - y x exceeds every format (float64 included) for x beyond this: decided as +inf.
EXP_HUGE = 800.0
_HALF_LOG_2PI = "0.91893853320467274178032973640561763986139747363778"


# --- constants and divisors --------------------------------------------------------------------

def half_log_2pi(B):
    """log(2 pi) / 2 as a constant ball of the backend."""
    if not is_ball_backend(B):
        return (2 * flint.arb.pi()).log() / 2
    p = B.precision
    mid = np.asarray(p.dtype(LD(_HALF_LOG_2PI)))
    return Ball(mid, np.asarray(4 * p.unit_roundoff * mid))


def divisor(reduction, shape) -> int:
    """What the reduction divides the sum by (1 for 'none' and 'sum'); 0 for an empty mean."""
    size = int(np.prod(shape))
    if reduction == "mean":
        return size
    if reduction == "batchmean":
        return shape[0] if len(shape) else 1
    return 1


# --- generic: specials outside the engine, finite terms inside it --------------------------------

def _masked(function):
    """function(B, *args) where the last argument (a 0/1 array) is 1, exact 0 elsewhere."""
    def masked(B, *args):
        return B.where(flags(args[-1]), function(B, *args[:-1]), 0.0)
    return masked


def reduce_terms(term, arrays, special, is_special, reduction, shape, fmt,
                 known=None) -> Evaluated:
    """Reduce ``term(B, *arrays)``, with the exact value ``special`` where ``is_special``.

    ``arrays`` must hold finite safe values at special positions (their terms are masked out).
    ``known``: what a faster tier certified, the elements (flattened; a special one not ok) or
    the total."""
    regular = ~is_special
    count = divisor(reduction, shape)
    if reduction in ("mean", "batchmean") and count == 0:
        return filled((), np.nan)
    masked = _masked(term)
    args = [*arrays, regular.astype(np.float64)]
    if reduction == "none":
        out = evaluate(masked, args, fmt, independent="elements", known=known)
        out.rounded[~regular] = special[~regular]
        out.exact[~regular] = special[~regular]
        return out
    specials = special[~regular]
    if specials.size and not np.all(specials == 0):
        with quiet():  # specials are 0, +-inf or nan: their sum decides
            total = float(np.sum(specials))
        return filled((), total / count)

    elements = [np.reshape(a, -1) for a in np.broadcast_arrays(*args)]
    return evaluate_total(masked, elements, fmt, known=known,
                          finish=None if count == 1 else lambda B, total: total / count)


def elementwise_gradient(derivative, arrays, special, is_special, grad_output, reduction, shape,
                         fmt, known=None) -> Evaluated:
    """g * derivative(B, *arrays) / divisor per element; where ``is_special`` the derivative is
    the exact ``special`` value (multiplied by g in IEEE arithmetic: 0, inf or nan); ``known``:
    the elements (flattened) a faster tier certified."""
    count = divisor(reduction, shape)
    if count == 0:
        return filled(shape, np.nan)
    g = np.broadcast_to(np.asarray(grad_output, np.float64), shape)
    regular = np.ones(shape, bool) if is_special is None else ~is_special
    masked = _masked(derivative)

    def scaled(B, g, *args):
        value = masked(B, *args) * g
        return value if count == 1 else value / count

    out = evaluate(scaled, [g, *arrays, regular.astype(np.float64)], fmt,
                   independent="elements", known=known)
    if not regular.all():
        with quiet():
            value = special * g / count
        out.rounded[~regular] = value[~regular]
        out.exact[~regular] = value[~regular]
    return out


# --- kl_div ------------------------------------------------------------------------------------

def _kl_parts(x, t, log_target):
    """(special term per element (nan where regular), safe x, safe t).

    Safe values replace the infinite inputs and zero targets that the engine must not see;
    the terms there are the exact special values."""
    zero_target = np.isneginf(t) if log_target else (t == 0)
    special = np.where(zero_target, 0.0, np.where(np.isneginf(x), np.inf, np.nan))
    return special, np.where(np.isneginf(x), 0.0, x), np.where(zero_target, 0.5, t)


def kl_div(input, target, reduction, log_target, fmt: Format) -> Evaluated:
    """The exact kl_div, reduced ('none', 'sum', 'mean', 'batchmean'), rounded once to fmt."""
    x, t = np.asarray(input, np.float64), np.asarray(target, np.float64)
    special, xs, ts = _kl_parts(x, t, log_target)
    if log_target:
        def term(B, x, t):
            return B.exp(t) * (t - x)
    else:
        def term(B, x, t):
            return t * (log(B, t) - x)
    is_special = ~np.isnan(special)
    known = None
    if probabilistic_fast.applies(x, fmt) and (
            reduction == "none" or not np.any(special[is_special] != 0)):  # else decided below
        known = probabilistic_fast.kl_div_loss(x, t, log_target, reduction,
                                               divisor(reduction, x.shape))
    return reduce_terms(term, [xs, ts], special, is_special, reduction, x.shape, fmt, known)


def kl_div_grad(grad_output, input, target, reduction, log_target,
                fmt: Format) -> dict[str, Evaluated]:
    """Exact gradients of ``kl_div`` for input and target, rounded to fmt."""
    x, t = np.asarray(input, np.float64), np.asarray(target, np.float64)
    special, xs, ts = _kl_parts(x, t, log_target)
    zero = special == 0
    # The input slope -t (-exp(t)) does not involve x: only zero targets are special.
    d_input_special = np.where(zero, -0.0, np.nan)
    d_target_special = np.where(zero, 0.0, np.where(np.isinf(special), np.inf, np.nan))
    if log_target:
        def d_input(B, x, t):
            return -B.exp(t)

        def d_target(B, x, t):
            return B.exp(t) * (t - x + 1)
    else:
        def d_input(B, x, t):
            return -t

        def d_target(B, x, t):
            return log(B, t) + 1 - x
    count = divisor(reduction, x.shape)
    fast = probabilistic_fast.applies(x, fmt) and count > 0
    grads = {name: elementwise_gradient(
        d, [xs, ts], s, ~np.isnan(s), grad_output, reduction, x.shape, fmt,
        probabilistic_fast.kl_div_gradient(x, t, log_target, name, grad_output, count)
        if fast else None)
             for name, d, s in (("input", d_input, d_input_special),
                                ("target", d_target, d_target_special))}
    if not log_target and zero.any():
        # t log t has no derivative at t = 0 (its slope log t + 1 tends to -inf)
        grads["target"].rounded[zero] = np.nan
        grads["target"].exact[zero] = np.nan
    return grads


# --- poisson_nll_loss --------------------------------------------------------------------------

def _poisson_parts(x, y, log_input, eps):
    """((value, is_special) for the loss, d/dx and d/dy, and a safe x).

    log_input: exp(x) - y x is +inf in every format for x > EXP_HUGE (its target slope -x
    stays regular). Otherwise x + eps <= 0 follows IEEE (log 0 = -inf, log(<0) = nan)."""
    nan = np.full(x.shape, np.nan)
    if log_input:
        huge = x > EXP_HUGE
        return ((np.where(huge, np.inf, nan), huge), (np.where(huge, np.inf, nan), huge),
                (nan, np.zeros(x.shape, bool)), np.where(huge, 0.0, x))
    with quiet():
        z = x + eps  # the IEEE sum has the exact sum's sign and is 0 only when it is
        bad, pole = z <= 0, z == 0
        log_z = np.log(np.where(bad, z, 1.0))
        loss = np.where(bad, x - y * log_z, np.nan)
        # The chain rule's 1 - y / z is finite for z < 0 (torch gives it): only z = 0 is special.
        d_x = np.where(pole, 1 - y / np.where(pole, z, 1.0), np.nan)
        d_y = np.where(bad, -log_z, np.nan)
    return (loss, bad), (d_x, pole), (d_y, bad), np.where(pole, 1.0, x)


def _stirling_parts(y, full):
    """(0/1 mask of the elements with a Stirling term (y > 1), y there and 2 elsewhere)."""
    mask = (y > 1) if full else np.zeros(y.shape, bool)
    return mask.astype(np.float64), np.where(mask, y, 2.0)


def poisson_nll_loss(input, target, log_input, full, eps, reduction, fmt: Format) -> Evaluated:
    """The exact poisson_nll_loss, reduced, rounded once to fmt."""
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    special, _, _, xs = _poisson_parts(x, y, log_input, eps)
    mask, ys = _stirling_parts(y, full)

    def term(B, x, y, ys, mask):
        base = B.exp(x) - y * x if log_input else x - y * log(B, x + eps)
        if not full:
            return base
        stirling = ys * log(B, ys) - ys + (0.5 * log(B, ys) + half_log_2pi(B))
        return base + B.where(flags(mask), stirling, 0.0)

    known = None
    if probabilistic_fast.poisson_applies(x, log_input, fmt) and (
            reduction == "none" or not special[1].any()):  # a special total is decided above
        known = probabilistic_fast.poisson_loss(x, y, reduction, divisor(reduction, x.shape),
                                                full)
    return reduce_terms(term, [xs, y, ys, mask], *special, reduction, x.shape, fmt, known)


def _huge_input_slopes(x, grad_output, count: int):
    """((special, is_special), safe x) of poisson's input gradient g (exp(x) - y) / count
    with log_input where exp(x) exceeds every format (x > EXP_HUGE, so exp(x) - y is exp(x) to
    within 2^-130): exactly 0 where g = 0 and x is finite; +-inf (g's sign) where g is not
    finite, x is +inf, or log2 |g| + x log2(e) - log2(count) lies 2 binades beyond float64's
    range (its own rounding far smaller; so the estimate, inf, is float64's rounding too). The
    rest, a tiny g against x up to 1500 or so, is finite: the engine computes it from x."""
    g = np.broadcast_to(np.asarray(grad_output, np.float64), x.shape)
    huge = x > EXP_HUGE
    with quiet():
        binades = np.log2(np.abs(g)) + x * np.log2(np.e) - np.log2(count)
    zero = huge & np.isfinite(x) & (g == 0)
    beyond = huge & ~zero & (~np.isfinite(g) | ~(binades < 1024 + 2))
    special = huge & (zero | beyond)
    return (np.where(zero, 0.0, np.where(beyond, np.inf, np.nan)), special), np.where(
        special, 0.0, x)


def poisson_nll_loss_grad(grad_output, input, target, log_input, full, eps, reduction,
                          fmt: Format) -> dict[str, Evaluated]:
    """Exact gradients of ``poisson_nll_loss`` for input and target, rounded to fmt."""
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    _, sx, sy, xs = _poisson_parts(x, y, log_input, eps)
    mask, ys = _stirling_parts(y, full)

    def d_input(B, x, y, ys, mask):
        return B.exp(x) - y if log_input else 1 - y / (x + eps)

    def d_target(B, x, y, ys, mask):
        base = -x if log_input else -log(B, x + eps)
        if not full:
            return base
        return base + B.where(flags(mask), log(B, ys) + 0.5 * reciprocal(B, ys), 0.0)

    xt = x if log_input else xs  # the log_input target slope -x is finite for every x
    count = divisor(reduction, x.shape)
    if log_input and count:
        sx, xs = _huge_input_slopes(x, grad_output, count)
    known = known_target = None
    if probabilistic_fast.poisson_applies(x, log_input, fmt) and count:
        # the Stirling term depends on the target alone: the input's slope is full's too
        known = probabilistic_fast.poisson_input_gradient(x, y, grad_output, count)
        known_target = probabilistic_fast.poisson_target_gradient(x, y, full, grad_output,
                                                                  count)
    return {"input": elementwise_gradient(d_input, [xs, y, ys, mask], *sx, grad_output,
                                          reduction, x.shape, fmt, known),
            "target": elementwise_gradient(d_target, [xt, y, ys, mask], *sy, grad_output,
                                           reduction, x.shape, fmt, known_target)}


# --- gaussian_nll_loss -------------------------------------------------------------------------

def var_axis(input_shape, var_shape):
    """How var broadcasts to input: None (same shape), or the axis of input its gradient sums
    over (var of input's shape without the last dim, or with one dim of size 1)."""
    input_shape, var_shape = tuple(input_shape), tuple(var_shape)
    if var_shape == input_shape:
        return None
    if var_shape == input_shape[:-1]:
        return len(input_shape) - 1
    if len(var_shape) == len(input_shape):
        mismatched = [i for i, (a, b) in enumerate(zip(input_shape, var_shape)) if a != b]
        if len(mismatched) == 1 and var_shape[mismatched[0]] == 1:
            return mismatched[0]
    raise ValueError(f"var of shape {var_shape} does not fit input {input_shape}")


def clamped_var(var, input_shape, eps):
    """max(var, eps) broadcast to input's shape, and var_axis."""
    axis = var_axis(input_shape, np.shape(var))
    v = np.asarray(var, np.float64)
    if axis is not None and v.ndim < len(input_shape):
        v = np.expand_dims(v, axis)
    return np.maximum(np.broadcast_to(v, input_shape), eps), axis


def gaussian_nll_loss(input, target, var, full, eps, reduction, fmt: Format) -> Evaluated:
    """The exact gaussian_nll_loss, reduced, rounded once to fmt."""
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    v, _ = clamped_var(var, x.shape, eps)

    def term(B, x, y, v):
        r = x - y
        value = 0.5 * (log(B, v) + r * r / v)
        return value + half_log_2pi(B) if full else value

    known = (probabilistic_fast.gaussian_loss(x, y, v, reduction, divisor(reduction, x.shape),
                                              full)
             if probabilistic_fast.applies(x, fmt) else None)
    return reduce_terms(term, [x, y, v], np.zeros(x.shape), np.zeros(x.shape, bool), reduction,
                        x.shape, fmt, known)


def gaussian_nll_loss_grad(grad_output, input, target, var, full, eps, reduction,
                           fmt: Format) -> dict[str, Evaluated]:
    """Exact gradients of ``gaussian_nll_loss`` for input, target and var, rounded to fmt."""
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    v, axis = clamped_var(var, x.shape, eps)
    count = divisor(reduction, x.shape)
    if count == 0:  # an empty mean: a var element broadcast over nothing sums no slopes
        return {"input": filled(x.shape, np.nan), "target": filled(x.shape, np.nan),
                "var": filled(np.shape(var), 0.0)}
    g = np.broadcast_to(np.asarray(grad_output, np.float64), x.shape)
    fast = probabilistic_fast.applies(x, fmt) and axis is None
    d_input = elementwise_gradient(
        lambda B, x, y, v: (x - y) / v, [x, y, v], None, None, grad_output, reduction, x.shape,
        fmt, probabilistic_fast.gaussian_gradient(x, y, v, g, count, "input") if fast else None)

    def d_var(B, g, x, y, v):
        r = x - y
        value = 0.5 * (1 - r * r / v) / v * g
        value = value if count == 1 else value / count
        return value if axis is None else B.sum(value, axis=axis)

    out = evaluate(d_var, [g, x, y, v], fmt, independent="elements" if axis is None else "none",
                   known=probabilistic_fast.gaussian_gradient(x, y, v, g, count, "var")
                   if fast else None)
    return {"input": d_input, "target": Evaluated(-d_input.rounded, -d_input.exact),
            "var": Evaluated(out.rounded.reshape(np.shape(var)),
                             out.exact.reshape(np.shape(var)))}
