"""The note an incident tracker receives, as JSON: generic, Slack-shaped, PagerDuty-shaped.

Pure: a run's summary (``tenancy-diag/summary/v1``) and links in, one JSON-able dict out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from tenancy_diag.errors import shorten

NOTE_SCHEMA = "tenancy-diag/note/v1"
NoteFormat = Literal["generic", "slack", "pagerduty"]
FORMATS: tuple[NoteFormat, ...] = ("generic", "slack", "pagerduty")
# Worst first: a failing subsystem outranks one whose notebook broke, which outranks no data.
STATUS_ORDER = ("failing", "error", "unknown", "degraded", "ok")
PAGERDUTY_SEVERITY = {"sev1": "critical", "sev2": "error", "sev3": "warning", "sev4": "info"}
# Slack drops a message with more than 50 blocks, and a note is read, not browsed.
_MAX_SLACK_LINKS = 10
_PAGERDUTY_SUMMARY_CHARS = 1024  # the Events API v2 limit


def worst_status(summary: Mapping[str, Any]) -> str:
    found = {row.get("status") for row in summary.get("subsystems") or [] if isinstance(row, dict)}
    return next((s for s in STATUS_ORDER if s in found), "unknown")


def generic_note(summary: Mapping[str, Any], links: Mapping[str, str]) -> dict[str, Any]:
    """The tracker-neutral note; the other shapes are built from it."""
    escalation = summary.get("escalation") or {}
    return {
        "schema": NOTE_SCHEMA,
        "incident": summary.get("incident"),
        "run_id": summary.get("run_id"),
        "status": worst_status(summary),
        "root_cause": summary.get("root_cause"),
        "severity": summary.get("severity"),
        "escalation": {
            "owners": {
                "primary": escalation.get("primary"),
                "backup": escalation.get("backup"),
            },
            "path": escalation.get("path"),
            "must_include": list(escalation.get("must_include") or []),
        },
        "links": dict(links),
    }


def headline(note: Mapping[str, Any]) -> str:
    """``Incident demo: policy_timeout in policy (sev2, failing)``."""
    cause = note.get("root_cause")
    what = (
        f"{cause.get('pattern')} in {cause.get('subsystem')}"
        if isinstance(cause, dict)
        else "no root cause found"
    )
    severity = note.get("severity") or "no severity"
    return f"Incident {note.get('incident')}: {what} ({severity}, {note['status']})"


def main_link(links: Mapping[str, str]) -> str | None:
    """The incident page, preferring a URL a browser opens (http) over s3:// or file://."""
    pages = [url for key, url in links.items() if key.endswith("index.html")]
    web = [url for url in pages if url.startswith(("http://", "https://"))]
    return (web or pages)[0] if pages else None


def slack_note(note: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` for notifications, ``blocks`` for the channel."""
    title = headline(note)
    link = main_link(note["links"])
    escalation = note["escalation"]
    owners = escalation["owners"]
    escalate = f"{owners.get('primary')} (backup {owners.get('backup')})"
    fields = [
        f"*Root cause:*\n{_esc(_cause_text(note.get('root_cause')))}",
        f"*Severity:*\n{_esc(str(note.get('severity') or 'none'))}",
        f"*Status:*\n{_esc(note['status'])}",
        f"*Escalate to:*\n{_esc(escalate)}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": shorten(title, 150)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    if escalation["must_include"]:
        must = ", ".join(escalation["must_include"])
        text = f"*Escalation path:* {escalation.get('path')}; include {must}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _esc(text)}})
    listed = [f"<{url}|{_esc(key)}>" for key, url in list(note["links"].items())[:_MAX_SLACK_LINKS]]
    if listed:
        text = "*Evidence:* " + " · ".join(listed)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    fallback = f"{title}: {link}" if link else title
    return {"text": _esc(fallback), "blocks": blocks}


def pagerduty_event(note: Mapping[str, Any], routing_key: str) -> dict[str, Any]:
    """A PagerDuty Events API v2 ``trigger``; the incident id dedupes repeated runs."""
    cause = note.get("root_cause") if isinstance(note.get("root_cause"), dict) else {}
    subsystem = (cause or {}).get("subsystem") or "tenancy"
    links = [
        {"href": url, "text": key}
        for key, url in note["links"].items()
        if url.startswith(("http://", "https://"))  # PagerDuty renders only web links
    ]
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": str(note.get("incident")),
        "payload": {
            "summary": shorten(headline(note), _PAGERDUTY_SUMMARY_CHARS),
            "source": f"tenancy/{subsystem}",
            "severity": PAGERDUTY_SEVERITY.get(str(note.get("severity")), "info"),
            "component": subsystem,
            "group": "tenancy",
            "class": (cause or {}).get("pattern") or "unknown",
            "custom_details": dict(note),
        },
        "links": links,
        "client": "tenancy-diag",
    }


def _cause_text(cause: object) -> str:
    if not isinstance(cause, dict):
        return "none found"
    return (
        f"{cause.get('pattern')} in {cause.get('subsystem')} (confidence {cause.get('confidence')})"
    )


def _esc(text: str) -> str:
    # Slack's mrkdwn reads &, < and > as markup; anything else is shown as typed.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
