"""The result store, the summary built from it, and the CI gate (baseline and xfails files)."""

from __future__ import annotations

import copy
import json

import pytest

from conformance.report import SUMMARY_VERSION, gate
from conformance.report.results import ResultWriter, clear_results, read_results
from conformance.report.markdown import accuracy_markdown
from conformance.report.summary import build_summary, candidate_overview


def _example(ulp, passed=True, regions=("normal",), tolerated=False, magnitude=1.0):
    return {"regions": list(regions), "magnitude": magnitude, "ulp": ulp, "rel": ulp * 1e-7,
            "ratio": ulp / 4, "output": "output", "passed": passed, "tolerated": tolerated}


def _check(test, outcome="passed", examples=(), reason="", candidate="torch", dtype="float32"):
    return {"kind": "check", "test": test, "nodeid": f"x::{test}", "check": "value",
            "candidate": candidate, "device": "cpu", "loss": "l", "dtype": dtype,
            "outcome": outcome, "reason": reason, "duration_s": 0.1,
            "examples": list(examples), "worst": None, "message": None, "repro": None,
            "rerun": f"pytest conformance -k {test}"}


RUN = {"kind": "run", "settings": {"seed": 0, "profile": "default"},
       "candidates": [{"label": "torch"}]}


def test_results_survive_a_torn_line_and_merge_processes(tmp_path):
    ResultWriter(tmp_path, "gw0").append(_check("a", examples=[_example(float("inf"))]))
    ResultWriter(tmp_path, "gw1").append(_check("b"))
    with open(tmp_path / "results" / "gw1.jsonl", "a") as stream:
        stream.write('{"kind": "check", "test": "c", "outc')  # a worker died mid-line
    records = read_results(tmp_path)
    assert [r["test"] for r in records] == ["a", "b"]
    assert records[0]["examples"][0]["ulp"] == float("inf")  # inf survives JSON as "inf"
    clear_results(tmp_path)
    assert read_results(tmp_path) == []


def test_summary_counts_cases_per_region_and_skips_per_test():
    records = [RUN,
               _check("t1", examples=[_example(0.5), _example(3.0, regions=("saturated",))]),
               _check("t2", "failed", [_example(9.0, passed=False, regions=("saturated",))]),
               _check("t3", "xfailed", [_example(1e9, passed=False, tolerated=True)]),
               _check("t4", "skipped", reason="unsupported dtype")]
    summary = build_summary(records)
    assert summary["version"] == SUMMARY_VERSION
    rows = {r["region"]: r for r in summary["accuracy"]}
    assert list(rows) == ["all", "normal", "saturated"]  # "all" first
    assert rows["all"]["checks"] == {"passed": 2, "failed": 1, "skipped": 1, "xfailed": 1,
                                     "run": 5}
    assert rows["all"]["skipped_reasons"] == {"unsupported dtype": 1}
    assert rows["all"]["max_ulp"] == 9.0  # the known deviation's 1e9 stays out
    assert rows["saturated"]["checks"]["failed"] == 1 and rows["saturated"]["max_ulp"] == 9.0
    assert rows["all"]["worst"]["test"] == "t2"
    assert [f["test"] for f in summary["failures"]] == ["t2"]
    assert summary["tests"]["t4"]["outcome"] == "skipped"
    assert candidate_overview(summary) == [["torch", "l", 1, 1, 1, 1, 9.0, "float32", 2.25]]


def _summary(tests=None, max_ulp=1.0, median=1e-3, seed=0):
    return {"version": SUMMARY_VERSION, "run": {"seed": seed, "profile": "default"},
            "tests": tests or {"t": {"outcome": "passed", "reason": ""}},
            "accuracy": [{"candidate": "c", "loss": "l", "dtype": "float32", "device": "cpu",
                          "region": "all", "max_ulp": max_ulp}],
            "speed": [{"candidate": "c", "loss": "l", "dtype": "float32", "device": "cpu",
                       "size": [64, 10], "pass": "forward", "median_s": median}]}


def test_the_same_run_is_no_regression():
    assert gate.regressions(_summary(), copy.deepcopy(_summary())) == []


