"""index.html: the whole report in one self-contained page.

It opens on the overview (per candidate, a state per loss and dtype, see overview.py), then the
failures, then the detail: the same tables as accuracy.md and speed.md (built by markdown.py),
the plots embedded as ``data:image/png`` URIs, the skips, the run. Inline CSS and one small
inline script (the filter: failures only, one loss, one candidate; it hides the elements whose
``data-loss``, ``data-candidate`` or ``data-failed="0"`` do not match), no external resource:
the file can be mailed or opened from anywhere, offline. Every string taken from the summary is
escaped.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from conformance.report import markdown as md
from conformance.report import overview as ov
from conformance.report.parity import parity_tables
from conformance.report.plots import plot_filename, safe_name, shows_ratio

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
       max-width: 96rem; margin: 2rem auto; padding: 0 1rem; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
code, pre { font: 13px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre { background: #f5f5f7; padding: .5rem .75rem; overflow-x: auto; white-space: pre-wrap; }
.scroll { overflow-x: auto; margin: .5rem 0 1rem; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #d8d8dc; padding: .25rem .5rem; vertical-align: top; }
th { background: #f0f0f3; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.bad { background: #fde8e8; color: #a00; font-weight: 600; }
td.warn { background: #fff5dd; }
dl.run { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; }
dl.run dt { font-weight: 600; } dl.run dd { margin: 0; }
figure { display: inline-block; margin: .5rem 1rem .5rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 12px; color: #555; }
.failure { border-left: 4px solid #d62728; padding-left: .75rem; margin-bottom: 1rem; }
.muted { color: #666; }
[hidden] { display: none !important; }
#filter { position: sticky; top: 0; z-index: 1; background: #fff; padding: .4rem 0;
          border-bottom: 1px solid #ddd; display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; }
nav ul.sections { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 0 1rem; }
table.matrix td { text-align: center; white-space: nowrap; }
table.matrix td a { color: inherit; text-decoration: none; display: block; }
table.matrix td a:hover { text-decoration: underline; }
.st-passed { background: #e3f4e1; color: #1d5e1a; }
.st-xfailed { background: #fff1c2; color: #6b4e00; }
.st-failed { background: #fde8e8; color: #a00; font-weight: 600; }
.st-skipped { background: #eeeef0; color: #555; }
.st-missing { background: #fafafa; color: #777; font-style: italic; }
.st-none { color: #bbb; }
span[class^="st-"] { padding: 0 .3rem; border-radius: 3px; white-space: nowrap; }
"""

# One label per overview state: a symbol and a word, so the matrix reads without colour.
STATE_TEXT = {ov.PASSED: "✓ passed", ov.XFAILED: "≈ known deviation", ov.FAILED: "✗ failed",
              ov.SKIPPED: "○ skipped", ov.MISSING: "∅ not provided", ov.EMPTY: "—"}
STATE_MEANING = {ov.PASSED: "every test passed",
                 ov.XFAILED: "known deviations (xfailed), no failure",
                 ov.FAILED: "a test failed or errored", ov.SKIPPED: "every test skipped",
                 ov.MISSING: "the candidate does not implement the loss",
                 ov.EMPTY: "no test of the candidate ran here"}
NO_DTYPE = "no dtype"

FILTER_SCRIPT = """
(function () {
  var form = document.getElementById("filter");
  function apply() {
    var failures = form.elements.failures.checked;
    var loss = form.elements.loss.value, candidate = form.elements.candidate.value;
    document.querySelectorAll("[data-loss], [data-candidate], [data-failed]").forEach(
      function (element) {
        var data = element.dataset;
        element.hidden = Boolean(
          (loss && data.loss !== undefined && data.loss !== loss) ||
          (candidate && data.candidate !== undefined && data.candidate !== candidate) ||
          (failures && data.failed === "0"));
      });
  }
  form.addEventListener("change", apply);
  form.hidden = false;  // the controls work only with this script: shown by it
  apply();
})();
"""

