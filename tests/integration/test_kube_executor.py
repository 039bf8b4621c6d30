"""`serve --executor kubernetes` at the wire: the sandbox's Kubernetes API runs each Job's pod as a
local process (its kubelet stand-in), the pod uploads to moto's S3, the service fetches, verifies
and attaches. Every server is a process of its own, stopped by its PID.

- an incident becomes one Job, whose pod runs `tenancy-diag run-and-upload ... --sample`; the
  bundle goes through S3 into the service's --out and to its note;
- kill -9 of `serve` while the pod runs, restart: 409, the same Job is watched, one bundle;
- two replicas (separate queues, one namespace) given the same incident: one Job, both attach
  the same bundle.

The fake's request log is the cluster's audit log: it says how many creates succeeded (201) and
how many were refused (409).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import boto3
import pytest
from kubernetes import client, config

from tenancy_diag.errors import TenancyDiagError
from tenancy_diag.running.bundles import verify_bundle
from tenancy_diag.sandbox import kube_api, moto_proc, serving
from tenancy_diag.sandbox.serving import serve_in_thread, stop_pid
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec
from tenancy_diag.service.intake import parse_incident
from tenancy_diag.service.job_calls import JobApiError, JobGone, JobsApi
from tenancy_diag.service.job_manifests import JobSettings
from tenancy_diag.service.kube_jobs import KubernetesJobExecutor
from tenancy_diag.service.store import Store
from tenancy_diag.service.worker import judge

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("kube-executor")]
TOKEN = "kube-executor-test-token"
NS = "tenancy-diag"
CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}
INCIDENT = {
    "incident_id": "INC-kube",
    "subsystem": "webhook",
    "region": "us-east-1",
    "time": "2026-11-27T04:00:00Z",
}
_JOB_CREATE = re.compile(r'"POST /apis/batch/v1/namespaces/[^/]+/jobs HTTP/1.1" (\d{3})')


@dataclass
class Cluster:
    """The fake API (with its kubelet) and moto, as processes; ``kubeconfig`` reaches the API."""

    kube_pid: int
    kube_log: Path
    kubeconfig: Path
    moto: moto_proc.MotoProcess

    def creates(self) -> list[int]:
        """The status of every Job create the API answered, in order."""
        return [int(m[1]) for m in _JOB_CREATE.finditer(self.kube_log.read_text())]

    def api(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig), persist_config=False)

    def jobs(self) -> list[dict]:
        with self.api() as api:
            listed = client.BatchV1Api(api).list_namespaced_job(NS)
            return [api.sanitize_for_serialization(j) for j in listed.items]

    def running_pods(self) -> list[str]:
        with self.api() as api:
            pods = client.CoreV1Api(api).list_namespaced_pod(NS).items
        return [p.metadata.name for p in pods if p.status.phase == "Running"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    folder = tmp_path / "cluster"
    folder.mkdir()
    (folder / "scenario.json").write_text(
        json.dumps(ScenarioSpec(name="healthy", tenants=20).to_json())
    )
    (folder / "token").write_text(TOKEN + "\n")
    ready, log = folder / "kube.ready.json", folder / "kube.log"
    with log.open("wb") as out:
        kube = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tenancy_diag.sandbox.kube_api",
                f"--scenario-file={folder / 'scenario.json'}",
                f"--token-file={folder / 'token'}",
                f"--ready-file={ready}",
                f"--kubelet-dir={folder / 'kubelet'}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    moto = None
    try:
        info = serving.wait_ready(ready, timeout_s=60, pid=kube.pid)
        kubeconfig = folder / "kubeconfig"
        kube_api.write_kubeconfig(kubeconfig, info["url"], TOKEN, None)
        moto = moto_proc.start_moto(folder / "moto")
        found = Cluster(kube.pid, log, kubeconfig, moto)
        _configure(found)
        yield found
    finally:
        assert stop_pid(kube.pid, timeout_s=20)
        kube.wait(5)
        if moto is not None:
            moto.stop()


def _configure(cluster: Cluster) -> None:
    """What an operator applies once: the namespace, the sources ConfigMap, the tokens Secret,
    and the evidence bucket."""
    with cluster.api() as api:
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": NS}})
        core.create_namespaced_config_map(
            NS,
            {
                "metadata": {"name": "tenancy-diag-sources"},
                "data": {
                    "TENANCY_DIAG_AWS_ENDPOINT_URL": cluster.moto.url,
                    "AWS_DEFAULT_REGION": "us-east-1",
                },
            },
        )
        aws = "[default]\naws_access_key_id = sandbox\naws_secret_access_key = sandbox\n"
        core.create_namespaced_secret(
            NS,
            {
                "metadata": {"name": "tenancy-diag-tokens"},
                "stringData": {"aws-credentials": aws, "tenancy-api-token": "not-used"},
            },
        )
    _s3(cluster).create_bucket(Bucket="evidence")


def _s3(cluster: Cluster):
    return boto3.client("s3", endpoint_url=cluster.moto.url, region_name="us-east-1", **CREDENTIALS)


class _Notes(BaseHTTPRequestHandler):
    """The incident tracker: keeps every note POSTed to it."""

    received: ClassVar[list[dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(json.loads(body))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Service:
    """``tenancy-diag serve --executor kubernetes`` in a session of its own."""

    def __init__(self, folder: Path, cluster: Cluster, *extra: str) -> None:
        folder.mkdir(exist_ok=True)
        self.state, self.out, self.log = folder / "state", folder / "out", folder / "serve.log"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        token_file = folder / "service-token"
        token_file.write_text("s3cret-for-tests\n")
        self.argv = [
            sys.executable,
            "-m",
            "tenancy_diag.cli",
            "serve",
            f"--listen=127.0.0.1:{self.port}",
            f"--state={self.state}",
            f"--out={self.out}",
            "--workers=1",
            "--run-timeout=240",
            "--retry-backoff=1",
            "--executor=kubernetes",
            f"--namespace={NS}",
            "--image=registry.example.com/tenancy-diag:1.0.0",
            "--service-account=tenancy-diag-run",
            "--evidence-bucket=s3://evidence/bundles",
            "--job-config-map=tenancy-diag-sources",
            "--job-secret=tenancy-diag-tokens",
            f"--job-kubeconfig={cluster.kubeconfig}",
            f"--aws-endpoint-url={cluster.moto.url}",
            "--runner-arg=--sample",
            *extra,
        ]
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBE"))},
            "AWS_ACCESS_KEY_ID": "sandbox",
            "AWS_SECRET_ACCESS_KEY": "sandbox",
            "AWS_DEFAULT_REGION": "us-east-1",
            "TENANCY_DIAG_SERVICE_TOKEN_FILE": str(token_file),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=log, env=self.env, start_new_session=True
            )
        _wait(lambda: _get(f"{self.url}/healthz"), 30, f"the service on {self.url}")
        return self

    def post(self, body: dict) -> dict:
        request = urllib.request.Request(
            f"{self.url}/incidents",
            data=json.dumps(body).encode(),
            headers={
                "Authorization": "Bearer s3cret-for-tests",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def jobs(self) -> list[dict]:
        uri = f"file:{self.state / 'queue.sqlite'}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=10) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM jobs ORDER BY id")]

    def attachments(self, job_id: int) -> list[dict]:
        uri = f"file:{self.state / 'queue.sqlite'}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=10) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM attachments WHERE job_id=? ORDER BY id", (job_id,))
            return [dict(r) for r in rows]

    def settled(self, timeout_s: float = 180) -> dict:
        return _wait(
            lambda: next((j for j in self.jobs() if j["state"] in ("done", "failed")), None),
            timeout_s,
            f"the job of {self.url} to settle (see {self.log})",
        )

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_pid(self.process.pid, timeout_s=30)
            self.process.wait(5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check, timeout_s, what, every=0.25):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _get(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def _sealed(out: Path) -> list[Path]:
    folder = out / INCIDENT["incident_id"]
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (p / "manifest.json").is_file())


def _audit(out: Path) -> list[dict]:
    lines = (out / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if json.loads(line)["action"] == "run"]


def _objects(cluster: Cluster, prefix: str) -> list[str]:
    listed = _s3(cluster).list_objects_v2(Bucket="evidence", Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


# -- (a) end to end ---------------------------------------------------------------------------
def test_an_incident_runs_as_one_job_and_its_bundle_comes_back_through_s3(cluster, tmp_path):
    notes, _ = serve_in_thread(_Notes)
    _Notes.received.clear()
    note_url = f"http://127.0.0.1:{notes.server_address[1]}/notes"
    service = Service(tmp_path / "serve", cluster, "--sink=local", f"--sink={note_url}").start()
    started = time.monotonic()
    try:
        job_id = service.post(INCIDENT)["job"]
        done = service.settled()
        seconds = time.monotonic() - started
        sinks = {a["sink"]: a for a in service.attachments(job_id)}
    finally:
        service.stop()
        notes.shutdown()
    assert done["id"] == job_id and done["state"] == "done", done["error"]
    assert done["exit_code"] == 0
    (bundle,) = _sealed(service.out)
    assert Path(done["bundle"]) == bundle and verify_bundle(bundle) == []
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["run_id"] == done["run_id"] == bundle.name
    # The pod put the bundle in S3 under its run id, and the service fetched exactly that.
    keys = _objects(cluster, f"bundles/{INCIDENT['incident_id']}/{bundle.name}/")
    assert len(keys) == len(manifest["files"]) + 1
    assert cluster.creates() == [201]
    assert cluster.jobs() == [], "the service deletes the Job once it holds the bundle"
    assert sinks["local"]["ok"] and sinks["note"]["ok"], sinks
    (note,) = _Notes.received
    assert note["incident"] == INCIDENT["incident_id"]
    # The pod's audit line, in the service's audit log as a local run's would be.
    (audit,) = _audit(service.out)
    assert (audit["action"], audit["run_id"], audit["exit_code"]) == ("run", bundle.name, 0)
    assert audit["actor"] == f"system:serviceaccount:{NS}:tenancy-diag-run"
    print(f"\nincident -> Job -> pod -> S3 -> verified bundle -> note: {seconds:.1f} s")


def _events(log: Path, event: str) -> list[dict]:
    found = []
    for line in log.read_text().splitlines():
        if line.startswith("{") and f'"event": "{event}"' in line:
            found.append(json.loads(line))
    return found


# -- (b) the service dies while the Job runs --------------------------------------------------
def test_a_service_killed_while_its_job_runs_follows_the_same_job_after_restart(cluster, tmp_path):
    service = Service(tmp_path / "serve", cluster).start()
    try:
        job_id = service.post(INCIDENT)["job"]
        _wait(cluster.running_pods, 60, "the Job's pod to run")
        (created,) = _events(service.log, "job created")
        service.kill()
        assert service.jobs()[0]["state"] == "running"  # as the crash left it
        assert cluster.running_pods(), "the pod outlives the service that created its Job"

        service.start()
        done = service.settled()
    finally:
        service.stop()
    assert done["id"] == job_id and done["state"] == "done", done["error"]
    assert done["attempts"] == 2 and done["run_id"] == created["run_id"]
    (found,) = _events(service.log, "job found")
    assert (found["name"], found["run_id"]) == (created["name"], created["run_id"])
    assert cluster.creates() == [201, 409]
    assert len(_events(cluster.kube_log, "container starting")) == 1  # one pod, one run
    (bundle,) = _sealed(service.out)
    assert bundle.name == created["run_id"] and verify_bundle(bundle) == []
    assert [a["run_id"] for a in _audit(service.out)] == [created["run_id"]]  # one run


# -- (c) two replicas, one alert ---------------------------------------------------------------
def test_two_replicas_given_the_same_incident_share_one_job_and_its_bundle(cluster, tmp_path):
    replicas = [Service(tmp_path / f"replica-{n}", cluster).start() for n in (1, 2)]
    try:
        for replica in replicas:
            replica.post(INCIDENT)
        settled = [replica.settled() for replica in replicas]
    finally:
        for replica in replicas:
            replica.stop()
    assert [s["state"] for s in settled] == ["done", "done"], [s["error"] for s in settled]
    assert sorted(cluster.creates()) == [201, 409]
    assert len(_events(cluster.kube_log, "container starting")) == 1
    (creator,) = [e for r in replicas for e in _events(r.log, "job created")]
    (follower,) = [e for r in replicas for e in _events(r.log, "job found")]
    assert follower["name"] == creator["name"] and follower["run_id"] == creator["run_id"]
    bundles = [_sealed(replica.out) for replica in replicas]
    assert [[b.name for b in found] for found in bundles] == [[creator["run_id"]]] * 2
    manifests = [(found[0] / "manifest.json").read_bytes() for found in bundles]
    assert manifests[0] == manifests[1]  # the same bundle, byte for byte
    for replica, job in zip(replicas, settled, strict=True):
        assert [a["sink"] for a in replica.attachments(job["id"]) if a["ok"]] == ["local"]


# -- a run past its timeout ----------------------------------------------------------------------
def test_a_run_past_its_timeout_ends_as_deadline_exceeded_and_a_timed_out_attempt(
    cluster, tmp_path
):
    settings = JobSettings(
        NS,
        "registry.example.com/tenancy-diag:1.0.0",
        "tenancy-diag-run",
        "s3://evidence/bundles",
        config_map="tenancy-diag-sources",
        secret="tenancy-diag-tokens",
        kubeconfig=cluster.kubeconfig,
        termination_grace_s=2,
        finish_grace_s=30,
    )
    executor = KubernetesJobExecutor(
        tmp_path / "out", settings, extra_args=["--sample"], aws_endpoint_url=cluster.moto.url
    )
    with Store(tmp_path / "queue.sqlite") as store:
        store.enqueue(parse_incident(json.dumps(INCIDENT).encode()))
        job = store.claim("test")
    started = time.monotonic()
    execution = executor.execute(job, "20261127T040000Z-deadl1", timeout_s=2)
    assert execution.timed_out and not execution.complete, execution
    assert execution.stderr_tail.endswith("Job was active longer than specified deadline")
    assert time.monotonic() - started < 30
    assert judge(execution, 2).reason == "the run exceeded its 2 s timeout"
    assert cluster.jobs() == [] and cluster.running_pods() == []
    assert _objects(cluster, "bundles/") == []  # the killed run uploaded nothing


# -- the watch the executor waits with ------------------------------------------------------------
def _sleeper(name: str, seconds: float) -> dict:
    container = {
        "name": "tenancy-diag",
        "image": "registry.example.com/tool:1",
        "command": ["python"],
        "args": ["-c", f"import time; time.sleep({seconds})"],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }


def test_the_wait_reopens_expired_watches_and_knows_a_deleted_job(cluster):
    settings = JobSettings(
        NS, "img", "sa", "s3://evidence", kubeconfig=cluster.kubeconfig, watch_s=1
    )
    jobs = JobsApi(settings)
    created, fresh = jobs.create_or_find(_sleeper("sleeper", 3.5))
    again, second = jobs.create_or_find(_sleeper("sleeper", 3.5))
    assert (fresh, second) == (True, False)
    assert again["metadata"]["uid"] == created["metadata"]["uid"]
    finished = jobs.wait_finished("sleeper", time.monotonic() + 60)
    assert finished is not None and finished["status"]["succeeded"] == 1
    watches = re.findall(
        r"jobs\?fieldSelector=metadata\.name%3Dsleeper&resourceVersion=\d+&timeoutSeconds=1&watch=true",
        cluster.kube_log.read_text(),
    )
    assert len(watches) >= 3, "each one-second watch ended and was reopened from its version"
    assert jobs.pod_outcome("sleeper").exit_code == 0

    jobs.create_or_find(_sleeper("doomed", 30))
    threading.Timer(1.0, jobs.delete, args=("doomed",)).start()
    with pytest.raises(JobGone, match="deleted before it finished"):
        jobs.wait_finished("doomed", time.monotonic() + 60)


def test_api_failures_come_back_in_the_packages_tree(tmp_path):
    """A refused token and a closed port are JobApiErrors that say what to do, never raw
    kubernetes or urllib3 exceptions."""
    handler = kube_api.make_handler(Scenario(ScenarioSpec(name="healthy", tenants=20)), TOKEN)
    httpd, thread = serve_in_thread(handler)
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        kube_api.write_kubeconfig(tmp_path / "wrong-token", url, "not-the-token", None)
        settings = JobSettings(NS, "img", "sa", "s3://b", kubeconfig=tmp_path / "wrong-token")
        with pytest.raises(JobApiError, match=r"401 Unauthorized.*grant the service's account"):
            JobsApi(settings).create_or_find(_sleeper("refused", 1))
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
    kube_api.write_kubeconfig(tmp_path / "closed", f"http://127.0.0.1:{_free_port()}", TOKEN, None)
    settings = JobSettings(NS, "img", "sa", "s3://b", kubeconfig=tmp_path / "closed")
    with pytest.raises(JobApiError, match="did not answer") as caught:
        JobsApi(settings).read("anything")
    assert caught.value.retryable and isinstance(caught.value, TenancyDiagError)
