"""The embedding family: cosine_embedding_loss, triplet_margin_loss,
triplet_margin_with_distance_loss.

Contract (torch 2.13's documentation, with these decisions; torch's behaviour verified):

- Shapes: rows of embeddings, (N, D) or one row (D,) (then the target of the cosine loss is
  0-d and 'none' gives a 0-d result); 'none' gives (N,). The mean of no rows is nan, the sum 0.
  torch also broadcasts a (1, D) argument against (N, D), and the triplet losses accept any
  rank (distance over the last axis): outside the documented contract, neither drawn nor
  required to raise. Calls torch rejects are in ``invalid_calls``.
- cosine_embedding_loss: cos = x1.x2 / sqrt((|x1|^2 + EPS)(|x2|^2 + EPS)), EPS = 1e-12 as a
  float32 (9.999999960041972e-13: torch's constant is a C++ float; its float64 results show
  it). The loss of a row is 1 - cos where y = 1 and max(0, cos - margin) where y = -1; torch
  gives 0 for any other y (not drawn: the documentation says 1 or -1). Any real margin (torch
  does not check it; drawn in [-1, 1]). A zero vector has cos = 0 (loss 1 or max(0, -margin))
  and the finite gradient of the eps formula (B41). Differentiable in input1 and input2; torch
  does not differentiate the target.
- triplet_margin_loss: max(0, margin + d(a, p) - d(a, n)), d = pairwise_distance =
  ||a - b + eps||_p (eps added to the difference, every component); swap replaces d(a, n) by
  min(d(a, n), d(p, n)). margin must be > 0 (torch 2.13 raises ValueError for margin <= 0, in
  both triplet losses). p in {1, 1.5, 2, 3, inf} is drawn (torch accepts any p, also p < 1,
  which is not a norm: not drawn); eps in {0, 1e-6, 1e-3, 0.5}. The gradient of the norm where
  a - b + eps = 0 exactly is 0 (torch), so is a component's for p = 1; for p = inf the
  gradient goes to the largest |component|, split evenly between exact ties, as is the
  gradient between d(a, n) and d(p, n) at an exact tie of swap's min.
- triplet_margin_with_distance_loss: distance_function None is pairwise_distance (p = 2,
  eps = 1e-6); user functions are drawn as ``embedding_cases.Distance`` objects (converted per
  framework by the core): 'l1' (a - b).abs().sum(-1), 'relu-l1' relu(a - b).sum(-1) (not
  symmetric, so the order of the arguments, (a, p), (a, n), (p, n), shows), and 'cosine'
  1 - F.cosine_similarity(a, b) (rows kept away from its eps). Gradients of user functions at
  their kinks follow torch's abs / relu (0 at a_i = b_i, decidable exactly).
- Hinge kinks: within rounding distance of margin + d(a, p) - d(a, n) = 0 (or cos = margin),
  either side's gradient is accepted; likewise near a tie of swap's min, a zero difference and
  a tie of p = inf's maximum (slack below).

Tolerances (conformance/accuracy.py):

- terms, per row: cosine: y = 1: 1 + c, y = -1: c + |margin|, with c = sum|x1 x2| / sqrt(AB)
  (<= 1: every rounding inside cos errs relative to sqrt(AB) by the Cauchy-Schwarz bound);
  triplet: |margin| + S(a, p) + S(a, n) (+ S(p, n) under swap), S of a distance
  ||a - b||_p + ||a - b + eps||_p for pairwise (the error of the rounded difference and of
  adding eps, carried through a norm, which has condition 1), sum|a - b| for l1 and relu-l1,
  1 + sum|a b| / (|a| |b|) for cosine. 'sum' adds the rows' S, 'mean' divides by N;
  summation(N) for the reduction, cascade.
- inner sums: each row reduces D products or powers, accumulated in u_acc: an absolute
  allowance summation(D) u_acc S (twice for cosine: the dot product and the norms) enters
  as Magnitude.slack (Magnitude has one summation count; the row sums are a second level).
- depth: cosine 8 (product, + EPS, product of norms, sqrt, divide, 1 - cos or cos - margin,
  mean, upstream); cosine gradient 16 (the longest path of the chain rule through the norms:
  forward |x2|^2 (2), AB, sqrt, P; backward g P, / sqrt(AB)^2 (2), / 2 sqrt(AB), * |x2|^2,
  * 2 x1, + the direct term g x2 / sqrt(AB), mean, upstream: measured, torch's float64
  gradient errs by 31 u S where the two terms cancel); triplet 10 (difference, + eps,
  power (2 for p not 1, 2), root (2), margin + d - d (2), mean, upstream) and 12 for its gradients.
  The root s^(1/p) takes 1/p rounded in the accumulating precision: |ln d| u_acc of d more
  (for p other than 1, 2 and inf), and (p - 1) times that of a slope (torch's float64
  triplet_margin_loss at d = 1e30, p = 3 erred by 34 u of d; default profile, seed 9).
- gradients: per element |g| / N' times: cosine (|x2| + sum|x1 x2| / A |x1|) / sqrt(AB) (and
  the same with 1 and 2 exchanged; P's terms, not P, which may cancel); triplet, per distance
  taking part: pairwise (p-1)|slope| ((|a - b| + |v| + eps) / |v| + S / d) (the relative error
  of |v|^(p-1) / d^(p-1)), or |slope| for p = 1 and inf; l1 / relu-l1 1; cosine
  2 (|b| + sum|ab| |a| / |a|^2) / (|a||b|).
- slack (either side of a kink): |g| / N' times the jump of the derivative: cosine
  |d cos / dx| where |cos - margin| is within the rounding bound of the row; triplet 2 per
  distance taking part near the hinge, 2 between d(a, n) and d(p, n) near a tie, 2 for a
  pairwise distance whose difference is within rounding distance of 0 (each partial derivative
  of a p-norm, p >= 1, lies in [-1, 1]), or whose |v|^p underflow the dtype.
- underflow: products or powers below the dtype's smallest normal err absolutely by one
  subnormal unit each; the cosine divides them by sqrt(AB) (amplification 1 + 1 / sqrt(AB)
  per underflowing term, times |g| / N' and the slope for gradients). A p-norm's backward
  computes g / d^(p-1), which may underflow, then multiplies it by |w|^(p-1) (torch: one
  feature of 34944 and g at the smallest normal gives bfloat16's g / 187 = one subnormal unit,
  then 1.72e-38 for 1.18e-38; quick profile seed 13): amplification 1 + sum |w|^(p-1) over
  the distances taking part, per element. The cosine distance of triplet_margin_with_distance_
  loss: F.cosine_similarity normalises each argument (x / |x|), and its backward divides by |x|
  an intermediate that may underflow (torch, float16: g p_j / |p| = 9e-7, 15 subnormal units,
  then / |a| = 7e-4, gave a gradient element 1.7 % from the exact one, 22.5 ulp; quick profile
  seed 32): amplification 1 + sum (1 / |u| + 1 / |v|) over the distances taking part, at the
  elements where x_j / |x| or g x_j / |x| underflows.
"""

