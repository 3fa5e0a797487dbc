"""accuracy.md and speed.md, rendered from summary.json (version 1) alone.

The table builders (``*_table``, ``*_tables``) return headers and rows of plain strings, so that
html.py renders exactly the same content as HTML.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime

from tabulate import tabulate

# The cells shared with parity.py live in cells.py; imported here, they stay markdown's names too.
from .cells import NONE, checks_cell, dtype_key, fmt_num, ratio_cell, to_float
from .parity import parity_tables

PASS_ORDER = ("forward", "forward+backward")
ROOF_GAP = 0.5  # below this share of the binding roof, say how many times slower it is


# --- number formatting ---------------------------------------------------------------------------

def fmt_percent(share) -> str:
    """A share (0.42) as a percentage ("42%"); None is "—"."""
    share = to_float(share)
    return NONE if share is None else f"{fmt_num(share * 100)}%"


def fmt_time(seconds) -> str:
    """A duration in human units: ns, µs, ms or s, 3 significant digits."""
    seconds = to_float(seconds)
    if seconds is None or not math.isfinite(seconds):
        return fmt_num(seconds)
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(seconds) >= scale:
            return f"{fmt_num(seconds / scale)} {unit}"
    return f"{fmt_num(seconds / 1e-9)} ns"


def fmt_size(size) -> str:
    """A shape as "1024×128"."""
    return "×".join(str(n) for n in size) if size else "()"


def elements_of(size) -> int:
    """The number of elements of a shape."""
    return math.prod(size) if size else 1


def fmt_ratio(row: dict) -> str:
    """A speed row's median against its baseline candidate's: "1.00 (baseline)", "3.2× slower"."""
    ratio = to_float(row.get("ratio_to_baseline"))
    if row.get("baseline") is not None and row.get("baseline") == row.get("candidate"):
        return "1.00 (baseline)"
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        return fmt_num(row.get("ratio_to_baseline"))
    if ratio >= 1.05:
        return f"{fmt_num(ratio)}× slower"
    if ratio <= 0.95:
        return f"{fmt_num(ratio)}× ({fmt_num(1 / ratio)}× faster)"
    return f"{fmt_num(ratio)}× (on par)"


def fmt_attained(row: dict) -> str:
    """The share of the binding roof a candidate reaches (roof time / median time), with the gap
    spelled out when it is large: "4.1% (24× below roof)"."""
    roof_s, median_s = to_float(row.get("roof_s")), to_float(row.get("median_s"))
    if roof_s is None or median_s is None or median_s <= 0 or not math.isfinite(median_s):
        return NONE
    attained = roof_s / median_s
    text = fmt_percent(attained)
    if attained < ROOF_GAP and attained > 0:
        text += f" ({fmt_num(1 / attained)}× below roof)"
    return text


# --- shared pieces -------------------------------------------------------------------------------

def region_key(region: str):
    """Sort key: region "all" first, then the case regions by name."""
    return (region != "all", region)


def pass_key(name: str):
    """Sort key: forward before forward+backward."""
    return (PASS_ORDER.index(name), "") if name in PASS_ORDER else (len(PASS_ORDER), name)


def candidate_labels(summary: dict) -> list[str]:
    """Candidate labels in the summary's order, then any label only the results name."""
    labels = [c["label"] for c in summary.get("candidates", [])]
    for section in ("accuracy", "speed", "error_samples", "failures"):
        for row in summary.get(section, []):
            if row.get("candidate") not in labels and row.get("candidate") is not None:
                labels.append(row["candidate"])
    return labels


def format_date(stamp) -> str:
    """An ISO timestamp as "2026-11-26 14:00 UTC" (anything unparsable as given)."""
    try:
        moment = datetime.fromisoformat(str(stamp))
    except ValueError:
        return str(stamp or NONE)
    return moment.strftime("%Y-%m-%d %H:%M") + (f" {moment.tzname()}" if moment.tzinfo else "")


