"""Every remediation call, dry or real, in the shared audit log and in the run's bundle.

Lines share the audit log's schema (``evidence.AUDIT_SCHEMA``) with the runner's own, with
``action`` ``remediate`` and the call, its rollback and whether it was a dry run, so a
postmortem's timeline and a reviewer read one log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenancy_diag.evidence import AUDIT_SCHEMA
from tenancy_diag.journaling import append_jsonl
from tenancy_diag.redacting import default_redactor
from tenancy_diag.remediating.plans import Call
from tenancy_diag.times import iso

#: The bundle's own copy, beside the executed notebook.
BUNDLE_LOG = "actions.jsonl"


@dataclass(frozen=True)
class AuditTrail:
    actor: str
    incident: str
    procedure: str
    audit_path: Path | None  # OUT/audit.jsonl; None: not run by the runner
    bundle_dir: Path | None
    run_id: str | None = None

    def record(
        self,
        step: str,
        call: Call | None,
        result: str,
        *,
        rollback: Call | None = None,
        dry_run: bool,
        ok: bool = True,
        reverts: bool = False,
    ) -> dict[str, Any]:
        redact = default_redactor().redact
        entry: dict[str, Any] = {
            "schema": AUDIT_SCHEMA,
            "actor": self.actor,
            "action": "remediate",
            "command": [redact(part) for part in call.command()] if call else [],
            "incident": self.incident,
            "run_id": self.run_id,
            "result": redact(result),
            "exit_code": 0 if ok else 1,
            "time": iso(datetime.now(UTC)),
            "procedure": self.procedure,
            "step": step,
            "call": str(call) if call else None,
            "rollback": rollback.command() if rollback else None,
            "dry_run": dry_run,
            # True when the call undoes an earlier remediation (e.g. the rate-limit rollback).
            "reverts": reverts,
        }
        for path in self._paths():
            append_jsonl(path, entry, "audit log")
        return entry

    def _paths(self) -> list[Path]:
        paths = [self.audit_path] if self.audit_path else []
        if self.bundle_dir:
            paths.append(self.bundle_dir / BUNDLE_LOG)
        return paths
