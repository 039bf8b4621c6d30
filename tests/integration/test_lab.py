"""`tenancy-diag lab`: JupyterLab starts on 127.0.0.1, and a notebook opened there runs top to
bottom against the sandbox with its parameters cell untouched; the lab's working copies, for an
incident or a bundle, run headless here exactly as the lab's kernels would run them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest
from nbclient import NotebookClient

from tenancy_diag import cli
from tenancy_diag.running import verify_bundle
from tenancy_diag.sandbox import stack
from tenancy_diag.settings import ENV_LAB
from tenancy_diag.sources.registry import registry as source_kinds

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


# --- lab for an incident and lab on a bundle, run headless as the lab's kernels would ---------


def _prepare(monkeypatch, *argv: str) -> tuple[Path, dict[str, str]]:
    """`tenancy-diag lab ...` up to starting Jupyter: the lab folder and the kernels' env."""
    started: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, env: started.append((cmd, env)) or 0)
    assert cli.main(["lab", *argv]) == 0
    ((command, env),) = started
    (folder,) = [c.split("=", 1)[1] for c in command if c.startswith("--notebook-dir=")]
    assert "--ServerApp.ip=127.0.0.1" in command
    return Path(folder), env


def _run_copy(monkeypatch, copy: Path, env: dict[str, str]) -> Any:
    """Execute a working copy top to bottom in a kernel with the lab's environment; a cell that
    raises fails the test (nbclient's CellExecutionError)."""
    for key, value in env.items():
        if os.environ.get(key) != value:
            monkeypatch.setenv(key, value)
    nb = nbformat.read(copy, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(copy.parent)}}
    ).execute()
    return nb


