"""`tenancy-diag lab`: JupyterLab starts on 127.0.0.1, and a notebook opened there runs top to
bottom against the sandbox with its parameters cell untouched."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import papermill
import pytest

from tenancy_diag.settings import ENV_LAB

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sandbox-webhook_storm")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # loopback only
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return None


def test_lab_serves_on_loopback_and_stops_by_pid(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tenancy_diag.cli", "lab", "--no-sandbox", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=tmp_path,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")},
    )
    try:
        deadline, code = time.monotonic() + 120, None
        while time.monotonic() < deadline and code is None:
            time.sleep(0.5)
            code = _status(f"http://127.0.0.1:{port}/lab")
        assert code in (200, 302), "JupyterLab did not answer on 127.0.0.1"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_notebook_runs_top_to_bottom_with_lab_settings(sandbox, tmp_path, monkeypatch):
    env = sandbox("webhook_storm")
    for key, value in {**env.env(), ENV_LAB: "1"}.items():
        monkeypatch.setenv(key, value)
    findings = tmp_path / "findings.json"
    # Only where to write: every source setting comes from the lab's environment.
    papermill.execute_notebook(
        str(NOTEBOOKS / "webhook_delivery.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters={"findings_path": str(findings)},
        progress_bar=False,
        kernel_name="python3",
    )
    data = json.loads(findings.read_text())
    assert data["sources"]["prometheus"] == "ok"
    assert [p["id"] for p in data["patterns"]] == ["webhook_storm"]
