"""The dead-letter messages a scenario implies, per (region, kind), as the contract's JSON bodies.

Every queue holds a handful of old failures (real DLQs are never quite empty); the fault adds
a fresh, growing tail in the incident region. Counts are bounded so filling moto stays quick at
any fleet size. Some ``last_error`` strings leak a planted secret, as careless code would, so
tests can prove that nothing leaves a source unredacted.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tenancy_diag.sandbox.secrets import PLANTED, carrier
from tenancy_diag.sandbox.topology import Scenario, Tenant

KINDS = ("reconcile", "webhook")
#: Messages per queue at most, whatever the fleet size.
MAX_PER_QUEUE = 250
#: The source queues' maxReceiveCount: a message dead-letters after this many attempts.
MAX_RECEIVE_COUNT = 5
#: Every n-th message of a queue leaks a secret (cycling through the planted kinds).
SECRET_EVERY = 6
EVENT_TYPES = ("tenant.updated", "tenant.created", "policy.attached", "member.added")

ERRORS: dict[str, str] = {
    "policy_error": "policy service timeout after 2000ms",
    "throttled": "controller rate limiter: retry budget exhausted",
    "timeout": "reconcile deadline exceeded after 30s",
    "conflict": "resource version conflict on tenant object",
    "internal": "unexpected nil policy binding",
    "503": "upstream returned 503",
    "500": "upstream returned 500",
    "timeout_webhook": "no response within 10000ms",
    "connection_refused": "dial tcp: connection refused",
}

Messages = dict[tuple[str, str], list[dict[str, Any]]]


@dataclass(frozen=True)
class _Burst:
    """Failures of one kind from some tenants, spread over a time window."""

    kind: str
    tenants: Sequence[Tenant]
    codes: Sequence[tuple[str, float]]  # (error_code, weight)
    count: int
    since: datetime
    until: datetime
    growing: bool  # later minutes hold more failures, as a filling DLQ does
    consecutive: bool = False  # a storm fails every delivery, so sequences run without gaps


def dlq_messages(scenario: Scenario) -> Messages:
    """``{(region, kind): [body, ...]}`` for every region and kind, oldest failure first."""
    out: Messages = {}
    for region in scenario.spec.regions:
        for kind in KINDS:
            bursts = [_baseline(scenario, region, kind), *_fault(scenario, region, kind)]
            out[(region, kind)] = _render(scenario, region, kind, bursts)
    return out


def _baseline(scenario: Scenario, region: str, kind: str) -> _Burst:
    rng = scenario.rng("dlq-baseline", region, kind)
    local = scenario.tenants_by_region[region]
    codes = (
        [("conflict", 2.0), ("internal", 1.0)]
        if kind == "reconcile"
        else [("500", 2.0), ("timeout", 1.0)]
    )
    old_end = scenario.start + timedelta(seconds=scenario.spec.duration_s * 0.6)
    count = rng.randint(3, 6) if local else 0
    sample = rng.sample(local, k=min(len(local), count))
    return _Burst(kind, sample, codes, count, scenario.start, old_end, growing=False)


@dataclass(frozen=True)
class _FaultShape:
    """How a fault fills one kind of DLQ: messages per affected tenant, floor, error codes."""

    per_tenant: int
    floor: int
    codes: Sequence[tuple[str, float]]
    growing: bool = True
    consecutive: bool = False


# (pattern, kind) -> shape; a pattern missing here leaves that DLQ at its baseline.
_FAULTS: dict[tuple[str, str], _FaultShape] = {
    ("reconcile_backlog", "reconcile"): _FaultShape(
        30, 150, [("policy_error", 6.0), ("throttled", 3.0), ("timeout", 1.0)]
    ),
    ("webhook_storm", "webhook"): _FaultShape(
        40, 150, [("503", 5.0), ("timeout", 3.0), ("connection_refused", 2.0)], consecutive=True
    ),
    ("policy_timeout", "reconcile"): _FaultShape(8, 20, [("policy_error", 9.0), ("timeout", 1.0)]),
    ("rate_limit_saturation", "reconcile"): _FaultShape(0, 8, [("throttled", 1.0)], growing=False),
}


def _fault(scenario: Scenario, region: str, kind: str) -> list[_Burst]:
    truth = scenario.truth
    shape = _FAULTS.get((truth.pattern or "", kind))
    if shape is None or region != truth.region:
        return []
    wanted = set(truth.tenants)
    tenants = [t for t in scenario.tenants_by_region[region] if t.id in wanted]
    # Room is kept for the baseline, so a queue never exceeds MAX_PER_QUEUE.
    count = min(MAX_PER_QUEUE - 10, max(shape.floor, shape.per_tenant * len(tenants)))
    return [
        _Burst(
            kind,
            tenants,
            shape.codes,
            count,
            scenario.incident_start,
            scenario.end,
            shape.growing,
            shape.consecutive,
        )
    ]


def _render(
    scenario: Scenario, region: str, kind: str, bursts: list[_Burst]
) -> list[dict[str, Any]]:
    rng = scenario.rng("dlq", region, kind)
    failures: list[tuple[datetime, Tenant, str, bool]] = []
    for burst in bursts:
        failures.extend(_failures(rng, burst))
    failures.sort(key=lambda f: (f[0], f[1].id))
    # Sequences are per tenant and rise with time, so a requeue range reads naturally.
    next_sequence: dict[str, int] = {}
    bodies = []
    for index, failure in enumerate(failures):
        tenant, consecutive = failure[1], failure[3]
        sequence = next_sequence.get(tenant.id, 10_000 + zlib.crc32(tenant.id.encode()) % 90_000)
        next_sequence[tenant.id] = sequence + (1 if consecutive else rng.randint(1, 40))
        body = _body(failure, region, kind, sequence, rng.choice(EVENT_TYPES))
        if index % SECRET_EVERY == 0:
            kinds = list(PLANTED)
            body["last_error"] += "; " + carrier(kinds[index // SECRET_EVERY % len(kinds)])
        bodies.append(body)
    return bodies


def _failures(rng: random.Random, burst: _Burst) -> list[tuple[datetime, Tenant, str, bool]]:
    if not burst.tenants or burst.count <= 0:
        return []
    span = (burst.until - burst.since).total_seconds()
    weights = [t.weight for t in burst.tenants]
    codes, code_weights = zip(*burst.codes, strict=True)
    out = []
    for _ in range(burst.count):
        # sqrt of a uniform draw puts more failures near the end: the queue is filling up.
        share = rng.random() ** 0.5 if burst.growing else rng.random()
        at = burst.since + timedelta(seconds=int(share * span))
        tenant = rng.choices(burst.tenants, weights)[0]
        code = rng.choices(codes, code_weights)[0]
        out.append((at, tenant, code, burst.consecutive))
    return out


def _body(
    failure: tuple[datetime, Tenant, str, bool],
    region: str,
    kind: str,
    sequence: int,
    event_type: str,
) -> dict[str, Any]:
    failed_at, tenant, code, _ = failure
    body: dict[str, Any] = {
        "tenant_id": tenant.id,
        "region": region,
        "kind": kind,
        "event_type": event_type,
        "sequence": sequence,
    }
    if kind == "webhook":
        body["endpoint"] = tenant.endpoint
    error_key = "timeout_webhook" if kind == "webhook" and code == "timeout" else code
    body.update(
        error_code=code,
        attempts=MAX_RECEIVE_COUNT,
        first_failed_at=failed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        last_error=ERRORS[error_key],
    )
    return body
