"""What stands between a typed command and a changed system, against the sandbox's real servers:
acting takes the literal ``-p dry_run=false`` and the exact incident id on the command line,
never reuses a run id, exits non-zero when a step or a check after it failed, takes a cache
``key`` as the parameter it is, and writes no secret into any field of any audit line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from tenancy_diag import cli
from tenancy_diag.remediating import api as rm
from tenancy_diag.running.coercing import looks_secret
from tenancy_diag.sandbox import stack
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sandbox-remediation")]
INCIDENT = "INC-S1"
ACTOR = "alice@example.com"
TENANTS = 60
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


@pytest.fixture
def healthy(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> stack.Endpoints:
    return _env(sandbox("healthy", tenants=TENANTS), monkeypatch)


def _env(env: stack.Endpoints, monkeypatch: pytest.MonkeyPatch) -> stack.Endpoints:
    for name, value in env.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TENANCY_DIAG_ACTOR", ACTOR)
    return env


def _admin(env: stack.Endpoints, path: str) -> Any:
    token = Path(env.tenancy_api_token_file).read_text(encoding="utf-8").strip()
    answer = requests.get(
        env.tenancy_api_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    answer.raise_for_status()
    return answer.json()


def _refresh(env: stack.Endpoints, out: Path, *extra: str) -> list[str]:
    return [
        "run",
        "remediation_policy_cache_refresh",
        "--incident",
        INCIDENT,
        "--out",
        str(out),
        "--prometheus-url",
        env.prometheus_url,
        "--tenancy-api-url",
        env.tenancy_api_url,
        "--end",
        env.end,
        "-p",
        "region=eu-west-1",
        "-p",
        "note=residency/v7 cached stale after redeploy",
        *extra,
    ]


def _audit(out: Path) -> list[dict[str, Any]]:
    path = out / "audit.jsonl"
    return [json.loads(x) for x in path.read_text("utf-8").splitlines()] if path.is_file() else []


# -- defect 4: strict confirmation ----------------------------------------------------------------
LOOSE = {
    "trailing space in confirm": ["-p", "dry_run=false", "-p", f"confirm={INCIDENT} "],
    "leading space in confirm": ["-p", "dry_run=false", "-p", f"confirm= {INCIDENT}"],
    "dry_run=False": ["-p", "dry_run=False", "-p", f"confirm={INCIDENT}"],
    "dry_run=no": ["-p", "dry_run=no", "-p", f"confirm={INCIDENT}"],
    "dry_run=off": ["-p", "dry_run=off", "-p", f"confirm={INCIDENT}"],
    "dry_run=0": ["-p", "dry_run=0", "-p", f"confirm={INCIDENT}"],
    "no confirm": ["-p", "dry_run=false"],
    "both from a file": ["-f", "{file}"],
    "confirm from a file": ["-p", "dry_run=false", "-f", "{file}"],
}


@pytest.mark.parametrize("given", LOOSE.values(), ids=LOOSE.keys())
def test_acting_takes_only_the_literal_words_on_the_command_line(
    healthy: stack.Endpoints, tmp_path: Path, capsys: Any, given: list[str]
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(f"dry_run: false\nconfirm: {INCIDENT}\n", encoding="utf-8")
    argv = [a.replace("{file}", str(params)) for a in given]
    out = tmp_path / "out"
    before = _admin(healthy, "/admin/policy-cache")
    assert cli.main(_refresh(healthy, out, *argv)) == 2
    err = capsys.readouterr().err
    assert f"-p dry_run=false -p confirm={INCIDENT}" in err, err
    assert _admin(healthy, "/admin/policy-cache") == before
    assert not (out / INCIDENT).exists()  # refused before any kernel started
    assert [a["result"].split(":")[0] for a in _audit(out)] == ["refused"]


def test_a_refusal_quoting_what_was_typed_is_redacted_in_the_audit(
    healthy: stack.Endpoints, tmp_path: Path, capsys: Any
) -> None:
    typed = f"confirm=aws_secret_access_key={AWS_SECRET}"
    assert cli.main(_refresh(healthy, tmp_path, "-p", "dry_run=false", "-p", typed)) == 2
    capsys.readouterr()
    (refused,) = _audit(tmp_path)
    assert refused["result"].startswith("refused: confirm 'aws_secret_access_key=[REDACTED]")
    assert AWS_SECRET not in (tmp_path / "audit.jsonl").read_text(encoding="utf-8")


# -- defect 5: a run id is never reused across a dry run and an act ------------------------------
def test_acting_never_reuses_a_run_id(
    healthy: stack.Endpoints, tmp_path: Path, capsys: Any
) -> None:
    out = tmp_path / "out"
    act = ["-p", "dry_run=false", "-p", f"confirm={INCIDENT}"]
    before = _admin(healthy, "/admin/policy-cache")
    assert cli.main(_refresh(healthy, out, "--run-id", "R1")) == 0
    capsys.readouterr()
    assert cli.main(_refresh(healthy, out, "--run-id", "R1", *act)) == 2
    err = capsys.readouterr().err
    assert "run id R1 already names" in err and "--run-id R1-act-" in err, err
    assert "reusing" not in err
    assert _admin(healthy, "/admin/policy-cache") == before
    # The same dry run again is still the one it was.
    assert cli.main(_refresh(healthy, out, "--run-id", "R1")) == 0
    assert "reusing it" in capsys.readouterr().err
    # A fresh id acts; that act's id is never reused either, not even for a dry run.
    assert cli.main(_refresh(healthy, out, "--run-id", "R2", *act)) == 0
    changed = _admin(healthy, "/admin/policy-cache")
    assert changed != before
    capsys.readouterr()
    assert cli.main(_refresh(healthy, out, "--run-id", "R2", *act)) == 2
    assert cli.main(_refresh(healthy, out, "--run-id", "R2")) == 2
    assert "--run-id R2-" in capsys.readouterr().err
    assert _admin(healthy, "/admin/policy-cache") == changed


# -- defect 6: a failed step or post-check exits non-zero ----------------------------------------
def _rate_limit(env: stack.Endpoints, out: Path, region: str, *extra: str) -> list[str]:
    return [
        "run",
        "remediation_api_rate_limit_adjustment",
        "--incident",
        INCIDENT,
        "--out",
        str(out),
        "--prometheus-url",
        env.prometheus_url,
        "--tenancy-api-url",
        env.tenancy_api_url,
        "--end",
        env.end,
        "-p",
        f"region={region}",
        "-p",
        "reason=bulk sync by c-42",
        "-p",
        "expires_in=1h",
        "-p",
        "dry_run=false",
        "-p",
        f"confirm={INCIDENT}",
        *extra,
    ]


def test_a_failed_step_exits_1_and_says_which(
    healthy: stack.Endpoints, tmp_path: Path, capsys: Any
) -> None:
    # The admin API refuses a region it does not serve: the step's POST fails with a 400.
    assert cli.main(_rate_limit(healthy, tmp_path, "mars-1")) == 1
    err = capsys.readouterr().err
    assert "remediation_api_rate_limit_adjustment: step 1 failed" in err, err
    assert "400" in err


def test_a_failed_post_check_exits_1_and_says_which(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    env = _env(sandbox("rate_limit_saturation", tenants=TENANTS), monkeypatch)
    region = Scenario(ScenarioSpec(name="rate_limit_saturation", tenants=TENANTS)).incident_region
    assert region
    try:
        assert cli.main(_rate_limit(env, tmp_path, region)) == 1
        err = capsys.readouterr().err
        assert "post-check 429 share of requests failed" in err, err
    finally:
        assert cli.main(_rate_limit(env, tmp_path, region, "-p", "rollback=true")) in (0, 1)


# -- defect 8: `key` is a cache key, not a secret ------------------------------------------------
def test_a_cache_key_is_a_parameter_and_secret_names_still_are_not(
    healthy: stack.Endpoints, tmp_path: Path, capsys: Any
) -> None:
    act = ["-p", "dry_run=false", "-p", f"confirm={INCIDENT}", "-p", "key=residency/v7"]
    assert cli.main(_refresh(healthy, tmp_path, *act)) == 0, capsys.readouterr().err
    cache = {r["region"]: r for r in _admin(healthy, "/admin/policy-cache")["regions"]}
    latest = cache["eu-west-1"]["invalidations"][-1]
    assert (latest["key"], latest["actor"]) == ("residency/v7", ACTOR)
    for name in ("api_key", "apikey", "token", "secret", "password", "access_key", "private_key"):
        assert looks_secret(name), name
        capsys.readouterr()
        assert cli.main(_refresh(healthy, tmp_path / name, "-p", f"{name}=x")) == 2
        assert "looks like a secret" in capsys.readouterr().err
    for name in ("key", "cache_key", "keys", "monkey", "key_prefix"):
        assert not looks_secret(name), name


# -- defect 3 and 10: every field redacted; a missing rollback says why --------------------------
def test_no_secret_reaches_any_field_of_an_audit_line(
    healthy: stack.Endpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = f"sync by c-42 aws_secret_access_key={AWS_SECRET} Authorization: Bearer {BEARER}"
    params = {
        "incident_id": INCIDENT,
        "dry_run": False,
        "confirm": INCIDENT,
        "end": healthy.end,
        "prometheus_url": healthy.prometheus_url,
        "kubeconfig": "",
        "aws_endpoint_url": "",
        "tenancy_api_url": healthy.tenancy_api_url,
        "findings_path": str(tmp_path / "findings.json"),
        "audit_path": str(tmp_path / "audit.jsonl"),
        "bundle_dir": str(tmp_path / "bundle"),
    }
    scope = {"region": "eu-west-1", "burst_multiplier": 2.0, "reason": reason, "expires_in": "1h"}
    try:
        session = rm.open_session("api_rate_limit_adjustment", params)
        plan = rm.plan(session, **scope, rollback=False)
        run = rm.act(session, plan)
        assert [o.state for o in run.outcomes] == ["done"], run.frame()
        rm.finish(session, run, rm.post_checks(session, plan, run), params["findings_path"])
        # The server stored the reason: it went out whole, and came back in the answer.
        overrides = {o["region"]: o for o in _admin(healthy, "/admin/rate-limit")["overrides"]}
        assert AWS_SECRET in overrides["eu-west-1"]["reason"]
    finally:
        session = rm.open_session("api_rate_limit_adjustment", params)
        rm.act(session, rm.plan(session, **scope, rollback=True))
    for log in (
        tmp_path / "audit.jsonl",
        tmp_path / "bundle" / "actions.jsonl",
        tmp_path / "findings.json",
    ):
        text = log.read_text(encoding="utf-8")
        assert AWS_SECRET not in text and BEARER not in text, log.name
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text("utf-8").splitlines()]
    fields = {name for line in lines for name, value in line.items() if "[REDACTED]" in str(value)}
    assert {"call", "command", "result"} <= fields
    for line in lines:
        if line["rollback"] is None:
            assert str(line.get("no_rollback") or "").strip(), line
