"""Exact references for the margin family: margin_ranking_loss, hinge_embedding_loss and
multi_margin_loss.

Each loss is built from hinges max(0, z) of an exact affine z of the inputs and the margin m:

- margin_ranking_loss: z = m - y (x1 - x2) per element (inputs broadcast as torch does);
- hinge_embedding_loss: x where y != -1, plus max(0, m - x) where y != 1 (torch's two
  torch.where terms: y = 1 keeps x, y = -1 the hinge, any other y both);
- multi_margin_loss: per sample n, sum over classes i != y_n of w[y_n] max(0, m - x[y_n] + x[i])^p,
  divided by the class count C.

Which side of its kink a hinge lies on is decided exactly from the inputs here (a long double
estimate with an error bound, exact rational or fsum arithmetic where the bound cannot decide)
and enters the engine as exact 0/1 arrays; the rest is engine arithmetic. At z == 0 exactly the
gradient follows torch 2.13: clamp_min lets it through (margin_ranking, hinge_embedding: the
active side), multi_margin's kernel tests z > 0 (inactive). 'mean' divides by the number of
output elements (samples for multi_margin); the mean of none is nan, the sum 0.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from . import elementwise_fast
from .balls import LD, LONG_DOUBLE
from .decisions import sign_of_sum
from .engine import Evaluated, evaluate, evaluate_total, filled
from .formats import Format

LOSSES = ("margin_ranking_loss", "hinge_embedding_loss", "multi_margin_loss")
DEFAULT_MARGIN = {"margin_ranking_loss": 0.0, "hinge_embedding_loss": 1.0,
                  "multi_margin_loss": 1.0}


# --- exact decisions ---------------------------------------------------------------------------

def _exact_sign(estimate, bound, exact_at):
    """sign(estimate) where |estimate| > bound, else exact_at(flat index) (-1, 0 or 1)."""
    out = np.sign(estimate).astype(np.float64).reshape(-1)
    for i in np.flatnonzero(np.asarray(np.abs(estimate) <= bound).reshape(-1)):
        value = exact_at(int(i))
        out[i] = (value > 0) - (value < 0)
    return out.reshape(np.shape(estimate))


def ranking_sign(x1, x2, y, margin) -> np.ndarray:
    """sign(m - y (x1 - x2)) elementwise (broadcast), exactly."""
    x1, x2, y = (np.asarray(a, np.float64) for a in np.broadcast_arrays(x1, x2, y))
    m = float(margin)
    with np.errstate(over="ignore", invalid="ignore"):
        a, b, c = x1.astype(LD), x2.astype(LD), y.astype(LD)
        estimate = LD(m) - c * a + c * b
        bound = 8 * LONG_DOUBLE.unit_roundoff * (abs(m) + np.abs(c * a) + np.abs(c * b))
        # An infinite input (the only way to an infinite bound) is decided by IEEE arithmetic:
        # +-inf has its sign, inf - inf stays nan (undecided, as the value is).
        bound = np.where(np.isfinite(bound), bound, -1)
    flat = [v.reshape(-1) for v in (x1, x2, y)]

    def exact(i):
        return Fraction(m) - Fraction(flat[2][i]) * (Fraction(flat[0][i]) - Fraction(flat[1][i]))

    return _exact_sign(estimate, bound, exact)


def margin_sign(x, margin) -> np.ndarray:
    """sign(m - x) elementwise, exactly: an IEEE subtraction has the sign of the exact one."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sign(float(margin) - np.asarray(x, np.float64))


def multi_sign(x_label, x, margin) -> np.ndarray:
    """sign(m - x_label + x) elementwise (broadcast), exactly."""
    return sign_of_sum(float(margin), -np.asarray(x_label, np.float64),
                       np.asarray(x, np.float64))


def _reduced(terms, arrays, reduction, count, fmt: Format, known=None) -> Evaluated:
    """The elementwise ``terms(B, *arrays)`` (arrays of one shape): each element for 'none',
    their sum for 'sum', the sum over ``count`` for 'mean'; ``known``: what a faster tier
    certified (the elements, flattened, or the total)."""
    if reduction == "none":
        return evaluate(terms, arrays, fmt, independent="elements", known=known)
    elements = [np.reshape(a, -1) for a in np.broadcast_arrays(*arrays)]
    return evaluate_total(terms, elements, fmt, known=known,
                          finish=None if reduction == "sum" else lambda B, t: t / count)


def _unbroadcast(B, ball, shape):
    """Sum a gradient of the broadcast shape over the axes an argument of ``shape`` repeats."""
    full = ball.shape
    for axis in range(len(full)):
        if shape[axis] == 1 and full[axis] != 1:
            kept = tuple(1 if a == axis else n for a, n in enumerate(ball.shape))
            ball = B.reshape(B.sum(ball, axis=axis), kept)
    return ball


