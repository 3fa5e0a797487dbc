"""Repeatability of the speed harness: the whole speed ladder twice in one process.

Run: python benchmarks/speed_repeatability.py [--impl torch --impl numpy] [--dtype float32
         --dtype bfloat16] [--sizes tiny,small,medium,large] [--loss NAME] [--pause 3]
         [--threads 1] [--no-variants] [--quiet] [--json FILE] [--expression-gap]

Prints this machine's roofs, then times every timed loss at every rung of its ladder (and its
option variants at the variant rung, as ``--speed`` does) for the candidates twice, a few seconds
apart, with the same inputs, and prints per row both runs' ratios to the baseline candidate
(the figure the goal is about: the median of round-by-round ratios) and both medians, then the
spread: |run 2 - run 1| / run 1 of the ratios, for the rows of at least 1 ms in both runs (the
goal: within 5 %) and for all rows, and the same of the medians. ``--expression-gap`` also
times torch's multilabel_soft_margin_loss at (4096, 1000) beside the same math as one
expression. Figures, not assertions: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
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
from conformance.specs import DEFAULT_RUNGS, RUNGS, SPECS, VARIANT_RUNG
from conformance.timing import (SpeedSkipped, UnsteadyTiming, last_level_cache_bytes,
                                matmul_rate, memory_bandwidth_gbs, parallel_region_s,
                                time_size)

GOAL = 0.05
MIN_ROW_S = 1e-3  # the goal covers rows of at least this median in both runs


def ladder_points(dtypes, rungs, losses=None, variants=True):
    """(spec, dtype, rung, size, variant) as the --speed tests run them."""
    for spec in SPECS.values():
        if spec.speed is None or (losses and spec.name not in losses):
            continue
        for dtype in spec.speed.dtypes or dtypes:
            for rung, size in spec.speed.rung_sizes(rungs):
                names = ["typical"] + ([v for v, _ in spec.speed.variants] if variants
                                       and rung == VARIANT_RUNG and dtype == dtypes[0] else [])
                for variant in names:
                    yield spec, dtype, rung, size, variant


def run_ladder(candidates, points, seed):
    """Every point timed: (rows, warnings, seconds)."""
    rows, start = [], time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SpeedSkipped)
        warnings.simplefilter("always", UnsteadyTiming)
        for spec, dtype, rung, size, variant in points:
            if any(spec.name in c.functions for c in candidates):
                rows += time_size(candidates, spec, size, dtype, np.random.default_rng(seed),
                                  variant=variant, rung=rung)
    messages = [f"{w.category.__name__}: {w.message}" for w in caught
                if issubclass(w.category, (SpeedSkipped, UnsteadyTiming))]
    return rows, messages, time.perf_counter() - start


def _key(row):
    return (row["loss"], row["dtype"], tuple(row["size"]), row["variant"], row["candidate"],
            row["pass"])


def _ms(seconds):
    return f"{seconds * 1e3:.4g}"


def _spread(label, values, goal=GOAL):
    if not values:
        return f"{label}: none"
    return (f"{label} ({len(values)}): median {statistics.median(values):.1%}, worst "
            f"{max(values):.1%}, within {goal:.0%}: {sum(v <= goal for v in values)}"
            f"/{len(values)}")


def print_roofs(dtypes):
    print(f"last-level cache {last_level_cache_bytes() / 2**20:.0f} MiB; memory bandwidth "
          f"(256 MiB copy, read + write) {memory_bandwidth_gbs():.1f} GB/s; one parallel region "
          f"(64K add) {parallel_region_s() * 1e6:.0f} us")
    for dtype in dtypes:
        print(f"matrix-product roof {dtype}: {matmul_rate(dtype):.3g} flop/s")


def compare(first, second, verbose=True):
    """Print both runs side by side; return (ratio spreads >= 1 ms, all ratio spreads,
    median spreads)."""
    one = {_key(r): r for r in first}
    table, ratio_big, ratio_all, medians, worst = [], [], [], [], []
    for row in second:
        before = one.get(_key(row))
        if before is None:
            continue
        diff = abs(row["median_s"] - before["median_s"]) / before["median_s"]
        medians.append(diff)
        ratio_text = "-"
        r1, r2 = before["ratio_to_baseline"], row["ratio_to_baseline"]
        if row["candidate"] != row["baseline"] and r1 and r2:
            spread = abs(r2 - r1) / r1
            ratio_all.append(spread)
            if min(row["median_s"], before["median_s"]) >= MIN_ROW_S:
                ratio_big.append(spread)
                worst.append((spread, _key(row), r1, r2))
            ratio_text = f"{r1:.3g} / {r2:.3g} ({(r2 - r1) / r1:+.1%})"
        table.append([row["loss"], row["dtype"], "x".join(map(str, row["size"]))
                      + ("" if row["variant"] == "typical" else f" {row['variant']}"),
                      row["candidate"], row["pass"], _ms(before["median_s"]),
                      _ms(row["median_s"]), f"{diff:+.1%}",
                      f"{before['repeats']}/{row['repeats']}", row["roof"], ratio_text])
    if verbose:
        print(tabulate(table, headers=["loss", "dtype", "size", "candidate", "pass", "run 1 ms",
                                       "run 2 ms", "diff", "rounds", "roof",
                                       "ratio to baseline: run 1 / 2"],
                       disable_numparse=True))
    print()
    print(_spread(f"ratios to the baseline, rows >= {MIN_ROW_S * 1e3:g} ms", ratio_big))
    print(_spread("ratios to the baseline, all rows", ratio_all))
    print(_spread("medians, all rows", medians))
    for spread, key, r1, r2 in sorted(worst, reverse=True)[:5]:
        print(f"  worst: {spread:.1%} {' '.join(map(str, key))}: {r1:.4g} / {r2:.4g}")
    return ratio_big, ratio_all, medians


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
                     f"{r['ratio_to_baseline']:.3g}"] for r in rows],
                   headers=["candidate", "pass", "median ms", "GB/s", "ratio"],
                   disable_numparse=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", action="append", help="candidates (default torch, numpy)")
    parser.add_argument("--dtype", action="append", help="default float32 and bfloat16")
    parser.add_argument("--sizes", default=",".join(DEFAULT_RUNGS),
                        help=f"rungs, comma-separated, of {', '.join(RUNGS)}")
    parser.add_argument("--loss", action="append", help="only these losses")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between the runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads "
                        "(default 1, as --speed)")
    parser.add_argument("--no-variants", action="store_true", help="the typical calls only")
    parser.add_argument("--quiet", action="store_true", help="no row-by-row table")
    parser.add_argument("--expression-gap", action="store_true")
    parser.add_argument("--json", help="write both runs' rows to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtypes = args.dtype or ["float32", "bfloat16"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s)")
    candidates = load_candidates(args.impl or ["torch", "numpy"])
    print_roofs(dtypes)
    points = list(ladder_points(dtypes, args.sizes.split(","), args.loss,
                                not args.no_variants))
    first, messages_1, seconds_1 = run_ladder(candidates, points, args.seed)
    time.sleep(args.pause)
    second, messages_2, seconds_2 = run_ladder(candidates, points, args.seed)
    print(f"ladder ({len(points)} points): run 1 {seconds_1:.1f} s, run 2 {seconds_2:.1f} s "
          f"({', '.join(c.label for c in candidates)}; first is the baseline)")
    for run, messages in (("run 1", messages_1), ("run 2", messages_2)):
        for message in messages[:20]:
            print(f"{run}: {message}")
    print()
    compare(first, second, verbose=not args.quiet)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"first": first, "second": second}, out)
    if args.expression_gap:
        print_expression_gap(args.seed)


if __name__ == "__main__":
    main()
