"""The postmortem: gathering verified bundles, the timeline, impact, actions and the exports.

Bundles are small hand-made folders written with the runner's own manifest writer, so the
postmortem's sha256 check is proven against the format the runner really writes.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from tenancy_diag import runbook
from tenancy_diag.redacting import Redactor
from tenancy_diag.reviewing import writing
from tenancy_diag.reviewing.gathering import AuditLog, gather_bundles, read_audit
from tenancy_diag.reviewing.notebook import finish, open_postmortem
from tenancy_diag.reviewing.postmortems import (
    Postmortem,
    Request,
    action_items,
    assemble,
    retrospective_due,
)
from tenancy_diag.reviewing.timelines import Event, audit_events, bundle_events, timeline
from tenancy_diag.running.bundles import Bundle, verify_bundle, write_json, write_manifest

INCIDENT = "INC-42"
BOOK = runbook.default()
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _findings(subsystem: str, **extra: Any) -> dict[str, Any]:
    return {
        "schema": "tenancy-diag/findings/v1",
        "subsystem": subsystem,
        "incident": INCIDENT,
        "status": "ok",
        "severity": None,
        "summary": f"{subsystem}: every SLO met; no failure pattern.",
        "patterns": [],
        "regions": [],
        "tenants": [],
        **extra,
    }


def make_bundle(
    out: Path,
    run_id: str,
    findings: dict[str, dict[str, Any]],
    *,
    started: str,
    finished: str,
    root_cause: dict[str, Any] | None = None,
    incident_start: str = "",
    notebooks: dict[str, str] | None = None,
) -> Path:
    """A finished bundle: findings, summary.json and a manifest covering them."""
    root = out / INCIDENT / run_id
    (root / "findings").mkdir(parents=True)
    for name, doc in findings.items():
        write_json(root / "findings" / f"{name}.json", doc)
    severities = [d["severity"] for d in findings.values() if d.get("severity")]
    write_json(
        root / "summary.json",
        {
            "schema": "tenancy-diag/summary/v1",
            "incident": INCIDENT,
            "run_id": run_id,
            "window": {"start": None, "end": finished, "lookback": None},
            "started_at": started,
            "finished_at": finished,
            "complete": True,
            "errors": [],
            "root_cause": root_cause,
            "candidates": [root_cause] if root_cause else [],
            "severity": min(severities) if severities else None,
        },
    )
    names = notebooks or {name: str(doc["subsystem"]) for name, doc in findings.items()}
    params = {"incident_id": INCIDENT}
    if incident_start:
        params["incident_start"] = incident_start
    write_manifest(
        Bundle(root, INCIDENT, run_id),
        {
            "run_id": run_id,
            "incident": INCIDENT,
            "action": "run",
            "actor": "oncall",
            "started_at": started,
            "finished_at": finished,
            "parameters": {name: params for name in names},
            "notebooks": {
                name: {"subsystem": sub, "ran": True, "status": findings[name]["status"]}
                for name, sub in names.items()
            },
        },
    )
    return root


POLICY = _findings(
    "policy",
    status="failing",
    severity="sev2",
    summary="policy: Policy evaluation timeout in us-east-1 (failing).",
    regions=["us-east-1"],
    tenants=["t-3", "t-1", "t-2"],
    patterns=[
        {
            "id": "policy_timeout",
            "confidence": 0.95,
            "evidence": ["policy p99 latency over 250 ms in us-east-1"],
            "onset": "2026-11-27T03:55:00Z",
            "regions": ["us-east-1"],
        }
    ],
)
CONTROLLER = _findings(
    "controller",
    status="failing",
    severity="sev1",
    regions=["eu-west-1"],
    tenants=["t-1", "t-9"],
    patterns=[
        {
            "id": "reconcile_backlog",
            "confidence": 0.9,
            "evidence": ["queue_depth 241 > 100"],
            "onset": "2026-11-27T04:06:00Z",
            "regions": ["eu-west-1"],
        }
    ],
)
CAUSE = {
    "pattern": "policy_timeout",
    "subsystem": "policy",
    "confidence": 0.95,
    "explains": ["reconcile_backlog"],
}


def _audit(out: Path, *records: dict[str, Any]) -> Path:
    path = out / "audit.jsonl"
    with path.open("a", encoding="utf-8") as handle:
        for record in records:
            base = {"schema": "tenancy-diag/audit/v1", "actor": "alice", "command": []}
            handle.write(json.dumps({**base, "incident": INCIDENT, **record}) + "\n")
    return path


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Two finished diagnosis bundles of INC-42 and an audit log with a remediation and close."""
    make_bundle(
        tmp_path,
        "20261127T040000Z-aaaaaa",
        {"policy_evaluation": POLICY, "api_health": _findings("api")},
        started="2026-11-27T04:00:00Z",
        finished="2026-11-27T04:01:00Z",
        root_cause=CAUSE,
        incident_start="2026-11-27T03:53:00Z",
    )
    make_bundle(
        tmp_path,
        "20261127T043000Z-bbbbbb",
        {"controller_health": CONTROLLER},
        started="2026-11-27T04:30:00Z",
        finished="2026-11-27T04:31:00Z",
    )
    _audit(
        tmp_path,
        {"action": "run", "run_id": "20261127T040000Z-aaaaaa", "result": "ok", "exit_code": 0,
         "time": "2026-11-27T04:01:01Z"},
        {"action": "remediate", "run_id": "r", "result": "ok", "exit_code": 0,
         "time": "2026-11-27T04:40:00Z", "procedure": "policy_cache_refresh", "step": 1,
         "call": "POST /cache/refresh", "rollback": ["admin-api", "POST", "/cache/undo"],
         "dry_run": False},
        {"action": "remediate", "run_id": "r", "result": "ok", "exit_code": 0,
         "time": "2026-11-27T04:45:00Z", "procedure": "policy_cache_refresh", "step": 1,
         "call": "POST /cache/restore", "rollback": None, "reverts": True, "dry_run": False},
        {"action": "close", "run_id": None, "result": "closed: alerts resolved",
         "exit_code": 0, "time": "2026-11-27T05:23:00Z"},
        {"action": "close", "incident": "OTHER", "run_id": None, "result": "ok", "exit_code": 0,
         "time": "2026-11-27T03:00:00Z"},
    )  # fmt: skip
    return tmp_path


