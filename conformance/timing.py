"""The speed harness: time candidates side by side and place them on this machine's roofs.

``time_size`` times every candidate's loss at one size (and option variant) and dtype, forward
and forward+backward, in interleaved rounds, on rotating input sets, measures each pass's peak
memory, and returns the rows of summary.json's "speed" list (see conformance/report/__init__.py),
placed on up to three roofs measured once per run: ``memory_bandwidth_gbs`` (a large copy),
``compute_rate`` (the loss's own elementwise work, ``spec.speed.kernel``, on a cache-resident
block) and, for a loss with matrix products (``spec.speed.flops``), ``matmul_rate`` (a matrix
product in the dtype). ``place_on_roofs`` does the placing.

Repeatable ratios: every round times one block of calls of each pass of each candidate in turn,
so the ratio of a candidate to the baseline candidate is taken round by round, from blocks
timed within milliseconds of each other, and the row's ratio is the median of those ratios;
noise that lasts longer than a round (another process taking a CPU for seconds) slows both
sides of a ratio alike. Each pass is first warmed until two successive calls agree.

A candidate that cannot run a pass (a dtype it refuses, an error, out of memory) gets no row
for it; a ``SpeedSkipped`` warning says why. Rows of a device other than the CPU get no roofs:
the roofs measured here are the CPU's.

Threads: candidates and the roofs run with torch's current intra-op thread count
(``torch.set_num_threads``; the speed test sets ``--speed-threads``, default 1). Where another
process holds a CPU, each torch parallel region waits for it: on this virtual machine, with a
busy host, an op of 640 elements took 8 ms instead of 4 us, for seconds at a time.
``parallel_region_s`` measures that wait and ``time_size`` warns (``UnsteadyTiming``) when it
is over a millisecond; one thread avoids it. Other frameworks' pools are held to the same count
where their adapter can (``thread_limit``: numpy's OpenBLAS, whose default of every core made a
numpy matrix product's time vary sevenfold between two runs here).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.benchmark import Timer

from . import memory
from .frameworks.torch_adapter import DTYPES as TORCH_DTYPES

DEFAULT_LLC_BYTES = 32 << 20  # when /sys does not say
ROTATION_CAP_BYTES = 1 << 30  # input sets kept per candidate, at most
MAX_INPUT_SETS = 16
COPY_BYTES = 256 << 20  # memory bandwidth: one copy of this many bytes
COMPUTE_BLOCK = 1 << 15  # compute roof: elements, in L2, one thread's work
MATMUL_SIDE = 512  # matrix-product roof: a square product of this side
PASSES = ("forward", "forward+backward")
TYPICAL = "typical"  # the variant name of a ladder's typical call
# A block of calls lasts about this long: short blocks pair each candidate's time with the
# baseline's taken milliseconds before, under the same load (5 ms blocks halved the run-to-run
# spread of ratios against 20 ms blocks here, 8.8 % against 16 % at the median).
BLOCK_S = 0.005
BUDGET_S = 0.3  # rounds of one size (all candidates and passes), seconds: the run's budget
MIN_ROUNDS, MAX_ROUNDS = 3, 60
WARM_AGREEMENT = 0.1  # warm: two successive calls within this share of each other
MAX_WARM_CALLS = 6
MAX_WARM_S = 0.3  # ... or until the warm-up has taken this long (slow calls: one or two more)
SLOW_PROBE_S = 0.1  # a first call this slow is warm: lazy set-up takes milliseconds


class SpeedSkipped(UserWarning):
    """A candidate's pass was not timed at some size; the message says why."""


class UnsteadyTiming(UserWarning):
    """Torch's parallel regions wait for a busy CPU: multi-threaded figures are unsteady."""


def memory_bandwidth_gbs() -> float:
    """This machine's memory bandwidth in GB/s: a 256 MiB ``copy_``, read + write bytes.

    The fastest of the blocks ``torch.utils.benchmark`` times over about half a second (a roof
    is the best the machine does; noise only slows it), with torch's current thread count.
    Measured once per process (and thread count).
    """
    return _bandwidth_gbs(torch.get_num_threads())


