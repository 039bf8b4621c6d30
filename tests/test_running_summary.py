"""The incident summary: root cause by the runbook, worst severity, escalation, its page."""

from __future__ import annotations

from datetime import UTC, datetime

from tenancy_diag import runbook
from tenancy_diag.analysis.impact import affected_tenants
from tenancy_diag.running.rendering import render_index
from tenancy_diag.running.rerun import compare_findings
from tenancy_diag.running.summary import NotebookReport, build_summary

START = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
END = datetime(2026, 11, 27, 3, 1, tzinfo=UTC)


def _report(notebook, subsystem, status, severity=None, patterns=(), tenants=(), ran=True):
    findings = {
        "schema": "tenancy-diag/findings/v1",
        "subsystem": subsystem,
        "status": status,
        "severity": severity,
        "patterns": list(patterns),
        "tenants": list(tenants),
        "summary": f"{subsystem} is {status}",
        "error": None,
    }
    files = {"html": f"html/{notebook}.html", "findings": f"findings/{notebook}.json"}
    return NotebookReport(notebook, subsystem, findings, ran, 1.0, files)


def _summary(reports):
    return build_summary(
        incident="INC-1",
        run_id="r1",
        window={"start": None, "end": "2026-11-27T03:00:00Z", "lookback": None},
        started_at=START,
        finished_at=END,
        reports=reports,
        book=runbook.default(),
    )


def test_policy_timeout_driving_a_backlog_ranks_first():
    summary = _summary(
        [
            _report(
                "controller_health",
                "controller",
                "failing",
                "sev2",
                [
                    {
                        "id": "reconcile_backlog",
                        "confidence": 0.95,
                        "onset": "2026-11-27T02:20:00Z",
                        "evidence": [],
                    }
                ],
                ["t-1", "t-2"],
            ),
            _report(
                "policy_evaluation",
                "policy",
                "failing",
                "sev1",
                [
                    {
                        "id": "policy_timeout",
                        "confidence": 0.7,
                        "onset": "2026-11-27T02:25:00Z",
                        "evidence": [],
                    }
                ],
                ["t-2", "t-3"],
            ),
            _report("api_health", "api", "ok"),
        ]
    )
    assert summary["schema"] == "tenancy-diag/summary/v1"
    assert summary["root_cause"]["pattern"] == "policy_timeout"
    assert summary["root_cause"]["subsystem"] == "policy"
    assert summary["root_cause"]["confidence"] == 0.7
    assert summary["severity"] == "sev1"
    assert summary["escalation"]["primary"] == "Platform SRE"
    must = summary["escalation_must_include"]
    assert must["affected_tenants"] == ["t-2", "t-1", "t-3"]
    assert any("Enable the fallback cache" in a for a in must["mitigation_summary"])
    events = [t["event"] for t in must["timeline"]]
    assert events[0].startswith("reconcile_backlog began") and events[-1].endswith("finished")
    assert [row["status"] for row in summary["subsystems"]] == ["failing", "failing", "ok"]


def test_healthy_run_has_no_root_cause_and_no_escalation():
    summary = _summary([_report("api_health", "api", "ok")])
    assert summary["root_cause"] is None and summary["severity"] is None
    assert summary["escalation"] is None
    assert summary["escalation_must_include"]["mitigation_summary"] == []
    assert summary["complete"] is True


def test_errors_are_listed_and_malformed_patterns_skipped():
    summary = _summary(
        [
            _report(
                "x",
                "api",
                "error",
                ran=False,
                patterns=[{"id": "rate_limit_saturation", "confidence": "high"}, "junk"],
            )
        ]
    )
    assert summary["complete"] is False and summary["errors"] == ["x"]
    assert summary["subsystems"][0]["patterns"] == []


def test_affected_tenants_seen_by_more_subsystems_come_first():
    docs = [{"tenants": ["a", "b", "c"]}, {"tenants": ["c", "d"]}, {"tenants": None}]
    assert affected_tenants(docs) == ["c", "a", "b", "d"]


def test_index_page_escapes_and_links_and_loads_nothing():
    report = _report(
        "api_health",
        "api",
        "failing",
        "sev2",
        [{"id": "rate_limit_saturation", "confidence": 0.9, "evidence": []}],
        ["<script>alert(1)</script>"],
    )
    page = render_index(_summary([report]))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'href="html/api_health.html"' in page
    assert "rate_limit_saturation" in page and "Platform SRE" in page
    assert "http://" not in page and "https://" not in page


def test_compare_findings_ignores_generated_at_only_by_default():
    a = {"status": "ok", "generated_at": "1", "patterns": [{"id": "p", "confidence": 0.5}]}
    b = {"status": "ok", "generated_at": "2", "patterns": [{"id": "p", "confidence": 0.6}]}
    assert compare_findings(a, b) == ["patterns[0].confidence: 0.5 != 0.6"]
    assert compare_findings(a, {**a, "generated_at": "3"}) == []
    assert compare_findings(a, {**a, "extra": 1}) == ["extra: only in second"]


def test_summary_names_what_each_subsystem_could_not_see():
    unknown = _report("webhook_delivery", "webhook", "unknown")
    unknown.findings["missing"] = ["sqs unavailable: refused", "dlq_growth in us-east-1: no data"]
    summary = _summary([unknown, _report("api_health", "api", "ok")])
    rows = {row["subsystem"]: row for row in summary["subsystems"]}
    assert rows["webhook"]["missing"] == [
        "sqs unavailable: refused",
        "dlq_growth in us-east-1: no data",
    ]
    assert rows["api"]["missing"] == []
