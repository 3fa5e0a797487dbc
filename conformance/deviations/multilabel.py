"""torch 2.13's known deviations in the multi-label family."""

from __future__ import annotations

import numpy as np

from ..cases import Case
from . import KnownDeviation


def _empty_batch_reduced(case: Case) -> bool:
    x = case.args["input"]
    return x.ndim == 2 and x.shape[0] == 0 and case.options.get("reduction") in ("mean", "sum")


FLOAT16_MAX = 65504.0


def _float16_intermediate_overflows(case: Case) -> bool:
    """float16 input where a sample's sum over classes, or an upstream gradient times a term,
    leaves the float16 range (torch forms both before dividing by C)."""
    if case.dtype != "float16" or case.args["input"].size == 0:
        return False
    x = np.asarray(case.args["input"], dtype=np.float64)
    y = np.asarray(case.args["target"], dtype=np.float64)
    weight = case.args.get("weight")
    w = np.ones(x.shape[-1]) if weight is None else np.abs(np.asarray(weight, dtype=np.float64))
    terms = np.abs(np.logaddexp(0, x) - y * x)
    class_sums = np.sum(w * terms, axis=-1)
    upstream = np.max(np.abs(case.grad_output)) if case.grad_output is not None else 1.0
    products = upstream * np.maximum(w, 1) * terms
    return bool(np.any(class_sums >= FLOAT16_MAX) or np.any(products >= FLOAT16_MAX))


VERIFIED_ON = ("2.13.0",)  # torch releases these deviations were verified on

DEVIATIONS = (
    KnownDeviation(
        impl="torch", loss="multilabel_margin_loss", applies=_empty_batch_reduced,
        reason="torch 2.13 CPU returns uninitialised memory for an empty batch (N = 0) with "
               "reduction 'mean' or 'sum' (seen: 6.9e-310, 14.36, -1.9e-24); the spec says "
               "nan for 'mean' (the mean of no samples) and 0 for 'sum'"),
    KnownDeviation(
        impl="torch", loss="multilabel_soft_margin_loss", applies=_float16_intermediate_overflows,
        reason="in float16 torch forms the per-sample sum over classes (forward) and the "
               "product of the upstream gradient with each term (backward) before dividing by "
               "C, so it returns inf wherever those exceed 65504 although the exact loss or "
               "gradient is finite; e.g. x = -3e4, y = 1, C = 4 gives inf, exact 3e4"),
)
