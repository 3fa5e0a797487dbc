"""torch 2.13's known deviations in the linear family (linear_cross_entropy, reference path).

torch's reference path (``options=None``) is ``cross_entropy(linear(x, W, b), ...)``: it rounds
the logits to the dtype and hands them to cross_entropy, so it inherits cross_entropy's
deviations (conformance/deviations/classification.py) on those rounded logits: each applies
where it applies to that cross_entropy call (the two masked-class ones never do: finite tokens
within the contract's range give finite logits).
"""

from __future__ import annotations

import numpy as np

from ..cases import Case, round_to
from . import KnownDeviation
from .classification import DEVIATIONS as CROSS_ENTROPY_DEVIATIONS

DEFAULT_IGNORE_INDEX = -100
VERIFIED_ON = ("2.13.0",)  # torch releases these deviations were verified on


def as_cross_entropy(case: Case) -> Case:
    """The cross_entropy call torch's reference path makes: the logits rounded to the dtype."""
    a = case.args
    # (N, C, d1, ..., dK): every token against every row W[c, k] of the (K-dimensional) weight
    z = np.tensordot(np.asarray(a["input"], np.float64),
                     np.asarray(a["linear_weight"], np.float64), axes=([-1], [-1]))
    if a.get("linear_bias") is not None:
        z = z + np.asarray(a["linear_bias"], np.float64)
    options = dict(case.options)
    if options.get("ignore_index", DEFAULT_IGNORE_INDEX) is None:
        options.pop("ignore_index")
    return Case(case.dtype, {"input": round_to(z, case.dtype), "target": a["target"],
                             "weight": a.get("weight")}, options, {}, case.tags,
                case.grad_output)


def _inherited(deviation):
    def applies(case: Case) -> bool:
        return deviation.applies(as_cross_entropy(case))
    return applies


DEVIATIONS = tuple(
    KnownDeviation(impl="torch", loss="linear_cross_entropy", applies=_inherited(d),
                   checks=d.checks, reason=f"torch 2.13's reference path is cross_entropy on "
                                           f"the logits rounded to the dtype, and inherits "
                                           f"its deviation: {d.reason}")
    for d in CROSS_ENTROPY_DEVIATIONS if d.loss == "cross_entropy")
