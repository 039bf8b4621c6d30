"""The postmortem end to end: real bundles from the recorded sample, a remediation call and a
closure in the audit log, then ``tenancy-diag run postmortem`` writes the documents.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tenancy_diag import cli
from tenancy_diag.running.bundles import verify_bundle
from tenancy_diag.running.sample import SAMPLE_DIR
from tenancy_diag.times import iso, parse_time

pytestmark = pytest.mark.integration


def _audit(out: Path, **record: object) -> None:
    base = {"schema": "tenancy-diag/audit/v1", "actor": "alice", "command": [], "exit_code": 0}
    with (out / "audit.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({**base, "incident": "sample", **record}) + "\n")


def test_postmortem_of_the_sample_incident(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not (SAMPLE_DIR / "sample.json").is_file():
        pytest.skip(f"no recorded sample at {SAMPLE_DIR}")
    code = cli.main(["run", "all", "--sample", "--incident", "sample", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    diagnosis = Path(capsys.readouterr().out.strip().splitlines()[-1]).parent
    # The remediation and closure come after the diagnosis run.
    finished = parse_time(
        json.loads((diagnosis / "manifest.json").read_text("utf-8"))["finished_at"]
    )
    _audit(
        tmp_path,
        action="remediate",
        run_id="20261127T060000Z-remedy",
        result="ok",
        time=iso(finished + timedelta(minutes=5)),
        procedure="policy_cache_refresh",
        step=1,
        call="POST /admin/policy/cache/refresh",
        rollback=False,
        dry_run=False,
    )
    _audit(
        tmp_path,
        action="close",
        run_id=None,
        result="closed: alerts resolved",
        time=iso(finished + timedelta(minutes=30)),
    )

    code = cli.main(
        [
            "run",
            "postmortem",
            "--incident",
            "sample",
            "--out",
            str(tmp_path),
            "-p",
            'corrective_actions=[{"action": "x", "owner": "y", "due": "2026-12-04"}]',
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    bundle = Path(captured.out.strip().splitlines()[-1]).parent
    assert bundle != diagnosis
    assert verify_bundle(bundle) == []  # the exports are inside the bundle and its manifest
    markdown = (bundle / "postmortem.md").read_text(encoding="utf-8")
    page = (bundle / "postmortem.html").read_text(encoding="utf-8")

    summary = json.loads((diagnosis / "summary.json").read_text(encoding="utf-8"))
    tenants = summary["escalation_must_include"]["affected_tenants"]
    assert tenants
    for document in (markdown, page):
        assert "policy_timeout" in document and "Policy evaluation timeout" in document
        assert all(t in document for t in tenants)
        assert "Platform SRE" in document
    timeline = markdown.split("## Detection and response timeline", 1)[1].split("\n## ", 1)[0]
    order = [
        "incident start",
        "Policy evaluation timeout began",
        f"run {diagnosis.name} started",
        f"run {diagnosis.name} finished: complete",
        "policy_cache_refresh: POST /admin/policy/cache/refresh → ok",
        "incident closed",
    ]
    positions = [timeline.find(text) for text in order]
    assert -1 not in positions, dict(zip(order, positions, strict=True))
    assert positions == sorted(positions)
    table = page.split("<h2>Detection and response timeline</h2>", 1)[1]
    assert table.find("incident start") < table.find("incident closed")

    findings = json.loads((bundle / "findings" / "postmortem.json").read_text(encoding="utf-8"))
    assert findings["status"] == "ok"
    assert findings["details"]["exports"] == {
        "markdown": "postmortem.md",
        "html": "postmortem.html",
    }
    assert findings["details"]["bundles"]["verified"] == [diagnosis.name]
    assert findings["details"]["flagged_actions"] == []
    assert findings["details"]["root_cause"] == "policy_timeout"
