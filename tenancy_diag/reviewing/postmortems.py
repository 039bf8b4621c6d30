"""The retrospective the runbook's *Audit And Postmortem* asks for, as data.

Pure: gathered bundles, audit lines and the engineer's parameters in, one :class:`Postmortem`
out. Only verified bundles are quoted; the others are listed so a reader knows what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from tenancy_diag.analysis.calls import outcome_unknown, unanswered
from tenancy_diag.analysis.findings import PatternMatch
from tenancy_diag.analysis.impact import affected_tenants, worst_severity
from tenancy_diag.analysis.verdicts import actions_for
from tenancy_diag.redacting import Redactor, default_redactor
from tenancy_diag.reviewing.gathering import AuditLog, GatheredBundle
from tenancy_diag.reviewing.timelines import Event, audit_events, bundle_events, first, last
from tenancy_diag.reviewing.timelines import timeline as ordered
from tenancy_diag.runbook import Runbook

#: "Every incident requires a retrospective within five business days."
RETROSPECTIVE_BUSINESS_DAYS = 5
EVIDENCE_COLUMNS = ["run", "subsystem", "pattern", "confidence", "onset", "regions", "evidence"]
CANDIDATE_COLUMNS = ["pattern", "title", "subsystem", "confidence", "explains", "runs"]
#: The subsystem of verification_after_recovery's findings: a check of the recovery, not a
#: diagnosis, so its FAIL items say "not recovered yet" rather than "this subsystem failed".
RECOVERY = "recovery"


@dataclass(frozen=True)
class Request:
    """What the engineer adds to the evidence: the notebook's parameters, as given."""

    incident: str
    title: str = ""
    incident_commander: str = ""
    summary_note: str = ""
    corrective_actions: Sequence[object] = ()
    prevention_tasks: Sequence[object] = ()
    contributing_factors: Sequence[object] = ()


@dataclass(frozen=True)
class ActionItem:
    action: str
    owner: str
    due: date | None
    kind: str  # corrective, prevention
    flags: tuple[str, ...]  # what is missing: an owner, a due date, a readable due date


@dataclass(frozen=True)
class Impact:
    tenants: list[str]  # seen by more subsystems first
    regions: list[str]
    subsystems: list[str]  # failing or degraded in any verified bundle
    severity: str | None  # the worst seen
    start: datetime | None
    start_basis: str  # which evidence gave the start
    end: datetime | None
    closed: bool  # the audit log holds a closure event
    summaries: list[str]  # each failing subsystem's own sentence, latest bundle first
    recovery: str = ""  # the latest recovery verification's status and summary; "" if none ran

    @property
    def duration(self) -> timedelta | None:
        return self.end - self.start if self.start and self.end else None


@dataclass(frozen=True)
class RootCause:
    pattern: str | None
    title: str
    subsystem: str
    confidence: float | None
    explains: list[str]
    causes: list[str]  # the runbook's causes of the pattern
    run_id: str  # the bundle whose summary named it
    disagreements: list[str]  # other bundles naming another cause
    candidates: pd.DataFrame
    evidence: pd.DataFrame
    contributing: list[str]


@dataclass(frozen=True)
class Postmortem:
    request: Request
    generated_at: datetime
    bundles: tuple[GatheredBundle, ...]
    impact: Impact
    timeline: pd.DataFrame
    root_cause: RootCause
    actions: list[ActionItem]
    retrospective_due: date | None
    escalation: dict[str, Any] | None
    mitigation: list[str]  # what was done (remediation calls, rollbacks) then what to do
    notes: list[str] = field(default_factory=list)  # unreadable audit lines and the like

    @property
    def trusted(self) -> list[GatheredBundle]:
        return [b for b in self.bundles if b.trusted]

    @property
    def untrusted(self) -> list[GatheredBundle]:
        return [b for b in self.bundles if not b.trusted]

    @property
    def flagged(self) -> list[ActionItem]:
        return [a for a in self.actions if a.flags]


