"""HTML for people: each executed notebook, and the incident page (index.html) of a bundle.

Both must read offline, in a browser on a laptop with no network (an incident may be the
network). nbconvert's ``lab`` template loads require.js, MathJax and mermaid from cdnjs; the
template below drops those blocks, keeps the inlined CSS and embeds images. Plots are PNG
outputs, so nothing is lost but LaTeX rendering and widgets, which these notebooks do not use.

A page is rendered as soon as its notebook finishes, before the notebooks queued after it have
started, and the runner seals the bundle right after the last one. So each page, once written,
brings every sibling page's header up to date: the last page rendered leaves every header
naming every page of the run with its status.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

from jinja2 import DictLoader
from nbconvert import HTMLExporter

from tenancy_diag import runbook
from tenancy_diag.running import pages
from tenancy_diag.running.concluding import worst_first
from tenancy_diag.running.notebooks import read_notebook

_OFFLINE_TEMPLATE = "tenancy_offline.html.j2"
_OFFLINE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}<style type="text/css">{{ resources.tenancy_css }}</style>
{%- endblock html_head_css -%}
{%- block body_header -%}
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
<input type="checkbox" id="td-show-code" class="td-toggle">
{{ resources.tenancy_nav }}
<main>
{%- endblock body_header -%}
"""
#: Pages of one bundle, and of bundles written at once (the service's runs), share a lock.
_PAGES = threading.Lock()


class Renderer:
    """One HTML exporter, its template compiled on the first page and reused for the others.

    Exporters keep state: use one from one thread at a time (the runner gives each run one,
    on a rendering thread of its own; see ``execution.PageRenderer``).
    """

    def __init__(self) -> None:
        self._exporter: HTMLExporter | None = None

    def render(self, notebook: Path, html: Path) -> int:
        """Write ``notebook`` as offline HTML to ``html``; returns its size in bytes."""
        if self._exporter is None:
            self._exporter = _new_exporter()
        return _render_page(self._exporter, notebook, html)


def render_notebook(notebook: Path, html: Path) -> int:
    """Write ``notebook`` as offline HTML to ``html`` now; returns its size in bytes."""
    return _render_page(_new_exporter(), notebook, html)


def _new_exporter() -> HTMLExporter:
    return HTMLExporter(  # type: ignore[no-untyped-call]
        template_name="lab",
        extra_loaders=[DictLoader({_OFFLINE_TEMPLATE: _OFFLINE})],
        template_file=_OFFLINE_TEMPLATE,
        embed_images=True,
    )


def _render_page(exporter: HTMLExporter, notebook: Path, html: Path) -> int:
    nb = read_notebook(notebook)
    root = pages.bundle_root(html)
    info = pages.page_info(notebook.stem, nb, root)
    resources = {
        "metadata": {"name": info.page_title},
        "tenancy_css": pages.CSS,
        "tenancy_nav": pages.nav(info.name, [info], info.incident, index=root is not None),
    }
    body, _ = exporter.from_notebook_node(pages.for_reading(nb), resources=resources)
    return _publish(html, body, root)


def render_failure(notebook: str, html: Path, message: str) -> None:
    """A page standing in for a notebook that could not be rendered, saying why."""
    root = pages.bundle_root(html)
    incident = root.parent.name if root is not None else ""
    header = pages.nav(notebook, [], incident, index=root is not None)
    body = _page(
        f"{notebook}: not rendered",
        f"<input type='checkbox' id='td-show-code' class='td-toggle'>{header}"
        f"<h1>{escape(notebook)}</h1><p>The executed "
        f"notebook could not be rendered as HTML: {escape(message)}</p>",
        extra_css=pages.CSS,
    )
    _publish(html, body, root)