# --- margin_ranking_loss -----------------------------------------------------------------------

def margin_ranking_loss(input1, input2, target, margin, reduction, fmt: Format) -> Evaluated:
    """Exact max(0, m - y (x1 - x2)) elementwise (broadcast), reduced, rounded once to fmt."""
    x1, x2, y = (np.array(a, np.float64) for a in np.broadcast_arrays(input1, input2, target))
    if reduction == "mean" and x1.size == 0:
        return filled((), np.nan)
    m = float(margin)
    known = None
    if elementwise_fast.applies(x1, fmt):  # the signs it decides spare ranking_sign's
        known, active = elementwise_fast.ranking_loss(x1, x2, y, m, reduction)
        left = np.isnan(active)
        if left.any():
            active[left] = ranking_sign(*(a.reshape(-1)[left] for a in (x1, x2, y)), m) > 0
        active = active.reshape(x1.shape)
    else:
        active = (ranking_sign(x1, x2, y, margin) > 0).astype(np.float64)

    def terms(B, x1, x2, y, active):
        return active * (m - y * (x1 - x2))

    return _reduced(terms, [x1, x2, y, active], reduction, x1.size, fmt, known)


def margin_ranking_loss_grad(grad_output, input1, input2, target, margin, reduction,
                             fmt: Format) -> dict[str, Evaluated]:
    """Exact gradients for input1, input2 and target (each summed over the axes it was
    broadcast along), active at z == 0 as torch's clamp_min."""
    shapes = {"input1": np.shape(input1), "input2": np.shape(input2), "target": np.shape(target)}
    x1, x2, y = (np.array(a, np.float64) for a in np.broadcast_arrays(input1, input2, target))
    g = np.array(np.broadcast_to(np.asarray(grad_output, np.float64), x1.shape))
    active = (ranking_sign(x1, x2, y, margin) >= 0).astype(np.float64)
    count = max(x1.size, 1) if reduction == "mean" else 1
    slopes = {"input1": lambda B, x1, x2, y: -y, "input2": lambda B, x1, x2, y: y,
              "target": lambda B, x1, x2, y: -(x1 - x2)}
    differences = {"input1": (0.0, y), "input2": (y, 0.0), "target": (x2, x1)}  # (u, v): u - v
    grads = {}
    for name, slope in slopes.items():
        broadcast = shapes[name] != x1.shape

        def grad(B, x1, x2, y, g, active, slope=slope, name=name, broadcast=broadcast):
            full = g * active * slope(B, x1, x2, y) / count
            return _unbroadcast(B, full, shapes[name]) if broadcast else full

        known = (elementwise_fast.scaled_differences(*differences[name], active, g, count)
                 if not broadcast and elementwise_fast.applies(x1, fmt) else None)
        grads[name] = evaluate(grad, [x1, x2, y, g, active], fmt,
                               independent="none" if broadcast else "elements", known=known)
    return grads


# --- hinge_embedding_loss ----------------------------------------------------------------------

def _hinge_parts(input, target, margin):
    """float64 x, the 0/1 'has the x term' and 'has the hinge term' arrays, the hinge's sign."""
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    linear = (y != -1).astype(np.float64)
    hinged = y != 1
    return x, linear, hinged, margin_sign(x, margin)


def hinge_embedding_loss(input, target, margin, reduction, fmt: Format) -> Evaluated:
    """Exact [y != -1] x + [y != 1] max(0, m - x), reduced, rounded once to fmt."""
    x, linear, hinged, sign = _hinge_parts(input, target, margin)
    if reduction == "mean" and x.size == 0:
        return filled((), np.nan)
    active = (hinged & (sign > 0)).astype(np.float64)
    m = float(margin)

    def terms(B, x, linear, active):
        return linear * x + active * (m - x)

    known = None
    if elementwise_fast.applies(x, fmt):  # each term is u - v: x - 0, m - x, or m - 0
        u = np.where(active != 0, m, x)
        v = np.where((active != 0) & (linear == 0), x, 0.0)
        f = np.where((linear != 0) | (active != 0), 1.0, 0.0)
        known = (elementwise_fast.scaled_differences(u, v, f, 1.0, 1) if reduction == "none"
                 else elementwise_fast.differences_total(
                     u, v, f, x.size if reduction == "mean" else None))
    return _reduced(terms, [x, linear, active], reduction, x.size, fmt, known)


def hinge_embedding_loss_grad(grad_output, input, target, margin, reduction,
                              fmt: Format) -> dict[str, Evaluated]:
    """Exact gradient for input: g ([y != -1] - [y != 1][m - x >= 0]) / N'. torch does not
    differentiate the target (it enters only through comparisons)."""
    x, linear, hinged, sign = _hinge_parts(input, target, margin)
    slope = linear - (hinged & (sign >= 0))
    g = np.broadcast_to(np.asarray(grad_output, np.float64), x.shape)
    count = max(x.size, 1) if reduction == "mean" else 1

    def grad(B, g, slope):
        return g * slope / count

    known = (elementwise_fast.scaled_differences(slope, 0.0, 1.0, g, count)
             if elementwise_fast.applies(x, fmt) else None)
    return {"input": evaluate(grad, [g, slope], fmt, independent="elements", known=known)}


