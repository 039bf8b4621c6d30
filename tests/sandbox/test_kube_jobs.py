"""The sandbox's batch/v1 Jobs and their kubelet, at the wire with the real kubernetes client.

Each Job's pod is a local Python process; its container reads paths and values from its
arguments (the kubelet maps mount paths given as arguments, not paths inside a script).
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.request
from collections.abc import Iterator

import psutil
import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tenancy_diag.sandbox import kube_api, serving
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec

pytestmark = pytest.mark.integration
TOKEN = "jobs-test-token"
NS = "diag"
_SCRIPT = "import os, sys; exec(sys.argv[1])"


@pytest.fixture(scope="module")
def scenario():
    return Scenario(ScenarioSpec(name="healthy", tenants=20))


@pytest.fixture
def server(scenario, tmp_path) -> Iterator[tuple[str, type]]:
    handler = kube_api.make_handler(
        scenario, TOKEN, kubelet=kube_api.KubeletOptions(tmp_path / "kubelet", retry_s=0.2)
    )
    httpd, thread = serving.serve_in_thread(handler)
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    handler.api.close()  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def apis(server, tmp_path):
    url, _ = server
    kube_api.write_kubeconfig(tmp_path / "kubeconfig", url, TOKEN, None)
    api = config.new_client_from_config(
        config_file=str(tmp_path / "kubeconfig"), persist_config=False
    )
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": NS}})
    yield client.BatchV1Api(api), core
    api.close()


def _job(name: str, code: str, **spec) -> dict:
    container = {
        "name": "main",
        "image": "registry.example.com/tool:1.0",
        "command": ["python"],
        "args": ["-c", _SCRIPT, code],
        **spec.pop("container", {}),
    }
    pod = {"restartPolicy": "Never", "containers": [container], **spec.pop("pod", {})}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": pod}, **spec},
    }


def _finished(batch, name: str, timeout_s: float = 60) -> client.V1Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = batch.read_namespaced_job(name, NS)
        if any(c.type in ("Complete", "Failed") for c in job.status.conditions or []):
            return job
        time.sleep(0.1)
    raise AssertionError(f"Job {name} did not finish in {timeout_s} s")


def _pod(core, job: str) -> client.V1Pod:
    (pod,) = core.list_namespaced_pod(NS, label_selector=f"job-name={job}").items
    return pod


def _conditions(job: client.V1Job) -> list[tuple[str, str]]:
    return [(c.type, c.reason) for c in job.status.conditions]


# -- create, validate, defaults -----------------------------------------------------------------
def test_a_created_job_is_defaulted_as_the_api_does(apis):
    batch, _ = apis
    created = batch.create_namespaced_job(NS, _job("defaults", "pass"))
    spec = created.spec
    assert (spec.backoff_limit, spec.parallelism, spec.completions) == (0, 1, 1)
    assert (
        spec.completion_mode == "NonIndexed"
        and spec.pod_replacement_policy == "TerminatingOrFailed"
    )
    uid = created.metadata.uid
    assert spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    assert spec.template.metadata.labels == {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": "defaults",
        "controller-uid": uid,
        "job-name": "defaults",
    }
    container = spec.template.spec.containers[0]
    assert container.termination_message_path == "/dev/termination-log"
    assert container.image_pull_policy == "IfNotPresent"
    assert spec.template.spec.termination_grace_period_seconds == 30
    assert created.metadata.generation == 1 and created.metadata.resource_version


def test_a_taken_name_is_the_real_409(apis):
    batch, _ = apis
    batch.create_namespaced_job(NS, _job("twice", "pass"))
    with pytest.raises(ApiException) as caught:
        batch.create_namespaced_job(NS, _job("twice", "pass"))
    assert caught.value.status == 409
    assert json.loads(caught.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'jobs.batch "twice" already exists',
        "reason": "AlreadyExists",
        "details": {"name": "twice", "group": "batch", "kind": "jobs"},
        "code": 409,
    }


@pytest.mark.parametrize(
    ("name", "pod", "field"),
    [
        ("always", {"restartPolicy": "Always"}, "spec.template.spec.restartPolicy"),
        ("x" * 64, {}, "metadata.name"),
        ("Upper", {}, "metadata.name"),
    ],
)
def test_an_invalid_job_is_a_422_naming_the_field(apis, name, pod, field):
    batch, _ = apis
    with pytest.raises(ApiException) as caught:
        batch.create_namespaced_job(NS, _job(name, "pass", pod=pod))
    body = json.loads(caught.value.body)
    assert caught.value.status == 422 and body["reason"] == "Invalid"
    assert [c["field"] for c in body["details"]["causes"]] == [field]


def test_a_job_in_a_missing_namespace_is_404(apis):
    batch, _ = apis
    with pytest.raises(ApiException) as caught:
        batch.create_namespaced_job("nowhere", _job("lost", "pass"))
    assert caught.value.status == 404
    assert json.loads(caught.value.body)["message"] == 'namespaces "nowhere" not found'


# -- running: complete, failed, deadline --------------------------------------------------------
def test_a_pod_that_exits_0_completes_its_job(apis):
    batch, core = apis
    batch.create_namespaced_job(
        NS, _job("ok", "print('hello from the pod', flush=True); print('bye', file=sys.stderr)")
    )
    job = _finished(batch, "ok")
    assert _conditions(job) == [
        ("SuccessCriteriaMet", "CompletionsReached"),
        ("Complete", "CompletionsReached"),
    ]
    status = job.status
    assert (status.succeeded, status.failed, status.active, status.ready) == (1, None, None, 0)
    assert status.completion_time >= status.start_time
    assert status.uncounted_terminated_pods is not None
    pod = _pod(core, "ok")
    assert pod.status.phase == "Succeeded" and pod.metadata.owner_references[0].kind == "Job"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert not pod.metadata.finalizers  # counted by the Job controller
    assert core.read_namespaced_pod_log(pod.metadata.name, NS) == "hello from the pod\nbye\n"
    assert core.read_namespaced_pod_log(pod.metadata.name, NS, tail_lines=1) == "bye\n"
    same = core.list_namespaced_pod(NS, label_selector="batch.kubernetes.io/job-name=ok").items
    assert [p.metadata.name for p in same] == [pod.metadata.name]


def test_a_failing_pod_fails_its_job_past_the_backoff_limit(apis):
    batch, core = apis
    batch.create_namespaced_job(NS, _job("bad", "sys.exit(3)"))
    job = _finished(batch, "bad")
    assert _conditions(job) == [
        ("FailureTarget", "BackoffLimitExceeded"),
        ("Failed", "BackoffLimitExceeded"),
    ]
    assert job.status.failed == 1 and job.status.completion_time is None
    terminated = _pod(core, "bad").status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")


def test_a_job_past_its_deadline_is_failed_and_its_processes_die(apis, tmp_path):
    batch, core = apis
    code = "open(sys.argv[2], 'w').write(str(os.getpid())); import time; time.sleep(120)"
    manifest = _job(
        "slow",
        code,
        activeDeadlineSeconds=1,
        pod={"terminationGracePeriodSeconds": 1, "volumes": [{"name": "w", "emptyDir": {}}]},
        container={"volumeMounts": [{"name": "w", "mountPath": "/work"}]},
    )
    manifest["spec"]["template"]["spec"]["containers"][0]["args"].append("/work/pid")
    batch.create_namespaced_job(NS, manifest)
    job = _finished(batch, "slow", timeout_s=30)
    assert _conditions(job) == [
        ("FailureTarget", "DeadlineExceeded"),
        ("Failed", "DeadlineExceeded"),
    ]
    assert job.status.conditions[-1].message == "Job was active longer than specified deadline"
    assert job.status.failed == 1
    assert core.list_namespaced_pod(NS, label_selector="job-name=slow").items == []
    (pid_file,) = (tmp_path / "kubelet" / NS).glob("slow-*/volumes/w/pid")
    assert not psutil.pid_exists(int(pid_file.read_text()))


# -- what the container is given ----------------------------------------------------------------
def test_the_container_gets_its_env_files_and_mapped_paths(apis, tmp_path):
    batch, core = apis
    core.create_namespaced_secret(
        NS, {"metadata": {"name": "tokens"}, "stringData": {"token": "s3cret"}}
    )
    core.create_namespaced_config_map(
        NS, {"metadata": {"name": "sources"}, "data": {"URL": "http://x:9"}}
    )
    code = (
        "print(os.environ['URL'], os.environ['P_URL'], os.environ['TOKEN'], os.environ['ME'],"
        " os.environ['GREETING'], os.environ['HOME'] == os.environ['TMPDIR']);"
        "print(open(sys.argv[2]).read());"
        "open(sys.argv[3], 'w').write('evidence'); print(oct(os.stat(sys.argv[2]).st_mode & 0o777))"
    )
    manifest = _job(
        "env",
        code,
        pod={
            "volumes": [
                {"name": "work", "emptyDir": {}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "secrets", "secret": {"secretName": "tokens", "defaultMode": 0o440}},
            ]
        },
        container={
            "envFrom": [
                {"configMapRef": {"name": "sources"}},
                {"configMapRef": {"name": "sources"}, "prefix": "P_"},
            ],
            "env": [
                {
                    "name": "TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "tokens", "key": "token"}},
                },
                {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "GREETING", "value": "hi $(ME) $$(ME)"},
                {"name": "HOME", "value": "/tmp"},
            ],
            "volumeMounts": [
                {"name": "work", "mountPath": "/work"},
                {"name": "tmp", "mountPath": "/tmp"},
                {"name": "secrets", "mountPath": "/etc/secrets", "readOnly": True},
            ],
        },
    )
    manifest["spec"]["template"]["spec"]["containers"][0]["args"] += [
        "/etc/secrets/token",
        "/work/out",
    ]
    batch.create_namespaced_job(NS, manifest)
    assert _conditions(_finished(batch, "env"))[-1][0] == "Complete"
    pod = _pod(core, "env").metadata.name
    lines = core.read_namespaced_pod_log(pod, NS).splitlines()
    assert lines == [f"http://x:9 http://x:9 s3cret {pod} hi {pod} $(ME) True", "s3cret", "0o440"]
    (written,) = (tmp_path / "kubelet" / NS).glob("env-*/volumes/work/out")
    assert written.read_text() == "evidence"


def test_a_missing_secret_keeps_the_container_waiting_until_it_exists(apis):
    batch, core = apis
    manifest = _job(
        "later",
        "print(os.environ['TOKEN'])",
        container={
            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "late", "key": "t"}}}]
        },
    )
    batch.create_namespaced_job(NS, manifest)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waiting = _pod(core, "later").status.container_statuses[0].state.waiting
        if waiting is not None and waiting.reason == "CreateContainerConfigError":
            break
        time.sleep(0.1)
    assert (waiting.reason, waiting.message) == (
        "CreateContainerConfigError",
        'secret "late" not found',
    )
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod_log(_pod(core, "later").metadata.name, NS)
    assert caught.value.status == 400 and "is waiting to start" in caught.value.body
    core.create_namespaced_secret(
        NS, {"metadata": {"name": "late"}, "data": {"t": base64.b64encode(b"now").decode()}}
    )
    assert _conditions(_finished(batch, "later"))[-1][0] == "Complete"
    assert core.read_namespaced_pod_log(_pod(core, "later").metadata.name, NS) == "now\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="the check bites only when the kubelet is root")
def test_run_as_non_root_without_a_user_is_refused_as_kubelet_refuses_it(apis):
    batch, core = apis
    batch.create_namespaced_job(
        NS, _job("root", "pass", pod={"securityContext": {"runAsNonRoot": True}})
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waiting = _pod(core, "root").status.container_statuses[0].state.waiting
        if waiting is not None and waiting.reason == "CreateContainerConfigError":
            break
        time.sleep(0.1)
    assert "container has runAsNonRoot and image will run as root" in waiting.message


# -- watch --------------------------------------------------------------------------------------
def test_a_watch_from_a_lists_version_streams_the_job_to_its_end(apis):
    batch, _ = apis
    listed = batch.list_namespaced_job(NS)
    batch.create_namespaced_job(NS, _job("watched", "import time; time.sleep(0.5)"))
    seen = []
    for event in watch.Watch().stream(
        batch.list_namespaced_job,
        NS,
        field_selector="metadata.name=watched",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=30,
    ):
        seen.append((event["type"], [c.type for c in event["object"].status.conditions or []]))
        if seen[-1][1]:
            break
    assert seen[0] == ("ADDED", [])
    assert seen[-1] == ("MODIFIED", ["SuccessCriteriaMet", "Complete"])


def test_a_watch_from_a_compacted_version_is_410_and_without_one_lists_first(apis):
    batch, _ = apis
    batch.create_namespaced_job(NS, _job("old", "pass"))
    _finished(batch, "old")
    with pytest.raises(ApiException) as caught:
        for _ in watch.Watch().stream(
            batch.list_namespaced_job, NS, resource_version="1", timeout_seconds=5
        ):
            pass
    assert caught.value.status == 410
    events = list(watch.Watch().stream(batch.list_namespaced_job, NS, timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "old")]


# -- delete and TTL -----------------------------------------------------------------------------
def test_delete_propagation_as_the_garbage_collector_does_it(apis, server):
    batch, core = apis
    for name in ("orphaned", "background", "foreground"):
        batch.create_namespaced_job(NS, _job(name, "import time; time.sleep(60)"))
    for name in ("orphaned", "background", "foreground"):
        _wait_running(core, name)
    batch.delete_namespaced_job("orphaned", NS)  # batch/v1's default: orphan the pods
    pod = _pod(core, "orphaned")
    assert pod.status.phase == "Running" and not pod.metadata.owner_references
    # The client hands a delete's answer back as JSON (the API answers a Status or the object).
    status = batch.delete_namespaced_job("background", NS, propagation_policy="Background")
    assert status["status"] == "Success" and status["details"]["kind"] == "jobs"
    with pytest.raises(ApiException):
        batch.read_namespaced_job("background", NS)
    _wait_gone(core, "background")
    url, _ = server
    request = urllib.request.Request(
        f"{url}/apis/batch/v1/namespaces/{NS}/jobs/foreground?propagationPolicy=Foreground",
        method="DELETE",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        marked = json.loads(response.read())
        assert response.status == 202
    assert (
        marked["metadata"]["deletionTimestamp"]
        and "foregroundDeletion" in marked["metadata"]["finalizers"]
    )
    _wait_gone(core, "foreground")
    with pytest.raises(ApiException) as caught:
        batch.read_namespaced_job("foreground", NS)
    assert caught.value.status == 404


def test_a_finished_job_goes_after_its_ttl(apis):
    batch, _ = apis
    batch.create_namespaced_job(NS, _job("brief", "pass", ttlSecondsAfterFinished=0))
    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline
        and batch.list_namespaced_job(NS, field_selector="metadata.name=brief").items
    ):
        time.sleep(0.1)
    assert batch.list_namespaced_job(NS, field_selector="metadata.name=brief").items == []


def test_secrets_keep_string_data_as_base64_data(apis):
    _, core = apis
    core.create_namespaced_secret(NS, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    secret = core.read_namespaced_secret("s", NS)
    assert secret.type == "Opaque" and secret.data == {"k": base64.b64encode(b"v").decode()}
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret(NS, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert caught.value.status == 409


def _wait_running(core, job: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(NS, label_selector=f"job-name={job}").items
        if pods and pods[0].status.phase == "Running":
            return
        time.sleep(0.1)
    raise AssertionError(f"the pod of {job} did not run")


def _wait_gone(core, job: str) -> None:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if not core.list_namespaced_pod(NS, label_selector=f"job-name={job}").items:
            return
        time.sleep(0.1)
    raise AssertionError(f"the pod of {job} is still there")
