"""Every remediation call, dry or real, in the shared audit log and in the run's bundle.

Lines share the audit log's schema (``evidence.AUDIT_SCHEMA``) with the runner's own, with
``action`` ``remediate`` and the call, its rollback (or why there is none) and whether it was a
dry run, so a postmortem's timeline and a reviewer read one log.

A real call is written ahead: an ``intent`` line, fsync'd in both logs, before the call is
made, and a ``result`` line with the same ``call_id`` after it (see
:mod:`tenancy_diag.analysis.calls`). A run killed during a call therefore still leaves the call
in the log, as an outcome nobody knows, never as nothing. Every field of every line is
redacted: a reason, a body or a server's answer may quote a credential.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenancy_diag.analysis.calls import INTENT, REMEDIATE_ACTION, RESULT
from tenancy_diag.evidence import AUDIT_SCHEMA
from tenancy_diag.journaling import append_jsonl
from tenancy_diag.redacting import default_redactor
from tenancy_diag.remediating.plans import Call
from tenancy_diag.times import iso

#: The bundle's own copy, beside the executed notebook.
BUNDLE_LOG = "actions.jsonl"
#: Why a line that made no call has no rollback.
NOTHING_CALLED = "no call was made"


@dataclass(frozen=True)
class Line:
    """One remediation line before it is stamped and written: the call and how to undo it."""

    step: str
    call: Call | None
    result: str
    rollback: Call | None = None
    #: Why ``rollback`` is None; never left blank in what is written.
    no_rollback: str = ""
    dry_run: bool = True
    ok: bool = True
    #: True when the call undoes an earlier remediation (e.g. the rate-limit rollback).
    reverts: bool = False


@dataclass(frozen=True)
class AuditTrail:
    actor: str
    incident: str
    procedure: str
    audit_path: Path | None  # OUT/audit.jsonl; None: not run by the runner
    bundle_dir: Path | None
    run_id: str | None = None

    def intend(self, line: Line) -> str:
        """Write, fsync'd in both logs, that ``line.call`` is about to be made; its call id.

        Raises (a ConfigError) when either log cannot be written: a call that cannot be
        audited first is not made.
        """
        call_id = uuid.uuid4().hex
        self._write(self._entry(line, phase=INTENT, call_id=call_id, exit_code=None))
        return call_id

    def answer(self, line: Line, call_id: str) -> dict[str, Any]:
        """Write how the call announced under ``call_id`` ended."""
        entry = self._entry(line, phase=RESULT, call_id=call_id, exit_code=0 if line.ok else 1)
        return self._write(entry)

    def record(self, line: Line) -> dict[str, Any]:
        """Write a line that stands alone: a dry run's call, a refusal, a note."""
        return self._write(
            self._entry(line, phase=None, call_id=None, exit_code=0 if line.ok else 1)
        )

    def _entry(
        self, line: Line, *, phase: str | None, call_id: str | None, exit_code: int | None
    ) -> dict[str, Any]:
        no_rollback = None
        if line.rollback is None:
            no_rollback = line.no_rollback.strip() or (
                NOTHING_CALLED if line.call is None else "none given"
            )
        return {
            "schema": AUDIT_SCHEMA,
            "actor": self.actor,
            "action": REMEDIATE_ACTION,
            "command": line.call.command() if line.call else [],
            "incident": self.incident,
            "run_id": self.run_id,
            "result": "intent: about to call" if phase == INTENT else line.result,
            "exit_code": exit_code,
            "time": iso(datetime.now(UTC)),
            "procedure": self.procedure,
            "step": line.step,
            "call": str(line.call) if line.call else None,
            "rollback": line.rollback.command() if line.rollback else None,
            "no_rollback": no_rollback,
            "dry_run": line.dry_run,
            "reverts": line.reverts,
            "phase": phase,
            "call_id": call_id,
        }

    def _write(self, entry: dict[str, Any]) -> dict[str, Any]:
        # Better be safe: a reason, a request body or a server's answer can quote a credential,
        # and these lines are copied into every bundle and postmortem that reads them.
        safe: dict[str, Any] = default_redactor().redact_data(entry)
        for path in self._paths():
            append_jsonl(path, safe, "audit log")
        return safe

    def _paths(self) -> list[Path]:
        paths = [self.audit_path] if self.audit_path else []
        if self.bundle_dir:
            paths.append(self.bundle_dir / BUNDLE_LOG)
        return paths
