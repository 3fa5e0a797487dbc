"""Table cells shared by the table builders (markdown.py, parity.py): numbers, check counts,
error ratios and the dtype order, as plain strings and sort keys.

A module of its own so that the builders depend on it and not on each other.
"""

from __future__ import annotations

import math

DTYPE_ORDER = ("float64", "float32", "float16", "bfloat16")
NONE = "—"


def to_float(value) -> float | None:
    """A summary number as a float: the strings "inf"/"-inf"/"nan" included, None kept."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def fmt_num(value, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, compactly: 1.23e4, 0.5, 12; None is "—"."""
    if value is None:
        return NONE
    if isinstance(value, str):
        return value  # "inf" / "nan" as the summary wrote them
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = f"{value:.{digits}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def dtype_key(dtype: str):
    """Sort key: float64, float32, float16, bfloat16, then any other dtype by name."""
    return (DTYPE_ORDER.index(dtype), "") if dtype in DTYPE_ORDER else (len(DTYPE_ORDER), dtype)


def checks_cell(checks: dict) -> str:
    """Check counts as "passed/failed/skipped", xfails appended: "12/1/3 +2 xfail"."""
    text = "/".join(str(checks.get(key, 0)) for key in ("passed", "failed", "skipped"))
    if checks.get("xfailed"):
        text += f" +{checks['xfailed']} xfail"
    return text


def ratio_cell(value, checks: dict) -> str:
    """The worst error / allowed error, marked ✗ above 1 (a failure), or "(xfail)" where only
    known deviations (xfailed checks) exceed it."""
    ratio = to_float(value)
    if ratio is None or not ratio > 1:
        return fmt_num(value)
    known_only = checks.get("xfailed") and not checks.get("failed")
    return fmt_num(value) + (" (xfail)" if known_only else " ✗")
