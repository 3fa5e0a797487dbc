"""The renderers of conformance/report on a synthetic summary.json (version 1).

Two candidates (torch, numpy), two losses, float32 and float16, regions all/saturated/empty, one
failure, skips and an xfail, a loss torch does not provide (multi_hot), error samples (with their
error / allowed ratios) with exact (zero) errors, an inf, a nan and failing points, and speed rows
for 4 sizes x 2 passes x 2 candidates with their roofs. The Chromium tests open the page in
headless Chromium (skipped where playwright or chromium is missing).
"""

from __future__ import annotations

import base64
import copy
import math
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from browser import open_in_chromium

from conformance.report import overview as ov
from conformance.report import plots as plots_module
from conformance.report.html import render_html
from conformance.report.markdown import (accuracy_markdown, fmt_num, fmt_time, speed_markdown)
from conformance.report.plots import error_plot, new_figure, write_plots

MSML, MLML = "multilabel_soft_margin_loss", "multilabel_margin_loss"
RERUN = ("pytest conformance --impl=numpy --seed=0 --profile=default "
         "-k 'test_value[numpy-multilabel_soft_margin_loss-float16-mean]'")
BANDWIDTH_GBS = 20.0
COMPUTE_EPS = 4e9
SIZES = ([8, 16], [64, 128], [256, 1024], [1024, 4096])
PNG = b"\x89PNG\r\n\x1a\n"


def accuracy_row(candidate, loss, dtype, region, **overrides):
    row = {"candidate": candidate, "loss": loss, "dtype": dtype, "device": "cpu", "region": region,
           "checks": {"run": 12, "passed": 12, "failed": 0, "skipped": 0, "xfailed": 0},
           "skipped_reasons": {}, "examples": 240, "max_ulp": 1.0, "p99_ulp": 0.5,
           "max_rel": 6e-8, "p99_rel": 3e-8, "max_ratio": 0.031, "worst": None}
    row.update(overrides)
    return row


def accuracy_rows():
    rows = []
    for candidate in ("torch", "numpy"):
        for loss in (MSML, MLML):
            for dtype in ("float32", "float16"):
                for region in ("all", "saturated", "empty"):
                    rows.append(accuracy_row(candidate, loss, dtype, region,
                                             max_ulp=0.0 if region == "empty" else 2.0))
    unsupported = "unsupported dtype: torch has no float16 multilabel_margin_loss on CPU"
    for row in rows:
        if (row["candidate"], row["loss"], row["dtype"]) == ("torch", MLML, "float16"):
            row.update(checks={"run": 0, "passed": 0, "failed": 0, "skipped": 12, "xfailed": 0},
                       skipped_reasons={unsupported: 12}, examples=0, max_ulp=None,
                       p99_ulp=None, max_rel=None, p99_rel=None, max_ratio=None)
        if (row["candidate"], row["loss"], row["dtype"]) == ("numpy", MSML, "float16") \
                and row["region"] in ("all", "saturated"):
            row.update(checks={"run": 12, "passed": 11, "failed": 1, "skipped": 0, "xfailed": 0},
                       max_ulp="inf", p99_ulp=3.0, max_ratio="inf",
                       worst={"test": "test_value[numpy-multilabel_soft_margin_loss-float16-mean]",
                              "output": "output", "ulp": "inf", "case": "saturated",
                              "rerun": RERUN})
        if (row["candidate"], row["loss"], row["dtype"], row["region"]) == \
                ("torch", MSML, "float16", "all"):
            row.update(max_ratio=4.0, checks=dict(row["checks"], xfailed=1))
    return rows


def error_samples():
    samples = []
    for i, candidate in enumerate(("torch", "numpy")):
        for loss in (MSML, MLML):
            for dtype in ("float32", "float16"):
                # [input magnitude, max ulp, passed, error / allowed error]
                points = [[10.0 ** (k / 3 - 4), float((k * 7 + i) % 5), True,
                           (k * 7 + i) % 5 / 8] for k in range(20)]
                points[3][1] = points[3][3] = 0.0
                points[4][1] = points[4][3] = 0
                points[5][0] = 0.0  # an input of magnitude 0
                if (candidate, loss, dtype) == ("numpy", MSML, "float16"):
                    points += [[3e4, "inf", False, "inf"], [1e4, 4096.0, False, 512.0],
                               [2.0, "nan", False, "nan"]]
                samples.append({"candidate": candidate, "loss": loss, "dtype": dtype,
                                "points": points})
    return samples