from __future__ import annotations

import math

import numpy as np

from loss_reference import embedding as ref
from loss_reference.formats import format_of

from ..accuracy import Magnitude, accumulation_roundoff, summation_units
from . import Spec, reduction_variants
from .speed import ladder, normal_values, output_of, rows_output, signs, typical_case, variant
from .embedding_cases import (LOSSES, POSITIONAL, Distance, cases_for, distance_kind, edges_for,
                              invalid_for)

DEPTH = {"cosine_embedding_loss": (8, 16), "triplet_margin_loss": (10, 12),
         "triplet_margin_with_distance_loss": (10, 12)}
_QUIET = {"over": "ignore", "invalid": "ignore", "divide": "ignore", "under": "ignore"}


def _variants():
    return reduction_variants()


def _rows(case, name):
    arrays = [np.atleast_2d(np.asarray(case.args[n], np.float64)) for n in POSITIONAL[name]]
    return arrays, case.options["reduction"]


def _upstream(case, rows):
    g = np.abs(np.asarray(case.grad_output, np.float64))
    return np.broadcast_to(g.reshape(-1) if g.ndim else g, (rows,))


def _reduced(per_row, slack, amp, n, depth, reduction, shape):
    """The Magnitude of a per-row quantity after the reduction."""
    if reduction == "none":
        return Magnitude(per_row.reshape(shape), 1, depth, slack=slack.reshape(shape),
                         amplification=amp.reshape(shape))
    divisor = max(n, 1) if reduction == "mean" else 1
    return Magnitude(np.array(per_row.sum() / divisor), max(n, 1), depth,
                     slack=float(slack.sum() / divisor), amplification=float(amp.sum()))


