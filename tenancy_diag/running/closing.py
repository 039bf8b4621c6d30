"""``tenancy-diag close``: the incident's closure event in ``OUT/audit.jsonl``.

The runbook's last verification item asks that the audit logs show a closure event; this is
how one is written, by a person (``tenancy-diag close``) or by the service when an incident's
alerts resolve. ``verification_after_recovery`` looks for it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tenancy_diag import settings
from tenancy_diag.analysis.calls import outcome_unknown, unanswered
from tenancy_diag.errors import ConfigError, ExitCode
from tenancy_diag.evidence import AUDIT_FILE, AUDIT_SCHEMA
from tenancy_diag.journaling import read_jsonl
from tenancy_diag.running.audit import AuditRecord, append_audit, redact_command
from tenancy_diag.running.naming import check_name

_MAX_REASON_CHARS = 500


def close_incident(
    out: Path,
    incident: str,
    reason: str,
    *,
    actor: str | None = None,
    command: Sequence[str] = (),
) -> AuditRecord:
    """Append a ``close`` record for ``incident`` to ``out/audit.jsonl``; returns it."""
    # The checklist analysis imports pandas; parsing a command line must not.
    from tenancy_diag.analysis.checklist import CLOSE_ACTION  # noqa: PLC0415

    check_name(incident, "incident id")
    reason = " ".join(reason.split())
    if not reason:
        raise ConfigError("the closure has no reason; say why with --reason TEXT")
    if len(reason) > _MAX_REASON_CHARS:
        raise ConfigError(
            f"the reason is {len(reason)} characters; keep it under {_MAX_REASON_CHARS}"
        )
    record = AuditRecord(
        actor=actor or settings.actor(),
        action=CLOSE_ACTION,
        command=list(command),
        incident=incident,
        run_id=None,
        result=f"closed: {reason}",
        exit_code=0,
    )
    append_audit(out, record)
    return record


def closure_records(out: Path, incident: str) -> list[dict[str, Any]]:
    """The ``close`` records for ``incident`` in ``out/audit.jsonl``, oldest first."""
    from tenancy_diag.analysis.checklist import closures  # noqa: PLC0415

    return [dict(r) for r in closures(read_jsonl(out / AUDIT_FILE, AUDIT_SCHEMA), incident)]


def unknown_outcomes(out: Path, incident: str) -> list[str]:
    """One sentence per remediation call of ``incident`` whose intent no result followed."""
    records = read_jsonl(out / AUDIT_FILE, AUDIT_SCHEMA)
    records = [r for r in records if r.get("incident") == incident]
    return [outcome_unknown(r) for r in unanswered(records)]


def add_close_command(subparsers: Any) -> None:
    """Add ``close`` to the CLI's subparsers."""
    close = subparsers.add_parser(
        "close", help="record the incident's closure event in OUT/audit.jsonl"
    )
    close.add_argument("--incident", required=True, help="incident id")
    close.add_argument("--out", type=Path, default=Path("outputs"), help="default: outputs/")
    close.add_argument("--reason", required=True, help="why the incident is closed")
    close.set_defaults(func=_cmd_close)


def _cmd_close(args: argparse.Namespace) -> int:
    record = close_incident(args.out, args.incident, args.reason, command=redact_command(sys.argv))
    # Closing does not resolve them: each may have changed a system nobody has looked at since.
    for sentence in unknown_outcomes(args.out, args.incident):
        print(f"tenancy-diag: warning: {sentence}", file=sys.stderr)
    print(f"{record.incident} {record.result} (by {record.actor}) -> {args.out / AUDIT_FILE}")
    return ExitCode.OK