def _postmortem(out: Path, **params: Any) -> Postmortem:
    return open_postmortem({"incident_id": INCIDENT, "evidence_dir": str(out), **params}, now=NOW)


# --- timeline -------------------------------------------------------------------------------


def test_timeline_orders_by_time_then_cause_before_response_and_drops_repeats() -> None:
    at = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
    later = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
    events = [
        Event(later, "close", "incident closed"),
        Event(at, "remediation", "cache refresh"),
        Event(at, "run", "run A started"),
        Event(at, "alert", "incident start", source="A"),
        Event(at, "alert", "incident start", source="B"),  # the same alert, seen by run B too
        Event(datetime(2026, 11, 27, 3, 0, tzinfo=UTC), "onset", "timeout began"),
    ]
    frame = timeline(events)
    assert list(frame["event"]) == [
        "timeout began",
        "incident start",
        "run A started",
        "cache refresh",
        "incident closed",
    ]
    assert frame.loc[1, "source"] == "A"
    assert str(frame["at"].dt.tz) == "UTC"


def test_alert_starts_come_from_the_service_and_the_incident_start() -> None:
    manifest = {
        "starts_at": "2026-11-27T03:50:00Z",
        "parameters": {
            "policy_evaluation": {"incident_start": "2026-11-27T03:53:00Z"},
            "api_health": {"incident_start": "2026-11-27T03:53:00Z", "starts_at": "now"},
        },
    }
    events = bundle_events("run-1", manifest, {}, {})
    assert [(e.at.minute, e.kind, e.text) for e in events] == [
        (50, "alert", "alert fired (startsAt)"),
        (53, "alert", "incident start"),
    ]


def test_audit_events_name_remediation_calls_rollbacks_and_the_closure(out: Path) -> None:
    log = read_audit(out / "audit.jsonl", INCIDENT)
    kinds = [(e.kind, e.text) for e in audit_events(log.records)]
    assert [k for k, _ in kinds] == ["run", "remediation", "rollback", "close"]
    assert kinds[1][1] == (
        "policy_cache_refresh: POST /cache/refresh → ok; undo: admin-api POST /cache/undo"
    )
    assert kinds[2][1] == "policy_cache_refresh: POST /cache/restore → ok"
    assert kinds[3][1] == "incident closed: alerts resolved"


