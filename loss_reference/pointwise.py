"""Exact references for the pointwise family: l1, mse, huber, smooth_l1 and soft_margin losses.

Each loss is a term per element, t(x, y), optionally times a weight w of the input's shape, then
reduced: 'none' keeps the terms, 'sum' adds them, 'mean' divides that sum by

- the number of elements N (every loss without weight, and huber_loss with one: torch's
  weighted Huber loss is mean(w t)),
- the sum of the weights W (l1_loss and mse_loss with weight: torch's sum(w t) / sum(w)).

The mean of no elements is nan. A weighted mean whose weights add up to exactly 0 is the IEEE
quotient of the exact sums (nan for 0/0, else an infinity of the numerator's sign) and its
gradients are undefined (nan).

Branches and signs (which side of a kink an element lies on, the sign of x - y) are decided
exactly from the inputs here and enter the engine as exact arrays; the rest is engine
arithmetic. Every function takes float64 arrays of exactly the values the candidate received,
and returns certified ``Evaluated`` results (a dict of them by argument name for gradients).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from . import elementwise_fast, logistic_fast
from .ball_functions import flags
from .compiled_kernels import exact_divisor
from .decisions import float_sum, quotient_by_zero, sign_of_sum
from .engine import Evaluated, evaluate, evaluate_total, filled
from .formats import FORMATS, Format

LOSSES = ("l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss", "soft_margin_loss")
WEIGHT_SUM_MEAN = ("l1_loss", "mse_loss")  # losses whose weighted mean divides by sum(w)
FLOAT64 = FORMATS["float64"]


# --- exact decisions ---------------------------------------------------------------------------

def residual_sign(x, y) -> np.ndarray:
    """sign(x - y) elementwise, exactly (-1, 0 or 1 as float64).

    An IEEE subtraction has the sign of the exact difference and is 0 only when it is (gradual
    underflow), so the float64 difference decides.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sign(np.asarray(x, np.float64) - np.asarray(y, np.float64))


def _abs_residual_minus(x, y, threshold) -> np.ndarray:
    """sign(|x - y| - threshold) elementwise, exactly, for finite float64 x, y and threshold."""
    x, y = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
    s = residual_sign(x, y)
    return sign_of_sum(s * x, -s * y, -float(threshold))  # s * x is exact: s is -1, 0 or 1


def below_kink(x, y, threshold) -> np.ndarray:
    """Exactly whether |x - y| < threshold: the quadratic branch of huber / smooth_l1."""
    return _abs_residual_minus(x, y, threshold) < 0


def exactly_at_kink(x, y, threshold) -> np.ndarray:
    """Exactly whether |x - y| == threshold."""
    return _abs_residual_minus(x, y, threshold) == 0


# --- terms -------------------------------------------------------------------------------------

def _threshold(name, options) -> float:
    return float(options.get("delta" if name == "huber_loss" else "beta", 1.0))


def _term(name, options):
    """(term(B, x, y, quadratic), uses_mask): the elementwise loss written against a backend."""
    k = _threshold(name, options)
    if name == "l1_loss" or (name == "smooth_l1_loss" and k == 0):
        return lambda B, x, y, q: B.abs(x - y)  # smooth_l1 with beta = 0 is l1 (torch)
    if name == "mse_loss":
        return lambda B, x, y, q: (x - y) * (x - y)
    if name == "huber_loss":
        def huber(B, x, y, q):
            z = B.abs(x - y)
            return B.where(flags(q), 0.5 * z * z, k * (z - k / 2))
        return huber
    if name == "smooth_l1_loss":
        def smooth_l1(B, x, y, q):
            z = B.abs(x - y)
            return B.where(flags(q), 0.5 * z * z / k, z - k / 2)
        return smooth_l1
    if name == "soft_margin_loss":
        return lambda B, x, y, q: B.softplus(-(y * x))
    raise ValueError(f"unknown loss {name!r}")


