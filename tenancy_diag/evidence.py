"""Every file tenancy-diag writes for others: its schema id and its name, defined here only.

A run's bundle, ``OUT/<incident>/<run_id>/``::

    findings/<name>.json      FINDINGS_SCHEMA, one per notebook
    snapshots/<name>/         index.json (SNAPSHOT_SCHEMA) and one SNAPSHOT_CALL_SCHEMA per call
    summary.json              SUMMARY_SCHEMA
    index.html                the incident page
    manifest.json             MANIFEST_SCHEMA, with the sha256 of every other file

Beside the bundles, ``OUT/audit.jsonl`` holds one AUDIT_SCHEMA line per run, remediation call
(an ``intent`` line before it, a ``result`` line after) and closure, and ``OUT/<incident>/moves/``
the incident's move journals; a remediation's plan and execution, and a DLQ move's plan, report
and journal, carry theirs. The writer, the reader that checks a run and the one that quotes it in a
postmortem sit in different layers; they meet here, at the bottom, so the schema a file is
written with and the one it is read against cannot drift apart. Bump a version here when a
file's meaning changes, never a copy of it elsewhere.
"""

from __future__ import annotations

from pathlib import Path

# --- the run's bundle ---------------------------------------------------------------------------
FINDINGS_SCHEMA = "tenancy-diag/findings/v1"
SUMMARY_SCHEMA = "tenancy-diag/summary/v1"
MANIFEST_SCHEMA = "tenancy-diag/manifest/v1"
#: A recording's ``index.json``, sealing its call files.
SNAPSHOT_SCHEMA = "tenancy-diag/snapshot/v1"
#: One recorded source call (request and response, or error).
SNAPSHOT_CALL_SCHEMA = "tenancy-diag/snapshot-call/v1"

FINDINGS_DIR = "findings"
SUMMARY_FILE = "summary.json"
INDEX_PAGE = "index.html"
MANIFEST_FILE = "manifest.json"
SNAPSHOT_INDEX_FILE = "index.json"

# --- beside the bundles -------------------------------------------------------------------------
#: Every run, remediation call and closure, shared by all runs under one ``OUT``.
AUDIT_SCHEMA = "tenancy-diag/audit/v1"
AUDIT_FILE = "audit.jsonl"
#: The recorded sample incident shipped in ``tenancy_diag/data/sample``.
SAMPLE_SCHEMA = "tenancy-diag/sample/v1"
SAMPLE_FILE = "sample.json"

# --- what remediations write ----------------------------------------------------------------------
REMEDIATION_PLAN_SCHEMA = "tenancy-diag/remediation-plan/v1"
#: What a plan's execution did, step by step (or why it was refused).
REMEDIATION_SCHEMA = "tenancy-diag/remediation/v1"
MOVE_PLAN_SCHEMA = "tenancy-diag/move-plan/v1"
MOVE_REPORT_SCHEMA = "tenancy-diag/move-report/v1"
#: One line per step of a DLQ move, so a rerun after any failure neither loses nor repeats.
MOVE_JOURNAL_SCHEMA = "tenancy-diag/move-journal/v1"
#: ``OUT/<incident>/moves/``: the incident's move journals, beside its bundles (not one of
#: them), so a later run finds and finishes an interrupted move.
MOVES_DIR = "moves"


def check_schema(doc: object, expected: str, path: Path | str) -> str | None:
    """Why ``doc``, read from ``path``, is not an ``expected`` document; None when it is.

    A sentence, not an exception: some readers refuse the file, others list it as a problem and
    go on (a postmortem leaves out a damaged bundle rather than stop), so each caller decides.
    """
    if not isinstance(doc, dict):
        return f"{path} is not a JSON object, expected a {expected!r} document"
    found = doc.get("schema")
    if found != expected:
        return f"{path} has schema {found!r}, expected {expected!r}"
    return None
