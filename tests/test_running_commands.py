"""`run` refuses bad input before creating a bundle or starting a kernel, and audits the refusal."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import papermill
import pytest

from tenancy_diag.errors import ExitCode, TenancyDiagError
from tenancy_diag.running import commands
from tenancy_diag.running.catalog import catalog_from
from tenancy_diag.sources.registry import registry as source_kinds

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"


def main(argv, monkeypatch):
    """What cli.main does with these commands: errors become one line and exit code 2."""
    monkeypatch.setattr(sys, "argv", ["tenancy-diag", *argv])
    parser = argparse.ArgumentParser(prog="tenancy-diag")
    commands.add_commands(
        parser.add_subparsers(required=True), catalog=lambda: catalog_from(FIXTURES)
    )
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except TenancyDiagError as e:
        print(f"tenancy-diag: error: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT


@pytest.fixture(autouse=True)
def no_kernels(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a kernel was started for input that should have been refused")

    monkeypatch.setattr(papermill, "execute_notebook", refuse)
    for name in source_kinds.env_variables().values():
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["-p", "latency_p99_max=1"], "did you mean 'latency_p99_ms_max'"),
        (["-p", "latency_p99_ms_max=fast"], "is 'fast', but notebook ok declares it float"),
        (["-p", "api_token=s3cr3t"], "looks like a secret"),
        (["-p", "findings_path=/etc/passwd"], "set by the runner"),
        (["--lookback", "forever"], "'forever' is not a duration"),
        (["--end", "yesterday-ish"], "is not a time"),
    ],
)
def test_bad_parameters_are_refused_before_any_kernel(tmp_path, monkeypatch, capsys, extra, needle):
    out = tmp_path / "out"
    code = main(
        ["run", "ok", "raises", "--incident", "INC-1", "--out", str(out), *extra], monkeypatch
    )
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not (out / "INC-1").exists()
    audit = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["result"].startswith("refused: ") and audit[-1]["exit_code"] == 2
    assert audit[-1]["run_id"] is None
    assert "s3cr3t" not in (out / "audit.jsonl").read_text()


@pytest.mark.parametrize("incident", ["../x", "a/b", ".."])
def test_incident_ids_escaping_out_are_refused(tmp_path, monkeypatch, capsys, incident):
    out = tmp_path / "deep" / "out"
    assert main(["run", "ok", "--incident", incident, "--out", str(out)], monkeypatch) == 2
    assert "incident id" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["audit.jsonl"]
    assert not (tmp_path / "deep" / "x").exists()


def test_unknown_notebook_lists_valid_ones(tmp_path, monkeypatch, capsys):
    assert main(["run", "okk", "--incident", "INC-1", "--out", str(tmp_path)], monkeypatch) == 2
    err = capsys.readouterr().err
    assert "unknown notebook 'okk'" in err and "raises" in err


def test_environment_fallbacks_and_flags_become_parameters(monkeypatch, tmp_path):
    monkeypatch.setenv("TENANCY_DIAG_PROMETHEUS_URL", "http://127.0.0.1:9090")
    monkeypatch.setenv("TENANCY_DIAG_END", "2026-11-27T03:00:00Z")
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    commands.add_commands(parser.add_subparsers())
    args = parser.parse_args(
        [
            "run",
            "all",
            "--incident",
            "I",
            "--kubeconfig",
            "kc.yaml",
            "--region",
            "us-east-1",
            "--region",
            "eu-west-1",
        ]
    )
    named = commands.named_parameters(args)
    assert named["prometheus_url"].value == "http://127.0.0.1:9090"
    assert named["prometheus_url"].origin == "$TENANCY_DIAG_PROMETHEUS_URL"
    assert named["end"].value == "2026-11-27T03:00:00Z"
    assert named["kubeconfig"].value == str(tmp_path.resolve() / "kc.yaml")
    assert named["regions"].value == ["us-east-1", "eu-west-1"]
    assert not any(g.strict for g in named.values())
