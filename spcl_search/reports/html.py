"""One self-contained HTML page for a :class:`~spcl_search.reports.report.Report`.

plotly.js is embedded once in the page's head (no CDN), so the page opens offline. A small script
at the end writes a JSON summary of the rendered figures (id, title, trace and point counts) into
``<pre id="figure-summary">`` once plotly has drawn them; tests and tools read it back.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from pathlib import Path

import plotly.io as pio
import plotly.offline

from spcl_search import outputs
from spcl_search.reports.report import Report, Section, Table

FIGURE_HEIGHT_PX = 520
SUMMARY_ID = "figure-summary"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
nav a { margin-right: 1em; } .meta { color: #666; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
.notice { background: #fff6e0; border-left: 4px solid #f0a500; padding: 0.5em 0.8em; }
.figure { margin: 1em 0; }
"""

_SUMMARY_SCRIPT = """
(function () {
  var out = document.getElementById("%(id)s");
  var started = Date.now();
  function count(v) {
    if (!Array.isArray(v)) { return 0; }
    if (v.length && Array.isArray(v[0])) {
      return v.reduce(function (n, row) { return n + (Array.isArray(row) ? row.filter(function (c) { return c !== null; }).length : 0); }, 0);
    }
    return v.length;
  }
  function summarise() {
    return Array.prototype.map.call(document.querySelectorAll(".plotly-graph-div"), function (div) {
      var data = div.data || [];
      var title = div.layout && div.layout.title;
      return {
        id: div.id,
        title: (title && (title.text !== undefined ? title.text : title)) || "",
        traces: data.length,
        points: data.reduce(function (n, t) {
          var xs = Array.isArray(t.x) && t.x.length && Array.isArray(t.x[0]) ? t.x[0] : t.x;
          return n + Math.max(count(xs), count(t.y), count(t.z), count(t.values));
        }, 0),
        rendered: !!(div._fullLayout && div.querySelector(".main-svg"))
      };
    });
  }
  function tick() {
    var figures = summarise();
    var done = figures.every(function (f) { return f.rendered; });
    if (done || Date.now() - started > 8000) {
      out.textContent = JSON.stringify({complete: done, figures: figures});
      out.setAttribute("data-state", "done");
    } else {
      setTimeout(tick, 100);
    }
  }
  window.addEventListener("load", function () { setTimeout(tick, 0); });
})();
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(table: Table) -> str:
    parts = ["<table>"]
    if table.caption:
        parts.append(f"<caption>{_e(table.caption)}</caption>")
    if any(table.header):
        parts.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in table.header) + "</tr>")
    for row in table.rows:
        parts.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    parts.append("</table>")
    return "\n".join(parts)


def _section(section: Section) -> Iterable[str]:
    yield f'<section id="{_e(section.key)}">'
    yield f"<h2>{_e(section.title)}</h2>"
    if section.text:
        yield f"<p>{_e(section.text)}</p>"
    for notice in section.notices:
        yield f'<p class="notice">{_e(notice)}</p>'
    for table in section.tables:
        yield _table(table)
    for named in section.figures:
        div = pio.to_html(
            named.figure,
            full_html=False,
            include_plotlyjs=False,
            div_id=f"fig-{named.key}",
            default_height=f"{FIGURE_HEIGHT_PX}px",
            config={"displaylogo": False, "responsive": True},
        )
        yield f'<div class="figure">{div}</div>'
    yield "</section>"


def render_html(report: Report) -> str:
    """The report as one HTML document with plotly.js embedded."""
    info = report.info
    title = f"SPCL search report: {info.name}"
    nav = " ".join(f'<a href="#{_e(s.key)}">{_e(s.title.split(":")[0])}</a>' for s in report.sections)
    body = "\n".join(line for s in report.sections for line in _section(s))
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{_e(title)}</title>",
            f"<style>{_STYLE}</style>",
            f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>',
            "</head>",
            "<body>",
            f"<h1>{_e(title)}</h1>",
            f'<p class="meta">{_e(info.kind)} study, backbone {_e(info.backbone)} ({_e(info.variant)} form), dataset '
            f"{_e(info.dataset)}; {info.n_complete} complete trials; importance by "
            f"{_e(report.importance)}; generated {_e(report.generated)}.</p>",
            (
                f'<p class="meta"><strong>SURROGATE data:</strong> the {_e(", ".join(info.surrogate))} features of this '
                "study's data are surrogate (synthetic); its figures are not comparable with real-data results.</p>"
                if info.surrogate
                else ""
            ),
            f"<nav>{nav}</nav>",
            body,
            f'<pre id="{SUMMARY_ID}" hidden></pre>',
            f"<script>{_SUMMARY_SCRIPT % {'id': SUMMARY_ID}}</script>",
            "</body>",
            "</html>",
        ]
    )


def safe_name(name: str) -> str:
    """A file-system-safe form of a study name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "study"


def page_path(out: Path, study: str) -> Path:
    """Where the report of ``study`` goes: ``out`` itself when it names an ``.html`` file, else ``out/<study>.html``."""
    out = Path(out)
    return out if out.suffix.lower() in (".html", ".htm") else out / f"{safe_name(study)}.html"


def write_html(report: Report, out: Path) -> Path:
    """Write the page to :func:`page_path` (``out`` an ``.html`` file or a folder) atomically; return its path."""
    return outputs.atomic_write(page_path(out, report.info.name), render_html(report))