@functools.cache
def _bandwidth_gbs(threads: int) -> float:
    source = torch.ones(COPY_BYTES // 4, dtype=torch.float32)
    target = torch.empty_like(source)
    timer = Timer("target.copy_(source)", globals={"target": target, "source": source},
                  num_threads=threads)
    return 2 * COPY_BYTES / min(timer.blocked_autorange(min_run_time=0.5).times) / 1e9


_COMPUTE_RATES: dict = {}


def _torch_dtype(dtype: str):
    """The torch dtype a roof is measured in ('exact', a target builder's, in float32)."""
    return TORCH_DTYPES.get(dtype, torch.float32)


def compute_rate(spec, dtype: str) -> float:
    """Elements per second of ``spec.speed.kernel`` (the loss's elementwise work) in ``dtype``.

    One thread times the kernel on a 32K-element block (in cache, so memory does not bind;
    not above torch's grain size, so one thread does it all; the fastest of the blocks
    ``torch.utils.benchmark`` times over 0.1 s, since a roof is the best the machine does, and
    noise only slows it), and the rate is multiplied by
    torch's thread count: the peak of perfect scaling. Not timed with every thread: a parallel
    region waiting for a busy CPU once made this roof 500 times too low (see
    ``parallel_region_s``). Cached per (loss, dtype, thread count).
    """
    key = (spec.name, dtype, torch.get_num_threads())
    if key not in _COMPUTE_RATES:
        generator = torch.Generator().manual_seed(0)
        block = torch.randn(COMPUTE_BLOCK, generator=generator).to(_torch_dtype(dtype))
        timer = Timer("kernel(block)", globals={"kernel": spec.speed.kernel, "block": block},
                      num_threads=1)
        seconds = min(timer.blocked_autorange(min_run_time=0.1).times)  # the best: a roof
        _COMPUTE_RATES[key] = COMPUTE_BLOCK / seconds * key[2]
    return _COMPUTE_RATES[key]


def matmul_rate(dtype: str) -> float:
    """Floating-point operations per second of a matrix product in ``dtype`` on this machine.

    One thread times ``torch.mm`` of two 512 x 512 matrices (2 * 512^3 operations; 3 MiB in
    float32, so the product runs from cache as a blocked GEMM does) and the rate is multiplied
    by torch's thread count, as for ``compute_rate``. Cached per (dtype, thread count).
    """
    return _matmul_rate(dtype, torch.get_num_threads())


@functools.cache
def _matmul_rate(dtype: str, threads: int) -> float:
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(MATMUL_SIDE, MATMUL_SIDE, generator=generator).to(_torch_dtype(dtype))
            for _ in range(2))
    timer = Timer("torch.mm(a, b)", globals={"torch": torch, "a": a, "b": b}, num_threads=1)
    seconds = min(timer.blocked_autorange(min_run_time=0.1).times)  # the best: a roof
    return 2 * MATMUL_SIDE ** 3 / seconds * threads


def parallel_region_s() -> float:
    """Seconds one small torch parallel region takes now, with torch's thread count.

    An in-place add on 64K float32 elements (above torch's grain size, so every thread takes
    part), the mean of 20 calls: about 10 us when each thread has a CPU, milliseconds when a
    thread waits for a CPU another process holds.
    """
    block = torch.zeros(1 << 16)
    timer = Timer("block.add_(1)", globals={"block": block}, num_threads=torch.get_num_threads())
    return timer.timeit(20).median


def place_on_roofs(row: dict, bandwidth_gbs: float | None, elements_per_s: float | None,
                   flops_per_s: float | None = None) -> dict:
    """Fill ``row``'s roof figures in place from its bytes, elements, flops and median.

    bandwidth_share = gbs / bandwidth_gbs; compute_share = (elements / median) / elements_per_s;
    matmul_share = (flops / median) / flops_per_s (rows with matrix products only); roof_s =
    the largest of bytes / bandwidth, elements / elements_per_s and flops / flops_per_s, the
    time the binding roof allows; roof = "memory", "compute" or "matmul", whichever that is
    (memory on a tie). A roof given as None (or a row without flops) is left out; with none,
    all the figures are None. Returns ``row``.
    """
    times = {}
    row["bandwidth_share"] = row["compute_share"] = row["matmul_share"] = None
    if bandwidth_gbs:
        row["bandwidth_share"] = row["gbs"] / bandwidth_gbs
        times["memory"] = row["bytes"] / (bandwidth_gbs * 1e9)
    if elements_per_s:
        row["compute_share"] = row["elements"] / row["median_s"] / elements_per_s
        times["compute"] = row["elements"] / elements_per_s
    if flops_per_s and row.get("flops"):
        row["matmul_share"] = row["flops"] / row["median_s"] / flops_per_s
        times["matmul"] = row["flops"] / flops_per_s
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


