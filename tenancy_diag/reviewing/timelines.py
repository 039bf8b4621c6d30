"""The detection and response timeline: alert starts, pattern onsets, runs, remediation calls,
rollbacks and the closure event, from manifests, summaries, findings and the audit log.

Pure: dicts in, :class:`Event` lists and one ordered DataFrame out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from tenancy_diag.analysis.calls import INTENT, outcome_unknown, unanswered
from tenancy_diag.errors import ConfigError
from tenancy_diag.times import parse_time

#: Kinds in the order they are shown when two events share a timestamp: cause before response.
KINDS = ("alert", "window", "onset", "run", "dry run", "remediation", "rollback", "close", "audit")
COLUMNS = ["at", "kind", "event", "actor", "source"]
# Parameters and manifest keys that carry an alert's start (the service's startsAt, or the
# incident_start a person passed).
_ALERT_KEYS = ("starts_at", "incident_start")


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str  # one of KINDS
    text: str
    actor: str = ""
    source: str = ""  # where it was read: a run id, or audit.jsonl


def when(value: object) -> datetime | None:
    """``value`` as a UTC time, None when absent or unreadable (never "now", unlike parse_time)."""
    if not isinstance(value, str | datetime) or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and value.strip().lower() == "now":
        return None
    try:
        return parse_time(value)
    except ConfigError:
        return None


def bundle_events(
    run_id: str,
    manifest: Mapping[str, Any],
    summary: Mapping[str, Any],
    findings: Mapping[str, Mapping[str, Any]],
    titles: Mapping[str, str] | None = None,
) -> list[Event]:
    """What one verified bundle says happened: alert starts, its window, onsets, its run."""
    events = alert_starts(run_id, manifest, summary)
    window = _mapping(summary.get("window")) or _mapping(manifest.get("window"))
    start, end = when(window.get("start")), when(window.get("end"))
    if start and end:
        events.append(
            Event(
                start,
                "window",
                f"run {run_id} looked at {_hm(start)} .. {_hm(end)} UTC",
                "",
                run_id,
            )
        )
    events.extend(_onsets(run_id, findings, titles or {}))
    actor = str(manifest.get("actor") or "")
    action = str(manifest.get("action") or "run")
    started = when(manifest.get("started_at") or summary.get("started_at"))
    finished = when(manifest.get("finished_at") or summary.get("finished_at"))
    notebooks = _mapping(manifest.get("notebooks"))
    if started:
        names = ", ".join(notebooks) or "no notebooks"
        events.append(Event(started, "run", f"{action} {run_id} started: {names}", actor, run_id))
    if finished:
        text = f"{action} {run_id} finished: {run_status(manifest, summary)}"
        events.append(Event(finished, "run", text, actor, run_id))
    return events


def alert_starts(
    run_id: str, manifest: Mapping[str, Any], summary: Mapping[str, Any]
) -> list[Event]:
    """Alert start times in a manifest (top level or any notebook's parameters) or summary."""
    found: dict[tuple[datetime, str], Event] = {}
    places: list[Mapping[str, Any]] = [manifest, summary]
    parameters = manifest.get("parameters")
    if isinstance(parameters, dict):
        places.extend(p for p in parameters.values() if isinstance(p, dict))
    for place in places:
        for key in _ALERT_KEYS:
            at = when(place.get(key))
            if at is not None:
                label = "alert fired (startsAt)" if key == "starts_at" else "incident start"
                found.setdefault((at, key), Event(at, "alert", label, "", run_id))
    return list(found.values())


def run_status(manifest: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    """``complete; policy_evaluation failing, api_health ok`` or ``errors in ...``."""
    notebooks = _mapping(manifest.get("notebooks"))
    statuses = ", ".join(
        f"{name} {info.get('status') or ('ran' if info.get('ran') else 'error')}"
        for name, info in notebooks.items()
        if isinstance(info, dict)
    )
    errors = [str(e) for e in summary.get("errors") or []]
    if not errors:
        errors = [n for n, i in notebooks.items() if isinstance(i, dict) and not i.get("ran")]
    head = f"errors in {', '.join(errors)}" if errors else "complete"
    return f"{head}; {statuses}" if statuses else head


def _onsets(
    run_id: str, findings: Mapping[str, Mapping[str, Any]], titles: Mapping[str, str]
) -> list[Event]:
    events = []
    for doc in findings.values():
        for pattern in doc.get("patterns") or []:
            if not isinstance(pattern, dict) or not isinstance(pattern.get("id"), str):
                continue
            at = when(pattern.get("onset"))
            if at is None:
                continue
            title = titles.get(pattern["id"], pattern["id"])
            regions = ", ".join(str(r) for r in pattern.get("regions") or [])
            where = f" in {regions}" if regions else ""
            text = f"{title} began{where} ({doc.get('subsystem', '?')})"
            events.append(Event(at, "onset", text, "", run_id))
    return events


def audit_events(records: Iterable[Mapping[str, Any]]) -> list[Event]:
    """One event per audit line with a readable time: runs, remediation calls, rollbacks, close.

    A dry run's calls changed nothing, so each dry run is one event, not one per call. A real
    call is one event, its result; an intent no result followed is shown as what it is, a call
    whose outcome nobody knows.
    """
    records = list(records)
    open_intents = {id(r) for r in unanswered(records)}
    events = []
    dry_runs: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for record in records:
        at = when(record.get("time"))
        if at is None:
            continue
        if record.get("phase") == INTENT:
            if id(record) in open_intents:
                actor = str(record.get("actor") or "")
                events.append(
                    Event(at, "remediation", outcome_unknown(record), actor, "audit.jsonl")
                )
            continue
        if record.get("action") == "remediate" and record.get("dry_run") is True:
            key = (str(record.get("run_id")), str(record.get("procedure") or "remediation"))
            dry_runs.setdefault(key, []).append(record)
            continue
        kind, text = _describe(record)
        events.append(Event(at, kind, text, str(record.get("actor") or ""), "audit.jsonl"))
    for (_, procedure), calls in dry_runs.items():
        at = min(a for a in (when(c.get("time")) for c in calls) if a is not None)
        text = f"{procedure} dry run: {len(calls)} call(s) shown, none made"
        events.append(Event(at, "dry run", text, str(calls[0].get("actor") or ""), "audit.jsonl"))
    return events


def _describe(record: Mapping[str, Any]) -> tuple[str, str]:
    action = str(record.get("action") or "?")
    result = str(record.get("result") or "")
    outcome = f" → {result}" if result else ""
    if action == "remediate":
        return _remediation(record, result, outcome)
    if action == "close":
        # tenancy-diag close records "closed: <reason>" as the result.
        said = result if result.startswith("closed") else f"closed{outcome}"
        return "close", f"incident {said}"
    if action in ("run", "rerun"):
        command = " ".join(str(c) for c in record.get("command") or [])
        run = record.get("run_id") or "no bundle"
        code = record.get("exit_code")
        exit_text = f" (exit {code})" if code is not None else ""
        return "run", f"audit: {action} {run}{outcome}{exit_text}: {command}"
    return "audit", f"{action}{outcome}"


def _remediation(record: Mapping[str, Any], result: str, outcome: str) -> tuple[str, str]:
    """A remediation's audit line: a call it made (``reverts`` when it undid an earlier one),
    a refusal, or the note it recorded; ``rollback`` is the call that would undo it."""
    procedure = record.get("procedure") or "remediation"
    step = str(record.get("step") or "")
    if step == "authorize":
        return "remediation", f"{procedure}: {result}"
    if step == "notes":
        return "remediation", f"{procedure} note: {result}"
    kind = "rollback" if record.get("reverts") else "remediation"
    undo = record.get("rollback")
    undo_text = f"; undo: {' '.join(map(str, undo))}" if isinstance(undo, list) and undo else ""
    return kind, f"{procedure}: {record.get('call') or step}{outcome}{undo_text}"


def timeline(events: Sequence[Event]) -> pd.DataFrame:
    """Events by time, cause before response at equal times, each distinct event once."""
    rank = {kind: i for i, kind in enumerate(KINDS)}
    seen: dict[tuple[datetime, str, str], Event] = {}
    for event in events:
        seen.setdefault((event.at, event.kind, event.text), event)
    unique = list(seen.values())
    ordered = sorted(
        enumerate(unique),
        key=lambda pair: (pair[1].at, rank.get(pair[1].kind, len(KINDS)), pair[0]),
    )
    rows = [
        {"at": e.at, "kind": e.kind, "event": e.text, "actor": e.actor, "source": e.source}
        for _, e in ordered
    ]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame


def first(events: Iterable[Event], kinds: Iterable[str]) -> datetime | None:
    wanted = set(kinds)
    times = [e.at for e in events if e.kind in wanted]
    return min(times) if times else None


def last(events: Iterable[Event], kinds: Iterable[str]) -> datetime | None:
    wanted = set(kinds)
    times = [e.at for e in events if e.kind in wanted]
    return max(times) if times else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _hm(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M}"
