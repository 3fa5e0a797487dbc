"""Wall time of the suite's own tests, and where it goes: seconds per test file.

Run: python benchmarks/tests_wall_time.py [pytest arguments, default: tests -n auto]

Runs ``pytest`` once (with a JUnit report) and prints the wall time, then per test file the
tests, their summed time (setup, call and teardown) and the slowest test, slowest file first,
so that the next slow test is visible. Figures, not assertions: the machine is shared.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv) -> int:
    args = argv or ["tests", "-n", "auto"]
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", *args, "-q", "-p",
                               "no:cacheprovider", f"--junitxml={junit}"], cwd=ROOT)
        wall = time.perf_counter() - start
        files = defaultdict(lambda: [0, 0.0, 0.0, ""])  # tests, seconds, slowest, its name
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = case.get("classname", "").split(".")[-1]
            seconds = float(case.get("time") or 0)
            entry = files[name]
            entry[0] += 1
            entry[1] += seconds
            if seconds > entry[2]:
                entry[2], entry[3] = seconds, case.get("name")
    print(f"\nwall {wall:.1f} s (exit status {done.returncode}); per file, slowest first:")
    print(f"{'file':34s} {'tests':>6s} {'seconds':>8s}  slowest test")
    for name, (tests, seconds, slowest, which) in sorted(files.items(),
                                                          key=lambda kv: -kv[1][1]):
        print(f"{name:34s} {tests:6d} {seconds:8.1f}  {slowest:6.1f} s {which}")
    print(f"{'all':34s} {sum(v[0] for v in files.values()):6d} "
          f"{sum(v[1] for v in files.values()):8.1f}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