def _out_shape(case, name):
    first = np.shape(case.args[POSITIONAL[name][0]])
    return first[:-1]


# --- cosine_embedding_loss ------------------------------------------------------------------------

@np.errstate(**_QUIET)
def _cosine_parts(x1, x2, fmt):
    a = np.sum(x1 * x1, -1) + ref.EPS
    b = np.sum(x2 * x2, -1) + ref.EPS
    root = np.sqrt(a * b)
    cos = np.sum(x1 * x2, -1) / root
    c = np.sum(np.abs(x1 * x2), -1) / root
    tiny = 2.0 ** fmt.min_exponent
    under = (np.sum((np.abs(x1 * x2) < tiny) & (x1 * x2 != 0), -1)
             + np.sum((x1 * x1 < tiny) & (x1 != 0), -1) + np.sum((x2 * x2 < tiny) & (x2 != 0), -1))
    return a, b, root, cos, c, under * (1 + 1 / root)


def _cosine_magnitude(case):
    (x1, x2, y), reduction = _rows(case, "cosine_embedding_loss")
    fmt = format_of(case.dtype)
    y = y.reshape(-1)
    margin = float(case.options.get("margin", 0.0))
    _, _, _, cos, c, amp = _cosine_parts(x1, x2, fmt)
    per_row = np.where(y == 1, 1 + c, c + abs(margin))
    inner = 2 * summation_units(x1.shape[-1]) * accumulation_roundoff(fmt) * c
    return _reduced(per_row, inner, amp, x1.shape[0], DEPTH["cosine_embedding_loss"][0],
                    reduction, _out_shape(case, "cosine_embedding_loss"))


@np.errstate(**_QUIET)
def _cosine_grad_magnitudes(case):
    (x1, x2, y), reduction = _rows(case, "cosine_embedding_loss")
    fmt = format_of(case.dtype)
    y, rows = y.reshape(-1), x1.shape[0]
    shape = np.shape(case.args["input1"])
    margin = float(case.options.get("margin", 0.0))
    a, b, root, cos, c, amp = _cosine_parts(x1, x2, fmt)
    p = cos * root
    count = max(rows, 1) if reduction == "mean" else 1
    g = _upstream(case, rows) / count
    depth = DEPTH["cosine_embedding_loss"]
    err_row = ((depth[0] * fmt.unit_roundoff + 2 * summation_units(x1.shape[-1])
                * accumulation_roundoff(fmt)) * (c + abs(margin))
               + (depth[0] + 2 * x1.shape[-1]) * fmt.smallest_subnormal * amp)
    near = (y == -1) & (np.abs(cos - margin) <= err_row)
    inner = 2 * summation_units(x1.shape[-1]) * accumulation_roundoff(fmt)
    out = {}
    for name, (u, v, norm_u) in {"input1": (x1, x2, a), "input2": (x2, x1, b)}.items():
        slope = (v - (p / norm_u)[:, None] * u) / root[:, None]
        # P's terms, sum |x1 x2| = c sqrt(AB), bound the error of the rounded dot product.
        size = (np.abs(v) + (c * root / norm_u)[:, None] * np.abs(u)) / root[:, None]
        scale = g[:, None] * size
        slack = np.where(near[:, None], g[:, None] * np.abs(slope), 0) + inner * scale
        # An intermediate that underflows (g / sqrt(AB), a product of the backward) is then
        # multiplied by elements, |x|^2, P / A and 1 / sqrt(AB): each magnifies its absolute
        # error (torch: g P / AB / (2 sqrt(AB)) underflows, then * |x2|^2 * 2 x1).
        later = ((1 + np.abs(u).max(-1, initial=0) + np.abs(v).max(-1, initial=0))
                 * (1 + a + b) * (1 + np.abs(p / a) + np.abs(p / b)) * (1 + 1 / root))[:, None]
        amplification = (1 + g[:, None]) * (1 + amp[:, None]) * (1 + size) * later
        out[name] = Magnitude(scale.reshape(shape), 1, depth[1], slack=slack.reshape(shape),
                              amplification=amplification.reshape(shape))
    return out


# --- triplet losses ------------------------------------------------------------------------------

