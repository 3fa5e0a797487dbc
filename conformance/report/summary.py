"""The summary of a run, built from its result records alone (schema: conformance.report).

Counting: every judged case is one check (a random test judges up to the profile's number of
cases, an edge or invalid-input test one); a test skipped as a whole counts one skipped check.
A case counts in the row of each region it is tagged with and in the region "all". A case that
fails as a known deviation counts as xfailed and stays out of the error figures.
"""

from __future__ import annotations

import datetime
from collections import defaultdict

import numpy as np

from . import SUMMARY_VERSION

MAX_SAMPLES = 1000  # error-plot points kept per candidate, loss and dtype
MAX_PASSING_SAMPLES = 250  # ... where every case passed: enough for the cloud and its worst


def build_summary(records: list) -> dict:
    """The summary dict (see the package docstring) of one run's records."""
    runs = [r for r in records if r["kind"] == "run"]
    run = runs[-1] if runs else {"settings": {}, "candidates": []}
    checks = [r for r in records if r["kind"] == "check"]
    return {
        "version": SUMMARY_VERSION,
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run": run["settings"],
        "candidates": run["candidates"],
        "machine": _machine(records),
        "tests": {r["test"]: {k: r[k] for k in ("candidate", "loss", "dtype", "check",
                                                "outcome", "reason", "duration_s")}
                  for r in checks},
        "accuracy": _accuracy_rows(checks),
        "error_samples": _error_samples(checks),
        "failures": [{"test": r["test"], "candidate": r["candidate"], "loss": r["loss"],
                      "dtype": r["dtype"], "message": r["message"] or r["reason"],
                      "rerun": r["rerun"], "repro": r["repro"], "fault": r.get("fault"),
                      "case": r.get("case")}
                     for r in checks if r["outcome"] in ("failed", "error")],
        "speed": [{k: v for k, v in r.items() if k != "kind"}
                  for r in records if r["kind"] == "speed"],
        "speed_fastest": speed_fastest([r for r in records if r["kind"] == "speed"]),
    }


def _time_key(row) -> float:
    """A row's standing among candidates: its ratio to the baseline, taken round by round
    (the repeatable figure), else its median."""
    ratio = row.get("ratio_to_baseline")
    return ratio if isinstance(ratio, (int, float)) else row["median_s"] * 1e9


def speed_fastest(rows) -> list:
    """Per loss, dtype, size, variant and pass timed for two candidates or more: the fastest
    candidate, the runner-up and how many times faster (the runner-up's ratio to the baseline
    over the fastest's: both paired round by round with the baseline; medians where a ratio is
    missing), with their medians and peak memory."""
    groups = defaultdict(list)
    for row in rows:
        groups[(row["loss"], row["dtype"], tuple(row["size"]), row.get("variant") or "typical",
                row["pass"])].append(row)
    out = []
    for (loss, dtype, size, variant, name), members in groups.items():
        if len(members) < 2:
            continue
        ratios = all(isinstance(r.get("ratio_to_baseline"), (int, float)) for r in members)
        ranked = sorted(members, key=_time_key if ratios else lambda r: r["median_s"])
        first, second = ranked[:2]
        by = (_time_key(second) / _time_key(first) if ratios
              else second["median_s"] / first["median_s"])
        out.append({"loss": loss, "dtype": dtype, "size": list(size), "rung": first.get("rung"),
                    "variant": variant, "pass": name, "fastest": first["candidate"],
                    "median_s": first["median_s"], "peak_bytes": first.get("peak_bytes"),
                    "runner_up": second["candidate"], "runner_up_median_s": second["median_s"],
                    "runner_up_peak_bytes": second.get("peak_bytes"), "times_faster": by})
    return out


def _machine(records) -> dict:
    machines = [r for r in records if r["kind"] == "machine"]
    bandwidths = [r["memory_bandwidth_gbs"] for r in machines if r.get("memory_bandwidth_gbs")]
    compute, matmul, threads, methods = {}, {}, set(), set()
    for r in machines:
        compute.update(r.get("compute") or {})
        matmul.update(r.get("matmul") or {})
        if r.get("threads"):
            threads.add(r["threads"])
        if r.get("memory_method"):
            methods.add(r["memory_method"])
    return {"memory_bandwidth_gbs": float(np.median(bandwidths)) if bandwidths else None,
            "compute": compute, "matmul": matmul,
            "threads": min(threads) if len(threads) == 1 else sorted(threads) or None,
            "memory_method": "; ".join(sorted(methods)) or None}


def _quantile(values, q):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q, method="higher"))


def _accuracy_rows(checks) -> list:
    groups = defaultdict(lambda: {"checks": defaultdict(int), "skipped_reasons": defaultdict(int),
                                  "examples": []})
    for record in checks:
        if record["check"] == "speed" or record["candidate"] is None:
            continue  # speed rows are figures; no candidate: pytest's empty parameter set
        key = (record["candidate"], record["loss"], record["dtype"], record["device"])
        if record["outcome"] == "skipped" or (record["outcome"] == "error"
                                              and not record["examples"]):
            group = groups[key + ("all",)]
            state = "skipped" if record["outcome"] == "skipped" else "failed"
            group["checks"][state] += 1
            if state == "skipped":
                group["skipped_reasons"][record["reason"]] += 1
            continue
        for example in record["examples"]:
            state = ("passed" if example["passed"] else
                     "xfailed" if example["tolerated"] else "failed")
            for region in ["all"] + list(example["regions"]):
                group = groups[key + (region,)]
                group["checks"][state] += 1
                group["examples"].append((example, record))
    rows = []
    for (candidate, loss, dtype, device, region), group in sorted(
            groups.items(), key=lambda item: tuple(str(k) for k in item[0][:4])
            + (item[0][4] != "all", item[0][4])):
        counts = {s: group["checks"][s] for s in ("passed", "failed", "skipped", "xfailed")}
        counts["run"] = sum(counts.values())
        # Known deviations (xfailed) are counted, but left out of the error figures, which
        # describe what the candidate is judged on.
        judged = [(e, r) for e, r in group["examples"]
                  if e["ulp"] is not None and not e["tolerated"]]
        ulps = [e["ulp"] for e, _ in judged]
        rows.append({
            "candidate": candidate, "loss": loss, "dtype": dtype, "device": device,
            "region": region, "checks": counts,
            "skipped_reasons": dict(group["skipped_reasons"]),
            "examples": len(group["examples"]),
            "max_ulp": max(ulps) if ulps else None, "p99_ulp": _quantile(ulps, 99),
            "max_rel": max((e["rel"] for e, _ in judged), default=None),
            "p99_rel": _quantile([e["rel"] for e, _ in judged], 99),
            "max_ratio": max((e["ratio"] for e, _ in judged), default=None),
            "worst": _worst(judged, with_case=region == "all"),
        })
    return rows


