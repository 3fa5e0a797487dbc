"""The speed test: every candidate timed side by side on each loss's ladder (with --speed).

Collected only when ``--speed`` is given (see ``pytest_ignore_collect`` in the plugin); one test
per timed loss, dtype, size (a rung of the ladder, ``--speed-sizes``) and, at the variant rung,
option variant, parametrized by the plugin. Figures go to the results, not into assertions: the
test fails only when timing itself breaks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from . import memory, timing
from .recording import check_kind
from .prefetch import allow as allow_prefetching
from .session import reporting

DEFAULT_THREADS = 1  # --speed-threads' default: one thread repeats on a shared machine


@check_kind("speed")
def test_speed(conformance, spec, speed_dtype, size, rung, variant, request):
    """Time every candidate on one size of the loss's ladder, side by side (with --speed)."""
    candidates = [c for c in conformance.candidates
                  if spec.name in c.functions and not c.unavailable]
    if not candidates:
        pytest.skip("; ".join(c.unavailable for c in conformance.candidates if c.unavailable))
    allow_prefetching(False)  # nothing else may run beside the timings
    threads = request.config.getoption("--speed-threads") or DEFAULT_THREADS
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        bandwidth = timing.memory_bandwidth_gbs()
        rate = timing.compute_rate(spec, speed_dtype)
        flops = timing.matmul_rate(speed_dtype) if spec.speed.flops is not None else None
        rows = timing.time_size(candidates, spec, size, speed_dtype,
                                np.random.default_rng(conformance.seed), variant=variant,
                                rung=rung, bandwidth_gbs=bandwidth, elements_per_s=rate,
                                flops_per_s=flops, budget_s=request.config.getoption(
                                    "--speed-budget") or timing.BUDGET_S)
    finally:
        torch.set_num_threads(previous)
    state = reporting(request.config)
    machine = {"kind": "machine", "memory_bandwidth_gbs": bandwidth, "threads": threads,
               "compute": {f"{spec.name}/{speed_dtype}": {"elements_per_s": rate,
                                                          "work": spec.speed.work,
                                                          "inputs": spec.speed.inputs}},
               "memory_method": memory.METHOD_TEXT if memory.available() else None}
    if flops is not None:
        machine["matmul"] = {speed_dtype: {"flops_per_s": flops,
                                           "work": f"torch.mm of two {timing.MATMUL_SIDE}^2 "
                                                   "matrices, one thread x threads"}}
    state.record(machine)
    for row in rows:
        state.record({"kind": "speed", "threads": threads, **row})
