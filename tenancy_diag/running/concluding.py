"""The verdict a run ends with on the terminal, and the ``--fail-on`` gate for automation.

Both read only the run's summary (``summary.json``): what the terminal says is what the bundle
says. Missing evidence is never a pass: a subsystem whose status is ``unknown`` (or ``error``)
trips either gate, since nobody can tell it is not failing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tenancy_diag import runbook
from tenancy_diag.runbook import Runbook

#: ``--fail-on`` threshold -> the statuses that trip it.
FAIL_ON: dict[str, tuple[str, ...]] = {
    "failing": ("failing", "unknown", "error"),
    "degraded": ("degraded", "failing", "unknown", "error"),
}
#: Worst first: the order a reader needs subsystems in.
STATUS_ORDER = ("failing", "error", "degraded", "unknown", "ok")
_SHOWN_TENANTS = 5


def worst_first(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Subsystem rows by status, worst first; the runbook's order within a status."""

    def rank(row: Mapping[str, Any]) -> int:
        status = str(row.get("status"))
        return STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)

    return sorted(rows, key=rank)


def verdict_lines(
    summary: Mapping[str, Any], index: Path, book: Runbook | None = None
) -> list[str]:
    """What the run concluded, for a person at a terminal: root cause, other candidates,
    failing subsystems, affected tenants, whom to page and where the evidence is."""
    book = book or runbook.default()
    lines = [f"Incident {summary['incident']}, run {summary['run_id']}"]
    cause = summary.get("root_cause")
    if cause:
        lines.append(f"  Root cause:   {_candidate(cause, book, detail=True)}")
    else:
        lines.append("  Root cause:   none found")
    others = [c for c in summary.get("candidates") or [] if c != cause]
    if others:
        lines.append("  Other causes: " + "; ".join(_candidate(c, book) for c in others))
    lines.append(f"  Subsystems:   {_statuses(summary.get('subsystems') or [])}")
    tenants = (summary.get("escalation_must_include") or {}).get("affected_tenants") or []
    shown = ", ".join(tenants[:_SHOWN_TENANTS])
    more = f" and {len(tenants) - _SHOWN_TENANTS} more" if len(tenants) > _SHOWN_TENANTS else ""
    lines.append(
        f"  Tenants:      {len(tenants)} affected" + (f" ({shown}{more})" if tenants else "")
    )
    lines.append(f"  Page:         {_page(summary.get('escalation'))}")
    if summary.get("errors"):
        lines.append(f"  Incomplete:   {', '.join(summary['errors'])} did not finish")
    lines.append(f"  Evidence:     {index}")
    return lines


def _candidate(cause: Mapping[str, Any], book: Runbook, detail: bool = False) -> str:
    pattern = str(cause.get("pattern"))
    title = book.patterns[pattern].title if pattern in book.patterns else pattern
    where = ", ".join(cause.get("regions") or []) or "region not named"
    text = f"{title} ({pattern}) in {cause.get('subsystem')}, {where}"
    if detail and cause.get("onset"):
        text += f", since {cause['onset']}"
    text += f", confidence {float(cause.get('confidence') or 0):.0%}"
    if detail and cause.get("explains"):
        text += f"; explains {', '.join(cause['explains'])}"
    return text


def _statuses(rows: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for row in worst_first(rows):
        severity = f" {row['severity']}" if row.get("severity") else ""
        parts.append(f"{row.get('subsystem')} {str(row.get('status')).upper()}{severity}")
    return ", ".join(parts) or "none ran"


def _page(escalation: Mapping[str, Any] | None) -> str:
    if not escalation:
        return "nobody (no severity assessed)"
    backup = f", backup {escalation['backup']}" if escalation.get("backup") else ""
    return (
        f"{escalation['primary']}{backup}, then {escalation['path']} "
        f"({escalation['severity']}: {escalation['definition']})"
    )


def fail_on_problem(summary: Mapping[str, Any], threshold: str | None) -> str | None:
    """The sentence that makes ``--fail-on threshold`` exit non-zero, or None."""
    if threshold is None:
        return None
    tripping = FAIL_ON[threshold]
    rows = [r for r in worst_first(summary.get("subsystems") or []) if r.get("status") in tripping]
    if not rows:
        return None
    found = ", ".join(f"{r.get('subsystem')} is {r.get('status')}" for r in rows)
    unknown = any(r.get("status") == "unknown" for r in rows)
    return f"--fail-on {threshold}: {found}" + (
        " (unknown counts: missing evidence may hide a failure)" if unknown else ""
    )
