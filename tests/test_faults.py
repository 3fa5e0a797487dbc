"""The harness under faults: every faulty candidate in tests/faults/ through the real command.

Each run tests ``l1_loss`` (and, for some faults, the other pointwise losses) in float32 with the
quick profile. The faulty candidates misbehave only on calls with reduction='sum', so every run
holds checks that must fail with the fault's own message on a 'sum' case, and checks that must
pass; the run must
finish with exit status 1 (or 0 where the fault is survivable without a finding) and leave a
summary with a record for every test pytest ran: no result may be lost.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import run_conformance

FAULTS = Path(__file__).resolve().parent / "faults"
QUICK = ("--profile=quick", "--dtype=float32", "--report-dir=out")


def _ran(run) -> int:
    """How many tests pytest ran, from its last line ("3 failed, 40 passed, ... in 9.1s")."""
    last = run.stdout.strip().splitlines()[-1]
    return sum(int(n) for n in re.findall(r"(\d+) (?:passed|failed|skipped|xfailed|xpassed|"
                                          r"errors?)", last))


def _summary(cwd: Path) -> dict:
    return json.loads((cwd / "out" / "summary.json").read_text())


def _fault_run(cwd, *impls, extra=(), losses=("l1_loss",)):
    args = ["conformance", *(f"--impl={FAULTS / impl}" for impl in impls), *QUICK, *extra]
    args += [f"--loss={loss}" for loss in losses]
    return run_conformance(cwd, *args)


def _complete(run, cwd) -> dict:
    """The run left a full report: a summary record for each test it ran, and an HTML page."""
    summary = _summary(cwd)
    assert len(summary["tests"]) == _ran(run) > 0, run
    assert (cwd / "out" / "index.html").exists()
    assert "Traceback" not in run.stderr, run
    return summary


def _failed(summary) -> dict:
    return {name: t for name, t in summary["tests"].items() if t["outcome"] == "failed"}


def _only_sum_failed(summary, broken=("'reduction': 'sum'",)):
    """Every failure is recorded on a case that holds what the candidate breaks, and the run
    went on to pass other checks."""
    failures = summary["failures"]
    assert failures and all(any(b in (f["case"] or "") for b in broken) for f in failures), \
        failures
    assert any(t["outcome"] == "passed" for t in summary["tests"].values())


def test_a_candidate_that_raises_fails_those_checks_with_the_exception(tmp_path):
    run = _fault_run(tmp_path, "raises.py")
    assert run.returncode == 1, run
    summary = _complete(run, tmp_path)
    _only_sum_failed(summary)
    assert "raised RuntimeError: CUDA error: an illegal memory access" in run.stdout
    assert "case: " in run.stdout


@pytest.mark.parametrize("loss, fragment", [
    ("soft_margin_loss", "returned ndarray, expected a torch.Tensor"),
    ("mse_loss", "returned float, expected a torch.Tensor"),
    ("huber_loss", "returned list, expected a torch.Tensor"),
    ("smooth_l1_loss", "returned NoneType, expected a torch.Tensor"),
    ("l1_loss", "returned a tensor on meta, expected cpu"),
])
def test_a_wrong_kind_of_output_says_what_came_back(wrong_output_run, loss, fragment):
    run, summary = wrong_output_run
    messages = [f["message"] for f in summary["failures"] if f["loss"] == loss]
    assert any(f"wrong kind of output: {fragment}" in m for m in messages), run


@pytest.fixture(scope="module")
def wrong_output_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("wrong")
    run = _fault_run(cwd, "wrong_output.py", losses=("l1_loss", "mse_loss", "huber_loss",
                                                      "smooth_l1_loss", "soft_margin_loss"),
                     extra=["-k", "not test_edge"])
    assert run.returncode == 1, run
    summary = _complete(run, cwd)
    _only_sum_failed(summary, broken=("'reduction': 'sum'", "'reduction': 'none'"))
    return run, summary


def test_crashes_are_recorded_against_their_checks_and_the_run_goes_on(tmp_path):
    run = _fault_run(tmp_path, "crashes.py", losses=("l1_loss", "mse_loss", "huber_loss"),
                     extra=["-k", "not test_edge"])
    assert run.returncode == 1, run
    summary = _complete(run, tmp_path)
    _only_sum_failed(summary)
    by_loss = {f["loss"]: f for f in summary["failures"]}
    assert "killed by SIGSEGV" in by_loss["l1_loss"]["message"]
    assert "killed by SIGABRT" in by_loss["mse_loss"]["message"]
    assert "exited with status 3" in by_loss["huber_loss"]["message"]
    assert {f["fault"] for f in summary["failures"]} == {"crash"}


def test_a_hang_is_stopped_by_the_check_timeout(tmp_path):
    run = _fault_run(tmp_path, "hangs.py", extra=["--check-timeout=5", "-k", "not test_edge"])
    assert run.returncode == 1, run
    summary = _complete(run, tmp_path)
    _only_sum_failed(summary)
    assert "hang: no result after 5 s (--check-timeout)" in run.stdout
    assert {f["fault"] for f in summary["failures"]} == {"hang"}


def test_writing_into_an_input_or_around_its_view_is_a_failure(tmp_path):
    # The default profile: the random checks draw a strided input often enough in 30 examples.
    run = _fault_run(tmp_path, "inplace.py", losses=("l1_loss", "mse_loss"),
                     extra=["--profile=default", "-k", "not test_edge"])
    assert run.returncode == 1, run
    summary = _complete(run, tmp_path)
    _only_sum_failed(summary)
    by_loss = {f["loss"] for f in summary["failures"]
               if "modified its input(s) in place: input" in f["message"]}
    assert by_loss == {"l1_loss", "mse_loss"}, summary["failures"]


def test_repeat_reports_nondeterminism_apart_from_accuracy(tmp_path):
    plain = _fault_run(tmp_path, "nondeterministic.py", extra=["--no-report"])
    assert plain.returncode == 0, plain  # one bit of noise is within the tolerance
    run = _fault_run(tmp_path, "nondeterministic.py", extra=["--repeat=3"])
    assert run.returncode == 1, run
    summary = _complete(run, tmp_path)
    _only_sum_failed(summary)
    assert {f["fault"] for f in summary["failures"]} == {"nondeterministic"}
    assert "differs between run 1 and run" in run.stdout


def test_a_slow_import_delays_the_run_but_it_completes(tmp_path):
    run = _fault_run(tmp_path, "slow_import.py")
    assert run.returncode == 0, run
    _complete(run, tmp_path)


def test_a_leaking_candidate_gets_fresh_workers_and_the_run_completes(tmp_path, monkeypatch):
    log = tmp_path / "pids.log"
    monkeypatch.setenv("PID_LOG", str(log))
    run = _fault_run(tmp_path, "leaks.py", extra=["--worker-memory=0.6", "-k", "test_value"])
    assert run.returncode == 0, run
    _complete(run, tmp_path)
    assert len(set(log.read_text().split())) > 1, "the leaking worker was never replaced"


def test_several_faults_in_one_run_leave_one_complete_report(tmp_path):
    run = _fault_run(tmp_path, "raises.py", "crashes.py", "hangs.py", "inplace.py",
                     "wrong_output.py", extra=["--check-timeout=5", "-k", "not test_edge"])
    assert run.returncode == 1, run
    summary = _complete(run, tmp_path)
    _only_sum_failed(summary, broken=("'reduction': 'sum'", "'reduction': 'none'"))
    assert {f["candidate"] for f in summary["failures"]} == {
        "raises", "crashes", "hangs", "inplace", "wrong_output"}
    assert {f["fault"] for f in summary["failures"]} == {"crash", "hang", None}
    # The report names each process fault once, with its case.
    accuracy = (tmp_path / "out" / "accuracy.md").read_text()
    faults = accuracy[accuracy.index("## Faults"):accuracy.index("## Failures")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")]
            for line in faults.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row[:2] for row in rows[1:]] == [["crashes", "crash"], ["hangs", "hang"]], faults
    assert all("'reduction': 'sum'" in row[-1] for row in rows[1:]), faults
    # After the first hang, a hang costs about a second at most, not --check-timeout's 5 s.
    limits = re.findall(r"no result after ([0-9.]+) s \(50 times its slowest", run.stdout)
    assert limits and max(float(limit) for limit in limits) < 2, run.stdout[-3000:]