def variant_case(spec, size, dtype: str, rng, variant: str = TYPICAL):
    """One typical Case of ``spec`` at ``size``, with the ladder's ``variant`` applied."""
    case = spec.speed.case(size, dtype, rng)
    if variant == TYPICAL:
        return case
    return dict(spec.speed.variants)[variant](case, rng)


def _rolled(case, shift: int):
    """``case`` with each array argument rolled by ``shift`` along its first axis: other
    memory, the same values (drawing new ones took a second per set for the largest sizes)."""
    args = {n: np.roll(v, shift, axis=0) if isinstance(v, np.ndarray) and v.ndim else v
            for n, v in case.args.items()}
    return type(case)(case.dtype, args, case.options, case.layouts, case.tags, case.grad_output)


def input_cases(spec, size, dtype: str, rng, llc_bytes: int | None = None,
                variant: str = TYPICAL) -> list:
    """Typical Cases of ``spec`` at ``size`` (``variant_case``) in distinct memory, as many as
    ``input_sets`` asks for the bytes one call reads and writes: the first drawn, the others
    its arrays rolled by 1, 2, ... along their first axis (valid wherever the first is)."""
    first = variant_case(spec, size, dtype, rng, variant)
    count = input_sets(spec.speed.bytes_moved(first, False), llc_bytes)
    return [first] + [_rolled(first, k) for k in range(1, count)]


class _Pass:
    """One candidate's pass on the rotating input sets: ``run(number)`` times a block."""

    def __init__(self, candidate, name, calls, sync):
        self.candidate, self.name, self.calls, self.sync = candidate, name, calls, sync
        self.next, self.number, self.first, self.samples = 0, 1, None, []
        self.warm = []  # the warm-up calls' seconds
        self.planned, self.peak = 0.0, (None, None)  # a block's seconds; (bytes, method)
        self.cpu_samples, self.last_cpu = [], None  # the process's CPU seconds per call

    def run(self, number: int, limit_s: float = float("inf")) -> float:
        """Seconds per call over ``number`` calls, each on the next input set; fewer calls
        where the block passes ``limit_s`` (calls turned slower than its sizing expected)."""
        self.sync()
        cpu, start = time.process_time(), time.perf_counter()
        for done in range(1, number + 1):
            self.calls[self.next]()
            self.next = (self.next + 1) % len(self.calls)
            if time.perf_counter() - start > limit_s:
                break
        self.sync()
        wall = (time.perf_counter() - start) / done
        self.last_cpu = (time.process_time() - cpu) / done
        return wall

    def probe(self):
        """The first call, timed into ``first``: errors show here, before any timing. Returns
        what the call returned. A probe of ``SLOW_PROBE_S`` or more is warm enough (lazy
        set-up takes milliseconds) to count as the first warm-up call."""
        self.sync()
        start = time.perf_counter()
        output = self.calls[self.next]()
        self.sync()
        self.first = time.perf_counter() - start
        self.next = (self.next + 1) % len(self.calls)
        if self.first >= SLOW_PROBE_S:
            self.warm.append(self.first)
        return output

    def call_once(self):
        """One call on the next input set, its result dropped (for the memory measurement)."""
        self.calls[self.next]()
        self.sync()
        self.next = (self.next + 1) % len(self.calls)


def _skip(candidate, spec, size, dtype, what, error):
    reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    warnings.warn(f"{candidate.label} {spec.name} {dtype} {tuple(size)}: {what} not timed "
                  f"({reason})", SpeedSkipped, stacklevel=3)


def _native_option(value, framework):
    """An option as the framework's candidate takes it (``for_framework``, as the checks do)."""
    build = getattr(value, "for_framework", None)
    return build(framework) if callable(build) else value


