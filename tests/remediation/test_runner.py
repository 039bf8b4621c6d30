"""A remediation notebook under the runner, with no server at all: it fails clearly, leaves
its evidence, and a rerun refuses to act again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tenancy_diag import cli

pytestmark = pytest.mark.integration


def test_a_remediation_without_its_server_fails_clearly_and_is_never_rerun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "remediation_migration_rollback", "--incident", "INC-9", "--out", str(tmp_path)]
    assert cli.main([*argv, "-p", "tenant=t-000001"]) == 1
    err = capsys.readouterr().err
    assert "needs the admin-api source" in err and "--tenancy-api-url" in err
    bundle = next((tmp_path / "INC-9").iterdir())
    findings = json.loads((bundle / "findings" / "remediation_migration_rollback.json").read_text())
    assert findings["status"] == "error" and "--tenancy-api-url" in findings["error"]
    assert (bundle / "notebooks" / "remediation_migration_rollback.ipynb").is_file()
    assert cli.main(["rerun", str(bundle), "--out", str(tmp_path / "again")]) == 2
    assert "is a remediation" in capsys.readouterr().err
    assert not (tmp_path / "again" / "INC-9").exists()
    refused = json.loads((tmp_path / "again" / "audit.jsonl").read_text().splitlines()[-1])
    assert refused["action"] == "rerun" and refused["result"].startswith("refused:")


def test_a_missing_scope_is_named_with_its_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "remediation_policy_cache_refresh", "--incident", "INC-9"]
    assert cli.main([*argv, "--out", str(tmp_path), "--tenancy-api-url", "http://127.0.0.1:9"]) == 1
    assert "needs region; pass -p region=" in capsys.readouterr().err