def speed_rows():
    rows = []
    for size in SIZES:
        elements = size[0] * size[1]
        for name, work, bytes_each in (("forward", 1, 8), ("forward+backward", 3, 12)):
            memory_s = elements * bytes_each / (BANDWIDTH_GBS * 1e9)
            compute_s = elements * work / COMPUTE_EPS
            roof_s = max(memory_s, compute_s)
            for candidate, slowdown in (("torch", 1.0), ("numpy", 3.2)):
                median = (roof_s * 1.6 + 4e-6) * slowdown
                rows.append({
                    "candidate": candidate, "loss": MSML, "dtype": "float32", "device": "cpu",
                    "size": size, "pass": name, "median_s": median, "q10_s": median * 0.95,
                    "q90_s": median * 1.1, "repeats": 20, "bytes": elements * bytes_each,
                    "elements": elements * work, "gbs": elements * bytes_each / median / 1e9,
                    "bandwidth_share": elements * bytes_each / median / 1e9 / BANDWIDTH_GBS,
                    "compute_share": elements * work / median / COMPUTE_EPS,
                    "roof": "memory" if memory_s >= compute_s else "compute", "roof_s": roof_s,
                    "ratio_to_baseline": slowdown, "baseline": "torch",
                    "peak_bytes": int(elements * bytes_each * slowdown),
                    "memory_method": "rss"})
    return rows


def outcomes_by_test():
    tests = {}
    for candidate in ("torch", "numpy"):
        for loss in (MSML, MLML):
            for dtype in ("float32", "float16"):
                name = f"test_value[{candidate}-{loss}-{dtype}-mean]"
                tests[name] = {"candidate": candidate, "loss": loss, "dtype": dtype,
                               "check": "value", "outcome": "passed", "reason": "",
                               "duration_s": 0.5}
    tests[f"test_value[torch-{MLML}-float16-mean]"].update(
        outcome="skipped", reason="unsupported dtype: torch has no float16 multilabel_margin_loss")
    tests[f"test_gradient[torch-{MLML}-float16-mean]"] = dict(
        tests[f"test_value[torch-{MLML}-float16-mean]"], check="gradient")
    tests[f"test_value[numpy-{MSML}-float16-mean]"].update(outcome="failed",
                                                           reason="error exceeds the tolerance")
    tests[f"test_edge_value[torch-{MSML}-float16-sum-overflow]"] = {
        "candidate": "torch", "loss": MSML, "dtype": "float16", "check": "edge_value",
        "outcome": "xfailed", "reason": "known deviation: float16 sum formed in float16",
        "duration_s": 0.01}
    return tests


def make_summary():
    return {
        "version": 1,
        "generated": "2026-11-26T14:00:00+00:00",
        "run": {"command": "pytest conformance --impl=torch --impl=numpy --speed", "seed": 0,
                "profile": "default", "torch": "2.13.0", "numpy": "2.4.6", "python": "3.11.2",
                "platform": "Linux-x86_64", "speed": True},
        "candidates": [
            {"label": "torch", "impl": "torch", "framework": "torch", "version": "2.13.0",
             "device": "cpu", "provides": [MSML, MLML], "missing": ["multi_hot"]},
            {"label": "numpy", "impl": "numpy", "framework": "numpy", "version": "2.4.6",
             "device": "cpu", "provides": [MSML, MLML, "multi_hot"], "missing": []}],
        "machine": {"memory_bandwidth_gbs": BANDWIDTH_GBS,
                    "compute": {f"{MSML}/float32": {"elements_per_s": COMPUTE_EPS,
                                                    "work": "one exp and one log1p per element"}}},
        "tests": outcomes_by_test(),
        "accuracy": accuracy_rows(),
        "error_samples": error_samples(),
        "failures": [{"test": f"test_value[numpy-{MSML}-float16-mean]", "candidate": "numpy",
                      "loss": MSML, "dtype": "float16",
                      "message": f"{MSML} on numpy does not conform:\n"
                                 "    output: got inf where the exact result is finite\n"
                                 f"    reproduce: {RERUN}",
                      "rerun": RERUN, "repro": "repro/test_value_numpy_msml_float16.py"}],
        "speed": speed_rows(),
    }