def test_regressions_name_what_got_worse():
    baseline = _summary()
    failed = _summary(tests={"t": {"outcome": "failed", "reason": "boom"}})
    assert gate.regressions(baseline, failed) == ["t: passed in the baseline, now failed: boom"]
    [grown] = gate.regressions(baseline, _summary(max_ulp=4.0))
    assert "max error 4 ulp, baseline 1 ulp" in grown
    assert gate.regressions(baseline, _summary(max_ulp=2.0)) == []  # not more than twice
    assert gate.regressions(baseline, _summary(max_ulp=4.0, seed=1)) == []  # other cases drawn
    [slower] = gate.regressions(baseline, _summary(median=1.5e-3))
    assert "+50%" in slower and "noise band 25%" in slower
    assert gate.regressions(baseline, _summary(median=1.2e-3)) == []
    assert gate.regressions(baseline, _summary(median=1.2e-3), speed_noise=0.1) != []


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a readable summary.json"),
    (json.dumps({"version": 99}), "summary version 99"),
    (json.dumps([1, 2]), "summary version 'list'"),
    (json.dumps({"version": SUMMARY_VERSION, "tests": {}}), "no 'accuracy' section"),
])
def test_a_bad_baseline_is_named(tmp_path, content, message):
    path = tmp_path / "baseline.json"
    path.write_text(content)
    with pytest.raises(gate.GateError, match=message):
        gate.load_baseline(path)
    with pytest.raises(gate.GateError, match="no such file"):
        gate.load_baseline(tmp_path / "missing.json")


def test_xfails_entries_match_by_prefix(tmp_path):
    path = tmp_path / "xfails.txt"
    path.write_text("# known failures\n\n"
                    "test_edge_value[torch-multilabel_margin_loss  # empty batch garbage\n"
                    "test_value[mine-   # all of mine\n")
    entries = gate.load_xfails(path)
    assert [(e.prefix, e.line) for e in entries] == [
        ("test_edge_value[torch-multilabel_margin_loss", 3), ("test_value[mine-", 4)]
    assert gate.matching(entries, "test_value[mine-x-float32]").reason == "all of mine"
    assert gate.matching(entries, "test_value[torch-x]") is None


@pytest.mark.parametrize("line, message", [
    ("test_value[torch-x]", "line 1: no reason"),
    ("test_value[torch-x]  #   ", "line 1: no reason"),
    ("test value  # spaces", "not one test id"),
])
def test_a_malformed_xfails_line_is_named(tmp_path, line, message):
    path = tmp_path / "xfails.txt"
    path.write_text(line + "\n")
    with pytest.raises(gate.GateError, match=message):
        gate.load_xfails(path)


def test_error_samples_carry_the_ratio_of_each_case():
    records = [RUN,
               _check("t1", examples=[_example(0.5, magnitude=2.0),
                                      _example(float("inf"), passed=False, magnitude=3.0)]),
               _check("t2", "xfailed", [_example(1e9, passed=False, tolerated=True)])]
    [entry] = build_summary(records)["error_samples"]
    # [input magnitude, max ulp, passed, error / allowed error]; known deviations stay out
    assert entry["points"] == [[2.0, 0.5, True, 0.125], [3.0, float("inf"), False, float("inf")]]


def test_error_samples_keep_the_largest_ratios_when_thinned(monkeypatch):
    from conformance.report import summary as module

    monkeypatch.setattr(module, "MAX_SAMPLES", 10)
    examples = [_example(float(k), magnitude=float(k)) for k in range(40)]
    for example in examples:  # the ratio no longer follows the ulp error
        example["ratio"] = 1 / (1 + example["ulp"])
    examples[7]["ratio"] = float("nan")
    [entry] = build_summary([RUN, _check("t", examples=examples)])["error_samples"]
    assert len(entry["points"]) == 10
    ratios = [p[3] for p in entry["points"]]
    assert ratios[:5] == [1.0, 0.5, 1 / 3, 0.25, 0.2]  # the largest 5 ratios, then a spread


def test_error_samples_are_fewer_where_every_case_passed(monkeypatch):
    from conformance.report import summary as module

    monkeypatch.setattr(module, "MAX_SAMPLES", 40)
    monkeypatch.setattr(module, "MAX_PASSING_SAMPLES", 10)
    passing = [_example(float(k), magnitude=float(k)) for k in range(60)]
    failing = passing[:59] + [_example(1e9, passed=False, magnitude=1.0)]
    counts = {name: len(build_summary([RUN, _check("t", examples=examples)])
                        ["error_samples"][0]["points"])
              for name, examples in (("passing", passing), ("failing", failing))}
    assert counts == {"passing": 10, "failing": 40}



def test_an_empty_parameter_set_is_no_candidate_row():
    """A selection that leaves a test function no parameters (pytest's NOTSET skip, e.g.
    --dtype=float64 for the float32 invalid calls) records a skip of no candidate and no loss:
    it stays out of the accuracy rows, and every report renders."""
    empty = dict(_check("test_rejects_invalid[NOTSET]", "skipped", reason="got empty "
                        "parameter set"), candidate=None, loss=None, dtype=None, device=None)
    summary = build_summary([RUN, _check("t1", examples=[_example(0.5)]), empty])
    assert {r["candidate"] for r in summary["accuracy"]} == {"torch"}
    assert "### l\n" in accuracy_markdown(summary)
