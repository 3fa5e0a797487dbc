"""Exact references for the binary family: binary_cross_entropy, binary_cross_entropy_with_logits.

binary_cross_entropy (input p, a probability; target y in [0, 1]; weight w broadcast to p's
shape), as torch 2.13 defines it, logs clamped at -100:

    loss = -w (y max(log p, -100) + (1 - y) max(log(1 - p), -100))
    d/dp = g w (p - y) / max(p (1 - p), EPSILON) / N'   (EPSILON = float32(1e-12), torch's)
    d/dy = g w (log(1 - p) - log p) / N'     (= -logit(p), not clamped: +inf at p = 0, -inf at 1)

binary_cross_entropy_with_logits (input x, a logit; target y in [0, 1]; weight w; pos_weight
q >= 0, both broadcast to x's shape), written without cancellation for y in [0, 1], q >= 0:

    loss = w ((1 - y) softplus(x) + q y softplus(-x))
         = w ((1 - y) x - (1 + (q - 1) y) log sigmoid(x))     (torch's form)
    d/dx = g w ((1 - y) sigmoid(x) - q y sigmoid(-x)) / N'
    d/dy = g w ((q - 1) softplus(-x) - x) / N'                (= log sigmoid(-x) - q log sigmoid(x))

N' is the element count for 'mean', else 1. At x = +-inf every per-element quantity (the loss
term, d/dx, d/dy) is its limit as x -> +-inf, one of 0, a finite number or +-inf; the factors
w, g and 1 / N' then multiply it in extended real arithmetic, where 0 * inf is undefined (nan),
and a sum holding +inf and -inf is nan. The mean of no elements is nan. Finite logits beyond
X_CAP = 4096 enter the tails exp(-|x|) as +-X_CAP, which changes no rounding (see _capped).

Branches (which log is clamped, whether p (1 - p) < EPSILON, which logits are infinite) are
decided exactly from the inputs here and enter the engine as exact 0/1 arrays; the rest is engine
arithmetic. Every function takes float64 arrays of exactly the values the candidate received
and returns certified ``Evaluated`` results (a dict of them by argument name for gradients).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from . import logistic_fast
from .ball_functions import flags, log
from .balls import LD, quiet
from .engine import Evaluated, evaluate, evaluate_total, filled
from .formats import Format

LOSSES = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
LOG_CLAMP = -100.0
# torch's EPSILON in binary_cross_entropy's backward: a float constant, 1e-12 rounded to float32
# (torch's float64 gradient at p = 0, y = 1 is -1.0000000040e12).
EPSILON = float(np.float32(1e-12))
# The largest double below exp(-100): log p < -100 exactly when p <= CLAMP_BELOW (exp(-100)
# is irrational, so no double equals it; tests/test_reference_binary.py checks the bracket).
CLAMP_BELOW = float.fromhex("0x1.a8c1f14e2af5cp-145")
X_CAP = 4096.0  # logits beyond it enter the tails exp(-|x|) as +-X_CAP (see _capped)


def _count(x, reduction) -> int:
    return max(x.size, 1) if reduction == "mean" else 1


def _with_specials(evaluated: Evaluated, special: np.ndarray, values: np.ndarray) -> Evaluated:
    """``evaluated`` with the elements where ``special`` holds replaced by exact ``values``."""
    rounded, exact = evaluated.rounded.copy(), evaluated.exact.copy()
    rounded[special], exact[special] = values[special], values[special].astype(LD)
    return Evaluated(rounded, exact)


def _reduced(terms, arrays, reduction, size, fmt: Format, known=None) -> Evaluated:
    """The elementwise ``terms(B, *arrays)`` (arrays of one shape) reduced: each element for
    'none', their sum, or their sum over ``size`` for 'mean' (``known``: what a faster tier
    certified, the elements flattened or the total)."""
    if reduction == "none":
        return evaluate(terms, arrays, fmt, independent="elements", known=known)
    elements = [np.reshape(a, -1) for a in np.broadcast_arrays(*arrays)]
    if reduction == "sum":
        return evaluate_total(terms, elements, fmt, known=known)
    return evaluate_total(terms, elements, fmt, finish=lambda B, total: total / size,
                          known=known)


# --- exact decisions -----------------------------------------------------------------------------

def clamped_logs(p) -> tuple[np.ndarray, np.ndarray]:
    """(log p < -100, log(1 - p) < -100) elementwise, exactly.

    The second holds only at p = 1: below 1, 1 - p is at least 2**-53 > exp(-100).
    """
    p = np.asarray(p, np.float64)
    return p <= CLAMP_BELOW, p == 1.0


def below_epsilon(p) -> np.ndarray:
    """Exactly whether p (1 - p) < EPSILON, elementwise (torch's backward then divides by
    EPSILON)."""
    p = np.asarray(p, np.float64)
    flat = p.reshape(-1)
    with quiet():
        estimate = flat.astype(LD) * (1 - flat.astype(LD))
    out = estimate < LD(EPSILON)
    eps = Fraction(EPSILON)
    for i in np.flatnonzero(np.abs(estimate - LD(EPSILON)) <= LD(1e-9) * LD(EPSILON)):
        q = Fraction(float(flat[i]))
        out[i] = q * (1 - q) < eps
    return out.reshape(p.shape)


# --- binary_cross_entropy ------------------------------------------------------------------------

def _bce_args(p):
    """p made safe for each log (0.5 where that log is clamped) and the two clamp indicators."""
    low, high = clamped_logs(p)
    return (np.where(low, 0.5, p), np.where(high, 0.5, p), low.astype(np.float64),
            high.astype(np.float64))


def _bce_term(B, p_log, p_log1p, y, low, high):
    """-(y max(log p, -100) + (1 - y) max(log1p(-p), -100)), both parts non-negative."""
    log_p = B.where(flags(low), LOG_CLAMP, log(B, p_log))
    log_q = B.where(flags(high), LOG_CLAMP, B.log1p(-p_log1p))
    return y * (-log_p) + (1 - y) * (-log_q)


def binary_cross_entropy(input, target, weight, reduction, fmt: Format) -> Evaluated:
    """The exact loss, reduced, rounded once to fmt (weight None or broadcastable to input)."""
    p, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    w = np.broadcast_to(np.ones(()) if weight is None else np.asarray(weight, np.float64),
                        p.shape)
    if reduction == "mean" and p.size == 0:
        return filled((), np.nan)
    def terms(B, w, y, *parts):
        return w * _bce_term(B, *parts[:2], y, *parts[2:])

    known = (logistic_fast.bce_loss(p, y, w, reduction, CLAMP_BELOW, LOG_CLAMP)
             if logistic_fast.applies(p, fmt) else None)
    return _reduced(terms, [w, y, *_bce_args(p)], reduction, p.size, fmt, known=known)


def binary_cross_entropy_grad(grad_output, input, target, weight, reduction,
                              fmt: Format) -> dict[str, Evaluated]:
    """Exact gradients for input and target (torch's formulas above), rounded to fmt."""
    p, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    w = np.broadcast_to(np.ones(()) if weight is None else np.asarray(weight, np.float64),
                        p.shape)
    g = np.broadcast_to(np.asarray(grad_output, np.float64), p.shape)
    count = _count(p, reduction)
    clamp = below_epsilon(p).astype(np.float64)

    def d_input(B, g, w, p, y, clamp):
        divisor = B.where(flags(clamp), EPSILON, p * (1 - p))
        return g * w * (p - y) / divisor / count

    ends = (p == 0) | (p == 1)
    safe = np.where(ends, 0.5, p)

    def d_target(B, g, w, p):
        return g * w * (B.log1p(-p) - log(B, p)) / count

    fast = logistic_fast.applies(p, fmt)
    known = [logistic_fast.bce_slopes(p, y, clamp, w, g, count, EPSILON, wrt) if fast else None
             for wrt in ("input", "target")]
    grads = {"input": evaluate(d_input, [g, w, p, y, clamp], fmt, independent="elements",
                               known=known[0])}
    target = evaluate(d_target, [g, w, safe], fmt, independent="elements", known=known[1])
    if ends.any():
        # -logit(0) = +inf, -logit(1) = -inf; 0 * inf is nan. The signs of g and w, not
        # their float64 product, which rounds 5e-324 * 0.5 to 0 (a nan for an exact +inf)
        with quiet():
            limits = np.sign(g) * np.sign(w) * np.where(p == 0, np.inf, -np.inf)
        target = _with_specials(target, ends, limits)
    grads["target"] = target
    return grads


# --- binary_cross_entropy_with_logits ------------------------------------------------------------

def _logit_parts(x, weight, pos_weight):
    """float64 w and q broadcast to x's shape, the infinite-logit mask, x with 0 there."""
    ones = np.ones(())
    w = np.broadcast_to(ones if weight is None else np.asarray(weight, np.float64), x.shape)
    q = np.broadcast_to(ones if pos_weight is None else np.asarray(pos_weight, np.float64),
                        x.shape)
    infinite = np.isinf(x)
    return w, q, infinite, np.where(infinite, 0.0, x)


def _signed_limit(positive, negative, infinite, x):
    """+inf where the coefficient of the growing part is positive, -inf where negative, else 0:
    the limit of coefficient * |x| as x -> +-inf (positive: the coefficient at +inf)."""
    coefficient = np.where(x > 0, positive, negative)
    signed = np.where(coefficient > 0, np.inf, np.where(coefficient < 0, -np.inf, 0.0))
    return np.where(infinite, signed, 0.0)


def _softplus(B, x, capped):
    """softplus(x) = max(x, 0) + log1p(exp(-|x|)), the tail exp(-|x|) taken at ``capped``."""
    return B.relu(x) + B.log1p(B.exp(-B.abs(capped)))


def _capped(x, allowed=True):
    """x with |x| capped at X_CAP for the tails exp(-|x|), where ``allowed``.

    Beyond X_CAP a tail is below 2**-5900 while the values it is added to (the loss, or a
    gradient, with their factors drawn from the dtypes) are multiples of far coarser powers of
    two: a smaller positive tail of the same sign leaves every rounding unchanged, and keeps
    an exact tie of the tail-free value within the reach of the arb fallback.
    """
    return np.clip(x, -X_CAP, X_CAP) if allowed else x


def _logit_term(B, x, capped, y, q):
    return (1 - y) * _softplus(B, x, capped) + q * y * _softplus(B, -x, -capped)


def binary_cross_entropy_with_logits(input, target, weight, pos_weight, reduction,
                                     fmt: Format) -> Evaluated:
    """The exact loss, reduced, rounded once to fmt (weight and pos_weight None or
    broadcastable to input)."""
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    w, q, infinite, finite_x = _logit_parts(x, weight, pos_weight)
    if reduction == "mean" and x.size == 0:
        return filled((), np.nan)
    # The loss grows like (1 - y) x at +inf and q y |x| at -inf: its limit is +-inf or 0.
    limit = _signed_limit(1 - y, q * y, infinite, x)
    with quiet():  # w * limit: 0 * inf is nan
        special_terms = np.where(infinite, w * limit, 0.0)
    def terms(B, w, x, capped, y, q):
        return w * _logit_term(B, x, capped, y, q)

    engine_w = np.where(infinite, 0.0, w)  # the infinite elements' terms are added below
    # A sum adds the elements' tails: capping keeps its sign where they all have one sign.
    tails = (engine_w * (1 - y + q * y))[np.abs(finite_x) > X_CAP]
    same_sign = reduction == "none" or bool(np.all(tails >= 0) or np.all(tails <= 0))
    capped = _capped(finite_x, same_sign)
    known = None
    if logistic_fast.applies(x, fmt) and (reduction == "none" or not infinite.any()):
        known = (logistic_fast.elements(x, y, q, w, 1.0, 1, logistic_fast.LOSS)
                 if reduction == "none" else
                 logistic_fast.total(x, y, q, w, x.size if reduction == "mean" else None))
    result = _reduced(terms, [engine_w, finite_x, capped, y, q], reduction, x.size, fmt, known)
    if reduction == "none":
        return _with_specials(result, infinite, special_terms) if infinite.any() else result
    unbounded = special_terms[~np.isfinite(special_terms)]
    if unbounded.size:
        with quiet():  # +inf, -inf, or nan when both signs (or 0 * inf)
            return filled((), float(np.sum(unbounded)))
    return result


def binary_cross_entropy_with_logits_grad(grad_output, input, target, weight, pos_weight,
                                          reduction, fmt: Format) -> dict[str, Evaluated]:
    """Exact gradients for input and target (see the module docstring), rounded to fmt."""
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    w, q, infinite, finite_x = _logit_parts(x, weight, pos_weight)
    g = np.broadcast_to(np.asarray(grad_output, np.float64), x.shape)
    count = _count(x, reduction)
    # sigmoid(x) at the infinite logits, as exact inputs: 1 at +inf, 0 at -inf.
    at_limit = np.where(infinite & (x > 0), 1.0, 0.0)
    is_infinite = infinite.astype(np.float64)

    def d_input(B, g, w, x, y, q, is_infinite, at_limit):
        up = B.where(flags(is_infinite), at_limit, B.sigmoid(x))  # x capped: one tail per element
        down = B.where(flags(is_infinite), 1 - at_limit, B.sigmoid(-x))
        return g * w * ((1 - y) * up - q * y * down) / count

    if pos_weight is None:
        def d_target(B, g, w, x, capped, q, near_one):
            return -(g * w * x) / count
    else:
        def d_target(B, g, w, x, capped, q, near_one):
            # (q - 1) softplus(-x) - x cancels nowhere but at its root for q near 1 (it is -x
            # at q = 1), q softplus(-x) - softplus(x) for q far from 1 (-softplus(x) at q = 0).
            near = (q - 1) * _softplus(B, -x, -capped) - x
            far = q * _softplus(B, -x, -capped) - _softplus(B, x, capped)
            return g * w * B.where(flags(near_one), near, far) / count

    capped = _capped(finite_x)
    known = (logistic_fast.elements(x, y, q, w, g, count, logistic_fast.SLOPE)
             if logistic_fast.applies(x, fmt) else None)
    grads = {"input": evaluate(d_input, [g, w, capped, y, q, is_infinite, at_limit], fmt,
                               independent="elements", known=known)}
    near_one = (np.abs(q - 1) <= 0.5).astype(np.float64)
    known = (logistic_fast.elements(x, y, q, w, g, count, logistic_fast.TARGET_SLOPE)
             if logistic_fast.applies(x, fmt) else None)
    target = evaluate(d_target, [g, w, finite_x, capped, q, near_one], fmt,
                      independent="elements", known=known)
    if infinite.any():
        # d/dy -> -inf at +inf, and (q - 1) |x| + |x| = q |x| -> sign(q) inf (0 if q = 0) at -inf
        limit = np.where(x > 0, -np.inf, np.where(q > 0, np.inf, np.where(q < 0, -np.inf, 0.0)))
        with quiet():  # g last: g w may round to 0 where the exact g w limit is infinite
            values = np.where(limit == 0, 0.0, g * (w * limit) / count)
        target = _with_specials(target, infinite, values)
    grads["target"] = target
    return grads