@pytest.fixture
def summary():
    return make_summary()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report directory with the plots written once: (summary, report_dir, plots)."""
    summary = make_summary()
    report_dir = tmp_path_factory.mktemp("report")
    plots = write_plots(summary, report_dir / "plots")
    return summary, report_dir, plots


def section(text: str, heading: str) -> str:
    """The markdown from ``heading`` to the next heading of the same or a higher level."""
    start = text.index(heading)
    level = heading.split(" ")[0]
    following = re.search(rf"^#{{1,{len(level)}}} ", text[start + len(heading):], re.M)
    return text[start:start + len(heading) + (following.start() if following else len(text))]


# --- markdown ------------------------------------------------------------------------------------

def test_number_formatting():
    assert fmt_num(12345.6) == "1.23e4"
    assert fmt_num(0.000123456) == "0.000123"
    assert fmt_num(2.0) == "2"
    assert fmt_num(None) == "—"
    assert fmt_num("inf") == "inf" and fmt_num(float("nan")) == "nan"
    assert fmt_time(1.5e-5) == "15 µs" and fmt_time(0.25) == "250 ms" and fmt_time(3) == "3 s"


def test_accuracy_markdown_puts_candidates_side_by_side(summary):
    text = accuracy_markdown(summary)
    assert text.startswith("# Accuracy")
    run = text.splitlines()[2]
    for fact in ("pytest conformance --impl=torch", "seed 0", "profile default", "torch 2.13.0",
                 "numpy 2.4.6", "2026-11-26"):
        assert fact in run
    for loss in (MSML, MLML):
        table = section(text, f"### {loss}")
        header = table.splitlines()[2]
        assert "torch checks" in header and "numpy checks" in header
        assert header.index("torch max ulp") < header.index("numpy max ulp")
        lines = [line for line in table.splitlines() if line.startswith("| float16")]
        assert [line.split("|")[2].strip() for line in lines] == ["all", "empty", "saturated"]
    msml = section(text, f"### {MSML}")
    assert "11/1/0" in msml and "inf ✗" in msml
    assert "12/0/0 +1 xfail" in msml and "4 (xfail)" in msml  # a known deviation, not a failure
    mlml_f16 = [line for line in section(text, f"### {MLML}").splitlines()
                if line.startswith("| float16") and "| all" in line][0]
    assert "0/0/12" in mlml_f16 and "—" in mlml_f16  # torch declined float16: no figures


def test_accuracy_markdown_lists_failures_and_skips(summary):
    text = accuracy_markdown(summary)
    failures = section(text, "## Failures")
    assert "test_value[numpy-multilabel_soft_margin_loss-float16-mean]" in failures
    # the first line, and the line it announces
    assert f"{MSML} on numpy does not conform: output: got inf where the exact result is finite" \
        in failures
    assert "reproduce:" not in failures
    assert RERUN in failures
    assert "[repro/test_value_numpy_msml_float16.py](repro/test_value_numpy_msml_float16.py)" \
        in failures
    skipped = section(text, "## Skipped")
    assert "unsupported dtype: torch has no float16 multilabel_margin_loss" in skipped
    assert re.search(r"\|\s*2\s*\|", skipped)  # value and gradient: 2 tests
    assert "known deviation: float16 sum formed in float16" in section(text, "## Known deviations")


def test_speed_markdown_shows_roofs_and_ratios(summary):
    text = speed_markdown(summary)
    assert "Memory bandwidth: 20 GB/s" in text
    assert "4e9 elements/s" in text and "one exp and one log1p per element" in text
    table = section(text, f"### {MSML}, float32")
    assert "1.00 (baseline)" in table and "3.2× slower" in table
    assert "memory, " in table and "compute, " in table  # the binding roof at each size
    assert "below roof" in table  # small sizes are far from the roof: said so
    assert "µs" in table and "ms" in table
    candidate_rows = [line for line in table.splitlines()
                      if re.search(r"\| (torch|numpy) +\|", line)]
    assert len(candidate_rows) == 16  # 4 sizes x 2 passes x 2 candidates
    assert "peak memory" in table and "MiB" in table  # memory beside the time
    fastest = section(text, "## Fastest per size")
    assert fastest.count("torch (3.2× faster)") == 8  # every size and pass: torch, by 3.2


def test_speed_markdown_without_speed(summary):
    summary["speed"] = []
    text = speed_markdown(summary)
    assert "No speed figures (run with --speed)." in text
    assert "|" not in text


def test_renderers_accept_an_empty_run(tmp_path):
    empty = {"version": 1, "generated": "2026-11-26T14:00:00+00:00", "run": {}, "candidates": [],
             "machine": {"memory_bandwidth_gbs": None, "compute": {}}, "tests": {},
             "accuracy": [], "error_samples": [], "failures": [], "speed": []}
    assert "No accuracy results." in accuracy_markdown(empty)
    assert write_plots(empty, tmp_path / "plots") == {"error": [], "speed": []}
    page = render_html(empty, tmp_path, {"error": [], "speed": []})
    assert "No speed figures" in page and "<img" not in page


# --- plots ---------------------------------------------------------------------------------------

def test_write_plots_writes_one_png_per_loss_and_dtype(report):
    _, report_dir, plots = report
    assert sorted(plots["error"]) == sorted(f"plots/error_{loss}_{dtype}.png"
                                            for loss in (MSML, MLML)
                                            for dtype in ("float32", "float16"))
    assert plots["speed"] == [f"plots/speed_{MSML}_float32.png"]
    for path in plots["error"] + plots["speed"]:
        data = (report_dir / path).read_bytes()
        assert data.startswith(PNG)
        assert 5_000 < len(data) < 200_000


def _many_plots_summary() -> dict:
    """A summary with enough error plots (one per loss copy) for write_plots to share them
    with a second process."""
    summary = make_summary()
    copies = plots_module.PARALLEL_PLOTS
    summary["error_samples"] = [dict(entry, loss=f"{entry['loss']}_{n}")
                                for n in range(copies) for entry in summary["error_samples"]]
    return summary


def test_a_second_process_draws_every_other_plot_byte_for_byte(tmp_path, monkeypatch):
    """Past PARALLEL_PLOTS plots, a helper process draws every other one: this process draws
    only its own half, and every file is the one a single process draws."""
    summary = _many_plots_summary()
    alone = tmp_path / "alone" / "plots"
    alone.mkdir(parents=True)
    plots_module.draw_plots(plots_module.plot_jobs(summary, alone))
    drawn_here = []
    draw = plots_module.draw_plots
    monkeypatch.setattr(plots_module, "draw_plots",
                        lambda jobs: (drawn_here.extend(jobs), draw(jobs)))
    plots = write_plots(summary, tmp_path / "shared" / "plots")
    names = sorted(p.name for p in alone.iterdir())
    assert len(names) == len(plots["error"]) + len(plots["speed"]) > plots_module.PARALLEL_PLOTS
    assert len(drawn_here) == (len(names) + 1) // 2
    for name in names:
        assert (tmp_path / "shared" / "plots" / name).read_bytes() == (alone / name).read_bytes()


def test_plots_a_failed_helper_left_are_drawn_here(tmp_path, monkeypatch):
    summary = _many_plots_summary()
    monkeypatch.setattr(plots_module, "_start_helper", lambda jobs, pickled: subprocess.Popen(
        [sys.executable, "-c", "raise SystemExit(3)"]))
    plots = write_plots(summary, tmp_path / "plots")
    assert len(plots["error"]) > plots_module.PARALLEL_PLOTS
    for path in plots["error"]:
        assert (tmp_path / path).read_bytes().startswith(PNG)


# --- html ----------------------------------------------------------------------------------------

def test_render_html_is_self_contained(report):
    summary, report_dir, plots = report
    page = render_html(summary, report_dir, plots)
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    # 2 overview matrices; candidates, 2 losses, skipped, xfailed, compute roofs, fastest per
    # size, 1 speed table
    assert page.count('<table class="matrix">') == 2
    assert page.count("<table>") == 8
    for path in plots["error"] + plots["speed"]:
        encoded = base64.b64encode((report_dir / path).read_bytes()).decode("ascii")
        assert f'src="data:image/png;base64,{encoded}"' in page
    assert page.count("<img ") == len(plots["error"]) + len(plots["speed"])
    assert "http://" not in page and "https://" not in page
    assert re.findall(r"<script\b[^>]*>", page) == ["<script>"]  # one, inline: the filter
    assert '<a href="repro/test_value_numpy_msml_float16.py">' in page
    assert '<a href="summary.json">' in page
    assert "3.2× slower" in page and "1.00 (baseline)" in page
    for anchor in ("#run", "#candidates", "#accuracy", "#failures", "#skipped", "#speed"):
        assert f'href="{anchor}"' in page


def test_render_html_escapes_user_strings(report):
    summary, report_dir, _ = report
    summary = copy.deepcopy(summary)
    summary["candidates"][1]["impl"] = "tests/<b>odd</b>.py"
    summary["failures"][0]["message"] = "<script>alert(1)</script>\nmore"
    summary["failures"][0]["repro"] = "javascript:alert(1)"
    page = render_html(summary, report_dir, {"error": [], "speed": []})
    assert page.count("<script") == 1 and "<b>odd" not in page  # the filter's script only
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "javascript:" not in page.split("<body>")[1].replace("&lt;", "")  # no unsafe link
    assert 'href="javascript' not in page


def test_html_opens_cleanly_in_chromium(report, tmp_path):
    summary, report_dir, plots = report
    index = tmp_path / "index.html"
    index.write_text(render_html(summary, report_dir, plots), encoding="utf-8")
    page = open_in_chromium(index)
    assert page.errors == []
    assert len(page.images) == len(plots["error"]) + len(plots["speed"])
    assert all(width > 0 for width in page.images)
    assert page.tables == 10  # 8 and the 2 overview matrices
    assert MSML in page.headings and MLML in page.headings
    assert all(url.startswith(("file:", "data:")) for url in page.requests), page.requests


def test_error_plot_survives_the_ends_of_the_float64_range(tmp_path):
    summary = {"candidates": [{"label": "torch"}], "speed": [],
               "machine": {"memory_bandwidth_gbs": None, "compute": {}},
               "error_samples": [{"candidate": "torch", "loss": "l1_loss", "dtype": "float64",
                                  "points": [[5e-324, 1.0, True], [1e308, 0.0, True],
                                             [1.0, "inf", False], [0.0, 3.0, True],
                                             # ulps of a subnormal exact value: huge, finite
                                             [1.26, 1.29e306, True], [0.05, 5e-324, True]]}]}
    plots = write_plots(summary, tmp_path / "plots")
    assert (tmp_path / plots["error"][0]).read_bytes().startswith(PNG)


def _device_summary():
    """torch on the CPU and on CUDA (and numpy, which has no twin): l1_loss agrees, mse_loss
    fails on CUDA only, huber_loss ran on the CPU only."""
    def row(label, loss, failed, ulp, ratio):
        return {"candidate": label, "loss": loss, "dtype": "float32", "region": "all",
                "checks": {"passed": 10 - failed, "failed": failed, "skipped": 0, "xfailed": 0,
                           "run": 10}, "max_ulp": ulp, "p99_ulp": ulp, "max_ratio": ratio}
    candidates = [{"label": "torch", "impl": "torch", "framework": "torch", "device": "cpu"},
                  {"label": "torch-cuda", "impl": "torch-cuda", "framework": "torch",
                   "device": "cuda"},
                  {"label": "numpy", "impl": "numpy", "framework": "numpy", "device": "cpu"}]
    accuracy = [row("torch", "l1_loss", 0, 0.5, 0.1), row("torch-cuda", "l1_loss", 0, 1.0, 0.2),
                row("torch", "mse_loss", 0, 0.5, 0.1), row("torch-cuda", "mse_loss", 2, 40, 3.5),
                row("torch", "huber_loss", 0, 0.5, 0.1), row("numpy", "l1_loss", 0, 0.5, 0.1)]
    return {"candidates": candidates, "accuracy": accuracy, "error_samples": [],
            "failures": [], "speed": [], "tests": {}}


def test_parity_view_sets_one_implementation_on_two_devices_side_by_side(tmp_path):
    summary = _device_summary()
    text = accuracy_markdown(summary)
    assert "## CPU–CUDA parity" in text and "### torch (cpu) vs torch-cuda (cuda)" in text
    section = text.split("## CPU–CUDA parity")[1].split("## Failures")[0]
    lines = {line.split("|")[1].strip(): line for line in section.splitlines()
             if line.startswith("| ") and line.split("|")[1].strip() != "loss"}
    assert lines["l1_loss"].rstrip(" |").endswith("agree")
    assert "differ: torch passes, torch-cuda fails" in lines["mse_loss"]
    assert "3.5 ✗" in lines["mse_loss"]
    assert lines["huber_loss"].rstrip(" |").endswith("—")  # not run on CUDA
    assert "numpy" not in section  # no twin on another device
    page = render_html(summary, tmp_path, {"error": [], "speed": []})
    assert "CPU–CUDA parity" in page and "differ: torch passes, torch-cuda fails" in page


def test_no_parity_view_without_two_devices(summary):
    assert "parity" not in accuracy_markdown(summary)


# --- the overview, the filter, the ratio plots ---------------------------------------------------

class OverviewCells(HTMLParser):
    """The overview's cells: {(candidate, loss, column header): (state, href, text)}."""

    def __init__(self, page: str):
        super().__init__()
        self.cells, self.columns = {}, []
        self.candidate = self.loss = self.cell = self.in_head = None
        self.feed(page[page.index('<section id="overview">'):page.index('<section id="failures"')])

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and "data-candidate" in attrs:
            self.candidate, self.columns = attrs["data-candidate"], []
        elif tag == "thead":
            self.in_head = True
        elif tag == "tr" and "data-loss" in attrs:
            self.loss, self.column = attrs["data-loss"], 0
        elif tag == "td" and self.loss:
            self.column += 1
            self.cell = [attrs.get("data-state"), None, ""]
            self.cells[(self.candidate, self.loss, self.columns[self.column])] = self.cell
        elif tag == "a" and self.cell is not None:
            self.cell[1] = attrs.get("href")

    def handle_endtag(self, tag):
        if tag == "thead":
            self.in_head = False
        elif tag == "td":
            self.cell = None

    def handle_data(self, data):
        if self.in_head and data.strip():
            self.columns.append(data.strip())
        elif self.cell is not None:
            self.cell[2] += data


