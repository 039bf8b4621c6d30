from datetime import UTC, datetime, timedelta

from tenancy_diag import runbook
from tenancy_diag.analysis.findings import Findings, PatternMatch, SloRow
from tenancy_diag.analysis.rootcause import rank, root_cause
from tenancy_diag.analysis.verdicts import actions_for, escalation_for, severity_of, status_of

BOOK = runbook.load()
T = datetime(2026, 11, 27, 2, tzinfo=UTC)
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")


def test_slo_row_comparisons_and_missing_data():
    assert SloRow("p99", "r", 300.0, 250, "<").passed is False
    assert SloRow("ratio", "r", 0.999, 0.995, ">=").passed is True
    assert SloRow("ratio", "r", None, 0.995, ">=").passed is None
    assert SloRow("ratio", "r", float("nan"), 0.995, ">=").to_json()["value"] is None


def test_status_rules():
    ok = [SloRow("a", "r", 1, 2, "<")]
    bad = [SloRow("a", "r", 3, 2, "<")]
    strong = [PatternMatch("webhook_storm", 0.9, ("x",))]
    weak = [PatternMatch("webhook_storm", 0.2, ("x",))]
    assert status_of(ok, []) == "ok"
    assert status_of(bad, []) == "degraded"
    assert status_of(bad, strong) == "failing"
    assert status_of(ok, weak) == "ok"
    assert status_of(ok, [], unavailable=["kubernetes"]) == "unknown"
    assert status_of([SloRow("a", "r", None, 2, "<")], []) == "unknown"


def test_severity_follows_runbook_definitions():
    assert severity_of("webhook", "failing", ["us-east-1"], REGIONS) == "sev2"
    assert severity_of("controller", "failing", list(REGIONS), REGIONS) == "sev1"
    assert severity_of("lifecycle", "failing", ["us-east-1"], REGIONS) == "sev3"
    assert severity_of("api", "degraded", ["us-east-1"], REGIONS) == "sev3"
    assert severity_of("api", "ok", [], REGIONS) is None


def test_missing_evidence_is_unknown_with_no_severity_made_up():
    # As diagnosing.steps calls them: a source that failed makes the status unknown, and the
    # severity is judged from that status alone (no caller passes missing_signals).
    status = status_of([SloRow("a", "r", 1, 2, "<")], [], unavailable=["kubernetes"])
    assert status == "unknown"
    assert severity_of("api", status, [], REGIONS) is None
    assert escalation_for(severity_of("api", status, [], REGIONS), BOOK) is None


def test_actions_and_escalation_quote_the_runbook():
    actions = actions_for([PatternMatch("webhook_storm", 0.9, ())], BOOK)
    assert "Webhook delivery storm: Disable the offending endpoint temporarily." in actions
    assert any(a.startswith("Webhook requeue procedure:") for a in actions)
    esc = escalation_for("sev2", BOOK)
    assert esc["primary"] == "Platform SRE" and esc["backup"] == "Tenancy Engineering"
    assert esc["must_include"] == ["timeline", "affected tenants", "mitigation summary"]
    assert escalation_for(None, BOOK) is None


def test_policy_timeout_outranks_the_backlog_it_causes_even_if_later_and_weaker():
    backlog = PatternMatch("reconcile_backlog", 0.95, (), onset=T)
    policy = PatternMatch("policy_timeout", 0.7, (), onset=T + timedelta(minutes=3))
    best = root_cause([("controller", backlog), ("policy", policy)], BOOK)
    assert best.pattern == "policy_timeout" and best.explains == ("reconcile_backlog",)


def test_unrelated_patterns_rank_by_onset_then_confidence():
    a = PatternMatch("webhook_storm", 0.6, (), onset=T)
    b = PatternMatch("rate_limit_saturation", 0.9, (), onset=T + timedelta(minutes=5))
    assert [c.pattern for c in rank([("api", b), ("webhook", a)], BOOK)] == [
        "webhook_storm",
        "rate_limit_saturation",
    ]
    assert root_cause([("api", PatternMatch("rate_limit_saturation", 0.1, ()))], BOOK) is None


def test_findings_json_has_schema_and_required_fields():
    f = Findings(
        "webhook",
        "INC-1",
        "failing",
        severity="sev2",
        patterns=[PatternMatch("webhook_storm", 0.9, ("e",), onset=T)],
        slo=[SloRow("p99", "us-east-1", 3000.0, 2000, "<", "ms")],
    )
    data = f.to_json()
    assert data["schema"] == "tenancy-diag/findings/v1"
    for key in (
        "subsystem",
        "status",
        "severity",
        "patterns",
        "regions",
        "tenants",
        "slo",
        "actions",
        "escalation",
    ):
        assert key in data
    assert data["slo"][0]["pass"] is False
    assert data["patterns"][0]["onset"] == "2026-11-27T02:00:00Z"
