"""The incident summary across notebooks: status table, root cause, escalation (summary.json).

Pure: findings documents in, one JSON-able dict out; the runbook decides the root cause, the
escalation owners and what an escalation must include.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tenancy_diag.analysis.findings import PatternMatch
from tenancy_diag.analysis.impact import affected_tenants, worst_severity
from tenancy_diag.analysis.rootcause import rank
from tenancy_diag.analysis.verdicts import MIN_CONFIDENCE, actions_for, escalation_for
from tenancy_diag.errors import ConfigError
from tenancy_diag.evidence import SUMMARY_SCHEMA
from tenancy_diag.runbook import Runbook
from tenancy_diag.times import iso, parse_time


@dataclass(frozen=True)
class NotebookReport:
    """One notebook's part of a run: its findings and where its files are in the bundle."""

    notebook: str
    subsystem: str
    findings: Mapping[str, Any]
    ran: bool  # executed to the end and wrote valid findings
    seconds: float
    files: Mapping[str, str]  # kind (notebook, html, findings, snapshots) -> relative path
    error: str | None = None  # what stopped it, when the runner saw it stop


def build_summary(
    *,
    incident: str,
    run_id: str,
    window: Mapping[str, str | None],
    started_at: datetime,
    finished_at: datetime,
    reports: Sequence[NotebookReport],
    book: Runbook,
) -> dict[str, Any]:
    matches = [(r.subsystem, m) for r in reports for m in _patterns(r.findings)]
    ranked = rank(matches, book)
    cause = ranked[0] if ranked else None
    severity = worst_severity([r.findings.get("severity") for r in reports])
    mitigation = (
        actions_for([PatternMatch(cause.pattern, cause.confidence, ())], book) if cause else []
    )
    return {
        "schema": SUMMARY_SCHEMA,
        "incident": incident,
        "run_id": run_id,
        "window": dict(window),
        "started_at": iso(started_at),
        "finished_at": iso(finished_at),
        "complete": all(r.ran for r in reports),
        "errors": [r.notebook for r in reports if not r.ran],
        "subsystems": [_row(r) for r in reports],
        "root_cause": cause.to_json() if cause else None,
        "candidates": [c.to_json() for c in ranked],
        "severity": severity,
        "escalation": escalation_for(severity, book),
        "escalation_must_include": {
            "timeline": _timeline(matches, started_at, finished_at),
            "affected_tenants": affected_tenants([r.findings for r in reports]),
            "mitigation_summary": mitigation,
        },
        # What each affected tenant suffered, per subsystem that measured it.
        "tenant_figures": _tenant_figures(reports),
    }


def _tenant_figures(reports: Sequence[NotebookReport]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for report in reports:
        figures = report.findings.get("tenant_figures")
        if not isinstance(figures, dict):
            continue
        for tenant, text in figures.items():
            out.setdefault(str(tenant), {})[report.subsystem] = str(text)
    return out


def _row(report: NotebookReport) -> dict[str, Any]:
    doc = report.findings
    return {
        "notebook": report.notebook,
        "subsystem": report.subsystem,
        "status": doc.get("status"),
        "severity": doc.get("severity"),
        "patterns": [{"id": m.id, "confidence": round(m.confidence, 3)} for m in _patterns(doc)],
        "summary": doc.get("summary") or "",
        # What the verdict could not see; its summary sentence names it too.
        "missing": [str(m) for m in doc.get("missing") or []],
        "error": report.error or doc.get("error"),
        "seconds": round(report.seconds, 2),
        "files": dict(report.files),
    }


def _patterns(doc: Mapping[str, Any]) -> list[PatternMatch]:
    """The findings' patterns; malformed entries are skipped (the notebook's HTML shows them)."""
    found = []
    for raw in doc.get("patterns") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            continue
        try:
            confidence = float(raw.get("confidence", 0.0))
            onset = parse_time(raw["onset"], "onset") if raw.get("onset") else None
        except (TypeError, ValueError, ConfigError):
            continue
        evidence = tuple(str(e) for e in raw.get("evidence") or [])
        regions = tuple(str(r) for r in raw.get("regions") or [])
        found.append(PatternMatch(raw["id"], confidence, evidence, onset, regions))
    return found


def _timeline(
    matches: Sequence[tuple[str, PatternMatch]], started: datetime, finished: datetime
) -> list[dict[str, str]]:
    events = [(started, "diagnostic run started"), (finished, "diagnostic run finished")]
    events.extend(
        (m.onset, f"{m.id} began ({subsystem}, confidence {m.confidence:.2f})")
        for subsystem, m in matches
        if m.onset is not None and m.confidence >= MIN_CONFIDENCE
    )
    return [{"at": iso(at), "event": text} for at, text in sorted(events, key=lambda e: e[0])]
