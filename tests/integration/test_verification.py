"""Verification After Recovery on live sandbox servers: a failing scenario fails the right items,
a healthy one passes once its closure is recorded, and fails item 7 until then.

Each run starts one kernel; the three runs share two sandboxes with the other integration tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tenancy_diag import cli
from tenancy_diag.running import VERIFICATION_NOTEBOOK
from tenancy_diag.sandbox import stack


def _verify(
    env: stack.Endpoints,
    incident: str,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> dict[str, Any]:
    for name, value in env.env().items():
        monkeypatch.setenv(name, value)
    code = cli.main(
        [
            "run",
            VERIFICATION_NOTEBOOK,
            "--incident",
            incident,
            "--out",
            str(out),
            "--prometheus-url",
            env.prometheus_url,
            "--aws-endpoint-url",
            env.aws_endpoint_url,
            "--end",
            env.end,
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    [findings] = (out / incident).glob(f"*/findings/{VERIFICATION_NOTEBOOK}.json")
    data: dict[str, Any] = json.loads(findings.read_text(encoding="utf-8"))
    return data


def _verdicts(findings: dict[str, Any]) -> dict[int, str]:
    return {row["item"]: row["pass"] for row in findings["details"]["checklist"]}


@pytest.mark.integration
@pytest.mark.xdist_group("sandbox-policy_timeout")
def test_a_policy_timeout_fails_verification_naming_its_items(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    env = sandbox("policy_timeout")
    truth = json.loads((Path(env.state_dir) / "truth.json").read_text(encoding="utf-8"))["truth"]
    assert cli.main(["close", "--incident", "it-pt", "--out", str(tmp_path), "--reason", "x"]) == 0
    findings = _verify(env, "it-pt", tmp_path, monkeypatch, capsys)
    verdicts = _verdicts(findings)
    assert findings["subsystem"] == "recovery" and findings["status"] == "failing"
    # Alerts still hold, the policy SLOs fail, and the slow policy service backs up reconciles.
    assert {n for n, v in verdicts.items() if v == "FAIL"} >= {1, 2, 6}, verdicts
    assert verdicts[5] == "pass" and verdicts[7] == "pass", verdicts
    assert truth["region"] in findings["regions"]
    holding = {row["alertname"] for row in findings["details"]["still_firing"]}
    assert "TenancyPolicyLatencyP99High" in holding, holding
    assert "6 (Policy evaluation latency below threshold)" in findings["summary"]
    assert "run policy_evaluation" in findings["summary"]


@pytest.mark.integration
@pytest.mark.xdist_group("sandbox-healthy")
def test_a_healthy_fleet_passes_once_closed_and_fails_item_7_before(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    env = sandbox("healthy")
    open_ = _verify(env, "it-open", tmp_path, monkeypatch, capsys)
    assert open_["status"] == "failing", open_["summary"]
    assert _verdicts(open_) == {**dict.fromkeys(range(1, 7), "pass"), 7: "FAIL"}, open_["details"]
    assert "tenancy-diag close" in open_["summary"]

    argv = ["close", "--incident", "it-closed", "--out", str(tmp_path), "--reason", "recovered"]
    assert cli.main(argv) == 0
    closed = _verify(env, "it-closed", tmp_path, monkeypatch, capsys)
    assert closed["status"] == "ok", closed["summary"]
    assert set(_verdicts(closed).values()) == {"pass"}, closed["details"]["checklist"]
    assert closed["details"]["checklist"][6]["figure"].endswith("closed: recovered")
    assert closed["details"]["thresholds"]["policy"]["latency_p99_ms_max"] == 250.0
