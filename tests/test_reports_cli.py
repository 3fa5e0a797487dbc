"""Reports and the CI gate through the real command: what a user finds in --report-dir.

Every run is ``pytest conformance ...`` (conftest's ``run_conformance``), from a temporary
directory outside the checkout, narrowed with ``-k`` to stay fast.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import run_conformance
from test_cli import MUTANTS

from browser import open_in_chromium

MSML = "multilabel_soft_margin_loss"
SMALL = "test_value and float64 or test_edge_value and float64-n-equals-c"
MUTANT = MUTANTS / "msml_fn_target_grad_sign.py"  # a wrong sign on the target's gradient
MUTANT_TEST = f"test_edge_gradient[candidate-{MSML}-float64-one-class]"


@pytest.fixture(scope="module")
def two_candidates(tmp_path_factory):
    """torch and numpy side by side with --speed on the smallest size of one ladder."""
    cwd = tmp_path_factory.mktemp("report")
    run = run_conformance(cwd, "conformance", "--impl=torch", "--impl=numpy", "--speed",
                          "--report-dir=out", "-k",
                          f"{SMALL} or test_speed and {MSML}-float32-64x10")
    return cwd / "out", run


def test_one_command_writes_every_report_for_two_candidates(two_candidates):
    out, run = two_candidates
    assert run.returncode == 0, run
    for name in ("summary.json", "accuracy.md", "speed.md", "index.html"):
        assert (out / name).stat().st_size > 0, name
    assert list((out / "plots").glob("error*.png")) and list((out / "plots").glob("speed*.png"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["version"] == 1
    assert [c["label"] for c in summary["candidates"]] == ["torch", "numpy"]
    assert {r["candidate"] for r in summary["accuracy"]} == {"torch", "numpy"}
    speed = summary["speed"]
    assert {(r["candidate"], r["pass"]) for r in speed if r["loss"] == MSML} == {
        ("torch", "forward"), ("torch", "forward+backward"), ("numpy", "forward"),
        ("numpy", "forward+backward")}
    assert all(r["ratio_to_baseline"] == 1.0 for r in speed if r["candidate"] == "torch")
    assert summary["machine"]["memory_bandwidth_gbs"] > 0
    accuracy = (out / "accuracy.md").read_text()
    assert "torch" in accuracy and "numpy" in accuracy and MSML in accuracy


def test_terminal_ends_with_a_table_per_candidate(two_candidates):
    out, run = two_candidates
    tail = run.stdout[run.stdout.index("conformance summary"):]
    assert "torch" in tail and "numpy" in tail and "max ulp" in tail
    assert "out/index.html" in tail


FAILURES_ONLY = {"failures only": {"failures": True}}


def test_the_html_report_opens_in_headless_chromium_without_errors(two_candidates):
    out, _ = two_candidates
    page = open_in_chromium(out / "index.html", filters=FAILURES_ONLY)
    assert page.errors == []
    assert page.images and all(width > 0 for width in page.images)
    assert page.tables >= 2
    assert page.first_section == "overview" and page.first_section_in_view
    assert {(candidate, loss) for candidate, loss, _ in page.overview_rows} >= {
        ("torch", MSML), ("numpy", MSML)}
    # "failures only" hides the rows without a failure, and only those
    assert any(failed == "0" for *_, failed in page.overview_rows)
    assert page.filtered["failures only"] == [row for row in page.overview_rows if row[2] == "1"]


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("failing")
    (cwd / "candidate.py").write_text(MUTANT.read_text())
    run = run_conformance(cwd, "conformance", "--impl=candidate.py", "-k", MUTANT_TEST)
    return cwd, run


def test_a_failing_check_leaves_a_standalone_repro(failing):
    cwd, run = failing
    assert run.returncode == 1, run
    summary = json.loads(next(cwd.glob("reports-*/summary.json")).read_text())
    [failure] = summary["failures"]
    assert failure["test"] == MUTANT_TEST and "grad[target]" in failure["message"]
    script = next(cwd.glob("reports-*")) / failure["repro"]
    assert script.with_suffix(".npz").exists()
    # Run from elsewhere, by a Python that never imports the suite: the candidate and numpy only.
    done = subprocess.run([sys.executable, "-I", str(script)], cwd=script.parent.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "grad[target]" in done.stdout and "exact" in done.stdout


def test_the_html_report_of_a_failure_filters_down_to_it(failing):
    _, run = failing
    page = open_in_chromium(run.report_dir / "index.html", filters=FAILURES_ONLY)
    assert page.errors == [] and page.first_section == "overview"
    assert ["candidate", MSML, "1"] in page.overview_rows
    assert page.filtered["failures only"] == [["candidate", MSML, "1"]]


def test_known_failures_file_turns_them_into_xfails(failing, tmp_path):
    cwd, _ = failing
    xfails = cwd / "xfails.txt"
    xfails.write_text(
        f"# known failures of candidate.py\n"
        f"test_edge_gradient[candidate-{MSML}-float64-one  # target gradient sign, #12\n"
        f"test_value[candidate-{MSML}-float64]  # listed, but passes\n"
        f"test_value[nobody-  # matches nothing\n")
    run = run_conformance(cwd, "conformance", "--impl=candidate.py", f"--xfails={xfails}",
                          "-k", f"{MUTANT_TEST} or test_value and float64")
    assert run.returncode == 0, run
    assert run.outcomes[MUTANT_TEST][0] == "xfailed"
    assert "target gradient sign, #12" in run.outcomes[MUTANT_TEST][1]
    assert f"known failure now passes (remove it from {xfails}): " \
           f"test_value[candidate-{MSML}-float64]" in run.stdout
    assert "xfails.txt:4: 'test_value[nobody-' matches no test of this run" in run.stdout


def test_baseline_gate_passes_unchanged_and_fails_a_regression(failing):
    cwd, _ = failing
    baseline = cwd / "baseline.json"
    args = ("conformance", "--impl=torch", "--profile=quick", "-k", SMALL)
    made = run_conformance(cwd, *args, f"--baseline={baseline}", "--update-baseline")
    assert made.returncode == 0 and f"baseline updated: {baseline}" in made.stdout, made
    # a CI gate needs only the summary: --summary-only leaves the rest for a later render
    same = run_conformance(cwd, *args, f"--baseline={baseline}", "--summary-only")
    assert same.returncode == 0 and "0 regression(s)" in same.stdout, same
    written = sorted(p.name for p in same.report_dir.iterdir())
    assert written == ["results", "summary.json"], written
    assert f"python -m conformance.report {same.report_dir.name}" in same.stdout, same
    stored = json.loads(baseline.read_text())
    row = next(r for r in stored["accuracy"] if r["max_ulp"] not in (None, 0, "inf"))
    row["max_ulp"] = row["max_ulp"] / 4 - 1  # pretend the baseline was more accurate
    baseline.write_text(json.dumps(stored))
    worse = run_conformance(cwd, *args, f"--baseline={baseline}", "--summary-only")
    assert worse.returncode == 1, worse
    assert "REGRESSION" in worse.stdout and "max error" in worse.stdout


@pytest.mark.parametrize("content, fragment", [
    ("{broken", "not a readable summary.json"),
    ('{"version": 0}', "summary version 0"),
])
def test_a_bad_baseline_is_a_one_line_usage_error(tmp_path, content, fragment):
    (tmp_path / "b.json").write_text(content)
    run = run_conformance(tmp_path, "conformance", "--baseline=b.json", "-k", "nothing")
    assert run.returncode == 4 and fragment in run.stderr and "Traceback" not in run.stderr, run


def test_an_unwritable_report_dir_is_named_before_any_test_runs(tmp_path):
    (tmp_path / "afile").write_text("")
    run = run_conformance(tmp_path, "conformance", "--report-dir=afile/reports")
    assert run.returncode == 4 and "--report-dir=afile/reports: cannot write there" in run.stderr
    assert "Traceback" not in run.stderr and not run.outcomes, run


DIES = '''
"""torch's loss for 12 calls; then the process dies."""
import os
import torch.nn.functional as F

CALLS = []

def multilabel_soft_margin_loss(input, target, weight=None, **options):
    CALLS.append(1)
    if len(CALLS) > 12:
        os._exit(3)
    return F.multilabel_soft_margin_loss(input, target, weight=weight, **options)
'''


def test_a_run_that_dies_half_way_keeps_what_it_measured(tmp_path):
    """The test process itself dies (as if killed): candidates called in it, not isolated."""
    (tmp_path / "dies.py").write_text(DIES)
    run = run_conformance(tmp_path, "conformance", "--impl=dies.py", "--report-dir=out",
                          "--isolation=none", "-k", "test_edge_value and float64",
                          subprocess=True)  # the run's own process dies
    assert run.returncode == 3, run
    lines = (tmp_path / "out" / "results" / "main.jsonl").read_text().splitlines()
    finished = [json.loads(line) for line in lines if '"kind":"check"' in line]
    assert finished and all(r["outcome"] == "passed" for r in finished)
    done = subprocess.run([sys.executable, "-m", "conformance.report", "out"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert len(summary["tests"]) == len(finished)
    assert (tmp_path / "out" / "index.html").exists()
