"""multilabel_margin_loss's fast tier for the value: its hinges in plain float64, one error bound
per row (for float64 results, in double-double, with the gradient's counts: ``float64_rows``).

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
from .compiled_kernels import kernels, known, known_total
from .engine import ESTIMATE_ULPS, Known, certify, parallel_map, row_chunks
from .formats import FORMATS, Format

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


def float64_rows(x, labels, counted):
    """(hi, lo, error (N,), active counts (N, C)) of ``double_double.multilabel_margin_rows``
    by chunks of rows on the reference's threads: each row's hinge sum as a double-double with
    its bound (inf where the row is left), and the gradient's signed counts of active pairs."""
    dd = kernels()
    rows, labels_per_row = labels.shape
    classes = x.shape[1]
    hi, lo, error = np.empty(rows), np.empty(rows), np.empty(rows)
    counts = np.zeros((rows, classes))
    x, labels = np.ascontiguousarray(x, np.float64), np.ascontiguousarray(labels)

    def chunk(part: slice):
        dd.multilabel_margin_rows(x[part], labels[part], counted[part], hi[part], lo[part],
                                  error[part], counts[part])

    parallel_map(chunk, row_chunks(rows, max(labels_per_row * classes, 1), PAIRS_PER_CHUNK))
    return hi, lo, error, counts


def _float64_value(x, labels, counted, reduction: str, classes: int) -> Known:
    """``value`` for float64 results, from the double-double hinge sums."""
    dd = kernels()
    hi, lo, error, _ = float64_rows(x, labels, counted)
    if reduction != "none":
        divisor = classes * (x.shape[0] if reduction == "mean" else 1)
        return known_total(hi, lo, error, (float(divisor), 0.0))
    ok = np.zeros(len(hi), dtype=bool)
    q_hi, q_lo, q_error = (np.empty((len(hi), 1)) for _ in range(3))
    for n in range(len(hi)):  # one quotient per row
        q_hi[n, 0], q_lo[n, 0] = dd.div(hi[n], lo[n], float(classes), 0.0)
        q_error[n, 0] = (error[n] / classes + dd.DIV_ERROR * dd.U2 * abs(q_hi[n, 0])) * SLACK
    dd.certify_elements(q_hi, q_lo, q_error, ESTIMATE_ULPS, ok.reshape(-1, 1))
    return known(q_hi[:, 0], q_lo[:, 0], ok)


def value(x, x_label, counted, reduction: str, classes: int, fmt: Format,
          labels=None) -> Known | None:
    """The loss per row ('none', each row's sum over C) or reduced (the total over C, or over
    C N for 'mean'), certified where this tier can; None where it does not apply. For float64
    results (``labels``: each row's listed classes), the hinges in double-double."""
    if x.shape[0] == 0:
        return None
    if fmt == FORMATS["float64"] and kernels() is not None and labels is not None:
        return _float64_value(x, labels, counted, reduction, classes)
    if not applies(fmt):
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