def _injected(copy: Path) -> str:
    nb = nbformat.read(copy, as_version=4)
    (cell,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    return str(cell.source)


def _repository_notebooks() -> dict[str, float]:
    return {p.name: p.stat().st_mtime for p in NOTEBOOKS.iterdir()}


def _flags(endpoints) -> list[str]:
    return [
        "--prometheus-url", endpoints.prometheus_url,
        "--kubeconfig", endpoints.kubeconfig,
        "--aws-endpoint-url", endpoints.aws_endpoint_url,
        "--tenancy-api-url", endpoints.tenancy_api_url,
    ]  # fmt: skip


def test_lab_for_an_incident_writes_under_out_never_into_notebooks(sandbox, tmp_path, monkeypatch):
    endpoints = sandbox("webhook_storm")
    monkeypatch.setenv("TENANCY_API_TOKEN_FILE", endpoints.tenancy_api_token_file)
    for key, value in stack.SANDBOX_AWS_ENV.items():
        monkeypatch.setenv(key, value)
    before = _repository_notebooks()
    out = tmp_path / "out"
    root, env = _prepare(
        monkeypatch,
        "--incident", "INC-LAB", *_flags(endpoints), "--end", endpoints.end, "--out", str(out),
    )  # fmt: skip
    assert root.parent == (out / "INC-LAB").resolve() and root.name.startswith("lab-")
    assert env[ENV_LAB] == "1"
    copies = {p.stem for p in (root / "notebooks").glob("*.ipynb")}
    assert {"webhook_delivery", "controller_health", "verification_after_recovery"} <= copies
    copy = root / "notebooks" / "webhook_delivery.ipynb"
    assert f'prometheus_url = "{endpoints.prometheus_url}"' in _injected(copy)
    assert (
        "dry_run = true"
        in _injected(root / "notebooks" / "remediation_webhook_requeue.ipynb").lower()
    )

    _run_copy(monkeypatch, copy, env)
    findings = json.loads((root / "findings" / "webhook_delivery.json").read_text())
    assert findings["incident"] == "INC-LAB"
    assert [p["id"] for p in findings["patterns"]] == ["webhook_storm"]
    assert (root / "snapshots" / "webhook_delivery" / "index.json").is_file()
    # Run All again, as a person does: the last recording moves aside, the new one takes its place.
    _run_copy(monkeypatch, copy, env)
    assert (root / "snapshots" / "webhook_delivery.1" / "index.json").is_file()
    assert (root / "snapshots" / "webhook_delivery" / "index.json").is_file()

    assert _repository_notebooks() == before, "the lab wrote into notebooks/"
    assert not (NOTEBOOKS / "findings.json").exists()


def test_lab_without_sources_is_wired_to_the_sandbox_as_practice(sandbox, tmp_path, monkeypatch):
    endpoints = sandbox("webhook_storm")
    for variable in [*(k.env for k in source_kinds), "TENANCY_DIAG_END"]:
        monkeypatch.delenv(variable, raising=False)
    root, env = _prepare(
        monkeypatch, "--state-dir", endpoints.state_dir, "--out", str(tmp_path / "out")
    )
    assert root.parent.name == "practice"
    assert env["TENANCY_DIAG_PROMETHEUS_URL"] == endpoints.prometheus_url
    injected = _injected(root / "notebooks" / "webhook_delivery.ipynb")
    assert f'prometheus_url = "{endpoints.prometheus_url}"' in injected
    assert f'end = "{endpoints.end}"' in injected  # the sandbox's history, pinned as `run` pins it


@pytest.fixture
def bundle_copy(sample_bundle, tmp_path):
    """The sample bundle, copied so a lab's folder lands beside it in a place of its own."""
    target = tmp_path / "out" / "sample" / sample_bundle.name
    shutil.copytree(sample_bundle, target)
    return target


def test_lab_on_a_bundle_replays_its_evidence_and_leaves_it_sealed(bundle_copy, monkeypatch):
    root, env = _prepare(monkeypatch, str(bundle_copy))
    assert root.parent == bundle_copy.parent and root.name.startswith("lab-")
    copy = root / "notebooks" / "policy_evaluation.ipynb"
    injected = _injected(copy)
    assert f'replay_dir = "{bundle_copy / "snapshots" / "policy_evaluation"}"' in injected
    assert 'prometheus_url = ""' in injected and 'snapshot_dir = ""' in injected
    assert 'incident_id = "sample"' in injected
    # The executed outputs come along: the responder continues from the exact evidence.
    assert any(c.get("outputs") for c in nbformat.read(copy, as_version=4).cells)

    _run_copy(monkeypatch, copy, env)
    again = json.loads((root / "findings" / "policy_evaluation.json").read_text())
    original = json.loads((bundle_copy / "findings" / "policy_evaluation.json").read_text())
    for key in ("status", "severity", "summary", "patterns", "regions", "tenants", "slo"):
        assert again[key] == original[key], key
    assert verify_bundle(bundle_copy) == []


def test_a_query_the_recording_lacks_is_named(bundle_copy, monkeypatch):
    root, env = _prepare(monkeypatch, str(bundle_copy))
    copy = root / "notebooks" / "webhook_delivery.ipynb"
    nb = nbformat.read(copy, as_version=4)
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.source = cell.source.replace('lookback = "60m"', 'lookback = "2h"')
    nbformat.write(nb, copy)
    executed = _run_copy(monkeypatch, copy, env)
    findings = json.loads((root / "findings" / "webhook_delivery.json").read_text())
    state = findings["sources"]["prometheus"]
    assert state.startswith("unavailable: replay snapshot") and "has no answer for" in state
    assert "prometheus.range_query(" in state or "prometheus.instant_query(" in state
    assert findings["status"] == "unknown"
    shown = json.dumps([c.get("outputs") for c in executed.cells])
    assert "has no answer for prometheus" in shown, "the notebook says which query is missing"


def test_lab_on_a_bundle_with_source_flags_goes_live_into_the_copy(
    sandbox, bundle_copy, monkeypatch
):
    endpoints = sandbox("webhook_storm")
    monkeypatch.setenv("TENANCY_API_TOKEN_FILE", endpoints.tenancy_api_token_file)
    root, env = _prepare(monkeypatch, str(bundle_copy), *_flags(endpoints))
    copy = root / "notebooks" / "api_health.ipynb"
    injected = _injected(copy)
    assert 'replay_dir = ""' in injected
    assert f'snapshot_dir = "{root / "snapshots" / "api_health"}"' in injected
    assert 'end = "2026-11-27T04:33:00Z"' in injected  # the bundle's window, unless --end says
    _run_copy(monkeypatch, copy, env)
    findings = json.loads((root / "findings" / "api_health.json").read_text())
    assert findings["sources"]["prometheus"] == "ok"
    assert (root / "snapshots" / "api_health" / "index.json").is_file()
    assert verify_bundle(bundle_copy) == []