def test_the_page_opens_on_the_overview_then_the_failures_then_the_detail(report):
    page = render_html(*report)
    sections = re.findall(r'<section id="([^"]+)"', page)
    assert sections[:2] == ["overview", "failures"]
    assert sections.index("accuracy") < sections.index("speed") < sections.index("skipped")
    assert page.index("<main>") < page.index('<section id="overview">')
    failures = page[page.index('<section id="failures">'):page.index('<section id="accuracy">')]
    assert "test_value[numpy-multilabel_soft_margin_loss-float16-mean]" in failures


def test_overview_cells_say_their_state_and_link_to_their_detail(report):
    page = render_html(*report)
    cells = OverviewCells(page).cells
    expected = {("numpy", MSML, "float16"): ("failed", "✗"),
                ("torch", MSML, "float16"): ("xfailed", "≈"),  # passed + xfailed: known only
                ("torch", MLML, "float16"): ("skipped", "○"),  # value and gradient both skipped
                ("numpy", MLML, "float32"): ("passed", "✓")}
    for (candidate, loss, dtype), (state, symbol) in expected.items():
        got_state, href, text = cells[(candidate, loss, dtype)]
        assert got_state == state and text.startswith(symbol), (candidate, loss, dtype, text)
        assert href == f"#accuracy-{loss}-{dtype}"
        assert f'<tr id="accuracy-{loss}-{dtype}"' in page  # the accuracy row (region "all")
        row = page[page.index(f'<tr id="accuracy-{loss}-{dtype}"'):]
        assert row.split("</td>")[1].endswith(">all")
    for dtype in ("float32", "float16"):  # torch does not provide multi_hot
        assert cells[("torch", "multi_hot", dtype)] == ["missing", "#candidates",
                                                        "∅ not provided"]
        assert cells[("numpy", "multi_hot", dtype)] == ["none", None, "—"]  # no test ran
    assert "the candidate does not implement the loss" in page  # the legend


