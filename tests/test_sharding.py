"""``--shard=K/N`` and ``python -m conformance.report merge`` / ``gate``, through the real commands.

One narrow selection runs once whole and once as three shards (conftest's ``run_conformance``,
from a directory outside the checkout); a mutant candidate makes some of its tests fail, so that
failures and their repro files travel through the merge too. The merged report must equal the
whole run's; everything else (the durations file, usage errors, inconsistent inputs) is checked
with collection only or on copies of the shards' report directories.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from types import SimpleNamespace

import pytest
from conftest import REPO, run_conformance

from conformance.report.__main__ import main as report_main

MSML = "multilabel_soft_margin_loss"
MUTANT = REPO / "tests" / "mutants" / "msml_fn_target_grad_sign.py"  # wrong target gradient
SELECTION = ("conformance", "--impl=torch", "--impl=numpy", "--impl=mutant.py",
             "--profile=quick", "--loss=l1_loss", f"--loss={MSML}", "--dtype=float32")
SHARDS = 3


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The selection run whole (``whole/``) and as three shards (``shard-K/``), merged."""
    cwd = tmp_path_factory.mktemp("sharding")
    shutil.copy(MUTANT, cwd / "mutant.py")
    whole = run_conformance(cwd, *SELECTION, "--report-dir=whole")
    # each shard writes its summary only, as on CI machines (the merge renders the reports)
    shards = [run_conformance(cwd, *SELECTION, f"--shard={k}/{SHARDS}", f"--report-dir=shard-{k}",
                              "--summary-only")
              for k in range(1, SHARDS + 1)]
    merge = subprocess.run(
        [sys.executable, "-m", "conformance.report", "merge",
         *[f"shard-{k}" for k in range(1, SHARDS + 1)], "--out", "merged"],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    merged = json.loads((cwd / "merged" / "summary.json").read_text())
    return SimpleNamespace(cwd=cwd, whole=whole, shards=shards, merge=merge, merged=merged)


def report(cwd, *argv) -> tuple:
    """``python -m conformance.report argv`` in this process, from ``cwd``: (status, out, err)."""
    out, err = StringIO(), StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(out), redirect_stderr(err):
        patch.chdir(cwd)
        status = report_main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def collected(cwd, *args) -> list:
    """The names of the tests a ``--collect-only`` run of the selection keeps."""
    run = run_conformance(cwd, *SELECTION, "--collect-only", "-q", *args)
    assert run.returncode == 0, run
    return [line.split("::", 1)[1] for line in run.stdout.splitlines() if "::" in line]


# --- the shards ------------------------------------------------------------------------------


def test_the_shards_are_disjoint_cover_the_selection_and_are_balanced(runs):
    assert runs.whole.returncode == pytest.ExitCode.TESTS_FAILED, runs.whole
    parts = [set(shard.outcomes) for shard in runs.shards]
    for shard, part in zip(runs.shards, parts):
        failed = any(o[0] == "failed" for o in shard.outcomes.values())
        assert shard.returncode == (1 if failed else 0), shard
    assert sum(map(len, parts)) == len(set().union(*parts)), "a test ran in two shards"
    assert set().union(*parts) == set(runs.whole.outcomes)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1, [len(p) for p in parts]
    for loss in ("l1_loss", MSML):  # each loss's tests spread over every shard
        assert all(any(loss in name for name in part) for part in parts), loss


def test_each_shard_gives_the_same_outcomes_as_the_whole_run(runs):
    outcomes = {}
    for shard in runs.shards:
        outcomes.update({name: o[0] for name, o in shard.outcomes.items()})
    assert outcomes == {name: o[0] for name, o in runs.whole.outcomes.items()}
    assert "failed" in outcomes.values() and "passed" in outcomes.values()


def test_the_header_and_the_run_record_name_the_shard(runs):
    for k, shard in enumerate(runs.shards, 1):
        assert f"  shard: {k} of {SHARDS} (balanced by count)" in shard.stdout, shard
        assert shard.summary()["run"]["shard"] == {"count": SHARDS, "indexes": [k],
                                                   "durations_sha256": None}
    assert runs.whole.summary()["run"]["shard"] is None
    assert "shard:" not in runs.whole.stdout


# --- the merge -------------------------------------------------------------------------------


def test_the_merged_report_equals_the_whole_run(runs):
    assert runs.merge.returncode == 0, runs.merge.stderr
    assert runs.merge.stderr == ""  # no warning: the shards are parts of one command
    whole, merged = runs.whole.summary(), runs.merged
    assert {n: t["outcome"] for n, t in merged["tests"].items()} == {
        n: t["outcome"] for n, t in whole["tests"].items()}

    def figures(summary):
        keys = ("candidate", "loss", "dtype", "device", "region", "checks", "examples",
                "max_ulp", "p99_ulp", "max_rel", "max_ratio")
        return [{k: row[k] for k in keys} for row in summary["accuracy"]]

    def failures(summary):
        return sorted((f["test"], f["message"], f["repro"], f["rerun"])
                      for f in summary["failures"])

    assert figures(merged) == figures(whole)
    assert failures(merged) and failures(merged) == failures(whole)
    for name in ("accuracy.md", "index.html"):
        assert (runs.cwd / "merged" / name).stat().st_size > 0, name
    for failure in merged["failures"]:  # each repro file was copied beside the merged report
        assert (runs.cwd / "merged" / failure["repro"]).exists(), failure["repro"]


def test_the_merged_run_record_is_the_command_without_the_shard(runs):
    run = runs.merged["run"]
    assert run["shard"] == {"count": SHARDS, "indexes": [1, 2, 3], "durations_sha256": None}
    # without --shard, --report-dir and --junitxml (run_conformance adds the last two)
    assert run["command"] == "pytest " + " ".join(SELECTION) + " -p no:cacheprovider"
    assert [c["label"] for c in runs.merged["candidates"]] == ["torch", "numpy", "mutant"]


@pytest.fixture(scope="module")
def partial(runs, tmp_path_factory):
    """Shards 1 and 3 merged without shard 2: (exit status, stderr, directory)."""
    out = tmp_path_factory.mktemp("partial") / "merged"
    status, _, err = report(runs.cwd, "merge", "shard-3", "shard-1", "--out", out)
    return status, err, out


def test_a_merge_with_a_missing_shard_says_which_and_exits_1(partial):
    status, err, out = partial
    assert status == 1, err
    assert "incomplete merge: shard(s) 2 of 3 missing" in err
    assert json.loads((out / "summary.json").read_text())["run"]["shard"]["indexes"] == [1, 3]


def test_a_merge_merges_again(runs, partial, tmp_path):
    """The merged directory is a report directory like any other: merging it again works."""
    status, _, err = report(runs.cwd, "merge", partial[2], "shard-2", "--out", tmp_path / "all")
    assert status == 0, err
    again = json.loads((tmp_path / "all" / "summary.json").read_text())
    assert again["tests"].keys() == runs.merged["tests"].keys()
    assert again["run"]["shard"]["indexes"] == [1, 2, 3]


# --- the gate --------------------------------------------------------------------------------


def test_the_gate_passes_the_merge_against_the_whole_run(runs):
    status, out, err = report(runs.cwd, "gate", "merged/summary.json",
                              "--baseline", "whole/summary.json")
    assert (status, err) == (0, ""), out
    assert out.strip() == "baseline whole/summary.json: 0 regression(s)"


def test_the_gate_prints_each_regression_and_exits_1(runs, tmp_path):
    baseline = runs.whole.summary()
    failed = sorted(n for n, t in baseline["tests"].items() if t["outcome"] == "failed")
    baseline["tests"][failed[0]]["outcome"] = "passed"  # as if it passed before
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    status, out, _ = report(runs.cwd, "gate", "merged/summary.json",
                            "--baseline", tmp_path / "baseline.json")
    assert status == 1, out
    assert "1 regression(s)" in out
    assert f"REGRESSION {failed[0]}: passed in the baseline, now failed" in out


def test_the_gate_fails_a_merge_with_missing_shards(runs, partial):
    status, out, _ = report(runs.cwd, "gate", partial[2] / "summary.json",
                            "--baseline", "whole/summary.json")
    assert status == 1, out
    assert "incomplete, shard(s) 2 of 3 missing" in out


# --- the durations file ----------------------------------------------------------------------


def test_a_durations_file_changes_the_assignment_but_not_the_union(runs, tmp_path):
    summary = runs.whole.summary()
    names = sorted(summary["tests"])
    # msml tests slow, l1_loss fast, the float32 l1_loss tests left out (they count the mean)
    for name in names:
        summary["tests"][name]["duration_s"] = 1.0 if MSML in name else 0.1
    summary["tests"] = {n: t for n, t in summary["tests"].items()
                        if not ("l1_loss" in n and "float32" in n)}
    durations = tmp_path / "summary.json"
    durations.write_text(json.dumps(summary))
    parts = [set(collected(runs.cwd, f"--shard={k}/{SHARDS}", f"--shard-durations={durations}"))
             for k in range(1, SHARDS + 1)]
    assert sum(map(len, parts)) == len(names) and set().union(*parts) == set(names)
    by_count = [set(shard.outcomes) for shard in runs.shards]
    assert parts != by_count
    known = [t["duration_s"] for t in summary["tests"].values()]
    seconds = {n: summary["tests"][n]["duration_s"] if n in summary["tests"]
               else sum(known) / len(known) for n in names}
    loads = [sum(seconds[n] for n in part) for part in parts]
    assert max(loads) - min(loads) <= max(seconds.values()), loads  # greedy's bound
    # pytest-split's .test_durations (node id -> seconds) gives the same assignment
    split = {f"conformance/test_x.py::{n}": t["duration_s"] for n, t in summary["tests"].items()}
    (tmp_path / ".test_durations").write_text(json.dumps(split))
    first = collected(runs.cwd, f"--shard=1/{SHARDS}",
                      f"--shard-durations={tmp_path / '.test_durations'}")
    assert set(first) == parts[0]


def test_the_shard_comes_after_the_other_selections(runs):
    """-k narrows first; the shards then split what is left (and cover it)."""
    narrowed = set(collected(runs.cwd, "-k", "test_value"))
    parts = [set(collected(runs.cwd, "-k", "test_value", f"--shard={k}/2")) for k in (1, 2)]
    assert parts[0] and parts[1] and not parts[0] & parts[1]
    assert parts[0] | parts[1] == narrowed


# --- usage errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("options, fragment", [
    (["--shard=3/2"], "--shard=3/2: there is no part 3 of 2; give K/N with 1 <= K <= N"),
    (["--shard=0/2"], "--shard=0/2: there is no part 0 of 2"),
    (["--shard=x"], "--shard=x: give K/N, the K-th of N parts, such as --shard=1/4"),
    (["--shard=1/2", "--shard-durations=missing.json"],
     "--shard-durations=missing.json: no such file; give the summary.json of an earlier run"),
    (["--shard=1/2", "--shard-durations=list.json"],
     "--shard-durations=list.json: holds no test durations"),
    (["--shard-durations=list.json"], "--shard-durations needs --shard=K/N"),
])
def test_a_bad_shard_option_is_a_one_line_usage_error(tmp_path, options, fragment):
    (tmp_path / "list.json").write_text("[1, 2]")
    run = run_conformance(tmp_path, "conformance", "--impl=numpy", *options)
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR: ") and fragment in lines[0], run
    assert not run.outcomes


