"""The receiver on a real socket: every rejection leaves the queue alone; repeats dedupe."""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tenancy_diag.errors import ConfigError
from tenancy_diag.service.http import RequestLog, make_app, read_token
from tenancy_diag.service.limits import Limits
from tenancy_diag.service.listening import Listener
from tenancy_diag.service.store import Store
from tenancy_diag.service.telemetry import Telemetry

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
MAX_BODY = 16_384
FIXTURE = Path(__file__).parent / "fixtures" / "alertmanager_webhook_firing.json"


@dataclass
class Service:
    url: str
    store: Store

    def post(self, path: str, payload: object = None, headers=None, data=None):
        data = json.dumps(payload).encode() if data is None else data
        return requests.post(
            self.url + path, data=data, headers=AUTH if headers is None else headers, timeout=10
        )

    def snapshot(self) -> tuple[dict[str, int], int]:
        """Jobs by state and resolutions stored: what a rejection must leave as it was."""
        (count,) = self.store._db.execute("SELECT COUNT(*) FROM resolutions").fetchone()
        return self.store.depth(), count


def start(tmp_path: Path, capacity: int = 100):
    store = Store(tmp_path / "queue.sqlite3", capacity=capacity)
    telemetry, limits = Telemetry(), Limits(max_body_bytes=MAX_BODY)
    record = RequestLog(telemetry)
    app = make_app(store, TOKEN, telemetry, limits=limits, record=record)
    listener = Listener(app, "127.0.0.1", 0, limits=limits, record=record, telemetry=telemetry)
    listener.start()
    return Service(f"http://127.0.0.1:{listener.port}", store), listener


@pytest.fixture
def service(tmp_path):
    svc, listener = start(tmp_path)
    yield svc
    listener.stop()
    svc.store.close()


def alert(n: int = 1, status: str = "firing", **labels: str) -> dict:
    group = f'{{}}:{{alertname="TenancyReconcileBacklog", n="{n}"}}'
    alert_labels = {
        "alertname": "TenancyReconcileBacklog",
        "subsystem": "controller",
        "region": "eu-west-1",
        "severity": "sev2",
    }
    alert_labels.update(labels)
    return {
        "version": "4",
        "groupKey": group,
        "status": status,
        "receiver": "tenancy-diag",
        "groupLabels": {"alertname": "TenancyReconcileBacklog"},
        "commonLabels": alert_labels,
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": status,
                "labels": alert_labels,
                "annotations": {"runbook_url": "https://runbooks.example.com/tenancy"},
                "startsAt": "2026-11-27T03:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": f"{n:016x}",
            }
        ],
    }


def with_version(version: str) -> dict:
    payload = alert()
    payload["version"] = version
    return payload


INCIDENT = {
    "incident_id": "INC-1",
    "subsystem": "webhook",
    "region": "eu-west-1",
    "time": "2026-11-27T03:00:00Z",
}
JSON_ONLY = {"Content-Type": "application/json"}

