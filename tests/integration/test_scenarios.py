"""`run all` on live sandbox servers, one scenario each: the runbook's diagnosis, end to end.

Each scenario costs one sandbox (shared with other tests through the session fixture) and one
`run all` (five kernels); every assertion about that run reads the same bundle.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tenancy_diag import cli
from tenancy_diag.analysis.verdicts import MIN_CONFIDENCE
from tenancy_diag.running import verify_bundle
from tenancy_diag.sandbox import stack
from tenancy_diag.sandbox.secrets import PLANTED
from tenancy_diag.sandbox.serving import pid_alive
from tenancy_diag.sandbox.topology import ScenarioSpec

#: Scenario -> the notebook whose subsystem it belongs to (None: the healthy baseline).
SCENARIOS: dict[str, str | None] = {
    "healthy": None,
    "reconcile_backlog": "controller_health",
    "webhook_storm": "webhook_delivery",
    "policy_timeout": "policy_evaluation",
    "rate_limit_saturation": "api_health",
    "migration_hang": "lifecycle_orchestration",
}
NOTEBOOKS = (
    "controller_health",
    "webhook_delivery",
    "policy_evaluation",
    "api_health",
    "lifecycle_orchestration",
)
MASK = b"[REDACTED]"


@dataclass(frozen=True)
class Bundle:
    out: Path
    root: Path
    summary: dict[str, Any]
    stderr: str

    def findings(self, notebook: str) -> dict[str, Any]:
        return _json(self.root / "findings" / f"{notebook}.json")


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _run_all(
    env: stack.Endpoints,
    incident: str,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Bundle:
    for name, value in env.env().items():
        monkeypatch.setenv(name, value)
    argv = [
        "run",
        "all",
        "--incident",
        incident,
        "--out",
        str(out),
        "--prometheus-url",
        env.prometheus_url,
        "--kubeconfig",
        env.kubeconfig,
        "--aws-endpoint-url",
        env.aws_endpoint_url,
        "--tenancy-api-url",
        env.tenancy_api_url,
        "--end",
        env.end,
    ]
    if env.incident_start:
        argv += ["-p", f"incident_start={env.incident_start}"]
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summaries = list((out / incident).glob("*/summary.json"))
    assert len(summaries) == 1, summaries
    return Bundle(out, summaries[0].parent, _json(summaries[0]), captured.err)


def _diagnosed(findings: dict[str, Any]) -> set[str]:
    return {p["id"] for p in findings["patterns"] if p["confidence"] >= MIN_CONFIDENCE}


def _files(folder: Path) -> Iterator[Path]:
    return (p for p in sorted(folder.rglob("*")) if p.is_file())


def _leaks(folder: Path) -> list[str]:
    """Every (file, secret kind) where a planted secret's value survives, in any spelling
    a JSON or HTML writer might give it."""
    found = []
    for path in _files(folder):
        data = path.read_bytes()
        for kind, secret in PLANTED.items():
            spellings = {secret.encode(), secret.replace("/", "\\/").encode()}
            if any(s in data for s in spellings):
                found.append(f"{path.relative_to(folder)}: {kind}")
    return found


def _scenario_params() -> list[Any]:
    return [
        pytest.param(
            name,
            marks=[pytest.mark.integration, pytest.mark.xdist_group(f"sandbox-{name}")],
            id=name,
        )
        for name in SCENARIOS
    ]


@pytest.mark.parametrize("name", _scenario_params())
def test_run_all_diagnoses_the_scenario_and_leaks_no_secret(
    name: str,
    sandbox: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = sandbox(name)
    truth = _json(Path(env.state_dir) / "truth.json")["truth"]
    bundle = _run_all(env, f"it-{name}", tmp_path, monkeypatch, capsys)
    rows = {row["notebook"]: row for row in bundle.summary["subsystems"]}
    assert sorted(rows) == sorted(NOTEBOOKS)
    assert bundle.summary["complete"] is True and bundle.summary["errors"] == []
    found = {nb: bundle.findings(nb) for nb in NOTEBOOKS}
    # Every source answered, so no notebook may be unsure or broken.
    statuses = {nb: f["status"] for nb, f in found.items()}
    assert set(statuses.values()) <= {"ok", "degraded", "failing"}, statuses

    home = SCENARIOS[name]
    if home is None:
        raised = {nb: [p["id"] for p in f["patterns"]] for nb, f in found.items()}
        assert all(not ids for ids in raised.values()), raised
        assert bundle.summary["root_cause"] is None, bundle.summary["candidates"]
        assert set(statuses.values()) == {"ok"}, statuses
    else:
        _assert_diagnosis(name, found[home], bundle.summary, truth)

    # (a) redaction: nothing planted reaches OUT (bundle and audit log alike) ...
    assert (tmp_path / "audit.jsonl").is_file()
    assert _leaks(tmp_path) == []
    # ... although the sources did hand over secrets, which were masked on the way in.
    masked = [p for p in _files(bundle.root / "snapshots") if MASK in p.read_bytes()]
    assert masked, "no snapshot holds [REDACTED]: the planted secrets never reached the run"
    # (b) the manifest seals what was written.
    assert verify_bundle(bundle.root) == []


def _all_patterns(summary: dict[str, Any]) -> set[str]:
    return {p["id"] for row in summary["subsystems"] for p in row["patterns"]}


def _assert_diagnosis(
    name: str, home: dict[str, Any], summary: dict[str, Any], truth: dict[str, Any]
) -> None:
    evidence = {"patterns": home["patterns"], "candidates": summary["candidates"]}
    assert name in _diagnosed(home), evidence
    assert home["status"] in {"degraded", "failing"}, home["summary"]
    assert summary["root_cause"] is not None, evidence
    assert summary["root_cause"]["pattern"] == name, evidence
    assert summary["root_cause"]["subsystem"] == home["subsystem"]
    assert truth["region"] in home["regions"], (home["regions"], truth["region"])
    if name == "policy_timeout":
        # The slow policy service drives a reconcile backlog downstream; the runbook names
        # transient policy failures as its cause, so the policy timeout must rank first.
        assert "reconcile_backlog" in _all_patterns(summary), evidence
        assert summary["root_cause"]["explains"] == ["reconcile_backlog"], summary["root_cause"]

    if name == "webhook_storm":
        assert set(home["endpoints"]) == set(truth["endpoints"]), home["endpoints"]
    elif name == "rate_limit_saturation":
        assert set(truth["client_ids"]) <= set(home["client_ids"]), home["client_ids"]
        # The gateway's metrics carry client_id only; the API's logs name the tenants.
        shared = set(home["tenants"][:10]) & set(truth["tenants"])
        assert len(shared) >= min(3, len(truth["tenants"])), (home["tenants"], truth["tenants"])
    elif name == "migration_hang":
        jobs = {job["job_id"] for job in home["jobs"]}
        assert jobs == set(truth["job_ids"]), (home["jobs"], truth["job_ids"])
    else:  # reconcile_backlog, policy_timeout: the heaviest tenants of the incident region
        shared = set(home["tenants"]) & set(truth["tenants"])
        assert len(shared) >= min(3, len(truth["tenants"])), (home["tenants"], truth["tenants"])


# -- offline replay -----------------------------------------------------------------------


def _session_members(pids: set[int]) -> list[int]:
    """Live processes in the sessions the sandbox started (each server leads its own)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the ")" closing the command name: state, ppid, pgrp, session, ...
        if fields[0] != "Z" and int(fields[3]) in pids:
            members.append(int(stat.parent.name))
    return members


