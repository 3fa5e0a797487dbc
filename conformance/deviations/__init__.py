"""Known deviations of the built-in candidates from the specification, each with its evidence.

A deviation names a built-in alias (``--impl`` value), a loss and the cases it affects. A check
that fails on such a case is reported as a known deviation (an xfail for the fixed edge cases,
tolerated inside the random checks); the same check on every other case still counts. Entries
are added only after the reference has been shown right and the library wrong.

Each loss family keeps torch's deviations in a module of this package (``DEVIATIONS``), named
like the family's module in ``conformance/specs``; ``compiled`` holds those of the
``torch-compile`` alias (torch.compile's inductor), whatever the family, and ``chunked`` those of
the ``torch-chunked`` alias (torch's chunked linear_cross_entropy).

Each module also says which torch releases its deviations were verified on (``VERIFIED_ON``, a
tuple such as ``("2.13.0",)``; "2.13" would cover every 2.13.x). On another torch the
deviations still apply as listed: each excuses a failure only on the cases it describes, so one
that this torch has fixed simply passes, and a deviation new in this torch fails like any other
finding. The run's header and its reports then say that the list was verified on another
release (``version_note``). ``python -m conformance.deviations --markdown`` writes the list as
docs/deviations.md.
"""

from __future__ import annotations

import functools
import importlib
import re
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
    for module in deviation_modules():
        found += module.DEVIATIONS
    return found


EXTRA_MODULES = ("compiled", "chunked")  # deviations of aliases other than plain torch


def deviation_modules() -> tuple:
    """The modules of this package that hold deviations: one per family, then the others."""
    return tuple(importlib.import_module(f"{__name__}.{name}")
                 for name in FAMILIES + EXTRA_MODULES)


def known_deviation(candidate, spec, case, check: str = "value") -> str | None:
    """The reason this case is a known deviation of this candidate in a ``check`` ("value"
    or "gradient"), or None."""
    for deviation in all_deviations():
        if (deviation.impl == candidate.impl and deviation.loss == spec.name
                and check in deviation.checks and deviation.applies(case)):
            return deviation.reason
    return None


def _release(version: str) -> tuple:
    """"2.13.0+cpu" -> (2, 13, 0): the release numbers, without a local label or a suffix."""
    numbers = []
    for part in str(version).split("+")[0].split("."):
        digits = re.match(r"\d+", part)
        if not digits:
            break
        numbers.append(int(digits.group()))
        if digits.group() != part:
            break  # "0rc1", "0a0": the release ends here
    return tuple(numbers)


def verified_on(impls=None) -> tuple:
    """The torch releases the deviations of these aliases (every alias by default) were
    verified on: those listed by every module holding one of their deviations, in order."""
    lists = [getattr(module, "VERIFIED_ON", ()) for module in deviation_modules()
             if any(impls is None or d.impl in impls for d in module.DEVIATIONS)]
    common = [v for v in (lists[0] if lists else ()) if all(v in other for other in lists)]
    return tuple(common)


def covers(versions, torch_version: str) -> bool:
    """Whether ``torch_version`` ("2.13.0+cpu") is one of ``versions`` ("2.13.0", or "2.13"
    for every 2.13.x)."""
    release = _release(torch_version)
    return any(release[:len(_release(v))] == _release(v) for v in versions if _release(v))


def version_note(torch_version: str, impls) -> str | None:
    """What the header and the reports say of the known deviations ("known deviations: ...")
    where the installed torch is not one those of these aliases were verified on; None where it
    is, or where none applies."""
    versions = verified_on(impls)
    applies = any(d.impl in impls for d in all_deviations())
    if not applies or covers(versions, torch_version):
        return None
    return (f"verified on torch {', '.join(versions) or '(none recorded)'}, not on this torch "
            f"{torch_version}: applied as listed (each excuses only the cases it describes; one "
            "this torch fixed passes, one it introduced fails)")

