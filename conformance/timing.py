"""The speed harness: time candidates side by side and place them on this machine's roofs.

``time_size`` times every candidate's loss at one size and dtype, forward and forward+backward,
in alternation, on rotating input sets, and returns the rows of summary.json's "speed" list
(see conformance/report/__init__.py), already placed on two roofs measured once per run:
``memory_bandwidth_gbs`` (a large copy) and ``compute_rate`` (the loss's own elementwise work,
``spec.speed.kernel``, on a cache-resident block). ``place_on_roofs`` does the placing.

A candidate that cannot run a pass (a dtype it refuses, an error, out of memory) gets no row
for it; a ``SpeedSkipped`` warning says why. Rows of a device other than the CPU get no roofs:
the roofs measured here are the CPU's.

Threads: candidates and the bandwidth copy run with torch's current intra-op thread count
(``torch.set_num_threads``). Where another process holds a CPU, each torch parallel region
waits for it: on this virtual machine, with a busy host, an op of 640 elements took 8 ms
instead of 4 us, for seconds at a time. ``parallel_region_s`` measures that wait and
``time_size`` warns (``UnsteadyTiming``) when it is over a millisecond; one thread avoids it.
"""

from __future__ import annotations

import functools
import gc
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.benchmark import Timer

from .frameworks.torch_adapter import DTYPES as TORCH_DTYPES

DEFAULT_LLC_BYTES = 32 << 20  # when /sys does not say
ROTATION_CAP_BYTES = 1 << 30  # input sets kept per candidate, at most
MAX_INPUT_SETS = 16
COPY_BYTES = 256 << 20  # memory bandwidth: one copy of this many bytes
COMPUTE_BLOCK = 1 << 15  # compute roof: elements, in L2, one thread's work
PASSES = ("forward", "forward+backward")
DIFFERENTIATED = ("input",)  # a training step's gradient: targets and weights are data


class SpeedSkipped(UserWarning):
    """A candidate's pass was not timed at some size; the message says why."""


class UnsteadyTiming(UserWarning):
    """Torch's parallel regions wait for a busy CPU: multi-threaded figures are unsteady."""


def memory_bandwidth_gbs() -> float:
    """This machine's memory bandwidth in GB/s: a 256 MiB ``copy_``, read + write bytes.

    The median of the blocks ``torch.utils.benchmark`` times over about half a second, with
    torch's current thread count. Measured once per process (and thread count).
    """
    return _bandwidth_gbs(torch.get_num_threads())


