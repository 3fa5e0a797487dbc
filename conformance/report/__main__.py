"""``python -m conformance.report``: render, merge and gate reports without running the suite.

    python -m conformance.report DIR                           render DIR's reports again from
                                                               DIR/results alone
    python -m conformance.report merge DIR... --out DIR        merge several runs' results (the
                                                               shards of one suite) into one
                                                               report directory and render it
    python -m conformance.report gate SUMMARY --baseline FILE  exit 1 on regressions of SUMMARY
                                                               against the baseline FILE

Bad usage is one line on stderr and exit status 2.
"""

import argparse
import json
import sys
from pathlib import Path

from . import SUMMARY_VERSION, gate
from .build import write_reports
from .merge import MergeError, merge, missing_shards
from .results import RESULTS, from_json

PROG = "python -m conformance.report"
USAGE = (f"usage: {PROG} REPORT_DIR | {PROG} merge DIR... --out DIR | "
         f"{PROG} gate SUMMARY --baseline FILE")


class UsageError(Exception):
    """Bad usage: the message is the one line to print."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (a UsageError) instead of usage plus message."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def render(argv) -> int:
    """Render the reports of the report directory named on the command line."""
    if len(argv) != 1 or argv[0].startswith("-"):
        raise UsageError(USAGE)
    report_dir = Path(argv[0])
    if not any((report_dir / RESULTS).glob("*.jsonl")):
        raise UsageError(f"{report_dir}: no results ({report_dir / RESULTS}/*.jsonl) to render")
    summary = write_reports(report_dir)
    print(f"{report_dir}: {len(summary['tests'])} checks, {len(summary['speed'])} speed "
          f"figures -> summary.json, accuracy.md, speed.md, index.html, plots/")
    return 0


def merge_command(argv) -> int:
    """Merge report directories into one; exit 1 when shards are missing from the merge."""
    parser = _Parser(prog=f"{PROG} merge",
                     description="Merge the results of several runs (the shards of one suite) "
                                 "into one report directory and render its reports.")
    parser.add_argument("inputs", nargs="+", metavar="DIR",
                        help="report directories (--report-dir) of the runs to merge")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="where to write the merged results and reports")
    args = parser.parse_intermixed_args(argv)
    try:
        summary, warnings = merge([Path(p) for p in args.inputs], Path(args.out))
    except MergeError as error:
        raise UsageError(f"{parser.prog}: {error}") from None
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.out}: {len(summary['tests'])} checks, {len(summary['speed'])} speed figures "
          f"from {len(args.inputs)} runs -> summary.json, accuracy.md, speed.md, index.html, "
          f"plots/")
    missing = missing_shards(summary["run"])
    if missing:
        print(f"error: incomplete merge: shard(s) {', '.join(map(str, missing))} of "
              f"{summary['run']['shard']['count']} missing; merge every shard's report directory",
              file=sys.stderr)
        return 1
    return 0


def read_summary(path: Path) -> dict:
    """The summary.json at ``path``; UsageError if it is missing or not a summary."""
    try:
        summary = from_json(json.loads(Path(path).read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file; give the summary.json of a run or a "
                         f"merge") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{path}: not a readable summary.json ({error})") from None
    if not (isinstance(summary, dict) and summary.get("version") == SUMMARY_VERSION
            and all(key in summary for key in ("tests", "accuracy", "speed", "run"))):
        raise UsageError(f"{path}: not a summary.json of version {SUMMARY_VERSION}; give the "
                         f"summary.json of a run or a merge")
    return summary


def gate_command(argv) -> int:
    """Compare a summary with a baseline; print the regressions; exit 1 if there are any."""
    parser = _Parser(prog=f"{PROG} gate",
                     description="Exit 1 on any accuracy or speed regression of SUMMARY "
                                 "against the baseline, as pytest conformance --baseline does.")
    parser.add_argument("summary", metavar="SUMMARY", help="the summary.json to judge")
    parser.add_argument("--baseline", required=True, metavar="FILE",
                        help="the summary.json of an earlier run to compare with")
    parser.add_argument("--speed-noise", type=float, default=gate.SPEED_NOISE,
                        metavar="FRACTION", help="slowdown treated as noise (default "
                                                 f"{gate.SPEED_NOISE:g})")
    args = parser.parse_args(argv)
    summary = read_summary(Path(args.summary))
    try:
        baseline = gate.load_baseline(Path(args.baseline))
    except gate.GateError as error:
        raise UsageError(str(error)) from None
    found = gate.regressions(baseline, summary, args.speed_noise)
    missing = missing_shards(summary["run"])
    if missing:  # the missing shards' tests would pass unseen
        found.insert(0, f"{args.summary}: incomplete, shard(s) {', '.join(map(str, missing))} "
                        f"of {summary['run']['shard']['count']} missing; merge every shard")
    print(f"baseline {args.baseline}: {len(found)} regression(s)")
    for line in found:
        print(f"REGRESSION {line}")
    return 1 if found else 0


def main(argv) -> int:
    """Run the command line ``argv`` (without the program name); return the exit status."""
    commands = {"merge": merge_command, "gate": gate_command}
    try:
        if argv and argv[0] in commands:
            return commands[argv[0]](argv[1:])
        return render(argv)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