def run_facts(summary: dict) -> list[tuple[str, str]]:
    """The run's identity as (name, value) pairs: command, seed, profile, versions, date."""
    run = summary.get("run", {})
    facts = [("command", run.get("command")), ("seed", run.get("seed")),
             ("profile", run.get("profile")), ("torch", run.get("torch")),
             ("numpy", run.get("numpy")), ("python", run.get("python")),
             ("platform", run.get("platform")), ("date", format_date(summary.get("generated"))),
             ("known deviations", deviations_fact(run))]
    return [(name, str(value)) for name, value in facts if value not in (None, "")]


def deviations_fact(run: dict) -> str | None:
    """What the run's settings say of the known deviations (None where no alias has any)."""
    deviations = run.get("deviations")
    if not deviations:
        return None
    versions = ", ".join(deviations.get("verified_on") or []) or "(none recorded)"
    if not deviations.get("applied", True):
        return f"not applied (--no-known-deviations); verified on torch {versions}"
    return deviations.get("note") or f"verified on torch {versions}, the torch of this run"


def first_line(text) -> str:
    """The first non-empty line of a message; a line ending in ":" ("... does not conform:")
    announces the next one, which is then appended."""
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return lines[0] if lines else ""


# --- table builders ------------------------------------------------------------------------------

def candidates_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """One row per candidate: label, impl, framework, version, device, losses provided/missing."""
    keys = ("label", "impl", "framework", "version", "device")
    headers = ["candidate", "impl", "framework", "version", "device", "provides", "missing"]
    rows = []
    for candidate in summary.get("candidates", []):
        rows.append([str(candidate.get(key) or NONE) for key in keys]
                    + [", ".join(candidate.get("provides") or []) or NONE,
                       ", ".join(candidate.get("missing") or []) or "none"])
    return headers, rows