def test_a_dry_run_is_one_event_and_refusals_and_notes_say_so() -> None:
    def line(step: str, dry: bool, run: str, minute: int, result: str = "dry run") -> dict:
        return {"action": "remediate", "procedure": "webhook_requeue", "step": step,
                "call": f"POST /x/{step}", "dry_run": dry, "run_id": run, "result": result,
                "time": f"2026-11-27T04:{minute:02d}:00Z", "actor": "bob"}  # fmt: skip

    records = [
        line("a", True, "r1", 1),
        line("b", True, "r1", 2),
        line("authorize", False, "r2", 3, "refused: confirm 'x' is not the incident id"),
        line("notes", False, "r3", 4, "cache key: k; root cause: stale"),
    ]
    events = {(e.kind, e.text) for e in audit_events(records)}
    assert events == {
        ("dry run", "webhook_requeue dry run: 2 call(s) shown, none made"),
        ("remediation", "webhook_requeue: refused: confirm 'x' is not the incident id"),
        ("remediation", "webhook_requeue note: cache key: k; root cause: stale"),
    }


def test_a_call_is_one_event_and_an_intent_without_result_an_unknown_outcome() -> None:
    def line(phase: str, call_id: str, minute: int, result: str) -> dict:
        return {"action": "remediate", "procedure": "controller_restart", "step": "restart",
                "call": f"kubernetes DELETE /pods/{call_id}", "dry_run": False, "run_id": "r1",
                "result": result, "phase": phase, "call_id": call_id, "actor": "bob",
                "time": f"2026-11-27T04:{minute:02d}:00Z"}  # fmt: skip

    records = [
        line("intent", "p1", 1, "intent: about to call"),
        line("result", "p1", 2, "ok: deleted=p1"),
        line("intent", "p2", 3, "intent: about to call"),
    ]
    events = [(e.kind, e.text) for e in audit_events(records)]
    assert events == [
        ("remediation", "controller_restart: kubernetes DELETE /pods/p1 → ok: deleted=p1"),
        (
            "remediation",
            "controller_restart: outcome unknown, check kubernetes DELETE /pods/p2 (intent "
            "recorded at 2026-11-27T04:03:00Z, no result: the run died during the call)",
        ),
    ]


def test_audit_log_keeps_the_incident_and_reports_unreadable_lines(tmp_path: Path) -> None:
    path = _audit(tmp_path, {"action": "run", "time": "2026-11-27T04:00:00Z"})
    with path.open("a", encoding="utf-8") as handle:
        handle.write("not json\n")
        handle.write(json.dumps({"schema": "other/v9", "incident": INCIDENT}) + "\n")
    log = read_audit(path, INCIDENT)
    assert len(log.records) == 1
    assert [p.split(" line ")[1][:1] for p in log.problems] == ["2", "3"]
    assert read_audit(tmp_path / "missing.jsonl", INCIDENT) == AuditLog(())


def test_report_timeline_holds_alert_runs_onsets_remediation_and_close_in_order(
    out: Path,
) -> None:
    frame = _postmortem(out).timeline
    assert list(frame["at"]) == sorted(frame["at"])
    kinds = list(frame["kind"])
    for earlier, later in [("alert", "onset"), ("onset", "run"), ("remediation", "rollback")]:
        assert kinds.index(earlier) < kinds.index(later)
    assert kinds[-1] == "close"
    assert "run 20261127T043000Z-bbbbbb finished: complete" in " ".join(frame["event"])


# --- impact ---------------------------------------------------------------------------------


def test_impact_aggregates_every_bundle(out: Path) -> None:
    impact = _postmortem(out).impact
    # t-1 is named by two subsystems, so it leads; then by best rank in any list.
    assert impact.tenants == ["t-1", "t-3", "t-9", "t-2"]
    assert impact.regions == ["eu-west-1", "us-east-1"]
    assert impact.subsystems == ["controller", "policy"]
    assert impact.severity == "sev1"
    assert impact.start == datetime(2026, 11, 27, 3, 53, tzinfo=UTC)
    assert impact.closed and impact.end == datetime(2026, 11, 27, 5, 23, tzinfo=UTC)
    assert impact.duration is not None and impact.duration.total_seconds() == 90 * 60


