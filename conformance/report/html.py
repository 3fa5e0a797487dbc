"""index.html: the whole report in one self-contained page.

The same tables as accuracy.md and speed.md (built by markdown.py), the plots embedded as
``data:image/png`` URIs, inline CSS, no script and no external resource: the file can be mailed
or opened from anywhere, offline. Every string taken from the summary is escaped.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from conformance.report import markdown as md
from conformance.report.plots import plot_filename, safe_name
from conformance.report.parity import parity_tables

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
"""

_NUMERIC = re.compile(r"^(?:[-+]?\d|inf|-inf|nan|—$)")


def esc(text) -> str:
    """``text`` escaped for HTML text and attribute values."""
    return html.escape(str(text), quote=True)


def html_table(headers: list[str], rows: list[list[str]]) -> str:
    """An HTML table of plain-string cells (escaped); numeric columns are right-aligned,
    failing cells (✗) and large gaps to the roof are highlighted."""
    numeric = [bool(rows) and all(not row[i] or _NUMERIC.match(row[i]) for row in rows)
               for i in range(len(headers))]
    head = "".join(f'<th scope="col"{_class("num" if numeric[i] else "")}>{esc(h)}</th>'
                   for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            kinds = ["num"] if numeric[i] else []
            if "✗" in cell:
                kinds.append("bad")
            elif "below roof" in cell or "(xfail)" in cell:
                kinds.append("warn")
            cells.append(f"<td{_class(' '.join(kinds))}>{esc(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _class(name: str) -> str:
    return f' class="{name}"' if name else ""


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


def _accuracy_section(summary: dict, report_dir: Path, plots: _Plots, toc: list) -> str:
    out = ['<section id="accuracy"><h2>Accuracy</h2>',
           f"<p>{esc(md.ACCURACY_LEGEND)}</p>"]
    sub = []
    dtypes = {}
    for entry in summary.get("error_samples", []):
        dtypes.setdefault(entry["loss"], set()).add(entry["dtype"])
    tables = md.accuracy_tables(summary)
    for loss, headers, rows in tables:
        anchor = _anchor("accuracy", loss)
        sub.append((anchor, loss))
        out += [f'<h3 id="{anchor}">{esc(loss)}</h3>', html_table(headers, rows)]
        for dtype in sorted(dtypes.get(loss, ()), key=md.dtype_key):
            path = plots.take("error", loss, dtype)
            if path:
                caption = f"{loss}, {dtype}: max ulp error against input magnitude"
                out.append(embedded_image(report_dir, path, caption))
    if not tables:
        out.append("<p>No accuracy results.</p>")
    parity = parity_tables(summary)
    if parity:
        sub.append(("parity", "CPU–CUDA parity"))
        out += ['<h3 id="parity">CPU–CUDA parity</h3>', f"<p>{esc(md.PARITY_LEGEND)}</p>"]
        for title, headers, rows in parity:
            out += [f"<h4>{esc(title)}</h4>", html_table(headers, rows)]
    toc.append(("accuracy", "Accuracy", sub))
    return "".join(out) + "</section>"


def _failures_section(summary: dict) -> str:
    out = ['<section id="failures"><h2>Failures</h2>']
    headers, rows = md.fault_table(summary)
    if rows:
        out += ["<h3>Faults</h3><p>Crashes, hangs and nondeterminism of the candidates' "
                "processes, each once (every test they failed is listed below).</p>",
                html_table(headers, rows)]
    for failure in md.failure_entries(summary):
        out.append('<article class="failure">')
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
    out.append('</section><section id="skipped"><h2>Skipped</h2>')
    headers, rows = md.outcome_table(summary, "skipped")
    out.append(html_table(headers, rows) if rows else "<p>None.</p>")
    headers, rows = md.outcome_table(summary, "xfailed")
    if rows:
        out += ["<h3>Known deviations (xfailed)</h3>", html_table(headers, rows)]
    return "".join(out) + "</section>"


def _speed_section(summary: dict, report_dir: Path, plots: _Plots, toc: list) -> str:
    out = ['<section id="speed"><h2>Speed</h2>']
    if not summary.get("speed"):
        toc.append(("speed", "Speed", []))
        return "".join(out) + "<p>No speed figures (run with --speed).</p></section>"
    out += ["<h3>Machine roofs</h3>", f"<p>{esc(md.memory_roof_line(summary))}</p>"]
    headers, rows = md.compute_roofs_table(summary)
    if rows:
        out.append(html_table(headers, rows))
    out.append(f"<p>{esc(md.SPEED_LEGEND)}</p>")
    sub = []
    for loss, dtype, headers, rows in md.speed_tables(summary):
        anchor = _anchor("speed", loss, dtype)
        sub.append((anchor, f"{loss}, {dtype}"))
        out += [f'<h3 id="{anchor}">{esc(loss)}, {esc(dtype)}</h3>', html_table(headers, rows)]
        path = plots.take("speed", loss, dtype)
        if path:
            caption = f"{loss}, {dtype}: median time against size"
            out.append(embedded_image(report_dir, path, caption))
    toc.append(("speed", "Speed", sub))
    return "".join(out) + "</section>"


def _toc(entries: list) -> str:
    items = []
    for anchor, title, sub in entries:
        inner = "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t in sub)
        items.append(f'<li><a href="#{anchor}">{esc(title)}</a>'
                     + (f"<ul>{inner}</ul>" if inner else "") + "</li>")
    return f'<nav aria-label="Contents"><h2>Contents</h2><ul>{"".join(items)}</ul></nav>'


def render_html(summary: dict, report_dir: Path, plots: dict) -> str:
    """The report as one standalone HTML5 page: run, candidates, accuracy tables with their error
    plots, failures with rerun commands and reproducer links, skips, speed tables with their
    plots. ``plots`` is write_plots' result; the PNGs are read from report_dir and inlined."""
    plots = _Plots(plots)
    toc = [("run", "Run", []), ("candidates", "Candidates", [])]
    candidates = ('<section id="candidates"><h2>Candidates</h2>'
                  + html_table(*md.candidates_table(summary)) + "</section>")
    accuracy = _accuracy_section(summary, report_dir, plots, toc)
    failures = _failures_section(summary)
    toc += [("failures", f"Failures ({len(summary.get('failures', []))})", []),
            ("skipped", "Skipped", [])]
    speed = _speed_section(summary, report_dir, plots, toc)
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
        _toc(toc), "<main>", _run_section(summary), candidates, accuracy, failures, speed, rest,
        "</main>", "</body>", "</html>", ""])
