"""A real call is never unaudited: the intent line is on disk before the Kubernetes API sees the
DELETE, the kernel dies with its runner, and a call whose answer never came is shown, in
``close`` and the postmortem timeline, as an outcome nobody knows.

The Kubernetes API is the sandbox's, served from a thread of this process, so a test can hold
a DELETE and look at the audit log at the moment the server received it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from tenancy_diag import cli
from tenancy_diag.errors import ParameterError
from tenancy_diag.remediating import api as rm
from tenancy_diag.reviewing.gathering import read_audit
from tenancy_diag.reviewing.timelines import audit_events
from tenancy_diag.sandbox import kube_api, serving
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec

pytestmark = pytest.mark.integration
TOKEN = "write-ahead-token"
REGION = "us-east-1"
END = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
INCIDENT = "INC-WAL"


@dataclass
class Cluster:
    """The fake Kubernetes API; every request seen, and the audit log as it stood at each
    DELETE. ``hold`` makes a DELETE wait for ``release`` before it is answered."""

    kubeconfig: Path
    audit: Path
    seen: list[tuple[float, str, str]] = field(default_factory=list)
    audit_at_delete: list[list[dict[str, Any]]] = field(default_factory=list)
    deleting: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    hold: bool = False


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    scenario = Scenario(
        ScenarioSpec(name="reconcile_backlog", tenants=30, regions=(REGION,), end=END)
    )
    served = kube_api.make_handler(
        scenario, TOKEN, options=kube_api.WorkloadOptions(ready_delay_s=0)
    )
    state = Cluster(tmp_path / "kubeconfig", tmp_path / "out" / "audit.jsonl")

    class Watching(served):  # type: ignore[misc, valid-type]
        def _route(self, method: str, body: bytes) -> Any:
            state.seen.append((time.monotonic(), method, urlsplit(self.path).path))
            if method == "DELETE":
                state.audit_at_delete.append(_lines(state.audit))
                state.deleting.set()
                if state.hold:
                    state.release.wait(60)
            return super()._route(method, body)

    httpd, thread = serving.serve_in_thread(Watching)
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    kube_api.write_kubeconfig(state.kubeconfig, url, TOKEN, {})
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _params(cluster: Cluster, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "incident_id": INCIDENT,
        "dry_run": False,
        "confirm": INCIDENT,
        "end": "2026-11-27T03:00:00Z",
        "prometheus_url": "",
        "kubeconfig": str(cluster.kubeconfig),
        "aws_endpoint_url": "",
        "tenancy_api_url": "",
        "findings_path": str(tmp_path / "findings.json"),
        "audit_path": str(cluster.audit),
        "bundle_dir": str(tmp_path / "bundle"),
        **extra,
    }


def test_the_intent_is_on_disk_before_the_server_sees_the_delete(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENANCY_DIAG_ACTOR", "alice")
    session = rm.open_session("controller_restart", _params(cluster, tmp_path))
    run = rm.act(session, rm.plan(session, region=REGION, pods=1))
    assert [o.state for o in run.outcomes] == ["done"], run.frame()
    deletes = [path for _, method, path in cluster.seen if method == "DELETE"]
    assert len(deletes) == 1 and len(cluster.audit_at_delete) == 1
    # What the audit log held when the DELETE arrived: the intent, naming that very call.
    (intent,) = [a for a in cluster.audit_at_delete[0] if a.get("phase") == "intent"]
    assert intent["call"].startswith(f"kubernetes DELETE {deletes[0]}")
    assert intent["actor"] == "alice" and intent["dry_run"] is False and intent["time"]
    assert intent["rollback"] is None and "Deployment replaces it" in intent["no_rollback"]
    # After the call, its result, under the same call id, in both logs.
    for log in (cluster.audit, tmp_path / "bundle" / "actions.jsonl"):
        calls = [a for a in _lines(log) if a.get("call_id") == intent["call_id"]]
        assert [a["phase"] for a in calls] == ["intent", "result"]
        assert calls[1]["result"].startswith("ok: deleted=") and calls[1]["exit_code"] == 0


@pytest.mark.parametrize("blank", [" ", "\t", "  \n"])
def test_a_blank_actor_is_refused_before_any_call(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    monkeypatch.setenv("TENANCY_DIAG_ACTOR", blank)
    with pytest.raises(ParameterError, match="TENANCY_DIAG_ACTOR is blank"):
        session = rm.open_session("controller_restart", _params(cluster, tmp_path))
        rm.act(session, rm.plan(session, region=REGION, pods=1))
    assert not [m for _, m, _ in cluster.seen if m == "DELETE"]


def test_the_runner_refuses_a_blank_actor_before_the_kernel_starts(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("TENANCY_DIAG_ACTOR", " ")
    argv = [*_runner_argv(cluster, tmp_path / "out"), "-p", "dry_run=false"]
    assert cli.main([*argv, "-p", f"confirm={INCIDENT}"]) == 2
    assert "TENANCY_DIAG_ACTOR is blank" in capsys.readouterr().err
    assert not cluster.seen  # not even a read: no kernel ran
    assert not (tmp_path / "out" / INCIDENT).exists()


def _runner_argv(cluster: Cluster, out: Path) -> list[str]:
    return [
        "run",
        "remediation_controller_restart",
        "--incident",
        INCIDENT,
        "--out",
        str(out),
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--end",
        "2026-11-27T03:00:00Z",
        "-p",
        f"region={REGION}",
    ]


def _kernel_of(runner: psutil.Process, timeout_s: float = 10) -> psutil.Process:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in runner.children(recursive=True):
            if "ipykernel" in " ".join(child.cmdline()):
                return child
        time.sleep(0.05)
    raise AssertionError(f"no kernel under the runner {runner.pid}")


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_kill_9_of_the_runner_mid_call_kills_the_kernel_and_leaves_an_unknown_outcome(
    cluster: Cluster, tmp_path: Path, capsys: Any, record_property: Any
) -> None:
    out = tmp_path / "out"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TENANCY_DIAG_", "TENANCY_API"))
    }
    env["TENANCY_DIAG_ACTOR"] = "alice"
    argv = [*_runner_argv(cluster, out), "-p", "dry_run=false", "-p", f"confirm={INCIDENT}"]
    cluster.hold = True
    runner = subprocess.Popen(
        [sys.executable, "-m", "tenancy_diag.cli", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while not cluster.deleting.wait(0.1):
            if runner.poll() is not None or time.monotonic() > deadline:
                runner.kill()
                said = runner.communicate()[1].decode()[-2000:]
                raise AssertionError(f"no DELETE (runner exit {runner.returncode}): {said}")
        kernel = _kernel_of(psutil.Process(runner.pid))
        killed = time.monotonic()
        runner.send_signal(signal.SIGKILL)
        runner.wait(10)
        # Answer the DELETE only now: a kernel still alive would go on to wait for readiness.
        answered = time.monotonic()
        cluster.release.set()
        while not _gone(kernel) and time.monotonic() - killed < 5:
            time.sleep(0.005)
        died_after_s = time.monotonic() - killed
        record_property("kernel_gone_after_runner_kill_s", round(died_after_s, 3))
        print(f"kernel gone {died_after_s:.3f} s after kill -9 of the runner", file=sys.stderr)
        assert _gone(kernel) and died_after_s < 2
        time.sleep(1.5)
        late = [(m, p) for at, m, p in cluster.seen if at > answered]
        assert late == [], "the kernel kept calling after its runner was killed"
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.wait(10)
    # The DELETE's intent is in the audit log; no result ever came.
    audit = _lines(out / "audit.jsonl")
    (intent,) = [a for a in audit if a.get("phase") == "intent"]
    assert not [a for a in audit if a.get("call_id") == intent["call_id"] and a is not intent]
    call = intent["call"].rsplit(" {", 1)[0]  # without the body
    capsys.readouterr()
    assert cli.main(["close", "--incident", INCIDENT, "--out", str(out), "--reason", "ok"]) == 0
    said = capsys.readouterr()
    assert f"outcome unknown, check {call}" in said.out + said.err
    events = audit_events(read_audit(out / "audit.jsonl", INCIDENT).records)
    unknown = [e for e in events if "outcome unknown" in e.text]
    assert len(unknown) == 1 and f"check {call}" in unknown[0].text
    assert unknown[0].actor == "alice"
