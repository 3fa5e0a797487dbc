"""Result collection on the pytest side: what each conformance test judged, as records.

A test hands every case it judges to its item's ``Recorder``. When the test finishes, the plugin
turns the recorder and pytest's report into one "check" record for the result store and, for a
failure, writes a standalone repro file. Nothing here renders: see ``conformance.report``.
"""

from __future__ import annotations

import numpy as np
import pytest

from .report.repro import write_repro



def check_kind(kind: str):
    """Decorator: the kind of check a conformance test makes ("value", "edge gradient", ...),
    as its records and the reports name it."""
    def mark(test):
        test.check_kind = kind
        return test
    return mark


def input_magnitude(case) -> float:
    """The largest finite |value| among the case's floating arguments (0.0 if none)."""
    largest = 0.0
    for value in case.args.values():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size:
            finite = np.abs(value[np.isfinite(value)])
            if finite.size:
                largest = max(largest, float(finite.max()))
    return largest


class Recorder:
    """The cases one test judged, and the case behind its worst or failing verdict."""

    def __init__(self):
        self.examples = []
        self.worst = None  # (ratio, case, output name, ulp)
        self.failure = None  # (case, verdict, check: "value" | "gradient" | "invalid", options)

    def judged(self, case, verdict, *, gradient=False, tolerated=False, call_options=None):
        """Record one judged case; keep it if it is the worst so far or the failure."""
        measured = verdict.measurements
        output = max(measured, key=lambda n: measured[n]["ratio"]) if measured else None
        figures = measured.get(output, {})
        self.examples.append({
            "regions": list(case.tags), "magnitude": input_magnitude(case),
            "ulp": figures.get("ulp"), "rel": figures.get("rel"), "ratio": figures.get("ratio"),
            "output": output, "passed": verdict.passed, "tolerated": tolerated})
        ratio = figures.get("ratio", np.inf if not verdict.passed else -1.0)
        if self.worst is None or ratio > self.worst[0]:
            self.worst = (ratio, case, output, figures.get("ulp"))
        if not verdict.passed and not tolerated:
            self.failure = (case, verdict, "gradient" if gradient else "value", call_options)

    def invalid(self, call, verdict):
        """Record one invalid call and whether the candidate rejected it."""
        self.examples.append({"regions": ["invalid input"], "magnitude": None, "ulp": None,
                              "rel": None, "ratio": None, "output": None,
                              "passed": verdict.passed, "tolerated": False})
        if not verdict.passed:
            self.failure = (call.case, verdict, "invalid", None)


_RECORDER_KEY = pytest.StashKey[Recorder]()


def recorder(node) -> Recorder:
    """The Recorder of a test item (created on first use)."""
    if _RECORDER_KEY not in node.stash:
        node.stash[_RECORDER_KEY] = Recorder()
    return node.stash[_RECORDER_KEY]


def outcome_of(report) -> str:
    """passed, failed, skipped, xfailed or xpassed, from a pytest report."""
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.failed and report.when != "call":
        return "error"
    return report.outcome


def reason_of(report) -> str:
    """The one-line reason of a skip, xfail or failure."""
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if report.failed:
        text = getattr(report.longrepr, "reprcrash", None)
        message = text.message if text is not None else str(report.longrepr)
        return message.strip().splitlines()[0] if message.strip() else "failed"
    return ""


def check_record(item, report, run, report_dir) -> dict:
    """The "check" record of a finished conformance test (writes its repro file if it failed)."""
    params = getattr(item, "callspec", None)
    params = params.params if params else {}
    # An empty parameter set ("got empty parameter set") leaves placeholders, not objects.
    candidate = params.get("candidate") if hasattr(params.get("candidate"), "label") else None
    spec = params.get("spec") if hasattr(params.get("spec"), "positional") else None
    kind = getattr(getattr(item, "function", None), "check_kind", item.name)
    outcome = outcome_of(report)
    rec = item.stash.get(_RECORDER_KEY, None)
    record = {
        "kind": "check", "test": item.name, "nodeid": item.nodeid, "check": kind,
        "candidate": candidate.label if candidate else None,
        "device": candidate.device if candidate else None,
        "loss": spec.name if spec else None,
        "dtype": _dtype(params),
        "outcome": outcome, "reason": reason_of(report) if outcome != "passed" else "",
        "duration_s": report.duration, "examples": rec.examples if rec else [],
        "worst": None, "message": None, "repro": None, "rerun": run.repro(item.nodeid),
        "fault": None, "case": None,
    }
    if rec and rec.worst is not None:
        _, case, output, ulp = rec.worst
        record["worst"] = {"output": output, "ulp": ulp, "case": _case_text(case)}
    if outcome in ("failed", "error") and rec and rec.failure and candidate and spec:
        record["message"] = rec.failure[1].message
        record["fault"] = rec.failure[1].fault
        record["case"] = rec.failure[0].describe()
        record["repro"] = _write_repro(item, rec.failure, candidate, spec, run, report_dir)
    elif outcome in ("failed", "error"):
        record["message"] = str(report.longrepr)[-2000:]
    return record


def _dtype(params) -> str | None:
    for name in ("variant", "invalid"):
        case = getattr(params.get(name), "case", params.get(name))
        if hasattr(case, "dtype"):
            return case.dtype
    return params.get("speed_dtype") if isinstance(params.get("speed_dtype"), str) else None


def _case_text(case) -> str:
    """The case in full when small enough to read, else its one-line description."""
    with np.printoptions(threshold=200):
        text = repr(case)
    return text if len(text) <= 1500 else case.describe()


def _write_repro(item, failure, candidate, spec, run, report_dir) -> str | None:
    case, verdict, check, call_options = failure
    path = write_repro(
        report_dir / "repro", item.name, impl=candidate.impl, framework=candidate.framework.name,
        device=candidate.device, loss=spec.name, positional=spec.positional,
        keyword_arrays=spec.keyword_arrays, differentiable=spec.differentiable_args(case),
        check=check,
        dtype=case.dtype, args=case.args, layouts=case.layouts,
        options=case.options if call_options is None else call_options,
        grad_output=case.grad_output, evidence=verdict.evidence, message=verdict.message,
        rerun=run.repro(item.nodeid))
    return f"repro/{path.name}"
