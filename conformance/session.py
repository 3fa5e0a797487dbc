"""The run around the tests: results appended as tests finish, reports, baseline and xfails.

``start_reporting`` registers a ``Reporting`` plugin for a run that collects conformance tests.
Every process (the only one, or each pytest-xdist worker) appends one record per finished test
to its own results file; the process that ends the session (the only one, or the xdist
controller, which merges its workers this way) renders the reports from those files, compares
them with ``--baseline``, and prints a short table per candidate.
"""

from __future__ import annotations

import platform
import shlex
import tempfile
from pathlib import Path

import numpy as np
import pytest

from .recording import check_record
from .report import gate
from .report.results import ResultWriter, clear_results

_STATE_KEY = pytest.StashKey["Reporting"]()


def reporting(config):
    """The run's Reporting plugin, or None when the run collects no conformance tests."""
    return config.stash.get(_STATE_KEY, None)


def _worker_id(config) -> str | None:
    return getattr(config, "workerinput", {}).get("workerid")


def _writable_report_dir(path: Path) -> Path:
    """``path``, created if needed; UsageError now (not after the run) if it is not writable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        raise pytest.UsageError(f"--report-dir={path}: cannot write there ({error.strerror}); "
                                f"choose another directory with --report-dir") from None
    return path


def start_reporting(config, run) -> None:
    """Set up results, baseline and xfails for this process; register the hooks below."""
    try:
        xfails_path = config.getoption("--xfails")
        xfails = gate.load_xfails(xfails_path) if xfails_path else []
        baseline_path = config.getoption("--baseline")
        update = config.getoption("--update-baseline")
        baseline = gate.load_baseline(baseline_path) if baseline_path and not update else None
    except gate.GateError as error:
        raise pytest.UsageError(str(error)) from None
    report_dir = None
    if not (config.getoption("--no-report") or config.option.collectonly):
        report_dir = _writable_report_dir(Path(config.getoption("--report-dir")))
    state = Reporting(config, run, report_dir, xfails, xfails_path, baseline, baseline_path,
                      update)
    config.stash[_STATE_KEY] = state
    config.pluginmanager.register(state, "conformance-reporting")
    if report_dir is not None and _worker_id(config) is None:
        clear_results(report_dir)
        state.writer.append(_run_record(config, run))


def _run_record(config, run) -> dict:
    import torch

    from .sharding import run_setting

    settings = {
        "command": shlex.join(["pytest"] + list(config.invocation_params.args)),
        "seed": run.seed, "profile": run.profile, "torch": torch.__version__,
        "numpy": np.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "speed": bool(config.getoption("--speed")),
        "shard": run_setting(config)}
    settings.update(deviation_settings(run, torch.__version__))
    candidates = [{"label": c.label, "impl": c.impl, "framework": c.framework.name,
                   "version": c.framework.version(), "device": c.device,
                   "provides": list(c.functions), "missing": list(c.missing)}
                  for c in run.candidates]
    return {"kind": "run", "settings": settings, "candidates": candidates}


def deviation_settings(run, torch_version: str) -> dict:
    """What the reports say of the known deviations: the torch releases those of this run's
    aliases were verified on, whether they were applied, and a note where this torch differs."""
    from .deviations import verified_on, version_note

    impls = [c.impl for c in run.candidates]
    versions = list(verified_on(impls))
    note = version_note(torch_version, impls) if run.known_deviations else None
    return {"deviations": {"verified_on": versions, "applied": bool(run.known_deviations),
                           "note": note} if versions else None}


class Reporting:
    """Hooks of a conformance run: known failures, result records, reports and the gate."""

    def __init__(self, config, run, report_dir, xfails, xfails_path, baseline, baseline_path,
                 update_baseline):
        self.config, self.run, self.report_dir = config, run, report_dir
        self.xfails, self.xfails_path = xfails, xfails_path
        self.baseline, self.baseline_path = baseline, baseline_path
        self.update_baseline = update_baseline
        self.writer = (ResultWriter(report_dir, _worker_id(config) or "main")
                       if report_dir is not None else None)
        self.summary = None
        self.regressions = []
        self.problems = []  # reports that could not be written, said at the end

    def record(self, record: dict) -> None:
        """Append one record to this process's results (nothing when reports are off)."""
        if self.writer is not None:
            self.writer.append(record)

    # --- collection ------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        for item in items:
            entry = gate.matching(self.xfails, item.name)
            if entry is not None:
                item.add_marker(pytest.mark.xfail(
                    reason=f"known failure ({Path(self.xfails_path).name}:{entry.line}): "
                           f"{entry.reason}", strict=False))

    # --- results ---------------------------------------------------------------------------

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        finished = report.when == "call" or (report.when == "setup" and not report.passed)
        if self.writer is None or not finished or not hasattr(item, "callspec"):
            return
        try:
            self.record(check_record(item, report, self.run, self.report_dir))
        except Exception as error:  # a full disk must not turn a verdict into a crash
            self.problems.append(f"could not record {item.name}: {type(error).__name__}: "
                                 f"{error}")

    # --- the end ---------------------------------------------------------------------------

    def pytest_sessionfinish(self, session, exitstatus):
        if _worker_id(self.config) is not None:
            return
        if self.report_dir is not None:
            from .report.build import write_reports

            try:
                self.summary = write_reports(self.report_dir,
                                             self.config.getoption("--summary-only"))
            except Exception as error:  # keep the verdicts; say what went wrong
                self.problems.append(f"reports could not be written: "
                                     f"{type(error).__name__}: {error}")
        if self.summary is None:
            return
        if self.update_baseline:
            from .report.build import write_summary

            write_summary(self.summary, Path(self.baseline_path))
        elif self.baseline is not None:
            noise = self.config.getoption("--speed-noise")
            self.regressions = gate.regressions(
                self.baseline, self.summary, gate.SPEED_NOISE if noise is None else noise)
            if self.regressions and session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        write = terminalreporter.write_line
        for problem in self.problems:
            terminalreporter.write_sep("=", "conformance report problem", red=True)
            write(problem)
        if self.summary is None:
            return
        from tabulate import tabulate

        from .report.summary import candidate_overview, speed_overview

        terminalreporter.write_sep("=", "conformance summary")
        rows = candidate_overview(self.summary)
        if rows:
            write(tabulate(rows, headers=["candidate", "loss", "passed", "failed", "skipped",
                                          "xfailed", "max ulp", "at dtype", "max ratio"],
                           floatfmt=".3g"))
        rows = speed_overview(self.summary)
        if rows:
            write("")
            write(tabulate(rows, headers=["candidate", "loss", "dtype", "pass", "largest size",
                                          "median ms", "GB/s", "roof attained", "vs baseline",
                                          "peak MiB"],
                           floatfmt=".3g"))
        if self.config.getoption("--summary-only"):
            write(f"reports: {self.report_dir}/summary.json (python -m conformance.report "
                  f"{self.report_dir} renders the rest)")
        else:
            write(f"reports: {self.report_dir}/index.html, accuracy.md, speed.md, summary.json")
        self._known_failure_lines(write)
        if self.update_baseline:
            write(f"baseline updated: {self.baseline_path}")
        elif self.baseline is not None:
            terminalreporter.write_sep("=", f"baseline {self.baseline_path}: "
                                       f"{len(self.regressions)} regression(s)",
                                       red=bool(self.regressions), green=not self.regressions)
            for line in self.regressions:
                write(f"REGRESSION {line}")

    def _known_failure_lines(self, write):
        if not self.xfails:
            return
        tests = self.summary["tests"]
        for test, result in sorted(tests.items()):
            if result["outcome"] == "xpassed" and gate.matching(self.xfails, test):
                write(f"known failure now passes (remove it from {self.xfails_path}): {test}")
        for entry in self.xfails:
            if not any(test.startswith(entry.prefix) for test in tests):
                write(f"warning: {self.xfails_path}:{entry.line}: {entry.prefix!r} matches no "
                      f"test of this run")

