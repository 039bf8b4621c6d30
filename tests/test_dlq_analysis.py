"""DLQ content of the sandbox and the pure DLQ analysis: no servers, no I/O."""

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from tenancy_diag.analysis import dlq
from tenancy_diag.sandbox.dlq_content import KINDS, MAX_PER_QUEUE, dlq_messages
from tenancy_diag.sandbox.secrets import PLANTED
from tenancy_diag.sandbox.topology import SCENARIOS, Scenario, ScenarioSpec

END = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def _scenario(name, tenants=200):
    return Scenario(ScenarioSpec(name=name, tenants=tenants, end=END))


def _as_peeked(bodies):
    """What the SQS source returns for these bodies."""
    return [
        {
            "message_id": f"m-{i}",
            "sent_at": "2026-11-27T02:59:00Z",
            "receive_count": 1,
            "body": json.dumps(b),
        }
        for i, b in enumerate(bodies)
    ]


@pytest.mark.parametrize("name", SCENARIOS)
def test_bodies_follow_the_contract(name):
    scenario = _scenario(name)
    messages = dlq_messages(scenario)
    assert set(messages) == {(r, k) for r in scenario.spec.regions for k in KINDS}
    for (region, kind), bodies in messages.items():
        for body in bodies:
            expected = [f for f in dlq.BODY_FIELDS if kind == "webhook" or f != "endpoint"]
            assert list(body) == expected
            assert (body["region"], body["kind"]) == (region, kind)
            assert scenario.start <= datetime.fromisoformat(body["first_failed_at"]) <= scenario.end
        times = [b["first_failed_at"] for b in bodies]
        assert times == sorted(times)


@pytest.mark.parametrize("name", SCENARIOS)
def test_queues_stay_bounded_at_10000_tenants(name):
    messages = dlq_messages(_scenario(name, tenants=10_000))
    assert max(len(b) for b in messages.values()) <= MAX_PER_QUEUE


def test_healthy_queues_hold_a_handful_of_old_failures():
    scenario = _scenario("healthy")
    for bodies in dlq_messages(scenario).values():
        assert 0 < len(bodies) <= 6
        assert all(
            datetime.fromisoformat(b["first_failed_at"])
            < scenario.end - (scenario.end - scenario.start) * 0.3
            for b in bodies
        )


def test_content_is_deterministic():
    assert dlq_messages(_scenario("webhook_storm")) == dlq_messages(_scenario("webhook_storm"))


def test_every_planted_secret_leaks_into_the_backlog_queue():
    scenario = _scenario("reconcile_backlog")
    text = json.dumps(dlq_messages(scenario)[(scenario.truth.region, "reconcile")])
    assert all(secret in text for secret in PLANTED.values())


def test_reconcile_backlog_summary_points_at_truth():
    scenario = _scenario("reconcile_backlog")
    truth = scenario.truth
    df = dlq.frame(_as_peeked(dlq_messages(scenario)[(truth.region, "reconcile")]))
    recent = df[df["first_failed_at"] >= truth.incident_start]
    assert len(recent) >= 150 and set(recent["tenant_id"]) <= set(truth.tenants)
    by_code = dlq.summary(df, "error_code")
    assert by_code.loc[0, "error_code"] == "policy_error"
    assert set(by_code["error_code"].head(2)) == {"policy_error", "throttled"}
    assert by_code["share"].sum() == pytest.approx(1.0)


def test_webhook_storm_summary_and_requeue_ranges():
    scenario = _scenario("webhook_storm")
    truth = scenario.truth
    df = dlq.frame(_as_peeked(dlq_messages(scenario)[(truth.region, "webhook")]))
    by_endpoint = dlq.summary(df, "endpoint").groupby("endpoint")["messages"].sum()
    assert by_endpoint.idxmax() == truth.endpoints[0]
    assert by_endpoint[truth.endpoints[0]] / by_endpoint.sum() > 0.9
    codes = set(df.loc[df["endpoint"] == truth.endpoints[0], "error_code"])
    assert codes <= {"503", "timeout", "connection_refused"}
    ranges = dlq.sequence_ranges(df)
    storm = ranges[ranges["endpoint"] == truth.endpoints[0]]
    assert set(storm["tenant_id"]) <= set(truth.tenants)
    # A storm fails every delivery: each tenant's sequences run without gaps.
    for row in storm.itertuples():
        assert row.to_sequence - row.from_sequence + 1 == row.messages


def test_frame_types_and_columns():
    scenario = _scenario("webhook_storm")
    df = dlq.frame(_as_peeked(dlq_messages(scenario)[(scenario.truth.region, "webhook")][:5]))
    assert tuple(df.columns) == dlq.COLUMNS
    assert str(df["first_failed_at"].dt.tz) == "UTC" and str(df["sent_at"].dt.tz) == "UTC"
    assert str(df["sequence"].dtype) == "Int64"
    assert df["parse_error"].isna().all() and df["raw_body"].isna().all()


def test_malformed_bodies_are_kept_with_a_parse_error():
    good = {
        "tenant_id": "t-000001",
        "region": "us-east-1",
        "kind": "reconcile",
        "error_code": "throttled",
        "first_failed_at": "2026-11-27T01:00:00Z",
        "sequence": 5,
        "attempts": 5,
        "event_type": "tenant.updated",
        "last_error": "x",
    }
    bodies = [
        json.dumps(good),
        "not json at all",
        "[1, 2]",
        json.dumps({**good, "tenant_id": None}),
        json.dumps({**good, "first_failed_at": "yesterday"}),
    ]
    peeked = [
        {"message_id": str(i), "sent_at": None, "receive_count": 1, "body": b}
        for i, b in enumerate(bodies)
    ]
    df = dlq.frame(peeked)
    assert len(df) == 5
    errors = df["parse_error"].tolist()
    assert pd.isna(errors[0])
    assert errors[1].startswith("body is not JSON")
    assert errors[2] == "body is JSON list, not an object"
    assert errors[3] == "body lacks tenant_id"
    assert errors[4] == "first_failed_at is not an ISO-8601 time"
    assert df.loc[1, "raw_body"] == "not json at all"
    assert dlq.summary(df, "tenant_id")["messages"].tolist() == [1]


def test_empty_input_gives_empty_frames_with_columns():
    df = dlq.frame([])
    assert df.empty and tuple(df.columns) == dlq.COLUMNS
    assert dlq.summary(df).empty and list(dlq.summary(df).columns)[:2] == ["endpoint", "error_code"]
    assert dlq.sequence_ranges(df).empty


def test_summary_groups_missing_values_as_none():
    scenario = _scenario("reconcile_backlog")
    df = dlq.frame(_as_peeked(dlq_messages(scenario)[(scenario.truth.region, "reconcile")]))
    assert set(dlq.summary(df)["endpoint"]) == {"(none)"}  # reconcile bodies have no endpoint
