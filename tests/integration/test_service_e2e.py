"""`tenancy-diag serve` as a process: kill -9 mid-run, and a real alert from rule to S3 and note.

Both tests start the service the way an operator would (a subprocess, token in a file) and
stop every process they started by its PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import boto3
import psutil
import pytest
import yaml

from tenancy_diag.running.bundles import verify_bundle
from tenancy_diag.sandbox import prometheus_proc, stack
from tenancy_diag.sandbox.serving import serve_in_thread, stop_pid
from tenancy_diag.sandbox.topology import ScenarioSpec

RULES = Path(__file__).parents[1] / "service" / "fixtures" / "rules.yml"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
pytestmark = [pytest.mark.integration]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check, timeout_s, what, every=0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _get(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2):
            return True
    except OSError:
        return False


class Service:
    """``tenancy-diag serve`` in a session of its own, so kill -9 can take its whole group."""

    def __init__(self, tmp: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.state, self.out = tmp / "state", tmp / "out"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token_file = tmp / "service-token"
        if not self.token_file.exists():
            self.token_file.touch(mode=0o600)
            self.token_file.write_text("s3cret-for-tests\n")
        self.log = tmp / "serve.log"
        self.argv = [
            sys.executable,
            "-m",
            "tenancy_diag.cli",
            "serve",
            f"--listen=127.0.0.1:{self.port}",
            f"--state={self.state}",
            f"--out={self.out}",
            "--workers=1",
            "--run-timeout=120",
            *extra,
        ]
        self.env = {**os.environ, **(env or {})}
        self.env["TENANCY_DIAG_SERVICE_TOKEN_FILE"] = str(self.token_file)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=log, env=self.env, start_new_session=True
            )
        _wait(lambda: _get(f"{self.url}/healthz"), 30, f"the service on {self.url}")
        return self

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            headers={
                "Authorization": "Bearer s3cret-for-tests",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def jobs(self) -> list[dict]:
        """The queue, read the way an operator's sqlite3 shell would: read-only, beside it."""
        uri = f"file:{self.state / 'queue.sqlite'}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=10) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM jobs ORDER BY id")]

    def attachment_time(self, job_id: int, sink: str) -> str:
        uri = f"file:{self.state / 'queue.sqlite'}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=10) as db:
            (at,) = db.execute(
                "SELECT at FROM attachments WHERE job_id=? AND sink=? AND ok=1", (job_id, sink)
            ).fetchone()
        return str(at)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_pid(self.process.pid, timeout_s=30)
            self.process.wait(5)


def _sealed(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if (p / "manifest.json").is_file())


def test_a_run_killed_with_the_service_completes_exactly_once_after_restart(tmp_path):
    service = Service(tmp_path, "--runner-arg=--sample").start()
    try:
        incident = {
            "incident_id": "INC-crash",
            "subsystem": "webhook",
            "region": "us-east-1",
            "time": "2026-11-27T04:00:00Z",
        }
        job_id = service.post("/incidents", incident)["job"]

        def runner_with_kernel():
            for child in psutil.Process(service.process.pid).children():
                if "--run-id" in child.cmdline() and child.children(recursive=True):
                    return child
            return None

        runner = _wait(runner_with_kernel, 60, "the run's kernel to start")
        tree = [runner, *runner.children(recursive=True)]
        (job,) = service.jobs()
        assert job["state"] == "running" and job["run_id"]
        # Issue 11: no service token in the run's processes, kernel files under --state.
        runtime = service.state / "runtime" / job["run_id"]
        for process in tree:
            environ = _environ(process)
            assert not {k for k in environ if k.startswith("TENANCY_DIAG_SERVICE_TOKEN")}
            assert environ.get("JUPYTER_RUNTIME_DIR") == environ.get("TMPDIR") == str(runtime)
        # The runner's kernels' connection files, in its pool's folder under the run's own.
        _wait(lambda: list(runtime.rglob("kernel-*.json")), 30, "the kernel's connection file")
        # Kernels start before the plan is checked: wait for the attempt's bundle folder too.
        attempt = service.out / "INC-crash" / job["run_id"]
        _wait((attempt / "notebooks").is_dir, 30, "the attempt's bundle folder")
        os.killpg(service.process.pid, signal.SIGKILL)
        service.process.wait(5)
        # The runner and its kernels live in sessions of their own, yet die with the service.
        _wait(lambda: not any(_alive(p) for p in tree), 10, "the orphaned run to die")
        assert service.jobs()[0]["state"] == "running"  # as the crash left it
        assert list(runtime.rglob("kernel-*.json")), "kill -9 leaves the HMAC key file behind"

        service.start()
        done = _wait(
            lambda: next((j for j in service.jobs() if j["state"] in ("done", "failed")), None),
            90,
            "the requeued job to finish",
        )
        assert done["id"] == job_id and done["state"] == "done", done["error"]
        assert done["run_id"] == job["run_id"] and done["attempts"] == 2
        folder = service.out / "INC-crash"
        assert _sealed(folder) == [folder / job["run_id"]]  # exactly one finished bundle
        assert verify_bundle(folder / job["run_id"]) == []
        assert (folder / f"{job['run_id']}.partial-1").is_dir()  # the killed attempt, kept aside
        lines = (service.out / "audit.jsonl").read_text().splitlines()
        audit = [json.loads(line) for line in lines]
        completed = [a for a in audit if a["run_id"] == job["run_id"] and a["action"] == "run"]
        assert len(completed) == 1 and completed[0]["exit_code"] == 0
        # Removed at the restart, and the rerun's own folder after it finished.
        assert list((service.state / "runtime").iterdir()) == []
    finally:
        service.stop()


