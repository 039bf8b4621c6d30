"""HTML for people: each executed notebook, and the incident page (index.html) of a bundle.

Both must read offline, in a browser on a laptop with no network (an incident may be the
network). nbconvert's ``lab`` template loads require.js, MathJax and mermaid from cdnjs; the
template below drops those blocks, keeps the inlined CSS and embeds images. Plots are PNG
outputs, so nothing is lost but LaTeX rendering and widgets, which these notebooks do not use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

from jinja2 import DictLoader
from nbconvert import HTMLExporter

from tenancy_diag.running.notebooks import read_notebook

_OFFLINE_TEMPLATE = "tenancy_offline.html.j2"
_OFFLINE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def render_notebook(notebook: Path, html: Path) -> int:
    """Write ``notebook`` as offline HTML to ``html``; returns its size in bytes."""
    # One exporter per call: exporters keep state and this runs in several threads at once.
    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        template_name="lab",
        extra_loaders=[DictLoader({_OFFLINE_TEMPLATE: _OFFLINE})],
        template_file=_OFFLINE_TEMPLATE,
        embed_images=True,
    )
    body, _ = exporter.from_notebook_node(read_notebook(notebook))
    html.write_text(body, encoding="utf-8")
    return len(body.encode("utf-8"))


def render_failure(notebook: str, html: Path, message: str) -> None:
    """A page standing in for a notebook that could not be rendered, saying why."""
    html.write_text(
        _page(
            f"{notebook}: not rendered",
            f"<h1>{escape(notebook)}</h1><p>The executed "
            f"notebook could not be rendered as HTML: {escape(message)}</p>",
        ),
        encoding="utf-8",
    )


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:70rem;
padding:0 1rem;color:#1d2330}
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border:1px solid #ccd;padding:.35rem
.6rem;text-align:left;vertical-align:top}th{background:#eef0f5}code{font-size:90%}
.ok{color:#17612b}.degraded{color:#8a5a00}.failing,.error{color:#a11d1d;font-weight:600}
.unknown{color:#555}.box{border:1px solid #ccd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
"""


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def render_index(summary: Mapping[str, Any]) -> str:
    """The incident page of a bundle, from its summary.json; every value is escaped."""
    title = f"Incident {summary['incident']}, run {summary['run_id']}"
    window = summary.get("window") or {}
    parts = [
        f"<h1>{escape(title)}</h1>",
        f"<p>Window: {_e(window.get('start') or '?')} to {_e(window.get('end'))} "
        f"(lookback {_e(window.get('lookback') or 'notebook default')}). "
        f"Run {_e(summary['started_at'])} to {_e(summary['finished_at'])}.</p>",
        _root_cause(summary),
        _table(summary["subsystems"]),
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
    return (
        "<div class='box'><h2>Probable root cause</h2>"
        f"<p><strong>{_e(cause['pattern'])}</strong> in {_e(cause['subsystem'])} "
        f"(confidence {_e(cause['confidence'])}); it explains {_e(explains)}.</p>{note}</div>"
    )


def _table(rows: Iterable[Mapping[str, Any]]) -> str:
    lines = [
        "<h2>Subsystems</h2><table><tr><th>Subsystem</th><th>Status</th><th>Severity</th>"
        "<th>Patterns</th><th>Summary</th><th>Evidence</th></tr>"
    ]
    for row in rows:
        patterns = ", ".join(f"{p['id']} ({p['confidence']})" for p in row["patterns"]) or "none"
        files = row["files"]
        links = " · ".join(
            f'<a href="{_e(files[kind])}">{kind}</a>'
            for kind in ("html", "notebook", "findings")
            if kind in files
        )
        status = str(row["status"])
        lines.append(
            f"<tr><td>{_e(row['subsystem'])}<br><code>{_e(row['notebook'])}</code></td>"
            f"<td class='{_e(status)}'>{_e(status)}</td><td>{_e(row['severity'] or '-')}</td>"
            f"<td>{_e(patterns)}</td><td>{_e(row['error'] or row['summary'])}</td>"
            f"<td>{links}</td></tr>"
        )
    lines.append("</table>")
    return "\n".join(lines)


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
    tenants = must["affected_tenants"]
    shown = ", ".join(tenants[:50])
    if len(tenants) > 50:
        shown += f" … and {len(tenants) - 50} more"
    mitigation = "".join(f"<li>{_e(a)}</li>" for a in must["mitigation_summary"]) or "<li>none</li>"
    return (
        f"<div class='box'><h2>Escalation</h2>{who}<h3>Timeline</h3><ul>{timeline}</ul>"
        f"<h3>Affected tenants ({len(tenants)})</h3><p>{_e(shown or 'none identified')}</p>"
        f"<h3>Mitigation summary</h3><ul>{mitigation}</ul></div>"
    )
