"""One home per schema: every evidence file's schema id is defined in ``tenancy_diag.evidence``
and nowhere else, and a document of the wrong schema is refused with its path and the id."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import tenancy_diag
from tenancy_diag import evidence, journaling, running
from tenancy_diag.analysis import findings
from tenancy_diag.errors import ConfigError, SnapshotError
from tenancy_diag.remediating import executing, moving, plans
from tenancy_diag.reviewing.gathering import read_bundle
from tenancy_diag.running import bundles, results, sample
from tenancy_diag.sources import recording, snapshots

PACKAGE = Path(tenancy_diag.__file__).parent
SCHEMA_LITERAL = re.compile(r"""["'](tenancy-diag/[A-Za-z0-9_.-]+/v\d+)["']""")

# Schemas of files that are not evidence, each at home in the one module that reads or writes it.
NOT_EVIDENCE = {
    "tenancy-diag/sandbox-state/v1": "sandbox/stack.py",  # the sandbox's own bookkeeping
    "tenancy-diag/signals/v1": "signals.py",  # an input mapping, read, never written
    "tenancy-diag/runbook/v1": "runbook.py",  # an input mapping, read, never written
    "tenancy-diag/note/v1": "service/sinks/payloads.py",  # a ticket comment, not a file
}

EVIDENCE_IDS = {name: value for name, value in vars(evidence).items() if name.endswith("_SCHEMA")}


def _schema_literals() -> list[tuple[str, str]]:
    """(file relative to the package, schema id) for every quoted schema id in its code."""
    return [
        (path.relative_to(PACKAGE).as_posix(), match)
        for path in sorted(PACKAGE.rglob("*.py"))
        for match in SCHEMA_LITERAL.findall(path.read_text(encoding="utf-8"))
    ]


def test_every_evidence_schema_id_is_unique_and_versioned() -> None:
    assert len(EVIDENCE_IDS) >= 12
    assert len(set(EVIDENCE_IDS.values())) == len(EVIDENCE_IDS), EVIDENCE_IDS
    for name, value in EVIDENCE_IDS.items():
        assert re.fullmatch(r"tenancy-diag/[a-z-]+/v\d+", value), name
    assert not set(EVIDENCE_IDS.values()) & set(NOT_EVIDENCE)


def test_evidence_is_the_only_module_that_spells_a_schema_id() -> None:
    found = _schema_literals()
    assert sorted(v for f, v in found if f == "evidence.py") == sorted(EVIDENCE_IDS.values())
    elsewhere = [(f, v) for f, v in found if f != "evidence.py"]
    assert [(f, v) for f, v in elsewhere if NOT_EVIDENCE.get(v) != f] == []
    # Every exception is still where this test says, so the list cannot go stale.
    assert sorted(elsewhere) == sorted((f, v) for v, f in NOT_EVIDENCE.items())


def test_the_old_names_are_the_evidence_modules_values() -> None:
    assert running.MANIFEST_SCHEMA is evidence.MANIFEST_SCHEMA
    assert running.SUMMARY_SCHEMA is evidence.SUMMARY_SCHEMA
    assert findings.FINDINGS_SCHEMA is evidence.FINDINGS_SCHEMA
    assert journaling.AUDIT_SCHEMA is evidence.AUDIT_SCHEMA
    assert journaling.AUDIT_FILE is evidence.AUDIT_FILE
    assert sample.SAMPLE_SCHEMA is evidence.SAMPLE_SCHEMA
    assert (bundles.MANIFEST, bundles.SUMMARY, bundles.INDEX) == (
        evidence.MANIFEST_FILE,
        evidence.SUMMARY_FILE,
        evidence.INDEX_PAGE,
    )
    for module in (snapshots, recording):
        assert module.SNAPSHOT_SCHEMA is evidence.SNAPSHOT_SCHEMA
        assert module.CALL_SCHEMA is evidence.SNAPSHOT_CALL_SCHEMA
        assert module.INDEX_FILE is evidence.SNAPSHOT_INDEX_FILE
    assert moving.JOURNAL_SCHEMA is evidence.MOVE_JOURNAL_SCHEMA
    assert moving.PLAN_SCHEMA is evidence.MOVE_PLAN_SCHEMA
    assert moving.REPORT_SCHEMA is evidence.MOVE_REPORT_SCHEMA
    assert plans.PLAN_SCHEMA is evidence.REMEDIATION_PLAN_SCHEMA
    assert executing.EXECUTION_SCHEMA is evidence.REMEDIATION_SCHEMA


# --- refusing a document of the wrong schema ----------------------------------------------------


def test_check_schema_names_the_path_what_it_found_and_what_it_expected() -> None:
    expected = evidence.SUMMARY_SCHEMA
    assert evidence.check_schema({"schema": expected}, expected, "out/summary.json") is None
    assert evidence.check_schema({"schema": "tenancy-diag/summary/v0"}, expected, "s.json") == (
        "s.json has schema 'tenancy-diag/summary/v0', expected 'tenancy-diag/summary/v1'"
    )
    assert evidence.check_schema({}, expected, Path("a/s.json")) == (
        "a/s.json has schema None, expected 'tenancy-diag/summary/v1'"
    )
    assert evidence.check_schema([1], expected, "s.json") == (
        "s.json is not a JSON object, expected a 'tenancy-diag/summary/v1' document"
    )


def _write(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


WRONG = {"schema": "tenancy-diag/other/v1"}


def test_the_runner_refuses_a_manifest_of_another_schema(tmp_path: Path) -> None:
    path = _write(tmp_path / evidence.MANIFEST_FILE, WRONG)
    with pytest.raises(ConfigError) as raised:
        bundles.read_manifest(tmp_path)
    assert str(path) in str(raised.value) and repr(evidence.MANIFEST_SCHEMA) in str(raised.value)


def test_a_postmortem_leaves_out_a_bundle_whose_manifest_has_another_schema(
    tmp_path: Path,
) -> None:
    _write(tmp_path / evidence.MANIFEST_FILE, WRONG)
    bundle = read_bundle(tmp_path)
    assert not bundle.trusted
    assert bundle.problems == (
        f"manifest.json has schema 'tenancy-diag/other/v1', expected '{evidence.MANIFEST_SCHEMA}'",
    )


def test_the_runner_reports_findings_of_another_schema(tmp_path: Path) -> None:
    path = _write(tmp_path / "api_health.json", {**WRONG, "status": "ok"})
    doc, why = results.load_findings(path)
    assert doc is None
    assert why == (
        "its findings file api_health.json has schema 'tenancy-diag/other/v1', "
        f"expected '{evidence.FINDINGS_SCHEMA}'"
    )


def test_the_sample_of_another_schema_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / evidence.SAMPLE_FILE, WRONG)
    with pytest.raises(ConfigError, match=re.escape(f"{path} has schema")) as raised:
        sample.load_sample(tmp_path)
    assert repr(evidence.SAMPLE_SCHEMA) in str(raised.value)


def test_a_snapshot_index_of_another_schema_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / evidence.SNAPSHOT_INDEX_FILE, {**WRONG, "calls": []})
    with pytest.raises(SnapshotError) as raised:
        snapshots.read_index(tmp_path)
    assert str(path) in str(raised.value)
    assert repr(evidence.SNAPSHOT_SCHEMA) in str(raised.value)