def _calls(candidate, spec, case):
    """(forward, forward+backward) closures on one Case's natives, built once by the
    candidate's framework adapter (``timed_calls``)."""
    fw, function = candidate.framework, candidate.functions[spec.name]
    differentiated = spec.speed.differentiated
    natives = {n: fw.to_native(v, case.dtype, "contiguous", requires_grad=n in differentiated)
               for n, v in case.args.items() if v is not None}
    args = [natives[n] for n in spec.positional]
    kwargs = {n: natives[n] for n in spec.keyword_arrays if n in natives}
    kwargs.update({n: _native_option(v, fw) for n, v in case.options.items()})
    upstream = None  # a forward-only function (dtype 'exact') has no gradient to take
    if differentiated:
        upstream = np.asarray(case.grad_output, dtype=np.float64)
        upstream = fw.to_native(upstream, case.dtype).reshape(upstream.shape)
    leaves = {n: natives[n] for n in differentiated if n in natives}
    return fw.timed_calls(function, args, kwargs, leaves, upstream,
                          vjp=getattr(candidate.module, f"{spec.name}_vjp", None))


def _differentiable(candidate, spec, output) -> bool:
    """Whether the candidate gives gradients (its framework adapter says how to tell)."""
    if not spec.speed.differentiated:
        return False
    return candidate.framework.differentiates(
        output, vjp=getattr(candidate.module, f"{spec.name}_vjp", None))


@functools.cache
def _settle_allocator():
    """Put malloc in the state a long-running process reaches, once per process.

    glibc's mmap threshold starts at 128 KiB and rises to the size of the largest mmapped block
    freed so far (up to 32 MiB); below it, freed arrays are recycled, above it every call maps
    and page-faults fresh memory. So the same (256, 1000) numpy call took 7.1 ms before any
    large array had been freed and 3.4 ms after: a row would depend on the sizes timed before
    it. The thresholds are fixed at 32 MiB (``memory.settle``; the memory measurement lowers
    them for its call and puts them back); without mallopt, freeing one 30 MiB block raises the
    dynamic threshold to about the same.
    """
    if not memory.settle():
        np.empty(30 << 20, dtype=np.uint8)  # mmapped by malloc, freed at once
        torch.empty(30 << 20, dtype=torch.uint8)


@functools.cache
def _warm_autograd():
    """One tiny backward, so that the autograd engine's lazy set-up is not in a probe."""
    leaf = torch.ones(2, requires_grad=True)
    torch.autograd.grad(leaf.sum(), [leaf])


def _warm_up(p, max_call_s: float) -> float:
    """Call the pass until two successive calls agree within ``WARM_AGREEMENT`` (at most
    ``MAX_WARM_CALLS`` calls or ``MAX_WARM_S`` seconds, and one call of ``max_call_s`` or
    more); the fastest of them."""
    spent = 0.0
    while True:
        p.warm.append(p.run(1))
        spent += p.warm[-1]
        last = p.warm[-2:]
        if (len(last) == 2 and max(last) <= min(last) * (1 + WARM_AGREEMENT)) \
                or len(p.warm) >= MAX_WARM_CALLS or spent >= MAX_WARM_S \
                or last[-1] >= max_call_s:
            return min(p.warm)


def _measure(passes, budget_s, min_rounds, max_rounds, max_call_s, block_s=BLOCK_S):
    """Warm each pass up, size its blocks, then time rounds: one block of every pass each.

    Warm-up: a candidate's first call at a size is cold (1.4 s against 0.8 s for torch's soft
    margin loss at (1024, 32768) here), so the probe is discarded; then calls until two in a row
    agree (``_warm_up``). A block is as many calls as last about ``block_s`` (one, for a call
    of that or longer). Rounds: as many as fit ``budget_s`` for all passes together, at least
    ``min_rounds``, at most ``max_rounds``; a pass whose calls take ``max_call_s`` or more
    sits them out (its fastest warm-up call is its one sample). A block that runs past ten
    times its planned length stops early.

    Our own loop, not ``Timer.blocked_autorange``: that times one statement to completion, so it
    cannot alternate candidates (and ratios must come from the same period of machine noise),
    and ``Timer.timeit`` runs two warm-up calls before every block, which triples the cost of a
    block of one slow call.
    """
    for p in passes:
        seconds = _warm_up(p, max_call_s)
        p.number = max(1, int(block_s / seconds))
        p.planned = p.number * seconds
    timed = [p for p in passes if min(p.warm) < max_call_s]  # the others: their warm-up call
    if not timed:
        return
    round_s = sum(p.planned for p in timed)
    rounds = min(max(int(budget_s / round_s), min_rounds), max_rounds)
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for p in timed:
                p.samples.append(p.run(p.number, limit_s=10 * max(p.planned, block_s)))
                p.cpu_samples.append(p.last_cpu)
    finally:
        if enabled:
            gc.enable()


