"""The reduction argument of the numpy candidate's losses, shared by every family module."""

from __future__ import annotations

REDUCTIONS = ("none", "mean", "sum")


def resolve_reduction(size_average, reduce, reduction, allowed=REDUCTIONS) -> str:
    """The effective reduction: torch's legacy ``size_average``/``reduce`` override
    ``reduction`` when either is given; an unknown reduction raises ValueError."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        if not reduce:
            return "none"
        return "mean" if size_average else "sum"
    if reduction not in allowed:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of "
                         + ", ".join(repr(r) for r in allowed))
    return reduction
