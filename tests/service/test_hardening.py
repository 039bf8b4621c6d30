"""Issue 11 at the wire: each hostile request of the issue, sent to a running service on 127.0.0.1.

Every test starts the real :class:`Service` (receiver, queue, no workers unless it needs runs)
on port 0 and talks to it over a socket. Config fields a test names but this version of the
service does not know are dropped, so the same file runs against the old receiver too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from tenancy_diag.service.app import Service, ServiceConfig

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def alert(n: int = 1, status: str = "firing", **labels: str) -> dict:
    alert_labels = {
        "alertname": "TenancyReconcileBacklog",
        "subsystem": "controller",
        "region": "eu-west-1",
        "severity": "sev2",
        **labels,
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="TenancyReconcileBacklog", n="{n}"}}',
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
                "annotations": {},
                "startsAt": "2026-11-27T03:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": f"{n:016x}",
            }
        ],
    }


INCIDENT = {
    "incident_id": "INC-1",
    "subsystem": "webhook",
    "region": "eu-west-1",
    "time": "2026-11-27T03:00:00Z",
}


try:
    from tenancy_diag.service.limits import Limits
    from tenancy_diag.service.retention import Retention

    _LIMITS = {f.name for f in dataclasses.fields(Limits)}
except ImportError:  # the receiver before issue 11 had neither
    _LIMITS = set()
_RETENTION = {"retain_days": "max_age_days", "retain_bytes": "max_bytes"}


@pytest.fixture
def serve(tmp_path):
    """``serve(capacity=1, ...)``: a started Service; stopped after the test."""
    started: list[Service] = []

    def start(**overrides: object) -> Service:
        known = {f.name for f in dataclasses.fields(ServiceConfig)}
        values: dict[str, object] = {
            "listen": "127.0.0.1:0",
            "state_dir": tmp_path / "state",
            "out": tmp_path / "out",
            "token": TOKEN,
            "workers": 0,
            "runner_args": ("--sample",),
            "drain_timeout_s": 5.0,
        }
        values |= {k: v for k, v in overrides.items() if k in known}
        limits = {k: v for k, v in overrides.items() if k in _LIMITS}
        if limits and "limits" in known:
            values["limits"] = Limits(**limits)
        retention = {_RETENTION[k]: v for k, v in overrides.items() if k in _RETENTION}
        if retention and "retention" in known:
            values["retention"] = Retention(**retention)
        service = Service(ServiceConfig(**values))  # type: ignore[arg-type]
        service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def post(service: Service, path: str, payload: object = None, *, data=None, headers=None):
    body = json.dumps(payload).encode() if data is None else data
    return requests.post(
        service.url + path, data=body, headers=AUTH if headers is None else headers, timeout=15
    )


def port_of(service: Service) -> int:
    return int(service.url.rsplit(":", 1)[1])


def raw_exchange(service: Service, head: bytes, body: bytes = b"", wait_s: float = 10.0) -> bytes:
    """Send ``head`` and ``body`` on a fresh socket and read whatever comes back until EOF."""
    with socket.create_connection(("127.0.0.1", port_of(service)), timeout=wait_s) as sock:
        sock.sendall(head + body)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def status_of(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1."), reply[:200]
    return int(reply.split(b" ", 2)[1])


def metric(service: Service, name: str, **labels: str) -> float:
    text = requests.get(service.url + "/metrics", timeout=10).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series == (f"{name}{{{wanted}}}" if labels else name):
            return float(value)
    return 0.0


# Defect 1: client errors answered 500.


def test_json_nested_100000_deep_is_a_400(serve):
    service = serve()
    response = post(
        service, "/alerts", data=b'{"alerts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    )
    assert response.status_code == 400, response.text
    assert "nest" in response.json()["error"]


@pytest.mark.parametrize("path", ["/alerts", "/incidents"])
def test_a_time_past_year_9999_in_utc_is_a_422(serve, path):
    service = serve()
    moment = "9999-12-31T23:59:59-23:59"
    if path == "/alerts":
        payload = alert()
        payload["alerts"][0]["startsAt"] = moment
    else:
        payload = {**INCIDENT, "time": moment}
    response = post(service, path, payload)
    assert response.status_code == 422, response.text
    assert service.store.depth()["queued"] == 0


def test_a_lone_surrogate_in_group_key_is_a_400(serve):
    service = serve()
    body = json.dumps(alert()).replace('"groupKey": "', '"groupKey": "\\ud800', 1).encode()
    response = post(service, "/alerts", data=body)
    assert response.status_code == 400, response.text
    assert "surrogate" in response.json()["error"]


def test_a_body_shorter_than_its_length_is_a_408_within_the_deadline(serve):
    service = serve(body_deadline_s=1.0)
    head = (
        b"POST /alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    started = time.monotonic()
    reply = raw_exchange(service, head, b'{"version"', wait_s=8)
    assert status_of(reply) == 408
    assert time.monotonic() - started < 5


def test_an_integer_version_4_is_version_4(serve):
    service = serve()
    response = post(service, "/alerts", {**alert(), "version": 4})
    assert response.status_code == 200, response.text
    assert post(service, "/alerts", {**alert(), "version": 4.5}).status_code == 422
    assert post(service, "/alerts", {**alert(), "version": True}).status_code == 422


# Defect 2: bursts go unanswered (listen backlog 5).


def test_300_simultaneous_clients_are_all_answered(serve):
    service = serve(capacity=1000)
    port = port_of(service)

    async def one(n: int) -> int:
        body = json.dumps(alert(1000 + n)).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /alerts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        line = await reader.readline()
        writer.close()
        return int(line.split()[1])

    async def burst() -> list[int | BaseException]:
        tasks = [asyncio.wait_for(one(n), 20) for n in range(300)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    answers = asyncio.run(burst())
    unanswered = [a for a in answers if not isinstance(a, int)]
    assert not unanswered, f"{len(unanswered)} of 300 got no answer: {unanswered[0]!r}"
    assert answers == [200] * 300
    assert service.store.depth()["queued"] == 300


# Defect 3: a resolved notification answered 503 still closed the incident.


def test_a_resolution_answered_503_closes_nothing(serve):
    service = serve(capacity=1)
    assert post(service, "/alerts", alert(1)).status_code == 200
    incident = service.store.get(1).incident_id
    audit = service.config.out / "audit.jsonl"
    for _ in range(3):
        refused = post(service, "/alerts", alert(1, status="resolved"))
        assert refused.status_code == 503 and refused.headers["Retry-After"]
    closes = [json.loads(x) for x in audit.read_text().splitlines()] if audit.exists() else []
    assert [c for c in closes if c.get("action") == "close"] == []
    # Room again (the first job failed): the retried notification closes it, once.
    service.store.claim("t")
    service.store.fail(1, "test")
    for _ in range(2):
        assert post(service, "/alerts", alert(1, status="resolved")).status_code == 200
    closes = [json.loads(x) for x in audit.read_text().splitlines()]
    assert [c["incident"] for c in closes if c.get("action") == "close"] == [incident]


# Defect 4: two instances shared one --state.


def test_a_second_service_on_the_same_state_exits_2_naming_the_first(serve, tmp_path):
    first = serve()
    token = tmp_path / "token"
    token.write_text(TOKEN)
    second = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tenancy_diag.cli",
            "serve",
            "--listen=127.0.0.1:0",
            f"--state={first.config.state_dir}",
            f"--out={tmp_path / 'out2'}",
        ],
        env={**os.environ, "TENANCY_DIAG_SERVICE_TOKEN_FILE": str(token)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, stderr = second.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        second.kill()
        second.communicate()
        pytest.fail("the second service kept running beside the first")
    assert second.returncode == 2
    message = stderr.decode()
    assert f"pid {os.getpid()}" in message and socket.gethostname() in message, message


# Defect 5: region and tenant accepted any Unicode digit.


@pytest.mark.parametrize(
    "labels", [{"region": "us-east-\u0661"}, {"tenant": "t-\uff10\uff10\uff10\uff10\uff10\uff11"}]
)
def test_non_ascii_digits_are_refused(serve, labels):
    service = serve()
    response = post(service, "/alerts", alert(**labels))
    assert response.status_code == 422, response.text
    assert service.store.depth()["queued"] == 0


# Defect 7: OUT/audit.jsonl followed symlinks.


def test_an_audit_log_that_is_a_symlink_is_never_written_through(serve, tmp_path):
    service = serve()
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_text("")
    service.config.out.mkdir(parents=True, exist_ok=True)
    (service.config.out / "audit.jsonl").symlink_to(elsewhere)
    response = post(service, "/alerts", alert(1, status="resolved"))
    assert elsewhere.read_text() == ""
    assert response.status_code == 500
    assert "symlink" in response.json()["error"]


# Defect 8: no bound on disk.


def _bundle(out: Path, incident: str, run_id: str, size: int, age_days: float) -> Path:
    folder = out / incident / run_id
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    (folder / "blob.bin").write_bytes(b"x" * size)
    stamp = time.time() - age_days * 86400
    for path in (folder / "manifest.json", folder / "blob.bin", folder):
        os.utime(path, (stamp, stamp))
    return folder


def _done_job(store, n: int, bundle: Path, attached: bool) -> int:
    from tenancy_diag.service.intake import parse_incident

    body = {**INCIDENT, "incident_id": bundle.parent.name, "time": f"2026-11-27T03:00:{n:02d}Z"}
    job, _ = store.enqueue(parse_incident(json.dumps(body).encode()))
    store.claim("t")
    store.set_run_id(job, bundle.name)
    store.finish(job, str(bundle), 0)
    if attached:
        store.record_attachment(job, "local", True, "ok")
    return job


def test_retention_prunes_attached_bundles_and_partials_never_unattached_ones(serve, tmp_path):
    out = tmp_path / "out"
    old_attached = _bundle(out, "INC-a", "R-1", 4096, age_days=10)
    old_unattached = _bundle(out, "INC-b", "R-2", 4096, age_days=10)
    new_attached = _bundle(out, "INC-c", "R-3", 4096, age_days=0)
    partial = _bundle(out, "INC-a", "R-1.partial-1", 4096, age_days=10)
    from tenancy_diag.service.store import Store

    with Store(tmp_path / "state" / "queue.sqlite") as store:
        jobs = [
            _done_job(store, 1, old_attached, True),
            _done_job(store, 2, old_unattached, False),
            _done_job(store, 3, new_attached, True),
        ]
    service = serve(retain_days=7.0, retain_bytes=10**9)
    deadline = time.monotonic() + 10
    # Counted at the end of the pass, after the disk was measured.
    while metric(service, "tenancy_diag_pruned_total", what="partials") < 1:
        assert time.monotonic() < deadline, "retention removed no attempt folder in 10 s"
        time.sleep(0.1)
    assert not old_attached.exists() and not partial.exists()
    assert old_unattached.exists() and new_attached.exists()
    assert [j.id for j in service.store.jobs()] == jobs[1:]
    assert metric(service, "tenancy_diag_disk_bytes", what="bundles") >= 8192


def test_retain_bytes_removes_the_oldest_attached_bundles_first(serve, tmp_path):
    out = tmp_path / "out"
    bundles = [_bundle(out, f"INC-{n}", f"R-{n}", 100_000, age_days=3 - n) for n in range(3)]
    unattached = _bundle(out, "INC-u", "R-u", 100_000, age_days=5)
    from tenancy_diag.service.store import Store

    with Store(tmp_path / "state" / "queue.sqlite") as store:
        for n, bundle in enumerate(bundles):
            _done_job(store, n, bundle, True)
        _done_job(store, 9, unattached, False)
    service = serve(retain_bytes=250_000)
    deadline = time.monotonic() + 10
    while metric(service, "tenancy_diag_pruned_total", what="bundles") < 2:
        assert time.monotonic() < deadline, "retention removed fewer than 2 bundles in 10 s"
        time.sleep(0.1)
    # Oldest first, attached only: the unattached one is older and bigger than the bound allows.
    assert [b.exists() for b in bundles] == [False, False, True]
    assert unattached.exists()
    assert metric(service, "tenancy_diag_pruned_total", what="bundles") == 2


# Defect 9: kill -9 left kernel connection files in /tmp (runner env: see test_executor.py).


def test_runtime_files_a_killed_service_left_are_removed_at_start(serve, tmp_path):
    leftover = tmp_path / "state" / "runtime" / "R-dead" / "kernel-1.json"
    leftover.parent.mkdir(parents=True)
    leftover.write_text('{"key": "hmac"}')
    serve()
    assert not leftover.exists()


# Defect 10: no read deadline, no connection cap.


def test_a_header_line_every_half_second_is_cut_at_the_deadline(serve):
    service = serve(head_deadline_s=2.0)
    started = time.monotonic()
    cut = None
    with socket.create_connection(("127.0.0.1", port_of(service)), timeout=10) as sock:
        sock.sendall(b"POST /alerts HTTP/1.1\r\nHost: x\r\n")
        for n in range(16):
            readable, _, _ = select.select([sock], [], [], 0.5)
            if readable:  # an answer (408) or the close
                cut = time.monotonic() - started
                break
            try:
                sock.sendall(f"X-Slow-{n}: y\r\n".encode())
            except OSError:
                cut = time.monotonic() - started
                break
    assert cut is not None, "the slow client kept its connection for 8 s"
    assert cut < 4.0


def test_1000_half_open_connections_take_no_threads_and_the_service_still_answers(serve):
    service = serve(head_deadline_s=30.0, max_connections=200)
    me = psutil.Process()
    threads_before = me.num_threads()
    socks = []
    try:
        for _ in range(1000):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port_of(service)))
            except BlockingIOError:
                pass
            socks.append(s)
        # SYNs a full backlog dropped are sent again after 1 s and 3 s: wait for those too.
        threads_during = threads_before
        for _ in range(10):
            time.sleep(0.5)
            threads_during = max(threads_during, me.num_threads())
        health = requests.get(service.url + "/healthz", timeout=10)
        established = sum(
            1
            for c in me.net_connections("tcp")
            if c.laddr and c.laddr.port == port_of(service) and c.status == "ESTABLISHED"
        )
    finally:
        for s in socks:
            s.close()
    print(f"\nthreads {threads_before} -> {threads_during}; server-side connections {established}")
    assert threads_during - threads_before < 20
    assert established <= 200 + 1
    assert health.status_code in (200, 503)


# Defect 11: 501, 414 and 431 were neither logged nor counted.


def test_501_414_and_431_are_answered_logged_and_counted(serve, caplog):
    service = serve()
    caplog.set_level("INFO", logger="tenancy_diag.service")
    brew = raw_exchange(service, b"BREW /alerts HTTP/1.1\r\nHost: x\r\n\r\n", wait_s=5)
    assert status_of(brew) == 501
    long_target = b"/alerts?" + b"a" * 70_000
    reply = raw_exchange(service, b"GET " + long_target + b" HTTP/1.1\r\nHost: x\r\n\r\n", wait_s=5)
    assert status_of(reply) == 414
    big = b"".join(f"X-H{n}: {'v' * 100}\r\n".encode() for n in range(700))
    reply = raw_exchange(service, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n", wait_s=5)
    assert status_of(reply) == 431
    for code in ("501", "414", "431"):
        counted = [
            metric(service, "tenancy_diag_requests_total", code=code, path=path)
            for path in ("other", "/alerts", "/healthz")
        ]
        assert sum(counted) == 1, code
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]
    assert {501, 414, 431} <= {x.get("status") for x in logged}


# Defect 1's log half: every line the service writes is one JSON object.


def test_every_log_line_is_json_after_hostile_requests(tmp_path):
    token = tmp_path / "token"
    token.write_text(TOKEN)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tenancy_diag.cli",
                "serve",
                f"--listen=127.0.0.1:{port}",
                f"--state={tmp_path / 'state'}",
                f"--out={tmp_path / 'out'}",
                "--runner-arg=--sample",
            ],
            env={**os.environ, "TENANCY_DIAG_SERVICE_TOKEN_FILE": str(token)},
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(url + "/healthz", timeout=1)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        hostile = [
            b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            json.dumps({**INCIDENT, "time": "9999-12-31T23:59:59-23:59"}).encode(),
            json.dumps(alert()).replace('"groupKey": "', '"groupKey": "\\ud800', 1).encode(),
        ]
        codes = [
            requests.post(url + path, data=body, headers=AUTH, timeout=15).status_code
            for path, body in zip(["/alerts", "/incidents", "/alerts"], hostile, strict=True)
        ]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GARBAGE\r\n\r\n")
            sock.recv(65536)
    finally:
        proc.terminate()
        proc.wait(30)
    lines = log.read_text().splitlines()
    not_json = [line for line in lines if not _is_json_object(line)]
    assert not not_json, not_json[:5]
    assert all(400 <= c < 500 for c in codes), codes


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
