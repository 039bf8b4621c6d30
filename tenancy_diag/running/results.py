"""Reading the findings a notebook wrote, and writing them for a notebook that could not."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tenancy_diag.analysis.findings import STATUSES, Findings
from tenancy_diag.evidence import FINDINGS_SCHEMA, check_schema


def load_findings(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(document, None) when ``path`` holds valid findings, else (None, why not)."""
    if not path.exists():
        return None, f"it wrote no findings to {path.name}"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return None, f"its findings file {path.name} is not readable JSON ({e})"
    problem = check_schema(doc, FINDINGS_SCHEMA, path.name)
    if problem:
        return None, f"its findings file {problem}"
    if doc.get("status") not in STATUSES:
        return None, f"its findings file {path.name} has status {doc.get('status')!r}"
    return doc, None


def write_error_findings(
    path: Path, subsystem: str, incident: str, message: str, window: Mapping[str, str]
) -> dict[str, Any]:
    """Findings with status ``error`` and ``message``, so the summary still lists the notebook."""
    findings = Findings(
        subsystem=subsystem,
        incident=incident,
        status="error",
        summary=f"The {subsystem} diagnostic did not finish: {message}",
        window=dict(window),
        error=message,
    )
    path.write_text(findings.dumps() + "\n", encoding="utf-8")
    return findings.to_json()