def test_cell_state_rules():
    outcomes = ov.Counter
    assert ov.cell_state(outcomes(passed=3, error=1)) == "failed"
    assert ov.cell_state(outcomes(failed=1, xfailed=2)) == "failed"
    assert ov.cell_state(outcomes(passed=3, xfailed=1)) == "xfailed"
    assert ov.cell_state(outcomes(skipped=2)) == "skipped"
    assert ov.cell_state(outcomes(skipped=2, passed=1)) == "passed"
    assert ov.cell_state(outcomes(passed=1, xpassed=1)) == "passed"


def test_tests_without_a_dtype_get_a_column_of_their_own(summary, tmp_path):
    summary["tests"]["test_legacy_keywords[numpy-multi_hot]"] = {
        "candidate": "numpy", "loss": "multi_hot", "dtype": None, "check": "legacy keywords",
        "outcome": "passed", "reason": "", "duration_s": 0.1}
    summary["tests"]["test_speed[x]"] = dict(  # every candidate timed at once: no cell
        summary["tests"]["test_legacy_keywords[numpy-multi_hot]"], candidate=None,
        loss="l1_loss", check="speed", outcome="failed")
    [torch, numpy] = ov.overview(summary)
    assert numpy.dtypes == ["float32", "float16", None] == torch.dtypes
    assert numpy.state("multi_hot", None) == "passed"
    assert torch.state("multi_hot", None) == "missing"
    assert "l1_loss" not in numpy.losses
    cells = OverviewCells(render_html(summary, tmp_path, {"error": [], "speed": []})).cells
    assert cells[("numpy", "multi_hot", "no dtype")][0] == "passed"


