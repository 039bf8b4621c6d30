"""The sandbox's Tenancy admin API and the client that reads it, over a real HTTP server."""

import json
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from tenancy_diag.errors import ConfigError, ParameterError, SourceRejected, SourceUnavailable
from tenancy_diag.sandbox.admin_api import make_handler, tenant_checksums, tenant_jobs
from tenancy_diag.sandbox.secrets import PLANTED, carrier
from tenancy_diag.sandbox.serving import serve_in_thread, stop_pid, wait_ready
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec
from tenancy_diag.settings import AdminApiSettings
from tenancy_diag.sources.admin_api import JOB_FIELDS, AdminApiClient
from tenancy_diag.sources.base import JobsRequest

TOKEN = "sandbox-test-token-0123456789"
END = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def scenario():
    return Scenario(ScenarioSpec(name="migration_hang", tenants=200, end=END))


@pytest.fixture(scope="module")
def api(scenario):
    handler = make_handler(scenario, TOKEN)
    server, thread = serve_in_thread(handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    yield url, handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _client(url, token=TOKEN):
    return AdminApiClient(AdminApiSettings(url=url, token=token, timeout_s=5))


def _post(url, path, body=None, actor="sre-alice", token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"}
    if actor:
        headers["X-Actor"] = actor
    return requests.post(url + path, json=body or {}, headers=headers, timeout=5)


def _iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def test_jobs_have_exactly_the_contract_fields(api, scenario):
    url, _ = api
    for tenant in scenario.tenants[:20]:
        jobs = _client(url).jobs(JobsRequest(tenant.id))
        assert jobs and all(tuple(j) == JOB_FIELDS for j in jobs)
        assert any(j["status"] == "succeeded" for j in jobs)
        assert {j["status"] for j in jobs} <= {"pending", "running", "failed", "succeeded"}


def test_migration_hang_tenants_have_a_stuck_migrate_job(api, scenario):
    url, _ = api
    truth = scenario.truth
    assert truth.tenants and len(truth.job_ids) == len(truth.tenants)
    for tenant_id, job_id in zip(truth.tenants, truth.job_ids, strict=True):
        jobs = {j["job_id"]: j for j in _client(url).jobs(JobsRequest(tenant_id))}
        stuck = jobs[job_id]
        assert (stuck["job_type"], stuck["status"], stuck["step"]) == (
            "migrate",
            "running",
            "verify_checksums",
        )
        assert stuck["updated_at"] == _iso(truth.incident_start)
        assert stuck["started_at"] < stuck["updated_at"]
    others = [t for t in scenario.tenants if t.id not in truth.tenants][:50]
    steps = {j["step"] for t in others for j in tenant_jobs(scenario, t.id)}
    assert "verify_checksums" not in steps


def test_wrong_token_is_401_and_names_the_token_variable(api):
    url, _ = api
    assert requests.get(f"{url}/tenants/t-000001/jobs", timeout=5).status_code == 401
    wrong = requests.get(
        f"{url}/tenants/t-000001/jobs", timeout=5, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
    with pytest.raises(SourceRejected, match="TENANCY_API_TOKEN"):
        _client(url, token="wrong-token").jobs(JobsRequest("t-000001"))


def test_unknown_tenant_is_404_naming_it(api):
    url, _ = api
    with pytest.raises(SourceRejected, match="tenant t-999999 is unknown"):
        _client(url).jobs(JobsRequest("t-999999"))


def test_tenant_ids_are_validated_before_any_request():
    client = _client("http://127.0.0.1:9")
    for bad in ("t-1/../admin/audit", "", "t 1", "../x"):
        with pytest.raises(ParameterError, match="is not valid"):
            client.jobs(JobsRequest(bad))


def test_server_decodes_then_validates_path_segments(api):
    url, _ = api
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(f"{url}/tenants/%74-000001/jobs", headers=auth, timeout=5).ok
    sneaky = requests.get(f"{url}/tenants/t-000001%2F..%2Fx/jobs", headers=auth, timeout=5)
    assert sneaky.status_code == 400 and sneaky.json()["error"] == "invalid_id"


def test_missing_token_is_a_config_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv("TENANCY_API_TOKEN", raising=False)
    monkeypatch.delenv("TENANCY_API_TOKEN_FILE", raising=False)
    client = AdminApiClient(AdminApiSettings(url="http://127.0.0.1:9"))
    with pytest.raises(ConfigError, match="TENANCY_API_TOKEN"):
        client.jobs(JobsRequest("t-000001"))


def test_token_comes_from_the_environment(api, monkeypatch, tmp_path):
    url, _ = api
    monkeypatch.delenv("TENANCY_API_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("TENANCY_API_TOKEN_FILE", str(token_file))
    client = AdminApiClient(AdminApiSettings(url=url))
    assert client.jobs(JobsRequest("t-000002"))
    assert TOKEN not in repr(client.settings)


def test_unreachable_api_is_source_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(SourceUnavailable, match=f"{url}.*--tenancy-api-url") as info:
        _client(url).jobs(JobsRequest("t-000001"))
    assert isinstance(info.value.__cause__, requests.RequestException)


def test_job_errors_are_redacted():
    leaked = f"apply failed; {carrier('bearer_token')}; {carrier('url_password')}"

    class Leaky(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps([{"job_id": "job-1", "status": "failed", "error": leaked}]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server, _ = serve_in_thread(Leaky)
    try:
        jobs = _client(f"http://127.0.0.1:{server.server_address[1]}").jobs(JobsRequest("t-1"))
    finally:
        server.shutdown()
        server.server_close()
    assert "[REDACTED]" in jobs[0]["error"]
    assert PLANTED["bearer_token"] not in jobs[0]["error"]
    assert PLANTED["url_password"] not in jobs[0]["error"]


def test_mutating_calls_need_an_actor(api):
    url, _ = api
    response = _post(url, "/admin/policy-cache:invalidate", {"region": "us-east-1"}, actor=None)
    assert response.status_code == 400 and response.json()["error"] == "actor_required"


def test_mutating_calls_are_audited_with_actor(api, scenario):
    url, handler = api
    failed = next(
        (t.id, j["job_id"])
        for t in scenario.tenants
        for j in tenant_jobs(scenario, t.id)
        if j["status"] == "failed"
    )
    expires = _iso((datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0))
    calls = [
        (f"/tenants/{failed[0]}/jobs/{failed[1]}:retry", {}, 202),
        (
            f"/tenants/{scenario.tenants[0].id}/webhooks:requeue",
            {"from_sequence": 100, "to_sequence": 140},
            202,
        ),
        ("/admin/policy-cache:invalidate", {"region": "eu-west-1", "key": "pol-access"}, 202),
        (
            "/admin/rate-limit:override",
            {
                "region": "us-east-1",
                "burst_multiplier": 2.5,
                "reason": "INC-1 bulk sync",
                "expires_at": expires,
            },
            200,
        ),
    ]
    before = len(handler.state.audit)
    for path, body, status in calls:
        assert _post(url, path, body, actor="sre-bob").status_code == status, path
    audit = requests.get(
        f"{url}/admin/audit", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    ).json()[before:]
    assert [e["action"] for e in audit] == [
        "retry_job",
        "requeue_webhooks",
        "invalidate_policy_cache",
        "override_rate_limit",
    ]
    assert {e["actor"] for e in audit} == {"sre-bob"}
    assert audit[1]["details"]["requeued"] == 41
    assert audit[3]["details"]["expires_at"] == expires
    retried = {j["job_id"]: j for j in _client(url).jobs(JobsRequest(failed[0]))}[failed[1]]
    assert (retried["status"], retried["error"]) == ("pending", None)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/tenants/t-000001/webhooks:requeue", {"from_sequence": 10, "to_sequence": 5}),
        ("/tenants/t-000001/webhooks:requeue", {"from_sequence": "1", "to_sequence": 5}),
        ("/admin/policy-cache:invalidate", {"region": "mars-1"}),
        (
            "/admin/rate-limit:override",
            {
                "region": "us-east-1",
                "burst_multiplier": True,
                "reason": "x",
                "expires_at": "2099-01-01T00:00:00Z",
            },
        ),
        (
            "/admin/rate-limit:override",
            {
                "region": "us-east-1",
                "burst_multiplier": 2,
                "reason": "x",
                "expires_at": "2001-01-01T00:00:00Z",
            },
        ),
        (
            "/admin/rate-limit:override",
            {
                "region": "us-east-1",
                "burst_multiplier": 2,
                "reason": " ",
                "expires_at": "2099-01-01T00:00:00Z",
            },
        ),
    ],
)
def test_invalid_bodies_are_rejected_and_not_audited(api, path, body):
    url, handler = api
    before = len(handler.state.audit)
    response = _post(url, path, body)
    assert response.status_code == 400 and response.json()["error"] == "invalid_body"
    assert len(handler.state.audit) == before


def test_retrying_a_succeeded_job_conflicts(api, scenario):
    url, _ = api
    tenant = scenario.tenants[3].id
    done = next(j for j in tenant_jobs(scenario, tenant) if j["status"] == "succeeded")
    response = _post(url, f"/tenants/{tenant}/jobs/{done['job_id']}:retry")
    assert response.status_code == 409


def test_main_serves_as_a_background_process(scenario, tmp_path):
    scenario_file, token_file, ready = tmp_path / "s.json", tmp_path / "token", tmp_path / "r.json"
    scenario_file.write_text(json.dumps(scenario.spec.to_json()))
    token_file.write_text(TOKEN)
    with (tmp_path / "admin.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tenancy_diag.sandbox.admin_api",
                "--scenario-file",
                str(scenario_file),
                "--token-file",
                str(token_file),
                "--ready-file",
                str(ready),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        info = wait_ready(ready, timeout_s=30, pid=proc.pid)
        truth = scenario.truth
        jobs = _client(info["url"]).jobs(JobsRequest(truth.tenants[0]))
        assert truth.job_ids[0] in {j["job_id"] for j in jobs}
    finally:
        assert stop_pid(proc.pid)
    assert TOKEN not in (tmp_path / "admin.log").read_text()


# -- the sandbox's remediation calls, beyond the contract ----------------------------------
@pytest.fixture
def fresh(scenario):
    """A server of its own, so state written by one test is never read by another."""
    handler = make_handler(scenario, TOKEN)
    server, thread = serve_in_thread(handler)
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _get(url, path, token=TOKEN):
    return requests.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=5)


def _audit(url):
    return _get(url, "/admin/audit").json()


def _override_body(region, multiplier):
    expires = _iso((datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0))
    return {
        "region": region,
        "burst_multiplier": multiplier,
        "reason": "INC-7 partner bulk sync",
        "expires_at": expires,
    }


def test_rate_limit_read_shows_overrides_and_1_0_removes_one(fresh):
    url, _ = fresh
    assert _get(url, "/admin/rate-limit").json() == {
        "default_burst_multiplier": 1.0,
        "overrides": [],
    }
    body = _override_body("eu-west-1", 3)
    assert _post(url, "/admin/rate-limit:override", body, actor="sre-carol").status_code == 200
    (override,) = _get(url, "/admin/rate-limit").json()["overrides"]
    set_at = override.pop("set_at")
    assert override == {**body, "burst_multiplier": 3.0, "set_by": "sre-carol"}
    assert datetime.fromisoformat(set_at) <= datetime.now(UTC)

    back = _post(url, "/admin/rate-limit:override", _override_body("eu-west-1", 1.0))
    assert back.status_code == 200 and back.json()["burst_multiplier"] == 1.0
    assert _get(url, "/admin/rate-limit").json()["overrides"] == []
    last = _audit(url)[-1]
    assert (last["action"], last["actor"], last["target"]) == (
        "override_rate_limit",
        "sre-alice",
        "rate-limit/eu-west-1",
    )
    assert last["details"]["cleared"] is True and last["details"]["burst_multiplier"] == 1.0
    assert _get(url, "/admin/rate-limit", token="wrong").status_code == 401


def test_policy_cache_history_records_each_invalidation(fresh, scenario):
    url, _ = fresh
    empty = _get(url, "/admin/policy-cache").json()
    assert empty == {"regions": [{"region": r, "invalidations": []} for r in scenario.spec.regions]}
    for key, actor in (("pol-access", "sre-dan"), (None, "sre-erin")):
        body = {"region": "us-east-1", **({"key": key} if key else {})}
        assert _post(url, "/admin/policy-cache:invalidate", body, actor=actor).status_code == 202
    regions = {
        r["region"]: r["invalidations"] for r in _get(url, "/admin/policy-cache").json()["regions"]
    }
    assert [(i["key"], i["actor"]) for i in regions["us-east-1"]] == [
        ("pol-access", "sre-dan"),
        (None, "sre-erin"),
    ]
    assert all(i["at"].endswith("Z") for i in regions["us-east-1"])
    assert regions["eu-west-1"] == [] == regions["ap-southeast-2"]


def _jobs_by_id(url, tenant_id):
    return {j["job_id"]: j for j in _get(url, f"/tenants/{tenant_id}/jobs").json()}


def test_pause_and_resume_a_stuck_migration(fresh, scenario):
    url, _ = fresh
    tenant, job = scenario.truth.tenants[0], scenario.truth.job_ids[0]
    base = f"/tenants/{tenant}/jobs/{job}"
    before = len(_audit(url))

    refused = _post(url, f"{base}:pause", actor=None)
    assert refused.status_code == 400 and refused.json()["error"] == "actor_required"
    assert _post(url, f"{base}:pause", token="wrong").status_code == 401
    assert _jobs_by_id(url, tenant)[job]["status"] == "running"

    paused = _post(url, f"{base}:pause", actor="sre-fay")
    assert paused.status_code == 202
    assert paused.json()["status"] == "paused" and paused.json()["tenant_id"] == tenant
    assert _jobs_by_id(url, tenant)[job]["status"] == "paused"
    again = _post(url, f"{base}:pause")
    assert again.status_code == 409 and again.json()["error"] == "not_pausable"
    assert _post(url, f"{base}:retry").status_code == 409

    resumed = _post(url, f"{base}:resume", actor="sre-fay")
    assert resumed.status_code == 202 and resumed.json()["status"] == "running"
    assert _jobs_by_id(url, tenant)[job]["status"] == "running"
    twice = _post(url, f"{base}:resume")
    assert twice.status_code == 409 and twice.json()["error"] == "not_resumable"

    audit = _audit(url)[before:]
    assert [(e["action"], e["actor"], e["details"]) for e in audit] == [
        ("pause_job", "sre-fay", {"from_status": "running", "to_status": "paused"}),
        ("resume_job", "sre-fay", {"from_status": "paused", "to_status": "running"}),
    ]
    assert audit[0]["target"] == f"tenants/{tenant}/jobs/{job}"


def test_only_pending_or_running_jobs_pause(fresh, scenario):
    url, _ = fresh
    tenant = scenario.tenants[3].id
    done = next(j for j in tenant_jobs(scenario, tenant) if j["status"] == "succeeded")
    response = _post(url, f"/tenants/{tenant}/jobs/{done['job_id']}:pause")
    assert response.status_code == 409 and response.json()["error"] == "not_pausable"
    assert "succeeded" in response.json()["message"]
    assert _post(url, f"/tenants/{tenant}/jobs/job-nope:pause").status_code == 404
    assert _post(url, "/tenants/t-999999/jobs/job-nope:resume").status_code == 404


def _region(scenario, tenant_id):
    return next(t.region for t in scenario.tenants if t.id == tenant_id)


def test_routing_of_a_stuck_tenant_and_switching_it_back(fresh, scenario):
    url, _ = fresh
    tenant = scenario.truth.tenants[0]
    region = _region(scenario, tenant)
    source, target = f"db-{region}-a", f"db-{region}-b"
    assert _get(url, f"/tenants/{tenant}/routing").json() == {
        "tenant_id": tenant,
        "endpoint": target,
        "endpoints": [source, target],
        "switched_at": None,
    }
    before = len(_audit(url))

    bad = _post(url, f"/tenants/{tenant}/routing:switch", {"endpoint": "db-x"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_body"
    assert "'db-x'" in bad.json()["message"] and source in bad.json()["message"]
    assert (
        _post(url, f"/tenants/{tenant}/routing:switch", {"endpoint": source}, actor=None).ok
        is False
    )
    assert _get(url, f"/tenants/{tenant}/routing").json()["endpoint"] == target
    assert len(_audit(url)) == before

    switched = _post(
        url, f"/tenants/{tenant}/routing:switch", {"endpoint": source}, actor="sre-gus"
    )
    assert switched.status_code == 200
    answer = switched.json()
    assert (answer["endpoint"], answer["previous_endpoint"]) == (source, target)
    now = _get(url, f"/tenants/{tenant}/routing").json()
    assert now["endpoint"] == source and now["endpoints"] == [source, target]
    assert now["switched_at"] == answer["switched_at"] and now["switched_at"].endswith("Z")
    (entry,) = _audit(url)[before:]
    assert (entry["action"], entry["actor"], entry["target"], entry["details"]) == (
        "switch_routing",
        "sre-gus",
        f"tenants/{tenant}/routing",
        {"endpoint": source, "previous_endpoint": target},
    )


def test_routing_of_other_tenants_knows_one_endpoint(fresh, scenario):
    url, _ = fresh
    other = next(t for t in scenario.tenants if t.id not in scenario.truth.tenants)
    routing = _get(url, f"/tenants/{other.id}/routing").json()
    assert routing["endpoint"] == f"db-{other.region}-a"
    assert routing["endpoints"] == [f"db-{other.region}-a"]
    refused = _post(
        url, f"/tenants/{other.id}/routing:switch", {"endpoint": f"db-{other.region}-b"}
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_body"
    assert _get(url, "/tenants/t-999999/routing").status_code == 404
    assert _post(url, f"/tenants/{other.id}/routing").status_code == 405


def test_checksums_show_the_target_lagging_on_one_table(fresh, scenario):
    url, _ = fresh
    tenant = scenario.truth.tenants[0]
    region = _region(scenario, tenant)
    source = _get(url, f"/tenants/{tenant}/checksums?endpoint=db-{region}-a").json()
    target = _get(url, f"/tenants/{tenant}/checksums?endpoint=db-{region}-b").json()
    assert (source["tenant_id"], source["endpoint"]) == (tenant, f"db-{region}-a")
    assert set(source["tables"]) == set(target["tables"]) == {"tenants", "memberships", "policies"}
    differing = [t for t in source["tables"] if source["tables"][t] != target["tables"][t]]
    assert len(differing) == 1
    (table,) = differing
    assert source["tables"][table]["rows"] > target["tables"][table]["rows"] > 0
    assert all(len(v["sha256"]) == 64 for v in source["tables"].values())
    assert _get(url, f"/tenants/{tenant}/checksums?endpoint=db-{region}-a").json() == source
    rebuilt = Scenario(ScenarioSpec(name="migration_hang", tenants=200, end=END))
    assert tenant_checksums(rebuilt, tenant, region, f"db-{region}-a") == source
    reseeded = Scenario(ScenarioSpec(name="migration_hang", tenants=200, end=END, seed=8))
    assert tenant_checksums(reseeded, tenant, region, f"db-{region}-a") != source


def test_checksums_of_an_unknown_endpoint_are_400(fresh, scenario):
    url, _ = fresh
    other = next(t for t in scenario.tenants if t.id not in scenario.truth.tenants)
    complete = _get(url, f"/tenants/{other.id}/checksums?endpoint=db-{other.region}-a")
    assert complete.ok and complete.json()["endpoint"] == f"db-{other.region}-a"
    for query in (f"?endpoint=db-{other.region}-b", "?endpoint=db-x", ""):
        response = _get(url, f"/tenants/{other.id}/checksums{query}")
        assert response.status_code == 400, query
        assert response.json()["error"] == "invalid_query"
        assert f"db-{other.region}-a" in response.json()["message"]
    assert _get(url, "/tenants/t-999999/checksums?endpoint=db-x").status_code == 404