def accuracy_tables(summary: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per loss: (loss, headers, rows), one row per (dtype, region), candidates side by side."""
    labels = candidate_labels(summary)
    by_loss = defaultdict(dict)  # loss -> (dtype, region) -> candidate -> row
    for row in summary.get("accuracy", []):
        by_loss[row["loss"]].setdefault((row["dtype"], row["region"]), {})[row["candidate"]] = row
    tables = []
    for loss in sorted(by_loss):
        cells = by_loss[loss]
        present = [label for label in labels if any(label in group for group in cells.values())]
        headers = ["dtype", "region"]
        for label in present:
            headers += [f"{label} checks", f"{label} max ulp", f"{label} p99 ulp",
                        f"{label} max ratio"]
        rows = []
        for dtype, region in sorted(cells, key=lambda k: (dtype_key(k[0]), region_key(k[1]))):
            line = [dtype, region]
            for label in present:
                row = cells[(dtype, region)].get(label)
                if row is None:
                    line += [NONE] * 4
                else:
                    checks = row.get("checks", {})
                    line += [checks_cell(checks), fmt_num(row.get("max_ulp")),
                             fmt_num(row.get("p99_ulp")), ratio_cell(row.get("max_ratio"), checks)]
            rows.append(line)
        tables.append((loss, headers, rows))
    return tables


def failure_entries(summary: dict) -> list[dict]:
    """The failures, each with its message reduced to its first line under "headline"."""
    return [dict(failure, headline=first_line(failure.get("message")))
            for failure in summary.get("failures", [])]


def fault_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Faults of the candidates' processes (crash, hang, nondeterminism), each named once per
    candidate and kind: how many tests it failed, the first of them, its message and case."""
    groups = defaultdict(list)
    for failure in summary.get("failures", []):
        if failure.get("fault"):
            groups[(failure.get("candidate"), failure["fault"])].append(failure)
    order = {label: i for i, label in enumerate(candidate_labels(summary))}
    headers = ["candidate", "fault", "tests", "first", "message", "case"]
    rows = []
    for (label, fault), failures in sorted(groups.items(), key=lambda item: (
            order.get(item[0][0], len(order)), item[0][1])):
        first = failures[0]
        rows.append([str(label), fault, str(len(failures)), str(first.get("test")),
                     first_line(first.get("message")) or NONE, str(first.get("case") or NONE)])
    return headers, rows


def outcome_table(summary: dict, outcome: str) -> tuple[list[str], list[list[str]]]:
    """Tests with ``outcome`` ("skipped", "xfailed") counted per candidate, loss and reason.

    Read from summary["tests"]; a summary without per-test outcomes falls back, for skips, on the
    accuracy rows of region "all" (the other regions count the same checks again)."""
    counts = Counter()
    for test in summary.get("tests", {}).values():
        if test.get("outcome") == outcome:
            counts[(test.get("candidate"), test.get("loss"), first_line(test.get("reason")))] += 1
    if not counts and outcome == "skipped" and not summary.get("tests"):
        for row in summary.get("accuracy", []):
            if row.get("region") == "all":
                for reason, count in (row.get("skipped_reasons") or {}).items():
                    counts[(row["candidate"], row["loss"], first_line(reason))] += count
    order = {label: i for i, label in enumerate(candidate_labels(summary))}
    keys = sorted(counts, key=lambda k: (order.get(k[0], len(order)), str(k[1]), k[2]))
    headers = ["candidate", "loss", "reason", "tests"]
    rows = []
    for label, loss, reason in keys:
        rows.append([str(label or NONE), str(loss or NONE), reason or NONE,
                     str(counts[(label, loss, reason)])])
    return headers, rows


def compute_roofs_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """The measured compute roofs: loss, dtype, elements/s, what work that counts and the
    ladder's typical inputs."""
    rows = []
    for key, roof in (summary.get("machine", {}).get("compute") or {}).items():
        loss, _, dtype = key.partition("/")
        rows.append([loss, dtype or NONE, f"{fmt_num(roof.get('elements_per_s'))} elements/s",
                     str(roof.get("work") or NONE), str(roof.get("inputs") or NONE)])
    rows.sort(key=lambda r: (r[0], dtype_key(r[1])))
    return ["loss", "dtype", "compute roof", "work", "typical inputs"], rows


def matmul_roofs_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """The measured matrix-product roofs: dtype, flop/s."""
    rows = [[dtype, f"{fmt_num((roof or {}).get('flops_per_s'))} flop/s",
             str((roof or {}).get("work") or NONE)]
            for dtype, roof in (summary.get("machine", {}).get("matmul") or {}).items()]
    rows.sort(key=lambda r: dtype_key(r[0]))
    return ["dtype", "matrix-product roof", "measured as"], rows


def fmt_bytes(value) -> str:
    """A byte count in binary units: "512 KiB", "1.5 GiB"; None is "—"."""
    value = to_float(value)
    if value is None or not math.isfinite(value):
        return NONE
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(value) >= scale:
            return f"{fmt_num(value / scale)} {unit}"
    return f"{fmt_num(value)} B"


def variant_of(row: dict) -> str:
    """A speed row's option variant ("typical" for summaries written before variants)."""
    return row.get("variant") or "typical"


def fmt_case(row: dict) -> str:
    """The size of a speed row, with its option variant when it is not the typical call:
    "1024×1000", "1024×1000, weighted"."""
    variant = variant_of(row)
    return fmt_size(row["size"]) + ("" if variant == "typical" else f", {variant}")


def _case_key(row: dict):
    variant = variant_of(row)
    return (elements_of(row["size"]), tuple(row["size"]), variant != "typical", variant)


def fmt_vs_baseline(row: dict) -> str:
    """fmt_ratio, with the spread of the round-by-round ratios where it is wider than 5%."""
    text = fmt_ratio(row)
    low, high = to_float(row.get("ratio_q10")), to_float(row.get("ratio_q90"))
    ratio = to_float(row.get("ratio_to_baseline"))
    if None not in (low, high, ratio) and ratio > 0 and (high - low) / ratio > 0.05:
        text += f" [{fmt_num(low)}–{fmt_num(high)}]"
    return text


def speed_tables(summary: dict) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """Per (loss, dtype): (loss, dtype, headers, rows), one row per size (and option variant),
    pass and candidate.

    Size, pass and binding roof are the same for every candidate of a group: written once. The
    matrix-product roof's column is there only for losses that have one."""
    order = {label: i for i, label in enumerate(candidate_labels(summary))}
    groups = defaultdict(list)
    for row in summary.get("speed", []):
        groups[(row["loss"], row["dtype"])].append(row)
    tables = []
    for loss, dtype in sorted(groups, key=lambda k: (k[0], dtype_key(k[1]))):
        matmul = any(row.get("flops") for row in groups[(loss, dtype)])
        headers = (["size", "pass", "binding roof", "candidate", "median", "peak memory",
                    "GB/s", "% memory BW", "% compute roof"] + (["% matmul roof"] if matmul
                                                                  else [])
                   + ["roof attained", "vs baseline"])
        rows, previous = [], None
        for row in sorted(groups[(loss, dtype)], key=lambda r: (
                _case_key(r), pass_key(r["pass"]), order.get(r["candidate"], len(order)))):
            group = (_case_key(row), row["pass"])
            roof = f"{row['roof']}, {fmt_time(row.get('roof_s'))}" if row.get("roof") else NONE
            lead = [fmt_case(row), row["pass"], roof] if group != previous else ["", "", ""]
            previous = group
            rows.append(lead + [row["candidate"], fmt_time(row.get("median_s")),
                                fmt_bytes(row.get("peak_bytes")), fmt_num(row.get("gbs")),
                                fmt_percent(row.get("bandwidth_share")),
                                fmt_percent(row.get("compute_share"))]
                        + ([fmt_percent(row.get("matmul_share"))] if matmul else [])
                        + [fmt_attained(row), fmt_vs_baseline(row)])
        tables.append((loss, dtype, headers, rows))
    return tables


def fastest_tables(summary: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per loss timed for two candidates or more: (loss, headers, rows), one row per dtype,
    size (and variant) and pass: the fastest candidate, by how much, and the memory of both."""
    from .summary import speed_fastest

    entries = summary.get("speed_fastest")
    if entries is None:  # a summary written before the field
        entries = speed_fastest(summary.get("speed", []))
    by_loss = defaultdict(list)
    for entry in entries:
        by_loss[entry["loss"]].append(entry)
    headers = ["dtype", "size", "pass", "fastest", "median", "peak memory", "runner-up",
               "runner-up median", "runner-up memory"]
    tables = []
    for loss in sorted(by_loss):
        rows = []
        for e in sorted(by_loss[loss], key=lambda e: (dtype_key(e["dtype"]), _case_key(e),
                                                      pass_key(e["pass"]))):
            by = to_float(e.get("times_faster"))
            fastest = e["fastest"] + (f" ({fmt_num(by)}× faster)" if by and by >= 1.05 else
                                      " (on par)" if by else "")
            rows.append([e["dtype"], fmt_case(e), e["pass"], fastest, fmt_time(e["median_s"]),
                         fmt_bytes(e.get("peak_bytes")), e["runner_up"],
                         fmt_time(e.get("runner_up_median_s")),
                         fmt_bytes(e.get("runner_up_peak_bytes"))])
        tables.append((loss, headers, rows))
    return tables


# --- markdown ------------------------------------------------------------------------------------

def md_code(text: str) -> str:
    """Inline code that survives backticks inside ``text``."""
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table; pipes and newlines in cells are escaped."""
    def clean(cell):
        return str(cell).replace("\n", " ").replace("|", "\\|")
    return tabulate([[clean(c) for c in row] for row in rows], [clean(h) for h in headers],
                    tablefmt="github", disable_numparse=True)


def run_line(summary: dict) -> str:
    """The run in one markdown line: command, seed, profile, versions and date."""
    facts = dict(run_facts(summary))
    parts = [md_code(facts.pop("command"))] if "command" in facts else []
    facts.pop("platform", None)
    facts.pop("python", None)
    parts += [f"{name} {value}" for name, value in facts.items()]
    return "Run: " + " · ".join(parts)


PARITY_LEGEND = ("The same implementation on two devices, per loss and dtype (all regions): "
                 "checks, worst error and whether the verdicts agree.")
ACCURACY_LEGEND = ("Checks are counted passed/failed/skipped; ulp errors are in units of the dtype "
                   "under test; max ratio is the worst error over the allowed error (above 1 "
                   "fails, marked ✗, unless only known deviations exceed it: xfail).")


def accuracy_markdown(summary: dict) -> str:
    """accuracy.md: run, candidates, per-loss tables (candidates side by side), failures, skips."""
    out = ["# Accuracy", "", run_line(summary), "", "## Candidates", "",
           md_table(*candidates_table(summary)), "", "## Accuracy per loss", "",
           ACCURACY_LEGEND, ""]
    tables = accuracy_tables(summary)
    for loss, headers, rows in tables:
        out += [f"### {loss}", "", md_table(headers, rows), ""]
    if not tables:
        out += ["No accuracy results.", ""]
    parity = parity_tables(summary)
    if parity:
        out += ["## CPU–CUDA parity", "", PARITY_LEGEND, ""]
        for title, headers, rows in parity:
            out += [f"### {title}", "", md_table(headers, rows), ""]
    failures = failure_entries(summary)
    headers, rows = fault_table(summary)
    if rows:
        out += ["## Faults", "", "Crashes, hangs and nondeterminism of the candidates' processes, "
                "each once (every test they failed is under Failures).", "",
                md_table(headers, rows), ""]
    out += ["## Failures", ""]
    for failure in failures:
        out += [f"### {md_code(failure.get('test', NONE))}", "",
                f"- {failure.get('candidate')} · {failure.get('loss')} · {failure.get('dtype')}",
                f"- {failure['headline'] or NONE}"]
        if failure.get("case"):
            out.append(f"- case: {md_code(failure['case'])}")
        if failure.get("repro"):
            out.append(f"- reproducer: [{failure['repro']}]({failure['repro']})")
        if failure.get("rerun"):
            out += ["", "```sh", failure["rerun"], "```"]
        out.append("")
    if not failures:
        out += ["None.", ""]
    headers, rows = outcome_table(summary, "skipped")
    out += ["## Skipped", "", md_table(headers, rows) if rows else "None.", ""]
    headers, rows = outcome_table(summary, "xfailed")
    if rows:
        out += ["## Known deviations (xfailed)", "", md_table(headers, rows), ""]
    return "\n".join(out)


def memory_roof_line(summary: dict) -> str:
    """The measured memory bandwidth, the threads and the memory method in words."""
    machine = summary.get("machine", {})
    bandwidth = machine.get("memory_bandwidth_gbs")
    text = (f"Memory bandwidth: {fmt_num(bandwidth)} GB/s." if bandwidth is not None
            else "Memory bandwidth: not measured.")
    if machine.get("threads"):
        text += f" Timed with {machine['threads']} torch thread(s)."
    if machine.get("memory_method"):
        text += f" Peak memory (CPU): {machine['memory_method']}."
    return text


SPEED_LEGEND = ("Median of the repeats, timed in interleaved rounds (every candidate and pass "
                "one block per round). Peak memory: the most the call held at once, above what "
                "was held before it (on CUDA, the allocator's peak). The binding roof is the "
                "machine's limit at that size (memory: bytes moved at full bandwidth; compute: "
                "the loss's elementwise work at the measured rate; matmul: its matrix products "
                "at the measured rate); roof attained = the time that roof allows / the median, "
                "so 100% is as fast as this machine can go. vs baseline: the median of the "
                "round-by-round ratios to the first candidate, with their q10–q90 spread where "
                "it exceeds 5%. Sizes with a name after them are the ladder's option variants.")
FASTEST_LEGEND = ("Per size and pass, the fastest candidate and how many times faster than the "
                  "runner-up (from the round-by-round ratios to the baseline).")


def speed_markdown(summary: dict) -> str:
    """speed.md: machine roofs, then per loss and dtype the candidates' times against the roofs."""
    out = ["# Speed", "", run_line(summary), ""]
    if not summary.get("speed"):
        return "\n".join(out + ["No speed figures (run with --speed).", ""])
    out += ["## Machine roofs", "", memory_roof_line(summary), ""]
    for headers, rows in (compute_roofs_table(summary), matmul_roofs_table(summary)):
        if rows:
            out += [md_table(headers, rows), ""]
    fastest = fastest_tables(summary)
    if fastest:
        out += ["## Fastest per size", "", FASTEST_LEGEND, ""]
        for loss, headers, rows in fastest:
            out += [f"### {loss}", "", md_table(headers, rows), ""]
    out += ["## Times and memory", "", SPEED_LEGEND, ""]
    for loss, dtype, headers, rows in speed_tables(summary):
        out += [f"### {loss}, {dtype}", "", md_table(headers, rows), ""]
    return "\n".join(out)
