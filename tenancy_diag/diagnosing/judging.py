"""From a diagnosis's evidence to its findings: pure, so a verdict depends on nothing else.

A notebook's steps gather evidence; :func:`conclude` turns what they gathered, and the
:class:`Basis` they were judged against, into ``findings.json``. Missing evidence stays missing
all the way up: a no-data SLO row, a source that was needed and did not answer, or no region
to judge at all is listed in ``missing`` and named in the summary, and with nothing wrong seen
otherwise the status is ``unknown``, never ``ok``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tenancy_diag.analysis.findings import Findings, PatternMatch, SloRow
from tenancy_diag.analysis.verdicts import actions_for, escalation_for, severity_of, status_of
from tenancy_diag.runbook import Runbook
from tenancy_diag.subsystems import Subsystem


@dataclass(frozen=True)
class Basis:
    """What a verdict is judged against, besides the evidence: the run's settings."""

    subsystem: Subsystem
    incident: str
    end: datetime
    thresholds: Mapping[str, float]
    #: Regions judged (the scope's, else the fleet's).
    regions: tuple[str, ...]
    runbook: Runbook
    #: Source kind -> "ok" | "not configured" | "unavailable: ...", for each kind a step needed.
    sources: Mapping[str, str]
    window: Mapping[str, str]
    slo_window: str


def gaps(slo: Sequence[SloRow], sources: Mapping[str, str], regions: Sequence[str]) -> list[str]:
    """What could not be seen: sources that were needed and gave nothing, no-data SLO rows,
    and no region at all to judge (then there are no SLO rows to say no data)."""
    out = [f"{kind} {state}" for kind, state in sources.items() if state != "ok"]
    if not regions:
        out.append("regions: none given and the metrics named none, so no SLO was judged")
    out += [f"{row.name} in {row.region}: no data" for row in slo if row.passed is None]
    return list(dict.fromkeys(out))


def conclude(
    basis: Basis,
    patterns: Sequence[PatternMatch],
    slo: Sequence[SloRow],
    *,
    tenants: Sequence[str] = (),
    tenant_figures: Mapping[str, str] | None = None,
    missing: Sequence[str] = (),
    **extra: Any,
) -> Findings:
    """The findings of one subsystem from its pattern matches and SLO rows; ``tenant_figures``
    gives what each tenant suffered, when a step measured it."""
    lacking = list(dict.fromkeys([*gaps(slo, basis.sources, basis.regions), *missing]))
    status = status_of(slo, patterns, lacking)
    regions = sorted(
        {r for p in patterns for r in p.regions}
        | {row.region for row in slo if row.passed is False}
    )
    name = basis.subsystem.name
    severity = severity_of(basis.subsystem, status, regions, basis.regions)
    # Background noise names tenants too; only an unhealthy subsystem has affected ones.
    affected = list(dict.fromkeys(tenants)) if status in ("failing", "degraded") else []
    figures = tenant_figures or {}
    return Findings(
        subsystem=name,
        incident=basis.incident,
        status=status,
        severity=severity,
        summary=summarize(name, status, patterns, regions, basis.runbook, missing=lacking),
        patterns=list(patterns),
        regions=regions,
        tenants=affected,
        tenant_figures={t: figures[t] for t in affected if t in figures},
        slo=list(slo),
        actions=actions_for(patterns, basis.runbook),
        escalation=escalation_for(severity, basis.runbook),
        sources=dict(basis.sources),
        window=dict(basis.window),
        missing=lacking,
        **extra,
    )


def summarize(
    subsystem: str,
    status: str,
    patterns: Sequence[PatternMatch],
    regions: Sequence[str],
    book: Runbook,
    *,
    missing: Sequence[str] = (),
) -> str:
    """One sentence: what is wrong and where, and what could not be seen."""
    where = f" in {', '.join(regions)}" if regions else ""
    lacking = _lacking(missing)
    if patterns:
        names = ", ".join(
            book.patterns[p.id].title if p.id in book.patterns else p.id for p in patterns
        )
        return f"{subsystem}: {names}{where} ({status}).{lacking}"
    sentence = {
        "ok": f"{subsystem}: every SLO met; no failure pattern.",
        "degraded": f"{subsystem}: SLO breached{where}, no known failure pattern matches.",
        "unknown": f"{subsystem}: not enough evidence to judge.",
    }.get(status, f"{subsystem}: {status}{where}.")
    return sentence + lacking


def _lacking(missing: Sequence[str], shown: int = 4) -> str:
    if not missing:
        return ""
    more = f" and {len(missing) - shown} more" if len(missing) > shown else ""
    return " Missing: " + "; ".join(missing[:shown]) + more + "."
