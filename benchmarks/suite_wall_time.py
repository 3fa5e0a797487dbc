"""Wall and CPU time of the default profile over every loss, one candidate at a time.

Run: python benchmarks/suite_wall_time.py [--impl torch --impl numpy] [--seed 0] [-n 2]
                                          [--profile default] [--report]

Runs the real command, ``pytest conformance --impl=<impl> --seed=<seed> -n <n> -q``, once per
candidate in a fresh process (without reports unless --report) and prints its wall time, the
CPU time of it and every process under it (pytest-xdist workers, candidate workers), and
pytest's last line. Issue 4's goal is at most 60 s of wall time per candidate on this 2-core
machine. Figures, not assertions: the machine is shared, so run it when it is otherwise idle.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

from tabulate import tabulate


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_run(impl: str, seed: int, workers: int, profile: str, report: bool) -> dict:
    """One run of the suite on ``impl``: wall s, CPU s, exit status and pytest's summary."""
    command = [sys.executable, "-m", "pytest", "conformance", f"--impl={impl}",
               f"--seed={seed}", f"--profile={profile}", "-q", "-p", "no:cacheprovider"]
    command += ["-n", str(workers)] if workers > 1 else []
    command += [] if report else ["--no-report"]
    cpu_before, start = _children_cpu_s(), time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, _children_cpu_s() - cpu_before
    last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-200:]
    return {"impl": impl, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "exit": run.returncode, "pytest": last.strip("= ")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", action="append", help="candidate (default: torch, numpy)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-n", type=int, default=2, help="pytest-xdist workers (1: serial)")
    parser.add_argument("--profile", default="default", help="default, quick, thorough or llm")
    parser.add_argument("--report", action="store_true", help="also write the reports")
    args = parser.parse_args()
    rows = [time_run(impl, args.seed, args.n, args.profile, args.report)
            for impl in args.impl or ["torch", "numpy"]]
    print(tabulate(rows, headers="keys"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
