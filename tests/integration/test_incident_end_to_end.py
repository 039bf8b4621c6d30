"""One incident from alert to retrospective on the sandbox's live servers: diagnose, roll the
migration back (dry run, then for real), close, verify, and write the postmortem. Each step
reads what the previous ones left in OUT, as an on-call engineer's day would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tenancy_diag import cli
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sandbox-remediation")]
INCIDENT = "INC-E2E-1"
TENANTS = 59  # a stack of its own: this test changes the admin API's state


def test_diagnose_remediate_close_verify_and_write_the_postmortem(
    sandbox: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = sandbox("migration_hang", tenants=TENANTS)
    for name, value in env.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TENANCY_DIAG_ACTOR", "oncall@example.com")
    truth = Scenario(ScenarioSpec(name="migration_hang", tenants=TENANTS)).truth
    out = ["--incident", INCIDENT, "--out", str(tmp_path)]

    def run(*argv: str) -> None:
        code = cli.main([*argv])
        assert code == 0, capsys.readouterr().err

    run("run", "lifecycle", *out, "-p", f"incident_start={env.incident_start}")
    rollback = ["run", "remediation_migration_rollback", *out, "-p", f"tenant={truth.tenants[0]}"]
    run(*rollback)
    run(*rollback, "-p", "dry_run=false", "-p", f"confirm={INCIDENT}")
    run("close", *out, "--reason", "migration rolled back; traffic on the previous endpoint")
    run("run", "verification_after_recovery", *out)
    run(
        "run",
        "postmortem",
        *out,
        "-p",
        'corrective_actions=[{"action": "Alert on replication lag per tenant", '
        '"owner": "lifecycle-team", "due": "2026-12-04"}]',
    )
    documents = sorted((tmp_path / INCIDENT).glob("*/postmortem.md"))
    assert len(documents) == 1
    text = documents[0].read_text(encoding="utf-8")
    assert "Migration hang" in text and "migration_hang" in text
    assert all(tenant in text for tenant in truth.tenants)
    # The timeline holds the diagnosis, both remediation runs, the calls made and the closure,
    # in the order they happened.
    timeline = text.split("## Detection and response timeline", 1)[1].split("\n## ", 1)[0]
    order = [
        timeline.find("lifecycle_orchestration"),
        timeline.find("migration_rollback dry run: 3 call(s) shown, none made"),
        timeline.find("routing:switch"),
        timeline.find("migration rolled back"),
    ]
    assert -1 not in order and order == sorted(order), timeline
    assert (documents[0].parent / "postmortem.html").is_file()
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    acted = [a for a in audit if a["action"] == "remediate" and a["dry_run"] is False]
    assert acted and {a["actor"] for a in acted} == {"oncall@example.com"}
