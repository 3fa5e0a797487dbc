"""Several runs' results merged into one report directory (``python -m conformance.report merge``).

The shards of one suite (``pytest conformance ... --shard=K/N``, one per machine) each leave a
report directory. ``merge`` reads their results (``DIR/results/*.jsonl``), checks that they are
parts of one run, and writes one results file (``OUT/results/merged.jsonl``) from which it
renders the reports, as if one run had measured everything:

- every "check", "speed" and "machine" record is kept as it was written (one check record per
  test, so the summary counts and the worst cases are those of one run); a test found in two
  inputs is an error: the inputs overlap (the same shard twice, or different selections);
- the inputs' "run" records become one. Seed, profile, ``--speed``, the candidates and the
  shard split must agree (else the parts judged different cases); the command (without the
  options that differ from shard to shard: ``--shard``, ``--report-dir``, ``--junitxml``,
  ``--summary-only``),
  library versions and platform should, and a difference is a warning. The merged record's
  "command" is the command without those options, and its "shard" lists the shards merged, so
  that a merge of merges works and anyone reading the summary sees which shards are missing;
- the repro files of failing checks are copied beside the merged results.

Unsharded runs of the same candidates merge too (say, different ``--loss`` selections on two
machines), with a warning that their commands differ.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from .build import write_reports
from .results import RESULTS, ResultWriter, clear_results, read_results

MERGED = "merged"  # OUT/results/merged.jsonl
MUST_AGREE = ("seed", "profile", "speed")  # run settings: different values, different cases
SHOULD_AGREE = ("torch", "numpy", "python", "platform")
CANDIDATE_MUST_AGREE = ("label", "impl", "framework", "device", "provides", "missing")
PER_SHARD_OPTIONS = ("--shard", "--report-dir", "--junitxml", "--junit-xml")
PER_SHARD_FLAGS = ("--summary-only",)  # what each shard writes, not what it judges


class MergeError(Exception):
    """Inputs that cannot be merged into one run; the message says which and why."""


@dataclass
class Part:
    """One input directory: its run record and every other record."""

    path: Path
    run: dict
    records: list

    @property
    def settings(self) -> dict:
        return self.run["settings"]

    @property
    def shard(self) -> dict | None:
        return self.settings.get("shard")


def read_part(path: Path) -> Part:
    """The results of one report directory; MergeError if it has none or no run record."""
    path = Path(path)
    if not any((path / RESULTS).glob("*.jsonl")):
        raise MergeError(f"{path}: no results ({path / RESULTS}/*.jsonl); give the report "
                         f"directories (--report-dir) of the runs to merge")
    records = read_results(path)
    runs = [r for r in records if r["kind"] == "run"]
    if not runs:
        raise MergeError(f"{path}: its results hold no run record (the process that ran the "
                         f"session wrote none); rerun that part")
    return Part(path, runs[-1], [r for r in records if r["kind"] != "run"])


def selection_command(command: str) -> str:
    """``command`` without the options that differ from shard to shard (PER_SHARD_OPTIONS,
    PER_SHARD_FLAGS)."""
    kept, skip_value = [], False
    for word in shlex.split(command):
        if skip_value:
            skip_value = False
            continue
        name, equals, _ = word.partition("=")
        if word in PER_SHARD_FLAGS:
            continue
        if name in PER_SHARD_OPTIONS:
            skip_value = not equals  # "--shard 2/3": the value is the next word
            continue
        kept.append(word)
    return shlex.join(kept)


def shard_text(shard: dict | None) -> str:
    """"shard 2 of 3", "shards 1, 3 of 3", or "unsharded"."""
    if shard is None:
        return "unsharded"
    indexes = ", ".join(map(str, shard["indexes"]))
    return f"shard{'s' if len(shard['indexes']) > 1 else ''} {indexes} of {shard['count']}"


def missing_shards(settings: dict) -> list:
    """The shard numbers a run's settings (a summary's "run") say are missing; [] if none."""
    shard = settings.get("shard")
    if not shard:
        return []
    return sorted(set(range(1, shard["count"] + 1)) - set(shard["indexes"]))


def _check_agreement(parts: list) -> list:
    """MergeError where the parts judged different cases; the warnings where they only differ."""
    first, warnings = parts[0], []
    for part in parts[1:]:
        pair = (f"{first.path} ({shard_text(first.shard)}) and "
                f"{part.path} ({shard_text(part.shard)})")
        for key in MUST_AGREE:
            if part.settings.get(key) != first.settings.get(key):
                raise MergeError(f"{key} {first.settings.get(key)!r} and "
                                 f"{part.settings.get(key)!r} in {pair}: these are not parts "
                                 f"of one run; rerun them with the same options")
        if _candidates(part) != _candidates(first):
            raise MergeError(f"different candidates in {pair}: {_candidates(first)} and "
                             f"{_candidates(part)}; merge runs of the same --impl options")
        for key in SHOULD_AGREE:
            if part.settings.get(key) != first.settings.get(key):
                warnings.append(f"{key} differs: {first.settings.get(key)} in {first.path}, "
                                f"{part.settings.get(key)} in {part.path}")
        versions = [(c["label"], c["version"]) for c in part.run["candidates"]]
        if versions != [(c["label"], c["version"]) for c in first.run["candidates"]]:
            warnings.append(f"candidate versions differ between {first.path} and {part.path}")
        commands = [selection_command(p.settings.get("command", "")) for p in (first, part)]
        if commands[0] != commands[1]:
            warnings.append(f"the commands differ: {first.path}: {commands[0]!r}; "
                            f"{part.path}: {commands[1]!r}")
    return warnings


def _candidates(part: Part) -> list:
    return [{k: c.get(k) for k in CANDIDATE_MUST_AGREE} for c in part.run["candidates"]]


def merged_shard(parts: list) -> dict | None:
    """The merged run's "shard" setting; MergeError for a mix, other splits or a shard twice."""
    shards = [part.shard for part in parts]
    if all(shard is None for shard in shards):
        return None
    whole = [part.path for part in parts if part.shard is None]
    if whole:
        raise MergeError(f"{whole[0]} is an unsharded run, the others are shards; merge the "
                         f"shards of one command")
    first, holder = parts[0], {}
    for part in parts:
        if part.shard["count"] != first.shard["count"]:
            raise MergeError(f"{first.path} is {shard_text(first.shard)}, {part.path} is "
                             f"{shard_text(part.shard)}: shards of different splits")
        if part.shard.get("durations_sha256") != first.shard.get("durations_sha256"):
            raise MergeError(f"{first.path} and {part.path} were balanced by different "
                             f"--shard-durations files, so their parts are not one split; rerun "
                             f"every shard with the same file")
        for index in part.shard["indexes"]:
            if index in holder:
                raise MergeError(f"shard {index} of {first.shard['count']} twice: in "
                                 f"{holder[index]} and in {part.path}")
            holder[index] = part.path
    return {"count": first.shard["count"], "indexes": sorted(holder),
            "durations_sha256": first.shard.get("durations_sha256")}


