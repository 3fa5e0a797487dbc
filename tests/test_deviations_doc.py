"""The known deviations across torch releases: the generated docs/deviations.md, the releases
each module was verified on, what a run on another torch says, and a loss that the installed
torch lacks."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

from conformance import deviations
from conformance.deviations.__main__ import markdown
from conformance.report.markdown import run_facts


def test_the_committed_deviations_doc_is_the_generated_one():
    committed = (REPO / "docs" / "deviations.md").read_text(encoding="utf-8")
    assert committed == markdown(), (
        "docs/deviations.md is not what conformance/deviations/ says; regenerate it: "
        "python -m conformance.deviations --markdown > docs/deviations.md")


def test_the_generator_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "conformance.deviations", "--markdown"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == markdown()


@pytest.mark.parametrize("module", deviations.deviation_modules(),
                         ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_module_with_deviations_says_where_they_were_verified(module):
    if module.DEVIATIONS:
        versions = getattr(module, "VERIFIED_ON", None)
        assert versions and all(deviations._release(v) for v in versions), (
            f"{module.__name__}: give VERIFIED_ON = (\"<torch release>\", ...), the torch "
            "releases its deviations were verified on")


@pytest.mark.parametrize("installed, verified, covered", [
    ("2.13.0+cpu", ("2.13.0",), True), ("2.13.0", ("2.13",), True),
    ("2.13.1+cu130", ("2.13",), True), ("2.13.1", ("2.13.0",), False),
    ("2.7.1+cu126", ("2.13.0",), False), ("2.14.0a0+git1234", ("2.14.0",), True),
    ("2.13.0rc1", ("2.13.0",), True), ("2.13.0", ("2.12.1", "2.13.0"), True),
])
def test_a_release_is_covered_by_its_verified_releases(installed, verified, covered):
    assert deviations.covers(verified, installed) is covered


def test_another_torch_is_noted_and_the_deviations_still_apply():
    versions = deviations.verified_on(("torch",))
    assert versions
    assert deviations.version_note(versions[0] + "+cpu", ("torch",)) is None
    note = deviations.version_note("2.7.1+cu126", ("torch", "numpy"))
    assert note.startswith(f"verified on torch {', '.join(versions)}, not on this torch 2.7.1")
    assert "applied as listed" in note
    # a candidate without listed deviations needs no note, whatever the torch
    assert deviations.version_note("2.7.1", ("numpy", "mymodule")) is None


@pytest.mark.parametrize("setting, fact", [
    ({"verified_on": ["2.13.0"], "applied": True, "note": None},
     "verified on torch 2.13.0, the torch of this run"),
    ({"verified_on": ["2.13.0"], "applied": True, "note": "verified on torch 2.13.0, not on "
      "this torch 2.7.1: applied as listed"}, "verified on torch 2.13.0, not on this torch 2.7.1"),
    ({"verified_on": ["2.13.0"], "applied": False, "note": None},
     "not applied (--no-known-deviations); verified on torch 2.13.0"),
    (None, None),
])
def test_the_report_header_says_where_the_deviations_were_verified(setting, fact):
    facts = dict(run_facts({"run": {"command": "pytest conformance", "deviations": setting}}))
    if fact is None:
        assert "known deviations" not in facts
    else:
        assert facts["known deviations"].startswith(fact)


def test_a_loss_the_installed_torch_lacks_is_not_provided_by_the_alias(monkeypatch):
    """torch before 2.13 has no linear_cross_entropy: the torch alias then lacks it, and the
    run reports it as not provided rather than failing (discovery is by getattr)."""
    import torch.nn.functional as F

    from conformance.candidates import load_candidate
    from conformance.specs import SPECS

    name = "linear_cross_entropy" if "linear_cross_entropy" in SPECS else "ctc_loss"
    monkeypatch.delattr(F, name, raising=False)
    candidate = load_candidate("torch")
    assert name in candidate.missing and name not in candidate.functions
    assert name in candidate.describe().split("not provided: ")[1].split(", ")
