"""Every loss's speed ladder: declared, valid calls at every rung's shape, counted, measured.

No test asserts a timing (the machine is shared and noisy): the ladders' cases are called, not
timed, at their smallest size; the memory measurement is checked on an allocation of known
size; one narrow ``--speed`` run checks that the rows, memory and roofs reach the reports.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import run_conformance

from conformance import memory, timing
from conformance.candidates import load_candidates
from conformance.plugin import SPEED_DTYPES
from conformance.specs import DEFAULT_RUNGS, RUNGS, SPECS, VARIANT_RUNG
from conformance.specs.speed import linear_cross_entropy_ladder

QUICK = {"bandwidth_gbs": 20.0, "elements_per_s": 1e9, "flops_per_s": 1e11, "budget_s": 0.005,
         "max_rounds": 3, "max_call_s": 60.0}
pytestmark = pytest.mark.filterwarnings("ignore::conformance.timing.UnsteadyTiming")


@pytest.fixture(scope="module")
def candidates():
    return {c.label: c for c in load_candidates(["torch", "numpy"])}


def _ladder_ids():
    return [(name, variant) for name, spec in SPECS.items() if spec.speed is not None
            for variant in ["typical"] + [v for v, _ in spec.speed.variants]]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_loss_has_a_ladder_of_one_size_per_rung(name):
    spec = SPECS[name]
    assert spec.speed is not None, (
        f"{name} has no speed ladder: give its Spec speed=... (conformance/specs/speed.py has "
        "the helpers; linear_cross_entropy's is speed.linear_cross_entropy_ladder())")
    ladder = spec.speed
    assert len(ladder.sizes) == len(RUNGS)
    rng = np.random.default_rng(0)
    dtype = (ladder.dtypes or SPEED_DTYPES)[0]
    cases = [ladder.case(size, dtype, rng) for size in ladder.sizes[:3]]  # the rest: large
    sizes = [ladder.bytes_moved(case, False) for case in cases]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3  # tiny to out of the caches
    work = [ladder.elements(case) for case in cases]
    assert all(w > 0 for w in work) and work == sorted(work)
    assert ladder.work and ladder.inputs
    assert set(ladder.differentiated) <= set(spec.differentiable)
    assert {v for v, _ in ladder.variants}.isdisjoint({"typical"})


def _candidate_for(spec, candidates):
    return candidates["torch"] if spec.name in candidates["torch"].functions \
        else candidates["numpy"]


@pytest.mark.parametrize("name, variant", _ladder_ids())
def test_each_variant_is_a_valid_call_at_the_smallest_size(name, variant, candidates):
    """torch (numpy where torch lacks the loss) takes the case forward and backward, and the
    numpy candidate, which validates its arguments as torch's documentation states them, takes
    it too: the ladder's typical inputs are valid calls."""
    spec = SPECS[name]
    dtype = (spec.speed.dtypes or ("float32",))[0]
    case = timing.variant_case(spec, spec.speed.sizes[0], dtype, np.random.default_rng(0),
                               variant)
    for label in ("torch", "numpy"):
        candidate = candidates[label]
        if name not in candidate.functions:
            continue
        forward, forward_backward = timing._calls(candidate, spec, case)
        output = forward()
        values, _ = candidate.framework.read_output(output)
        assert np.all(np.isfinite(values)), (label, values)
        if not spec.speed.differentiated:
            continue  # forward only (multi_hot)
        assert values.shape == np.shape(case.grad_output)  # the upstream gradient fits
        if candidate.framework.differentiates(
                output, vjp=getattr(candidate.module, f"{name}_vjp", None)):
            forward_backward()
    forward_bytes = spec.speed.bytes_moved(case, False)
    assert 0 < forward_bytes
    if spec.speed.differentiated:
        assert spec.speed.bytes_moved(case, True) > forward_bytes


def test_the_linear_cross_entropy_ladder_counts_three_roofs():
    ladder = linear_cross_entropy_ladder()
    case = ladder.case(ladder.sizes[0], "float32", np.random.default_rng(0))
    tokens, hidden, vocabulary = ladder.sizes[0]
    assert case.args["input"].shape == (tokens, hidden)
    assert case.args["linear_weight"].shape == (vocabulary, hidden)
    assert ladder.flops(case, False) == 2 * tokens * hidden * vocabulary
    assert ladder.flops(case, True) == 3 * ladder.flops(case, False)
    assert ladder.elements(case) == tokens * vocabulary  # one exp per logit
    assert ladder.differentiated == ("input", "linear_weight")
    assert (case.args["target"] == -100).any()  # a share ignored
    output = torch.nn.functional.linear_cross_entropy(
        torch.from_numpy(case.args["input"]), torch.from_numpy(case.args["linear_weight"]),
        torch.from_numpy(case.args["target"]))
    assert math.isfinite(float(output))
    row = timing.place_on_roofs({"bytes": 10**6, "elements": 10**6, "flops": 10**12,
                                 "median_s": 20.0, "gbs": 5e-5}, 10.0, 1e9, 1e11)
    assert row["roof"] == "matmul" and row["roof_s"] == pytest.approx(10.0)
    assert row["matmul_share"] == pytest.approx(0.5)