def triplet_options(case, name):
    """The case's options as the triplet reference takes them (the distance function of
    triplet_margin_with_distance_loss named by its kind)."""
    options = dict(case.options)
    if name == "triplet_margin_with_distance_loss":
        options = {"margin": options.get("margin", 1.0), "swap": options.get("swap", False),
                   "distance": distance_kind(options)}
    return options


def _pairs(swap):
    return (("anchor", "positive"), ("anchor", "negative")) + (
        (("positive", "negative"),) if swap else ())


@np.errstate(**_QUIET)
def _distance_parts(kind, u, v, p, eps, fmt):
    """(d, S, slope, size, near-zero per element, underflow count per row, the factor a
    backward intermediate is multiplied by after it may underflow, per element, the root's
    relative error from its rounded exponent 1/p, per row) of one pair."""
    diff = u - v
    if kind == "pairwise":
        w = diff + eps
        z = np.abs(w)
        if p == math.inf:
            d = z.max(-1, initial=0.0)
            s = np.abs(diff).max(-1, initial=0.0) + d
            slope = np.sign(w) * (z == d[:, None])
        else:
            d = np.sum(z ** p, -1) ** (1 / p)
            s = np.sum(np.abs(diff) ** p, -1) ** (1 / p) + d
            slope = np.sign(w) * np.where(d[:, None] > 0, (z / np.where(d > 0, d, 1)[:, None])
                                          ** (p - 1), 0)
        bound = 4 * fmt.unit_roundoff * (np.abs(diff) + eps) + fmt.smallest_subnormal
        zero_near = z <= bound
        tiny = 2.0 ** fmt.min_exponent
        powers = z ** (2 if p == math.inf else p)
        under = np.sum((powers < tiny) & (z > 0), -1)
        if p in (1, math.inf):
            size = np.abs(slope) + 0.0
        else:
            size = (p - 1) * np.abs(slope) * ((np.abs(diff) + z + eps) / np.where(z > 0, z, 1)
                                              + (s / np.where(d > 0, d, 1))[:, None])
        if p == 1:
            near = zero_near
        else:
            row_near = zero_near.all(-1) | (under > 0)
            if p == math.inf and z.shape[-1] > 1:
                top2 = np.sort(z, -1)[:, -2:]
                row_near |= (top2[:, 1] - top2[:, 0]) <= 2 * bound.max(-1)
            near = np.broadcast_to(row_near[:, None], z.shape)
        # the norm's backward, g / d^(p-1) (which may underflow) times |w|^(p-1)
        later = z ** (p - 1) if p not in (1, math.inf) else np.ones(z.shape)
        # the root s^(1/p) with 1/p rounded (relatively by u_acc) errs by |ln s| u_acc / p =
        # |ln d| u_acc of d (pow's own rounding is one of the depth's)
        root = (np.where(d > 0, np.abs(np.log(np.where(d > 0, d, 1.0))), 0.0)
                * accumulation_roundoff(fmt) if p not in (1, 2, math.inf)
                else np.zeros(d.shape))
        return d, s, slope, size, near, under, later, root
    if kind in ("l1", "relu-l1"):
        terms = np.abs(diff) if kind == "l1" else np.maximum(diff, 0)
        slope = np.sign(diff) if kind == "l1" else (diff > 0) * 1.0
        return (terms.sum(-1), np.abs(diff).sum(-1), slope, np.ones(diff.shape),
                np.zeros(diff.shape, bool), np.zeros(diff.shape[0]), np.ones(diff.shape),
                np.zeros(diff.shape[0]))
    # F.cosine_similarity's norms, clamped below at its eps (a zero vector: similarity 0)
    nu = np.maximum(np.sqrt(np.sum(u * u, -1)), ref.COSINE_SIMILARITY_EPS)
    nv = np.maximum(np.sqrt(np.sum(v * v, -1)), ref.COSINE_SIMILARITY_EPS)
    dot = np.sum(u * v, -1)
    d = 1 - dot / (nu * nv)
    s = 1 + np.sum(np.abs(u * v), -1) / (nu * nv)
    slope = -(v - (dot / nu ** 2)[:, None] * u) / (nu * nv)[:, None]
    uv = np.sum(np.abs(u * v), -1)
    size = 2 * (np.abs(v) + np.abs(u) + (uv / nu ** 2)[:, None] * np.abs(u)
                + (uv / nv ** 2)[:, None] * np.abs(v)) / (nu * nv)[:, None]
    return (d, s, slope, size, np.zeros(u.shape, bool), np.zeros(u.shape[0]), np.ones(u.shape),
            np.zeros(u.shape[0]))