def _with_run_setting(source, target, key, value):
    """A copy of the report directory ``source`` whose run record has ``key`` set to ``value``."""
    shutil.copytree(source, target)
    path = target / "results" / "main.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        if record["kind"] == "run":
            record["settings"][key] = value
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return target


@pytest.mark.parametrize("argv, fragment", [
    (["merge"], "merge: the following arguments are required: --out"),
    (["merge", "--out", "o"], "merge: the following arguments are required: DIR"),
    (["merge", "shard-1"], "merge: the following arguments are required: --out"),
    (["merge", "shard-1", "empty", "--out", "o"], "empty: no results (empty/results/*.jsonl)"),
    (["merge", "shard-1", "shard-1", "--out", "o"], "shard 1 of 3 twice"),
    (["merge", "shard-1", "whole", "--out", "o"], "whole is an unsharded run"),
    (["merge", "shard-1", "shard-2", "--out", "shard-2"], "--out=shard-2 is also an input"),
    (["merge", "shard-1", "seed", "--out", "o"], "seed 0 and 7 in shard-1 (shard 1 of 3)"),
    (["merge", "shard-1", "split", "--out", "o"], "shards of different splits"),
    (["merge", "shard-1", "whole", "--out", "o", "--bogus"], "unrecognized arguments: --bogus"),
    (["gate", "merged/summary.json"], "gate: the following arguments are required: --baseline"),
    (["gate", "nothing.json", "--baseline", "whole/summary.json"], "nothing.json: no such file"),
    (["gate", "merged/summary.json", "--baseline", "nothing.json"],
     "--baseline=nothing.json: no such file"),
    ([], "usage: python -m conformance.report REPORT_DIR | "),
])
def test_bad_report_usage_is_one_line_and_exit_status_2(runs, tmp_path, argv, fragment):
    (tmp_path / "empty").mkdir()
    for name in ("shard-1", "shard-2", "whole", "merged"):
        (tmp_path / name).symlink_to(runs.cwd / name)
    _with_run_setting(runs.cwd / "shard-2", tmp_path / "seed", "seed", 7)
    _with_run_setting(runs.cwd / "shard-2", tmp_path / "split", "shard",
                      {"count": 2, "indexes": [2], "durations_sha256": None})
    status, out, err = report(tmp_path, *argv)
    assert status == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], err
    assert not (tmp_path / "o").exists(), "a refused merge writes nothing"