# --- multi_margin_loss -------------------------------------------------------------------------

def _multi_parts(input, target, weight, margin):
    """(x (N, C), x at the target (N, 1), active hinges (N, C), target one-hot (N, C),
    w[y] (N, 1)) as float64; the target column is never active."""
    x = np.atleast_2d(np.asarray(input, np.float64))
    t = np.asarray(target, np.int64).reshape(-1)
    rows = np.arange(x.shape[0])
    x_label = x[rows, t][:, None]
    is_target = np.zeros(x.shape)
    is_target[rows, t] = 1.0
    active = (multi_sign(x_label, x, margin) > 0) & (is_target == 0)
    w = np.ones(x.shape[1]) if weight is None else np.asarray(weight, np.float64)
    return x, x_label, active.astype(np.float64), is_target, w[t][:, None]


def multi_margin_loss(input, target, p, margin, weight, reduction, fmt: Format) -> Evaluated:
    """Exact sum_{i != y} w[y] max(0, m - x[y] + x[i])^p / C per sample, reduced, rounded."""
    x, x_label, active, _, w_label = _multi_parts(input, target, weight, margin)
    batch, classes = x.shape
    if reduction == "mean" and batch == 0:
        return filled((), np.nan)
    m, out_shape = float(margin), np.shape(target)

    def class_sums(B, x, x_label, active, w_label):
        z = m - x_label + x
        hinge = active * z * z if p == 2 else active * z
        return B.sum(w_label * hinge, axis=-1)

    args = [x, x_label, active, w_label]
    if reduction == "none":
        out = evaluate(lambda B, *a: class_sums(B, *a) / classes, args, fmt, independent="rows")
        return Evaluated(out.rounded.reshape(out_shape), out.exact.reshape(out_shape))
    divisor = classes if reduction == "sum" else classes * batch
    return evaluate_total(class_sums, args, fmt, finish=lambda B, total: total / divisor)


def multi_margin_loss_grad(grad_output, input, target, p, margin, weight, reduction,
                           fmt: Format) -> dict[str, Evaluated]:
    """Exact gradient for input (torch differentiates neither target nor weight); a hinge at
    exactly 0 is inactive, as torch's kernel (z > 0)."""
    x, x_label, active, is_target, w_label = _multi_parts(input, target, weight, margin)
    batch, classes = x.shape
    g = np.asarray(grad_output, np.float64).reshape(-1)
    g = np.broadcast_to(g if g.size == batch else np.full(batch, float(g.reshape(-1)[0])
                                                          if g.size else 0.0), (batch,))
    g = np.array(g)[:, None]
    scale = classes * (max(batch, 1) if reduction == "mean" else 1)
    m = float(margin)

    def slopes(x, x_label, active):
        return active * (2 * (m - x_label + x)) if p == 2 else active

    def off_target(B, x, x_label, active, w_label, g):
        return g * w_label * slopes(x, x_label, active) / scale

    def on_target(B, x, x_label, active, w_label, g):
        # the slopes' sum before the one division: a sum of divided terms is never exact, so
        # an exact tie of the format (scale with an odd factor) could not be certified
        total = B.sum(slopes(x, x_label, active), axis=-1)
        return -(g[:, 0] * w_label[:, 0] * total) / scale

    args = [x, x_label, active, w_label, g]
    known_off = known_on = None
    if p == 1 and elementwise_fast.applies(x, fmt):  # g w[y] active / scale, and its row sum
        known_off = elementwise_fast.scaled_differences(active, 0.0, w_label, g, scale)
        known_on = elementwise_fast.scaled_differences(active.sum(axis=-1), 0.0, w_label[:, 0],
                                                       -g[:, 0], scale)
    elif p == 2 and elementwise_fast.applies(x, fmt):  # 2 g w[y] h / scale, h exact
        known_off, known_on = elementwise_fast.squared_hinge_slopes(x, x_label, active, m,
                                                                    w_label, g, scale)
    off = evaluate(off_target, args, fmt, independent="elements", known=known_off)
    on = evaluate(on_target, args, fmt, independent="rows", known=known_on)
    target_column = is_target != 0
    rounded = np.where(target_column, on.rounded.reshape(-1, 1), off.rounded)
    exact = np.where(target_column, on.exact.reshape(-1, 1), off.exact)
    shape = np.shape(input)
    return {"input": Evaluated(rounded.reshape(shape), exact.reshape(shape))}
