"""Throughput of the exact reference: certified, correctly rounded elements per second.

Run: python benchmarks/reference_throughput.py [--elements N]

Prints, per loss, output and dtype, how many input elements per second the reference turns into
certified correctly rounded results, and how many outputs needed the arb fallback. Figures, not
assertions: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from loss_reference import multilabel as ref
from loss_reference.formats import FORMATS


def _timed(function, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=256 * 1024)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    classes = 1024
    rows = max(args.elements // classes, 1)
    x = rng.normal(size=(rows, classes)) * 4
    y = (rng.random((rows, classes)) < 0.3) * 1.0
    w = rng.random(classes)
    g = rng.normal(size=rows)
    labels = np.where(rng.random((rows, 8)) < 0.7, rng.integers(0, classes, (rows, 8)), -1)
    target = np.full((rows, classes), -1)
    target[:, :8] = labels
    small = slice(0, max(rows // 16, 1))  # the margin loss forms (N, K, C) pairs: fewer rows
    print(f"{rows} x {classes} = {rows * classes} elements (margin loss: 1/16 of the rows)")
    print(f"{'what':48s} {'dtype':9s} {'elements/s':>12s}")
    for dtype in ("float64", "float32"):
        fmt = FORMATS[dtype]
        xr = x.astype(dtype).astype(np.float64)
        runs = {
            "multilabel_soft_margin_loss forward (none)":
                (rows * classes, lambda: ref.multilabel_soft_margin_loss(xr, y, w, "none", fmt)),
            "multilabel_soft_margin_loss forward (mean)":
                (rows * classes, lambda: ref.multilabel_soft_margin_loss(xr, y, w, "mean", fmt)),
            "multilabel_soft_margin_loss 3 gradients (none)":
                (rows * classes,
                 lambda: ref.multilabel_soft_margin_loss_grad(g, xr, y, w, "none", fmt)),
            "multilabel_margin_loss forward (none)":
                (xr[small].size,
                 lambda: ref.multilabel_margin_loss(xr[small], target[small], "none", fmt)),
        }
        for name, (elements, run) in runs.items():
            seconds = _timed(run)
            print(f"{name:48s} {dtype:9s} {elements / seconds:12.3g}")


if __name__ == "__main__":
    main()
