"""Bundle folders stay inside OUT, manifests seal every file, the audit log never interleaves."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest

from tenancy_diag.errors import ConfigError
from tenancy_diag.running.audit import AuditRecord, append_audit, redact_command
from tenancy_diag.running.bundles import (
    create_bundle,
    finished_bundle,
    new_run_id,
    read_manifest,
    verify_bundle,
    write_manifest,
)


@pytest.mark.parametrize("incident", ["../x", "a/b", "..", "INC..1", "/etc", "", "-rf", "a b"])
def test_incident_ids_that_could_escape_out_are_refused(tmp_path, incident):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="incident id"):
        create_bundle(out, incident)
    assert not (tmp_path / "x").exists() and not out.exists()


def test_a_symlink_leading_out_of_out_is_refused(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "INC-1").symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="outside"):
        create_bundle(out, "INC-1")
    assert list(elsewhere.iterdir()) == []


def test_run_ids_sort_by_time_and_do_not_collide(tmp_path):
    early = new_run_id(datetime(2026, 11, 27, 3, 0, tzinfo=UTC))
    late = new_run_id(datetime(2026, 11, 27, 3, 0, 1, tzinfo=UTC))
    assert early.startswith("20261127T030000Z-") and early < late
    moment = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    roots = {create_bundle(tmp_path, "INC-1", moment).root for _ in range(5)}
    assert len(roots) == 5 and all(r.parent == (tmp_path / "INC-1").resolve() for r in roots)


@pytest.fixture
def sealed(tmp_path):
    bundle = create_bundle(tmp_path / "out", "INC-1")
    bundle.findings("ok").write_text('{"status": "ok"}')
    bundle.notebook("ok").write_text("{}")
    (bundle.snapshots("ok") / "index.json").write_text("{}")
    write_manifest(bundle, {"run_id": bundle.run_id, "incident": "INC-1"})
    return bundle


def test_manifest_lists_sha256_and_size_of_every_other_file(sealed):
    manifest = read_manifest(sealed.root)
    assert manifest["schema"] == "tenancy-diag/manifest/v1"
    assert set(manifest["files"]) == {
        "findings/ok.json",
        "notebooks/ok.ipynb",
        "snapshots/ok/index.json",
    }
    assert manifest["files"]["findings/ok.json"]["size"] == len('{"status": "ok"}')
    assert verify_bundle(sealed.root) == []


def test_tampered_added_and_removed_files_are_reported(sealed):
    sealed.findings("ok").write_text('{"status": "failing"}')
    (sealed.root / "findings" / "extra.json").write_text("{}")
    sealed.notebook("ok").unlink()
    problems = verify_bundle(sealed.root)
    assert any("findings/ok.json changed after the run" in p for p in problems)
    assert any("findings/extra.json was added" in p for p in problems)
    assert any("notebooks/ok.ipynb is listed in the manifest but missing" in p for p in problems)


def test_a_folder_without_manifest_is_not_a_bundle(tmp_path):
    assert "cannot read" in verify_bundle(tmp_path)[0]


def test_audit_lines_never_interleave(tmp_path):
    # Lines longer than a pipe buffer, written from many threads at once.
    filler = "x" * 20_000

    def write(worker):
        for i in range(20):
            append_audit(
                tmp_path,
                AuditRecord(
                    actor=f"w{worker}",
                    action="run",
                    command=["run", filler],
                    incident="INC-1",
                    run_id=f"{worker}-{i}",
                    result="ok",
                    exit_code=0,
                ),
            )

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 120
    records = [json.loads(line) for line in lines]
    assert {r["schema"] for r in records} == {"tenancy-diag/audit/v1"}
    assert all(r["time"].endswith("Z") for r in records)


def test_recorded_command_lines_hide_secrets():
    argv = [
        "tenancy-diag",
        "run",
        "all",
        "-p",
        "api_token=s3cr3t",
        "-pclient_secret=abc",
        "--param=password=pw",
        "-p",
        "tenant=t1",
        "--prometheus-url",
        "http://admin:hunter2@prom:9090",
    ]
    safe = " ".join(redact_command(argv))
    for secret in ("s3cr3t", "abc", "=pw", "hunter2"):
        assert secret not in safe
    assert "tenant=t1" in safe and "api_token=[REDACTED]" in safe


def test_a_given_run_id_names_the_folder_and_an_interrupted_one_is_moved_aside(tmp_path):
    out = tmp_path / "out"
    first = create_bundle(out, "INC-1", run_id="svc-1")
    assert first.root == (out / "INC-1" / "svc-1").resolve() and first.run_id == "svc-1"
    (first.root / "half-written.ipynb").write_text("{}")
    assert finished_bundle(out, "INC-1", "svc-1") is None  # no manifest: not finished
    again = create_bundle(out, "INC-1", run_id="svc-1")
    assert list(again.root.iterdir()) == []
    assert (out / "INC-1" / "svc-1.partial-1" / "half-written.ipynb").exists()


def test_a_finished_run_id_is_found_only_while_its_manifest_verifies(tmp_path):
    out = tmp_path / "out"
    bundle = create_bundle(out, "INC-1", run_id="svc-2")
    bundle.findings("ok").write_text('{"status": "ok"}')
    write_manifest(bundle, {"run_id": "svc-2", "incident": "INC-1"})
    found = finished_bundle(out, "INC-1", "svc-2")
    assert found is not None and found.root == bundle.root
    bundle.findings("ok").write_text('{"status": "failing"}')
    assert finished_bundle(out, "INC-1", "svc-2") is None


@pytest.mark.parametrize("run_id", ["../x", "a/b", "..", ""])
def test_run_ids_that_could_escape_out_are_refused(tmp_path, run_id):
    with pytest.raises(ConfigError, match="run id"):
        create_bundle(tmp_path / "out", "INC-1", run_id=run_id)
