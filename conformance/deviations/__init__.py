"""Known deviations of the built-in candidates from the specification, each with its evidence.

A deviation names a built-in alias (``--impl`` value), a loss and the cases it affects. A check
that fails on such a case is reported as a known deviation (an xfail for the fixed edge cases,
tolerated inside the random checks); the same check on every other case still counts. Entries
are added only after the reference has been shown right and the library wrong.

Each loss family keeps torch's deviations in a module of this package (``DEVIATIONS``), named
like the family's module in ``conformance/specs``; ``compiled`` holds those of the
``torch-compile`` alias (torch.compile's inductor), whatever the family.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Callable

from ..specs import FAMILIES


@dataclass(frozen=True)
class KnownDeviation:
    """One documented way a built-in candidate departs from the spec."""

    impl: str  # the --impl alias it applies to
    loss: str
    applies: Callable  # Case -> bool
    reason: str
    checks: tuple = ("value", "gradient")  # the kinds of check it excuses


@functools.lru_cache(maxsize=None)
def all_deviations() -> tuple:
    """Every family's deviations, in family order."""
    found = ()
    for family in FAMILIES + ("compiled",):
        found += importlib.import_module(f"{__name__}.{family}").DEVIATIONS
    return found


def known_deviation(candidate, spec, case, check: str = "value") -> str | None:
    """The reason this case is a known deviation of this candidate in a ``check`` ("value"
    or "gradient"), or None."""
    for deviation in all_deviations():
        if (deviation.impl == candidate.impl and deviation.loss == spec.name
                and check in deviation.checks and deviation.applies(case)):
            return deviation.reason
    return None
