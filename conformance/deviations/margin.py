"""torch 2.13's known deviations in the margin family."""

from __future__ import annotations

import numpy as np

from loss_reference.formats import FORMATS

from ..cases import Case
from . import KnownDeviation


def _margin(case: Case, default: float) -> float:
    return float(case.options.get("margin", default))


def _leaves_range(case: Case, quantities) -> bool:
    """Whether any of the exact intermediates leaves the dtype's range (rounds to inf)."""
    fmt = FORMATS[case.dtype]
    limit = fmt.max_finite + fmt.ulp(np.array(fmt.max_finite)) / 2
    return any(bool(np.any(np.isnan(q) | (np.abs(q) >= limit))) for q in quantities)


def _multi_margin_empty_reduced(case: Case) -> bool:
    """An empty batch (N = 0) reduced by 'mean' or 'sum'."""
    return (case.options.get("reduction") in ("mean", "sum")
            and np.shape(case.args["input"])[0:1] == (0,))


def _ranking_intermediate_overflows(case: Case) -> bool:
    """Whether x1 - x2, y (x1 - x2) or m - y (x1 - x2), which torch rounds to the dtype
    before the hinge, leaves the dtype's range."""
    x1, x2, y = np.broadcast_arrays(*(np.asarray(case.args[n], np.float64)
                                      for n in ("input1", "input2", "target")))
    with np.errstate(over="ignore", invalid="ignore"):
        d = x1 - x2
        return _leaves_range(case, [d, y * d, _margin(case, 0.0) - y * d])


def _hinge_intermediate_overflows(case: Case) -> bool:
    """Whether m - x, which torch rounds to the dtype before clamping (and, for a target
    other than 1, before adding x back), leaves the dtype's range where the hinge is used."""
    x = np.asarray(case.args["input"], np.float64)
    y = np.asarray(case.args["target"], np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return _leaves_range(case, [np.where(y != 1, _margin(case, 1.0) - x, 0.0)])


def _multi_margin_intermediate_overflows(case: Case) -> bool:
    """Whether a hinge z = m - x[y] + x[i], its square (p = 2), its product with w[y] or a
    running sum of a sample's hinges, which torch's kernel keeps in the input dtype, leaves
    the dtype's range."""
    x = np.atleast_2d(np.asarray(case.args["input"], np.float64))
    t = np.asarray(case.args["target"], np.int64).reshape(-1)
    if x.size == 0:
        return False
    weight = case.args.get("weight")
    w = np.ones(x.shape[1]) if weight is None else np.asarray(weight, np.float64)
    rows = np.arange(x.shape[0])
    with np.errstate(over="ignore", invalid="ignore"):
        z = _margin(case, 1.0) - x[rows, t][:, None] + x
        z[rows, t] = 0.0
        z = np.maximum(z, 0.0)
        h = z * z if int(case.options.get("p", 1)) == 2 else z
        weighted = w[t][:, None] * h
        return _leaves_range(case, [z, h, weighted, np.cumsum(weighted, axis=1)])


VERIFIED_ON = ("2.13.0",)  # torch releases these deviations were verified on

DEVIATIONS = (
    KnownDeviation(
        impl="torch", loss="multi_margin_loss", applies=_multi_margin_empty_reduced,
        reason="torch 2.13 CPU multi_margin_loss on an empty batch (input (0, C)) with 'mean' "
               "or 'sum' returns uninitialised memory (seen: -1.5e-38, -2.1e18, 4.6e-310, "
               "changing run to run): F.multi_margin_loss(torch.ones(0, 4), "
               "torch.zeros(0, dtype=torch.long), reduction='sum'); exact 0 ('sum') and nan "
               "('mean')"),
    KnownDeviation(
        impl="torch", loss="margin_ranking_loss", applies=_ranking_intermediate_overflows,
        reason="torch 2.13 CPU computes margin_ranking_loss as (-y * (x1 - x2) + m).clamp_min(0) "
               "in the input dtype, so where x1 - x2 (or its product with y) overflows it "
               "returns inf, or nan for y = 0, although the exact result is finite: float16 "
               "x1 = [6e4, 0, 0, 0], x2 = [-3e4, 0, 0, 0], y = [-1, 1, 1, 1], 'mean' gives inf, "
               "exact 22500; y = -0.5 with the same x1, x2 gives inf for 'none', exact 45000"),
    KnownDeviation(
        impl="torch", loss="hinge_embedding_loss", applies=_hinge_intermediate_overflows,
        reason="torch 2.13 CPU computes hinge_embedding_loss's hinge (m - x).clamp_min(0) in the "
               "input dtype and, for a target other than +-1, adds x to it afterwards, so where "
               "m - x overflows it returns inf although the exact result is finite: float16 "
               "x = -65504, y = 0, margin = 100 gives inf, exact max(x, m) = 100; x = [-65504, "
               "0], y = [-1, 1], margin = 100, 'mean' gives inf, exact 32802"),
    KnownDeviation(
        impl="torch", loss="multi_margin_loss", applies=_multi_margin_intermediate_overflows,
        reason="torch 2.13 CPU's multi_margin_loss kernel forms each hinge, its square (p = 2), "
               "its product with w[y] and the running sum over a sample's classes in the input "
               "dtype before dividing by C, so where one of them overflows it returns inf, or "
               "nan where an overflowed square meets a zero weight, although the exact loss is "
               "finite: float32 x = [1e30, 0], y = 1, p = 2, weight = [1, 0] gives nan, exact 0 "
               "(w[y] = 0); x = [[1.5e19, 1.5e19, 0, 0]], y = [3], p = 2 gives inf, exact "
               "2.25e38 / 4 * 2 = 1.125e38"),
)