def test_the_filter_controls_are_in_the_page(report):
    page = render_html(*report)
    form = page[page.index('<form id="filter"'):page.index("</form>")]
    assert page.index("</form>") < page.index('<section id="overview">')
    assert '<input type="checkbox" name="failures">' in form
    for loss in (MSML, MLML, "multi_hot"):
        assert f'<option value="{loss}">' in form.split('name="candidate"')[0]
    for label in ("torch", "numpy"):
        assert f'<option value="{label}">' in form.split('name="candidate"')[1]
    # what the filter hides: elements marked with their candidate, loss, and failure
    assert '<div class="candidate" data-candidate="torch" data-failed="0">' in page
    assert '<div class="candidate" data-candidate="numpy" data-failed="1">' in page
    assert f'<div class="loss" data-loss="{MSML}" data-failed="1">' in page
    assert f'<div class="loss" data-loss="{MLML}" data-failed="0">' in page
    assert f'<article class="failure" data-candidate="numpy" data-loss="{MSML}">' in page


def _drawn(entries):
    """error_plot on a fresh figure: its axes."""
    figure, axes = new_figure()
    error_plot(figure, axes, MSML, "float16", entries, ["torch", "numpy"], {})
    return axes


def test_error_plot_shows_error_over_allowed_with_the_pass_line(summary):
    entries = [e for e in summary["error_samples"] if (e["loss"], e["dtype"]) == (MSML, "float16")]
    axes = _drawn(entries)
    low, high = axes.get_ylim()
    numpy_points = axes.collections[1].get_offsets()
    ratios = [float(p[3]) for p in entries[1]["points"]]
    ys = list(numpy_points[:, 1])
    assert len(ys) == len(ratios)
    for ratio, y in zip(ratios, ys):
        if ratio > 0 and math.isfinite(ratio):
            assert y == pytest.approx(ratio)  # the ratio itself, not the ulp error
        else:  # exact on the floor, inf and nan on the ceiling: inside the axis
            assert low < y < high
            assert y == (min(ys) if ratio == 0 else max(ys))
    finite = [r for r in ratios if r > 0 and math.isfinite(r)]
    assert min(ys) < min(finite) and max(ys) > max(finite)
    assert 4096.0 not in ys  # the failing point's ulps are not what is drawn
    assert any(list(line.get_ydata()) == [1.0, 1.0] for line in axes.lines)  # the pass line
    assert "allowed" in axes.get_ylabel()