@np.errstate(**_QUIET)
def _cosine_later(u, v, g, fmt):
    """Per element, what torch's backward of 1 - F.cosine_similarity(u, v) multiplies an
    intermediate that underflowed by: it normalises each argument (x / |x|) and divides by
    |u| (or |v|) what it computed from the other's components (g v_j / |v|, then / |u|), so
    1 + 1 / |u| + 1 / |v| where x_j / |x| or |g| x_j / |x| (x = u, v) lies below the smallest
    normal, 1 (as for the other distances) elsewhere."""
    tiny = 2.0 ** fmt.min_exponent
    norms = [np.maximum(np.sqrt(np.sum(x * x, -1)), ref.COSINE_SIMILARITY_EPS) for x in (u, v)]
    under = np.zeros(u.shape, bool)
    for x, norm in zip((u, v), norms):
        share = np.abs(x) / norm[:, None]
        for value in (share, np.abs(g) * share):
            under |= (value > 0) & (value < tiny)
    return 1 + np.where(under, (1 / norms[0] + 1 / norms[1])[:, None], 0.0)


def _triplet_rows(case, name):
    (a, p_, n_), reduction = _rows(case, name)
    options = triplet_options(case, name)
    kind, p, eps, margin, swap = ref.triplet_setting(options)
    fmt = format_of(case.dtype)
    args = {"anchor": a, "positive": p_, "negative": n_}
    parts = {pair: _distance_parts(kind, args[pair[0]], args[pair[1]], p, eps, fmt)
             for pair in _pairs(swap)}
    return args, parts, (kind, p, eps, margin, swap), fmt, reduction


def _triplet_magnitude(name):
    @np.errstate(**_QUIET)
    def magnitude(case):
        args, parts, (_, _, _, margin, _), fmt, reduction = _triplet_rows(case, name)
        rows, dim = args["anchor"].shape
        per_row = abs(margin) + sum(part[1] for part in parts.values())
        inner = summation_units(dim) * accumulation_roundoff(fmt) * per_row + sum(
            part[0] * part[7] for part in parts.values())
        amp = 1 + sum(part[5] for part in parts.values())
        return _reduced(per_row, inner, amp, rows, DEPTH[name][0], reduction,
                        _out_shape(case, name))

    return magnitude


def _triplet_grad_magnitudes(name):
    @np.errstate(**_QUIET)
    def grad_magnitudes(case):
        args, parts, (kind, p, eps, margin, swap), fmt, reduction = _triplet_rows(case, name)
        rows, dim = args["anchor"].shape
        shape = np.shape(case.args["anchor"])
        count = max(rows, 1) if reduction == "mean" else 1
        g = (_upstream(case, rows) / count)[:, None]
        depth = DEPTH[name]
        d = {pair: part[0] for pair, part in parts.items()}
        s_row = abs(margin) + sum(part[1] for part in parts.values())
        err_row = (depth[0] * fmt.unit_roundoff + summation_units(dim)
                   * accumulation_roundoff(fmt)) * s_row + 4 * depth[0] * fmt.smallest_subnormal
        d_neg = d[("anchor", "negative")]
        jump = {pair: 2.0 if kind != "cosine" else np.max(part[3], -1, initial=0.0)[:, None]
                for pair, part in parts.items()}
        if swap:
            d_swap = d[("positive", "negative")]
            tie = (np.abs(d_neg - d_swap) <= err_row)[:, None]
            d_neg = np.minimum(d_neg, d_swap)
        hinge = (np.abs(margin + d[("anchor", "positive")] - d_neg) <= err_row)[:, None]
        inner = summation_units(dim) * accumulation_roundoff(fmt)
        out = {}
        for arg in ("anchor", "positive", "negative"):
            mine = [pair for pair in parts if arg in pair]
            size = sum(parts[pair][3] for pair in mine)
            slack = hinge * sum(jump[pair] for pair in mine)
            if swap:
                slack = slack + tie * sum(jump[pair] for pair in mine if "negative" in pair)
            slack = slack + sum(parts[pair][4] * jump[pair] for pair in mine)
            # the slope (z / d)^(p - 1) carries d's error from the rounded exponent 1/p
            slack = slack + sum((p - 1) * np.abs(parts[pair][2]) * parts[pair][7][:, None]
                                for pair in mine if kind == "pairwise" and p != math.inf)
            scale = g * size
            later = sum(_cosine_later(args[pair[0]], args[pair[1]], g, fmt) if kind == "cosine"
                        else parts[pair][6] for pair in mine)
            amplification = (1 + g) * (1 + sum(parts[pair][5] for pair in mine))[:, None] * (
                1 + size) * (1 + later)
            out[arg] = Magnitude(scale.reshape(shape), 1, depth[1],
                                 slack=(g * slack + inner * scale).reshape(shape),
                                 amplification=amplification.reshape(shape))
        return out

    return grad_magnitudes


