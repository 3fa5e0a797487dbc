"""PNG plots from summary.json (version 1): error against input magnitude, time against size.

The error plots show each case's error over its allowed error (the ratio: 1 is the pass line), the
quantity a verdict is made of; a summary whose points carry no ratio (written before they did)
is plotted in ulps instead.

Figures are drawn on matplotlib's Agg canvas through ``Figure`` objects rather than pyplot: no
display is needed, the backend of the process the report is made in (pytest's) is left alone, and
no figure stays registered anywhere once saved.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from conformance.report.cells import dtype_key, to_float
from conformance.report.markdown import candidate_labels, elements_of, pass_key

FIGSIZE = (6.4, 4.0)
DPI = 100
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
PASS_STYLE = {"forward": "-", "forward+backward": "--"}
FAIL_EDGE = "#d62728"
PASS_LINE = "#2ca02c"
ROOF_COLOUR = "#7f7f7f"
CEILING_STYLE = {"memory": (0, (1, 1.5)), "compute": (0, (4, 1.5, 1, 1.5)),
                 "matmul": (0, (6, 2))}
SPEED_FIGSIZE = (10.4, 4.0)  # time against size | peak memory against size
SPEED_MARGINS = {"left": 0.07, "right": 0.985, "bottom": 0.12, "top": 0.9, "wspace": 0.22}


def safe_name(text: str) -> str:
    """``text`` reduced to [a-z0-9_] (anything else becomes "_")."""
    return re.sub(r"[^a-z0-9_]+", "_", str(text).lower()).strip("_") or "x"


def plot_filename(kind: str, loss: str, dtype: str) -> str:
    """The file name of the ``kind`` ("error" or "speed") plot of a loss and dtype."""
    return f"{kind}_{safe_name(loss)}_{safe_name(dtype)}.png"


# Fixed margins: tight_layout measures every tick label and doubled the cost of a report.
MARGINS = {"left": 0.11, "right": 0.97, "bottom": 0.12, "top": 0.9}


def new_figure(panels: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=FIGSIZE if panels == 1 else SPEED_FIGSIZE, dpi=DPI)
    FigureCanvasAgg(figure)
    if panels == 1:
        return figure, figure.add_subplot()
    return figure, figure.subplots(1, panels)


PALETTE_COLOURS = 64  # a plot holds a few flat colours and their anti-aliased edges


def _write_png(figure, path: Path) -> None:
    """The figure as a PNG of at most ``PALETTE_COLOURS`` colours: a third of the bytes of
    matplotlib's 24-bit PNG, no visible difference for these plots (flat colours, thin lines),
    and a third of the size of a report's HTML, which embeds every plot."""
    from PIL import Image

    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())
    image = Image.fromarray(pixels[..., :3], "RGB")
    image.quantize(colors=PALETTE_COLOURS, method=Image.Quantize.FASTOCTREE).save(path, "PNG")


def _colours(summary: dict) -> dict:
    from matplotlib import colormaps
    palette = colormaps["tab10"].colors
    return {label: palette[i % len(palette)] for i, label in enumerate(candidate_labels(summary))}


def _marker(labels: list, label: str) -> str:
    return MARKERS[labels.index(label) % len(MARKERS)] if label in labels else MARKERS[0]


# --- error against input magnitude ---------------------------------------------------------------

