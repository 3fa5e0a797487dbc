"""What faulty candidates cost a run: torch alone, then torch beside the faulty candidates.

Run: python benchmarks/faulty_run.py [--fault NAME ...] [--seed 0] [--profile default]
                                     [-n 1] [--timeout 1800] [--no-baseline]

Runs the real command twice, each in a fresh process with its reports on:

1. ``pytest conformance --impl=torch --seed=S --profile=P`` (README command 1);
2. the same with ``--impl=tests/faults/<name>.py`` added for every fault (default: all of
   tests/faults/: one that hangs, one that crashes its process, one that raises, one that
   returns the wrong kind of output, one that writes into its inputs, one that is
   nondeterministic, one slow to import, one that leaks memory; each misbehaves on its calls
   with reduction='sum', a common subset of its inputs),

and prints both wall times, the extra time the faulty candidates cost (issue 13's goal: at most
300 s), whether the second run ended on its own (within --timeout) with exit status 1, and,
from its summary.json, the failures per candidate and each process fault (crash, hang) with
its first case. Figures, not assertions: the machine is shared, so run it when it is
otherwise idle.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAULTS = ROOT / "tests" / "faults"
DEFAULT_FAULTS = ("hangs", "crashes", "raises", "wrong_output", "inplace", "nondeterministic",
                  "slow_import", "leaks")
GOAL_EXTRA_S = 300.0


def run(impls, seed: int, profile: str, workers: int, timeout: float, out: Path) -> dict:
    """One run of the suite: wall seconds, exit status (None: stopped at --timeout), pytest's
    last line and the summary it left."""
    command = [sys.executable, "-m", "pytest", "conformance", *(f"--impl={i}" for i in impls),
               f"--seed={seed}", f"--profile={profile}", f"--report-dir={out}", "-q",
               "-p", "no:cacheprovider"]
    command += ["-n", str(workers)] if workers > 1 else []
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PID_LOG": str(out / "pids.log")}  # where leaks.py logs its workers
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        code, stdout = done.returncode, done.stdout
    except subprocess.TimeoutExpired as stopped:
        code = None
        stdout = stopped.stdout.decode() if isinstance(stopped.stdout, bytes) else \
            (stopped.stdout or "")
    wall = time.perf_counter() - start
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    last = stdout.strip().splitlines()[-1].strip("= ") if stdout.strip() else ""
    return {"wall_s": wall, "exit": code, "pytest": last, "summary": summary}


def describe_faults(summary: dict) -> list[str]:
    """Lines: failures per candidate, then each process fault once with its first case."""
    lines = []
    failures = summary.get("failures", [])
    per_candidate = Counter(f["candidate"] for f in failures)
    tests = Counter(t["candidate"] for t in summary.get("tests", {}).values())
    seconds = Counter()
    for t in summary.get("tests", {}).values():
        seconds[t["candidate"]] += t.get("duration_s") or 0.0
    for candidate in sorted(tests):
        lines.append(f"  {candidate:18s} {tests[candidate]:5d} tests, "
                     f"{per_candidate.get(candidate, 0):4d} failed, {seconds[candidate]:6.1f} s "
                     "in its tests")
    messages = Counter((f["candidate"], f["message"].split(":")[0]) for f in failures)
    for (candidate, kind), count in sorted(messages.items()):
        lines.append(f"    {candidate}: {count} x {kind[:70]}")
    faults = defaultdict(list)
    for f in failures:
        if f.get("fault"):
            faults[(f["candidate"], f["fault"])].append(f)
    for (candidate, fault), found in sorted(faults.items()):
        first = found[0]
        case = (first.get("case") or "")[:110]
        lines.append(f"  fault {fault:6s} of {candidate}: {len(found)} test(s); first: "
                     f"{first['loss']} {first['dtype']}: {first['message'][:90]}")
        lines.append(f"      case: {case}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", action="append", help="a file of tests/faults without .py "
                                                         "(default: all of them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="default")
    parser.add_argument("-n", type=int, default=1, help="pytest-xdist workers (1: serial)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="stop a run after this many seconds")
    parser.add_argument("--no-baseline", action="store_true", help="skip the torch-only run")
    parser.add_argument("--keep", metavar="DIR", help="write the runs' reports under DIR "
                                                      "(default: a temporary folder)")
    args = parser.parse_args()
    faults = args.fault or list(DEFAULT_FAULTS)
    impls = ["torch"] + [str(FAULTS / f"{name}.py") for name in faults]
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        base = None
        if not args.no_baseline:
            base = run(["torch"], args.seed, args.profile, args.n, args.timeout,
                       Path(tmp) / "torch")
            print(f"torch alone:            {base['wall_s']:7.1f} s, exit {base['exit']}, "
                  f"{base['pytest']}", flush=True)
        faulty = run(impls, args.seed, args.profile, args.n, args.timeout, Path(tmp) / "faulty")
        ended = faulty["exit"] is not None
        print(f"torch + {len(faults)} faulty:       {faulty['wall_s']:7.1f} s, "
              f"exit {faulty['exit'] if ended else 'none (stopped at --timeout)'}, "
              f"{faulty['pytest']}")
        print(f"faulty candidates: {', '.join(faults)}")
        if base is not None:
            extra = faulty["wall_s"] - base["wall_s"]
            verdict = "within" if ended and extra <= GOAL_EXTRA_S else "BEYOND"
            print(f"extra wall time of the faulty candidates: {extra:.1f} s ({verdict} the "
                  f"goal of {GOAL_EXTRA_S:.0f} s)")
        print("\n".join(describe_faults(faulty["summary"])))
        accuracy = Path(tmp) / "faulty" / "accuracy.md"
        if accuracy.exists() and "## Faults" in accuracy.read_text():
            text = accuracy.read_text()
            section = text[text.index("## Faults"):]
            end = section.find("\n## ", 3)
            print("the report's faults table:")
            print("\n".join("  " + line[:150] for line in section[:end].splitlines()
                            if line.startswith("|")))
        report = "complete" if faulty["summary"].get("tests") else "MISSING"
        print(f"report of the faulty run: {report} "
              f"({len(faulty['summary'].get('tests', {}))} tests recorded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