def assemble(
    request: Request,
    bundles: Sequence[GatheredBundle],
    audit: AuditLog,
    book: Runbook,
    *,
    now: datetime | None = None,
    redactor: Redactor | None = None,
) -> Postmortem:
    """The retrospective of ``request.incident`` from its bundles and audit lines."""
    redact = (redactor or default_redactor()).redact
    request = _redacted(request, redact)
    trusted = sorted((b for b in bundles if b.trusted), key=_started)
    titles = {name: p.title for name, p in book.patterns.items()}
    events = [
        e
        for b in trusted
        for e in bundle_events(b.run_id, b.manifest, b.summary, b.findings, titles)
    ]
    events += audit_events(audit.records)
    events = [Event(e.at, e.kind, redact(e.text), redact(e.actor), e.source) for e in events]
    impact = impact_of(trusted, events)
    cause = root_cause_of(trusted, book, request.contributing_factors)
    return Postmortem(
        request=request,
        generated_at=now or datetime.now(UTC),
        bundles=tuple(bundles),
        impact=impact,
        timeline=ordered(events),
        root_cause=cause,
        actions=[
            *action_items(request.corrective_actions, "corrective"),
            *action_items(request.prevention_tasks, "prevention"),
        ],
        retrospective_due=retrospective_due(impact.start or first(events, ("run",))),
        escalation=escalation(impact.severity, book, request.incident_commander),
        mitigation=mitigation(events, cause, book),
        # A call whose outcome nobody knows is a loose end the review must close, not a row.
        notes=[*audit.problems, *(redact(outcome_unknown(r)) for r in unanswered(audit.records))],
    )


def _redacted(request: Request, redact: Callable[[str], str]) -> Request:
    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return Request(
        request.incident,
        redact(request.title),
        redact(request.incident_commander),
        redact(request.summary_note),
        clean(list(request.corrective_actions)),
        clean(list(request.prevention_tasks)),
        clean(list(request.contributing_factors)),
    )


def _started(bundle: GatheredBundle) -> str:
    return str(bundle.manifest.get("started_at") or bundle.run_id)


def impact_of(trusted: Sequence[GatheredBundle], events: Sequence[Event]) -> Impact:
    docs = [doc for b in trusted for doc in b.findings.values()]
    regions: list[str] = []
    for doc in docs:
        regions.extend(str(r) for r in doc.get("regions") or [])
        for pattern in doc.get("patterns") or []:
            if isinstance(pattern, dict):
                regions.extend(str(r) for r in pattern.get("regions") or [])
    hurt = [
        d
        for d in docs
        if d.get("status") in ("failing", "degraded") and d.get("subsystem") != RECOVERY
    ]
    severities = [d.get("severity") for d in docs] + [b.summary.get("severity") for b in trusted]
    start, basis = _start(events)
    closed_at = last(events, ("close",))
    end = closed_at or last(events, ("run", "remediation", "rollback"))
    latest_first = [doc for b in reversed(trusted) for doc in b.findings.values()]
    summaries = [str(d.get("summary")) for d in latest_first if d in hurt and d.get("summary")]
    recovery = next(
        (
            f"{d.get('status')}: {d.get('summary') or 'no summary'}"
            for d in latest_first
            if d.get("subsystem") == RECOVERY
        ),
        "",
    )
    return Impact(
        tenants=affected_tenants(docs),
        regions=sorted(set(regions)),
        subsystems=sorted({str(d.get("subsystem")) for d in hurt}),
        severity=worst_severity(severities),
        start=start,
        start_basis=basis,
        end=end,
        closed=closed_at is not None,
        summaries=list(dict.fromkeys(summaries)),
        recovery=recovery,
    )


def _start(events: Sequence[Event]) -> tuple[datetime | None, str]:
    for kinds, basis in (
        (("alert",), "the earliest alert start"),
        (("onset",), "the earliest failure-pattern onset (no alert start recorded)"),
        (("window",), "the earliest diagnostic window (no alert start or onset recorded)"),
    ):
        at = first(events, kinds)
        if at is not None:
            return at, basis
    return None, "unknown: no alert start, onset or window in any verified bundle"


