"""The command-line contract of ``pytest conformance --impl=...``, run as a user runs it.

Every check runs the real command (``run_conformance`` in conftest.py: in this process, or in a
fresh one where only that shows the behaviour) from a temporary directory outside the checkout,
so the bare ``conformance`` argument must resolve to the installed suite. Each run is narrowed
with ``-k`` so the whole file stays fast, and the runs that several tests read are made once per
module, when a test first reads them.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from conftest import REPO, Run, run_conformance

from conformance.specs import SPECS

CANDIDATES = REPO / "tests" / "candidates"
MUTANTS = REPO / "tests" / "mutants"
MSML = "multilabel_soft_margin_loss"
MLM = "multilabel_margin_loss"
SPEC_NAMES = tuple(SPECS)  # every loss the suite covers, in the order it lists them
MULTILABEL = (MSML, MLM, "multi_hot")

RECORDER = '''\
"""Correct candidate (torch's loss) that appends every input it is called with to $RECORD_LOG."""
import os

import torch.nn.functional as F


def multilabel_soft_margin_loss(input, target, weight=None, **options):
    with open(os.environ["RECORD_LOG"], "a") as log:
        log.write(repr((tuple(input.shape), input.tolist(), target.tolist(),
                        None if weight is None else weight.tolist(), sorted(options.items())))
                  + "\\n")
    return F.multilabel_soft_margin_loss(input, target, weight=weight, **options)
'''


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A directory outside the checkout holding a user's own candidates."""
    here = tmp_path_factory.mktemp("elsewhere")
    assert REPO not in here.parents and not (here / "conformance").exists()
    (here / "mymodule.py").write_text(
        "from torch.nn.functional import multilabel_soft_margin_loss  # noqa: F401\n")
    (here / "recorder.py").write_text(RECORDER)
    (here / "no_losses.py").write_text(
        "def mean_squared_error(a, b):\n    return ((a - b) ** 2).mean()\n")
    # A user's adapter module whose own dependency (named like its prefix) is not installed.
    (here / "mylosses_torch.py").write_text(
        "import mylosses  # noqa: F401  (the user's library, not installed)\n")
    (here / "broken.py").write_text("def l1_loss(input, target:\n    return input\n")
    (here / "one_argument.py").write_text("def l1_loss(input):\n    return input.abs().mean()\n")
    (here / "bad_xfails.txt").write_text("test_value[torch-l1_loss-  # fine\nno reason here\n")
    (here / "cands").mkdir()
    shutil.copy(CANDIDATES / "torch_with_multi_hot.py", here / "cands")
    return here


# --------------------------------------------------------- the runs several tests read
#
# One selection serves several tests: a mutant's edge case and the recorder's random checks (seed,
# profile, failure message, reproduce line) beside a forward-only candidate's gradient checks and
# torch's float16 multilabel_margin_loss (skips and --require-*). The options each run adds change
# only what their own tests look at; every subprocess saved is seconds off this file.

MUTANT = MUTANTS / "msml_fp64_via_fp32.py"
EDGE_TEST = f"test_edge_value[msml_fp64_via_fp32-{MSML}-float64-one-class]"
RECORDER_TEST = f"test_value[recorder-{MSML}-float64]"
COMBINED_ARGS = (
    "conformance", f"--impl={CANDIDATES / 'forward_only.py'}", "--impl=torch", f"--impl={MUTANT}",
    "--impl=recorder.py", "-k",
    f"(gradient and forward_only-{MSML}-float64)"
    f" or (value and torch-{MLM}-float16)"
    f" or (test_edge_value and msml_fp64_via_fp32-{MSML}-float64-one-class)"
    f" or (test_value and recorder-{MSML}-float64)")


def _reproduce_line(run: Run):
    lines = [line for line in run.stdout.splitlines() if "reproduce: " in line]
    return lines[0].split("reproduce: ", 1)[1] if lines else None


def _plain_and_its_reproduce_line(cwd: Path) -> tuple:
    """The combined run with no options, then the reproduce line it printed, run as printed."""
    plain = run_conformance(cwd, *COMBINED_ARGS, record=True)
    line = _reproduce_line(plain)
    if line is None:
        return plain, None, None
    words = shlex.split(line)
    if words[:2] != ["pytest", "conformance"]:
        return plain, line, None
    return plain, line, run_conformance(cwd, *words[1:], record=True)


class SharedRuns:
    """The runs several tests read; ``[name]`` makes one when a test first reads it."""

    def __init__(self, cwd: Path):
        self._specs = {
            "plain": (_plain_and_its_reproduce_line, cwd),
            # no --seed again: must draw the same; --require-* touch only the skipped tests
            "require_grad": (run_conformance, cwd, *COMBINED_ARGS, "--require-grad",
                             "--require-dtype=bfloat16"),
            "seed1_require_float16": (run_conformance, cwd, *COMBINED_ARGS, "--seed=1",
                                      "--require-dtype=float16"),
            # a module from the cwd, a relative .py path, the numpy alias and the recorder
            "several_impls": (run_conformance, cwd, "conformance", "--impl=mymodule",
                              "--impl=cands/torch_with_multi_hot.py", "--impl=numpy",
                              "--impl=recorder.py", "--profile=quick",
                              "-k", "test_value and multilabel and float64"),
        }
        self._runs = {}

    def __getitem__(self, name):
        if name not in self._runs:
            function, *args = self._specs[name]
            kwargs = {"record": True} if function is run_conformance else {}
            self._runs[name] = function(*args, **kwargs)
        return self._runs[name]


@pytest.fixture(scope="module")
def shared(workdir):
    return SharedRuns(workdir)


# ------------------------------------------------------------------------------- bad --impl

@pytest.mark.parametrize("impl, fragments", [
    pytest.param("no_such_module_xyz", ["no module named 'no_such_module_xyz'"],
                 id="nonexistent-module"),
    pytest.param("missing/candidate.py", ["no such file"], id="nonexistent-file"),
    pytest.param("no_losses", ["defines none of the functions", MSML], id="no-loss-functions"),
    pytest.param("mylosses_torch", ["importing it raised ModuleNotFoundError", "'mylosses'"],
                 id="module-whose-dependency-is-missing"),
    pytest.param("broken.py", ["syntax error at line 1"], id="file-with-a-syntax-error"),
    pytest.param("one_argument.py", ["l1_loss(input) cannot be called as torch's l1_loss(input, "
                                     "target, ...)"], id="incompatible-signature"),
])
def test_bad_impl_is_a_one_line_usage_error(workdir, impl, fragments):
    run = run_conformance(workdir, "conformance", f"--impl={impl}", "--profile=quick")
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, str(run)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, str(run)
    assert lines[0].startswith(f"ERROR: --impl={impl}: "), str(run)
    assert "Traceback" not in run.stdout + run.stderr, str(run)
    assert not run.outcomes, "nothing may run after a bad --impl"
    for fragment in fragments:
        assert fragment in lines[0], str(run)


@pytest.mark.parametrize("option, fragment", [
    ("--profile=fast", "invalid choice: 'fast'"),
    ("--require-dtype=float8", "--require-dtype=float8: unknown dtype"),
    ("--dtype=float8", "--dtype=float8: unknown dtype; use one of float64, float32"),
    ("--loss=l2_loss", "--loss=l2_loss: unknown loss; use one of multilabel_soft_margin_loss"),
    ("--device=tpu", "invalid choice: 'tpu' (choose from 'cpu', 'cuda')"),
    ("--repeat=0", "--repeat=0: give a number of 1 or more"),
    ("--check-timeout=0", "--check-timeout=0: give a number above 0"),
    ("--xfails=bad_xfails.txt", "--xfails=bad_xfails.txt, line 2: no reason"),
    ("--xfails=missing.txt", "--xfails=missing.txt: cannot read it"),
    ("--profile=llm --loss=cross_entropy --loss=mse_loss",
     "--loss=mse_loss: no language-model tier (--profile=llm covers cross_entropy, nll_loss, "
     "linear_cross_entropy)"),
    ("--impl=mymodule --profile=llm", "--profile=llm: mymodule has none of the losses with a "
     "language-model tier (cross_entropy, nll_loss, linear_cross_entropy)"),
])
def test_bad_option_value_is_a_usage_error(workdir, option, fragment):
    run = run_conformance(workdir, "conformance", *option.split())
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, str(run)
    assert fragment in run.stderr, str(run)
    assert "Traceback" not in run.stdout + run.stderr, str(run)
    assert not run.outcomes


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("args", [["--impl=torch-cuda"], ["--impl=numpy", "--device=cuda"]],
                         ids=["torch-cuda", "device-cuda"])
def test_a_missing_gpu_skips_with_its_reason_unless_required(workdir, args):
    narrow = ["conformance", *args, "--loss=l1_loss", "--dtype=float32", "-k", "sum"]
    run = run_conformance(workdir, *narrow)
    assert run.returncode == pytest.ExitCode.OK, str(run)
    skipped = run.with_outcome("skipped")
    assert skipped and len(skipped) == len(run.outcomes), str(run)
    reason = ("CUDA is not available on this machine" if "torch-cuda" in args[0]
              else "numpy candidates run on the CPU only, not on cuda")
    assert all(reason in message for _, message, _ in skipped.values()), str(run)
    required = run_conformance(workdir, *narrow, "--require-device")
    assert required.returncode == pytest.ExitCode.USAGE_ERROR, str(required)
    assert f"{reason}" in required.stderr and "(--require-device)" in required.stderr
    assert "Traceback" not in required.stderr, str(required)


def test_console_script_imports_a_module_from_the_current_directory(workdir):
    script = Path(sys.executable).with_name("pytest")
    if not script.exists():
        pytest.skip(f"no pytest console script next to {sys.executable}")
    run = run_conformance(workdir, "conformance", "--impl=mymodule", "--collect-only", "-q",
                          "-k", "test_value and float64", command=[str(script)])
    assert run.returncode == pytest.ExitCode.OK, str(run)
    expected = f"test_conformance.py::test_value[mymodule-{MSML}-float64]"
    assert expected in run.stdout, str(run)


def test_impl_given_several_times_gives_each_candidate_its_own_test_ids(workdir):
    run = run_conformance(workdir, "conformance", "--impl=mymodule", "--impl=numpy",
                          "--impl=mymodule", "--collect-only", "-q")
    assert run.returncode == pytest.ExitCode.OK, str(run)
    ids = [line for line in run.stdout.splitlines() if "::" in line]
    assert len(ids) == len(set(ids)), "test ids must be unique"
    assert f"{len(ids)} tests collected" in run.stdout, str(run)
    pattern = re.compile(rf"::(\w+)\[(mymodule-2|mymodule|numpy)-({'|'.join(SPEC_NAMES)})-(.*)]$")
    by_label = {"mymodule": set(), "mymodule-2": set(), "numpy": set()}
    for test_id in ids:
        match = pattern.search(test_id)
        assert match, f"test id names no known candidate and loss: {test_id}"
        function, label, spec, rest = match.groups()
        by_label[label].add((function, spec, rest))
    # The second --impl=mymodule is a candidate of its own (label mymodule-2), tested alike.
    assert by_label["mymodule"] and by_label["mymodule"] == by_label["mymodule-2"]
    assert {spec for _, spec, _ in by_label["mymodule"]} == {MSML}  # only what it provides
    assert {spec for _, spec, _ in by_label["numpy"]} == set(SPEC_NAMES)
    assert {(f, s, r) for f, s, r in by_label["numpy"] if s == MSML} == by_label["mymodule"]


def test_nothing_selected_exits_5_and_thorough_profile_is_accepted(workdir):
    # A path and node id inside the suite resolve too: were it not found, the exit would be 4.
    run = run_conformance(workdir, "conformance/test_conformance.py::test_value", "--impl=numpy",
                          "--profile=thorough", "-k", "no_test_is_called_this")
    assert run.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, str(run)
    assert re.search(r"collected ([1-9]\d*) items / \1 deselected / 0 selected", run.stdout), \
        str(run)
    assert run.header()[0].startswith(
        "loss-conformance: seed 0, profile thorough (400 random examples per check)"), str(run)
    assert not run.outcomes


def test_the_language_model_tier_collects_serially_with_prefetching(workdir):
    """Under --profile=llm only the edge tests run, so the other test functions are left no
    parameters (one NOTSET item each): with prefetching on (a serial run on two cores has it)
    their planning raised KeyError: 'token' before collection ended, an INTERNALERROR; they are
    deselected, not listed as skipped tests."""
    run = run_conformance(workdir, "conformance", "--impl=torch", "--profile=llm",
                          "--prefetch=on", "--collect-only", "-q")
    assert run.returncode == pytest.ExitCode.OK, str(run)
    assert "INTERNALERROR" not in run.stdout + run.stderr, str(run)
    tests = [line for line in run.stdout.splitlines() if "::" in line]
    assert tests and all("::test_edge_" in line for line in tests), str(run)
    assert any("::test_edge_gradient[torch-" in line and "-v128256-" in line for line in tests)
    assert re.search(r"\d+/\d+ tests collected \(\d+ deselected\)", run.stdout), str(run)


# ------------------------------------------------------------------------- candidates, header

def test_cwd_module_py_path_and_numpy_alias_all_run_and_pass(shared, workdir):
    run = shared["several_impls"]
    assert run.returncode == pytest.ExitCode.OK, str(run)
    assert f"rootdir: {workdir}" in run.stdout, run  # run from elsewhere, the suite installed
    expected = {f"test_value[{label}-{spec}-float64]"
                for label, specs in [("mymodule", [MSML]),
                                     ("torch_with_multi_hot", [MSML, MLM]),
                                     ("numpy", [MSML, MLM]), ("recorder", [MSML])]
                for spec in specs}
    assert set(run.outcomes) == expected, str(run)
    assert set(run.with_outcome("passed")) == expected, str(run)
    assert "6 passed" in run.stdout, str(run)


def test_header_lists_found_and_missing_functions_per_candidate(shared):
    run = shared["several_impls"]
    header = run.header()
    assert header[0].startswith("loss-conformance: seed 0, profile quick (8 random examples "
                                "per check"), str(run)
    candidates = header[1:]
    assert len(candidates) == 4, str(run)
    mine, file_candidate, numpy_candidate, recorder = candidates
    assert mine.startswith("  candidate mymodule: mymodule [torch "), mine
    others = ", ".join(name for name in SPEC_NAMES if name != MSML)
    assert mine.endswith(f"tests {MSML}; not provided: {others}"), mine
    assert file_candidate.startswith(
        "  candidate torch_with_multi_hot: cands/torch_with_multi_hot.py [torch "), file_candidate
    others = ", ".join(name for name in SPEC_NAMES if name not in MULTILABEL)
    provided = f"tests {', '.join(MULTILABEL)}" + (f"; not provided: {others}" if others else "")
    assert file_candidate.endswith(provided), file_candidate
    assert numpy_candidate.startswith("  candidate numpy: numpy [numpy "), numpy_candidate
    assert numpy_candidate.endswith(f"tests {', '.join(SPEC_NAMES)}"), numpy_candidate
    assert recorder.startswith("  candidate recorder: recorder.py [torch "), recorder


# ---------------------------------------------- a failing candidate, reproduce, seed, profile

def _failure_text(run, test_name) -> str:
    outcome, _, text = run.outcomes[test_name]
    assert outcome == "failed", str(run)
    return text


def _worst_element(text) -> tuple:
    match = re.search(r"candidate (\S+), exact (\S+), error \S+ \(.*\), allowed (\S+)", text)
    assert match, text
    return tuple(float(v) for v in match.groups())


def _mutant_and_recorder(run) -> dict:
    return {n: v for n, v in run.outcomes.items() if n in (EDGE_TEST, RECORDER_TEST)}


def test_nonconforming_candidate_exits_1(shared):
    run, _, _ = shared["plain"]
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, str(run)
    assert run.with_outcome("failed").keys() == {EDGE_TEST}, str(run)
    assert run.with_outcome("passed").keys() == {RECORDER_TEST}, str(run)


def test_failure_message_names_candidate_loss_dtype_worst_element_and_reproduce(shared):
    run, reproduce, _ = shared["plain"]
    text = _failure_text(run, EDGE_TEST)
    assert f"{MSML} on msml_fp64_via_fp32 does not conform" in text
    assert "case: float64 " in text
    candidate, exact, allowed = _worst_element(text)
    assert abs(candidate - exact) > allowed > 0
    # The same message reaches the terminal, with a command line that reruns the test.
    assert f"{MSML} on msml_fp64_via_fp32 does not conform" in run.stdout
    assert reproduce is not None, str(run)
    assert reproduce.startswith(
        f"pytest conformance --impl={CANDIDATES / 'forward_only.py'} --impl=torch "
        f"--impl={MUTANT} --impl=recorder.py --seed=0 --profile=default -k "), reproduce
    assert shlex.split(reproduce)[-1] == EDGE_TEST


def test_reproduce_line_reruns_exactly_that_test_and_fails_the_same_way(shared):
    plain, line, rerun = shared["plain"]
    assert rerun is not None, f"no runnable reproduce line: {line!r}"
    assert rerun.returncode == pytest.ExitCode.TESTS_FAILED, str(rerun)
    assert list(rerun.outcomes) == [EDGE_TEST], str(rerun)
    assert re.search(r"\b1 failed, \d+ deselected\b", rerun.stdout), str(rerun)
    again = _failure_text(rerun, EDGE_TEST)
    assert _worst_element(again) == _worst_element(_failure_text(plain, EDGE_TEST))
    assert rerun.calls == [], "the rerun must not run the other candidates' tests"


def test_runs_without_seed_are_reproducible(shared):
    (plain, _, _), again = shared["plain"], shared["require_grad"]
    assert plain.header()[0].startswith("loss-conformance: seed 0, profile default"), str(plain)
    assert again.header()[0].startswith("loss-conformance: seed 0, profile default"), str(again)
    assert (_worst_element(_failure_text(again, EDGE_TEST))
            == _worst_element(_failure_text(plain, EDGE_TEST)))
    assert plain.calls and again.calls == plain.calls  # the very same random cases


def test_seed_changes_the_random_draws(shared):
    (plain, _, _), other = shared["plain"], shared["seed1_require_float16"]
    assert other.header()[0].startswith("loss-conformance: seed 1, "), str(other)
    assert _mutant_and_recorder(other).keys() == {EDGE_TEST, RECORDER_TEST}, str(other)
    assert other.outcomes[RECORDER_TEST][0] == "passed", str(other)
    # The edge case's random values (and so the worst element) come from the seed ...
    assert (_worst_element(_failure_text(other, EDGE_TEST))
            != _worst_element(_failure_text(plain, EDGE_TEST)))
    assert "--seed=1 " in _failure_text(other, EDGE_TEST)
    # ... and so do hypothesis' draws: the first call is the probe, the rest are the examples.
    assert len(other.calls) == len(plain.calls)
    assert other.calls[0] != plain.calls[0]
    assert other.calls[1:] != plain.calls[1:]


def test_profile_sets_the_number_of_random_examples(shared):
    # One probe call, then one call per hypothesis example: quick 8, default 30, shared out
    # over the three reductions (ceil(8 / 3) = 3 each, 10 each).
    assert len(shared["several_impls"].calls) == 1 + 3 * 3, str(shared["several_impls"])
    assert len(shared["plain"][0].calls) == 1 + 3 * 10, str(shared["plain"][0])


# ------------------------------------------------------ skips: forward-only, refused dtypes

def _split(run) -> tuple:
    """(forward-only gradient tests, torch float16 margin-loss tests) -> outcomes."""
    grads = {n: v for n, v in run.outcomes.items()
             if n.startswith(("test_gradient[forward_only-", "test_edge_gradient[forward_only-"))}
    fp16 = {n: v for n, v in run.outcomes.items() if f"[torch-{MLM}-float16" in n}
    others = set(run.outcomes) - set(grads) - set(fp16)
    assert grads and fp16 and others == {EDGE_TEST, RECORDER_TEST}, str(run)
    assert any(n.startswith("test_gradient[") for n in grads), str(run)
    return grads, fp16


def _assert_skipped_forward_only(grads):
    for name, (outcome, message, _) in grads.items():
        assert outcome == "skipped" and message.startswith("forward-only"), (name, message)


def _assert_skipped_float16(fp16):
    for name, (outcome, message, _) in fp16.items():
        assert outcome == "skipped", (name, outcome, message)
        assert message.startswith("unsupported dtype: torch declines float16"), (name, message)


def test_forward_only_gradients_and_refused_dtype_are_skipped(shared):
    run, _, _ = shared["plain"]
    grads, fp16 = _split(run)
    _assert_skipped_forward_only(grads)
    _assert_skipped_float16(fp16)
    assert run.with_outcome("failed").keys() == {EDGE_TEST}, "skips are not failures"


def test_require_grad_fails_forward_only_gradients(shared):
    run = shared["require_grad"]
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, str(run)
    grads, fp16 = _split(run)
    for name, (outcome, message, _) in grads.items():
        assert outcome == "failed", (name, outcome)
        assert "forward-only" in message and "required by the command line" in message, message
    _assert_skipped_float16(fp16)  # requiring another dtype leaves float16 skipped


def test_require_dtype_fails_a_refused_dtype(shared):
    run = shared["seed1_require_float16"]
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, str(run)
    grads, fp16 = _split(run)
    for name, (outcome, message, _) in fp16.items():
        assert outcome == "failed", (name, outcome)
        assert "unsupported dtype: torch declines float16" in message, message
        assert "required by the command line" in message, message
    _assert_skipped_forward_only(grads)  # --require-grad was not given
