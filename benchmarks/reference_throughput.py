"""Throughput of the exact reference: certified, correctly rounded results per second.

Run: python benchmarks/reference_throughput.py [--loss NAME ...] [--dtype DTYPE ...]
                                               [--size ROWSxCOLS] [--option NAME=VALUE ...]

For every loss with a speed ladder (its typical inputs, ``spec.speed.case``) at one size (the
ladder's third, (4096, 1000) for most, or --size), in each dtype: the input elements per second
that the reference turns into certified results, for the value ('none' and 'mean') and for the
gradients ('mean'), and which share of the outputs each tier of the engine certified (float64
balls, long double balls, long double with exact sums, arb). A case the reference cannot
certify (``EvaluationError``: the suite skips such a case with its reason) is printed as such.
``--option`` sets an option of every case (``--option label_smoothing=0.1``: a Python literal);
``--variants`` times each ladder's variants too (its other common calls: class weights,
pos_weight, label smoothing, full, ...), labelled by their names; ``--probabilities`` also
times cross_entropy's and linear_cross_entropy's typical call with probability targets (a
distillation's: rows of a distribution over the classes), labelled 'probabilities'.
Figures, not assertions: this machine is shared and noisy; the best of ``--repeat`` runs is
printed. glibc keeps freed memory, as in the suite's own process (``conformance/allocator.py``).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import time

import numpy as np

from conformance.allocator import keep_freed_memory
from conformance.specs import SPECS
from loss_reference import engine

TIERS = ("float64", "double-double", "longdouble", "longdouble (exact sums)", "arb")
# the losses that take probability targets: each one's class count for a case of its ladder
CLASSES = {"cross_entropy": lambda case: case.args["input"].shape[1],
           "linear_cross_entropy": lambda case: case.args["linear_weight"].shape[0]}


def _with_probabilities(spec, case, rng):
    """``case`` with its index targets replaced by rows of a distribution over the classes,
    in the input's dtype; None for a loss that takes none."""
    if spec.name not in CLASSES:
        return None
    rows, classes = len(case.args["target"]), CLASSES[spec.name](case)
    p = rng.random((rows, classes))
    p /= p.sum(axis=1, keepdims=True)
    target = p.astype(case.args["input"].dtype)
    return dataclasses.replace(case, args={**case.args, "target": target})


def _timed(function, repeat):
    best = float("inf")
    for _ in range(repeat):
        engine.STATS.clear()
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best, dict(engine.STATS)


def _variants(spec, case):
    """(what, reduction, function) triples: values under 'none' and 'mean', gradients."""
    out = []
    for reduction in ("none", "mean"):
        variant = dataclasses.replace(case, options={**case.options, "reduction": reduction})
        out.append((f"value {reduction}", lambda v=variant: spec.reference(v)))
    if spec.reference_grad is not None:
        out.append(("gradient mean", lambda: spec.reference_grad(case)))
    return out


def _shares(stats) -> str:
    total = sum(stats.values()) or 1
    return " ".join(f"{stats.get(t, 0) / total:6.1%}" for t in TIERS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", action="append", default=[])
    parser.add_argument("--dtype", action="append", default=[])
    parser.add_argument("--size", default=None, help="ROWSxCOLS instead of the ladder's third")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--variants", action="store_true",
                        help="time each ladder's variants (class weights, smoothing, ...) too")
    parser.add_argument("--probabilities", action="store_true",
                        help="time cross_entropy's and linear_cross_entropy's calls with "
                        "probability targets too")
    parser.add_argument("--option", action="append", default=[],
                        help="NAME=VALUE set in every case's options, VALUE a Python literal")
    args = parser.parse_args()
    options = {}
    for option in args.option:
        name, _, value = option.partition("=")
        try:
            options[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parser.error(f"--option {option!r}: write NAME=VALUE with VALUE a Python literal, "
                         "e.g. label_smoothing=0.1")
    keep_freed_memory()  # as the suite's own process does (conformance/plugin.py)
    dtypes = args.dtype or ["float32", "bfloat16", "float64"]
    size = tuple(int(n) for n in args.size.split("x")) if args.size else None
    print(f"{'loss':36s} {'dtype':9s} {'what':14s} {'elements':>10s} {'seconds':>8s} "
          f"{'elements/s':>11s}   tiers: {' '.join(t[:6].rjust(6) for t in TIERS)}")
    for spec in SPECS.values():
        if spec.speed is None or (args.loss and spec.name not in args.loss):
            continue
        shape = size or spec.speed.sizes[min(2, len(spec.speed.sizes) - 1)]
        for dtype in dtypes:
            rng = np.random.default_rng(0)
            case = spec.speed.case(shape, dtype, rng)
            case = dataclasses.replace(case, options={**case.options, **options})
            calls = [("", case)]
            if args.variants:
                calls += [(f"{name}: ", build(case, np.random.default_rng(1)))
                          for name, build in spec.speed.variants]
            soft = (_with_probabilities(spec, case, np.random.default_rng(2))
                    if args.probabilities else None)
            if soft is not None:
                calls.append(("probabilities: ", soft))
            for label, call in calls:
                _time_call(spec, call, dtype, label, args.repeat)


def _time_call(spec, case, dtype: str, label: str, repeat: int) -> None:
    """Print one line per value and gradient of ``case``, ``label`` before each."""
    elements = sum(np.size(v) for v in case.args.values()
                   if isinstance(v, np.ndarray) and v.dtype.kind == "f")
    for what, run in _variants(spec, case):
        head = f"{spec.name:36s} {dtype:9s} {label + what:14s} {elements:10d}"
        try:
            seconds, stats = _timed(run, repeat)
        except engine.EvaluationError as error:  # the suite would skip such a case
            print(f"{head} not certified: {error}", flush=True)
            continue
        print(f"{head} {seconds:8.3f} {elements / seconds:11.3g}   {_shares(stats)}",
              flush=True)


if __name__ == "__main__":
    main()
