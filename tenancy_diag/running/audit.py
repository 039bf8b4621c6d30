"""The audit log, ``OUT/audit.jsonl``: one line per run, who ran what and how it ended.

The runbook asks that every intervention be logged with actor, time and command trace. Runs
of several people (or a service and a person) may share one OUT, so each line is written under
an exclusive ``flock``: lines never interleave, whatever their length.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from tenancy_diag.errors import ConfigError
from tenancy_diag.redacting import MASK, default_redactor
from tenancy_diag.running.coercing import looks_secret
from tenancy_diag.times import iso

AUDIT_SCHEMA = "tenancy-diag/audit/v1"
AUDIT_FILE = "audit.jsonl"


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
    """Append ``record`` to ``out/audit.jsonl``; returns the log's path."""
    path = out / AUDIT_FILE
    line = json.dumps(record.to_json(), ensure_ascii=False) + "\n"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    except OSError as e:
        raise ConfigError(f"cannot append to audit log {path} ({e.strerror}); check --out") from e
    return path


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
