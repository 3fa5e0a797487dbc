"""Writing the report files of a run from its result records."""

from __future__ import annotations

import json
from pathlib import Path

from .results import read_results, to_json
from .summary import build_summary


def write_summary(summary: dict, path: Path) -> None:
    """Write a summary as JSON (inf and nan as strings, see conformance.report)."""
    Path(path).write_text(json.dumps(to_json(summary), indent=1, allow_nan=False) + "\n",
                          encoding="utf-8")


def write_reports(report_dir: Path, summary_only: bool = False) -> dict:
    """Read ``report_dir``'s results; write summary.json, then (unless ``summary_only``: a CI
    gate reads only the summary, and the plots take seconds) the Markdown, the plots and the
    HTML, which ``python -m conformance.report DIR`` can render later from the same results.

    Returns the summary.
    """
    from .html import render_html
    from .markdown import accuracy_markdown, speed_markdown
    from .plots import write_plots

    report_dir = Path(report_dir)
    summary = build_summary(read_results(report_dir))
    write_summary(summary, report_dir / "summary.json")
    if summary_only:
        return summary
    (report_dir / "accuracy.md").write_text(accuracy_markdown(summary), encoding="utf-8")
    (report_dir / "speed.md").write_text(speed_markdown(summary), encoding="utf-8")
    plots = write_plots(summary, report_dir / "plots")
    (report_dir / "index.html").write_text(render_html(summary, report_dir, plots),
                                           encoding="utf-8")
    return summary
