"""The speed harness (conformance/timing.py) on tiny sizes: rows, ratios, roofs, rotation.

No test asserts a timing: the machine is shared and noisy. Roofs are passed in (except in the
two tests of the measurements themselves), so each test stays well under two seconds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conformance.candidates import load_candidate, load_candidates
from conformance.specs import SPECS
from conformance import timing
from conformance.timing import (SpeedSkipped, UnsteadyTiming, compute_rate, input_cases,
                                input_sets, last_level_cache_bytes, memory_bandwidth_gbs,
                                parallel_region_s, place_on_roofs, time_size)

SOFT = SPECS["multilabel_soft_margin_loss"]
MARGIN = SPECS["multilabel_margin_loss"]
FORWARD_ONLY = Path(__file__).parent / "candidates" / "forward_only.py"
# The keys of a "speed" entry of summary.json (conformance/report/__init__.py).
SPEED_KEYS = {"candidate", "loss", "dtype", "device", "size", "rung", "variant", "options",
              "arrays", "pass", "median_s", "min_s", "q10_s", "q90_s", "repeats", "bytes",
              "elements", "flops", "gbs", "bandwidth_share", "compute_share", "matmul_share",
              "roof", "roof_s", "ratio_to_baseline", "ratio_q10", "ratio_q90", "baseline",
              "peak_bytes", "memory_method"}
QUICK = {"bandwidth_gbs": 20.0, "elements_per_s": 1e9, "budget_s": 0.005, "max_rounds": 4,
         "max_call_s": 60.0}
MiB = 1 << 20
# The shared machine's busy spells are reported, not tested; the one test of them uses warns().
pytestmark = pytest.mark.filterwarnings("ignore::conformance.timing.UnsteadyTiming")


@pytest.fixture(scope="module")
def torch_numpy():
    return load_candidates(["torch", "numpy"])


def _rows(candidates, spec=SOFT, dtype="float32", size=(4, 3)):
    return time_size(candidates, spec, size, dtype, np.random.default_rng(0), **QUICK)


def _positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.parametrize("spec", [SOFT, MARGIN], ids=lambda s: s.name)
def test_rows_have_the_schema_keys_and_positive_finite_figures(torch_numpy, spec):
    rows = _rows(torch_numpy, spec)
    assert {(r["candidate"], r["pass"]) for r in rows} == {
        (c, p) for c in ("torch", "numpy") for p in ("forward", "forward+backward")}
    for row in rows:
        assert set(row) == SPEED_KEYS
        assert (row["loss"], row["dtype"], row["device"], row["size"], row["baseline"]) == (
            spec.name, "float32", "cpu", [4, 3], "torch")
        for key in ("median_s", "min_s", "q10_s", "q90_s", "repeats", "bytes", "elements",
                    "gbs", "bandwidth_share", "compute_share", "roof_s", "ratio_to_baseline",
                    "ratio_q10", "ratio_q90"):
            assert _positive(row[key]), (key, row)
        assert row["min_s"] <= row["q10_s"] <= row["median_s"] <= row["q90_s"]
        assert row["ratio_q10"] <= row["ratio_to_baseline"] <= row["ratio_q90"]
        assert row["variant"] == "typical" and row["options"] == {"reduction": "mean"}
        assert row["flops"] is None and row["matmul_share"] is None  # no matrix product
        assert row["memory_method"] == "rss" and row["peak_bytes"] >= 0
        assert row["repeats"] >= 3
        assert row["roof"] in ("memory", "compute")
        assert row["gbs"] == pytest.approx(row["bytes"] / row["median_s"] / 1e9)
    forward, both = (next(r for r in rows if r["candidate"] == "torch" and r["pass"] == p)
                     for p in ("forward", "forward+backward"))
    assert both["bytes"] > forward["bytes"]  # grad_input written, upstream gradient read


def test_byte_and_element_counts_of_the_ladders():
    rng = np.random.default_rng(0)
    soft = SOFT.speed.case((256, 1000), "float32", rng)
    assert SOFT.speed.bytes_moved(soft, False) == 2 * 256_000 * 4 + 4  # input, target, output
    assert SOFT.speed.bytes_moved(soft, True) == 2 * 256_000 * 4 + 4 + 256_000 * 4 + 4
    assert SOFT.speed.elements(soft) == 256_000
    assert 0.08 < soft.args["target"].mean() < 0.12
    margin = MARGIN.speed.case((64, 10), "bfloat16", rng)
    target = margin.args["target"]
    assert target.dtype == np.int64 and (target[:, -1] == -1).all()
    labels = (np.cumsum(target == -1, axis=1) == 0).sum()
    assert MARGIN.speed.elements(margin) == labels * 10
    assert MARGIN.speed.bytes_moved(margin, False) == 640 * 2 + 640 * 8 + 2
    assert SOFT.speed.sizes == MARGIN.speed.sizes == (
        (64, 10), (256, 1000), (1024, 1000), (4096, 1000), (1024, 32768))


def test_the_baseline_has_ratio_one(torch_numpy):
    rows = _rows(torch_numpy)
    for row in rows:
        if row["candidate"] == "torch":
            assert row["ratio_to_baseline"] == 1.0
        else:
            # the median of the round-by-round ratios, inside their spread
            assert row["ratio_q10"] <= row["ratio_to_baseline"] <= row["ratio_q90"]
            assert _positive(row["ratio_to_baseline"])


def test_a_forward_only_candidate_gets_forward_rows_only(torch_numpy):
    forward_only = load_candidate(str(FORWARD_ONLY))
    rows = _rows([forward_only, torch_numpy[0]])
    assert sorted((r["candidate"], r["pass"]) for r in rows) == [
        ("forward_only", "forward"), ("torch", "forward"), ("torch", "forward+backward")]
    by_pass = {(r["candidate"], r["pass"]): r for r in rows}
    assert by_pass[("forward_only", "forward")]["ratio_to_baseline"] == 1.0
    # the baseline has no forward+backward: no ratio there, the baseline is still named
    assert by_pass[("torch", "forward+backward")]["ratio_to_baseline"] is None
    assert by_pass[("torch", "forward+backward")]["baseline"] == "forward_only"


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_every_dtype_times_and_a_refused_one_is_skipped_with_a_warning(torch_numpy, dtype):
    rows = _rows(torch_numpy, dtype=dtype)
    assert len(rows) == 4 and {r["dtype"] for r in rows} == {dtype}
    if dtype in ("float16", "bfloat16"):  # torch's CPU margin loss has no such kernel
        with pytest.warns(SpeedSkipped, match="torch multilabel_margin_loss .* forward not timed"):
            rows = _rows(torch_numpy, MARGIN, dtype)
        assert {(r["candidate"], r["ratio_to_baseline"]) for r in rows} == {("numpy", None)}


def test_a_call_slower_than_max_call_s_is_timed_once(torch_numpy):
    rows = time_size(torch_numpy, SOFT, (4, 3), "float32", np.random.default_rng(0),
                     **{**QUICK, "max_call_s": 0.0})
    assert len(rows) == 4
    for row in rows:
        assert row["repeats"] == 1 and row["q10_s"] == row["median_s"] == row["q90_s"]


def test_a_slow_parallel_region_warns_that_timings_are_unsteady(torch_numpy, monkeypatch):
    monkeypatch.setattr(timing, "parallel_region_s", lambda: 0.008)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the check is for more than one thread
    try:
        with pytest.warns(UnsteadyTiming, match="parallel region takes 8.0 ms"):
            assert len(_rows(torch_numpy)) == 4
    finally:
        torch.set_num_threads(threads)
    assert _positive(parallel_region_s())


def test_place_on_roofs_picks_the_binding_roof():
    memory_bound = place_on_roofs({"bytes": 10**9, "elements": 10**6, "median_s": 0.2,
                                   "gbs": 5.0}, bandwidth_gbs=10.0, elements_per_s=1e9)
    assert memory_bound["roof"] == "memory"
    assert memory_bound["roof_s"] == pytest.approx(0.1)
    assert memory_bound["bandwidth_share"] == pytest.approx(0.5)
    assert memory_bound["compute_share"] == pytest.approx(0.005)
    compute_bound = place_on_roofs({"bytes": 10**6, "elements": 10**9, "median_s": 4.0,
                                    "gbs": 0.00025}, bandwidth_gbs=10.0, elements_per_s=1e9)
    assert compute_bound["roof"] == "compute"
    assert compute_bound["roof_s"] == pytest.approx(1.0)
    assert compute_bound["compute_share"] == pytest.approx(0.25)
    no_roofs = place_on_roofs({"bytes": 1, "elements": 1, "median_s": 1.0, "gbs": 1e-9},
                              None, None)
    assert [no_roofs[k] for k in ("bandwidth_share", "compute_share", "roof", "roof_s")] == [
        None] * 4


def test_input_sets_exceed_the_last_level_cache_within_the_caps():
    assert input_sets(10 * MiB, llc_bytes=32 * MiB) == 4  # 40 MiB > 32 MiB
    assert input_sets(32 * MiB, llc_bytes=32 * MiB) == 2  # strictly more than the cache
    assert input_sets(1024, llc_bytes=32 * MiB) == 16  # at most 16 sets
    assert input_sets(300 * MiB, llc_bytes=2048 * MiB) == 3  # at most 1 GiB in all
    assert input_sets(600 * MiB, llc_bytes=32 * MiB) == 1  # always one
    assert input_sets(0, llc_bytes=32 * MiB) == 16
    assert last_level_cache_bytes() > 0


def test_input_cases_are_distinct_sets():
    one_set = SOFT.speed.bytes_moved(SOFT.speed.case((64, 10), "float32",
                                                     np.random.default_rng(0)), False)
    cases = input_cases(SOFT, (64, 10), "float32", np.random.default_rng(1),
                        llc_bytes=3 * one_set)
    assert len(cases) == 4
    inputs = [c.args["input"] for c in cases]
    assert all(not np.array_equal(a, b) for i, a in enumerate(inputs) for b in inputs[i + 1:])


def test_the_memory_bandwidth_is_measured_once_and_positive():
    assert _positive(memory_bandwidth_gbs())
    assert memory_bandwidth_gbs() is memory_bandwidth_gbs()  # cached (per thread count)


@pytest.mark.parametrize("spec", [SOFT, MARGIN], ids=lambda s: s.name)
def test_the_compute_roof_is_measured_positive(spec):
    assert _positive(compute_rate(spec, "bfloat16"))
