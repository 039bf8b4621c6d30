"""What a diagnostic concludes, as data: SLO rows, pattern matches, and the findings document.

``findings.json`` (schema ``evidence.FINDINGS_SCHEMA``) is the contract between a notebook and
everything downstream: the incident summary, the service's attachments, the postmortem.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from tenancy_diag.evidence import FINDINGS_SCHEMA

Status = Literal["ok", "degraded", "failing", "unknown", "error"]
STATUSES: tuple[Status, ...] = ("ok", "degraded", "failing", "unknown", "error")
SEVERITIES = ("sev1", "sev2", "sev3", "sev4")


@dataclass(frozen=True)
class SloRow:
    """One SLO check: ``value <op> threshold`` per region; ``passed`` None when there is no data."""

    name: str
    region: str
    value: float | None
    threshold: float
    op: Literal["<", "<=", ">", ">="]
    unit: str = ""

    @property
    def passed(self) -> bool | None:
        if self.value is None or math.isnan(self.value):
            return None
        return {
            "<": self.value < self.threshold,
            "<=": self.value <= self.threshold,
            ">": self.value > self.threshold,
            ">=": self.value >= self.threshold,
        }[self.op]

    def to_json(self) -> dict[str, Any]:
        value = None if self.value is None or math.isnan(self.value) else round(self.value, 6)
        return {
            "name": self.name,
            "region": self.region,
            "value": value,
            "threshold": self.threshold,
            "op": self.op,
            "unit": self.unit,
            "pass": self.passed,
        }


@dataclass(frozen=True)
class PatternMatch:
    """A failure pattern from the contract, with how sure we are and why."""

    id: str
    confidence: float  # 0..1
    evidence: tuple[str, ...]
    onset: datetime | None = None
    regions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "confidence": round(self.confidence, 3),
            "evidence": list(self.evidence),
            "onset": _iso(self.onset) if self.onset else None,
            "regions": list(self.regions),
        }


@dataclass
class Findings:
    subsystem: str
    incident: str
    status: Status
    severity: str | None = None
    summary: str = ""
    patterns: list[PatternMatch] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    tenants: list[str] = field(default_factory=list)
    #: Tenant -> what it suffered, with units ("0.0072 reconcile failures/s in us-east-1"), for
    #: the tenants above whose figure a step measured.
    tenant_figures: dict[str, str] = field(default_factory=dict)
    endpoints: list[str] = field(default_factory=list)
    client_ids: list[str] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    slo: list[SloRow] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    escalation: dict[str, Any] | None = None
    sources: dict[str, str] = field(default_factory=dict)
    window: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    #: Evidence that could not be seen (a source, a no-data SLO row); never read as health.
    missing: list[str] = field(default_factory=list)
    #: What a notebook that is not a subsystem diagnosis adds (a checklist, the calls a
    #: remediation made); JSON-able.
    details: dict[str, Any] = field(default_factory=dict)
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["patterns"] = [p.to_json() for p in self.patterns]
        data["slo"] = [row.to_json() for row in self.slo]
        data["generated_at"] = _iso(self.generated_at)
        return {"schema": FINDINGS_SCHEMA, **data}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=False, default=str)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
