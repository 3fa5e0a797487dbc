"""multilabel_margin_loss's fast tier for the value: its hinges in plain float64, one error bound
per row.

A row's loss sums max(0, 1 - x_j + x_i) over its listed labels j and unlisted classes i:
labels x classes hinges, millions in a batch. The ball tiers carry a radius beside each; this
tier computes them in four passes and bounds a row's error at once, then ``engine.certify``
decides and the ball tiers take the rows (or the total) it leaves (``engine.Known``).

The bound, for one row, u = 2^-53: a = 1 - x_j and t = a + x_i are each one rounding, so the
computed t errs by at most d = u |a| + u |t| (to first order), and max(0, .) passes an error on
without growing it, only where the computed t > -eps (eps >= every d of the row: elsewhere the
exact hinge is 0 too). Over the row, those errors add up to at most u (C sum_j |a_j| + S + K C
eps) (S the computed sum, K the listed labels, C the classes), and the sum of the K C hinges,
nonnegative, errs by at most gamma(K C) S in any order. Every bound is widened a little for its
own rounding and for second-order terms. A row with a value that is not finite is left to the
ball tiers, as is every exact tie of the format (a ball of positive radius cannot certify one).
"""

from __future__ import annotations

import numpy as np

from .balls import FLOAT64, Ball, quiet
from .engine import Known, certify, parallel_map, row_chunks
from .formats import Format

U = FLOAT64.unit_roundoff
SLACK = 1 + 2.0 ** -40  # second-order terms and the bounds' own roundings
PAIRS_PER_CHUNK = 1 << 20  # hinges computed per task


def applies(fmt: Format) -> bool:
    """Whether the tier covers results rounded to ``fmt``: 8 or more bits narrower than
    float64 (float32, float16, bfloat16)."""
    return fmt.precision + 8 <= 53


def gamma(n: int) -> float:
    """The relative error bound of a sum of n nonnegative terms, in any order."""
    return n * U / (1 - n * U)


def row_sums(x, x_label, counted):
    """(sums (N,), radii (N,), finite (N,)): each row's sum of counted hinges and a bound on
    its error, from x (N, C), x at the listed labels (N, K) and the counted pairs (N, K, C)."""
    x, x_label = np.asarray(x, np.float64), np.asarray(x_label, np.float64)
    rows, labels = x_label.shape
    classes = x.shape[1]

    def chunk(part: slice):
        x_part, listed = x[part], counted[part].any(axis=2)
        with quiet():
            a = np.where(listed, 1 - x_label[part], 0.0)  # (n, K)
            hinges = np.maximum(a[:, :, None] + x_part[:, None, :], 0.0)
            hinges *= counted[part]
            sums = hinges.sum(axis=(1, 2))
            largest_a = np.abs(a).max(axis=1, initial=0.0)
            eps = U * (2 * largest_a + np.abs(x_part).max(axis=1, initial=0.0)) * SLACK
            near = U * (classes * np.abs(a).sum(axis=1) + sums
                        + listed.sum(axis=1) * classes * eps)
            radii = (near + gamma(labels * classes) * sums) * SLACK
        finite = np.isfinite(sums) & np.isfinite(radii)
        return sums, radii, finite

    parts = parallel_map(chunk, row_chunks(rows, max(labels * classes, 1), PAIRS_PER_CHUNK))
    return tuple(np.concatenate(values) for values in zip(*parts))


def value(x, x_label, counted, reduction: str, classes: int, fmt: Format) -> Known | None:
    """The loss per row ('none', each row's sum over C) or reduced (the total over C, or over
    C N for 'mean'), certified where this tier can; None where it does not apply."""
    if not applies(fmt) or x.shape[0] == 0:
        return None
    sums, radii, finite = row_sums(x, x_label, counted)
    if reduction == "none":
        values = sums / classes
        ball = Ball(values, (radii / classes + U * np.abs(values)) * SLACK)
        rounded, ok = certify(ball, fmt)
        return Known(rounded, values, ok & finite)
    if not finite.all():
        return None
    divisor = classes * (x.shape[0] if reduction == "mean" else 1)
    total = sums.sum()
    radius = radii.sum() * SLACK + gamma(len(sums)) * total
    values = np.array(total / divisor)
    ball = Ball(values, (radius / divisor + U * np.abs(values)) * SLACK)
    rounded, ok = certify(ball, fmt)
    return Known(rounded, values, ok)
