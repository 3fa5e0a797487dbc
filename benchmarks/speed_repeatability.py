"""Repeatability of the speed harness: the whole speed ladder twice in one process.

Run: python benchmarks/speed_repeatability.py [--impl torch --impl numpy] [--dtype float32]
                                              [--pause 3] [--threads N]

Prints this machine's roofs (memory bandwidth, compute rate per loss), then times every timed
loss at every ladder size for the candidates twice, a few seconds apart, with the same inputs,
and prints both medians per loss/size/candidate/pass with their relative difference, and the
largest and median difference. The goal is two runs within 5 %. Last, it times torch's
multilabel_soft_margin_loss at (4096, 1000) beside the same math as one expression: one
softplus, (softplus(x) - x * y).mean(); two, (softplus(-x) * y + softplus(x) * (1 - y)).mean();
and binary_cross_entropy_with_logits(x, y). Figures, not assertions: this machine is shared and
noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time
import types
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from tabulate import tabulate

from conformance.candidates import Candidate, load_candidates
from conformance.frameworks import framework_named
from conformance.specs import SPECS
from conformance.timing import (SpeedSkipped, UnsteadyTiming, compute_rate,
                                last_level_cache_bytes, memory_bandwidth_gbs, parallel_region_s,
                                time_size)

SHORT = {"multilabel_soft_margin_loss": "soft_margin", "multilabel_margin_loss": "margin"}


def run_ladder(candidates, dtype, seed):
    """Every timed loss at every ladder size: (rows, warnings, seconds)."""
    rng = np.random.default_rng(seed)
    rows, start = [], time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SpeedSkipped)
        warnings.simplefilter("always", UnsteadyTiming)
        for spec in SPECS.values():
            if spec.speed is not None:
                for size in spec.speed.sizes:
                    rows += time_size(candidates, spec, size, dtype, rng)
    messages = [f"{w.category.__name__}: {w.message}" for w in caught
                if issubclass(w.category, (SpeedSkipped, UnsteadyTiming))]
    return rows, messages, time.perf_counter() - start


def _key(row):
    return (row["loss"], tuple(row["size"]), row["candidate"], row["pass"])


def _ms(seconds):
    return f"{seconds * 1e3:.4g}"


def _share(value):
    return "-" if value is None else f"{value:.3f}"  # None: no roofs (not on the CPU)


def print_roofs(dtype):
    print(f"last-level cache {last_level_cache_bytes() / 2**20:.0f} MiB; memory bandwidth "
          f"(256 MiB copy, read + write) {memory_bandwidth_gbs():.1f} GB/s; one parallel region "
          f"(64K add) {parallel_region_s() * 1e6:.0f} us")
    for spec in SPECS.values():
        if spec.speed is not None:
            print(f"compute roof {spec.name} {dtype}: {compute_rate(spec, dtype):.3g} elements/s "
                  f"({spec.speed.work})")


def print_comparison(first, second, dtype):
    both = {_key(r): r for r in first}
    table, diffs, repeated, ratio_diffs = [], [], [], []
    for row in second:
        one = both.get(_key(row))
        if one is None:
            continue
        diff = (row["median_s"] - one["median_s"]) / one["median_s"]
        diffs.append(abs(diff))
        if min(row["repeats"], one["repeats"]) >= 3:
            repeated.append(abs(diff))
        ratios = "-"
        if row["candidate"] != row["baseline"] and row["ratio_to_baseline"] is not None:
            r1, r2 = one["ratio_to_baseline"], row["ratio_to_baseline"]
            ratio_diffs.append(abs(r2 - r1) / r1)
            ratios = f"{r1:.3g} / {r2:.3g} ({(r2 - r1) / r1:+.1%})"
        table.append([SHORT.get(row["loss"], row["loss"]), "x".join(map(str, row["size"])),
                      row["candidate"], row["pass"], _ms(one["median_s"]), _ms(row["median_s"]),
                      f"{diff:+.1%}", f"{one['repeats']}/{row['repeats']}", f"{row['gbs']:.3g}",
                      _share(row["bandwidth_share"]), _share(row["compute_share"]), row["roof"],
                      ratios])
    print(tabulate(table, headers=["loss", "size", "candidate", "pass", "run 1 ms", "run 2 ms",
                                   "diff", "repeats", "GB/s", "bw share", "compute share",
                                   "roof", "ratio to baseline: run 1 / 2"],
                   disable_numparse=True))
    print(f"\n{dtype}: {len(diffs)} medians; |run 2 - run 1| / run 1: max {max(diffs):.1%}, "
          f"median {statistics.median(diffs):.1%}; within 5 %: "
          f"{sum(d <= 0.05 for d in diffs)}/{len(diffs)}")
    if repeated:
        print(f"rows with >= 3 samples in both runs ({len(repeated)}): max {max(repeated):.1%}, "
              f"median {statistics.median(repeated):.1%}; within 5 %: "
              f"{sum(d <= 0.05 for d in repeated)}/{len(repeated)}")
    if ratio_diffs:
        print(f"ratios to the baseline ({len(ratio_diffs)}): max {max(ratio_diffs):.1%}, median "
              f"{statistics.median(ratio_diffs):.1%}; within 5 %: "
              f"{sum(d <= 0.05 for d in ratio_diffs)}/{len(ratio_diffs)}")


def _expression_candidate(label, function):
    """A torch candidate that provides multilabel_soft_margin_loss as ``function``."""
    module = types.SimpleNamespace(multilabel_soft_margin_loss=function)
    return Candidate(label, label, module, framework_named("torch"),
                     {"multilabel_soft_margin_loss": function}, ())


def _one_softplus(input, target, weight=None, reduction="mean"):
    return (F.softplus(input) - input * target).mean()


def _two_softplus(input, target, weight=None, reduction="mean"):
    return (F.softplus(-input) * target + F.softplus(input) * (1 - target)).mean()


def _bce_with_logits(input, target, weight=None, reduction="mean"):
    return F.binary_cross_entropy_with_logits(input, target)


def print_expression_gap(seed):
    """torch's loss beside the same math as one expression, float32 (4096, 1000)."""
    spec = SPECS["multilabel_soft_margin_loss"]
    candidates = load_candidates(["torch"]) + [
        _expression_candidate("softplus(x) - x*y", _one_softplus),
        _expression_candidate("two softplus", _two_softplus),
        _expression_candidate("bce_with_logits", _bce_with_logits)]
    rows = time_size(candidates, spec, (4096, 1000), "float32", np.random.default_rng(seed))
    print("\nmultilabel_soft_margin_loss float32 (4096, 1000), torch beside the same math as one "
          "expression: (softplus(x) - x * y).mean(), (softplus(-x) * y + softplus(x) * (1 - y))"
          ".mean() ('two softplus') and binary_cross_entropy_with_logits(x, y)")
    print(tabulate([[r["candidate"], r["pass"], _ms(r["median_s"]), f"{r['gbs']:.3g}",
                     _share(r["bandwidth_share"]), f"{r['ratio_to_baseline']:.3g}"]
                    for r in rows],
                   headers=["candidate", "pass", "median ms", "GB/s", "bw share", "ratio"],
                   disable_numparse=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", action="append", help="candidates (default torch, numpy)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between the runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    candidates = load_candidates(args.impl or ["torch", "numpy"])
    print_roofs(args.dtype)
    first, messages_1, seconds_1 = run_ladder(candidates, args.dtype, args.seed)
    time.sleep(args.pause)
    second, messages_2, seconds_2 = run_ladder(candidates, args.dtype, args.seed)
    print(f"ladder: run 1 {seconds_1:.1f} s, run 2 {seconds_2:.1f} s "
          f"({', '.join(c.label for c in candidates)}; first is the baseline)")
    for run, messages in (("run 1", messages_1), ("run 2", messages_2)):
        for message in messages:
            print(f"{run}: {message}")
    print()
    print_comparison(first, second, args.dtype)
    print_expression_gap(args.seed)


if __name__ == "__main__":
    main()