def _peak_memory(call, framework):
    """(bytes, method) of ``call()``: the framework's own allocator peak where its adapter
    measures one (CUDA), else the resident-set method of ``conformance.memory``; the call's
    result is dropped inside."""
    measure = getattr(framework, "peak_memory", None)
    measured = measure(call) if callable(measure) else None
    if measured is not None:
        return measured
    return memory.peak_growth(call), (memory.METHOD if memory.available() else None)


def _paired_ratios(p, base) -> list:
    """The pass's time over the baseline's, round by round."""
    return [mine / theirs for mine, theirs in zip(p.samples, base.samples) if theirs > 0]


def _jsonable(value):
    return value if isinstance(value, (bool, int, float, str, type(None))) else repr(value)


def _time_passes(candidates, spec, size, dtype, cases, budget_s, min_rounds, max_rounds,
                 max_call_s, measure_memory, block_s):
    """Build, probe, warm, time and measure the memory of every candidate's passes on
    ``cases`` (emptied once converted): (the passes timed, their (peak bytes, method) by
    id)."""
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
                if measure_memory:  # the probe's memory, kept where the probe was slow
                    outputs = []
                    p.peak = _peak_memory(lambda p=p, outputs=outputs: outputs.append(p.probe()),
                                          candidate.framework)
                    output = outputs[0]
                else:
                    output = p.probe()
            except Exception as error:  # noqa: BLE001 - whatever a candidate raises is a skip
                _skip(candidate, spec, size, dtype, p.name, error)
                break
            ready.append(p)
            if not _differentiable(candidate, spec, output):
                break  # forward-only: no forward+backward pass
            output = None
    cases.clear()  # the Cases (the caller's list too); the natives live on in the passes
    _measure(ready, budget_s, min_rounds, max_rounds, max_call_s, block_s)
    peaks = {}
    for p in ready:  # a fast probe may have paid lazy set-up: the lesser of two warm calls
        if not measure_memory:
            peaks[id(p)] = (None, None)
        elif min(p.warm) >= SLOW_PROBE_S:  # slow when warm too: set-up is lost in it
            peaks[id(p)] = p.peak
        else:
            measured = [_peak_memory(p.call_once, p.candidate.framework) for _ in range(2)]
            peaks[id(p)] = min(measured, key=lambda m: (m[0] is None, m[0] or 0))
    return ready, peaks


