"""Guard, plan and execution without servers: what may act, what is audited, what stops."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tenancy_diag.errors import ParameterError, RemediationRefused, SourceRejected
from tenancy_diag.remediating.auditing import BUNDLE_LOG, AuditTrail
from tenancy_diag.remediating.executing import execute
from tenancy_diag.remediating.guarding import Guard
from tenancy_diag.remediating.moving import MessageRef
from tenancy_diag.remediating.plans import Call, Check, Plan, Step
from tenancy_diag.remediating.procedures.webhook_requeue import sequence_ranges

INCIDENT = "INC-7"


class Recorder:
    def __init__(self, fail_at: int | None = None) -> None:
        self.calls: list[str] = []
        self.fail_at = fail_at

    def step(self, name: str) -> Any:
        def perform() -> dict[str, Any]:
            if self.fail_at is not None and len(self.calls) == self.fail_at:
                raise SourceRejected("admin-api", f"{name} answered HTTP 409")
            self.calls.append(name)
            return {"done": name}

        return perform


def _plan(recorder: Recorder, checks: list[Check] | None = None, steps: int = 3) -> Plan:
    plan = Plan("policy_cache_refresh", "Policy cache refresh", INCIDENT, {"region": "r1"})
    plan.preconditions = checks if checks is not None else [Check("up", True, "up = 1")]
    for i in range(steps):
        call = Call("admin-api", "POST", f"/x/{i}", {"n": i})
        undo = Call("admin-api", "POST", f"/undo/{i}") if i % 2 == 0 else None
        plan.steps.append(
            Step(f"step {i}", call, recorder.step(f"s{i}"), rollback=undo, no_rollback="a read")
        )
    return plan


def _trail(tmp_path: Path) -> AuditTrail:
    return AuditTrail("alice", INCIDENT, "policy_cache_refresh", tmp_path / "audit.jsonl", tmp_path)


def _audit(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_dry_run_calls_nothing_and_audits_every_planned_call(tmp_path: Path) -> None:
    recorder = Recorder()
    run = execute(_plan(recorder), Guard(INCIDENT), _trail(tmp_path))
    assert recorder.calls == []
    assert [o.state for o in run.outcomes] == ["would call"] * 3
    audit = _audit(tmp_path)
    assert [a["dry_run"] for a in audit] == [True] * 3
    assert audit[0]["command"] == ["admin-api", "POST", "/x/0", '{"n": 0}']
    assert audit[0]["rollback"] == ["admin-api", "POST", "/undo/0"]
    assert {a["actor"] for a in audit} == {"alice"}
    # The bundle holds the same lines as the shared audit log.
    assert (tmp_path / BUNDLE_LOG).read_text() == (tmp_path / "audit.jsonl").read_text()


@pytest.mark.parametrize("confirm", ["", "INC-8", "inc-7"])
def test_acting_without_the_incident_id_is_refused_and_audited(
    tmp_path: Path, confirm: str
) -> None:
    recorder = Recorder()
    with pytest.raises(RemediationRefused, match="confirm=INC-7"):
        execute(_plan(recorder), Guard(INCIDENT, False, confirm), _trail(tmp_path))
    assert recorder.calls == []
    assert _audit(tmp_path)[0]["result"].startswith("refused:")


@pytest.mark.parametrize("passed", [False, None])
def test_a_failed_or_unknown_required_precondition_refuses(tmp_path: Path, passed: Any) -> None:
    recorder = Recorder()
    checks = [Check("replicas > 1", passed, "spec.replicas = 1"), Check("info", False, "", False)]
    with pytest.raises(RemediationRefused, match="replicas > 1"):
        execute(_plan(recorder, checks), Guard(INCIDENT, False, INCIDENT), _trail(tmp_path))
    assert recorder.calls == []


def test_an_optional_failed_check_does_not_refuse(tmp_path: Path) -> None:
    recorder = Recorder()
    checks = [Check("up", True, ""), Check("before", False, "latency 900 ms", required=False)]
    run = execute(_plan(recorder, checks), Guard(INCIDENT, False, INCIDENT), _trail(tmp_path))
    assert recorder.calls == ["s0", "s1", "s2"]
    assert run.failed is None


def test_acting_stops_at_the_first_failure_and_lists_rollbacks_newest_first(
    tmp_path: Path,
) -> None:
    recorder = Recorder(fail_at=2)
    plan = _plan(recorder, steps=4)
    run = execute(plan, Guard(INCIDENT, False, INCIDENT), _trail(tmp_path))
    assert recorder.calls == ["s0", "s1"]
    assert [o.state for o in run.outcomes] == ["done", "done", "failed", "not run"]
    assert run.rollbacks() == ["step 2: none: a read", "step 1: admin-api POST /undo/0"]
    audit = _audit(tmp_path)
    # Steps never reached make no call, so nothing is audited for them; each call that was
    # made has its intent, then its result.
    assert [(a["phase"], a["exit_code"]) for a in audit] == [
        ("intent", None),
        ("result", 0),
        ("intent", None),
        ("result", 0),
        ("intent", None),
        ("result", 1),
    ]
    assert "409" in audit[-1]["result"]
    assert [a["call_id"] for a in audit[::2]] == [a["call_id"] for a in audit[1::2]]


def test_dry_run_must_be_a_boolean() -> None:
    with pytest.raises(ParameterError, match="dry_run 'no'"):
        Guard(INCIDENT, "no")  # type: ignore[arg-type]


def test_nothing_to_do_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RemediationRefused, match="nothing to do"):
        execute(_plan(Recorder(), steps=0), Guard(INCIDENT, False, INCIDENT), _trail(tmp_path))


def _ref(tenant: str, sequence: int, code: str) -> MessageRef:
    return MessageRef(f"m-{tenant}-{sequence}-{code}", "0" * 64, tenant, sequence, code)


def test_sequence_ranges_join_adjacent_retryable_and_split_at_the_rest() -> None:
    refs = [
        _ref("t-1", 10, "503"),
        _ref("t-1", 11, "timeout"),
        _ref("t-1", 12, "400"),  # not retryable: splits the run
        _ref("t-1", 13, "503"),
        _ref("t-1", 15, "503"),  # 14 is not in the DLQ: delivered, not re-sent
        _ref("t-2", 7, "tls"),
        _ref("t-3", 1, "503"),
        _ref("t-3", 1, "400"),  # one bad copy makes the sequence not retryable
    ]
    ranges = sequence_ranges(refs, frozenset({"503", "timeout"}))
    assert ranges == {"t-1": [(10, 11), (13, 13), (15, 15)]}


def _session_params(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    base = {
        "incident_id": INCIDENT,
        "dry_run": False,
        "confirm": INCIDENT,
        "end": "2026-11-27T03:00:00Z",
        "prometheus_url": "",
        "kubeconfig": "",
        "aws_endpoint_url": "",
        "tenancy_api_url": "",
        "findings_path": str(tmp_path / "findings.json"),
        "audit_path": str(tmp_path / "audit.jsonl"),
        "bundle_dir": "",
    }
    return {**base, **extra}


def test_acting_needs_a_named_actor_and_an_audit_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tenancy_diag.remediating.connecting import open_session

    for name in ("TENANCY_DIAG_ACTOR", "USER", "LOGNAME"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ParameterError, match="TENANCY_DIAG_ACTOR"):
        open_session("policy_cache_refresh", _session_params(tmp_path))
    monkeypatch.setenv("TENANCY_DIAG_ACTOR", "alice")
    with pytest.raises(ParameterError, match="audit_path"):
        open_session("policy_cache_refresh", _session_params(tmp_path, audit_path=""))
    assert open_session("policy_cache_refresh", _session_params(tmp_path)).trail.actor == "alice"
    # A dry run acts on nothing, so it needs neither.
    monkeypatch.delenv("TENANCY_DIAG_ACTOR")
    dry = _session_params(tmp_path, dry_run=True, audit_path="")
    assert open_session("policy_cache_refresh", dry).guard.dry_run


def test_an_unknown_procedure_lists_the_valid_ones(tmp_path: Path) -> None:
    from tenancy_diag.errors import ConfigError
    from tenancy_diag.remediating.connecting import open_session

    with pytest.raises(ConfigError, match="valid: controller_restart, webhook_requeue"):
        open_session("reboot_everything", _session_params(tmp_path, dry_run=True))


def test_every_field_of_every_line_is_redacted(tmp_path: Path) -> None:
    secret, bearer = (
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "eyJhbGciOi.J9eyJzdWIi.OiJhbGljZSJ9",
    )
    planted = f"aws_secret_access_key={secret} Authorization: Bearer {bearer}"
    plan = Plan("policy_cache_refresh", "Policy cache refresh", INCIDENT, {"region": "r1"})
    plan.preconditions = [Check("up", True, "up = 1")]
    plan.notes = [f"root cause: {planted}"]
    call = Call("admin-api", "POST", "/x", {"reason": planted})
    undo = Call("admin-api", "POST", "/undo", {"reason": planted})

    def answer() -> dict[str, Any]:
        return {"echo": planted}

    plan.steps = [Step(f"step {planted}", call, answer, rollback=undo)]
    execute(plan, Guard(INCIDENT, False, INCIDENT), _trail(tmp_path))
    for log in (tmp_path / "audit.jsonl", tmp_path / BUNDLE_LOG):
        text = log.read_text(encoding="utf-8")
        assert secret not in text and bearer not in text
    audit = _audit(tmp_path)
    fields = {k for a in audit for k, v in a.items() if "[REDACTED]" in json.dumps(v)}
    assert {"call", "command", "rollback", "result", "step"} <= fields


def test_a_step_without_rollback_must_say_why_and_its_lines_carry_the_reason(
    tmp_path: Path,
) -> None:
    from tenancy_diag.errors import ConfigError

    call = Call("admin-api", "POST", "/x")
    with pytest.raises(ConfigError, match="no rollback and does not say why"):
        Step("flush", call, Recorder().step("s"))
    run = execute(_plan(Recorder()), Guard(INCIDENT, False, INCIDENT), _trail(tmp_path))
    assert run.failed is None
    for line in _audit(tmp_path):
        assert (line["rollback"] is None) == bool(line["no_rollback"]), line


def test_the_guard_takes_the_incident_id_character_for_character(tmp_path: Path) -> None:
    for near in (f"{INCIDENT} ", f" {INCIDENT}", INCIDENT.lower(), f"{INCIDENT}\n"):
        with pytest.raises(
            RemediationRefused, match=f"type exactly: -p dry_run=false -p confirm={INCIDENT}"
        ):
            execute(_plan(Recorder()), Guard(INCIDENT, False, near), _trail(tmp_path))
