"""A sixth subsystem and a new source kind, plugged in without editing any module of ours.

The plugin (tests/fixtures/plugins/toy_quota.py) registers a subsystem descriptor with its
own notebook and a metrics source kind of its own; it is named in TENANCY_DIAG_PLUGINS, which
every process of a run inherits: the runner, its kernels and the service's workers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tenancy_diag.running.bundles import verify_bundle
from tenancy_diag.sandbox.serving import stop_pid

PLUGINS = Path(__file__).parents[1] / "fixtures" / "plugins"
END = "2026-12-01T00:00:00Z"
pytestmark = [pytest.mark.integration]


@pytest.fixture
def plugin_env(tmp_path):
    metrics = tmp_path / "quota.json"
    metrics.write_text(json.dumps({"us-east-1": 0.5, "eu-west-1": 0.95}))
    path = os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "TENANCY_DIAG_PLUGINS": "toy_quota"}
    return env, metrics


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenancy_diag.cli", *args],
        env=env,
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _findings(bundle: Path) -> dict:
    (path,) = (bundle / "findings").glob("*.json")
    return json.loads(path.read_text())


def _judged(findings: dict) -> dict[str, bool | None]:
    return {row["region"]: row["pass"] for row in findings["slo"]}


def test_the_flag_exists_only_with_the_plugin(plugin_env, tmp_path):
    env, _ = plugin_env
    assert "--metrics-file" in _cli("run", "--help", env=env, cwd=tmp_path).stdout
    bare = {k: v for k, v in env.items() if k != "TENANCY_DIAG_PLUGINS"}
    assert "--metrics-file" not in _cli("run", "--help", env=bare, cwd=tmp_path).stdout
    refused = _cli("run", "quota", "--incident", "I", "--out", "o", env=bare, cwd=tmp_path)
    assert refused.returncode == 2 and "unknown notebook 'quota'" in refused.stderr


def test_run_diagnoses_the_plugin_subsystem_from_the_plugin_source(plugin_env, tmp_path):
    env, metrics = plugin_env
    out = tmp_path / "out"
    done = _cli(
        "run", "quota", "--incident", "INC-Q1", "--metrics-file", str(metrics),
        "--end", END, "--out", str(out), env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (bundle,) = [p for p in (out / "INC-Q1").iterdir() if (p / "manifest.json").is_file()]
    assert verify_bundle(bundle) == []
    findings = _findings(bundle)
    assert findings["subsystem"] == "quota" and findings["status"] == "degraded"
    assert _judged(findings) == {"eu-west-1": False, "us-east-1": True}
    assert findings["severity"] == "sev3"  # the descriptor says: not user visible
    assert findings["sources"] == {"metrics-file": "ok"}
    # The new kind is recorded like the built-in ones, so the bundle replays offline.
    assert list((bundle / "snapshots" / "quota_health" / "metrics-file").glob("*.json"))
    metrics.unlink()
    again = _cli("rerun", str(bundle), "--out", str(tmp_path / "again"), env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr + again.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2):
            return True
    except OSError:
        return False


def _wait(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_serve_accepts_the_plugin_subsystem_and_runs_it(plugin_env, tmp_path):
    env, metrics = plugin_env
    port, out = _free_port(), tmp_path / "out"
    token = tmp_path / "token"
    token.write_text("s3cret-for-tests\n")
    token.chmod(0o600)
    env = {**env, "TENANCY_DIAG_SERVICE_TOKEN_FILE": str(token)}
    argv = [
        sys.executable, "-m", "tenancy_diag.cli", "serve", f"--listen=127.0.0.1:{port}",
        f"--state={tmp_path / 'state'}", f"--out={out}", "--workers=1", "--run-timeout=120",
        "--metrics-file", str(metrics),
    ]  # fmt: skip
    with (tmp_path / "serve.log").open("ab") as log:
        service = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _healthy(url), 30, "the service")
        body = {"incident_id": "INC-Q2", "subsystem": "quota", "region": "eu-west-1", "time": END}
        request = urllib.request.Request(
            f"{url}/incidents",
            data=json.dumps(body).encode(),
            headers={
                "Authorization": "Bearer s3cret-for-tests",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status in (200, 202)
        folder = out / "INC-Q2"

        def sealed():
            if not folder.is_dir():
                return None
            return [p for p in folder.iterdir() if (p / "manifest.json").is_file()]

        (bundle,) = _wait(sealed, 120, "the plugin subsystem's bundle")
        findings = _findings(bundle)
        assert findings["subsystem"] == "quota"
        assert _judged(findings) == {"eu-west-1": False}  # the alert's region only
    finally:
        stop_pid(service.pid, timeout_s=30)
        service.wait(5)
