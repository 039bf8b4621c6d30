"""Remediations against the sandbox's real servers: a dry run changes nothing anywhere; acting
changes what it says, and the audit (ours and the admin API's) names the actor and the call.

Each test uses stacks of 60 tenants, started only for these tests, so what they change never
reaches the diagnosis tests that share the session's default stacks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from tenancy_diag import cli
from tenancy_diag.errors import RemediationRefused
from tenancy_diag.remediating import api as rm
from tenancy_diag.sandbox import stack
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sandbox-remediation")]
INCIDENT = "INC-REM-1"
ACTOR = "alice@example.com"
TENANTS = 60


@pytest.fixture
def healthy(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> stack.Endpoints:
    return _env(sandbox("healthy", tenants=TENANTS), monkeypatch)


def _env(env: stack.Endpoints, monkeypatch: pytest.MonkeyPatch) -> stack.Endpoints:
    for name, value in env.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TENANCY_DIAG_ACTOR", ACTOR)
    return env


def _params(env: stack.Endpoints, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "incident_id": INCIDENT,
        "dry_run": True,
        "confirm": "",
        "end": env.end,
        "prometheus_url": env.prometheus_url,
        "kubeconfig": env.kubeconfig,
        "aws_endpoint_url": env.aws_endpoint_url,
        "tenancy_api_url": env.tenancy_api_url,
        "findings_path": str(tmp_path / "findings.json"),
        "audit_path": str(tmp_path / "audit.jsonl"),
        "bundle_dir": str(tmp_path / "bundle"),
        **extra,
    }


def _acting(env: stack.Endpoints, tmp_path: Path) -> dict[str, Any]:
    return _params(env, tmp_path, dry_run=False, confirm=INCIDENT)


def _run(procedure: str, params: dict[str, Any], **scope: Any) -> tuple[Any, Any]:
    session = rm.open_session(procedure, params)
    plan = rm.plan(session, **scope)
    run = rm.act(session, plan)
    findings = rm.finish(session, run, rm.post_checks(session, plan, run), params["findings_path"])
    return run, findings


# -- what the servers hold ------------------------------------------------------------------
def _admin(env: stack.Endpoints, path: str) -> Any:
    token = Path(env.tenancy_api_token_file).read_text(encoding="utf-8").strip()
    answer = requests.get(
        env.tenancy_api_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    answer.raise_for_status()
    return answer.json()


def _pods(env: stack.Endpoints) -> list[tuple[str, bool]]:
    api = kube_config.new_client_from_config(config_file=env.kubeconfig)
    try:
        pods = kube_client.CoreV1Api(api).list_namespaced_pod("tenancy").items
    finally:
        api.close()
    ready = [
        any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        for p in pods
    ]
    return sorted((p.metadata.name, r) for p, r in zip(pods, ready, strict=True))


def _queues(env: stack.Endpoints) -> dict[str, tuple[int, int]]:
    out = {}
    for region in env.regions:
        client = boto3.client("sqs", region_name=region, endpoint_url=env.aws_endpoint_url)
        for url in client.list_queues().get("QueueUrls", []):
            attrs = client.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            out[url] = (
                int(attrs["ApproximateNumberOfMessages"]),
                int(attrs["ApproximateNumberOfMessagesNotVisible"]),
            )
    return out


def _state(env: stack.Endpoints, tenant: str | None = None) -> dict[str, Any]:
    state = {
        "admin audit": _admin(env, "/admin/audit"),
        "rate limits": _admin(env, "/admin/rate-limit"),
        "policy cache": _admin(env, "/admin/policy-cache"),
        "pods": _pods(env),
        "queues": _queues(env),
    }
    if tenant:
        state["jobs"] = _admin(env, f"/tenants/{tenant}/jobs")
        state["routing"] = _admin(env, f"/tenants/{tenant}/routing")
    return state


def _audit(tmp_path: Path) -> list[dict[str, Any]]:
    text = (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


# -- dry runs ---------------------------------------------------------------------------------
DRY_RUNS = [
    ("controller_restart", {"region": "us-east-1", "pods": 2}),
    (
        "webhook_requeue",
        {"region": "us-east-1", "tenant": "", "max_messages": 50, "archive": False},
    ),
    ("webhook_requeue", {"region": "us-east-1", "tenant": "", "max_messages": 50, "archive": True}),
    ("policy_cache_refresh", {"region": "us-east-1", "key": "", "note": "stale residency policy"}),
    (
        "api_rate_limit_adjustment",
        {
            "region": "us-east-1",
            "burst_multiplier": 2.0,
            "reason": "bulk sync by client c-1",
            "expires_in": "2h",
            "rollback": False,
        },
    ),
]


@pytest.mark.parametrize(
    ("procedure", "scope"), DRY_RUNS, ids=[f"{p}-{i}" for i, (p, _) in enumerate(DRY_RUNS)]
)
def test_a_dry_run_shows_the_calls_and_leaves_every_server_unchanged(
    healthy: stack.Endpoints, tmp_path: Path, procedure: str, scope: dict[str, Any]
) -> None:
    before = _state(healthy)
    run, findings = _run(procedure, _params(healthy, tmp_path), **scope)
    assert _state(healthy) == before
    assert run.outcomes and {o.state for o in run.outcomes} == {"would call"}
    audit = _audit(tmp_path)
    assert [a["dry_run"] for a in audit] == [True] * len(run.outcomes)
    assert [a["call"] for a in audit] == [o.call for o in run.outcomes]
    assert {a["actor"] for a in audit} == {ACTOR}
    assert findings.status == "ok", findings.summary
    assert "dry run" in findings.summary


# -- acting -----------------------------------------------------------------------------------
def test_acting_needs_the_incident_id_as_confirm(healthy: stack.Endpoints, tmp_path: Path) -> None:
    before = _state(healthy)
    params = _params(healthy, tmp_path, dry_run=False, confirm="INC-OTHER")
    with pytest.raises(RemediationRefused, match=f"confirm={INCIDENT}"):
        _run("policy_cache_refresh", params, region="us-east-1", key="", note="x")
    assert _state(healthy) == before
    assert _audit(tmp_path)[-1]["result"].startswith("refused:")


def test_policy_cache_refresh_invalidates_and_is_audited_on_both_sides(
    healthy: stack.Endpoints, tmp_path: Path
) -> None:
    run, findings = _run(
        "policy_cache_refresh",
        _acting(healthy, tmp_path),
        region="eu-west-1",
        key="residency/v7",
        note="residency policy v7 cached stale after redeploy",
    )
    assert [o.state for o in run.outcomes] == ["done"]
    cache = {r["region"]: r for r in _admin(healthy, "/admin/policy-cache")["regions"]}
    latest = cache["eu-west-1"]["invalidations"][-1]
    assert (latest["key"], latest["actor"]) == ("residency/v7", ACTOR)
    server = _admin(healthy, "/admin/audit")[-1]
    assert (server["actor"], server["action"]) == (ACTOR, "invalidate_policy_cache")
    ours = [a for a in _audit(tmp_path) if a["step"] != "notes"]
    assert ours[-1]["command"][:3] == ["admin-api", "POST", "/admin/policy-cache:invalidate"]
    assert ours[-1]["dry_run"] is False and ours[-1]["exit_code"] == 0
    notes = [a for a in _audit(tmp_path) if a["step"] == "notes"]
    assert "residency policy v7" in notes[0]["result"]
    assert findings.details["remediation"]["outcomes"][0]["state"] == "done"


def test_rate_limit_override_records_reason_and_expiry_and_rolls_back(
    healthy: stack.Endpoints, tmp_path: Path
) -> None:
    scope = {
        "region": "ap-southeast-2",
        "burst_multiplier": 3.0,
        "reason": "bulk tenant sync by c-42",
        "expires_in": "90m",
        "rollback": False,
    }
    run, _ = _run("api_rate_limit_adjustment", _acting(healthy, tmp_path), **scope)
    overrides = {o["region"]: o for o in _admin(healthy, "/admin/rate-limit")["overrides"]}
    raised = overrides["ap-southeast-2"]
    assert (raised["burst_multiplier"], raised["reason"]) == (3.0, "bulk tenant sync by c-42")
    assert raised["expires_at"] and raised["set_by"] == ACTOR
    # The rollback the step names is the call that puts the old value back.
    rollback = _audit(tmp_path)[-1]["rollback"]
    assert json.loads(rollback[3])["burst_multiplier"] == 1.0
    run, findings = _run(
        "api_rate_limit_adjustment", _acting(healthy, tmp_path), **{**scope, "rollback": True}
    )
    assert [o.state for o in run.outcomes] == ["done"]
    regions = {o["region"] for o in _admin(healthy, "/admin/rate-limit")["overrides"]}
    assert "ap-southeast-2" not in regions
    assert findings.status == "ok", findings.summary


def test_controller_restart_replaces_one_pod_at_a_time(
    healthy: stack.Endpoints, tmp_path: Path
) -> None:
    before = dict(_pods(healthy))
    run, _ = _run("controller_restart", _acting(healthy, tmp_path), region="us-east-1", pods=2)
    assert [o.state for o in run.outcomes] == ["done", "done"], run.frame()
    after = dict(_pods(healthy))
    deleted = [
        a["command"][2].rsplit("/", 1)[1] for a in _audit(tmp_path) if a["phase"] == "result"
    ]
    assert len(deleted) == 2 and all(name in before and name not in after for name in deleted)
    assert len(after) == len(before) and all(after.values())
    # Each step waited for its replacement: the second delete came after a Ready pod was back.
    assert all("ready=" in o.detail for o in run.outcomes)


def test_webhook_requeue_requeues_only_retryable_codes_and_archives_without_loss(
    healthy: stack.Endpoints, tmp_path: Path
) -> None:
    region = "us-east-1"
    client = boto3.client("sqs", region_name=region, endpoint_url=healthy.aws_endpoint_url)
    dlq = client.get_queue_url(QueueName=f"tenancy-webhook-dlq-{region}")["QueueUrl"]
    archive = client.get_queue_url(QueueName=f"tenancy-webhook-dlq-archive-{region}")["QueueUrl"]
    planted = {
        "tenant_id": "t-000001",
        "region": region,
        "kind": "webhook",
        "event_type": "tenant.updated",
        "sequence": 999_999,
        "endpoint": "hooks.example.net",
        "error_code": "400",
        "attempts": 5,
        "first_failed_at": "2026-11-27T00:58:10Z",
        "last_error": "upstream returned 400",
    }
    client.send_message(QueueUrl=dlq, MessageBody=json.dumps(planted))
    total = sum(_queues(healthy)[dlq])
    scope = {"region": region, "tenant": "", "max_messages": 100, "archive": False}
    run, _ = _run("webhook_requeue", _acting(healthy, tmp_path), **scope)
    assert run.failed is None, run.frame()
    requeues = [a for a in _admin(healthy, "/admin/audit") if a["action"] == "requeue_webhooks"]
    assert len(requeues) == len(run.outcomes) and {a["actor"] for a in requeues} == {ACTOR}
    assert all(a["details"]["to_sequence"] < 999_999 for a in requeues)
    # Requeueing re-delivers; the DLQ keeps its messages until success is confirmed.
    assert sum(_queues(healthy)[dlq]) == total
    run, _ = _run("webhook_requeue", _acting(healthy, tmp_path), **{**scope, "archive": True})
    assert run.failed is None, run.frame()
    assert run.plan.preconditions[-1].passed is True  # the earlier requeue is in the audit log
    assert all(o.call.startswith("sqs MOVE") for o in run.outcomes)
    left, archived = _queues(healthy)[dlq], _queues(healthy)[archive]
    # Only the 400 stays; everything else moved exactly once.
    assert left == (1, 0)
    assert sum(archived) == total - 1
    body = json.loads(client.receive_message(QueueUrl=dlq)["Messages"][0]["Body"])
    assert body["error_code"] == "400"


def test_webhook_requeue_is_refused_while_the_endpoint_still_fails(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = _env(sandbox("webhook_storm", tenants=TENANTS), monkeypatch)
    region = Scenario(ScenarioSpec(name="webhook_storm", tenants=TENANTS)).incident_region
    before = _state(env)
    with pytest.raises(RemediationRefused, match="delivery failure ratio"):
        _run(
            "webhook_requeue",
            _acting(env, tmp_path),
            region=region,
            tenant="",
            max_messages=50,
            archive=False,
        )
    assert _state(env) == before


def test_migration_rollback_pauses_switches_and_verifies_by_checksum(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = _env(sandbox("migration_hang", tenants=TENANTS), monkeypatch)
    tenant = Scenario(ScenarioSpec(name="migration_hang", tenants=TENANTS)).truth.tenants[0]
    before = _state(env, tenant)
    dry, findings = _run(
        "migration_rollback", _params(env, tmp_path), tenant=tenant, job_id="", endpoint=""
    )
    assert _state(env, tenant) == before
    assert findings.status == "ok", findings.summary
    run, findings = _run(
        "migration_rollback", _acting(env, tmp_path), tenant=tenant, job_id="", endpoint=""
    )
    assert [o.state for o in run.outcomes] == ["done"] * len(dry.outcomes), run.frame()
    jobs = {j["job_id"]: j for j in _admin(env, f"/tenants/{tenant}/jobs")}
    paused = [j for j in jobs.values() if j["job_type"] == "migrate"]
    assert paused and {j["status"] for j in paused} == {"paused"}
    routing = _admin(env, f"/tenants/{tenant}/routing")
    assert routing["endpoint"] == dry.plan.scope["to_endpoint"] != before["routing"]["endpoint"]
    assert "tables_verified=" in run.outcomes[-1].detail
    # Every reversible step names its undo, newest first: switch back, then resume.
    undo = run.rollbacks()
    assert ":switch" in undo[1] and ":resume" in undo[-1]
    assert findings.status == "ok", findings.summary


def test_the_notebook_dry_runs_and_acts_through_the_runner(
    healthy: stack.Endpoints, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [
        "run",
        "remediation_policy_cache_refresh",
        "--incident",
        INCIDENT,
        "--out",
        str(tmp_path),
        "--prometheus-url",
        healthy.prometheus_url,
        "--tenancy-api-url",
        healthy.tenancy_api_url,
        "--end",
        healthy.end,
        "-p",
        "region=us-east-1",
        "-p",
        "note=cache key residency/v7 stale",
    ]
    before = _admin(healthy, "/admin/policy-cache")
    assert cli.main(base) == 0, capsys.readouterr().err
    assert _admin(healthy, "/admin/policy-cache") == before
    # A wrong confirm is refused by the runner, before any kernel starts.
    assert cli.main([*base, "-p", "dry_run=false", "-p", "confirm=WRONG"]) == 2
    assert _admin(healthy, "/admin/policy-cache") == before
    assert cli.main([*base, "-p", "dry_run=false", "-p", f"confirm={INCIDENT}"]) == 0
    assert _admin(healthy, "/admin/policy-cache") != before
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    calls = [a for a in audit if a["action"] == "remediate" and a["call"]]
    assert [(a["dry_run"], a["phase"]) for a in calls] == [
        (True, None),
        (False, "intent"),
        (False, "result"),
    ]
    refused = [a for a in audit if a["result"].startswith("refused:")]
    assert len(refused) == 1 and "confirm 'WRONG'" in refused[0]["result"]
    bundles = sorted((tmp_path / INCIDENT).glob("*/actions.jsonl"))
    assert len(bundles) == 2


def test_an_archive_move_that_fails_half_way_finishes_on_the_next_run_without_duplicates(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tenancy_diag.errors import SourceUnavailable
    from tenancy_diag.remediating.procedures import webhook_requeue

    env = _env(sandbox("healthy", tenants=TENANTS + 1), monkeypatch)
    region = "eu-west-1"
    client = boto3.client("sqs", region_name=region, endpoint_url=env.aws_endpoint_url)
    dlq = client.get_queue_url(QueueName=f"tenancy-webhook-dlq-{region}")["QueueUrl"]
    archive = client.get_queue_url(QueueName=f"tenancy-webhook-dlq-archive-{region}")["QueueUrl"]
    original = sum(_queues(env)[dlq])
    assert original >= 2
    real_move, sent = webhook_requeue.move_messages, []

    def crash_after_first_send(stage: str, index: int) -> None:
        if stage == "sent":
            sent.append(index)
            raise SourceUnavailable("sqs", "the connection dropped after SendMessage")

    def failing_move(*args: Any, **kwargs: Any) -> Any:
        return real_move(*args, **kwargs, fault=crash_after_first_send)

    scope = {"region": region, "tenant": "", "max_messages": 100, "archive": True}
    monkeypatch.setattr(webhook_requeue, "move_messages", failing_move)
    run, findings = _run("webhook_requeue", _acting(env, tmp_path), **scope)
    assert run.failed and findings.status == "failing", run.frame()
    # The copy is in the archive and the original still in the DLQ: nothing lost yet.
    assert sum(_queues(env)[archive]) == 1 and sum(_queues(env)[dlq]) == original
    monkeypatch.setattr(webhook_requeue, "move_messages", real_move)
    run, _ = _run("webhook_requeue", _acting(env, tmp_path), **scope)
    assert run.failed is None, run.frame()
    assert sum(_queues(env)[dlq]) == 0
    bodies = []
    for _ in range(original + 5):
        got = client.receive_message(QueueUrl=archive, MaxNumberOfMessages=10, VisibilityTimeout=30)
        bodies += [m["Body"] for m in got.get("Messages", [])]
        if not got.get("Messages"):
            break
    assert len(bodies) == original and len(set(bodies)) == original
