"""Known deviations of the built-in candidates from the specification, each with its evidence.

A deviation names a built-in alias (``--impl`` value), a loss and the cases it affects. A check
that fails on such a case is reported as a known deviation (an xfail for the fixed edge cases,
tolerated inside the random checks); the same check on every other case still counts. Entries
are added only after the reference has been shown right and the library wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .cases import Case


@dataclass(frozen=True)
class KnownDeviation:
    """One documented way a built-in candidate departs from the spec."""

    impl: str  # the --impl alias it applies to
    loss: str
    applies: Callable[[Case], bool]
    reason: str


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


KNOWN_DEVIATIONS = (
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


def known_deviation(candidate, spec, case: Case) -> str | None:
    """The reason this case is a known deviation of this candidate, or None."""
    for deviation in KNOWN_DEVIATIONS:
        if (deviation.impl == candidate.impl and deviation.loss == spec.name
                and deviation.applies(case)):
            return deviation.reason
    return None
