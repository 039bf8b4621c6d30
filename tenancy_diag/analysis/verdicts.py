"""From SLO rows and pattern matches to status, severity, actions and escalation.

This is where the runbook's severity definitions and escalation matrix are applied; it is pure
so every rule has a unit test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tenancy_diag.analysis.findings import PatternMatch, SloRow, Status
from tenancy_diag.runbook import Runbook
from tenancy_diag.subsystems import Subsystem, registry

# Below this confidence a pattern is reported as a lead, not a diagnosis.
MIN_CONFIDENCE = 0.5


def status_of(
    slo: Sequence[SloRow], patterns: Sequence[PatternMatch], unavailable: Iterable[str] = ()
) -> Status:
    """failing: a pattern is diagnosed; degraded: an SLO fails; unknown: any evidence is missing
    (``unavailable`` names it, or an SLO row has no data); ok only when everything was seen."""
    if any(p.confidence >= MIN_CONFIDENCE for p in patterns):
        return "failing"
    if any(row.passed is False for row in slo):
        return "degraded"
    if list(unavailable) or any(row.passed is None for row in slo):
        return "unknown"
    return "ok"


def severity_of(
    subsystem: Subsystem | str,
    status: Status,
    affected_regions: Sequence[str],
    fleet_regions: Sequence[str],
    missing_signals: bool = False,
) -> str | None:
    """The runbook's severity levels, applied to what the diagnostics saw."""
    if status == "failing":
        outage = len(fleet_regions) > 1 and set(fleet_regions) <= set(affected_regions)
        if outage:
            return "sev1"  # every region of the control plane: a major outage
        # "Significant latency in reconcile or webhook delivery" is the runbook's sev2 example;
        # the descriptor says which subsystems' failures every client sees.
        described = registry.get(subsystem) if isinstance(subsystem, str) else subsystem
        return "sev2" if described.user_visible else "sev3"
    if status == "degraded":
        return "sev3"
    if missing_signals:
        return "sev4"  # a monitoring gap, no production impact seen
    return None


def actions_for(patterns: Sequence[PatternMatch], book: Runbook) -> list[str]:
    """The runbook's actions and remediation procedure for each diagnosed pattern, in order."""
    actions: list[str] = []
    for match in sorted(patterns, key=lambda p: -p.confidence):
        if match.confidence < MIN_CONFIDENCE or match.id not in book.patterns:
            continue
        text = book.patterns[match.id]
        actions.extend(f"{text.title}: {a}" for a in text.actions)
        procedure = book.remediations[text.remediation]
        actions.extend(f"{procedure.title} procedure: {s}" for s in procedure.steps)
    return list(dict.fromkeys(actions))


def escalation_for(severity: str | None, book: Runbook) -> dict[str, Any] | None:
    if severity is None:
        return None
    owners = book.escalation.for_severity(severity)
    return {
        "severity": severity,
        "definition": book.severities[severity],
        "primary": owners.primary,
        "backup": owners.backup,
        "path": owners.path,
        "must_include": list(book.escalation.must_include),
    }