_NUMERIC = re.compile(r"^(?:[-+]?\d|inf|-inf|nan|—$)")


def esc(text) -> str:
    """``text`` escaped for HTML text and attribute values."""
    return html.escape(str(text), quote=True)


def html_table(headers: list[str], rows: list[list[str]], row_attrs: list[dict] | None = None,
               column_attrs: list[dict] | None = None) -> str:
    """An HTML table of plain-string cells (escaped); numeric columns are right-aligned,
    failing cells (✗) and large gaps to the roof are highlighted. ``row_attrs`` gives each row
    its attributes ({"id": ..., "data-loss": ...}), ``column_attrs`` each column's cells theirs."""
    rows = [[md.NONE if cell is None else str(cell) for cell in row] for row in rows]
    row_attrs = row_attrs or [{}] * len(rows)
    column_attrs = column_attrs or [{}] * len(headers)
    numeric = [bool(rows) and all(not row[i] or _NUMERIC.match(row[i]) for row in rows)
               for i in range(len(headers))]
    head = "".join(f'<th scope="col"{_class("num" if numeric[i] else "")}'
                   f"{_attrs(column_attrs[i])}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = []
    for row, attrs in zip(rows, row_attrs):
        cells = []
        for i, cell in enumerate(row):
            kinds = ["num"] if numeric[i] else []
            if "✗" in cell:
                kinds.append("bad")
            elif "below roof" in cell or "(xfail)" in cell:
                kinds.append("warn")
            cells.append(f"<td{_class(' '.join(kinds))}{_attrs(column_attrs[i])}>"
                         f"{esc(cell)}</td>")
        body.append(f"<tr{_attrs(attrs)}>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _class(name: str) -> str:
    return f' class="{name}"' if name else ""


def _attrs(attributes: dict) -> str:
    """HTML attributes, values escaped; an attribute whose value is None is left out."""
    return "".join(f' {name}="{esc(value)}"' for name, value in attributes.items()
                   if value is not None)


def _where(candidate=None, loss=None, failed: bool | None = None) -> dict:
    """The filter's attributes of an element: the candidate and loss it belongs to, whether it
    shows a failure (hidden under "failures only" when it does not); None: not said."""
    return {"data-candidate": candidate, "data-loss": loss,
            "data-failed": None if failed is None else _failed(failed)}


def _failed(flag: bool) -> str:
    return "1" if flag else "0"


def _anchor(*parts: str) -> str:
    return "-".join(safe_name(part) for part in parts)


def _safe_href(path) -> str | None:
    """A link into the report directory, or None for anything else (a scheme, an absolute path,
    a way out through "..")."""
    path = str(path or "")
    if not path or ":" in path or path.startswith(("/", "\\")) or ".." in Path(path).parts:
        return None
    return path


def embedded_image(report_dir: Path, relative: str, caption: str) -> str:
    """A figure with the PNG at report_dir / relative inlined as a data URI."""
    try:
        data = (Path(report_dir) / relative).read_bytes()
    except OSError:
        return f'<p class="muted">plot {esc(relative)} is missing</p>'
    size = ""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:  # IHDR: width, height
        size = (f' width="{int.from_bytes(data[16:20], "big")}"'
                f' height="{int.from_bytes(data[20:24], "big")}"')
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return (f'<figure><img src="{uri}" alt="{esc(caption)}"{size}>'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


class _Plots:
    """The plots of a report, looked up by kind, loss and dtype; what is never asked for is
    shown at the end, so no plot is dropped."""

    def __init__(self, plots: dict):
        self.unused = {kind: list(paths) for kind, paths in (plots or {}).items()}

    def take(self, kind: str, loss: str, dtype: str) -> str | None:
        wanted = plot_filename(kind, loss, dtype)
        for path in self.unused.get(kind, []):
            if Path(path).name == wanted:
                self.unused[kind].remove(path)
                return path
        return None

    def rest(self) -> list[tuple[str, str]]:
        return [(kind, path) for kind, paths in self.unused.items() for path in paths]


def _run_section(summary: dict) -> str:
    facts = ""
    for name, value in md.run_facts(summary):
        value = f"<code>{esc(value)}</code>" if name == "command" else esc(value)
        facts += f"<dt>{esc(name)}</dt><dd>{value}</dd>"
    links = ['<a href="summary.json">summary.json</a>', '<a href="accuracy.md">accuracy.md</a>']
    if summary.get("speed"):
        links.append('<a href="speed.md">speed.md</a>')
    return (f'<section id="run"><h2>Run</h2><dl class="run">{facts}</dl>'
            f'<p>Machine-readable: {" · ".join(links)}</p></section>')


def _candidates_section(summary: dict) -> str:
    headers, rows = md.candidates_table(summary)
    return ('<section id="candidates"><h2>Candidates</h2>'
            + html_table(headers, rows, [_where(candidate=row[0]) for row in rows]) + "</section>")


# --- overview ------------------------------------------------------------------------------------

def detail_links(summary: dict) -> dict:
    """Where the detail of each overview cell is: {(loss, dtype): "#anchor"} for every loss and
    dtype with an accuracy row (region "all"), {loss: "#anchor"} for every loss with a table."""
    links = {}
    for row in summary.get("accuracy", []):
        links.setdefault(row["loss"], "#" + _anchor("accuracy", row["loss"]))
        if row.get("region") == "all":
            links[(row["loss"], row["dtype"])] = "#" + _row_anchor(row["loss"], row["dtype"])
    return links


def _row_anchor(loss: str, dtype) -> str:
    return _anchor("accuracy", loss, str(dtype))


def _cell_title(matrix: ov.Matrix, loss: str, dtype) -> str:
    where = f"{matrix.candidate} · {loss} · {dtype or NO_DTYPE}"
    counts = matrix.counts.get((loss, dtype))
    if counts:
        return f"{where}: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    return f"{where}: {STATE_MEANING[matrix.state(loss, dtype)]}"


def _cell_link(state: str, loss: str, dtype, links: dict) -> str | None:
    if state == ov.MISSING:
        return "#candidates"  # where the candidate's missing losses are listed
    if state == ov.EMPTY:
        return None
    return links.get((loss, dtype)) or links.get(loss)


def overview_cell(matrix: ov.Matrix, loss: str, dtype, links: dict) -> str:
    """One cell of the overview: its state as a class, a symbol and a word, a link to its detail
    and the counts of its tests as a tooltip."""
    state = matrix.state(loss, dtype)
    text = esc(STATE_TEXT[state])
    href = _cell_link(state, loss, dtype, links)
    if href:
        text = f'<a href="{esc(href)}">{text}</a>'
    return (f'<td class="st-{state}" data-state="{state}" '
            f'title="{esc(_cell_title(matrix, loss, dtype))}">{text}</td>')


def _matrix_table(matrix: ov.Matrix, links: dict) -> str:
    head = "".join(f'<th scope="col">{esc(dtype or NO_DTYPE)}</th>' for dtype in matrix.dtypes)
    body = []
    for loss in matrix.losses:
        name = esc(loss)
        if loss in links:
            name = f'<a href="{esc(links[loss])}">{name}</a>'
        cells = "".join(overview_cell(matrix, loss, dtype, links) for dtype in matrix.dtypes)
        body.append(f"<tr{_attrs(_where(loss=loss, failed=matrix.failed(loss)))}>"
                    f'<th scope="row">{name}</th>{cells}</tr>')
    return (f'<div class="scroll"><table class="matrix"><thead><tr><th scope="col">loss</th>'
            f'{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


def _state_counts(matrix: ov.Matrix) -> str:
    counts = [(state, sum(1 for s in matrix.states.values() if s == state))
              for state in ov.STATES if state != ov.EMPTY]
    return " · ".join(f'<span class="st-{state}">{esc(STATE_TEXT[state])}</span> {n}'
                      for state, n in counts if n)


def _overview_section(summary: dict, matrices: list) -> str:
    out = ['<section id="overview"><h2>Overview</h2>',
           "<p>Per candidate, one cell per loss and dtype for the tests run there; each cell "
           "links to its detail. " + " · ".join(
               f'<span class="st-{state}">{esc(STATE_TEXT[state])}</span>: '
               f"{esc(STATE_MEANING[state])}" for state in ov.STATES) + ".</p>"]
    links = detail_links(summary)
    for matrix in matrices:
        where = _where(candidate=matrix.candidate, failed=matrix.failed())
        out += [f'<div class="candidate"{_attrs(where)}>',
                f'<h3 id="{_anchor("overview", matrix.candidate)}">{esc(matrix.candidate)}</h3>',
                f'<p class="counts">cells: {_state_counts(matrix)}</p>',
                _matrix_table(matrix, links), "</div>"]
    if not matrices:
        out.append("<p>No per-test outcomes in this summary.</p>")
    return "".join(out) + "</section>"


# --- failures ------------------------------------------------------------------------------------

def _failures_section(summary: dict) -> str:
    out = ['<section id="failures"><h2>Failures</h2>']
    headers, rows = md.fault_table(summary)
    if rows:
        out += ["<h3>Faults</h3><p>Crashes, hangs and nondeterminism of the candidates' "
                "processes, each once (every test they failed is listed below).</p>",
                html_table(headers, rows, [_where(candidate=row[0]) for row in rows])]
    for failure in md.failure_entries(summary):
        where = _where(failure.get("candidate"), failure.get("loss"))
        out.append(f'<article class="failure"{_attrs(where)}>')
        out.append(f"<h3><code>{esc(failure.get('test', md.NONE))}</code></h3>")
        out.append(f"<p>{esc(failure.get('candidate'))} · {esc(failure.get('loss'))} · "
                   f"{esc(failure.get('dtype'))}</p><p>{esc(failure['headline'])}</p>")
        if failure.get("case"):
            out.append(f"<p>Case: <code>{esc(failure['case'])}</code></p>")
        if failure.get("rerun"):
            out.append(f"<p>Rerun:</p><pre><code>{esc(failure['rerun'])}</code></pre>")
        href = _safe_href(failure.get("repro"))
        if href:
            out.append(f'<p>Reproducer: <a href="{esc(href)}">{esc(href)}</a></p>')
        message = str(failure.get("message") or "")
        if message.strip() != failure["headline"]:
            out.append("<details><summary>full message</summary>"
                       f"<pre>{esc(message)}</pre></details>")
        out.append("</article>")
    if not summary.get("failures"):
        out.append("<p>None.</p>")
    return "".join(out) + "</section>"


# --- detail --------------------------------------------------------------------------------------

def _failed_accuracy(summary: dict, matrices: list) -> tuple[set, set]:
    """The losses, and the (loss, dtype, region) rows, with a failed check or test."""
    rows = {(r["loss"], r["dtype"], r["region"]) for r in summary.get("accuracy", [])
            if (r.get("checks") or {}).get("failed")}
    losses = {loss for loss, _, _ in rows}
    for matrix in matrices:
        losses |= {loss for loss in matrix.losses if matrix.failed(loss)}
    return losses, rows


def _error_caption(loss: str, dtype: str, entries: list) -> str:
    if shows_ratio(entries):
        return f"{loss}, {dtype}: error / allowed error against input magnitude (≤ 1 passes)"
    return f"{loss}, {dtype}: max ulp error against input magnitude"


def _accuracy_section(summary: dict, matrices: list, report_dir: Path, plots: _Plots,
                      toc: list) -> str:
    out = ['<section id="accuracy"><h2>Accuracy</h2>',
           f"<p>{esc(md.ACCURACY_LEGEND)}</p>"]
    sub = []
    samples = {}
    for entry in summary.get("error_samples", []):
        samples.setdefault(entry["loss"], {}).setdefault(entry["dtype"], []).append(entry)
    failed_losses, failed_rows = _failed_accuracy(summary, matrices)
    labels = md.candidate_labels(summary)
    tables = md.accuracy_tables(summary)
    for loss, headers, rows in tables:
        anchor = _anchor("accuracy", loss)
        sub.append((anchor, loss))
        row_attrs = [{"id": _row_anchor(loss, row[0]) if row[1] == "all" else None,
                      **_where(failed=(loss, row[0], row[1]) in failed_rows)} for row in rows]
        columns = _candidate_columns(summary, labels, loss, headers)
        out += [f'<div class="loss"{_attrs(_where(loss=loss, failed=loss in failed_losses))}>',
                f'<h3 id="{anchor}">{esc(loss)}</h3>',
                html_table(headers, rows, row_attrs, columns)]
        for dtype in sorted(samples.get(loss, {}), key=md.dtype_key):
            path = plots.take("error", loss, dtype)
            if path:
                caption = _error_caption(loss, dtype, samples[loss][dtype])
                out.append(embedded_image(report_dir, path, caption))
        out.append("</div>")
    if not tables:
        out.append("<p>No accuracy results.</p>")
    parity = parity_tables(summary)
    if parity:
        sub.append(("parity", "CPU–CUDA parity"))
        out += ['<h3 id="parity">CPU–CUDA parity</h3>', f"<p>{esc(md.PARITY_LEGEND)}</p>"]
        for title, headers, rows in parity:
            out += [f"<h4>{esc(title)}</h4>",
                    html_table(headers, rows, [_where(loss=row[0]) for row in rows])]
    toc.append(("accuracy", "Accuracy", sub))
    return "".join(out) + "</section>"


def _candidate_columns(summary: dict, labels: list, loss: str, headers: list) -> list | None:
    """The filter's attributes of each column of a loss's accuracy table: dtype and region, then
    4 columns per candidate with results for the loss (as markdown.accuracy_tables builds it)."""
    present = [label for label in labels
               if any(r["loss"] == loss and r["candidate"] == label
                      for r in summary.get("accuracy", []))]
    columns = [{}, {}] + [_where(candidate=label) for label in present for _ in range(4)]
    return columns if len(columns) == len(headers) else None


def _skipped_section(summary: dict) -> str:
    out = ['<section id="skipped"><h2>Skipped</h2>']
    headers, rows = md.outcome_table(summary, "skipped")
    # candidate, loss, reason, tests; a skip is no failure
    out.append(html_table(headers, rows, [_where(row[0], row[1], False) for row in rows])
               if rows else "<p>None.</p>")
    headers, rows = md.outcome_table(summary, "xfailed")
    if rows:
        out += ["<h3>Known deviations (xfailed)</h3>",
                html_table(headers, rows, [_where(row[0], row[1], False) for row in rows])]
    return "".join(out) + "</section>"


def _speed_section(summary: dict, report_dir: Path, plots: _Plots, toc: list) -> str:
    out = ['<section id="speed"><h2>Speed</h2>']
    if not summary.get("speed"):
        toc.append(("speed", "Speed", []))
        return "".join(out) + "<p>No speed figures (run with --speed).</p></section>"
    out += ["<h3>Machine roofs</h3>", f"<p>{esc(md.memory_roof_line(summary))}</p>"]
    headers, rows = md.compute_roofs_table(summary)
    if rows:
        out.append(html_table(headers, rows, [_where(loss=row[0]) for row in rows]))
    headers, rows = md.matmul_roofs_table(summary)
    if rows:
        out.append(html_table(headers, rows))
    sub = []
    fastest = md.fastest_tables(summary)
    if fastest:
        out += ['<h3 id="speed-fastest">Fastest per size</h3>', f"<p>{esc(md.FASTEST_LEGEND)}</p>"]
        sub.append(("speed-fastest", "Fastest per size"))
        for loss, headers, rows in fastest:
            out += [f'<div class="loss"{_attrs(_where(loss=loss))}>', f"<h4>{esc(loss)}</h4>",
                    html_table(headers, rows), "</div>"]
    out.append(f"<p>{esc(md.SPEED_LEGEND)}</p>")
    for loss, dtype, headers, rows in md.speed_tables(summary):
        anchor = _anchor("speed", loss, dtype)
        sub.append((anchor, f"{loss}, {dtype}"))
        # Filtered by loss only: a candidate's rows leave the size and pass to the first row.
        out += [f'<div class="loss"{_attrs(_where(loss=loss))}>',
                f'<h3 id="{anchor}">{esc(loss)}, {esc(dtype)}</h3>', html_table(headers, rows)]
        path = plots.take("speed", loss, dtype)
        if path:
            caption = f"{loss}, {dtype}: median time and peak memory against size"
            out.append(embedded_image(report_dir, path, caption))
        out.append("</div>")
    toc.append(("speed", "Speed", sub))
    return "".join(out) + "</section>"


def _nav(entries: list) -> str:
    """The sections in one line, and their subsections (losses, speed tables) folded away."""
    top = "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t, _ in entries)
    nested = "".join(
        f'<li><a href="#{anchor}">{esc(title)}</a><ul>'
        + "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t in sub) + "</ul></li>"
        for anchor, title, sub in entries if sub)
    folded = f"<details><summary>All sections</summary><ul>{nested}</ul></details>"
    return (f'<nav aria-label="Contents"><ul class="sections">{top}</ul>'
            f'{folded if nested else ""}</nav>')


def _filter_form(summary: dict) -> str:
    """The filter's controls: hidden until the page's script shows them (they need it)."""
    losses = set()
    for section in ("tests", "accuracy", "speed", "failures"):
        rows = summary.get(section) or []
        losses |= {row.get("loss") for row in (rows.values() if isinstance(rows, dict) else rows)}
    for candidate in summary.get("candidates", []):
        losses |= set(candidate.get("missing") or [])

    def options(values):
        return '<option value="">all</option>' + "".join(
            f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)

    return ('<form id="filter" hidden aria-label="Filter the report">'
            '<label><input type="checkbox" name="failures"> failures only</label>'
            f'<label>loss <select name="loss">{options(sorted(losses - {None}))}</select></label>'
            '<label>candidate <select name="candidate">'
            f"{options(md.candidate_labels(summary))}</select></label></form>")


def render_html(summary: dict, report_dir: Path, plots: dict) -> str:
    """The report as one standalone HTML5 page. It opens on the overview (candidate x loss x
    dtype), then the failures with rerun commands and reproducer links, then the detail:
    accuracy tables with their error plots, speed tables with their plots, skips, the run and
    the candidates. ``plots`` is write_plots' result; the PNGs are read from report_dir and
    inlined. A filter (failures only, one loss, one candidate) runs in the page."""
    plots = _Plots(plots)
    toc = [("overview", "Overview", []),
           ("failures", f"Failures ({len(summary.get('failures', []))})", [])]
    matrices = ov.overview(summary)
    overview = _overview_section(summary, matrices)
    failures = _failures_section(summary)
    accuracy = _accuracy_section(summary, matrices, report_dir, plots, toc)
    speed = _speed_section(summary, report_dir, plots, toc)
    toc += [("skipped", "Skipped", []), ("run", "Run", []), ("candidates", "Candidates", [])]
    rest = "".join(embedded_image(report_dir, path, f"{kind} plot")
                   for kind, path in plots.rest())
    if rest:
        toc.append(("other-plots", "Other plots", []))
        rest = f'<section id="other-plots"><h2>Other plots</h2>{rest}</section>'
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request
        "<title>Loss conformance report</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        "<header><h1>Loss conformance report</h1>"
        f'<p class="muted">{esc(md.format_date(summary.get("generated")))} · summary version '
        f'{esc(summary.get("version", md.NONE))}</p></header>',
        _nav(toc), _filter_form(summary), "<main>", overview, failures, accuracy, speed,
        _skipped_section(summary), _run_section(summary), _candidates_section(summary), rest,
        "</main>", f"<script>{FILTER_SCRIPT}</script>", "</body>", "</html>", ""])
