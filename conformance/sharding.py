"""``--shard=K/N``: run the K-th of N disjoint parts of the selected tests, one part per machine.

The tests are shared out after every other selection (``--loss``, ``--dtype``, ``-k``, ``-m``),
so the N parts of one command cover its selection exactly once. The assignment depends only on
the tests' names and the durations file, never on the machine or the order of collection: the
same command on another machine selects the same tests.

Balance: greedy longest-processing-time. The tests go, longest first (ties by name), each to the
shard with the least work so far (ties: the one with fewer tests, then the lower number). Their
durations come from ``--shard-durations=FILE``: the summary.json of an earlier run (its
``tests[name]["duration_s"]``) or a pytest-split ``.test_durations`` file (node id -> seconds,
matched by the test name after the last ``::``); a test not in the file counts the mean of those
that are. Without a file every test counts the same and the rule deals the tests out in name
order, round robin: each loss's tests, which sit together in name order and cost alike, are
spread over every shard, so the shards get similar work, not one loss each.

Why not pytest-split (``--splits=N --group=K``)? It needs a file of its own, keyed by node id,
which this suite's summary.json is not, and node ids name the path the suite was collected from,
which differs between an installed suite and a checkout; its default algorithm cuts the
collection order into contiguous chunks, which without durations gives each shard whole losses
of very different cost. Its ``least_duration`` algorithm is the rule above; the rule is 20 lines,
and a dependency (and a second set of options beside ``--loss``/``--dtype``) is not worth them.
What users may already have is kept: a pytest-split ``.test_durations`` file works as
``--shard-durations``.

A shard run records its shard in the "run" record's settings (``run_setting``), so that
``python -m conformance.report merge`` can check that the parts it merges are all there.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

DURATIONS_HELP = "give the summary.json of an earlier run or a pytest-split .test_durations file"


@dataclass(frozen=True)
class Shard:
    """The part of the selected tests this run keeps: the ``index``-th (from 1) of ``count``."""

    index: int
    count: int
    durations_path: str | None = None
    durations: dict | None = None  # test name -> seconds; None: balance by count
    durations_sha256: str | None = None  # of the file, so a merge can tell two files apart


_SHARD_KEY = pytest.StashKey["Shard | None"]()


def parse_shard(text: str) -> tuple:
    """(K, N) of ``"K/N"``; ValueError with the fix when it is not 1 <= K <= N."""
    head, sep, tail = text.partition("/")
    if not (sep and head.strip().isdigit() and tail.strip().isdigit()):
        raise ValueError(f"--shard={text}: give K/N, the K-th of N parts, such as --shard=1/4")
    index, count = int(head), int(tail)
    if not 1 <= index <= count:
        raise ValueError(f"--shard={text}: there is no part {index} of {count}; give K/N with "
                         f"1 <= K <= N, such as --shard=1/{max(count, 1)}")
    return index, count


def load_durations(path: str) -> dict:
    """Seconds per test name from a summary.json or a pytest-split ``.test_durations`` file.

    ValueError with the fix when the file is missing or neither of the two.
    """
    option = f"--shard-durations={path}"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{option}: no such file; {DURATIONS_HELP}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{option}: not readable JSON ({error}); {DURATIONS_HELP}") from None
    try:
        if isinstance(data, dict) and isinstance(data.get("tests"), dict):  # summary.json
            return {name: float(test["duration_s"]) for name, test in data["tests"].items()}
        if isinstance(data, dict):  # pytest-split: node id -> seconds
            return {node.rsplit("::", 1)[-1]: float(seconds) for node, seconds in data.items()}
    except (TypeError, KeyError, ValueError):
        pass
    raise ValueError(f"{option}: holds no test durations; {DURATIONS_HELP}")


def shard_of(config) -> Shard | None:
    """The run's Shard (None without ``--shard``); pytest.UsageError for a bad option value."""
    if _SHARD_KEY not in config.stash:
        config.stash[_SHARD_KEY] = _shard_from_options(config)
    return config.stash[_SHARD_KEY]


def _shard_from_options(config) -> Shard | None:
    text, path = config.getoption("--shard"), config.getoption("--shard-durations")
    if text is None:
        if path is not None:
            raise pytest.UsageError("--shard-durations needs --shard=K/N: the part to run")
        return None
    try:
        index, count = parse_shard(text)
        durations = load_durations(path) if path is not None else None
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if path is not None else None
    return Shard(index, count, path, durations, digest)


def assign(names: list, count: int, durations: dict | None = None) -> list:
    """The shard (1 to ``count``) of each named test, in the order of ``names``.

    Longest test first (ties by name) to the shard with the least work so far (ties: fewer
    tests, then the lower number). A test missing from ``durations`` counts the mean of the
    named tests found there; without durations every test counts 1.
    """
    durations = durations or {}
    known = [durations[name] for name in names if name in durations]
    mean = sum(known) / len(known) if known else 1.0
    seconds = [durations.get(name, mean) for name in names]
    shards = [0] * len(names)
    loads = [(0.0, 0, shard) for shard in range(1, count + 1)]  # (work, tests, shard), a heap
    for i in sorted(range(len(names)), key=lambda i: (-seconds[i], names[i])):
        work, tests, shard = heapq.heappop(loads)
        shards[i] = shard
        heapq.heappush(loads, (work + seconds[i], tests + 1, shard))
    return shards


def run_setting(config) -> dict | None:
    """The run record's "shard" setting: the shards this run holds, or None when unsharded.

    ``{"count": N, "indexes": [K], "durations_sha256": str | None}``; a merge of shards holds
    several indexes.
    """
    shard = shard_of(config)
    if shard is None:
        return None
    return {"count": shard.count, "indexes": [shard.index],
            "durations_sha256": shard.durations_sha256}


def pytest_configure(config):
    """Report a bad ``--shard`` or ``--shard-durations`` before collecting anything."""
    shard_of(config)


def pytest_report_header(config):
    """Say which part of the tests this run keeps."""
    shard = shard_of(config)
    if shard is None:
        return None
    basis = (f"by the durations in {shard.durations_path}" if shard.durations is not None
             else "by count")
    return [f"  shard: {shard.index} of {shard.count} (balanced {basis})"]


@pytest.hookimpl(trylast=True)  # after -k, -m and every other selection
def pytest_collection_modifyitems(config, items):
    """Keep this shard's tests; deselect the others."""
    shard = shard_of(config)
    if shard is None:
        return
    plan = assign([item.name for item in items], shard.count, shard.durations)
    kept = [item for item, part in zip(items, plan) if part == shard.index]
    dropped = [item for item, part in zip(items, plan) if part != shard.index]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept
