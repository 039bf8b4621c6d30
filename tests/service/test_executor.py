"""The subprocess executor: the runner's command line, and a timeout that stops every process."""

from __future__ import annotations

import json
import os
import sys
import time

import psutil
import pytest

from tenancy_diag.errors import ConfigError
from tenancy_diag.service.executor import SubprocessExecutor
from tenancy_diag.service.intake import parse_incident
from tenancy_diag.service.store import Store


@pytest.fixture
def job(tmp_path):
    body = {
        "incident_id": "INC-7",
        "subsystem": ["webhook", "policy"],
        "region": "eu-west-1",
        "tenant": "t-000042",
        "time": "2026-11-27T03:00:00Z",
    }
    with Store(tmp_path / "q.sqlite") as store:
        store.enqueue(parse_incident(json.dumps(body).encode()))
        yield store.claim("test")


def test_the_command_names_the_run_scope_and_sources(tmp_path, job):
    executor = SubprocessExecutor(
        tmp_path / "out",
        {"--prometheus-url": "http://127.0.0.1:9090", "--kubeconfig": ""},
        python="/py",
        extra_args=["--sample"],
    )
    command = executor.command(job, "R-1")
    assert command[:6] == ["/py", "-m", "tenancy_diag.cli", "run", "webhook", "policy"]
    joined = " ".join(command)
    assert f"--incident INC-7 --out {(tmp_path / 'out').resolve()} --run-id R-1" in joined
    assert "--region eu-west-1 --tenant t-000042" in joined
    assert "--prometheus-url http://127.0.0.1:9090" in joined and "--kubeconfig" not in joined
    assert command[-1] == "--sample"


def test_an_unknown_source_flag_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--prometheus"):
        SubprocessExecutor(tmp_path, {"--prometheus": "x"})


def test_a_timeout_stops_the_runner_and_kernels_in_sessions_of_their_own(tmp_path, job):
    kernel_pid = tmp_path / "kernel.pid"
    runner = tmp_path / "fake-python"
    # Like jupyter_client, the "kernel" gets a session of its own, out of the runner's group.
    runner.write_text(
        f"#!/bin/sh\nsetsid sleep 300 &\necho $! > {kernel_pid}\necho working >&2\nexec sleep 300\n"
    )
    runner.chmod(0o755)
    executor = SubprocessExecutor(tmp_path / "out", {}, python=str(runner), grace_s=2)
    started = time.monotonic()
    execution = executor.execute(job, "R-1", timeout_s=1.0)
    assert execution.timed_out and not execution.complete
    assert time.monotonic() - started < 5
    assert execution.exit_code < 0 and "working" in execution.stderr_tail
    pid = int(kernel_pid.read_text())
    deadline = time.monotonic() + 3
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the kernel outlived its run's timeout"
        time.sleep(0.05)
    assert execution.bundle == (tmp_path / "out" / "INC-7" / "R-1").resolve()
    assert os.getpgid(os.getpid())  # this process's own group was never signalled


SECRETS = {
    "TENANCY_DIAG_SERVICE_TOKEN": "webhook-secret",
    "TENANCY_DIAG_SERVICE_TOKEN_FILE": "/etc/secret/token",
    "TENANCY_DIAG_NOTE_TOKEN": "tracker-secret",
    "TENANCY_DIAG_PAGERDUTY_ROUTING_KEY": "pd-secret",
    "SOME_UNRELATED_SECRET": "nope",
}
NEEDED = {
    "TENANCY_API_TOKEN_FILE": "/etc/secret/admin",
    "AWS_ACCESS_KEY_ID": "AKIA",
    "TENANCY_DIAG_PROMETHEUS_URL": "http://127.0.0.1:9090",
    "TENANCY_DIAG_PARAMETERS": "/srv/parameters",
}


def _env_dumping_python(tmp_path):
    """A stand-in for python that writes the environment it was given, then exits 0."""
    dump = tmp_path / "env.json"
    fake = tmp_path / "fake-python"
    fake.write_text(
        f"#!{sys.executable}\nimport json, os\n"
        f"open({str(dump)!r}, 'w').write(json.dumps(dict(os.environ)))\n"
    )
    fake.chmod(0o755)
    return fake, dump


def test_the_runner_gets_no_service_or_sink_token(tmp_path, job, monkeypatch):
    for name, value in {**SECRETS, **NEEDED}.items():
        monkeypatch.setenv(name, value)
    fake, dump = _env_dumping_python(tmp_path)
    SubprocessExecutor(tmp_path / "out", {}, python=str(fake)).execute(job, "R-1", timeout_s=30)
    env = json.loads(dump.read_text())
    assert not set(SECRETS) & set(env), sorted(set(SECRETS) & set(env))
    assert {k: env.get(k) for k in NEEDED} == NEEDED
    assert env["PATH"] == os.environ["PATH"]


def test_kernel_runtime_files_go_under_the_state_folder_and_are_removed(tmp_path, job):
    fake, dump = _env_dumping_python(tmp_path)
    runtime = tmp_path / "state" / "runtime"
    executor = SubprocessExecutor(tmp_path / "out", {}, python=str(fake), runtime_root=runtime)
    executor.execute(job, "R-1", timeout_s=30)
    env = json.loads(dump.read_text())
    assert env["JUPYTER_RUNTIME_DIR"] == env["TMPDIR"] == str(runtime / "R-1")
    assert not (runtime / "R-1").exists()
