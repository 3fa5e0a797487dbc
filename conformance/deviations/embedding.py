"""torch 2.13's known deviations in the embedding family."""

from __future__ import annotations

import numpy as np

from loss_reference.embedding import EPS
from loss_reference.formats import FORMATS

from ..cases import Case, round_to
from ..specs.embedding_cases import distance_kind
from . import KnownDeviation


def _cosine_norm_product_leaves_range(case: Case) -> bool:
    """Whether a quantity torch 2.13 rounds to the dtype inside cosine_embedding_loss leaves
    its normal range: a square or product of elements, |x1|^2 + EPS, |x2|^2 + EPS, their
    product (overflow: cos becomes 0 or nan; below the smallest normal, including float16's
    EPS, which rounds to 0 so that a zero vector gives 0 / 0)."""
    x1 = np.atleast_2d(np.asarray(case.args["input1"], np.float64))
    x2 = np.atleast_2d(np.asarray(case.args["input2"], np.float64))
    if x1.size == 0:
        return False
    fmt = FORMATS[case.dtype]
    with np.errstate(over="ignore", invalid="ignore"):
        products = np.concatenate([np.abs(x1 * x2), x1 * x1, x2 * x2], -1)
        a = round_to(np.sum(x1 * x1, -1) + EPS, case.dtype)
        b = round_to(np.sum(x2 * x2, -1) + EPS, case.dtype)
        ab = a * b
        limit = fmt.max_finite
        over = (np.any(products > limit) or np.any(np.abs(np.sum(x1 * x2, -1)) > limit)
                or np.any(np.sum(x1 * x1, -1) > limit) or np.any(np.sum(x2 * x2, -1) > limit)
                or np.any(ab > limit))
    return bool(over or np.any(ab < 2.0 ** fmt.min_exponent))


def _pairs(case: Case):
    """(p, eps, [(u, v)]) of a triplet case whose distance is pairwise_distance, else None."""
    if case.options.get("distance_function") is not None:
        return None
    a, p_, n_ = (np.atleast_2d(np.asarray(case.args[k], np.float64))
                 for k in ("anchor", "positive", "negative"))
    pairs = [(a, p_), (a, n_)] + ([(p_, n_)] if case.options.get("swap") else [])
    return float(case.options.get("p", 2.0)), float(case.options.get("eps", 1e-6)), pairs


def _norm_powers_overflow(case: Case) -> bool:
    """Whether pairwise_distance's sum of |a - b + eps|^p leaves the range of the precision
    torch 2.13 accumulates it in (float32 for float16/bfloat16/float32, float64 for float64),
    or a difference a - b + eps or a distance leaves the dtype's range: the norm is then inf (and
    the loss inf - inf = nan) although the loss, a difference of distances, is finite."""
    found = _pairs(case)
    if found is None or case.args["anchor"].size == 0:
        return False
    p, eps, pairs = found
    p = 1.0 if p == np.inf else p  # the maximum: only the differences can overflow
    limit = FORMATS["float64" if case.dtype == "float64" else "float32"].max_finite
    largest = FORMATS[case.dtype].max_finite
    with np.errstate(over="ignore"):
        sums = [np.sum(np.abs(u - v + eps) ** p, -1) for u, v in pairs]
        differences = any(bool(np.any(np.abs(u - v + eps) > largest)) for u, v in pairs)
        return differences or any(bool(np.any(s > limit) or np.any(s ** (1 / p) > largest))
                                  for s in sums)


def _norm_power_leaves_range(case: Case) -> bool:
    """Whether the gradient of pairwise_distance for p other than 1, 2 and inf divides by a
    d^(p - 1) that torch 2.13 forms in the input dtype and that lies below its smallest normal
    (0 / 0 = nan, or a subnormal quotient) or above its range, or forms a |v|^(p - 1) there
    that overflows (inf / inf = nan, even where the hinge is inactive: 0 * nan)."""
    found = _pairs(case)
    if found is None or found[0] in (1.0, 2.0, np.inf) or case.args["anchor"].size == 0:
        return False
    p, eps, pairs = found
    fmt = FORMATS[case.dtype]
    tiny, largest = 2.0 ** fmt.min_exponent, fmt.max_finite
    with np.errstate(under="ignore", over="ignore"):
        for u, v in pairs:
            z = np.abs(u - v + eps)
            power = np.sum(z ** p, -1) ** ((p - 1) / p)
            if np.any(power < tiny) or np.any(power > largest) or np.any(z ** (p - 1) > largest):
                return True
    return False


