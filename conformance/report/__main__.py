"""``python -m conformance.report DIR``: render DIR's reports again from DIR/results alone."""

import sys
from pathlib import Path

from .build import write_reports
from .results import RESULTS


def main(argv) -> int:
    """Render the reports of the report directory named on the command line."""
    if len(argv) != 1:
        print("usage: python -m conformance.report REPORT_DIR", file=sys.stderr)
        return 2
    report_dir = Path(argv[0])
    if not any((report_dir / RESULTS).glob("*.jsonl")):
        print(f"{report_dir}: no results ({report_dir / RESULTS}/*.jsonl) to render",
              file=sys.stderr)
        return 2
    summary = write_reports(report_dir)
    print(f"{report_dir}: {len(summary['tests'])} checks, {len(summary['speed'])} speed "
          f"figures -> summary.json, accuracy.md, speed.md, index.html, plots/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
