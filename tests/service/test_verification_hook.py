"""A resolved notification closes the incident in the audit log and queues its recovery check."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import requests

from tenancy_diag.running import default_catalog
from tenancy_diag.running.audit import AUDIT_FILE, AUDIT_SCHEMA
from tenancy_diag.running.catalog import VERIFICATION_NOTEBOOK
from tenancy_diag.service.executor import SubprocessExecutor
from tenancy_diag.service.http import RequestLog, make_app
from tenancy_diag.service.intake import parse_alertmanager
from tenancy_diag.service.limits import Limits
from tenancy_diag.service.listening import Listener
from tenancy_diag.service.recovery import SERVICE_ACTOR, on_resolved, verification_request
from tenancy_diag.service.store import QueueFull, Store
from tenancy_diag.service.telemetry import Telemetry

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def alert(status: str = "firing", starts_at: str = "2026-11-27T03:00:00Z") -> dict:
    labels = {
        "alertname": "TenancyPolicyLatencyP99High",
        "subsystem": "policy",
        "region": "us-east-1",
        "severity": "sev2",
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="TenancyPolicyLatencyP99High"}',
        "status": status,
        "receiver": "tenancy-diag",
        "groupLabels": {"alertname": "TenancyPolicyLatencyP99High"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {},
                "startsAt": starts_at,
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "0123456789abcdef",
            }
        ],
    }


class Service:
    def __init__(self, tmp_path: Path) -> None:
        self.out = tmp_path / "out"
        self.store = Store(tmp_path / "queue.sqlite3")
        telemetry, limits = Telemetry(), Limits()
        record = RequestLog(telemetry)
        app = make_app(
            self.store,
            TOKEN,
            telemetry,
            on_resolved=partial(on_resolved, self.store, self.out),
            record=record,
        )
        self.listener = Listener(
            app, "127.0.0.1", 0, limits=limits, record=record, telemetry=telemetry
        )
        self.listener.start()
        self.url = f"http://127.0.0.1:{self.listener.port}"

    def post(self, payload: dict) -> requests.Response:
        return requests.post(self.url + "/alerts", json=payload, headers=AUTH, timeout=10)

    def audit(self) -> list[dict]:
        path = self.out / AUDIT_FILE
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def close(self) -> None:
        self.listener.stop()
        self.store.close()


@pytest.fixture
def service(tmp_path):
    svc = Service(tmp_path)
    yield svc
    svc.close()


def test_resolved_alerts_close_the_incident_and_queue_its_verification(service):
    firing = service.post(alert()).json()
    incident = service.store.get(firing["job"]).incident_id
    answer = service.post(alert("resolved"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["created"] is True and body["job"] != firing["job"]
    assert service.store.resolutions(incident)[0].id == body["resolution"]

    job = service.store.get(body["job"])
    assert job.incident_id == incident
    assert job.subsystems == (VERIFICATION_NOTEBOOK,)
    assert (job.region, job.severity) == ("us-east-1", "sev2")

    [closure] = service.audit()
    assert closure["schema"] == AUDIT_SCHEMA
    assert closure["action"] == "close" and closure["incident"] == incident
    assert closure["actor"] == SERVICE_ACTOR
    assert closure["result"] == "closed: alerts resolved"
    assert closure["exit_code"] == 0 and closure["run_id"] is None


def test_the_same_resolved_notification_twice_is_one_job_and_one_closure(service):
    answers = [service.post(alert("resolved")) for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    assert [a.json()["created"] for a in answers] == [True, False, False]
    assert len({a.json()["job"] for a in answers}) == 1
    assert len({a.json()["resolution"] for a in answers}) == 1
    assert service.store.depth()["queued"] == 1
    assert [r["action"] for r in service.audit()] == ["close"]


def test_a_later_resolution_of_a_new_firing_is_verified_again(service):
    first = service.post(alert("resolved")).json()
    second = service.post(alert("resolved", starts_at="2026-11-27T05:00:00Z")).json()
    assert second["created"] is True and second["job"] != first["job"]
    assert len(service.audit()) == 2


def test_a_firing_notification_writes_no_closure(service):
    service.post(alert())
    assert service.audit() == []


def test_a_refused_verification_writes_no_closure(tmp_path):
    # Issue 11: with a full queue, five 503 answers wrote five closures. The job now takes its
    # place first, so a refusal leaves nothing written and Alertmanager's retry does it all.
    store = Store(tmp_path / "q.sqlite3", capacity=0)
    resolved = parse_alertmanager(json.dumps(alert("resolved")).encode())
    for _ in range(2):
        with pytest.raises(QueueFull):
            on_resolved(store, tmp_path / "out", resolved)
    assert not (tmp_path / "out" / AUDIT_FILE).exists()
    store.close()


def test_the_verification_cannot_start_before_its_closure_is_written(tmp_path, monkeypatch):
    import tenancy_diag.service.recovery as recovery

    store = Store(tmp_path / "q.sqlite3")
    claimed_meanwhile = []
    close = recovery.close_incident

    def close_and_look(*args, **kwargs):
        claimed_meanwhile.append(store.claim("eager-worker"))
        return close(*args, **kwargs)

    monkeypatch.setattr(recovery, "close_incident", close_and_look)
    resolved = parse_alertmanager(json.dumps(alert("resolved")).encode())
    job, created = on_resolved(store, tmp_path / "out", resolved)
    assert created and claimed_meanwhile == [None]
    assert store.claim("worker").id == job
    store.close()


def test_the_verification_job_runs_the_verification_notebook(tmp_path):
    resolved = parse_alertmanager(json.dumps(alert("resolved")).encode())
    request = verification_request(resolved)
    assert request.dedupe_key == verification_request(resolved).dedupe_key
    assert request.dedupe_key != resolved.dedupe_key
    with Store(tmp_path / "q.sqlite3") as store:
        job = store.get(store.enqueue(request)[0])
    command = SubprocessExecutor(tmp_path, {}).command(job, "run-1")
    assert command[3:5] == ["run", VERIFICATION_NOTEBOOK]
    assert ["--incident", resolved.incident_id] == command[5:7]
    # The runner's catalog knows the name the job carries.
    [entry] = default_catalog().resolve(list(job.subsystems))
    assert entry.name == VERIFICATION_NOTEBOOK and entry.subsystem == "recovery"