def test_the_pool_executor_answers_an_incident_from_warm_kernels_that_die_with_it(tmp_path):
    service = Service(
        tmp_path, "--executor=pool", "--warm-kernels=2", "--runner-arg=--sample"
    ).start()
    try:

        def kernels():
            # Forked by the pool's zygote (a child of the service), titled as kernels.
            found = [
                p
                for p in psutil.Process(service.process.pid).children(recursive=True)
                if "ipykernel_launcher" in " ".join(p.cmdline())
            ]
            return found if len(found) == 2 else None

        warm = _wait(kernels, 60, "two warm kernels")
        runtime = service.state / "runtime"
        for kernel in warm:
            environ = _environ(kernel)
            assert not {k for k in environ if k.startswith("TENANCY_DIAG_SERVICE_TOKEN")}
            words = " ".join(kernel.cmdline()).split()
            connection = words[words.index("-f") + 1]
            assert Path(connection).is_relative_to(runtime)  # the HMAC key under --state
        incident = {
            "incident_id": "INC-pool",
            "subsystem": "webhook",
            "region": "us-east-1",
            "time": "2026-11-27T04:00:00Z",
        }
        job_id = service.post("/incidents", incident)["job"]
        done = _wait(
            lambda: next((j for j in service.jobs() if j["state"] in ("done", "failed")), None),
            90,
            "the job to finish",
        )
        assert done["id"] == job_id and done["state"] == "done", done["error"]
        (bundle,) = _sealed(service.out / "INC-pool")
        assert verify_bundle(bundle) == []
        # The kernel that ran the notebook is gone; the pool has refilled to two.
        assert sum(_alive(k) for k in warm) == 1
        refilled = _wait(kernels, 60, "the pool to refill")
        os.killpg(service.process.pid, signal.SIGKILL)
        service.process.wait(5)
        _wait(lambda: not any(_alive(k) for k in refilled), 10, "the pool's kernels to die")
    finally:
        service.stop()


