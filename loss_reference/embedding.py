"""Exact references for the embedding family: cosine_embedding_loss, triplet_margin_loss and
triplet_margin_with_distance_loss.

Every loss is a function of rows (the last axis is the embedding, D); a 1-D input is one row.

- cosine_embedding_loss: cos = P / sqrt((A + EPS) (B + EPS)) with P = x1 . x2, A = |x1|^2,
  B = |x2|^2 and EPS = 1e-12 rounded to float32, 9.999999960041972e-13 (torch's
  constant is a C++ float); the row's loss is 1 - cos where
  y = 1 and max(0, cos - margin) where y = -1.
- triplet losses: max(0, margin + d(a, p) - d(a, n)) with, under swap, d(a, n) replaced by
  min(d(a, n), d(p, n)). The distances (``DISTANCES``): 'pairwise' = ||a - b + eps||_p (torch's
  pairwise_distance, p >= 1 or inf), 'l1' = sum |a - b|, 'relu-l1' = sum max(a - b, 0) (not
  symmetric: it shows the order of the arguments), 'cosine' = 1 - a . b / (max(|a|, 1e-8)
  max(|b|, 1e-8)) (1 - F.cosine_similarity).

Branch decisions (the hinge's side, which distance swap's min takes, signs of components,
the arg max of p = inf) are made from a first long double ball pass and enter the engine as
exact arrays. Where a ball cannot decide (within ~2^-60 relative of the kink), the triplet
hinge and swap's min of pairwise distances with p = 1, 2 or inf are decided in exact rational
arithmetic (``_exact_triplet_decisions``: p = 2 by squaring); elsewhere the reference takes
torch's side at an exact kink (hinge inactive, min split evenly, sign 0), and the specs accept
either side there. Values never depend on these decisions, only gradients do.

sqrt, powers and the row maximum are written here for both engine backends (the engine has
none of them; they could move to loss_reference/engine.py).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import embedding_fast
from .ball_functions import flags, power, row_max, sqrt
from .balls import FLOAT64_BALLS, LD, LONG_DOUBLE_BALLS, Ball, quiet
from .decisions import sign_of_sum
from .engine import Evaluated, evaluate, evaluate_total, filled
from .formats import Format

LOSSES = ("cosine_embedding_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss")
EPS = float.fromhex("0x1.197998p-40")  # torch's EPSILON: 1e-12 as a float32 (9.99999996e-13)
COSINE_SIMILARITY_EPS = 1e-8  # F.cosine_similarity's default eps
DISTANCES = ("pairwise", "l1", "relu-l1", "cosine")
_LD = LONG_DOUBLE_BALLS  # 64-bit balls, for the decisions


# --- embedding arrays ----------------------------------------------------------------------------

def stack(B, parts):
    """Stack equally shaped results on a new last axis."""
    if isinstance(parts[0], Ball):
        return Ball(np.stack([p.mid for p in parts], -1), np.stack([p.rad for p in parts], -1))
    return np.stack([np.asarray(p, dtype=object) for p in parts], -1)


def _expand(value):
    """A per-row value broadcast over the last (embedding) axis."""
    if isinstance(value, Ball):
        return Ball(value.mid[..., None], value.rad[..., None])
    return np.asarray(value, dtype=object)[..., None]


def _sign_decided(ball: Ball) -> np.ndarray:
    """-1, 0 or 1 where the ball excludes 0 (0 where it cannot decide), as float64."""
    with quiet():
        out = np.sign(ball.mid).astype(np.float64)
        return np.where(np.abs(ball.mid) > ball.rad, out, 0.0)


# --- distances -----------------------------------------------------------------------------------

def _pairwise(B, a, b, p, eps):
    v = a - b + eps
    if p == 2:
        return sqrt(B, B.sum(v * v, axis=-1))
    if p == math.inf:
        return row_max(B, B.abs(v))
    return power(B, B.sum(power(B, B.abs(v), p), axis=-1), p, root=True)


def _norm_clamped(B, a, wide):
    return B.where(flags(wide), sqrt(B, B.sum(a * a, axis=-1)), COSINE_SIMILARITY_EPS)


def distance(B, kind, a, b, p=2.0, eps=1e-6, wide=None):
    """The distance ``kind`` between the rows of a and b (``wide``: the 0/1 indicators, as
    (a's, b's), that a cosine row's norm is at least 1e-8)."""
    if kind == "pairwise":
        return _pairwise(B, a, b, p, eps)
    if kind == "l1":
        return B.sum(B.abs(a - b), axis=-1)
    if kind == "relu-l1":
        return B.sum(B.relu(a - b), axis=-1)
    if kind == "cosine":
        dot = B.sum(a * b, axis=-1)
        return 1 - dot / (_norm_clamped(B, a, wide[0]) * _norm_clamped(B, b, wide[1]))
    raise ValueError(f"unknown distance {kind!r}")


def distance_slopes(B, kind, a, b, d, factor, zero, p=2.0, eps=1e-6, wide=None, ties=None):
    """d distance / d first argument, per element (the second argument's is its negation).

    ``factor`` holds the decided part (signs; for p = inf the sign at the arg max; for
    'relu-l1' the indicator a > b), ``zero`` is 1 on rows whose difference is exactly 0, where
    torch's gradient of the norm is 0; ``ties`` (p = inf) the number of maxima per row, which
    share the slope (divided here: 1/3 is not a float).
    """
    if kind == "cosine":
        na, nb = _norm_clamped(B, a, wide[0]), _norm_clamped(B, b, wide[1])
        dot = B.sum(a * b, axis=-1)
        # d/da (1 - a.b / (|a| |b|)) = -(b - (a.b / |a|^2) a) / (|a| |b|), for |a|, |b| >= 1e-8
        return -(b - _expand(dot / (na * na)) * a) / _expand(na * nb)
    if kind == "pairwise" and p == math.inf and ties is not None:
        return factor / _expand(ties)
    if kind != "pairwise" or p in (1, math.inf):
        return factor
    v = a - b + eps
    safe = _expand(d + zero)  # v = 0 on a zero row: 0 / 1
    if p == 2:
        return v / safe
    return factor * power(B, B.abs(v), p - 1) / power(B, safe, p - 1)


# --- decisions -----------------------------------------------------------------------------------

def _decide_signs(kind, a, b, p, eps):
    """Exact signs of the components a - b (+ eps for 'pairwise')."""
    return sign_of_sum(a, -b, eps if kind == "pairwise" else 0.0)


def _decide_top(a, b, eps):
    """p = inf, for rows a, b (n, D): (1 at the components of largest |a - b + eps|, else 0;
    the number of them per row, at least 1). Long double's rounding is monotone, so the exact
    largest components are among its largest; where it sees several (3e38 + 1e-6 beside
    3e38 - 1 + 1e-6 look alike), exact rationals pick the true ones among them."""
    v = np.abs(a.astype(LD) - b.astype(LD) + LD(eps))
    top = (v == v.max(axis=-1, keepdims=True)) if v.shape[-1] else np.zeros(v.shape, bool)
    for i in np.flatnonzero(top.sum(axis=-1) > 1):
        where = np.flatnonzero(top[i])
        if np.isfinite(a[i, where]).all() and np.isfinite(b[i, where]).all():
            exact = [abs(Fraction(float(a[i, d])) - Fraction(float(b[i, d])) + Fraction(eps))
                     for d in where]
            top[i, where] = [value == max(exact) for value in exact]
    return top.astype(np.float64), np.maximum(top.sum(axis=-1), 1).astype(np.float64)


# --- cosine_embedding_loss -----------------------------------------------------------------------

def _rows(*arrays):
    return [np.atleast_2d(np.asarray(x, np.float64)) for x in arrays]


def _cos_parts(B, x1, x2):
    p = B.sum(x1 * x2, axis=-1)
    a, b = B.sum(x1 * x1, axis=-1) + EPS, B.sum(x2 * x2, axis=-1) + EPS
    root = sqrt(B, a * b)
    return p, a, b, root


def _per_row(function, args, reduction, out_shape, fmt: Format, known=None) -> Evaluated:
    """``function(B, *args)`` per row (a row's output depends on that row of every argument),
    reduced: each row for 'none' (in ``out_shape``), their sum, or their mean (``known``: what
    a faster tier certified, rows or the total)."""
    if reduction == "none":
        out = evaluate(function, args, fmt, independent="rows", known=known)
        return Evaluated(out.rounded.reshape(out_shape), np.asarray(out.exact).reshape(out_shape))
    rows = len(args[0])
    return evaluate_total(function, args, fmt, known=known,
                          finish=None if reduction == "sum" else lambda B, t: t / rows)


def _stacked(function, args, names, shape, fmt: Format, known=None) -> dict:
    """Gradients computed per row as ``function(B, *args)`` stacked on a last axis, one entry
    per name, each reshaped to ``shape`` (``known``: rows a faster tier certified)."""
    result = evaluate(function, args, fmt, independent="rows", known=known)
    return _by_name(result.rounded, result.exact, names, shape)


def _by_name(rounded, exact, names, shape) -> dict:
    """Results stacked on a last axis, one Evaluated per name, each reshaped to ``shape``."""
    return {k: Evaluated(rounded[..., i].reshape(shape), np.asarray(exact)[..., i].reshape(shape))
            for i, k in enumerate(names)}


def cosine_loss(x1, x2, y, margin, reduction, fmt: Format) -> Evaluated:
    """The exact cosine_embedding_loss rounded to fmt (y holds 1 or -1 per row)."""
    one_d = np.ndim(x1) == 1
    x1, x2 = _rows(x1, x2)
    y = np.asarray(y, np.float64).reshape(-1)
    n = x1.shape[0]
    out_shape = (() if one_d else (n,)) if reduction == "none" else ()
    if n == 0:
        return filled(out_shape, np.nan if reduction == "mean" else 0.0)
    pos, neg = (y == 1).astype(np.float64), (y == -1).astype(np.float64)
    known = signs = None
    if embedding_fast.applies(x1, x2, fmt):
        known, signs = embedding_fast.cosine_loss(x1, x2, y, margin, EPS, reduction)
        if (whole := known.whole(out_shape)) is not None:
            return whole
    # A hinge decided inactive is exactly 0: certified without the slow pass.
    zero = (cosine_hinge(x1, x2, margin, signs) < 0) | (neg == 0)

    def f(B, x1, x2, pos, zero):
        p, _, _, root = _cos_parts(B, x1, x2)
        cos = p / root
        hinge = B.where(flags(zero), 0.0, B.relu(cos - margin))
        return pos * (1 - cos) + hinge

    return _per_row(f, [x1, x2, pos, zero.astype(np.float64)], reduction, out_shape, fmt,
                    known)


def cosine_hinge(x1, x2, margin, signs=None) -> np.ndarray:
    """The sign of cos - margin per row (0 where a ball cannot decide); ``signs``: decided
    already where nonzero (the double-double tier's)."""
    def decide(B, x1, x2):
        ball = _cos_parts(B, B.asarray(x1), B.asarray(x2))
        return (_sign_decided(ball[0] / ball[3] - margin),)

    preset = None if signs is None else [np.array(signs, dtype=np.float64)]
    return _decided_by_rows(decide, _rows(x1, x2), preset)[0]


def cosine_active(x1, x2, y, margin, signs=None) -> np.ndarray:
    """Rows whose hinge cos - margin > 0 is decided positive (y = -1 rows only; ``signs`` as
    ``cosine_hinge``'s)."""
    return (cosine_hinge(x1, x2, margin, signs) > 0) & (np.asarray(y).reshape(-1) == -1)


def cosine_loss_grad(g, x1, x2, y, margin, reduction, fmt: Format) -> dict:
    """Exact gradients of cosine_embedding_loss for input1 and input2."""
    shape = np.shape(x1)
    x1, x2 = _rows(x1, x2)
    n = x1.shape[0]
    if n == 0:
        return {k: filled(shape, 0.0) for k in ("input1", "input2")}
    y = np.asarray(y, np.float64).reshape(-1)
    fast = embedding_fast.applies(x1, x2, fmt)
    signs = embedding_fast.cosine_loss(x1, x2, y, margin, EPS, "none")[1] if fast else None
    # d loss / d cos per row: -1 where y = 1, +1 where y = -1 and the hinge is active.
    factor = -(y == 1).astype(np.float64) + cosine_active(x1, x2, y, margin, signs)
    scale = np.broadcast_to(np.asarray(g, np.float64), (n,)) * factor
    count = n if reduction == "mean" else 1

    def f(B, x1, x2, scale):
        p, a, b, root = _cos_parts(B, x1, x2)
        d1 = (x2 - _expand(p / a) * x1) / _expand(root)
        d2 = (x1 - _expand(p / b) * x2) / _expand(root)
        s = _expand(scale)
        return stack(B, [s * d1 / count, s * d2 / count])

    known = embedding_fast.cosine_gradient(x1, x2, scale, count, EPS) if fast else None
    return _stacked(f, [x1, x2, scale], ("input1", "input2"), shape, fmt, known)


# --- triplet losses ------------------------------------------------------------------------------

def triplet_setting(options):
    """(kind, p, eps, margin, swap) of a triplet case's options."""
    kind = options.get("distance", "pairwise")
    return (kind, float(options.get("p", 2.0)), float(options.get("eps", 1e-6)),
            float(options.get("margin", 1.0)), bool(options.get("swap", False)))


def _wide(*rows):
    """0/1: a row's norm is at least cosine_similarity's eps (decided in float64; the specs
    keep cosine rows far from it)."""
    return [(np.sqrt(np.sum(r * r, axis=-1)) >= COSINE_SIMILARITY_EPS).astype(np.float64)
            for r in rows]


def triplet_loss(a, p_, n_, options, reduction, fmt: Format) -> Evaluated:
    """The exact triplet loss (options: distance, p, eps, margin, swap), rounded to fmt."""
    one_d = np.ndim(a) == 1
    a, p_, n_ = _rows(a, p_, n_)
    rows = a.shape[0]
    out_shape = (() if one_d else (rows,)) if reduction == "none" else ()
    if rows == 0:
        return filled(out_shape, np.nan if reduction == "mean" else 0.0)
    kind, p, eps, margin, swap = triplet_setting(options)
    fast = (embedding_fast.triplet_rows(a, p_, n_, eps, margin, swap, p, kind)
            if embedding_fast.triplet_applies((a, p_, n_), kind, p, fmt) else None)
    known = None if fast is None else embedding_fast.triplet_loss(fast, reduction)
    if known is not None and (whole := known.whole(out_shape)) is not None:
        return whole
    wa, wp, wn = _wide(a, p_, n_)
    # A hinge decided inactive is exactly 0: certified without the slow pass.
    inactive = (triplet_decisions(a, p_, n_, options, fast)[0] < 0).astype(np.float64)

    def f(B, a, p_, n_, wa, wp, wn, inactive):
        d_pos = distance(B, kind, a, p_, p, eps, (wa, wp))
        d_neg = distance(B, kind, a, n_, p, eps, (wa, wn))
        if swap:
            d_swap = distance(B, kind, p_, n_, p, eps, (wp, wn))
            d_neg = _minimum(B, d_neg, d_swap)
        return B.where(flags(inactive), 0.0, B.relu(margin + d_pos - d_neg))

    return _per_row(f, [a, p_, n_, wa, wp, wn, inactive], reduction, out_shape, fmt, known)


def _minimum(B, u, v):
    """min(u, v) = v - relu(v - u), exact in both backends."""
    return v - B.relu(v - u)


def _slope_factor(kind, u, v, p, eps):
    """(factor, zero, ties) of distance_slopes for the pair (u, v), decided exactly (ties:
    1 per row but for p = inf)."""
    signs = _decide_signs(kind, u, v, p, eps)
    zero = (~signs.any(axis=-1)).astype(np.float64) if signs.shape[-1] else np.ones(
        signs.shape[:-1])
    ties = np.ones(signs.shape[:-1])
    if kind == "relu-l1":
        return (signs > 0).astype(np.float64), zero, ties
    if kind == "pairwise" and p == math.inf:
        top, ties = _decide_top(u, v, eps)
        return signs * top, zero, ties
    return signs, zero, ties


def triplet_decisions(a, p_, n_, options, fast=None):
    """Per row: the hinge's sign (-1, 1, or 0 where a ball cannot decide) and the weights of
    d(a, n) and d(p, n) in swap's min (a tie splits evenly, as torch's min does); ``fast``: the
    double-double tier's rows (``embedding_fast.TripletRows``), whose decided signs stand."""
    kind, p, eps, margin, swap = triplet_setting(options)
    a, p_, n_ = _rows(a, p_, n_)

    def decide(B, a, p_, n_, wa, wp, wn):
        balls = [B.asarray(x) for x in (a, p_, n_)]
        d_pos = distance(B, kind, balls[0], balls[1], p, eps, (wa, wp))
        d_neg = distance(B, kind, balls[0], balls[2], p, eps, (wa, wn))
        if not swap:
            return (_sign_decided(margin + d_pos - d_neg),)
        d_swap = distance(B, kind, balls[1], balls[2], p, eps, (wp, wn))
        order = _sign_decided(d_neg - d_swap)  # > 0: d(p, n) is smaller; 0: undecided
        return _sign_decided(margin + d_pos - _minimum(B, d_neg, d_swap)), order

    preset = None if fast is None else [fast.hinge.copy(), fast.order.copy()][:2 if swap else 1]
    hinge, *order = _decided_by_rows(decide, [a, p_, n_, *_wide(a, p_, n_)], preset)
    if kind in ("l1", "relu-l1") or (kind == "pairwise" and p in (1.0, 2.0, math.inf)):
        finite = np.isfinite(a).all(axis=1) & np.isfinite(p_).all(axis=1) & \
            np.isfinite(n_).all(axis=1)
        for i in np.flatnonzero(((hinge == 0) | (order[0] == 0 if swap else False)) & finite):
            exact = _exact_triplet_decisions(kind, a[i], p_[i], n_[i], p, eps, margin, swap)
            hinge[i] = exact[0]
            if swap:
                order[0][i] = exact[1]
    take_neg, take_swap = np.ones(a.shape[0]), np.zeros(a.shape[0])
    if swap:
        take_neg = np.where(order[0] > 0, 0.0, np.where(order[0] < 0, 1.0, 0.5))
        take_swap = 1.0 - take_neg
    return hinge, take_neg, take_swap


def _exact_triplet_decisions(kind, a, p_, n_, p: float, eps: float, margin: float,
                             swap: bool):
    """(sign of the hinge margin + d(a, p) - d(a, n'), sign of d(a, n) - d(p, n)) of one row
    for the distances 'l1', 'relu-l1' and 'pairwise' ||u - v + eps||_p with p = 1, 2 or inf,
    in exact rationals (0 at an exact kink or tie). For p = 2 the distances are square roots
    of rationals: their order is their squares', and the hinge's sign comes from squaring it
    twice."""
    def measure(u, v):  # d (p = 1, inf, the l1 kinds) or d^2 (p = 2), exactly
        w = [Fraction(float(x)) - Fraction(float(y)) for x, y in zip(u, v)]
        if kind != "pairwise":
            return sum((abs(x) if kind == "l1" else max(x, 0) for x in w), Fraction(0))
        w = [x + Fraction(eps) for x in w]
        if p == 1.0:
            return sum((abs(x) for x in w), Fraction(0))
        if p == math.inf:
            return max((abs(x) for x in w), default=Fraction(0))
        return sum((x * x for x in w), Fraction(0))

    def sign(x) -> float:
        return float((x > 0) - (x < 0))

    positive, negative = measure(a, p_), measure(a, n_)
    order = 0.0
    if swap:
        other = measure(p_, n_)
        order = sign(negative - other)
        negative = min(negative, other)
    m = Fraction(margin)
    if kind != "pairwise" or p != 2.0:
        return sign(m + positive - negative), order
    # sign(m + sqrt(A) - sqrt(B)): negative where m + sqrt(A) < 0; else that of
    # (m + sqrt(A))^2 - B = R + T, R = m^2 + A - B and T = 2 m sqrt(A), T^2 = 4 m^2 A
    A, B = positive, negative
    if m < 0 and A < m * m:
        return -1.0, order
    R, T_sign = m * m + A - B, sign(m) if A else 0.0
    if T_sign == 0 or sign(R) in (0.0, T_sign):
        return (sign(R) if R else T_sign), order
    return sign(R) * sign(R * R - 4 * m * m * A), order


def _decided_by_rows(decide, rows: list, signs: list | None = None) -> list:
    """``decide(B, *rows)``: signs per row (-1, 1, or 0 where its balls cannot decide), with
    float64 balls, then long double balls on the rows any sign left at 0. Balls never decide
    wrongly, so a sign either decides is the true one; float64 decides nearly every row, about
    ten times faster. ``signs``: decided already (by a rigorous bound), balls only where a
    sign is 0."""
    if signs is None:
        signs = list(decide(FLOAT64_BALLS, *rows))
    open_rows = np.any([s == 0 for s in signs], axis=0)
    if open_rows.any():
        for sign, again in zip(signs, decide(_LD, *(r[open_rows] for r in rows))):
            sign[open_rows] = np.where(sign[open_rows] != 0, sign[open_rows], again)
    return signs


def triplet_loss_grad(g, a, p_, n_, options, reduction, fmt: Format) -> dict:
    """Exact gradients of the triplet loss for anchor, positive and negative."""
    shape = np.shape(a)
    names = ("anchor", "positive", "negative")
    a, p_, n_ = _rows(a, p_, n_)
    rows = a.shape[0]
    if rows == 0:
        return {k: filled(shape, 0.0) for k in names}
    kind, p, eps, margin, swap = triplet_setting(options)
    fast = (embedding_fast.triplet_rows(a, p_, n_, eps, margin, swap, p, kind)
            if embedding_fast.triplet_applies((a, p_, n_), kind, p, fmt) else None)
    hinge, take_neg, take_swap = triplet_decisions(a, p_, n_, options, fast)
    active = (hinge > 0).astype(np.float64)
    count = rows if reduction == "mean" else 1
    scale = np.broadcast_to(np.asarray(g, np.float64), (rows,)) * active  # exact
    known = None if fast is None else embedding_fast.triplet_gradient(
        a, p_, n_, fast, eps, scale, take_neg, take_swap, count)
    if known is not None and (whole := known.whole()) is not None:  # no slope factors needed
        return _by_name(whole.rounded, whole.exact, names, shape)
    wa, wp, wn = _wide(a, p_, n_)
    factors = [x for u, v in ((a, p_), (a, n_), (p_, n_)) for x in _slope_factor(kind, u, v, p,
                                                                                    eps)]

    def f(B, a, p_, n_, scale, take_neg, take_swap, f_pos, z_pos, t_pos, f_neg, z_neg, t_neg,
          f_swap, z_swap, t_swap, wa, wp, wn):
        def slopes(u, v, factor, zero, ties, wide):
            """(d distance / d u, d distance / d v)."""
            d = distance(B, kind, u, v, p, eps, wide)
            first = distance_slopes(B, kind, u, v, d, factor, zero, p, eps, wide, ties)
            if kind != "cosine":
                return first, -first  # a function of u - v
            return first, distance_slopes(B, kind, v, u, d, factor, zero, p, eps, wide[::-1],
                                          ties)

        pos = slopes(a, p_, f_pos, z_pos, t_pos, (wa, wp))
        neg = [x * _expand(take_neg) for x in slopes(a, n_, f_neg, z_neg, t_neg, (wa, wn))]
        s = _expand(scale / count)
        parts = [s * (pos[0] - neg[0]), s * pos[1], -(s * neg[1])]
        if swap:
            g_swap = [x * _expand(take_swap)
                      for x in slopes(p_, n_, f_swap, z_swap, t_swap, (wp, wn))]
            parts = [parts[0], parts[1] - s * g_swap[0], parts[2] - s * g_swap[1]]
        return stack(B, parts)

    args = [a, p_, n_, scale, take_neg, take_swap, *factors, wa, wp, wn]
    return _stacked(f, args, names, shape, fmt, known)