def test_rungs_and_variants():
    assert DEFAULT_RUNGS == RUNGS[:-1] and VARIANT_RUNG in DEFAULT_RUNGS


@pytest.mark.skipif(not memory.available(), reason="needs Linux's clear_refs and glibc")
def test_peak_memory_counts_an_allocation_of_known_size():
    def allocate():
        block = torch.ones(4 << 20)  # 16 MiB, touched
        return float(block[-1])

    allocate()  # torch's lazy set-up of its first tensor (3 MiB) is not the allocation
    measured = [memory.peak_growth(allocate) for _ in range(3)]
    assert all(abs(m - (16 << 20)) < (2 << 20) for m in measured), measured
    assert memory.peak_growth(lambda: None) < (1 << 20)


# 40 arrays of 2 MiB, every other one freed, then 16 MiB: the peak is the 80 MiB of the 40
PEAK_AFTER_KEEPING = """
import numpy as np
from conformance import memory
from conformance.allocator import keep_freed_memory

assert keep_freed_memory()
held = [np.ones(3 << 20) for _ in range(5)][1::2]  # the process's own heap, in pieces


def allocate():
    arrays = [np.ones(1 << 18) for _ in range(40)]
    kept = arrays[::2]
    del arrays
    block = np.ones(2 << 20)
    return float(block[-1]) + len(kept)


print(max(memory.peak_growth(allocate) for _ in range(3)) / 2 ** 20)
"""


@pytest.mark.skipif(not memory.available(), reason="needs Linux's clear_refs and glibc")
def test_peak_memory_holds_in_a_process_that_keeps_freed_memory():
    """The run's process keeps freed memory (``allocator``: no mmap); with --isolation=none
    candidates are measured there, and the measurement maps blocks again for its call. Kept,
    the freed arrays' holes fit no 16 MiB block and the peak read 100 MiB."""
    out = subprocess.run([sys.executable, "-c", PEAK_AFTER_KEEPING], capture_output=True,
                         text=True, check=True)
    assert abs(float(out.stdout) - 80) < 6, out.stdout


@pytest.mark.skipif(not memory.available(), reason="needs Linux's clear_refs and glibc")
def test_rows_carry_peak_memory(candidates):
    spec = SPECS["cross_entropy"]
    rows = timing.time_size(list(candidates.values()), spec, (256, 1000), "float32",
                            np.random.default_rng(0), rung="small", **QUICK)
    assert {(r["candidate"], r["pass"]) for r in rows} == {
        (c, p) for c in ("torch", "numpy") for p in timing.PASSES}
    for row in rows:
        assert row["memory_method"] == "rss" and row["rung"] == "small"
        # the forward holds at least its (256, 1000) log-softmax or an equal temporary
        assert row["peak_bytes"] >= 256 * 1000 * 4 * 0.7, row


def test_a_speed_run_reports_time_memory_and_roofs(tmp_path):
    run = run_conformance(tmp_path, "conformance", "--impl=torch", "--impl=numpy", "--speed",
                          "--speed-sizes=tiny", "--speed-dtype=float32", "--loss=mse_loss",
                          "--loss=nll_loss", "--report-dir=out", "-k", "test_speed")
    assert run.returncode == 0, run
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["speed"]
    assert {(r["loss"], r["candidate"]) for r in rows} == {
        (loss, c) for loss in ("mse_loss", "nll_loss") for c in ("torch", "numpy")}
    assert {r["rung"] for r in rows} == {"tiny"} and {r["dtype"] for r in rows} == {"float32"}
    for row in rows:
        assert row["roof"] in ("memory", "compute") and row["roof_s"] > 0
        assert row["peak_bytes"] is None or row["peak_bytes"] >= 0
    assert summary["machine"]["threads"] == 1
    assert {e["loss"] for e in summary["speed_fastest"]} == {"mse_loss", "nll_loss"}
    text = (out / "speed.md").read_text()
    assert "## Fastest per size" in text and "peak memory" in text
    assert "Peak memory (CPU)" in text
    page = (out / "index.html").read_text()
    assert "Fastest per size" in page and "peak memory against size" in page


def test_speed_sizes_names_the_rungs(tmp_path):
    run = run_conformance(tmp_path, "conformance", "--impl=torch", "--speed",
                          "--speed-sizes=tiny,bogus", "--no-report", "-k", "test_speed")
    assert run.returncode == 4
    assert "--speed-sizes=tiny,bogus: unknown rung 'bogus'" in run.stdout + run.stderr