def _publish(html: Path, body: str, root: Path | None) -> int:
    with _PAGES:
        if root is not None:
            body = _with_nav(html.stem, body, root)
        _write(html, body)
        if root is not None:
            for sibling in html.parent.glob("*.html"):
                if sibling != html:
                    text = sibling.read_text(encoding="utf-8")
                    updated = _with_nav(sibling.stem, text, root)
                    if updated != text:
                        _write(sibling, updated)
    return len(body.encode("utf-8"))


def _with_nav(here: str, body: str, root: Path) -> str:
    infos = [_sibling(root, name) for name in pages.sibling_names(root)]
    header = pages.nav(here, infos, root.parent.name, index=True)
    return pages.NAV_BLOCK.sub(lambda _: header, body, count=1)


def _sibling(root: Path, name: str) -> pages.PageInfo:
    if pages.described(name):
        return pages.page_info(name, None, root)  # its title is the descriptor's: no reading
    try:
        nb = read_notebook(root / "notebooks" / f"{name}.ipynb")
    except Exception:  # being written by its kernel right now: its name will do
        nb = None
    return pages.page_info(name, nb, root)


def _write(path: Path, text: str) -> None:
    # Atomic: a browser, or the manifest's digest, never sees half a page.
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as handle:
        handle.write(text)
    Path(handle.name).replace(path)


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:70rem;
padding:0 1rem;color:#1d2330}
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border:1px solid #ccd;padding:.35rem
.6rem;text-align:left;vertical-align:top}th{background:#eef0f5}code{font-size:90%}
.ok{color:#17612b}.degraded{color:#8a5a00}.failing,.error{color:#a11d1d;font-weight:600}
.unknown{color:#555}.box{border:1px solid #ccd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
tr.row-failing,tr.row-error{background:#fdf0f0}tr.row-degraded{background:#fff8e6}
td{overflow-wrap:break-word}
"""


def _page(title: str, body: str, extra_css: str = "") -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}{extra_css}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def render_index(summary: Mapping[str, Any]) -> str:
    """The incident page of a bundle, from its summary.json; every value is escaped."""
    rows = worst_first(summary["subsystems"])
    worst = str(rows[0]["status"]).upper() if rows else "NOTHING RAN"
    title = f"Incident {summary['incident']} · {worst}"
    window = summary.get("window") or {}
    parts = [
        f"<h1>{escape(title)}</h1>",
        f"<p>Run {_e(summary['run_id'])}. Window: {_e(window.get('start') or '?')} to "
        f"{_e(window.get('end'))} (lookback {_e(window.get('lookback') or 'notebook default')}). "
        f"Run {_e(summary['started_at'])} to {_e(summary['finished_at'])}.</p>",
        _root_cause(summary),
        _table(rows),
        _tenants(summary),
        _escalation(summary),
        '<p>Machine-readable: <a href="summary.json">summary.json</a>, '
        '<a href="manifest.json">manifest.json</a> (sha256 of every file).</p>',
    ]
    return _page(title, "\n".join(parts))


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def _root_cause(summary: Mapping[str, Any]) -> str:
    cause = summary.get("root_cause")
    if summary.get("errors"):
        failed = ", ".join(summary["errors"])
        note = f"<p class='error'>Incomplete: {_e(failed)} did not finish; see below.</p>"
    else:
        note = ""
    if not cause:
        return f"<div class='box'><h2>Probable root cause</h2><p>None found.</p>{note}</div>"
    explains = ", ".join(cause.get("explains") or []) or "no other pattern"
    others = [c for c in summary.get("candidates") or [] if c != cause]
    other = (
        "<p>Other candidates: "
        + "; ".join(f"{_e(c['pattern'])} in {_e(c['subsystem'])} {_cause_where(c)}" for c in others)
        + ".</p>"
        if others
        else ""
    )
    return (
        "<div class='box'><h2>Probable root cause</h2>"
        f"<p><strong>{_e(_pattern_title(cause['pattern']))}</strong> "
        f"(<code>{_e(cause['pattern'])}</code>) in {_e(cause['subsystem'])} "
        f"{_cause_where(cause)}; it explains {_e(explains)}.</p>{other}{note}</div>"
    )


def _pattern_title(pattern: object) -> str:
    found = runbook.default().patterns.get(str(pattern))
    return found.title if found else str(pattern)


def _cause_where(cause: Mapping[str, Any]) -> str:
    regions = ", ".join(cause.get("regions") or []) or "region not named"
    onset = f", since {_e(cause['onset'])}" if cause.get("onset") else ", onset unknown"
    confidence = float(cause.get("confidence") or 0)
    return f"(<strong>{_e(regions)}</strong>{onset}; confidence {confidence:.0%})"


def _table(rows: Iterable[Mapping[str, Any]]) -> str:
    lines = [
        "<h2>Subsystems, worst first</h2><table><tr><th>Subsystem</th><th>Status</th>"
        "<th>Severity</th><th>Patterns</th><th>Summary</th><th>Evidence</th></tr>"
    ]
    for row in rows:
        patterns = (
            ", ".join(f"{p['id']} ({float(p['confidence']):.0%})" for p in row["patterns"])
            or "none"
        )
        files = row["files"]
        links = " · ".join(
            f'<a href="{_e(files[kind])}">{kind}</a>'
            for kind in ("html", "notebook", "findings")
            if kind in files
        )
        status = str(row["status"])
        lines.append(
            f"<tr class='row-{_e(status)}'><td>{_e(row['subsystem'])}<br>"
            f"<code>{_e(row['notebook'])}</code></td>"
            f"<td class='{_e(status)}'>{_e(status.upper())}</td>"
            f"<td>{_e(row['severity'] or '-')}</td>"
            f"<td>{_e(patterns)}</td><td>{_e(row['error'] or row['summary'])}</td>"
            f"<td>{links}</td></tr>"
        )
    lines.append("</table>")
    return "\n".join(lines)


_SHOWN_TENANTS = 50


def _tenants(summary: Mapping[str, Any]) -> str:
    tenants = summary["escalation_must_include"]["affected_tenants"]
    figures = summary.get("tenant_figures") or {}
    if not tenants:
        return "<h2>Affected tenants (0)</h2><p>None identified.</p>"
    rows = []
    for tenant in tenants[:_SHOWN_TENANTS]:
        measured = figures.get(tenant) or {}
        text = "; ".join(f"{sub}: {fig}" for sub, fig in measured.items()) or "no figure measured"
        rows.append(f"<tr><td><code>{_e(tenant)}</code></td><td>{_e(text)}</td></tr>")
    more = len(tenants) - _SHOWN_TENANTS
    tail = f"<p>… and {more} more in summary.json.</p>" if more > 0 else ""
    return (
        f"<h2>Affected tenants ({len(tenants)}), most affected first</h2>"
        "<table><tr><th>Tenant</th><th>What it suffered</th></tr>"
        + "".join(rows)
        + "</table>"
        + tail
    )


def _escalation(summary: Mapping[str, Any]) -> str:
    escalation = summary.get("escalation")
    must = summary["escalation_must_include"]
    if escalation:
        who = (
            f"<p><strong>{_e(escalation['severity'])}</strong>: {_e(escalation['definition'])}"
            f"<br>Primary {_e(escalation['primary'])}, backup {_e(escalation['backup'] or '-')}, "
            f"escalation path {_e(escalation['path'])}.</p>"
        )
    else:
        who = "<p>No severity assessed: nothing to escalate.</p>"
    timeline = "".join(f"<li>{_e(t['at'])}: {_e(t['event'])}</li>" for t in must["timeline"])
    mitigation = "".join(f"<li>{_e(a)}</li>" for a in must["mitigation_summary"]) or "<li>none</li>"
    return (
        f"<div class='box'><h2>Escalation</h2>{who}<h3>Timeline</h3><ul>{timeline}</ul>"
        f"<h3>Mitigation summary</h3><ul>{mitigation}</ul></div>"
    )