@functools.cache
def _bandwidth_gbs(threads: int) -> float:
    source = torch.ones(COPY_BYTES // 4, dtype=torch.float32)
    target = torch.empty_like(source)
    timer = Timer("target.copy_(source)", globals={"target": target, "source": source},
                  num_threads=threads)
    return 2 * COPY_BYTES / timer.blocked_autorange(min_run_time=0.5).median / 1e9


_COMPUTE_RATES: dict = {}


def compute_rate(spec, dtype: str) -> float:
    """Elements per second of ``spec.speed.kernel`` (the loss's elementwise work) in ``dtype``.

    One thread times the kernel on a 32K-element block (in cache, so memory does not bind;
    not above torch's grain size, so one thread does it all), and the rate is multiplied by
    torch's thread count: the peak of perfect scaling. Not timed with every thread: a parallel
    region waiting for a busy CPU once made this roof 500 times too low (see
    ``parallel_region_s``). Cached per (loss, dtype, thread count).
    """
    key = (spec.name, dtype, torch.get_num_threads())
    if key not in _COMPUTE_RATES:
        generator = torch.Generator().manual_seed(0)
        block = torch.randn(COMPUTE_BLOCK, generator=generator).to(TORCH_DTYPES[dtype])
        timer = Timer("kernel(block)", globals={"kernel": spec.speed.kernel, "block": block},
                      num_threads=1)
        seconds = timer.blocked_autorange(min_run_time=0.2).median
        _COMPUTE_RATES[key] = COMPUTE_BLOCK / seconds * key[2]
    return _COMPUTE_RATES[key]


def parallel_region_s() -> float:
    """Seconds one small torch parallel region takes now, with torch's thread count.

    An in-place add on 64K float32 elements (above torch's grain size, so every thread takes
    part), the mean of 20 calls: about 10 us when each thread has a CPU, milliseconds when a
    thread waits for a CPU another process holds.
    """
    block = torch.zeros(1 << 16)
    timer = Timer("block.add_(1)", globals={"block": block}, num_threads=torch.get_num_threads())
    return timer.timeit(20).median


def place_on_roofs(row: dict, bandwidth_gbs: float | None, elements_per_s: float | None) -> dict:
    """Fill ``row``'s roof figures in place from its bytes, elements and median; return it.

    bandwidth_share = gbs / bandwidth_gbs; compute_share = (elements / median) / elements_per_s;
    roof_s = the larger of bytes / bandwidth and elements / elements_per_s, the time the
    binding roof allows; roof = "memory" or "compute", whichever that is (memory on a tie).
    A roof given as None is left out; with neither, all four figures are None.
    """
    times = {}
    row["bandwidth_share"] = row["compute_share"] = None
    if bandwidth_gbs:
        row["bandwidth_share"] = row["gbs"] / bandwidth_gbs
        times["memory"] = row["bytes"] / (bandwidth_gbs * 1e9)
    if elements_per_s:
        row["compute_share"] = row["elements"] / row["median_s"] / elements_per_s
        times["compute"] = row["elements"] / elements_per_s
    row["roof"] = max(times, key=times.get) if times else None
    row["roof_s"] = times[row["roof"]] if times else None
    return row


@functools.cache
def last_level_cache_bytes() -> int:
    """The size of cpu0's last-level data cache from /sys; 32 MiB where it cannot be read."""
    best = (0, DEFAULT_LLC_BYTES)
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip().upper()
            size = int(text.rstrip("KMG")) << {"K": 10, "M": 20, "G": 30}.get(text[-1], 0)
        except (OSError, ValueError):
            continue
        best = max(best, (level, size))
    return best[1]


def input_sets(set_bytes: int, llc_bytes: int | None = None, cap_bytes: int = ROTATION_CAP_BYTES,
               max_sets: int = MAX_INPUT_SETS) -> int:
    """How many input sets of ``set_bytes`` to rotate through: the fewest whose total exceeds
    the last-level cache, so that a repeated call reads memory, not cache; at most
    ``max_sets`` and at most ``cap_bytes`` in all (always at least one)."""
    llc = last_level_cache_bytes() if llc_bytes is None else llc_bytes
    set_bytes = max(int(set_bytes), 1)
    return max(1, min(llc // set_bytes + 1, max_sets, cap_bytes // set_bytes))


def input_cases(spec, size, dtype: str, rng, llc_bytes: int | None = None) -> list:
    """Distinct typical Cases of ``spec`` at ``size`` (``spec.speed.case``), as many as
    ``input_sets`` asks for the bytes one call reads and writes."""
    first = spec.speed.case(size, dtype, rng)
    count = input_sets(spec.speed.bytes_moved(first, False), llc_bytes)
    return [first] + [spec.speed.case(size, dtype, rng) for _ in range(count - 1)]


class _Pass:
    """One candidate's pass on the rotating input sets: ``run(number)`` times a block."""

    def __init__(self, candidate, name, calls, sync):
        self.candidate, self.name, self.calls, self.sync = candidate, name, calls, sync
        self.next, self.number, self.wanted, self.first, self.samples = 0, 1, 0, None, []

    def run(self, number: int, limit_s: float = float("inf")) -> float:
        """Seconds per call over ``number`` calls, each on the next input set; fewer calls
        where the block passes ``limit_s`` (calls turned slower than its sizing expected)."""
        self.sync()
        start = time.perf_counter()
        for done in range(1, number + 1):
            self.calls[self.next]()
            self.next = (self.next + 1) % len(self.calls)
            if time.perf_counter() - start > limit_s:
                break
        self.sync()
        return (time.perf_counter() - start) / done

    def probe(self):
        """The first call, timed into ``first``: errors show here, before any timing. Returns
        what the call returned."""
        self.sync()
        start = time.perf_counter()
        output = self.calls[self.next]()
        self.sync()
        self.first = time.perf_counter() - start
        self.next = (self.next + 1) % len(self.calls)
        return output


def _skip(candidate, spec, size, dtype, what, error):
    reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    warnings.warn(f"{candidate.label} {spec.name} {dtype} {tuple(size)}: {what} not timed "
                  f"({reason})", SpeedSkipped, stacklevel=3)


def _calls(candidate, spec, case):
    """(forward, forward+backward) closures on one Case's natives, built once by the
    candidate's framework adapter (``timed_calls``)."""
    fw, function = candidate.framework, candidate.functions[spec.name]
    natives = {n: fw.to_native(v, case.dtype, "contiguous", requires_grad=n in DIFFERENTIATED)
               for n, v in case.args.items() if v is not None}
    args = [natives[n] for n in spec.positional]
    kwargs = {n: natives[n] for n in spec.keyword_arrays if n in natives}
    kwargs.update(case.options)
    upstream = np.asarray(case.grad_output, dtype=np.float64)
    upstream = fw.to_native(upstream, case.dtype).reshape(upstream.shape)
    leaves = {n: natives[n] for n in DIFFERENTIATED if n in natives}
    return fw.timed_calls(function, args, kwargs, leaves, upstream,
                          vjp=getattr(candidate.module, f"{spec.name}_vjp", None))


def _differentiable(candidate, spec, output) -> bool:
    """Whether the candidate gives gradients (its framework adapter says how to tell)."""
    return candidate.framework.differentiates(
        output, vjp=getattr(candidate.module, f"{spec.name}_vjp", None))


@functools.cache
def _settle_allocator():
    """Put glibc malloc in the state a long-running process reaches, once per process.

    glibc's mmap threshold starts at 128 KiB and rises to the size of the largest mmapped block
    freed so far (up to 32 MiB); below it, freed arrays are recycled, above it every call maps
    and page-faults fresh memory. So the same (256, 1000) numpy call took 7.1 ms before any
    large array had been freed and 3.4 ms after: a row would depend on the sizes timed before
    it. Freeing one 30 MiB block first raises the threshold to where training loops live.
    """
    np.empty(30 << 20, dtype=np.uint8)  # mmapped by malloc, freed at once
    torch.empty(30 << 20, dtype=torch.uint8)


@functools.cache
def _warm_autograd():
    """One tiny backward, so that the autograd engine's lazy set-up is not in a probe."""
    leaf = torch.ones(2, requires_grad=True)
    torch.autograd.grad(leaf.sum(), [leaf])


def _measure(passes, budget_s, min_repeats, max_repeats, max_call_s, block_s=0.01):
    """Warm each pass up, size its blocks, then time blocks round-robin until each pass has its
    samples.

    Warm-up: a candidate's first call at a size is cold (1.4 s against 0.8 s for torch's soft
    margin loss at (1024, 32768) here), so the forward pass's probe is discarded and its
    second call, warm, sizes the blocks. The forward+backward probe came after the forward
    probe: where that forward is slow (0.1 s or more) it is warm and kept; where it is fast,
    a slow probe was paying lazy set-up, so it is discarded too. A warm call of 0.1 s or more
    is a block of one call and counts as the first sample; a call of ``max_call_s`` or more is
    timed that once. A block that runs past ten times its planned length stops early.

    Our own loop, not ``Timer.blocked_autorange``: that times one statement to completion, so it
    cannot alternate candidates (and ratios must come from the same period of machine noise),
    and ``Timer.timeit`` runs two warm-up calls before every block, which triples the cost of a
    block of one slow call.
    """
    forward_s = {}
    for p in passes:  # a candidate's forward comes before its forward+backward
        if p.name == "forward":
            t = forward_s[id(p.candidate)] = p.run(1)
        else:
            t = p.first if forward_s[id(p.candidate)] >= 0.1 else p.run(1)
        if t < 0.1:
            t = p.run(1)  # cheap: one more call, fully warm, sizes the blocks
            p.number = max(1, int(block_s / t))
        else:
            p.samples = [t]
        p.wanted = 1 if t >= max_call_s else min(
            max(int(budget_s / (p.number * t)), min_repeats), max_repeats)
    enabled = gc.isenabled()
    gc.disable()
    try:
        while any(len(p.samples) < p.wanted for p in passes):
            for p in passes:
                if len(p.samples) < p.wanted:
                    p.samples.append(p.run(p.number, limit_s=10 * block_s))
    finally:
        if enabled:
            gc.enable()


def time_size(candidates, spec, size, dtype: str, rng, *, bandwidth_gbs: float | None = None,
              elements_per_s: float | None = None, budget_s: float = 0.5, min_repeats: int = 3,
              max_repeats: int = 25, max_call_s: float = 1.0) -> list:
    """Time every candidate's ``spec`` loss at ``size`` in ``dtype``; the summary's speed rows.

    Inputs: ``input_cases`` (typical values from ``spec.speed.case``, drawn with ``rng``),
    converted once per candidate by its framework adapter, contiguous, ``input`` requiring
    gradients; the function is called on them directly. Passes: "forward" (the call) and
    "forward+backward" (the call, then torch autograd w.r.t. ``input`` for torch candidates,
    the module's ``<loss>_vjp`` for numpy ones), the latter only where the candidate gives
    gradients. Every call takes the next input set in turn. All passes of all candidates are
    timed round-robin, in blocks of calls lasting about 10 ms, until each has ``budget_s`` of
    samples (``min_repeats`` to ``max_repeats`` blocks; a call over ``max_call_s`` once), after
    the warm-up ``_measure`` describes and, once per process, a settling of the allocator
    (``_settle_allocator``). Figures per row: median, q10 and q90 of the per-call time of the blocks, ``repeats``
    blocks; ``ratio_to_baseline`` its median over the first candidate's for the same pass (1.0
    for the first candidate, None where it has no such pass).

    Roofs: CPU rows are placed with ``place_on_roofs`` on ``bandwidth_gbs`` and
    ``elements_per_s``, measured (``memory_bandwidth_gbs``, ``compute_rate``) when None, so the
    rows are complete. Candidates without the loss get no rows; a pass that raises is skipped
    with a ``SpeedSkipped`` warning.
    """
    roofs = (None, None)
    if any(c.device == "cpu" and spec.name in c.functions for c in candidates):
        roofs = (memory_bandwidth_gbs() if bandwidth_gbs is None else bandwidth_gbs,
                 compute_rate(spec, dtype) if elements_per_s is None else elements_per_s)
    _settle_allocator()
    _warm_autograd()
    if torch.get_num_threads() > 1 and any(c.framework.torch_threads for c in candidates):
        wait = parallel_region_s()
        if wait > 1e-3:
            warnings.warn(f"{spec.name} {dtype} {tuple(size)}: a torch parallel region takes "
                          f"{wait * 1e3:.1f} ms now (about 10 us when each of torch's "
                          f"{torch.get_num_threads()} threads has a CPU): another process holds "
                          "a CPU, multi-threaded timings are unsteady; torch.set_num_threads(1) "
                          "avoids the wait", UnsteadyTiming, stacklevel=2)
    cases = input_cases(spec, size, dtype, rng)
    moved = {name: spec.speed.bytes_moved(cases[0], name == "forward+backward") for name in PASSES}
    elements = round(statistics.fmean(spec.speed.elements(c) for c in cases))
    ready = []
    for candidate in candidates:
        if spec.name not in candidate.functions:
            continue
        sync = candidate.framework.synchronize
        try:
            built = [_calls(candidate, spec, case) for case in cases]
        except Exception as error:  # noqa: BLE001 - e.g. out of memory for the input sets
            _skip(candidate, spec, size, dtype, "any pass", error)
            continue
        passes = [_Pass(candidate, "forward", [f for f, _ in built], sync),
                  _Pass(candidate, "forward+backward", [fb for _, fb in built], sync)]
        for p in passes:
            try:
                output = p.probe()
            except Exception as error:  # noqa: BLE001 - whatever a candidate raises is a skip
                _skip(candidate, spec, size, dtype, p.name, error)
                break
            ready.append(p)
            if not _differentiable(candidate, spec, output):
                break  # forward-only: no forward+backward pass
            output = None
    del cases  # the float64 Cases; the natives live on in the passes
    _measure(ready, budget_s, min_repeats, max_repeats, max_call_s)

    baseline = candidates[0].label if candidates else None
    medians = {(p.candidate.label, p.name): statistics.median(p.samples) for p in ready}
    rows = []
    for p in ready:
        median = medians[(p.candidate.label, p.name)]
        q10, q90 = np.quantile(p.samples, [0.1, 0.9])
        base = medians.get((baseline, p.name))
        row = {"candidate": p.candidate.label, "loss": spec.name, "dtype": dtype,
               "device": p.candidate.device, "size": list(size), "pass": p.name,
               "median_s": median, "q10_s": float(q10), "q90_s": float(q90),
               "repeats": len(p.samples), "bytes": moved[p.name], "elements": elements,
               "gbs": moved[p.name] / median / 1e9, "bandwidth_share": None,
               "compute_share": None, "roof": None, "roof_s": None,
               "ratio_to_baseline": None if base is None else median / base,
               "baseline": baseline}
        rows.append(place_on_roofs(row, *(roofs if p.candidate.device == "cpu" else (None, None))))
    return rows