def root_cause_of(
    trusted: Sequence[GatheredBundle], book: Runbook, factors: Sequence[object] = ()
) -> RootCause:
    """The latest verified summary's root cause, every bundle's candidates and the evidence."""
    named = [
        (b.run_id, b.summary["root_cause"])
        for b in trusted
        if isinstance(b.summary.get("root_cause"), dict)
    ]
    run_id, cause = named[-1] if named else ("", {})
    pattern = cause.get("pattern")
    text = book.patterns.get(pattern) if isinstance(pattern, str) else None
    disagreements = [
        f"run {r} named {c.get('pattern')}" for r, c in named if c.get("pattern") != pattern
    ]
    candidates = _candidates(trusted, book)
    explains = [str(e) for e in cause.get("explains") or []]
    contributing = [
        f"{book.patterns[e].title if e in book.patterns else e} (caused by {pattern})"
        for e in explains
    ]
    contributing += [f"runbook cause of {text.title}: {c}" for c in text.causes] if text else []
    contributing += [str(f) for f in factors if str(f).strip()]
    return RootCause(
        pattern=pattern if isinstance(pattern, str) else None,
        title=text.title if text else str(pattern or "not determined"),
        subsystem=str(cause.get("subsystem") or ""),
        confidence=_number(cause.get("confidence")),
        explains=explains,
        causes=list(text.causes) if text else [],
        run_id=run_id,
        disagreements=disagreements,
        candidates=candidates,
        evidence=evidence_table(trusted),
        contributing=contributing,
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _candidates(trusted: Sequence[GatheredBundle], book: Runbook) -> pd.DataFrame:
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for bundle in trusted:
        for c in bundle.summary.get("candidates") or []:
            if not isinstance(c, dict) or not isinstance(c.get("pattern"), str):
                continue
            key = (c["pattern"], str(c.get("subsystem") or ""))
            row = best.setdefault(
                key,
                {
                    "pattern": key[0],
                    "title": book.patterns[key[0]].title if key[0] in book.patterns else key[0],
                    "subsystem": key[1],
                    "confidence": 0.0,
                    "explains": "",
                    "runs": [],
                },
            )
            row["confidence"] = max(row["confidence"], _number(c.get("confidence")) or 0.0)
            row["explains"] = ", ".join(str(e) for e in c.get("explains") or []) or row["explains"]
            row["runs"].append(bundle.run_id)
    rows = [{**r, "runs": ", ".join(r["runs"])} for r in best.values()]
    return pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)


def evidence_table(trusted: Sequence[GatheredBundle]) -> pd.DataFrame:
    """Every pattern a verified bundle's findings name, with its evidence lines."""
    rows = []
    for bundle in trusted:
        for doc in bundle.findings.values():
            for p in doc.get("patterns") or []:
                if not isinstance(p, dict) or not isinstance(p.get("id"), str):
                    continue
                rows.append(
                    {
                        "run": bundle.run_id,
                        "subsystem": str(doc.get("subsystem") or ""),
                        "pattern": p["id"],
                        "confidence": p.get("confidence"),
                        "onset": p.get("onset") or "",
                        "regions": ", ".join(str(r) for r in p.get("regions") or []),
                        "evidence": "; ".join(str(e) for e in p.get("evidence") or []),
                    }
                )
    return pd.DataFrame(rows, columns=EVIDENCE_COLUMNS)


def action_items(raw: Sequence[object], kind: str) -> list[ActionItem]:
    """``[{"action", "owner", "due"}]`` (or bare strings) as items, flagged for what they lack."""
    items = []
    for entry in raw:
        fields = entry if isinstance(entry, Mapping) else {"action": entry}
        action = str(fields.get("action") or fields.get("task") or "").strip()
        owner = str(fields.get("owner") or "").strip()
        due_text = str(fields.get("due") or "").strip()
        flags = []
        if not action:
            flags.append("no action text")
        if not owner:
            flags.append("no owner")
        due = None
        if not due_text:
            flags.append("no due date")
        else:
            try:
                due = date.fromisoformat(due_text[:10])
            except ValueError:
                flags.append(f"due date {due_text!r} is not YYYY-MM-DD")
        items.append(ActionItem(action or "(none given)", owner, due, kind, tuple(flags)))
    return items


def retrospective_due(start: datetime | None) -> date | None:
    """Five business days (Monday to Friday; holidays are not known here) after ``start``."""
    if start is None:
        return None
    day = start.astimezone(UTC).date()
    left = RETROSPECTIVE_BUSINESS_DAYS
    while left:
        day += timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    return day


def escalation(severity: str | None, book: Runbook, commander: str = "") -> dict[str, Any] | None:
    """The escalation matrix's owners for ``severity``, and the declared incident commander."""
    if severity is None:
        return None
    owners = book.escalation.for_severity(severity)
    return {
        "severity": severity,
        "definition": book.severities.get(severity, ""),
        "primary": owners.primary,
        "backup": owners.backup,
        "path": owners.path,
        "incident_commander": commander,
        "must_include": list(book.escalation.must_include),
    }


def mitigation(events: Sequence[Event], cause: RootCause, book: Runbook) -> list[str]:
    """Remediation calls and rollbacks made, then the runbook's actions for the root cause."""
    done = [
        f"{e.at:%Y-%m-%d %H:%M} UTC {e.kind}: {e.text}"
        for e in sorted(events, key=lambda e: e.at)
        if e.kind in ("remediation", "rollback")
    ]
    advised = []
    if cause.pattern and cause.confidence is not None:
        match = PatternMatch(cause.pattern, float(cause.confidence), ())
        advised = [f"runbook: {a}" for a in actions_for([match], book)]
    return [*dict.fromkeys(done), *advised]