def _worst(judged, with_case: bool) -> dict | None:
    """The worst judged case of a group: its test, output, error, and the case if recorded.

    The case itself is kept for the region "all" only (a region's worst is often the same
    case again, and the summary is read by people and by CI alike).
    """
    if not judged:
        return None
    example, record = max(judged, key=lambda pair: (pair[0]["ratio"], pair[0]["ulp"]))
    worst = record.get("worst") or {}
    same = (with_case and worst.get("ulp") == example["ulp"]
            and worst.get("output") == example["output"])
    return {"test": record["test"], "output": example["output"], "ulp": example["ulp"],
            "case": worst.get("case") if same else None, "rerun": record["rerun"]}


def _sort_value(value) -> float:
    """A figure for sorting: None and nan as 0 (nan does not order)."""
    return 0.0 if value is None or value != value else value


def _error_samples(checks) -> list:
    """Per candidate, loss and dtype: [magnitude, ulp, passed, ratio] of each judged case."""
    points = defaultdict(list)
    for record in checks:
        for example in record["examples"]:
            if (example["ulp"] is not None and example["magnitude"] is not None
                    and not example["tolerated"]):  # known deviations: as in the tables
                key = (record["candidate"], record["loss"], record["dtype"])
                points[key].append([example["magnitude"], example["ulp"], example["passed"],
                                    example.get("ratio")])
    samples = []
    for (candidate, loss, dtype), values in sorted(points.items(), key=lambda i: str(i[0])):
        # Points matter most where a case failed; where none did, fewer show the same cloud.
        limit = (MAX_SAMPLES if not all(p[2] for p in values)
                 else min(MAX_SAMPLES, MAX_PASSING_SAMPLES))
        if len(values) > limit:
            # Keep every failing point and the largest errors, then an even spread of the rest.
            values.sort(key=lambda p: (p[2], -_sort_value(p[3]), -_sort_value(p[1])))
            keep = values[:limit // 2]
            rest = values[limit // 2:]
            keep += rest[::max(1, len(rest) // (limit - len(keep)))]
            values = keep[:limit]
        samples.append({"candidate": candidate, "loss": loss, "dtype": dtype, "points": values})
    return samples


def candidate_overview(summary: dict) -> list:
    """Per candidate and loss: tests passed, failed, skipped, xfailed; max ulp, its dtype; max
    ratio."""
    order = {c["label"]: i for i, c in enumerate(summary["candidates"])}  # as given
    counts = defaultdict(lambda: defaultdict(int))
    for test in summary["tests"].values():
        if test["check"] != "speed":
            state = "failed" if test["outcome"] == "error" else test["outcome"]
            counts[(test["candidate"], test["loss"])][state] += 1
    worst, ratio = {}, {}
    for row in summary["accuracy"]:
        key = (row["candidate"], row["loss"])
        if row["region"] != "all" or row["max_ulp"] is None:
            continue
        if key not in worst or row["max_ulp"] > worst[key][0]:
            worst[key] = (row["max_ulp"], row["dtype"])
        ratio[key] = max(ratio.get(key, 0.0), row["max_ratio"])
    return [[candidate, loss] + [counts[(candidate, loss)][s] for s in
                                 ("passed", "failed", "skipped", "xfailed")]
            + list(worst.get((candidate, loss), (None, None))) + [ratio.get((candidate, loss))]
            for candidate, loss in sorted(counts, key=lambda k: (order.get(k[0], len(order)),
                                                                  str(k[1])))]


def speed_overview(summary: dict) -> list:
    """Per candidate, loss, dtype and pass, at the largest size timed: the figures users compare.

    Rows: candidate, loss, dtype, pass, size, median (ms), GB/s, roof attained (the binding
    roof's time / the median), time relative to the baseline candidate, peak memory (MiB). The
    typical call only (not the option variants).
    """
    order = {c["label"]: i for i, c in enumerate(summary["candidates"])}  # baseline first
    largest = {}
    for row in summary["speed"]:
        if (row.get("variant") or "typical") != "typical":
            continue
        key = (row["candidate"], row["loss"], row["dtype"], row["pass"])
        if key not in largest or np.prod(row["size"]) > np.prod(largest[key]["size"]):
            largest[key] = row
    return [[*key[:3], key[3], "x".join(map(str, row["size"])), row["median_s"] * 1e3,
             row["gbs"], row["roof_s"] / row["median_s"] if row["roof_s"] else None,
             row["ratio_to_baseline"],
             None if row.get("peak_bytes") is None else row["peak_bytes"] / 2**20]
            for key, row in sorted(largest.items(), key=lambda item: (
                order.get(item[0][0], len(order)), str(item[0][1:])))]
