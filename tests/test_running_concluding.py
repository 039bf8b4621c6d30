"""The verdict a run prints at its end, and the ``--fail-on`` gate, from a summary alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenancy_diag import runbook
from tenancy_diag.running.concluding import fail_on_problem, verdict_lines, worst_first


def _summary(*statuses: tuple[str, str], cause: bool = True) -> dict:
    root = {
        "pattern": "policy_timeout",
        "subsystem": "policy",
        "confidence": 0.95,
        "explains": ["reconcile_backlog"],
        "regions": ["us-east-1"],
        "onset": "2026-11-27T03:55:00Z",
    }
    other = {
        "pattern": "reconcile_backlog",
        "subsystem": "controller",
        "confidence": 0.8,
        "explains": [],
        "regions": ["us-east-1", "eu-west-1"],
        "onset": None,
    }
    return {
        "incident": "INC-7",
        "run_id": "r1",
        "errors": [],
        "root_cause": root if cause else None,
        "candidates": [root, other] if cause else [],
        "subsystems": [
            {"subsystem": s, "status": st, "severity": "sev2" if st == "failing" else None}
            for s, st in statuses
        ],
        "escalation": {
            "severity": "sev2",
            "definition": "Partial degradation.",
            "primary": "Platform SRE",
            "backup": "Tenancy Engineering",
            "path": "Engineering Manager",
        }
        if cause
        else None,
        "escalation_must_include": {"affected_tenants": [f"t-{i}" for i in range(7 * cause)]},
    }


def test_the_verdict_names_cause_region_onset_candidates_failing_tenants_owner_and_path():
    summary = _summary(("webhook", "ok"), ("policy", "failing"), ("api", "unknown"))
    lines = verdict_lines(summary, Path("/out/INC-7/r1/index.html"), runbook.default())
    text = "\n".join(lines)
    cause = next(line for line in lines if "Root cause:" in line)
    assert "policy_timeout" in cause and "in policy, us-east-1" in cause
    assert "since 2026-11-27T03:55:00Z" in cause and "95%" in cause
    assert "explains reconcile_backlog" in cause
    assert "reconcile_backlog) in controller, us-east-1, eu-west-1, confidence 80%" in text
    assert "Subsystems:   policy FAILING sev2, api UNKNOWN, webhook OK" in text
    assert "7 affected (t-0, t-1, t-2, t-3, t-4 and 2 more)" in text
    assert "Platform SRE, backup Tenancy Engineering, then Engineering Manager" in text
    assert lines[-1].endswith("/out/INC-7/r1/index.html")


def test_a_healthy_run_says_no_cause_and_pages_nobody():
    text = "\n".join(verdict_lines(_summary(("webhook", "ok"), cause=False), Path("i.html")))
    assert "Root cause:   none found" in text and "nobody" in text and "0 affected" in text


@pytest.mark.parametrize(
    ("statuses", "threshold", "trips"),
    [
        ((("a", "ok"), ("b", "degraded")), "failing", False),
        ((("a", "ok"), ("b", "degraded")), "degraded", True),
        ((("a", "failing"),), "failing", True),
        ((("a", "ok"), ("b", "unknown")), "failing", True),
        ((("a", "ok"), ("b", "unknown")), "degraded", True),
        ((("a", "error"),), "failing", True),
        ((("a", "ok"), ("b", "ok")), "degraded", False),
        ((("a", "failing"),), None, False),
    ],
)
def test_fail_on_trips_at_its_threshold_and_unknown_never_passes(statuses, threshold, trips):
    problem = fail_on_problem(_summary(*statuses), threshold)
    assert (problem is not None) is trips, problem
    if problem and "unknown" in problem:
        assert "missing evidence" in problem


def test_worst_first_keeps_the_runbook_order_within_a_status():
    rows = [
        {"subsystem": s, "status": st}
        for s, st in [
            ("controller", "ok"),
            ("webhook", "failing"),
            ("policy", "degraded"),
            ("api", "failing"),
            ("lifecycle", "unknown"),
        ]
    ]
    assert [r["subsystem"] for r in worst_first(rows)] == [
        "webhook",
        "api",
        "policy",
        "lifecycle",
        "controller",
    ]