def _derivative(name, options):
    """d term / d input (B, x, y, quadratic, sign), with torch's 0 at l1's kink r = 0."""
    k = _threshold(name, options)
    if name == "l1_loss" or (name == "smooth_l1_loss" and k == 0):
        return lambda B, x, y, q, s: s
    if name == "mse_loss":
        return lambda B, x, y, q, s: 2 * (x - y)
    if name == "huber_loss":
        return lambda B, x, y, q, s: B.where(flags(q), x - y, k * s)
    if name == "smooth_l1_loss":
        return lambda B, x, y, q, s: B.where(flags(q), (x - y) / k, s)
    if name == "soft_margin_loss":
        return lambda B, x, y, q, s: -(y * B.sigmoid(-(y * x)))
    raise ValueError(f"unknown loss {name!r}")


def _quadratic(name, x, y, options) -> np.ndarray:
    """The exact 0/1 branch indicator (1 on the quadratic side) of huber / smooth_l1."""
    if name in ("huber_loss", "smooth_l1_loss") and _threshold(name, options) > 0:
        return below_kink(x, y, _threshold(name, options)).astype(np.float64)
    return np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y)))


def divides_by_weight_sum(name, weight, reduction) -> bool:
    return reduction == "mean" and weight is not None and name in WEIGHT_SUM_MEAN


def weight_sum_is_zero(w: np.ndarray) -> bool:
    """Exactly whether the weights sum to 0 (``float_sum`` is correctly rounded: 0 only for
    an exact 0; nan or infinite where a weight is infinite)."""
    return float_sum(w) == 0


def _exact_numerator(name, x, y, w, options) -> float:
    """sum(w t) for l1/mse's weighted mean over weights that sum to 0, with its exact sign
    (its magnitude matters no further): the 'sum' rounded to float64, and where that is 0
    with every input finite, the exact rational sum, since a nonzero sum can lie below
    float64's smallest subnormal (and below the dtype's much sooner)."""
    numerator = float(loss(name, x, y, w, options, "sum", FORMATS["float64"]).rounded)
    if numerator != 0 or not all(np.isfinite(a).all() for a in (x, y, w)):
        return numerator
    power = 2 if name == "mse_loss" else 1
    x, y, w = (a.reshape(-1).tolist() for a in np.broadcast_arrays(x, y, w))
    exact = sum((Fraction(wi) * abs(Fraction(xi) - Fraction(yi)) ** power
                 for xi, yi, wi in zip(x, y, w) if wi != 0 and xi != yi), Fraction(0))
    return float((exact > 0) - (exact < 0))


def _soft_margin_applies(name, x, y, fmt: Format) -> bool:
    """Whether soft_margin_loss's softplus(-y x) takes the logistic tier
    (``logistic_fast``): labels +-1 only, where it is the logistic loss of the target
    (1 + y) / 2 (0 or 1) and its slope -y sigmoid(-y x) the logistic slope."""
    return (name == "soft_margin_loss" and logistic_fast.applies(x, fmt)
            and bool(np.all(np.abs(y) == 1)))


def _exact_mean_divisor(w: np.ndarray, by_weight_sum: bool, count: int) -> tuple:
    """What a 'mean' divides by, as a double-double within u^2 of it (the fast tiers'
    divisor): the sum of the weights, or the element count."""
    return exact_divisor(w.reshape(-1)) if by_weight_sum else (float(count), 0.0)


# --- values ------------------------------------------------------------------------------------

def loss(name, input, target, weight, options, reduction, fmt: Format) -> Evaluated:
    """The exact loss ``name`` (options: delta / beta), reduced, rounded once to fmt."""
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    w = np.ones(x.shape) if weight is None else np.asarray(weight, np.float64)
    q = _quadratic(name, x, y, options)
    term = _term(name, options)
    if reduction == "mean" and x.size == 0:
        return filled((), np.nan)  # the mean of no elements
    if divides_by_weight_sum(name, weight, reduction) and weight_sum_is_zero(w):
        return filled((), quotient_by_zero(_exact_numerator(name, x, y, w, options)))

    by_weight_sum, size = divides_by_weight_sum(name, weight, reduction), x.size

    def terms(B, x, y, w, q, *shared):
        return w * term(B, x, y, q)

    known = None
    if elementwise_fast.pointwise_applies(name, _threshold(name, options), x, fmt):
        divisor = None if reduction == "sum" else _exact_mean_divisor(w, by_weight_sum, size)
        known = elementwise_fast.pointwise_loss(name, _threshold(name, options), x, y, w,
                                                reduction, divisor)
    elif _soft_margin_applies(name, x, y, fmt):  # softplus(-y x): a logistic term
        y01 = (1 + y) / 2
        known = (logistic_fast.elements(x, y01, 1.0, w, 1.0, 1, logistic_fast.LOSS)
                 if reduction == "none" else
                 logistic_fast.total(x, y01, 1.0, w, size if reduction == "mean" else None))
    if reduction == "none":
        return evaluate(terms, [x, y, w, q], fmt, independent="elements", known=known)
    elements = [a.reshape(-1) for a in np.broadcast_arrays(x, y, w, q)]
    if reduction == "sum":
        return evaluate_total(terms, elements, fmt, known=known)
    if by_weight_sum:
        return evaluate_total(terms, elements, fmt, shared=[elements[2]], known=known,
                              finish=lambda B, total, w: total / B.sum(w))
    return evaluate_total(terms, elements, fmt, finish=lambda B, total: total / size,
                          known=known)


