"""Bad input at the command line: one sentence on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tenancy_diag import cli
from tenancy_diag.sources.registry import registry as source_kinds


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenancy_diag.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_sentence(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_unknown_scenario(tmp_path):
    result = _run("sandbox", "up", "--scenario", "meltdown", "--state-dir", str(tmp_path))
    assert result.returncode == 2
    line = _one_sentence(result.stderr)
    assert "unknown scenario 'meltdown'" in line and "webhook_storm" in line


def test_unreachable_prometheus():
    result = _run("check-signals", "--prometheus-url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "check --prometheus-url" in _one_sentence(result.stderr)


def test_malformed_signals_file(tmp_path):
    bad = tmp_path / "signals.yaml"
    bad.write_text("schema: tenancy-diag/signals/v1\nmetrics: {queue_depth: {colour: red}}\n")
    result = _run("check-signals", "--prometheus-url", "http://127.0.0.1:9", "--signals", str(bad))
    assert result.returncode == 2
    assert str(bad) in _one_sentence(result.stderr)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["sandbox", "up", "--tenants", "0"], "--tenants"),
        (["sandbox", "up", "--duration", "forever"], "'forever' is not a duration"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["sandbox", "down", "--state-dir", "/nonexistent/x"], "no sandbox is up"),
        (["lab", "--state-dir", "/nonexistent/x"], "no source given (--prometheus-url"),
        (["lab", "/nonexistent/bundle"], "cannot read /nonexistent/bundle/manifest.json"),
        (
            ["run", "all", "--sample", "--incident", "x", "--fail-on", "bad"],
            "invalid choice: 'bad'",
        ),
    ],
)
def test_other_bad_input(argv, needle, capsys, monkeypatch):
    for kind in source_kinds:  # a source in the environment would take `lab` live
        monkeypatch.delenv(kind.env, raising=False)
    assert cli.main(argv) == 2
    assert needle in _one_sentence(capsys.readouterr().err)
