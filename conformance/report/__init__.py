"""Results and reports: the store checks append to, and the renderers that read it.

Renderers know nothing of pytest: they read the results a run appended (one JSON line per
finished check, one file per pytest-xdist worker) and write, into the report directory:

    DIR/results/*.jsonl    what the run measured, appended as checks finish
    DIR/summary.json       the machine-readable summary (a later run's --baseline)
    DIR/accuracy.md        accuracy tables, candidates side by side
    DIR/speed.md           speed tables (only when the run measured speed)
    DIR/index.html         one self-contained page: an overview (candidate x loss x dtype), the
                           failures, then tables and plots; an inline filter, no network
    DIR/plots/*.png        error / allowed error against input magnitude; time against size
    DIR/repro/*.py, *.npz  one standalone reproducer per failing check

``python -m conformance.report DIR`` renders the reports again from ``DIR/results`` alone
(for a run that died half way).

summary.json, version 1 (``SUMMARY_VERSION``)::

    {
      "version": 1,
      "generated": "2026-11-26T14:00:00+00:00",
      "run": {"command": str, "seed": int, "profile": str, "torch": str, "numpy": str,
              "python": str, "platform": str, "speed": bool,
              "shard": {"count": int, "indexes": [int, ...], "durations_sha256": str | null}
                       | null,   # --shard=K/N (indexes: the parts a merge holds)
              "deviations": {"verified_on": [torch release, ...], "applied": bool,
                             "note": str | null}   # note: this torch is not one of them
                            | null},   # null: no candidate of the run has known deviations
      "candidates": [{"label": str, "impl": str, "framework": str, "version": str,
                      "device": str, "provides": [loss, ...], "missing": [loss, ...]}],
      "machine": {"memory_bandwidth_gbs": float | null,
                  "compute": {"<loss>/<dtype>": {"elements_per_s": float, "work": str,
                                                 "inputs": str}},  # the ladder's typical call
                  "matmul": {"<dtype>": {"flops_per_s": float, "work": str}},  # GEMM roofs
                  "threads": int | [int, ...] | null,   # torch threads while timing
                  "memory_method": str | null},         # how CPU peak memory was measured
      "tests": {"<test name>": {"candidate": str, "loss": str, "dtype": str, "check": str,
                                "outcome": "passed" | "failed" | "skipped" | "xfailed"
                                           | "xpassed" | "error",
                                "reason": str, "duration_s": float}},
      "accuracy": [{"candidate": str, "loss": str, "dtype": str, "device": str,
                    "region": str,              # "all", or one case tag ("saturated", ...)
                    "checks": {"run": int, "passed": int, "failed": int, "skipped": int,
                               "xfailed": int},
                    "skipped_reasons": {reason: count},
                    "examples": int,            # cases judged against the reference
                    "max_ulp": float | null, "p99_ulp": float | null,
                    "max_rel": float | null, "p99_rel": float | null,
                    "max_ratio": float | null,  # error / allowed error, worst case (<= 1 passes)
                    "worst": {"test": str, "output": str, "ulp": float, "case": str,
                              "rerun": str} | null}],
      "error_samples": [{"candidate": str, "loss": str, "dtype": str,
                         # ratio: error / allowed error of the case (<= 1 passes), or null;
                         # summaries written before it have 3-element points (read: no ratio)
                         "points": [[input_magnitude, max_ulp, passed, ratio], ...]}],
      "failures": [{"test": str, "candidate": str, "loss": str, "dtype": str,
                    "message": str, "rerun": str, "repro": "repro/<name>.py" | null,
                    # a fault of the candidate's process, apart from wrong results:
                    "fault": "crash" | "hang" | "nondeterministic" | null}],
      "speed": [{"candidate": str, "loss": str, "dtype": str, "device": str,
                 "size": [int, ...], "pass": "forward" | "forward+backward",
                 "rung": "tiny" | "small" | "medium" | "large" | "huge" | null,
                 "variant": str,                    # "typical", or the ladder's option variant
                 "options": {name: value}, "arrays": [str, ...],  # the call's options, and
                                                    # the optional arrays it was given
                 "median_s": float, "min_s": float, "q10_s": float, "q90_s": float,
                 "repeats": int,                    # blocks timed (one per round)
                 "bytes": int, "elements": int, "flops": int | null, "gbs": float,
                 "bandwidth_share": float | null,   # gbs / machine memory bandwidth
                 "compute_share": float | null,     # elements/s / measured compute roof
                 "matmul_share": float | null,      # flops/s / measured matmul roof
                 "roof": "memory" | "compute" | "matmul" | null,  # the roof that binds
                 "roof_s": float | null,            # the time the binding roof allows
                 "ratio_to_baseline": float | null, # median over the rounds of this pass's
                                                    # time / the baseline candidate's
                 "ratio_q10": float | null, "ratio_q90": float | null,  # their spread
                 "baseline": str | null,
                 "peak_bytes": int | null,          # peak memory of one call
                 "memory_method": "rss" | "cuda-allocator" | null,
                 "threads": int}],
      "speed_fastest": [{"loss": str, "dtype": str, "size": [int, ...], "rung": str | null,
                         "variant": str, "pass": str, "fastest": str, "median_s": float,
                         "peak_bytes": int | null, "runner_up": str,
                         "runner_up_median_s": float, "runner_up_peak_bytes": int | null,
                         "times_faster": float}]   # runner-up's time / the fastest's
    }

Values that JSON cannot hold (inf, nan) are written as the strings "inf" and "nan".
"""

SUMMARY_VERSION = 1
