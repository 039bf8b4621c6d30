"""Reading an incident's evidence from disk: its bundles, checked against their manifests, and
its lines of the audit log.

The files' names and schemas are :mod:`tenancy_diag.evidence`'s, shared with the runner that
writes them; this module does not import the runner (the layers point one way) and re-does only
the sha256 check, since a postmortem must not quote evidence that changed after its run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenancy_diag.evidence import (
    AUDIT_SCHEMA,
    FINDINGS_DIR,
    FINDINGS_SCHEMA,
    MANIFEST_FILE,
    MANIFEST_SCHEMA,
    MOVES_DIR,
    SUMMARY_FILE,
    SUMMARY_SCHEMA,
    check_schema,
)

#: The notebook whose bundles are this report's own kind, never its evidence.
POSTMORTEM_NOTEBOOK = "postmortem"


@dataclass(frozen=True)
class GatheredBundle:
    """One bundle of the incident: trusted only when ``problems`` is empty."""

    path: Path
    run_id: str
    problems: tuple[str, ...]
    manifest: Mapping[str, Any] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)
    #: notebook name -> its findings document; empty for an untrusted bundle.
    findings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def trusted(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class AuditLog:
    """The incident's audit lines in file order, and the lines that could not be read."""

    records: tuple[Mapping[str, Any], ...]
    problems: tuple[str, ...] = ()


def gather_bundles(
    evidence_dir: Path, incident: str, skip: Path | None = None
) -> list[GatheredBundle]:
    """Every bundle under ``evidence_dir/incident`` but ``skip`` and earlier postmortems.

    The incident's move journals (``MOVES_DIR``) live beside its bundles and are not one. A
    bundle that fails verification is returned with its problems and none of its contents, so
    the report can say it was left out rather than silently show less.
    """
    folder = evidence_dir / incident
    if not folder.is_dir():
        return []
    own = skip.resolve() if skip else None
    found = []
    for root in sorted(p for p in folder.iterdir() if p.is_dir() and p.name != MOVES_DIR):
        if own is not None and root.resolve() == own:
            continue
        bundle = read_bundle(root)
        if _is_postmortem(bundle.manifest):
            continue
        found.append(bundle)
    return found


def read_bundle(root: Path) -> GatheredBundle:
    """The bundle at ``root``, verified; its summary and findings only when it verifies."""
    manifest, problem = _read_json(root / MANIFEST_FILE, MANIFEST_SCHEMA)
    if manifest is None:
        why = problem or "no manifest.json (the run was interrupted or is still running)"
        return GatheredBundle(root, root.name, (why,))
    run_id = str(manifest.get("run_id") or root.name)
    problems = verify(root, manifest)
    if problems:
        return GatheredBundle(root, run_id, tuple(problems), manifest)
    summary, problem = _read_json(root / SUMMARY_FILE, SUMMARY_SCHEMA)
    findings = {}
    for path in sorted((root / FINDINGS_DIR).glob("*.json")):
        doc, _ = _read_json(path, FINDINGS_SCHEMA)
        if doc is not None:
            findings[path.stem] = doc
    return GatheredBundle(root, run_id, (), manifest, summary or {}, findings)


def verify(root: Path, manifest: Mapping[str, Any]) -> list[str]:
    """Every difference between the files under ``root`` and the manifest, one sentence each."""
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        return [f"{root / MANIFEST_FILE} lists no files; the bundle is damaged"]
    actual = {
        path.relative_to(root).as_posix(): path
        for path in root.rglob("*")
        if path.is_file() and path.relative_to(root).as_posix() != MANIFEST_FILE
    }
    problems = []
    for name, expected in sorted(listed.items()):
        path = actual.get(name)
        if path is None:
            problems.append(f"{name} is listed in the manifest but missing")
        elif not isinstance(expected, dict) or expected != _digest(path):
            problems.append(f"{name} changed after the run (its sha256 or size differs)")
    problems.extend(
        f"{name} was added after the run (not in the manifest)"
        for name in sorted(set(actual) - set(listed))
    )
    return problems


def _digest(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return {"sha256": digest.hexdigest(), "size": path.stat().st_size}


def _is_postmortem(manifest: Mapping[str, Any]) -> bool:
    notebooks = manifest.get("notebooks")
    return isinstance(notebooks, dict) and POSTMORTEM_NOTEBOOK in notebooks


def _read_json(path: Path, schema: str) -> tuple[dict[str, Any] | None, str | None]:
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return None, f"{path.name} is unreadable ({e}); the bundle is damaged"
    problem = check_schema(data, schema, path.name)
    return (None, problem) if problem else (data, None)


def read_audit(path: Path, incident: str) -> AuditLog:
    """The audit lines of ``incident``; a missing log is empty, a bad line is a problem."""
    if not path.is_file():
        return AuditLog(())
    records: list[Mapping[str, Any]] = []
    problems = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        return AuditLog((), (f"cannot read the audit log {path} ({e.strerror})",))
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            problems.append(f"{path.name} line {number} is not JSON; skipped")
            continue
        if not isinstance(record, dict) or record.get("schema") != AUDIT_SCHEMA:
            problems.append(f"{path.name} line {number} is not {AUDIT_SCHEMA}; skipped")
            continue
        if record.get("incident") == incident:
            records.append(record)
    return AuditLog(tuple(records), tuple(problems))