# --- references ----------------------------------------------------------------------------------

def _reference(name):
    def reference(case):
        fmt = format_of(case.dtype)
        args = [np.asarray(case.args[n], np.float64) for n in POSITIONAL[name]]
        reduction = case.options["reduction"]
        if name == "cosine_embedding_loss":
            return ref.cosine_loss(*args, float(case.options.get("margin", 0.0)), reduction, fmt)
        return ref.triplet_loss(*args, triplet_options(case, name), reduction, fmt)

    return reference


def _reference_grad(name):
    def reference_grad(case):
        fmt = format_of(case.dtype)
        args = [np.asarray(case.args[n], np.float64) for n in POSITIONAL[name]]
        reduction = case.options["reduction"]
        g = np.asarray(case.grad_output, np.float64)
        if name == "cosine_embedding_loss":
            return ref.cosine_loss_grad(g, *args, float(case.options.get("margin", 0.0)),
                                        reduction, fmt)
        return ref.triplet_loss_grad(g, *args, triplet_options(case, name), reduction, fmt)

    return reference_grad


# --- speed ladders -------------------------------------------------------------------------------

# (rows, embedding width): 640, 256K, 1M, 4M and 32M elements per input, as speed.py's ladder.
SPEED_SIZES = ((64, 10), (1024, 256), (4096, 256), (16384, 256), (131072, 256))


def _speed_case(name):
    def case(size, dtype, rng):
        """Embeddings N(0,1), 'mean': cosine_embedding_loss, pairs with targets +-1 (margin 0);
        the triplet losses, anchor, positive and negative (margin 1, p=2, the pairwise
        distance)."""
        names = POSITIONAL[name]
        args = {n: normal_values(size, dtype, rng) for n in names[:2]}
        if name == "cosine_embedding_loss":
            args["target"] = signs(size[0], rng)
        else:
            args[names[2]] = normal_values(size, dtype, rng)
        return typical_case(dtype, args, {"reduction": "mean"})
    return case


def _speed(name):
    names = POSITIONAL[name]
    output = output_of(rows_output, names[0])
    cosine = name == "cosine_embedding_loss"
    extra = {"cosine_embedding_loss": ("margin", variant(output, margin=0.5)),
             "triplet_margin_loss": ("swap", variant(output, swap=True)),
             "triplet_margin_with_distance_loss": (
                 "cosine", variant(output, distance_function=Distance("cosine")))}[name]
    return ladder(_speed_case(name), read=names, output=output,
                  kernel="products" if cosine else "two_distances",
                  elements=(lambda case: 3 * int(np.size(case.args["input1"]))) if cosine
                  else None,
                  differentiated=names[:2] if cosine else names, sizes=SPEED_SIZES,
                  variants=(extra, ("none", variant(output, reduction="none"))),
                  inputs="embeddings N(0,1), " + ("targets +-1, margin 0" if cosine else
                                                  "margin 1, p=2") + ", 'mean'")


def _spec(name):
    cosine = name == "cosine_embedding_loss"
    return Spec(
        name=name, family="embedding", positional=POSITIONAL[name], keyword_arrays=(),
        variants=_variants(), cases=cases_for(name), edge_cases=edges_for(name),
        invalid_calls=invalid_for(name), reference=_reference(name),
        magnitude=_cosine_magnitude if cosine else _triplet_magnitude(name),
        differentiable=POSITIONAL[name][:2] if cosine else POSITIONAL[name],
        reference_grad=_reference_grad(name),
        grad_magnitudes=_cosine_grad_magnitudes if cosine else _triplet_grad_magnitudes(name),
        speed=_speed(name),
    )


SPECS = tuple(_spec(name) for name in LOSSES)
