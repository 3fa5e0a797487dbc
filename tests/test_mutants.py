"""The suite proves its power: it flags every buggy candidate and passes the correct ones.

Each check runs the real command, ``pytest conformance --impl=<file>``, in a fresh process from
a directory outside the checkout, with the quick profile (8 random examples per check, shared
out over the reductions, no shrinking; every edge case under each reduction) and ``-x``: the exit status must be 1 (does not conform) for every file in
tests/mutants/ and 0 for torch, the built-in numpy candidate and tests/candidates/*.

A mutant is copied to ``candidate.py`` so that ``-k`` expressions match test ids, not the
mutant's own name. The soft-margin mutants are judged away from float16, where they would
inherit torch's own float16 overflow (a known deviation, see conformance/deviations/multilabel.py)
and could be flagged for it instead of for their bug; the one mutant whose bug is a float16/bfloat16
accumulation is judged in bfloat16. A mutant may name its own selection with a line
``# select: <-k expression>``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MUTANTS = sorted((HERE / "mutants").glob("*.py"))
CORRECT = ["torch", "numpy"] + [str(p) for p in sorted((HERE / "candidates").glob("*.py"))]

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


def _run(impl: str, cwd: Path, select: str | None = None) -> subprocess.CompletedProcess:
    # --no-report: these runs prove detection power; reports are tested in test_reports_cli.
    command = [sys.executable, "-m", "pytest", "conformance", f"--impl={impl}",
               "--profile=quick", "-x", "-q", "-p", "no:cacheprovider", "--no-report"]
    if select:
        command += ["-k", select]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_every_mutant_is_catalogued():
    """Each mutant file is listed in tests/mutants/README.md with its bug class and trigger."""
    catalogue = (HERE / "mutants" / "README.md").read_text()
    assert MUTANTS, "no mutants found"
    missing = [m.name for m in MUTANTS if f"{m.name} " not in catalogue]
    assert not missing, f"not in tests/mutants/README.md: {missing}"


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda p: p.stem)
def test_mutant_is_flagged(mutant, tmp_path):
    shutil.copy(mutant, tmp_path / "candidate.py")
    run = _run("candidate.py", tmp_path, _selection(mutant))
    output = run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, f"not flagged:\n{output}"
    # Flagged by a check's verdict (every one reads "<loss> on <candidate> does not conform"),
    # not by a crash of the suite itself.
    assert "does not conform" in run.stdout, output


@pytest.mark.parametrize("impl", CORRECT, ids=lambda s: Path(s).stem)
def test_correct_candidate_passes(impl, tmp_path):
    run = _run(impl, tmp_path)
    assert run.returncode == pytest.ExitCode.OK, run.stdout[-4000:] + run.stderr[-2000:]
