"""Soak: the whole suite on the correct candidates over many seeds, to prove no false failures.

Run: python benchmarks/soak.py [--quick-seeds N] [--default-seeds N] [--first-seed S]
                               [--impl NAME ...] [--workers N] [--loss NAME ...]

Runs ``pytest conformance --impl=torch --impl=numpy --seed=S --profile=P --summary-only`` for
seeds 0..N-1 of the quick profile (default 30) and of the default profile (default 3), or from
``--first-seed`` S to N-1 (to resume a soak that stopped), one fresh process each
(``-n WORKERS`` through pytest-xdist), reads every run's summary.json and prints, per candidate,
loss and check, the failures found with their seeds and messages. Known deviations (xfails, and
cases a random check tolerates) are not failures. A clean soak prints "no failures". Figures,
not assertions: it takes about an hour on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def _run(profile: str, seed: int, impls, workers: int, losses, out: Path) -> dict:
    command = [sys.executable, "-m", "pytest", "conformance", *(f"--impl={i}" for i in impls),
               f"--seed={seed}", f"--profile={profile}", f"--report-dir={out}", "--summary-only",
               "-q", "-p", "no:cacheprovider", *(f"--loss={loss}" for loss in losses)]
    if workers > 1:
        command += ["-n", str(workers)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    summary_path = out / "summary.json"
    if not summary_path.exists():
        return {"seconds": seconds, "error": (done.stdout + done.stderr)[-2000:], "tests": {},
                "failures": []}
    summary = json.loads(summary_path.read_text())
    summary["seconds"] = seconds
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick-seeds", type=int, default=30,
                        help="run the quick profile's seeds up to N - 1 (default 30)")
    parser.add_argument("--default-seeds", type=int, default=3,
                        help="run the default profile's seeds up to N - 1 (default 3)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="the first seed of each profile (to resume a soak): seeds S to "
                        "N - 1 run")
    parser.add_argument("--impl", action="append", default=[])
    parser.add_argument("--loss", action="append", default=[])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    impls = args.impl or ["torch", "numpy"]
    failures = defaultdict(list)  # (candidate, loss, check) -> [(profile, seed, test, message)]
    first = args.first_seed
    runs = [("quick", s) for s in range(first, args.quick_seeds)] + [
        ("default", s) for s in range(first, args.default_seeds)]
    if not runs:  # else it would print "no failures" having run nothing
        parser.error(f"no seeds to run: --first-seed {first} runs seeds {first} to N - 1 of "
                     "each profile, so --quick-seeds or --default-seeds must exceed it (e.g. "
                     f"--quick-seeds {first + 30} for 30 quick seeds)")
    print(f"{'profile':8s} {'seed':>4s} {'seconds':>8s} {'tests':>6s} {'failed':>6s} "
          f"{'xfailed':>7s}")
    for profile, seed in runs:
        with tempfile.TemporaryDirectory() as tmp:
            summary = _run(profile, seed, impls, args.workers, args.loss, Path(tmp))
        if "error" in summary:
            print(f"{profile:8s} {seed:4d} {summary['seconds']:8.1f}  the run left no "
                  f"summary:\n{summary['error']}", flush=True)
            failures[("(run)", "(none)", "no summary")].append((profile, seed, "", ""))
            continue
        tests = summary["tests"].values()
        failed = [f for f in summary["failures"]]
        xfailed = sum(1 for t in tests if t["outcome"] == "xfailed")
        print(f"{profile:8s} {seed:4d} {summary['seconds']:8.1f} {len(summary['tests']):6d} "
              f"{len(failed):6d} {xfailed:7d}", flush=True)
        for failure in failed:
            check = summary["tests"].get(failure["test"], {}).get("check", "?")
            failures[(failure["candidate"], failure["loss"], check)].append(
                (profile, seed, failure["test"], failure["message"] or ""))
    print()
    if not failures:
        print("no failures")
        return
    print("failures by candidate, loss and check:")
    for (candidate, loss, check), seen in sorted(failures.items()):
        print(f"- {candidate} {loss} {check}: {len(seen)} test(s), seeds "
              f"{sorted({(p, s) for p, s, _, _ in seen})}")
        profile, seed, test, message = seen[0]
        print(f"    {test} ({profile}, seed {seed}): {message.splitlines()[0] if message else ''}")


if __name__ == "__main__":
    main()