def test_an_incident_without_closure_event_is_still_open(out: Path) -> None:
    lines = (out / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    kept = [ln for ln in lines if '"close"' not in ln]
    (out / "audit.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
    pm = _postmortem(out)
    assert not pm.impact.closed
    assert pm.impact.end == datetime(2026, 11, 27, 4, 45, tzinfo=UTC)  # the rollback
    assert "still open" in writing.section(pm, "impact")


def test_recovery_verification_is_reported_apart_from_the_failing_subsystems(out: Path) -> None:
    recovery = _findings(
        "recovery",
        status="failing",
        summary="3 of 7 checklist items FAIL: queues not drained.",
        regions=["us-east-1"],
    )
    make_bundle(
        out,
        "20261127T050000Z-cccccc",
        {"verification_after_recovery": recovery},
        started="2026-11-27T05:00:00Z",
        finished="2026-11-27T05:01:00Z",
    )
    pm = _postmortem(out)
    assert pm.impact.subsystems == ["controller", "policy"]
    assert pm.impact.recovery == "failing: 3 of 7 checklist items FAIL: queues not drained."
    assert "**Recovery verification:** failing: 3 of 7" in writing.section(pm, "impact")


def test_root_cause_and_contributing_factors(out: Path) -> None:
    rc = _postmortem(out, contributing_factors=["cache TTL too short"]).root_cause
    assert (rc.pattern, rc.title, rc.run_id) == (
        "policy_timeout",
        "Policy evaluation timeout",
        "20261127T040000Z-aaaaaa",
    )
    assert "Excessive reconcile backlog (caused by policy_timeout)" in rc.contributing
    assert any("downstream policy service slowness" in c for c in rc.contributing)
    assert rc.contributing[-1] == "cache TTL too short"
    assert set(rc.evidence["pattern"]) == {"policy_timeout", "reconcile_backlog"}


def test_escalation_owners_come_from_the_runbook(out: Path) -> None:
    esc = _postmortem(out, incident_commander="Jo").escalation
    assert esc is not None
    sev1 = BOOK.escalation.sev1
    assert (esc["primary"], esc["backup"], esc["path"]) == (sev1.primary, sev1.backup, sev1.path)
    assert esc["incident_commander"] == "Jo"


# --- actions --------------------------------------------------------------------------------


def test_actions_without_owner_or_due_date_are_flagged() -> None:
    items = action_items(
        [
            {"action": "Raise the timeout", "owner": "policy team", "due": "2026-12-04"},
            {"action": "Add a cache alert", "due": "2026-12-04"},
            {"action": "Review quotas", "owner": "sre"},
            {"action": "Fix docs", "owner": "sre", "due": "next week"},
            "Bare text",
        ],
        "corrective",
    )
    assert items[0].flags == () and items[0].due == date(2026, 12, 4)
    assert items[1].flags == ("no owner",)
    assert items[2].flags == ("no due date",)
    assert items[3].flags == ("due date 'next week' is not YYYY-MM-DD",)
    assert items[4].flags == ("no owner", "no due date")


def test_retrospective_is_due_five_business_days_after_the_start() -> None:
    friday = datetime(2026, 11, 27, 3, 53, tzinfo=UTC)
    assert retrospective_due(friday) == date(2026, 12, 4)
    wednesday = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    assert retrospective_due(wednesday) == date(2026, 12, 2)
    assert retrospective_due(None) is None


# --- verification ---------------------------------------------------------------------------


def test_a_tampered_bundle_is_reported_and_not_trusted(out: Path) -> None:
    root = out / INCIDENT / "20261127T043000Z-bbbbbb"
    doc = json.loads((root / "findings" / "controller_health.json").read_text(encoding="utf-8"))
    doc["tenants"] = ["t-planted"]
    write_json(root / "findings" / "controller_health.json", doc)
    assert verify_bundle(root)  # the runner's own check agrees it was tampered with

    pm = _postmortem(out)
    assert [b.run_id for b in pm.untrusted] == ["20261127T043000Z-bbbbbb"]
    assert pm.untrusted[0].problems == (
        "findings/controller_health.json changed after the run (its sha256 or size differs)",
    )
    assert "t-planted" not in pm.impact.tenants and "t-9" not in pm.impact.tenants
    assert pm.impact.severity == "sev2"
    markdown = writing.to_markdown(pm)
    assert "**Failed verification:** 20261127T043000Z-bbbbbb" in markdown
    assert "1 bundle(s) failed verification and were left out" in markdown


def test_bundles_without_manifest_are_untrusted_and_own_and_postmortems_are_skipped(
    out: Path,
) -> None:
    (out / INCIDENT / "20261127T050000Z-cccccc" / "findings").mkdir(parents=True)
    own = out / INCIDENT / "20261127T060000Z-eeeeee"
    own.mkdir()
    make_bundle(
        out,
        "20261127T055000Z-dddddd",
        {"postmortem": _findings("postmortem", tenants=["t-from-old-report"])},
        started="2026-11-27T05:50:00Z",
        finished="2026-11-27T05:51:00Z",
    )
    bundles = gather_bundles(out, INCIDENT, skip=own)
    assert [(b.run_id, b.trusted) for b in bundles] == [
        ("20261127T040000Z-aaaaaa", True),
        ("20261127T043000Z-bbbbbb", True),
        ("20261127T050000Z-cccccc", False),
    ]
    assert "no manifest.json" in bundles[2].problems[0]


# --- documents ------------------------------------------------------------------------------


def test_markdown_and_html_hold_every_section(out: Path, tmp_path: Path) -> None:
    pm = _postmortem(
        out,
        corrective_actions=[{"action": "Raise the timeout", "owner": "po", "due": "2026-12-04"}],
    )
    paths = writing.export(pm, tmp_path / "export")
    markdown = paths["markdown"].read_text(encoding="utf-8")
    page = paths["html"].read_text(encoding="utf-8")
    for title in writing.SECTIONS.values():
        assert f"\n## {title}\n" in markdown
        assert f"<h2>{title}</h2>" in page
    for needle in ["Policy evaluation timeout", "t-1", "POST /cache/refresh", "incident closed"]:
        assert needle in markdown and needle in page
    assert "Retrospective due: 2026-12-04" in markdown
    assert "<table>" in page


def test_html_escapes_markup_from_parameters_and_evidence(out: Path) -> None:
    pm = _postmortem(
        out,
        title="<b>Outage</b>",
        corrective_actions=[{"action": "<script>alert(1)</script> | [x](javascript:alert(1))"}],
    )
    page = writing.to_html(writing.to_markdown(pm), "<b>Outage</b>")
    assert "<script>" not in page and "<b>Outage" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>&lt;b&gt;Outage&lt;/b&gt;</title>" in page
    assert 'href="javascript' not in page
    # The pipe stays inside its cell: the actions table keeps five columns.
    row = next(ln for ln in writing.section(pm, "actions").splitlines() if "alert(1)" in ln)
    assert row.replace("\\|", "").count("|") == 6


def test_parameters_are_redacted(out: Path) -> None:
    pm = _postmortem(out, summary_note="rotated password=hunter2 at 04:50")
    markdown = writing.to_markdown(pm, Redactor())
    assert "hunter2" not in markdown
    assert "password=\\[REDACTED\\]" in markdown


def test_findings_name_the_exports_and_say_unknown_without_bundles(
    out: Path, tmp_path: Path
) -> None:
    pm = _postmortem(out, corrective_actions=["no owner yet"])
    paths = writing.export(pm, tmp_path / "b")
    findings = finish(pm, paths, tmp_path / "b" / "findings" / "postmortem.json")
    data = json.loads((tmp_path / "b" / "findings" / "postmortem.json").read_text("utf-8"))
    assert data["schema"] == "tenancy-diag/findings/v1"
    assert (findings.status, data["subsystem"]) == ("ok", "postmortem")
    assert data["details"]["exports"] == {"markdown": "postmortem.md", "html": "postmortem.html"}
    assert data["details"]["flagged_actions"] == [
        {"action": "no owner yet", "flags": ["no owner", "no due date"]}
    ]
    empty = open_postmortem({"incident_id": "INC-NONE", "evidence_dir": str(out)}, now=NOW)
    assert finish(empty, {}, tmp_path / "none.json").status == "unknown"
    assert "_(none)_" in writing.section(empty, "timeline")


def test_assemble_is_pure_given_its_inputs(out: Path) -> None:
    bundles = gather_bundles(out, INCIDENT)
    log = read_audit(out / "audit.jsonl", INCIDENT)
    first = assemble(Request(INCIDENT), bundles, log, BOOK, now=NOW)
    second = assemble(Request(INCIDENT), bundles, log, BOOK, now=NOW)
    assert writing.to_markdown(first) == writing.to_markdown(second)
