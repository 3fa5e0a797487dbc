"""Known deviations of ``--impl=torch-chunked`` (torch 2.13.0's chunked linear_cross_entropy,
``options=LinearCrossEntropyOptions()``, on the CPU).

Not a family module: ``all_deviations`` reads it after the family modules. Each entry was found
by the suite and confirmed by hand against the reference path (``options=None``) on the same
inputs. Invalid calls the chunked path accepts (a target with more entries than tokens, a class
weight of the wrong size) are not listed: invalid-call checks admit no deviations, so those
stay failures in the report.
"""

from __future__ import annotations

import numpy as np

from ..cases import Case
from . import KnownDeviation
from .linear import DEVIATIONS as REFERENCE_PATH_DEVIATIONS

IMPL = "torch-chunked"
DEFAULT_IGNORE_INDEX = -100


def falls_back(case: Case) -> bool:
    """Whether torch runs this call on its reference path (with a warning): label smoothing or
    probability targets, which the chunked path does not support."""
    soft = np.asarray(case.args["target"]).dtype.kind == "f"
    return soft or bool(case.options.get("label_smoothing", 0.0))


def no_token_counts(case: Case) -> bool:
    """A 'mean' over index targets that are all ignore_index (or no token at all)."""
    target = np.asarray(case.args["target"])
    if case.options["reduction"] != "mean" or target.dtype.kind == "f":
        return False
    ignore = case.options.get("ignore_index")
    ignore = DEFAULT_IGNORE_INDEX if ignore is None else ignore
    return not np.any(target != ignore)


VERIFIED_ON = ("2.13.0",)  # torch releases these deviations were verified on

DEVIATIONS = tuple(
    KnownDeviation(impl=IMPL, loss=d.loss, applies=lambda case, d=d: falls_back(case)
                   and d.applies(case), reason=f"on its fallback to the reference path: "
                                               f"{d.reason}", checks=d.checks)
    for d in REFERENCE_PATH_DEVIATIONS) + (
    KnownDeviation(
        impl=IMPL, loss="linear_cross_entropy", applies=no_token_counts, checks=("gradient",),
        reason="torch 2.13's chunked path returns nan gradients for a 'mean' in which no token "
               "counts (every target is ignore_index), where the reference path (and the "
               "spec: no counted row, no gradient) gives 0: x = torch.randn(3, 4, "
               "requires_grad=True); F.linear_cross_entropy(x, torch.randn(5, 4), "
               "torch.full((3,), -100), options=torch.nn.LinearCrossEntropyOptions())"
               ".backward() leaves x.grad all nan; with options=None it is all 0"),
)