def _environ(process: psutil.Process) -> dict[str, str]:
    try:
        return process.environ()
    except psutil.NoSuchProcess:
        return {}


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class _Notes(BaseHTTPRequestHandler):
    """The incident tracker: keeps every note POSTed to it."""

    received: ClassVar[list[tuple[float, dict]]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((time.time(), json.loads(body)))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _start_alertmanager(folder: Path, webhook: str, token_file: Path) -> tuple[int, str]:
    folder.mkdir()
    route = {"receiver": "tenancy-diag", "group_by": ["alertname"], "group_wait": "1s"}
    route |= {"group_interval": "5s", "repeat_interval": "1h"}
    http_config = {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}}
    config = {
        "route": route,
        "receivers": [
            {
                "name": "tenancy-diag",
                "webhook_configs": [
                    {"url": webhook, "send_resolved": True, "http_config": http_config}
                ],
            }
        ],
    }
    (folder / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    with (folder / "alertmanager.log").open("ab") as log:
        process = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={folder / 'alertmanager.yml'}",
                f"--storage.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",  # no gossip: a single, private instance
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    _wait(lambda: _get(f"{url}/-/ready"), 30, "Alertmanager to be ready")
    return process.pid, url


def _firing(alertmanager: str) -> list[dict]:
    with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts", timeout=2) as response:
        return json.loads(response.read())


@pytest.mark.skipif(not Path(ALERTMANAGER).exists(), reason="needs prometheus-alertmanager")
def test_an_alert_from_prometheus_lands_in_s3_and_in_a_note(tmp_path):
    sandbox = tmp_path / "sandbox"
    endpoints = stack.up(ScenarioSpec(name="webhook_storm", tenants=60), sandbox)
    pids: list[int] = []
    service = prometheus = None
    try:
        s3 = boto3.client("s3", endpoint_url=endpoints.aws_endpoint_url, **_moto_credentials())
        s3.create_bucket(Bucket="evidence")
        notes, _ = serve_in_thread(_Notes)
        service = Service(
            tmp_path,
            "--sink=s3://evidence/tenancy",
            f"--sink=http://127.0.0.1:{notes.server_address[1]}/notes",
            f"--prometheus-url={endpoints.prometheus_url}",
            f"--kubeconfig={endpoints.kubeconfig}",
            f"--aws-endpoint-url={endpoints.aws_endpoint_url}",
            f"--tenancy-api-url={endpoints.tenancy_api_url}",
            env=endpoints.env(),  # moto's credentials, the admin API token file, the history's end
        ).start()
        am_pid, alertmanager = _start_alertmanager(
            tmp_path / "alertmanager", f"{service.url}/alerts", service.token_file
        )
        pids.append(am_pid)
        # The rules run on a copy of the sandbox's history, in a Prometheus of their own.
        data = tmp_path / "rules-prometheus" / "data"
        shutil.copytree(
            Path(endpoints.state_dir) / "prometheus" / "data",
            data,
            ignore=shutil.ignore_patterns("lock", "queries.active", "wal", "chunks_head"),
        )
        prometheus = prometheus_proc.start_prometheus(
            data,
            data.parent,
            rule_files=[RULES],
            alertmanager_url=alertmanager,
            evaluation_interval="2s",
            extra_args=["--rules.alert.resend-delay=2s"],
        )
        alerts = _wait(lambda: _firing(alertmanager), 60, "the alert to reach Alertmanager", 0.1)
        alert_seen = time.time()
        (alert,) = alerts
        assert alert["labels"]["alertname"] == "TenancyWebhookFailureRatioHigh"
        assert {k: alert["labels"][k] for k in ("subsystem", "region", "severity")} == {
            "subsystem": "webhook",
            "region": "us-east-1",
            "severity": "sev2",
        }
        assert {"metric", "threshold", "value", "dashboard", "runbook_url"} <= set(
            alert["annotations"]
        )

        def uploaded():
            jobs = service.jobs()
            if not jobs or not jobs[0]["bundle"]:
                return None
            bundle = Path(jobs[0]["bundle"])
            manifest = json.loads((bundle / "manifest.json").read_text())
            prefix = f"tenancy/{manifest['incident']}/{manifest['run_id']}/"
            listed = s3.list_objects_v2(Bucket="evidence", Prefix=prefix).get("KeyCount", 0)
            return (jobs[0], manifest, prefix) if listed == len(manifest["files"]) + 1 else None

        job, manifest, prefix = _wait(uploaded, 100, "the bundle in S3", 0.25)
        note_at, note = _wait(lambda: _Notes.received and _Notes.received[0], 20, "the note")
        # When the worker recorded the S3 upload as done, on the same clock as Alertmanager's.
        uploaded_at = _epoch(service.attachment_time(job["id"], "s3"))
        print(
            f"\nalert listed by Alertmanager -> bundle in S3: {uploaded_at - alert_seen:.1f} s "
            f"(from the alert's startsAt: {uploaded_at - _epoch(alert['startsAt']):.1f} s; "
            f"-> note received: {note_at - alert_seen:.1f} s)"
        )

        assert job["state"] == "done" and job["exit_code"] == 0 and len(service.jobs()) == 1
        for name, expected in manifest["files"].items():
            head = s3.head_object(Bucket="evidence", Key=prefix + name)
            assert head["Metadata"]["sha256"] == expected["sha256"], name
        assert note["incident"] == job["incident_id"] == manifest["incident"]
        assert note["root_cause"]["pattern"] == "webhook_storm"
        assert note["severity"] == "sev2"
        assert any(url.startswith("s3://evidence/tenancy/") for url in note["links"].values())
        notes.shutdown()
    finally:
        if prometheus is not None:
            prometheus.stop()
        for pid in pids:
            stop_pid(pid)
        if service is not None:
            service.stop()
        stack.down(sandbox)


def _epoch(text: str) -> float:
    # Alertmanager writes nanoseconds; fromisoformat takes at most microseconds.
    head, _, fraction = text.rstrip("Z").partition(".")
    moment = datetime.fromisoformat(f"{head}.{(fraction or '0')[:6]:0<6}+00:00")
    return moment.timestamp()


def _moto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": stack.SANDBOX_AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": stack.SANDBOX_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": stack.SANDBOX_AWS_ENV["AWS_DEFAULT_REGION"],
    }
