"""Verification After Recovery's judgement: every checklist rule, without a server."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pandas as pd
import pytest

from tenancy_diag.analysis import checklist
from tenancy_diag.analysis.checklist import FAIL, NO_DATA, PASS, Check
from tenancy_diag.analysis.findings import SloRow
from tenancy_diag.errors import ConfigError
from tenancy_diag.running.audit import AUDIT_SCHEMA, AuditRecord
from tenancy_diag.signals import load

END = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
SLOS = {
    "controller": {
        "reconcile_success_ratio_min": 0.995,
        "slo_window": "15m",
        "queue_depth_max": 100,
    },
    "policy": {"latency_p99_ms_max": 250, "error_ratio_max": 0.005},
}


def row(value: float | None, region: str = "us-east-1", op: str = "<", limit: float = 100.0):
    return SloRow("queue_depth", region, value, limit, op, "items")  # type: ignore[arg-type]


# -- thresholds ------------------------------------------------------------------------------


def test_thresholds_are_the_slos_numbers_with_overrides_applied():
    merged = checklist.merge_thresholds(SLOS, {"policy": {"latency_p99_ms_max": 300}})
    assert merged["policy"] == {"latency_p99_ms_max": 300.0, "error_ratio_max": 0.005}
    assert merged["controller"] == {"reconcile_success_ratio_min": 0.995, "queue_depth_max": 100.0}
    assert SLOS["policy"]["latency_p99_ms_max"] == 250  # the mapping itself is left alone


def test_thresholds_default_to_signals_yaml_unchanged():
    slos = load().doc.slos
    merged = checklist.merge_thresholds(slos, {})
    assert merged["webhook"]["dlq_growth_max"] == 0.0
    assert set(merged) == {"controller", "webhook", "policy", "api", "lifecycle"}


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"polcy": {"latency_p99_ms_max": 1}}, "polcy"),
        ({"policy": {"latency_p95_ms_max": 1}}, "latency_p95_ms_max"),
        ({"policy": {"latency_p99_ms_max": "fast"}}, "fast"),
        ({"policy": {"latency_p99_ms_max": True}}, "True"),
        ({"policy": 300}, "300"),
        ({"controller": {"slo_window": "5m"}}, "slo_window"),
    ],
)
def test_a_bad_override_is_a_config_error_naming_it(overrides, named):
    with pytest.raises(ConfigError, match=named):
        checklist.merge_thresholds(SLOS, overrides)


# -- SLO-shaped items ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "verdict"),
    [
        ([10.0, 20.0], PASS),
        ([10.0, 120.0], FAIL),
        ([10.0, None], NO_DATA),
        ([None, 120.0], FAIL),  # a failure outweighs a region without data
        ([math.nan], NO_DATA),
        ([], NO_DATA),
        ([100.0], FAIL),  # "below 100": the threshold itself fails
    ],
)
def test_verdict_of_rows(values, verdict):
    rows = [row(v, f"r{i}") for i, v in enumerate(values)]
    assert checklist.verdict_of(rows) == verdict


@pytest.mark.parametrize(
    ("values", "verdict"),
    [
        ([10.0, None], PASS),  # a gauge without series while idle (replication lag)
        ([None, None], NO_DATA),
        ([None, 120.0], FAIL),
        ([], NO_DATA),
    ],
)
def test_verdict_of_rows_not_strict(values, verdict):
    rows = [row(v, f"r{i}") for i, v in enumerate(values)]
    assert checklist.verdict_of(rows, strict=False) == verdict


def test_figure_of_a_lenient_pass_names_the_slos_without_series():
    rows = [row(10.0, "eu-west-1"), SloRow("lag", "eu-west-1", None, 60.0, "<", "s")]
    check = checklist.rows_check(2, rows, strict=False)
    assert check.verdict == PASS
    assert check.figure.endswith("; no series: lag")


def test_at_least_rows_pass_at_the_threshold():
    assert checklist.verdict_of([row(0.995, op=">=", limit=0.995)]) == PASS
    assert checklist.verdict_of([row(0.994, op=">=", limit=0.995)]) == FAIL


def test_figure_names_the_failing_regions_first():
    figure = checklist.figure_of([row(10.0, "eu-west-1"), row(218.0, "us-east-1")])
    assert figure == "us-east-1 queue_depth 218 items (needs < 100)"


def test_figure_names_regions_without_data_when_nothing_fails():
    figure = checklist.figure_of([row(10.0, "eu-west-1"), row(None, "us-east-1")])
    assert figure == "us-east-1 queue_depth: no data"


def test_figure_of_passing_rows_gives_the_worst_per_slo():
    rows = [
        row(10.0, "eu-west-1"),
        row(90.0, "us-east-1"),
        SloRow("ratio", "eu-west-1", 0.999, 0.995, ">=", "ratio"),
        SloRow("ratio", "us-east-1", 0.996, 0.995, ">=", "ratio"),
    ]
    figure = checklist.figure_of(rows)
    assert figure.startswith("every measured region passes")
    assert "us-east-1 queue_depth 90 items" in figure and "us-east-1 ratio 0.996 " in figure
    assert "eu-west-1" not in figure


def test_figure_is_bounded():
    figure = checklist.figure_of([row(500.0, f"r{i}") for i in range(10)])
    assert figure.endswith("and 4 more")


def test_figure_without_rows():
    assert checklist.figure_of([]) == "no series answered"


def test_rows_check_titles_item_4_with_the_window():
    check = checklist.rows_check(4, [row(1.0)], "30m")
    assert check == Check(4, "Reconciles successful for the last 30 minutes", PASS, check.figure)
    assert checklist.item_title(4) == "Reconciles successful for the last 15 minutes"
    assert checklist.item_title(4, "1h") == "Reconciles successful for the last 1 hours"


def test_failing_regions():
    rows = [row(500.0, "us-east-1"), row(1.0, "eu-west-1"), row(None, "ap-southeast-2")]
    assert checklist.failing_regions(rows) == ["us-east-1"]


# -- item 1 ----------------------------------------------------------------------------------


def _alerts(*names: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"alertname": n, "region": "us-east-1", "subsystem": "policy", "severity": "sev2"}
            | {"value": 3500.0, "source": "rule at end"}
            for n in names
        ],
        columns=checklist.ALERT_COLUMNS,
    )


def test_alerts_cleared_when_nothing_fires_and_prometheus_answered():
    assert checklist.alerts_check(_alerts(), answered=True).verdict == PASS


def test_alerts_no_data_when_the_rules_could_not_be_evaluated():
    check = checklist.alerts_check(_alerts(), answered=False)
    assert check.verdict == NO_DATA and "answered" in check.figure


def test_a_firing_alert_fails_item_1_even_without_prometheus():
    check = checklist.alerts_check(_alerts("TenancyPolicyLatencyP99High"), answered=False)
    assert check.verdict == FAIL
    assert check.figure == (
        "1 still firing or holding: TenancyPolicyLatencyP99High (us-east-1, 3500.0)"
    )


def test_an_alert_seen_twice_is_named_once():
    check = checklist.alerts_check(_alerts("A", "A", "B"), answered=True)
    assert check.figure.startswith("2 still firing")


def test_an_alert_without_region_reads_every_region():
    df = _alerts("A").assign(region=[None])
    assert "(every region, " in checklist.alerts_check(df, answered=True).figure


def test_alertmanager_frame_keeps_active_alerts_only():
    alerts = [
        {
            "labels": {
                "alertname": "A",
                "region": "us-east-1",
                "subsystem": "api",
                "severity": "sev2",
            },
            "annotations": {"value": "3%"},
            "status": {"state": "active"},
        },
        {"labels": {"alertname": "B"}, "status": {"state": "suppressed"}},
        {"labels": {"alertname": "C"}},
    ]
    df = checklist.alertmanager_frame(alerts)
    assert df["alertname"].tolist() == ["A", "C"]
    assert df.iloc[0].to_dict() == {
        "alertname": "A",
        "region": "us-east-1",
        "subsystem": "api",
        "severity": "sev2",
        "value": "3%",
        "source": "alertmanager",
    }


def test_alertmanager_frame_of_nothing_has_the_columns():
    assert list(checklist.alertmanager_frame([]).columns) == checklist.ALERT_COLUMNS


# -- item 5 ----------------------------------------------------------------------------------


def test_growth_counts_messages_first_failed_within_the_window_per_region():
    sample = pd.DataFrame(
        {
            "region": ["us-east-1", "us-east-1", "eu-west-1", "eu-west-1"],
            "first_failed_at": pd.to_datetime(
                [
                    "2026-11-27T02:50:00Z",  # in
                    "2026-11-27T02:40:00Z",  # 20 min before end: out
                    "2026-11-27T02:59:59Z",  # in
                    "2026-11-27T03:05:00Z",  # after end: out
                ],
                utc=True,
            ),
        }
    )
    assert checklist.growth_within(sample, END, "15m") == {"us-east-1": 1, "eu-west-1": 1}
    assert checklist.growth_within(sample, END, "30m") == {"us-east-1": 2, "eu-west-1": 1}


def test_growth_of_an_empty_or_unparsed_sample_is_none():
    assert checklist.growth_within(pd.DataFrame(), END, "15m") == {}
    assert checklist.growth_within(pd.DataFrame({"region": ["x"]}), END, "15m") == {}


def test_dlq_rows_have_no_data_where_the_dlq_was_not_read():
    rows = checklist.dlq_growth_rows(
        {"us-east-1": 3},
        ["us-east-1", "eu-west-1", "ap-southeast-2"],
        ["us-east-1", "eu-west-1"],
        0.0,
    )
    assert [(r.region, r.value, r.passed) for r in rows] == [
        ("us-east-1", 3.0, False),
        ("eu-west-1", 0.0, True),
        ("ap-southeast-2", None, None),
    ]


# -- item 7 ----------------------------------------------------------------------------------


def _record(action: str, incident: str | None, result: str = "ok") -> str:
    record = AuditRecord("alice", action, ["x"], incident, None, result, 0, "2026-11-27T03:10:00Z")
    return json.dumps(record.to_json())


def test_audit_schema_is_the_runners():
    assert checklist.AUDIT_SCHEMA == AUDIT_SCHEMA


def test_parse_audit_skips_garbage_and_other_schemas():
    lines = [
        _record("run", "INC-1"),
        "{not json",
        json.dumps({"schema": "other", "action": "close"}),
        "",
        json.dumps([1]),
        _record("close", "INC-1", "closed: fixed"),
    ]
    records = checklist.parse_audit(lines)
    assert [r["action"] for r in records] == ["run", "close"]


def test_closure_passes_with_a_close_record_for_the_incident():
    records = checklist.parse_audit(
        [_record("run", "INC-1"), _record("close", "INC-1", "closed: fixed")]
    )
    check = checklist.closure_check(records, "INC-1")
    assert check.verdict == PASS
    assert check.figure == "closed by alice at 2026-11-27T03:10:00Z: closed: fixed"


@pytest.mark.parametrize(
    "lines",
    [
        [],
        [_record("run", "INC-1")],
        [_record("close", "INC-2")],
        [_record("close", None)],
    ],
)
def test_closure_fails_without_a_close_record_for_this_incident(lines):
    check = checklist.closure_check(checklist.parse_audit(lines), "INC-1", "audit log /o/a.jsonl")
    assert check.verdict == FAIL
    assert check.figure == "audit log /o/a.jsonl holds no close record for incident INC-1"


def test_closure_has_no_data_without_a_log():
    assert checklist.closure_check(None, "INC-1").verdict == NO_DATA


def test_the_last_closure_is_the_one_shown():
    lines = [_record("close", "INC-1", "closed: first"), _record("close", "INC-1", "closed: again")]
    assert checklist.closure_check(checklist.parse_audit(lines), "INC-1").figure.endswith("again")


# -- the whole checklist ---------------------------------------------------------------------


def _checks(*verdicts: str) -> list[Check]:
    return [
        Check(n, checklist.item_title(n), v, "fig")  # type: ignore[arg-type]
        for n, v in enumerate(verdicts, start=1)
    ]


@pytest.mark.parametrize(
    ("verdicts", "status"),
    [
        ([PASS] * 7, "ok"),
        ([PASS] * 6 + [FAIL], "failing"),
        ([NO_DATA] + [PASS] * 5 + [FAIL], "failing"),
        ([NO_DATA] + [PASS] * 6, "unknown"),
        ([], "unknown"),
    ],
)
def test_status(verdicts, status):
    assert checklist.checklist_status(_checks(*verdicts)) == status


def test_summary_names_failing_items_and_what_to_do_next():
    summary = checklist.checklist_summary(_checks(PASS, PASS, PASS, PASS, FAIL, FAIL, NO_DATA))
    assert summary.startswith("recovery not verified: item(s) 5 (Webhook deliveries")
    assert "6 (Policy evaluation latency below threshold) fail" in summary
    assert checklist.NEXT_STEPS[5] in summary and checklist.NEXT_STEPS[6] in summary
    assert "tenancy-diag close" not in summary  # item 7 has no data; it did not fail


def test_summary_of_a_closure_missing_says_how_to_close():
    summary = checklist.checklist_summary(_checks(*[PASS] * 6, FAIL))
    assert "tenancy-diag close --incident ID --out OUT --reason TEXT" in summary


def test_summary_without_data():
    summary = checklist.checklist_summary(_checks(NO_DATA, *[PASS] * 6))
    assert summary == (
        "recovery not verified: no data for item(s) 1 (Alerts cleared); check the sources "
        "and rerun."
    )


def test_summary_when_everything_passes():
    assert checklist.checklist_summary(_checks(*[PASS] * 7)).startswith("recovery verified")


def test_every_item_has_a_next_step_and_the_frame_has_one_row_each():
    assert set(checklist.NEXT_STEPS) == set(checklist.ITEMS) == set(range(1, 8))
    frame = checklist.checklist_frame(_checks(*[PASS] * 7))
    assert list(frame.columns) == ["item", "check", "pass", "figure"]
    assert frame["item"].tolist() == list(range(1, 8))
