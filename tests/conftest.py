"""The suite's own tests: one runner for ``pytest conformance ...``, and readers of what it left.

``run_conformance(cwd, *args)`` runs the real command as a user types it, from ``cwd`` (a
directory outside the checkout, so the bare ``conformance`` argument must resolve to the
installed suite), and returns a ``Run``: exit status, output, the JUnit outcomes, and the
summary.json it wrote. By default it runs in this process (``pytest.main``, the way pytester's
``runpytest_inprocess`` does): torch, the suite and the workers' fork server are loaded once per
test process instead of once per run, which is most of what a narrow run costs. The candidates
still run in worker processes of their own (``--isolation=process``), so a crashing candidate
cannot take the test process down. ``subprocess=True`` (or a ``command``, such as the ``pytest``
console script) starts a fresh interpreter instead: for what only a new process can show.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess as subprocesses
import sys
import xml.etree.ElementTree as ET
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Modules an in-process run may import for good: the installed libraries and the suite itself.
# Everything else it imports (candidate files, their neighbours) is forgotten after the run.
_KEPT_ROOTS = tuple(str(Path(p).resolve()) for p in {sys.prefix, sys.base_prefix}) + (
    str(REPO / "conformance"), str(REPO / "loss_reference"))
_RUN_NUMBER = count()


def pytest_configure(config):
    """Under pytest-xdist, let an idle worker take tests queued for a busy one (worksteal):
    the runs of the whole suite take seconds to a minute each, the other tests milliseconds,
    and xdist's default ("load") hands each worker a long contiguous batch up front."""
    if getattr(config.option, "dist", None) == "load":
        config.option.dist = "worksteal"


def pytest_collection_modifyitems(config, items):
    """The tests that run the suite first (the longest ones), the quick ones after them."""
    items.sort(key=lambda item: "run_conformance" not in vars(getattr(item, "module", None)
                                                            or object))


def _preload():
    """Import what every in-process run needs once, before the first one (the suite's modules,
    the report renderers and their libraries), so that no run pays for it and none forgets it."""
    import conformance.plugin  # noqa: F401
    import conformance.properties  # noqa: F401
    import conformance.report.build  # noqa: F401
    import conformance.report.html  # noqa: F401
    import conformance.report.markdown  # noqa: F401
    import conformance.report.plots  # noqa: F401
    import conformance.session  # noqa: F401
    import conformance.test_conformance  # noqa: F401
    import conformance.test_properties  # noqa: F401


@dataclass
class Run:
    """One finished ``pytest conformance`` run."""

    args: list
    returncode: int
    stdout: str
    stderr: str
    cwd: Path
    report_dir: Path | None
    outcomes: dict = field(default_factory=dict)  # test name -> (outcome, message, text)
    calls: list = field(default_factory=list)  # what the recorder candidate was called with

    def header(self) -> list:
        return [line for line in self.stdout.splitlines()
                if line.startswith(("loss-conformance:", "  candidate "))]

    def with_outcome(self, outcome: str) -> dict:
        return {name: v for name, v in self.outcomes.items() if v[0] == outcome}

    def summary(self) -> dict:
        """The summary.json the run wrote."""
        return json.loads((self.report_dir / "summary.json").read_text())

    def __str__(self):  # shown by pytest when an assertion about a run fails
        return (f"$ {shlex.join(map(str, self.args))}\nexit {self.returncode}\n"
                f"--- stdout (tail)\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-2000:]}")


def run_env(**extra) -> dict:
    """The environment of a run: this one's, without what would change pytest's own options."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
                        "PYTHONPATH")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave no __pycache__ next to the mutants
    env["COLUMNS"] = "200"
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny tensors: a thread pool only burns shared CPU
    env.update({k: str(v) for k, v in extra.items()})
    return env


def junit_outcomes(junit: Path) -> dict:
    """test name -> (outcome, message, text) from a JUnit XML file: passed, failed, error,
    skipped or xfailed."""
    if not junit.exists():
        return {}
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        children = [c for c in case if c.tag in ("failure", "error", "skipped")]
        if not children:
            outcomes[case.get("name")] = ("passed", "", "")
        else:
            c = children[0]
            outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[c.tag]
            if outcome == "skipped" and c.get("type") == "pytest.xfail":
                outcome = "xfailed"
            outcomes[case.get("name")] = (outcome, c.get("message", ""), c.text or "")
    return outcomes


def _local(module) -> bool:
    """Whether a module was loaded from outside the libraries and the suite (a candidate)."""
    path = getattr(module, "__file__", None)
    return bool(path) and not str(Path(path).resolve()).startswith(_KEPT_ROOTS)


def _in_process(argv: list, cwd: Path, env: dict) -> tuple:
    """``pytest argv`` in this process, from ``cwd`` with ``env``: (exit status, out, err).

    The working directory, environment, ``sys.path`` and the candidates' modules are put back
    afterwards."""
    _preload()
    saved_cwd, saved_env, saved_path = os.getcwd(), dict(os.environ), list(sys.path)
    saved_modules = set(sys.modules)
    out, err = io.StringIO(), io.StringIO()
    try:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        with redirect_stdout(out), redirect_stderr(err):
            code = pytest.main(argv)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            if _local(sys.modules[name]):
                del sys.modules[name]
    return int(code), out.getvalue(), err.getvalue()


def run_conformance(cwd: Path, *args, command=None, record=False, subprocess=False,
                    timeout=600) -> Run:
    """``pytest <args>`` from ``cwd``, with a JUnit report read back (see the module docstring).

    Unless the args say otherwise, the reports go to ``reports-<n>/`` in ``cwd`` (runs share
    it). With ``record``, the recorder candidate logs its calls to a file of this run's own.
    """
    number = next(_RUN_NUMBER)
    junit = cwd / f"report-{number}.xml"
    log = cwd / f"calls-{number}.log" if record else None
    args = [str(a) for a in args] + ["-p", "no:cacheprovider", f"--junitxml={junit}"]
    report_dir = None
    if not any(a.startswith(("--report-dir", "--no-report")) for a in args):
        args.append(f"--report-dir=reports-{number}")
    for a in args:
        if a.startswith("--report-dir="):
            report_dir = cwd / a.split("=", 1)[1]
    env = run_env(**({"RECORD_LOG": log} if log else {}))
    if command is None and not subprocess:
        code, stdout, stderr = _in_process(args, cwd, env)
        argv = ["pytest"] + args
    else:
        argv = list(command or [sys.executable, "-m", "pytest"]) + args
        done = subprocesses.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                                timeout=timeout)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    calls = log.read_text().splitlines() if log is not None and log.exists() else []
    return Run(argv, code, stdout, stderr, cwd, report_dir, junit_outcomes(junit), calls)