def time_size(candidates, spec, size, dtype: str, rng, *, variant: str = TYPICAL,
              rung: str | None = None, bandwidth_gbs: float | None = None,
              elements_per_s: float | None = None, flops_per_s: float | None = None,
              budget_s: float = BUDGET_S, min_rounds: int = MIN_ROUNDS,
              max_rounds: int = MAX_ROUNDS,
              max_call_s: float = 1.0, measure_memory: bool = True, block_s: float = BLOCK_S,
              keep_samples: bool = False) -> list:
    """Time every candidate's ``spec`` loss at ``size`` in ``dtype``; the summary's speed rows.

    Inputs: ``input_cases`` (typical values from ``spec.speed.case``, the ladder's ``variant``
    applied, drawn with ``rng``), converted once per candidate by its framework adapter,
    contiguous, the ladder's ``differentiated`` arrays requiring gradients; the function is
    called on them directly. Passes: "forward" (the call) and "forward+backward" (the call,
    then torch autograd for torch candidates, ``jax.vjp`` for jax ones, the module's
    ``<loss>_vjp`` for numpy ones), the latter only where the candidate gives gradients.
    Every call takes the next input set in turn. After a probe call and a warm-up, all passes
    of all candidates are timed in interleaved rounds (``_measure``). Figures per row: median,
    minimum, q10 and q90 of the per-call time of the blocks, ``repeats`` blocks;
    ``ratio_to_baseline`` the median over the rounds of its time over the first candidate's for
    the same pass in the same round (1.0 for the first candidate, None where it has no such
    pass), with that ratio's q10 and q90; ``peak_bytes``, the peak memory of one more call
    and ``memory_method`` how it was measured (``_peak_memory``; with ``measure_memory``).

    Roofs: CPU rows are placed with ``place_on_roofs`` on ``bandwidth_gbs``, ``elements_per_s``
    and, where the ladder counts flops, ``flops_per_s``, each measured (``memory_bandwidth_gbs``,
    ``compute_rate``, ``matmul_rate``) when None, so the rows are complete. Candidates without
    the loss get no rows; a pass that raises is skipped with a ``SpeedSkipped`` warning.
    """
    roofs = (None, None, None)
    if any(c.device == "cpu" and spec.name in c.functions for c in candidates):
        roofs = (memory_bandwidth_gbs() if bandwidth_gbs is None else bandwidth_gbs,
                 compute_rate(spec, dtype) if elements_per_s is None else elements_per_s,
                 None if spec.speed.flops is None else
                 matmul_rate(dtype) if flops_per_s is None else flops_per_s)
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
    cases = input_cases(spec, size, dtype, rng, variant=variant)
    moved = {name: spec.speed.bytes_moved(cases[0], name == "forward+backward") for name in PASSES}
    flops = {name: None if spec.speed.flops is None else
             int(spec.speed.flops(cases[0], name == "forward+backward")) for name in PASSES}
    elements = round(statistics.fmean(spec.speed.elements(c) for c in cases))
    options = {k: _jsonable(v) for k, v in cases[0].options.items()}
    arrays = sorted(n for n, v in cases[0].args.items()
                    if isinstance(v, np.ndarray) and n not in spec.positional)
    with contextlib.ExitStack() as stack:  # other frameworks' threads as many as torch's
        for framework in {type(c.framework): c.framework for c in candidates}.values():
            if callable(getattr(framework, "thread_limit", None)):
                stack.enter_context(framework.thread_limit(torch.get_num_threads()))
        ready, peaks = _time_passes(candidates, spec, size, dtype, cases, budget_s, min_rounds,
                                    max_rounds, max_call_s, measure_memory, block_s)
    baseline = candidates[0].label if candidates else None
    by_key = {(p.candidate.label, p.name): p for p in ready}
    rows = []
    for p in ready:
        samples = p.samples or [min(p.warm)]
        median = statistics.median(samples)
        q10, q90 = np.quantile(samples, [0.1, 0.9])
        base = by_key.get((baseline, p.name))
        ratios = _paired_ratios(p, base) if base is not None else []
        ratio = ratio_q10 = ratio_q90 = None
        if base is p:
            ratio = ratio_q10 = ratio_q90 = 1.0
        elif ratios:
            ratio = statistics.median(ratios)
            ratio_q10, ratio_q90 = (float(v) for v in np.quantile(ratios, [0.1, 0.9]))
        elif base is not None:
            ratio = median / statistics.median(base.samples or [min(base.warm)])
        peak, method = peaks[id(p)]
        row = {"candidate": p.candidate.label, "loss": spec.name, "dtype": dtype,
               "device": p.candidate.device, "size": list(size), "rung": rung,
               "variant": variant, "options": options, "arrays": arrays, "pass": p.name,
               "median_s": median, "min_s": float(min(samples)), "q10_s": float(q10),
               "q90_s": float(q90), "repeats": len(samples), "bytes": moved[p.name],
               "elements": elements, "flops": flops[p.name],
               "gbs": moved[p.name] / median / 1e9, "bandwidth_share": None,
               "compute_share": None, "matmul_share": None, "roof": None, "roof_s": None,
               "ratio_to_baseline": ratio, "ratio_q10": ratio_q10, "ratio_q90": ratio_q90,
               "baseline": baseline, "peak_bytes": peak, "memory_method": method}
        if keep_samples:
            row["samples"], row["cpu_samples"] = list(p.samples), list(p.cpu_samples)
        rows.append(place_on_roofs(row, *(roofs if p.candidate.device == "cpu"
                                          else (None, None, None))))
    return rows
