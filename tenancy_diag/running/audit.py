"""The audit log, ``OUT/audit.jsonl``: one line per run, who ran what and how it ended.

The runbook asks that every intervention be logged with actor, time and command trace. Runs
of several people (or a service and a person) may share one OUT; :mod:`tenancy_diag.journaling`
keeps their lines whole.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from tenancy_diag.journaling import AUDIT_FILE, AUDIT_SCHEMA, append_jsonl
from tenancy_diag.redacting import MASK, default_redactor
from tenancy_diag.running.coercing import looks_secret
from tenancy_diag.times import iso

# AUDIT_FILE and AUDIT_SCHEMA are the journaling module's; named here too for the runner's callers.
__all__ = ["AUDIT_FILE", "AUDIT_SCHEMA", "AuditRecord", "append_audit", "redact_command"]


@dataclass(frozen=True)
class AuditRecord:
    actor: str
    action: str  # run, rerun
    command: Sequence[str]  # argv, secrets redacted
    incident: str | None
    run_id: str | None  # None when the run was refused before a bundle existed
    result: str  # ok, failed: <notebooks>, refused: <why>
    exit_code: int
    time: str = ""

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["command"] = list(self.command)
        data["time"] = self.time or iso(datetime.now(UTC))
        return {"schema": AUDIT_SCHEMA, **data}


def append_audit(out: Path, record: AuditRecord) -> Path:
    """Append ``record``, every field redacted, to ``out/audit.jsonl``; returns the log's path."""
    # A refusal quotes what was typed, and what was typed may be a credential.
    safe = default_redactor().redact_data(record.to_json())
    return append_jsonl(out / AUDIT_FILE, safe, "audit log", "check --out")


_ASSIGNMENT = re.compile(r"^(?P<prefix>-p|--param=)?(?P<name>[A-Za-z_]\w*)=.*$", re.DOTALL)


def redact_command(argv: Sequence[str]) -> list[str]:
    """``argv`` as it may be recorded: secret-looking ``name=value`` values and URL passwords
    masked, since a refused ``-p api_token=...`` must not reach the audit log either."""
    redactor = default_redactor()
    safe = []
    for arg in argv:
        match = _ASSIGNMENT.match(arg)
        masked = f"{match['prefix'] or ''}{match['name']}={MASK}" if match else arg
        safe.append(redactor.redact(masked if match and looks_secret(match["name"]) else arg))
    return safe