def _refuses(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=2):
            return False
    except OSError:
        return True


@pytest.mark.integration
@pytest.mark.xdist_group("sandbox-webhook_storm-private")
def test_rerun_with_every_server_stopped_reproduces_the_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    env = stack.up(ScenarioSpec(name="webhook_storm", tenants=60), state)
    try:
        pids = {int(p["pid"]) for p in stack.status(state)["processes"].values()}
        first = _run_all(env, "it-replay", tmp_path / "out", monkeypatch, capsys)
    finally:
        stack.down(state)
    assert not [pid for pid in pids if pid_alive(pid)]
    assert _session_members(pids) == []
    urls = (env.prometheus_url, env.aws_endpoint_url, env.tenancy_api_url)
    assert all(_refuses(url) for url in urls), urls
    assert first.summary["root_cause"]["pattern"] == "webhook_storm", first.summary["candidates"]

    copy = tmp_path / "copy" / first.root.name
    shutil.copytree(first.root, copy)
    # Nothing left to point at: the rerun must take every answer from the copy's snapshots.
    for variable in env.env():
        monkeypatch.delenv(variable, raising=False)
    code = cli.main(["rerun", str(copy), "--out", str(tmp_path / "again")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    index = Path(captured.out.strip().splitlines()[-1])
    second = Bundle(tmp_path / "again", index.parent, _json(index.parent / "summary.json"), "")

    assert second.summary["root_cause"] == first.summary["root_cause"]
    for nb in NOTEBOOKS:
        before, after = first.findings(nb), second.findings(nb)
        for key in ("status", "severity", "patterns", "tenants", "endpoints", "client_ids", "jobs"):
            assert after[key] == before[key], (nb, key)
    manifest = _json(second.root / "manifest.json")
    assert manifest["rerun_of"] == f"it-replay/{first.root.name}"
    for nb in NOTEBOOKS:
        assert manifest["parameters"][nb]["replay_dir"] == str(second.root / "snapshots" / nb)
    assert verify_bundle(second.root) == []
    assert _leaks(tmp_path / "again") == []
    assert os.listdir(tmp_path / "again" / "it-replay") == [second.root.name]
