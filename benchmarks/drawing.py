"""Time hypothesis's drawing of random cases alone, as a profile's random checks draw them.

Run: python benchmarks/drawing.py [--profile default] [--seed 0] [--loss NAME ...]

For every loss (or those named), every dtype and every member of its variant group, runs a
hypothesis test with the suite's own drawing settings and share of the profile's examples, whose
body does nothing: what remains is the cost of drawing the cases (strategies, hypothesis's
engine, the numpy work of building arrays). Each random check draws this once, so a run of
test_value and test_gradient pays it about twice. Prints the total and the slowest losses.
Figures, not assertions: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter

from hypothesis import given, seed
from tabulate import tabulate

from conformance.cases import drawing_settings
from conformance.run import PROFILES
from conformance.specs import SPECS, group_variants


def draw_all(spec, examples: int, run_seed: int, shrink: bool) -> int:
    """Draw every member's share of ``examples`` cases of ``spec``; returns the cases drawn."""
    drawn = 0
    for group in group_variants(spec.variants):
        share = math.ceil(examples / len(group.members))
        for variant in group.members:
            @seed(run_seed)
            @drawing_settings(share, shrink)
            @given(case=spec.cases(variant))
            def body(case):
                nonlocal drawn
                drawn += 1

            body()
    return drawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loss", action="append", help="a loss to draw (default: all)")
    args = parser.parse_args()
    examples, shrink = PROFILES[args.profile]
    seconds, cases = Counter(), Counter()
    start = time.perf_counter()
    for name in args.loss or list(SPECS):
        began = time.perf_counter()
        cases[name] = draw_all(SPECS[name], examples, args.seed, shrink)
        seconds[name] = time.perf_counter() - began
    total = time.perf_counter() - start
    print(f"drew {sum(cases.values())} cases in {total:.1f} s "
          f"({1e3 * total / max(sum(cases.values()), 1):.2f} ms a case), profile "
          f"{args.profile}, seed {args.seed}")
    rows = [(name, cases[name], f"{s:.2f}", f"{1e3 * s / max(cases[name], 1):.2f}")
            for name, s in seconds.most_common(10)]
    print(tabulate(rows, headers=["loss", "cases", "seconds", "ms a case"]))


if __name__ == "__main__":
    main()