def _edges(values: list[float | None], low_default: float, high_default: float):
    """Where to draw zeros (below the smallest positive value) and inf/nan (above the largest)."""
    # A decade beyond the data, in log10 (v / 10 of a subnormal is 0, v * 10 of 1e308 is inf),
    # kept inside the float64 range with room for the axis margin (finite values beyond the
    # ceiling are drawn on it: an error of 1e306 ulp reads as good as inf on this scale).
    exponents = [math.log10(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    low = min([math.log10(low_default)] + [e - 1 for e in exponents])
    high = max([math.log10(high_default)] + [e + 1 for e in exponents])
    return 10.0 ** max(low, -323), 10.0 ** min(high, 300)


def _decade_ticks(axis, low: float, high: float):
    """At most about 8 labelled decades between low and high. matplotlib's own log locator
    steps a stride past the view and overflows to inf when the range spans ~600 decades."""
    first, last = math.ceil(math.log10(low)), math.floor(math.log10(high))
    stride = max(1, math.ceil((last - first) / 8))
    axis.set_ticks([10.0 ** e for e in range(first, last + 1, stride)])
    from matplotlib.ticker import NullLocator

    axis.set_minor_locator(NullLocator())


SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _decade_label(value: float, _position=None) -> str:
    """"10³"-style text for a decade tick, "" for any other: plain unicode, because matplotlib's
    own log labels are mathtext, whose parser took half the time of a report's plots."""
    if not (math.isfinite(value) and value > 0):
        return ""
    exponent = round(math.log10(value))
    if not math.isclose(value, 10.0 ** exponent, rel_tol=1e-9):
        return ""
    return "10" + str(exponent).translate(SUPERSCRIPTS)


def _log_axes(axes) -> None:
    """Both axes logarithmic, labelled by ``_decade_label``."""
    from matplotlib.ticker import FuncFormatter

    axes.set_xscale("log")
    axes.set_yscale("log")
    for axis in (axes.xaxis, axes.yaxis):
        axis.set_major_formatter(FuncFormatter(_decade_label))
        axis.set_minor_formatter(FuncFormatter(lambda *_: ""))


def _is_zero(value: float | None) -> bool:
    return value is not None and value <= 0


def _not_finite(value: float | None) -> bool:
    return value is None or not math.isfinite(value)


def _place(value: float | None, low: float, high: float) -> float:
    if (_not_finite(value) and value != -math.inf) or value >= high:
        return high
    return low if value <= 0 else value


def _mark_edges(axes, low, high, xs: list, vertical: bool, low_text: str, high_text: str):
    """Dotted lines, labelled, where zeros and non-finite values are drawn (only if any are)."""
    for level, text, present in ((low, low_text, any(map(_is_zero, xs))),
                                 (high, high_text, any(map(_not_finite, xs)))):
        if not present:
            continue
        if vertical:
            axes.axvline(level, color=ROOF_COLOUR, linestyle=":", linewidth=0.8)
            axes.annotate(text, (level, 0.5), xycoords=("data", "axes fraction"), fontsize=7,
                          color="#555555", rotation=90, ha="right", va="center")
        else:
            axes.axhline(level, color=ROOF_COLOUR, linestyle=":", linewidth=0.8)
            axes.annotate(text, (0.01, level), xycoords=("axes fraction", "data"), fontsize=7,
                          color="#555555", va="bottom")


def point_ratio(point: list) -> float | None:
    """An error sample's error / allowed error: None where the point has none (a 3-element point
    from a summary written before points carried it, or a case judged without one)."""
    return to_float(point[3]) if len(point) > 3 else None


def shows_ratio(entries: list) -> bool:
    """Whether the error plot of these error-sample entries shows error / allowed error: where
    any point carries a ratio; else it shows max ulp error."""
    return any(point_ratio(p) is not None for entry in entries for p in entry.get("points", []))


def error_series(entry: dict, ratio: bool) -> list[tuple[float | None, float | None, bool]]:
    """An entry's points as (input magnitude, error, failing), unplaced: the error is the ratio
    where ``ratio`` (a point without one is left out), else max ulp."""
    series = []
    for point in entry.get("points", []):
        error = point_ratio(point) if ratio else to_float(point[1])
        if ratio and error is None:
            continue
        series.append((to_float(point[0]), error, len(point) > 2 and point[2] is False))
    return series


def error_plot(figure, axes, loss: str, dtype: str, entries: list, labels: list, colours: dict):
    """Draw one scatter cloud per candidate: input magnitude against error / allowed error, with
    the pass line at 1 (or against max ulp error, for points without a ratio); exact (zero)
    errors on a floor line, inf/nan errors on a ceiling line, failing points red-edged."""
    ratio = shows_ratio(entries)
    series = [error_series(entry, ratio) for entry in entries]
    x_values = [x for points in series for x, _, _ in points]
    y_values = [y for points in series for _, y, _ in points]
    x_low, x_high = _edges(x_values, 1e-3, 10)
    y_floor, y_top = _edges(y_values, 1e-3, 10)  # 1, the pass line, is always in range
    any_failing = False
    for entry, points in zip(entries, series):
        label = entry["candidate"]
        xs = [_place(x, x_low, x_high) for x, _, _ in points]
        ys = [_place(y, y_floor, y_top) for _, y, _ in points]
        failing = [bad for _, _, bad in points]
        any_failing |= any(failing)
        colour, marker = colours.get(label), _marker(labels, label)
        axes.scatter(xs, ys, s=22, marker=marker, color=colour, alpha=0.7, linewidths=0,
                     label=label)
        bad = [(x, y) for x, y, f in zip(xs, ys, failing) if f]
        if bad:
            axes.scatter(*zip(*bad), s=40, marker=marker, facecolors=colour,
                         edgecolors=FAIL_EDGE, linewidths=1.6)
    if any_failing:
        axes.scatter([], [], s=40, marker="o", facecolors="none", edgecolors=FAIL_EDGE,
                     linewidths=1.6, label="failing (red edge)")
    if ratio:  # labelled on the line itself: the legend's corner often overlaps it
        axes.axhline(1.0, color=PASS_LINE, linestyle="--", linewidth=1.2)
        axes.annotate("pass line: error = allowed", (0.99, 1.0), color=PASS_LINE, fontsize=7,
                      xycoords=("axes fraction", "data"), ha="right", va="bottom")
    _log_axes(axes)
    _mark_edges(axes, y_floor, y_top, y_values, False, "exact (0)" if ratio else "exact (0 ulp)",
                "inf / nan")
    _mark_edges(axes, x_low, x_high, x_values, True, "|x| = 0", "|x| inf / nan")
    axes.set_ylim(y_floor / 2, y_top * 3)
    axes.set_xlim(x_low / 2, x_high * 3)
    _decade_ticks(axes.yaxis, y_floor / 2, y_top * 3)
    _decade_ticks(axes.xaxis, x_low / 2, x_high * 3)
    axes.set_xlabel("input magnitude")
    axes.set_ylabel("error / allowed error (≤ 1 passes)" if ratio else "max error (ulp)")
    axes.set_title(f"{loss}, {dtype}: error against input magnitude", fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, 0.93))
    figure.subplots_adjust(**MARGINS)


# --- time against problem size -------------------------------------------------------------------

def _series(rows: list, value) -> list[tuple[float, float]]:
    """(elements, value(row)) per size, the first row of each size, sizes ascending."""
    seen = {}
    for row in rows:
        x, y = elements_of(row["size"]), value(row)
        if y is not None and math.isfinite(y) and y > 0 and x not in seen:
            seen[x] = y
    return sorted(seen.items())


def _per(amount, rate: float) -> float | None:
    amount = to_float(amount)
    return None if amount is None else amount / rate


def speed_plot(figure, axes, summary: dict, loss: str, dtype: str, rows: list, labels: list,
               colours: dict):
    """Draw median time against size per candidate and pass, with the roofline under them and
    each roof's own ceiling (memory, compute and, for matrix products, matmul). The typical
    call's rows only (the option variants are timed at one size)."""
    rows = [row for row in rows if (row.get("variant") or "typical") == "typical"]
    machine = summary.get("machine", {})
    bandwidth = to_float(machine.get("memory_bandwidth_gbs"))
    compute = to_float(((machine.get("compute") or {}).get(f"{loss}/{dtype}") or {})
                       .get("elements_per_s"))
    matmul = to_float(((machine.get("matmul") or {}).get(dtype) or {}).get("flops_per_s"))
    passes = sorted({row["pass"] for row in rows}, key=pass_key)
    ceiling_labels = {"memory": "memory-only ceiling", "compute": "compute-only ceiling",
                      "matmul": "matmul-only ceiling"}
    for name in passes:
        in_pass = [row for row in rows if row["pass"] == name]
        style = PASS_STYLE.get(name, "-.")
        roofs = sorted({row["roof"] for row in in_pass if row.get("roof")})
        roofline = _series(in_pass, lambda r: to_float(r.get("roof_s")))
        if roofline:
            axes.plot(*zip(*roofline), color=ROOF_COLOUR, linewidth=5, alpha=0.45, linestyle=style,
                      label=f"roofline, {name} ({' / '.join(roofs) or 'memory or compute'} bound)")
        ceilings = {"memory": (bandwidth, "bytes", 1e9), "compute": (compute, "elements", 1),
                    "matmul": (matmul, "flops", 1)}
        for kind, (rate, amount, unit) in ceilings.items():
            if not rate or rate <= 0:
                continue
            series = _series(in_pass, lambda r: _per(r.get(amount), rate * unit))
            if series:
                axes.plot(*zip(*series), color="#444444", linewidth=0.8,
                          linestyle=CEILING_STYLE[kind], label=ceiling_labels.pop(kind, None))
    for label in [c for c in labels if any(row["candidate"] == c for row in rows)]:
        for name in passes:
            mine = [row for row in rows if row["candidate"] == label and row["pass"] == name]
            series = _series(mine, lambda r: to_float(r.get("median_s")))
            if not series:
                continue
            colour = colours.get(label)
            axes.plot(*zip(*series), color=colour, linestyle=PASS_STYLE.get(name, "-."),
                      marker=_marker(labels, label), markersize=4, label=f"{label}, {name}")
            low = _series(mine, lambda r: to_float(r.get("q10_s")))
            high = _series(mine, lambda r: to_float(r.get("q90_s")))
            if len(low) == len(high) == len(series):
                axes.fill_between([x for x, _ in low], [y for _, y in low], [y for _, y in high],
                                  color=colour, alpha=0.15, linewidth=0)
    _log_axes(axes)
    axes.set_xlabel("problem size (elements)")
    axes.set_ylabel("median time (s)")
    axes.set_title(f"{loss}, {dtype}: time against size", fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=6.5, loc="lower right")


def memory_plot(axes, loss: str, dtype: str, rows: list, labels: list, colours: dict):
    """Draw peak memory against size per candidate and pass, over the bytes each pass moves
    (its inputs, output and gradients: the scale a call that holds nothing else would have)."""
    rows = [row for row in rows if (row.get("variant") or "typical") == "typical"]
    passes = sorted({row["pass"] for row in rows}, key=pass_key)
    drawn = False
    for name in passes:
        moved = _series([r for r in rows if r["pass"] == name], lambda r: to_float(r.get("bytes")))
        if moved:
            axes.plot(*zip(*moved), color=ROOF_COLOUR, linewidth=5, alpha=0.45,
                      linestyle=PASS_STYLE.get(name, "-."), label=f"bytes moved, {name}")
    for label in [c for c in labels if any(row["candidate"] == c for row in rows)]:
        for name in passes:
            mine = [row for row in rows if row["candidate"] == label and row["pass"] == name]
            series = _series(mine, lambda r: to_float(r.get("peak_bytes")))
            if series:
                drawn = True
                axes.plot(*zip(*series), color=colours.get(label),
                          linestyle=PASS_STYLE.get(name, "-."), marker=_marker(labels, label),
                          markersize=4, label=f"{label}, {name}")
    _log_axes(axes)
    axes.set_xlabel("problem size (elements)")
    axes.set_ylabel("peak memory (bytes)")
    axes.set_title(f"{loss}, {dtype}: peak memory against size"
                   + ("" if drawn else " (not measured)"), fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=6.5, loc="lower right")


def write_plots(summary: dict, plots_dir: Path) -> dict:
    """Write the error and speed plots into ``plots_dir`` (the report's plots/ directory).

    Returns {"error": [...], "speed": [...]}, paths relative to the report directory
    ("plots/error_<loss>_<dtype>.png"), one error plot per (loss, dtype) with error samples and
    one speed plot per (loss, dtype) with speed rows. Where there are many, a second Python
    process draws every other one: matplotlib draws on one core, and the plots took a tenth of
    a run's time."""
    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    jobs = plot_jobs(summary, plots_dir)
    if len(jobs) < PARALLEL_PLOTS:
        draw_plots(jobs)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            helper = _start_helper(jobs[1::2], Path(scratch) / "jobs.pickle")
            try:
                draw_plots(jobs[0::2] if helper else jobs)
            finally:
                if helper and helper.wait() != 0:
                    draw_plots(jobs[1::2])  # the helper failed: draw its share here
    result = {"error": [], "speed": []}
    for job in jobs:
        result[job["kind"]].append(f"{plots_dir.name}/{job['path'].name}")
    return result


PARALLEL_PLOTS = 8  # fewer plots than this are not worth starting a second Python


def plot_jobs(summary: dict, plots_dir: Path) -> list[dict]:
    """Every plot of a summary as a self-contained job for ``draw_plots``: its kind, loss,
    dtype, data and file path (two names that sanitize alike get _2, _3, ...)."""
    labels, colours, written = candidate_labels(summary), _colours(summary), set()
    machine = summary.get("machine", {})
    jobs = []
    samples = defaultdict(list)
    for entry in summary.get("error_samples", []):
        if entry.get("points"):
            samples[(entry["loss"], entry["dtype"])].append(entry)
    for loss, dtype in sorted(samples, key=lambda k: (k[0], dtype_key(k[1]))):
        entries = sorted(samples[(loss, dtype)], key=lambda e: _rank(labels, e["candidate"]))
        jobs.append({"kind": "error", "loss": loss, "dtype": dtype, "data": entries})
    speed = defaultdict(list)
    for row in summary.get("speed", []):
        speed[(row["loss"], row["dtype"])].append(row)
    for loss, dtype in sorted(speed, key=lambda k: (k[0], dtype_key(k[1]))):
        jobs.append({"kind": "speed", "loss": loss, "dtype": dtype, "data": speed[(loss, dtype)]})
    for job in jobs:
        name = _unique(plot_filename(job["kind"], job["loss"], job["dtype"]), written)
        job.update(path=plots_dir / name, labels=labels, colours=colours, machine=machine)
    return jobs


def _unique(name: str, written: set) -> str:
    stem, n = name[:-len(".png")], 2
    while name in written:  # two names that sanitize alike keep both plots
        name, n = f"{stem}_{n}.png", n + 1
    written.add(name)
    return name


def draw_plots(jobs: list[dict]) -> None:
    """Draw and write each job of ``plot_jobs``."""
    for job in jobs:
        loss, dtype, labels, colours = job["loss"], job["dtype"], job["labels"], job["colours"]
        if job["kind"] == "error":
            figure, axes = new_figure()
            with np.errstate(over="ignore"):  # autoscaling a log axis near 1e308 overflows
                error_plot(figure, axes, loss, dtype, job["data"], labels, colours)
        else:
            figure, (axes, memory_axes) = new_figure(panels=2)
            speed_plot(figure, axes, {"machine": job["machine"]}, loss, dtype, job["data"],
                       labels, colours)
            memory_plot(memory_axes, loss, dtype, job["data"], labels, colours)
            figure.subplots_adjust(**SPEED_MARGINS)
        _write_png(figure, job["path"])
        figure.clear()


def _start_helper(jobs: list[dict], pickled: Path):
    """A second Python drawing ``jobs`` (pickled to the file ``pickled``), or None if it
    cannot start. The package's own root goes at the end of its sys.path, in case the package
    is not installed (a checkout on PYTHONPATH is inherited as it is).

    Not a multiprocessing pool: its spawn and forkserver children import the main module
    again, which reruns a user's script that calls pytest.main() without a __main__ guard, and
    fork copies the reference's thread pool mid-run. A plain ``python -c`` imports only
    this module."""
    import pickle
    import subprocess
    import sys

    pickled.write_bytes(pickle.dumps(jobs))
    root = str(Path(__file__).resolve().parents[2])
    code = ("import sys; sys.path.append(sys.argv[1]); "
            "from conformance.report.plots import draw_pickled; draw_pickled(sys.argv[2])")
    try:
        return subprocess.Popen([sys.executable, "-c", code, root, str(pickled)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    except OSError:
        return None


def draw_pickled(path: str) -> None:
    """The helper's work: draw the jobs pickled in ``path`` (by ``_start_helper``)."""
    import pickle

    draw_plots(pickle.loads(Path(path).read_bytes()))


def _rank(labels: list, label: str) -> int:
    return labels.index(label) if label in labels else len(labels)

