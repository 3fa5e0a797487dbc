"""The suite proves its power: it flags every buggy candidate and passes the correct ones.

Each check runs the real command, ``pytest conformance --impl=... --impl=...`` (conftest's
``run_conformance``), from a directory outside the checkout, with the quick profile (8 random
examples per check, shared out over the reductions, no shrinking; every edge case under each
reduction), many candidates in one run, and reads the verdicts back from the summary.json it
writes. A run holds the mutants that share a ``-k`` selection, a score at most, with
``--maxfail-per-candidate=1``: a mutant's tests stop at its first failure, as ``-x`` would
stop a run of that mutant alone, while the others go on (``--summary-only``: the other reports
are tested in tests/test_reports_cli.py). Every mutant of tests/mutants/ must
have a failure that is a check's verdict (it names the case it failed on; a crash of the suite
itself names none), and every failure of the run must be one. The correct candidates (torch,
the built-in numpy candidate and tests/candidates/*) run together, one family of losses per
run, and must pass.

Selections. The soft-margin mutants are judged away from float16, where they would inherit
torch's own float16 overflow (a known deviation, see conformance/deviations/multilabel.py) and
could be flagged for it instead of for their bug; the one mutant whose bug is a float16/bfloat16
accumulation is judged in bfloat16. A mutant may name its own selection with a line
``# select: <-k expression>``. Each mutant is copied under its own name into the run's
directory, so its label (and the test ids) name it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import run_conformance

from conformance.specs import FAMILIES, SPECS

HERE = Path(__file__).resolve().parent
MUTANTS = sorted((HERE / "mutants").glob("*.py"))
CORRECT = ["torch", "numpy"] + [str(p) for p in sorted((HERE / "candidates").glob("*.py"))]
RUN_SIZE = 20  # mutants per run, at most: runs of even size spread over pytest-xdist workers

SELECTIONS = {"msml_lowprec_class_loop": "bfloat16"}  # where the bug lives, if not everywhere


def _selection(mutant: Path) -> str | None:
    """The -k expression a mutant is judged under: a ``# select: EXPR`` line in the file, or
    the rules above for the first families."""
    for line in mutant.read_text().splitlines():
        if line.startswith("# select:"):
            return line.removeprefix("# select:").strip()
    if mutant.stem in SELECTIONS:
        return SELECTIONS[mutant.stem]
    return "not float16" if mutant.stem.startswith("msml_") else None


def _runs() -> list:
    """The mutants grouped by selection, in runs of at most RUN_SIZE of about equal size."""
    by_selection = {}
    for mutant in MUTANTS:
        by_selection.setdefault(_selection(mutant), []).append(mutant)
    runs = []
    for selection, mutants in by_selection.items():
        parts = -(-len(mutants) // RUN_SIZE)
        runs += [pytest.param(selection, mutants[i::parts],
                              id=f"{mutants[i].stem}-and-{len(mutants[i::parts]) - 1}-more")
                 for i in range(parts)]
    return runs


def test_every_mutant_is_catalogued():
    """Each mutant file is listed in tests/mutants/README.md with its bug class and trigger."""
    catalogue = (HERE / "mutants" / "README.md").read_text()
    assert MUTANTS, "no mutants found"
    missing = [m.name for m in MUTANTS if f"{m.name} " not in catalogue]
    assert not missing, f"not in tests/mutants/README.md: {missing}"


@pytest.mark.parametrize("selection, mutants", _runs())
def test_mutants_are_flagged(selection, mutants, tmp_path):
    for mutant in mutants:
        shutil.copy(mutant, tmp_path / mutant.name)
    args = ["conformance", *(f"--impl={m.name}" for m in mutants), "--profile=quick",
            "--maxfail-per-candidate=1", "--report-dir=out", "--summary-only"]
    run = run_conformance(tmp_path, *args, *(["-k", selection] if selection else []))
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run
    failures = run.summary()["failures"]
    not_verdicts = [f["test"] for f in failures if not f["case"]]
    assert not not_verdicts, f"failures that are no check's verdict: {not_verdicts}\n{run}"
    flagged = {f["candidate"] for f in failures}
    missing = [m.stem for m in mutants if m.stem not in flagged]
    assert not missing, f"not flagged: {missing}\n{run}"


@pytest.mark.parametrize("family", FAMILIES)
def test_correct_candidates_pass(family, tmp_path):
    losses = [name for name, spec in SPECS.items() if spec.family == family]
    run = run_conformance(tmp_path, "conformance", *(f"--impl={impl}" for impl in CORRECT),
                          "--profile=quick", "--no-report", *(f"--loss={loss}" for loss in losses))
    assert run.returncode == pytest.ExitCode.OK, run
