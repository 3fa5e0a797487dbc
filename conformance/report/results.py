"""The result store: JSON lines appended as checks finish, one file per process.

Each process of a run (the only one, or each pytest-xdist worker) appends to its own file in
``DIR/results/``, one complete line per record and flushed at once, so a run that dies half way
still leaves every record it finished; a torn last line is skipped when reading. Records are
dicts with a ``kind``: "run" (settings and candidates), "check" (one finished test), "speed"
(one timing row), "machine" (a measured roof).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

RESULTS = "results"


def to_json(value):
    """``value`` with inf/nan as the strings "inf", "-inf", "nan" and numpy scalars as Python."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def from_json(value):
    """Inverse of ``to_json`` for numbers: "inf", "-inf", "nan" become floats again."""
    if isinstance(value, dict):
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if value in ("inf", "-inf", "nan"):
        return float(value)
    return value


class ResultWriter:
    """Appends records to ``DIR/results/<process>.jsonl``; each line is flushed when written."""

    def __init__(self, report_dir: Path, process: str):
        self.path = Path(report_dir) / RESULTS / f"{process}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict) -> None:
        """Write one record as one line and hand it to the operating system at once.

        Closing the file hands the line to the kernel, which keeps it whatever happens to this
        process afterwards (a segfault, os._exit); no fsync: a lost machine loses the run anyway.
        """
        line = json.dumps(to_json(record), allow_nan=False, separators=(",", ":"))
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(line + "\n")


def clear_results(report_dir: Path) -> None:
    """Remove the result files of an earlier run from ``DIR/results``."""
    for path in (Path(report_dir) / RESULTS).glob("*.jsonl"):
        path.unlink()


def read_results(report_dir: Path) -> list:
    """Every record of every process's file, in file order; torn or corrupt lines are skipped."""
    records = []
    for path in sorted((Path(report_dir) / RESULTS).glob("*.jsonl")):
        with open(path, encoding="utf-8") as stream:
            for line in stream:
                try:
                    records.append(from_json(json.loads(line)))
                except json.JSONDecodeError:
                    continue  # the last line of a process that died while writing it
    return records