def _check_disjoint(parts: list) -> None:
    """MergeError naming the first test that two inputs both ran."""
    owner = {}
    for part in parts:
        for record in part.records:
            if record["kind"] != "check":
                continue
            other = owner.setdefault(record["test"], part.path)
            if other != part.path:
                raise MergeError(f"{record['test']} is in {other} and in {part.path}: the "
                                 f"inputs overlap; merge each shard once")


def merged_run(parts: list) -> tuple:
    """The one "run" record of the parts, and the warnings; MergeError where they disagree."""
    shard = merged_shard(parts)
    warnings = _check_agreement(parts)
    settings = dict(parts[0].settings)
    settings["command"] = selection_command(settings.get("command", ""))
    settings["shard"] = shard
    return {"kind": "run", "settings": settings, "candidates": parts[0].run["candidates"]}, warnings


def _copy_repros(parts: list, out: Path) -> None:
    """Copy each failing check's repro files (.py and its .npz) into ``out/repro``."""
    for part in parts:
        for record in part.records:
            if record["kind"] != "check" or not record.get("repro"):
                continue
            script = part.path / record["repro"]
            for path in (script, script.with_suffix(".npz")):
                if path.exists():
                    (out / "repro").mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, out / "repro" / path.name)


def merge(inputs: list, out: Path) -> tuple:
    """Merge the input report directories into ``out`` and render its reports.

    Returns (summary, warnings); MergeError when the inputs are not parts of one run.
    """
    out = Path(out)
    if any(Path(path).resolve() == out.resolve() for path in inputs):
        raise MergeError(f"--out={out} is also an input; write the merge to another directory")
    parts = [read_part(path) for path in inputs]
    parts.sort(key=lambda part: (part.shard["indexes"][0] if part.shard else 0, str(part.path)))
    run, warnings = merged_run(parts)
    _check_disjoint(parts)
    out.mkdir(parents=True, exist_ok=True)
    clear_results(out)
    writer = ResultWriter(out, MERGED)
    writer.append(run)
    for part in parts:
        for record in part.records:
            writer.append(record)
    _copy_repros(parts, out)
    return write_reports(out), warnings
