"""The CPU–CUDA parity view: one implementation's verdicts and errors on each device, per loss.

Two candidates form a pair when they run the same implementation on different devices: the
same framework, and impls equal once a device suffix is dropped (``torch`` and ``torch-cuda``;
a module tested with ``--device=cuda`` in one run and without in another, rendered from one
results directory). Each row sets the pair's checks and worst errors side by side for one loss
and dtype (region "all") and says whether the verdicts agree: a loss that passes on the CPU and
fails on CUDA (or the reverse) is where the device-specific kernel departs.
"""

from __future__ import annotations

from collections import defaultdict

from .cells import NONE, checks_cell, dtype_key, fmt_num, ratio_cell

DEVICE_SUFFIXES = ("-cuda", "-cpu")


def _base_impl(impl: str) -> str:
    for suffix in DEVICE_SUFFIXES:
        if impl.endswith(suffix):
            return impl[: -len(suffix)]
    return impl


def device_pairs(summary: dict) -> list[tuple[dict, dict]]:
    """(CPU candidate, other-device candidate) for each implementation run on both."""
    by_impl = defaultdict(list)
    for candidate in summary.get("candidates", []):
        by_impl[(candidate.get("framework"), _base_impl(candidate.get("impl", "")))].append(
            candidate)
    pairs = []
    for group in by_impl.values():
        cpus = [c for c in group if c.get("device") == "cpu"]
        others = [c for c in group if c.get("device") not in (None, "cpu")]
        pairs += [(cpu, other) for cpu in cpus for other in others]
    return pairs


def _verdict(checks: dict | None) -> str | None:
    if not checks or not checks.get("run"):
        return None
    return "fails" if checks.get("failed") else "passes"


def parity_tables(summary: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per device pair: (title, headers, rows), one row per loss and dtype both devices ran or
    either ran, the device that did not run a loss shown as "—"."""
    rows_by = {(r["candidate"], r["loss"], r["dtype"]): r
               for r in summary.get("accuracy", []) if r.get("region") == "all"}
    tables = []
    for cpu, other in device_pairs(summary):
        a, b = cpu["label"], other["label"]
        keys = sorted({(loss, dtype) for label, loss, dtype in rows_by if label in (a, b)},
                      key=lambda k: (k[0], dtype_key(k[1])))
        headers = ["loss", "dtype"]
        for label in (a, b):
            headers += [f"{label} checks", f"{label} max ulp", f"{label} max ratio"]
        headers.append("verdicts")
        rows = []
        for loss, dtype in keys:
            line, verdicts = [loss, dtype], []
            for label in (a, b):
                row = rows_by.get((label, loss, dtype))
                checks = (row or {}).get("checks", {})
                line += ([checks_cell(checks), fmt_num(row.get("max_ulp")),
                          ratio_cell(row.get("max_ratio"), checks)] if row else [NONE] * 3)
                verdicts.append(_verdict(checks) if row else None)
            if None in verdicts:
                line.append(NONE)
            else:
                line.append("agree" if verdicts[0] == verdicts[1]
                            else f"differ: {a} {verdicts[0]}, {b} {verdicts[1]}")
            rows.append(line)
        tables.append((f"{a} ({cpu.get('device')}) vs {b} ({other.get('device')})", headers,
                       rows))
    return tables