def _triplet_applies(case: Case) -> bool:
    return _norm_powers_overflow(case) or _norm_power_leaves_range(case)


def _float16_cosine_of_a_zero_norm(case: Case) -> bool:
    """Whether a float16 triplet with the cosine distance has a row of anchor, positive or
    negative whose squared norm rounds to 0 in float16: F.cosine_similarity's eps, 1e-8, is 0
    in float16, so its quotient is 0 / 0."""
    if case.dtype != "float16" or distance_kind(case.options) != "cosine":
        return False
    with np.errstate(under="ignore"):
        return any(bool(np.any(round_to(np.sum(np.square(np.asarray(case.args[k], np.float64)),
                                                -1), "float16") == 0))
                   for k in ("anchor", "positive", "negative"))


_COSINE_REASON = (
    "torch 2.13's F.cosine_similarity in float16 has eps = 1e-8, which is 0 in float16, so a "
    "vector whose squared norm is 0 in float16 (a zero vector) gives 0 / 0 = nan, where the "
    "cosine of a zero vector is 0 (its eps, as in float32 and bfloat16) and the distance 1: "
    "anchor = negative = zeros(1, 6), positive [[1e-5, 2.5, -8e-4, 0, 3386, -0.2]], distance "
    "1 - cosine_similarity, margin 3.7, 'sum' gives nan in float16, 3.6875 in bfloat16 and 3.7 "
    "in float32 (exact 3.7; quick profile seed 17)")

_TRIPLET_REASON = (
    "torch 2.13 CPU's pairwise_distance sums |a - b + eps|^p without scaling, accumulating in "
    "float32 (float64 for float64), so where that sum overflows the norm is inf and the loss "
    "inf - inf = nan although every distance is finite: float32 anchor [[1e20, 0]], positive "
    "[[0, 0]], negative [[-1e20, 0]] gives nan, exact 0 (max(0, 1 + 1e20 - 2e20)); float16 "
    "rows of 1024 elements near 6e4 have distances near 2e6, which float16 cannot hold: nan "
    "where the loss is 1; float16 p = inf, anchor [[6e4, 0]], positive [[-3e4, 0]] forms a - b = "
    "inf; "
    "and its gradient for p not 1, 2 or inf divides by d^(p - 1) formed in the input dtype: "
    "float16 p = 3 with anchor == negative (d = ||eps||_3 = 1.6e-6, d^2 underflows) gives a nan "
    "gradient, exact 0.39 per component; float16 p = 3, anchor [[17] * 4], positive [[17, 17, 17, "
    "18]], negative [[17, 17, 17, 273]] gives a nan gradient (256^2 overflows), exact 0")

VERIFIED_ON = ("2.13.0",)  # torch releases these deviations were verified on

DEVIATIONS = (
    KnownDeviation(
        impl="torch", loss="cosine_embedding_loss", applies=_cosine_norm_product_leaves_range,
        reason="torch 2.13 CPU forms |x1|^2 + EPS, |x2|^2 + EPS and their product in the input "
               "dtype before the square root, so where that product leaves the dtype's range "
               "the cosine (and its gradient) is lost although the loss is well defined: "
               "float32 x1 = [17] * 6, x2 = [17] * 5 + [1e30], y = 1 gives 1.0 (the product "
               "is inf, cos = 0), exact 0.59175; float16 [[300, 1]] against [[300, 2]] gives "
               "nan, exact 5.5e-6; and in float16 EPS = 1e-12 rounds to 0, so a zero vector "
               "gives nan (0 / 0) where the loss is 1 (y = 1): x1 = [[0, 0]], x2 = [[1, 1]]"),
    KnownDeviation(impl="torch", loss="triplet_margin_loss", applies=_triplet_applies,
                   reason=_TRIPLET_REASON),
    KnownDeviation(impl="torch", loss="triplet_margin_with_distance_loss",
                   applies=_triplet_applies, reason=_TRIPLET_REASON),
    KnownDeviation(impl="torch", loss="triplet_margin_with_distance_loss",
                   applies=_float16_cosine_of_a_zero_norm, reason=_COSINE_REASON),
)