def test_error_plot_of_an_old_summary_falls_back_on_ulps(summary):
    entries = [dict(e, points=[p[:3] for p in e["points"]]) for e in summary["error_samples"]
               if (e["loss"], e["dtype"]) == (MSML, "float16")]
    axes = _drawn(entries)
    ys = list(axes.collections[1].get_offsets()[:, 1])
    assert 4096.0 in ys and axes.get_ylabel() == "max error (ulp)"
    assert not any(list(line.get_ydata()) == [1.0, 1.0] for line in axes.lines)


def test_chromium_opens_on_the_overview_and_filters_it(report, tmp_path):
    index = tmp_path / "index.html"
    index.write_text(render_html(*report), encoding="utf-8")
    page = open_in_chromium(index, filters={
        "failures only": {"failures": True}, "loss": {"loss": MLML},
        "candidate": {"candidate": "torch"}})
    assert page.errors == []
    assert page.first_section == "overview" and page.first_section_in_view
    assert len(page.overview_rows) == 6  # 3 losses x 2 candidates
    assert page.filtered["failures only"] == [["numpy", MSML, "1"]]
    assert page.filtered["loss"] == [["torch", MLML, "0"], ["numpy", MLML, "0"]]
    assert [row[0] for row in page.filtered["candidate"]] == ["torch"] * 3