REJECTIONS = {
    "malformed JSON": ("/alerts", {"data": b'{"version": "4",'}, 400),
    "wrong payload version": ("/alerts", {"payload": with_version("3")}, 422),
    "oversized body": ("/alerts", {"data": b"{" + b" " * MAX_BODY + b"}"}, 413),
    "unknown subsystem": ("/alerts", {"payload": alert(subsystem="billing")}, 422),
    "region ../x": ("/alerts", {"payload": alert(region="../x")}, 422),
    "tenant ../x": ("/alerts", {"payload": alert(tenant="../x")}, 422),
    "incident label ../x": ("/alerts", {"payload": alert(incident="../x")}, 422),
    "incident id ../x": ("/incidents", {"payload": {**INCIDENT, "incident_id": "../x"}}, 422),
    "incident region ../x": ("/incidents", {"payload": {**INCIDENT, "region": "../x"}}, 422),
    "unknown incident subsystem": (
        "/incidents",
        {"payload": {**INCIDENT, "subsystem": "billing"}},
        422,
    ),
    "bad token": (
        "/alerts",
        {"payload": alert(), "headers": {**AUTH, "Authorization": "Bearer no"}},
        401,
    ),
    "missing token": ("/alerts", {"payload": alert(), "headers": JSON_ONLY}, 401),
    "basic auth": (
        "/alerts",
        {"payload": alert(), "headers": {**JSON_ONLY, "Authorization": f"Basic {TOKEN}"}},
        401,
    ),
    "non-JSON content type": (
        "/alerts",
        {"payload": alert(), "headers": {**AUTH, "Content-Type": "text/plain"}},
        415,
    ),
    "form content type": (
        "/incidents",
        {
            "payload": INCIDENT,
            "headers": {**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
        },
        415,
    ),
    "chunked without length": ("/alerts", {"data": iter([json.dumps(alert()).encode()])}, 411),
    "unknown path": ("/alert", {"payload": alert()}, 404),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_each_rejection_has_its_code_and_queues_nothing(service, case):
    path, kwargs, status = REJECTIONS[case]
    service.post("/alerts", alert(500))  # something already queued, to be left as it is
    before = service.snapshot()
    response = service.post(path, **copy.deepcopy(kwargs))
    assert response.status_code == status, response.text
    reason = response.json()["error"]
    assert reason and "\n" not in reason
    assert service.snapshot() == before
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_an_oversized_body_is_refused_before_it_is_read(service):
    before = service.snapshot()
    # Ten times the limit: the reply must still arrive intact rather than as a reset.
    response = service.post("/alerts", data=b"x" * (MAX_BODY * 10))
    assert response.status_code == 413
    assert "over the limit of 16384" in response.json()["error"]
    assert service.snapshot() == before


def test_the_same_notification_five_times_is_one_job(service):
    answers = [service.post("/alerts", alert(1)) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert [a.json()["created"] for a in answers] == [True, False, False, False, False]
    assert len({a.json()["job"] for a in answers}) == 1
    assert service.store.depth()["queued"] == 1


def test_a_resolution_is_recorded_and_starts_nothing(service):
    job = service.post("/alerts", alert(1)).json()["job"]
    incident = service.store.get(job).incident_id
    first = service.post("/alerts", alert(1, status="resolved"))
    again = service.post("/alerts", alert(1, status="resolved"))
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == {"resolution": first.json()["resolution"]}
    assert service.store.depth()["queued"] == 1
    [resolution] = service.store.resolutions(incident)
    assert resolution.request["status"] == "resolved"


def test_a_full_queue_answers_503_with_retry_after(tmp_path):
    svc, listener = start(tmp_path, capacity=2)
    try:
        assert svc.post("/alerts", alert(1)).status_code == 200
        assert svc.post("/incidents", INCIDENT).status_code == 200
        full = svc.post("/alerts", alert(3))
        assert full.status_code == 503
        assert full.headers["Retry-After"] == "30"
        assert "capacity of 2" in full.json()["error"]
        assert svc.post("/alerts", alert(1)).json() == {"job": 1, "created": False}
        assert svc.store.depth()["queued"] == 2
    finally:
        listener.stop()
        svc.store.close()


def test_a_real_alertmanager_payload_queues_one_job(service):
    response = service.post("/alerts", data=FIXTURE.read_bytes())
    assert response.status_code == 200
    job = service.store.get(response.json()["job"])
    assert (job.kind, job.subsystems, job.region, job.tenant, job.severity) == (
        "alert",
        ("webhook",),
        "eu-west-1",
        "t-000123",
        "sev2",
    )
    assert job.incident_id.startswith("am-")


def test_an_incident_queues_one_job(service):
    response = service.post("/incidents", INCIDENT)
    assert response.json() == {"job": 1, "created": True}
    assert service.store.get(1).incident_id == "INC-1"


def test_concurrent_distinct_alerts_are_each_stored_once(service):
    answers: list[dict] = []
    lock = threading.Lock()

    def send(thread: int) -> None:
        for n in range(5):
            answer = service.post("/alerts", alert(thread * 10 + n)).json()
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=send, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(answers) == 40
    assert all(a["created"] for a in answers)
    assert len({a["job"] for a in answers}) == 40
    assert service.store.depth()["queued"] == 40


def test_health_and_metrics_need_no_token(service):
    service.post("/alerts", alert(1))
    service.post("/alerts", alert(subsystem="billing"))
    health = requests.get(service.url + "/healthz", timeout=10)
    assert health.json() == {
        "status": "ok",
        "queue": {"queued": 1, "running": 0, "done": 0, "failed": 0},
    }
    metrics = requests.get(service.url + "/metrics", timeout=10)
    assert metrics.status_code == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    text = metrics.text
    assert 'tenancy_diag_queue_depth{state="queued"} 1.0' in text
    assert 'tenancy_diag_requests_total{code="200",path="/alerts"} 1.0' in text
    assert 'tenancy_diag_requests_total{code="422",path="/alerts"} 1.0' in text
    assert 'tenancy_diag_runs_total{outcome="ok"} 0.0' in text
    assert requests.get(service.url + "/nope", timeout=10).status_code == 404


def test_each_request_logs_one_json_line(service, caplog):
    caplog.set_level(logging.INFO, logger="tenancy_diag.service")
    job = service.post("/alerts", alert(1)).json()["job"]
    service.post("/alerts", alert(region="../x"))
    # The server thread logs after the reply is on the wire; give it a moment under load.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith(".http")]
        if len(lines) >= 2:
            break
        time.sleep(0.05)
    assert [(x["method"], x["path"], x["status"], x["job"]) for x in lines] == [
        ("POST", "/alerts", 200, job),
        ("POST", "/alerts", 422, None),
    ]
    assert "region" in lines[1]["reason"]
    assert all(isinstance(x["duration_ms"], float) for x in lines)
    assert TOKEN not in caplog.text


def test_the_token_comes_from_the_environment_or_a_file(tmp_path):
    assert read_token({"TENANCY_DIAG_SERVICE_TOKEN": " abc \n"}) == "abc"
    path = tmp_path / "token"
    path.write_text("from-file\n", encoding="utf-8")
    assert read_token({"TENANCY_DIAG_SERVICE_TOKEN_FILE": str(path)}) == "from-file"
    with pytest.raises(ConfigError, match="TENANCY_DIAG_SERVICE_TOKEN"):
        read_token({})
    with pytest.raises(ConfigError, match="cannot read"):
        read_token({"TENANCY_DIAG_SERVICE_TOKEN_FILE": str(tmp_path / "missing")})
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is empty"):
        read_token({"TENANCY_DIAG_SERVICE_TOKEN_FILE": str(path)})


def test_an_empty_token_is_refused(tmp_path):
    with Store(tmp_path / "q.sqlite3") as store, pytest.raises(ConfigError, match="empty"):
        make_app(store, "  ", Telemetry())
