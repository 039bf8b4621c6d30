"""The postmortem as documents for the document store: ``postmortem.md`` and ``postmortem.html``.

Markdown is the one source: the notebook shows each section's Markdown, the ``.md`` joins them,
and the HTML is that Markdown rendered by mistune with raw HTML escaped, so a tenant name or an
action text can never inject markup into the page.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import mistune
import pandas as pd

from tenancy_diag.redacting import Redactor, default_redactor
from tenancy_diag.reviewing.postmortems import Postmortem
from tenancy_diag.times import iso

MARKDOWN_FILE = "postmortem.md"
HTML_FILE = "postmortem.html"
#: Section key -> heading: the runbook's Audit And Postmortem list, then escalation and evidence.
SECTIONS = {
    "impact": "Incident summary and impact",
    "timeline": "Detection and response timeline",
    "root_cause": "Root cause and contributing factors",
    "actions": "Corrective actions and prevention tasks",
    "escalation": "Escalation",
    "evidence": "Evidence bundles",
}
# Enough tenants to see the blast radius; the bundles' findings hold the full lists.
_MAX_TENANTS = 50
_ESCAPED = str.maketrans({c: "\\" + c for c in "\\`<>[]|"})
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 70em; margin: 2em auto; line-height: 1.4; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""


def text(value: object) -> str:
    """``value`` as inline Markdown text: one line, markup characters taken literally."""
    return " ".join(str(value).split()).translate(_ESCAPED)


def table(frame: pd.DataFrame | Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    rows = frame.to_dict("records") if isinstance(frame, pd.DataFrame) else list(frame)
    if not rows:
        return "_(none)_"
    lines = ["| " + " | ".join(text(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp | datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    return text(value)


def header(pm: Postmortem) -> str:
    req = pm.request
    title = req.title or f"Postmortem: incident {req.incident}"
    due = pm.retrospective_due.isoformat() if pm.retrospective_due else "unknown (no start time)"
    commander = text(req.incident_commander) or "**not declared** (the runbook requires one)"
    lines = [
        f"# {text(title)}",
        "",
        f"- Incident: {text(req.incident)}",
        f"- Incident commander: {commander}",
        f"- Severity: {text(pm.impact.severity or 'none recorded')}",
        f"- Retrospective due: {due} (within five business days of the incident start)",
        f"- Generated: {iso(pm.generated_at)} from {len(pm.trusted)} verified bundle(s)",
    ]
    if pm.untrusted:
        lines.append(f"- **{len(pm.untrusted)} bundle(s) failed verification and were left out**")
    return "\n".join(lines)


def impact(pm: Postmortem) -> str:
    im = pm.impact
    parts = [text(pm.request.summary_note)] if pm.request.summary_note else []
    tenants = ", ".join(text(t) for t in im.tenants[:_MAX_TENANTS]) or "none identified"
    if len(im.tenants) > _MAX_TENANTS:
        tenants += f" and {len(im.tenants) - _MAX_TENANTS} more"
    definition = pm.escalation["definition"] if pm.escalation else ""
    severity = text(im.severity or "none recorded") + (
        f": {text(definition)}" if definition else ""
    )
    start = f"{im.start:%Y-%m-%d %H:%M:%S} UTC" if im.start else "unknown"
    if im.end is None:
        end = "unknown"
    else:
        end = f"{im.end:%Y-%m-%d %H:%M:%S} UTC" + (
            " (closure event)" if im.closed else " (last response event; no closure event yet)"
        )
    parts.append(
        "\n".join(
            [
                f"- **Severity:** {severity}",
                f"- **Affected tenants ({len(im.tenants)}):** {tenants}",
                f"- **Affected regions:** {', '.join(text(r) for r in im.regions) or 'none'}",
                f"- **Subsystems failing or degraded:** "
                f"{', '.join(text(s) for s in im.subsystems) or 'none'}",
                f"- **Start:** {start}, from {text(im.start_basis)}",
                f"- **End:** {end}",
                f"- **Duration:** {_duration(im.duration)}"
                + ("" if im.closed else " (still open)"),
                f"- **Recovery verification:** {text(im.recovery or 'not run')}",
            ]
        )
    )
    if im.summaries:
        parts.append(
            "What the diagnostics found:\n\n" + "\n".join(f"- {text(s)}" for s in im.summaries)
        )
    return "\n\n".join(parts)


def _duration(delta: timedelta | None) -> str:
    if delta is None:
        return "unknown"
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def timeline(pm: Postmortem) -> str:
    frame = pm.timeline.rename(columns={"at": "time (UTC)"})
    return table(frame, ["time (UTC)", "kind", "event", "actor", "source"])


def root_cause(pm: Postmortem) -> str:
    rc = pm.root_cause
    if rc.pattern is None:
        lead = "**Root cause:** not determined: no verified bundle's summary names one."
    else:
        confidence = f", confidence {rc.confidence:.2f}" if rc.confidence is not None else ""
        lead = (
            f"**Root cause:** {text(rc.title)} ({text(rc.pattern)}, {text(rc.subsystem)} "
            f"subsystem{confidence}), named by run {text(rc.run_id)}"
        )
        if rc.explains:
            lead += f"; it explains {', '.join(text(e) for e in rc.explains)}"
        lead += "."
    parts = [lead]
    if rc.disagreements:
        parts.append("Other runs disagree: " + "; ".join(text(d) for d in rc.disagreements) + ".")
    factors = "\n".join(f"- {text(f)}" for f in rc.contributing) or "_(none recorded)_"
    parts += [
        "**Contributing factors**\n\n" + factors,
        "**Candidates** (every verified run's ranking)\n\n"
        + table(rc.candidates, ["pattern", "title", "subsystem", "confidence", "explains", "runs"]),
        "**Patterns and evidence** (from the findings)\n\n"
        + table(
            rc.evidence,
            ["run", "subsystem", "pattern", "confidence", "onset", "regions", "evidence"],
        ),
    ]
    return "\n\n".join(parts)


def actions(pm: Postmortem) -> str:
    rows = [
        {
            "kind": a.kind,
            "action": a.action,
            "owner": a.owner or "—",
            "due": a.due.isoformat() if a.due else "—",
            "flags": "; ".join(a.flags) or "ok",
        }
        for a in pm.actions
    ]
    parts = [table(rows, ["kind", "action", "owner", "due", "flags"])]
    if pm.flagged:
        parts.append(
            f"**{len(pm.flagged)} item(s) lack an owner or a due date**; the runbook asks for both."
        )
    elif not pm.actions:
        parts.append("**No corrective action recorded yet**; add `corrective_actions`.")
    return "\n\n".join(parts)


def escalation(pm: Postmortem) -> str:
    esc = pm.escalation
    if esc is None:
        lead = "No severity was recorded, so the escalation matrix names no owner."
    else:
        commander = text(esc["incident_commander"]) or "not declared"
        lead = "\n".join(
            [
                f"- **Severity:** {text(esc['severity'])}: {text(esc['definition'])}",
                f"- **Primary owner:** {text(esc['primary'])}",
                f"- **Backup owner:** {text(esc['backup'] or 'none')}",
                f"- **Escalation path:** {text(esc['path'])}",
                f"- **Incident commander:** {commander}",
                f"- **Escalations must include:** {', '.join(text(m) for m in esc['must_include'])}"
                " (each is in this report)",
            ]
        )
    done = "\n".join(f"- {text(m)}" for m in pm.mitigation) or "_(no remediation recorded)_"
    return f"{lead}\n\n**Mitigation summary**\n\n{done}"


def evidence(pm: Postmortem) -> str:
    rows = [
        {
            "run": b.run_id,
            "started": str(b.manifest.get("started_at") or ""),
            "notebooks": ", ".join(b.manifest.get("notebooks") or {}),
            "verified": "yes" if b.trusted else "NO: not trusted, left out",
            "problems": "; ".join(b.problems),
        }
        for b in pm.bundles
    ]
    parts = [table(rows, ["run", "started", "notebooks", "verified", "problems"])]
    if pm.untrusted:
        names = ", ".join(text(b.run_id) for b in pm.untrusted)
        parts.append(f"**Failed verification:** {names}; their contents are not quoted above.")
    if pm.notes:
        parts.append("\n".join(f"- {text(n)}" for n in pm.notes))
    return "\n\n".join(parts)


_BUILDERS: dict[str, Callable[[Postmortem], str]] = {
    "impact": impact,
    "timeline": timeline,
    "root_cause": root_cause,
    "actions": actions,
    "escalation": escalation,
    "evidence": evidence,
}


def section(pm: Postmortem, name: str, redactor: Redactor | None = None) -> str:
    """One section's Markdown body (without its heading), redacted."""
    if name not in _BUILDERS:
        raise KeyError(f"unknown postmortem section {name!r}; valid: {', '.join(SECTIONS)}")
    return (redactor or default_redactor()).redact(_BUILDERS[name](pm))


def to_markdown(pm: Postmortem, redactor: Redactor | None = None) -> str:
    redactor = redactor or default_redactor()
    parts = [redactor.redact(header(pm))]
    parts += [f"## {title}\n\n{section(pm, key, redactor)}" for key, title in SECTIONS.items()]
    return "\n\n".join(parts) + "\n"


def to_html(markdown: str, title: str) -> str:
    """``markdown`` as a standalone page; raw HTML in it is shown as text, never rendered."""
    render = mistune.create_markdown(escape=True, plugins=["table"])
    body = render(markdown)
    return _PAGE.format(title=html.escape(title), body=body)


def export(pm: Postmortem, folder: Path, redactor: Redactor | None = None) -> dict[str, Path]:
    """Write ``postmortem.md`` and ``postmortem.html`` into ``folder``; their paths by format."""
    folder.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(pm, redactor)
    title = pm.request.title or f"Postmortem: incident {pm.request.incident}"
    paths = {"markdown": folder / MARKDOWN_FILE, "html": folder / HTML_FILE}
    paths["markdown"].write_text(markdown, encoding="utf-8")
    paths["html"].write_text(to_html(markdown, title), encoding="utf-8")
    return paths
