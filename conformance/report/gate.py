"""The CI gate: a stored baseline summary to compare with, and a list of known failures.

A run regresses against its baseline when

- a test that passed in the baseline now fails (or errors);
- the max ulp error of a (candidate, loss, dtype, region) row grew by more than
  ``ERROR_GROWTH`` times and by more than one ulp (compared only between runs with the same
  seed and profile, which judge the same cases: other runs draw other worst cases);
- a speed row's time grew by more than the noise band (``--speed-noise``, default
  ``SPEED_NOISE``) over the baseline's, for the same candidate, loss, dtype, device, size,
  option variant and pass (the fastest block of each, ``min_s``, where both rows have one:
  noise only ever adds time; else the medians);
- a speed row's peak memory grew by more than ``MEMORY_GROWTH`` and by more than
  ``MEMORY_SLACK_BYTES`` (the resolution of the CPU measurement) over the baseline's, for the
  same row.

The xfails file lists known failures, one per line: a test id prefix, then ``#`` and the
reason, which is required. Ids are the test names pytest prints after ``::``, such as
``test_edge_value[torch-<loss>-float32-empty]``; an entry matches every
test whose name starts with it. Blank lines and lines starting with ``#`` are comments.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from . import SUMMARY_VERSION
from .results import from_json

ERROR_GROWTH = 2.0
# Run-to-run spread of medians on a shared 2-core machine, measured by
# benchmarks/speed_repeatability.py (see the README); a slowdown inside it is noise.
SPEED_NOISE = 0.25
MEMORY_GROWTH = 0.10  # peak memory: a tenth more, and
MEMORY_SLACK_BYTES = 1 << 20  # more than 1 MiB (the CPU method counts pages, in batches)


class GateError(Exception):
    """A baseline or xfails file that cannot be used; the message says what and how to fix it."""


def load_baseline(path: Path) -> dict:
    """The summary stored in ``path``; GateError if it is missing, corrupt or another version."""
    path = Path(path)
    try:
        summary = from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise GateError(f"--baseline={path}: no such file; create one with "
                        f"--baseline={path} --update-baseline") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GateError(f"--baseline={path}: not a readable summary.json ({error}); "
                        f"regenerate it with --update-baseline") from None
    if not isinstance(summary, dict) or summary.get("version") != SUMMARY_VERSION:
        found = summary.get("version") if isinstance(summary, dict) else type(summary).__name__
        raise GateError(f"--baseline={path}: summary version {found!r}, this suite reads "
                        f"version {SUMMARY_VERSION}; regenerate it with --update-baseline")
    for key in ("tests", "accuracy", "speed", "run"):
        if key not in summary:
            raise GateError(f"--baseline={path}: no {key!r} section; regenerate it with "
                            f"--update-baseline")
    return summary


def regressions(baseline: dict, current: dict, speed_noise: float = SPEED_NOISE) -> list:
    """Every regression of ``current`` against ``baseline``, one sentence each."""
    found = []
    for test, before in baseline["tests"].items():
        now = current["tests"].get(test)
        if before["outcome"] == "passed" and now and now["outcome"] in ("failed", "error"):
            found.append(f"{test}: passed in the baseline, now {now['outcome']}: {now['reason']}")
    same_cases = all(baseline["run"].get(k) == current["run"].get(k) for k in ("seed", "profile"))
    if same_cases:
        found += _error_growth(baseline["accuracy"], current["accuracy"])
    found += _slowdowns(baseline["speed"], current["speed"], speed_noise)
    found += _memory_growth(baseline["speed"], current["speed"])
    return found


def _error_growth(before_rows, current_rows) -> list:
    def key(row):
        return (row["candidate"], row["loss"], row["dtype"], row["device"], row["region"])

    before = {key(r): r["max_ulp"] for r in before_rows if r["max_ulp"] is not None}
    found = []
    for row in current_rows:
        old, new = before.get(key(row)), row["max_ulp"]
        if old is None or new is None or math.isnan(new):
            continue
        if new > ERROR_GROWTH * old and new > old + 1:
            found.append(f"{' '.join(map(str, key(row)))}: max error {new:.3g} ulp, baseline "
                         f"{old:.3g} ulp (more than {ERROR_GROWTH:g} times)")
    return found


def _speed_key(row):
    return (row["candidate"], row["loss"], row["dtype"], row["device"], tuple(row["size"]),
            row.get("variant") or "typical", row["pass"])


def _speed_name(row) -> str:
    variant = row.get("variant") or "typical"
    return (f"{row['candidate']} {row['loss']} {row['dtype']} {'x'.join(map(str, row['size']))}"
            + ("" if variant == "typical" else f" {variant}") + f" {row['pass']}")


def _slowdowns(before_rows, current_rows, noise) -> list:
    before = {_speed_key(r): r for r in before_rows}
    found = []
    for row in current_rows:
        old_row = before.get(_speed_key(row))
        if not old_row:
            continue
        stat = "min_s" if row.get("min_s") and old_row.get("min_s") else "median_s"
        old, new = old_row[stat], row[stat]
        if old and new > old * (1 + noise):
            what = "best time" if stat == "min_s" else "median"
            found.append(f"{_speed_name(row)}: {what} {new * 1e3:.3g} ms, baseline "
                         f"{old * 1e3:.3g} ms (+{new / old - 1:.0%}, noise band {noise:.0%})")
    return found


def _memory_growth(before_rows, current_rows) -> list:
    before = {_speed_key(r): r.get("peak_bytes") for r in before_rows}
    found = []
    for row in current_rows:
        old, new = before.get(_speed_key(row)), row.get("peak_bytes")
        if old is None or new is None:
            continue
        if new > old * (1 + MEMORY_GROWTH) and new > old + MEMORY_SLACK_BYTES:
            found.append(f"{_speed_name(row)}: peak memory {new / 2**20:.3g} MiB, baseline "
                         f"{old / 2**20:.3g} MiB (+{new / max(old, 1) - 1:.0%}; more than "
                         f"{MEMORY_GROWTH:.0%} and {MEMORY_SLACK_BYTES >> 20} MiB)")
    return found


@dataclass(frozen=True)
class KnownFailure:
    """One entry of an xfails file."""

    prefix: str
    reason: str
    line: int


def load_xfails(path: Path) -> list:
    """The entries of an xfails file; GateError naming the line for a malformed one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise GateError(f"--xfails={path}: cannot read it ({error})") from None
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        prefix, sep, reason = stripped.partition("#")
        prefix, reason = prefix.strip(), reason.strip()
        if not sep or not reason:
            raise GateError(f"--xfails={path}, line {number}: no reason; write "
                            f"'<test id prefix>  # <why it is known to fail>'")
        if " " in prefix:
            raise GateError(f"--xfails={path}, line {number}: {prefix!r} is not one test id "
                            f"(ids contain no spaces); put the reason after '#'")
        entries.append(KnownFailure(prefix, reason, number))
    return entries


def matching(entries: list, test_name: str):
    """The first entry whose prefix starts ``test_name``, or None."""
    return next((e for e in entries if test_name.startswith(e.prefix)), None)