# --- gradients ---------------------------------------------------------------------------------

def loss_grad(name, grad_output, input, target, weight, options, reduction,
              fmt: Format) -> dict[str, Evaluated]:
    """Exact gradients of ``loss`` for the upstream gradient: input, target (except for
    soft_margin_loss, which torch does not differentiate in its target) and weight (when
    given), rounded to fmt."""
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    w = np.ones(x.shape) if weight is None else np.asarray(weight, np.float64)
    g = np.broadcast_to(np.asarray(grad_output, np.float64), x.shape)
    q, s = _quadratic(name, x, y, options), residual_sign(x, y)
    term, derivative = _term(name, options), _derivative(name, options)
    by_weight_sum = divides_by_weight_sum(name, weight, reduction)
    count = max(x.size, 1) if reduction == "mean" else 1
    names = ["input"] + (["target"] if name != "soft_margin_loss" else []) \
        + (["weight"] if weight is not None else [])
    if by_weight_sum and weight_sum_is_zero(w):
        return {n: filled(x.shape, np.nan) for n in names}  # the weighted mean is undefined

    def d_input(B, x, y, w, g, q, s, *all_weights):
        scaled = g * w * derivative(B, x, y, q, s)
        return scaled / B.sum(all_weights[0]) if by_weight_sum else scaled / count

    def d_weight(B, x, y, w, g, q):
        terms = term(B, x, y, q)
        if not by_weight_sum:
            return g * terms / count
        # d/dw_i (A / W) = (t_i W - A) / W^2: exact zero when t_i is the mean (certifiable).
        total, weights = B.sum(w * terms), B.sum(w)
        return g * (terms * weights - total) / (weights * weights)

    independent = "none" if by_weight_sum else "elements"
    known = known_weight = None
    threshold = _threshold(name, options)
    if elementwise_fast.pointwise_applies(name, threshold, x):
        divisor = _exact_mean_divisor(w, by_weight_sum, count)
        if fmt == FLOAT64:
            known = elementwise_fast.pointwise_gradient(name, threshold, x, y, w, g, divisor)
        # a mean over the weights' sum cancels where a term is the mean, for float64 balls too
        # (they left float32's weights to long double): the tier for every format
        if "weight" in names and (fmt == FLOAT64 or by_weight_sum):
            known_weight = elementwise_fast.pointwise_weight_gradient(
                name, threshold, x, y, w, g, divisor, by_weight_sum, fmt)
    elif _soft_margin_applies(name, x, y, fmt):
        known = logistic_fast.elements(x, (1 + y) / 2, 1.0, w, g, count, logistic_fast.SLOPE)
    grads = {"input": evaluate(d_input, [x, y, w, g, q, s], fmt, independent="elements",
                               shared=[w.reshape(-1)] if by_weight_sum else [], known=known)}
    if "target" in names:
        # d/dy = -d/dx for a function of x - y: the same certified numbers, negated.
        grads["target"] = Evaluated(-grads["input"].rounded, -grads["input"].exact)
    if "weight" in names:
        # a mean over the weights' sum shares it: the tier's results whole, or the engine's
        whole = (known_weight.whole(x.shape) if by_weight_sum and known_weight is not None
                 else None)
        grads["weight"] = whole or evaluate(
            d_weight, [x, y, w, g, q], fmt, independent=independent,
            known=None if by_weight_sum else known_weight)
    return grads
