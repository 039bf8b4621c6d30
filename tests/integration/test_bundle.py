"""Real kernels on fixture notebooks: failures isolated, evidence complete, sealed and offline.

Each run costs a kernel start (1-2 s) per notebook, so one run is shared by many assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sys
from datetime import datetime
from pathlib import Path

import pytest

from tenancy_diag.errors import ConfigError, ExitCode, TenancyDiagError
from tenancy_diag.running import commands, rerun, verify_bundle
from tenancy_diag.running.catalog import catalog_from

FIXTURES = Path(__file__).parents[1] / "fixtures" / "notebooks"
# A script or stylesheet fetched from the network, in any of the ways HTML can ask for one.
REMOTE_ASSET = re.compile(
    r"""<script[^>]+src=["']?(https?:)?//|<link[^>]+href=["']?(https?:)?//|"""
    r"""import\(["'](https?:)?//|@import\s+(url\()?["']?(https?:)?//|cdnjs|unpkg|jsdelivr""",
    re.IGNORECASE,
)


def _main(argv):
    """What cli.main does with these commands, capturing both streams."""
    out, err = io.StringIO(), io.StringIO()
    parser = argparse.ArgumentParser(prog="tenancy-diag")
    commands.add_commands(
        parser.add_subparsers(required=True), catalog=lambda: catalog_from(FIXTURES)
    )
    with (
        pytest.MonkeyPatch.context() as patch,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        patch.setattr(sys, "argv", ["tenancy-diag", *argv])
        args = parser.parse_args(argv)
        try:
            code = args.func(args)
        except TenancyDiagError as e:
            print(f"tenancy-diag: error: {e}", file=sys.stderr)
            code = ExitCode.BAD_INPUT
    return code, out.getvalue(), err.getvalue()


class Run:
    def __init__(self, out, argv):
        self.out = out
        self.cwd_before = os.getcwd()
        self.code, self.stdout, self.stderr = _main([*argv, "--out", str(out)])
        self.cwd_after = os.getcwd()
        self.index = Path(self.stdout.strip().splitlines()[-1])
        self.root = self.index.parent
        self.manifest = json.loads((self.root / "manifest.json").read_text())
        self.summary = json.loads((self.root / "summary.json").read_text())

    def findings(self, name):
        return json.loads((self.root / "findings" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    out = tmp_path_factory.mktemp("failing") / "out"
    return Run(
        out,
        [
            "run",
            "ok",
            "raises",
            "silent",
            "--incident",
            "INC-7",
            "--workers",
            "3",
            "-p",
            "tenant=t-007",
            "--region",
            "us-east-1",
            "--region",
            "eu-west-1",
            "-p",
            "latency_p99_ms_max=1500",
            "--end",
            "2026-11-27T03:00:00Z",
        ],
    )


def test_exit_code_is_1_and_names_the_failed_notebooks(failing):
    assert failing.code == 1
    assert "2 notebook(s) failed: raises (ValueError: cannot reach" in failing.stderr
    assert "silent (notebook finished but it wrote no findings" in failing.stderr
    assert "ok (" not in failing.stderr
    assert failing.index.is_file() and failing.index.name == "index.html"


def test_a_failed_notebook_leaves_its_partial_notebook_and_error_findings(failing):
    nb = json.loads((failing.root / "notebooks" / "raises.ipynb").read_text())
    outputs = [o for cell in nb["cells"] if cell["cell_type"] == "code" for o in cell["outputs"]]
    assert any(o["output_type"] == "error" and o["ename"] == "ValueError" for o in outputs)
    assert any("connecting to" in "".join(o.get("text", "")) for o in outputs)
    assert nb["cells"][-1]["outputs"] == []  # never reached
    raised = failing.findings("raises")
    assert raised["status"] == "error" and raised["schema"] == "tenancy-diag/findings/v1"
    assert raised["error"].startswith("ValueError: cannot reach http://sre:[REDACTED]@db")
    assert failing.findings("silent")["status"] == "error"
    assert failing.summary["errors"] == ["raises", "silent"]
    assert [r["status"] for r in failing.summary["subsystems"]] == ["ok", "error", "error"]


def test_parameters_reach_the_kernel_which_runs_in_the_bundle(failing):
    ok = failing.findings("ok")
    assert ok["status"] == "ok"
    assert ok["summary"].startswith(
        "{'tenant': 't-007', 'regions': ['us-east-1', 'eu-west-1'], 'threshold': 1500.0}"
    )
    assert ok["sources"]["cwd"] == str(failing.root)
    assert ok["sources"]["snapshot_dir"] == str(failing.root / "snapshots" / "ok")
    assert ok["window"]["end"] == "2026-11-27T03:00:00Z" == failing.summary["window"]["end"]
    assert failing.summary["window"]["start"] == "2026-11-27T00:00:00Z"


def test_notebooks_ran_concurrently_and_the_process_kept_its_directory(failing):
    spans = []
    for entry in failing.manifest["notebooks"].values():
        start = datetime.fromisoformat(entry["started_at"]).timestamp()
        spans.append((start, start + entry["seconds"]))
    assert max(s for s, _ in spans) < min(e for _, e in spans), spans
    # papermill's own cwd= would have left the process in the bundle folder.
    assert failing.cwd_after == failing.cwd_before


def test_html_renders_every_notebook_and_loads_nothing_from_the_network(failing):
    for name in ("ok", "raises", "silent"):
        page = (failing.root / "html" / f"{name}.html").read_text()
        assert REMOTE_ASSET.search(page) is None, REMOTE_ASSET.search(page)
        assert "<style" in page
    assert "connecting to" in (failing.root / "html" / "raises.html").read_text()
    index = failing.index.read_text()
    assert REMOTE_ASSET.search(index) is None
    for name in ("ok", "raises", "silent"):
        assert f'href="html/{name}.html"' in index


def test_a_secret_printed_by_a_notebook_reaches_no_file(failing):
    for path in failing.out.rglob("*"):
        if path.is_file():
            assert b"hunter2" not in path.read_bytes(), path


def test_manifest_records_the_run_and_seals_every_file(failing, tmp_path):
    manifest = failing.manifest
    assert manifest["incident"] == "INC-7" and manifest["run_id"] == failing.root.name
    assert manifest["command"][:3] == ["tenancy-diag", "run", "ok"]
    assert manifest["versions"]["papermill"] and manifest["versions"]["python"]
    source = FIXTURES / "ok.ipynb"
    assert (
        manifest["notebooks"]["ok"]["source_sha256"]
        == hashlib.sha256(source.read_bytes()).hexdigest()
    )
    assert manifest["parameters"]["ok"]["tenant"] == "t-007"
    assert "index.html" in manifest["files"] and "manifest.json" not in manifest["files"]
    assert verify_bundle(failing.root) == []

    copy = tmp_path / "copy"
    shutil.copytree(failing.root, copy)
    findings = copy / "findings" / "ok.json"
    findings.write_text(findings.read_text().replace('"ok"', '"failing"'))
    assert verify_bundle(copy) == [
        "findings/ok.json changed after the run (its sha256 or size differs)"
    ]
    with pytest.raises(ConfigError, match="fails its manifest check"):
        rerun(copy, tmp_path / "rerun")


def test_the_run_is_appended_to_the_audit_log(failing):
    lines = (failing.out / "audit.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    assert record["action"] == "run" and record["incident"] == "INC-7"
    assert record["run_id"] == failing.root.name and record["exit_code"] == 1
    assert "raises" in record["result"] and record["actor"]


def test_a_cell_over_the_timeout_is_stopped_and_reported(tmp_path):
    run = Run(tmp_path / "out", ["run", "slow", "--incident", "INC-8", "--timeout", "2"])
    assert run.code == 1
    slow = run.findings("slow")
    assert slow["status"] == "error" and "CellTimeoutError" in slow["error"]
    assert run.manifest["notebooks"]["slow"]["seconds"] < 60
    assert (run.root / "notebooks" / "slow.ipynb").is_file()


def test_rerun_replays_the_recording_and_reproduces_the_findings(tmp_path):
    first = Run(tmp_path / "out", ["run", "replaying", "--incident", "INC-9"])
    assert first.code == 0, first.stderr
    assert (first.root / "snapshots" / "replaying" / "index.json").is_file()

    code, stdout, stderr = _main(["rerun", str(first.root), "--out", str(tmp_path / "again")])
    assert code == 0, stderr
    second = Path(stdout.strip().splitlines()[-1]).parent
    replayed = json.loads((second / "findings" / "replaying.json").read_text())
    original = first.findings("replaying")
    assert replayed["summary"] == original["summary"]  # the random answer, from the snapshot
    assert replayed["sources"]["replay_dir"] == str(second / "snapshots" / "replaying")
    manifest = json.loads((second / "manifest.json").read_text())
    assert manifest["action"] == "rerun"
    assert manifest["rerun_of"] == f"INC-9/{first.root.name}"
    assert manifest["window"] == first.manifest["window"]
    assert verify_bundle(second) == []
