"""Wall time of ``pytest conformance --speed`` over every loss: the speed run's budget.

Run: python benchmarks/speed_budget.py [--impl torch] [--impl numpy] [-- extra pytest args]

Runs the real command (``pytest conformance --impl=... --speed -k test_speed``, so only the speed
tests), from a temporary directory, and prints its wall time against the budget (5 minutes for
one candidate over every loss, the default rungs and dtypes), the tests it ran, the machine's
load while it ran, the slowest tests and the time per loss. Figures, not assertions: the machine
is shared, and its load changes the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

BUDGET_S = 300.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", action="append", help="candidates (default torch)")
    parser.add_argument("extra", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args()
    impls = args.impl or ["torch"]
    with tempfile.TemporaryDirectory() as work:
        command = [sys.executable, "-m", "pytest", "conformance", *[f"--impl={i}" for i in impls],
                   "--speed", "-k", "test_speed", "-q", "-p", "no:cacheprovider",
                   f"--report-dir={work}/out", *args.extra]
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        load_after = os.getloadavg()
        summary_path = Path(work) / "out" / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    print(" ".join(["pytest", *command[3:]]))
    print(f"exit status {done.returncode}; wall time {seconds:.0f} s (budget {BUDGET_S:.0f} s: "
          f"{'within' if seconds <= BUDGET_S else 'OVER'}); load average {load_before:.1f} "
          f"before, {load_after[1]:.1f} over the last 5 minutes after (2 CPUs)")
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:])
    if summary is None:
        return
    tests = {name: t for name, t in summary["tests"].items() if t["check"] == "speed"}
    print(f"{len(tests)} speed tests, {len(summary['speed'])} rows, "
          f"{sum(t['duration_s'] for t in tests.values()):.0f} s inside the tests")
    per_loss = defaultdict(float)
    for test in tests.values():
        per_loss[test["loss"]] += test["duration_s"]
    print("per loss: " + ", ".join(f"{loss} {s:.0f} s" for loss, s in
                                    sorted(per_loss.items(), key=lambda i: -i[1])))
    slowest = sorted(tests.items(), key=lambda item: -item[1]["duration_s"])[:8]
    print("slowest: " + ", ".join(f"{name} {t['duration_s']:.1f} s" for name, t in slowest))


if __name__ == "__main__":
    main()
