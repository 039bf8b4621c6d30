"""Tenants' lifecycle jobs, a pure function of the scenario.

Being derived rather than stored, they agree with the metrics and logs: a migration hang shows
the same tenants stuck in ``verify_checksums`` everywhere.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from tenancy_diag.sandbox.topology import Scenario

_RUNNING_STEPS = {
    "provision": ("create_namespace", "apply_policies"),
    "suspend": ("drain_sessions", "revoke_tokens"),
}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _job_id(*parts: object) -> str:
    return "job-" + hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8]


def _job(
    job_id: str,
    job_type: str,
    status: str,
    step: str,
    *,
    started: datetime,
    updated: datetime,
    attempts: int = 1,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "job_type": job_type,
        "status": status,
        "step": step,
        "started_at": iso(started),
        "updated_at": iso(updated),
        "attempts": attempts,
        "error": error,
    }


def tenant_jobs(scenario: Scenario, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's jobs as the scenario implies them, newest first."""
    rng = scenario.rng("jobs", tenant_id)
    end = scenario.end
    provisioned = scenario.start - timedelta(days=rng.randint(10, 400))
    jobs = [
        _job(
            _job_id(tenant_id, "provision"),
            "provision",
            "succeeded",
            "done",
            started=provisioned,
            updated=provisioned + timedelta(minutes=rng.randint(2, 9)),
        )
    ]
    for n in range(rng.randint(1, 3)):
        started = provisioned + timedelta(days=rng.randint(1, 9), hours=n * 24)
        kind = rng.choice(("provision", "migrate", "suspend"))
        jobs.append(
            _job(
                _job_id(tenant_id, kind, n),
                kind,
                "succeeded",
                "done",
                started=started,
                updated=started + timedelta(minutes=rng.randint(1, 30)),
            )
        )
    draw = rng.random()
    if draw < 0.05:
        kind = rng.choice(tuple(_RUNNING_STEPS))
        started = end - timedelta(minutes=rng.randint(1, 10))
        jobs.append(
            _job(
                _job_id(tenant_id, kind, "now"),
                kind,
                "running",
                rng.choice(_RUNNING_STEPS[kind]),
                started=started,
                updated=end - timedelta(seconds=rng.randint(0, 60)),
            )
        )
    elif draw < 0.08:
        started = end - timedelta(hours=rng.randint(2, 20))
        jobs.append(
            _job(
                _job_id(tenant_id, "provision", "failed"),
                "provision",
                "failed",
                "apply_policies",
                started=started,
                updated=started + timedelta(minutes=4),
                attempts=3,
                error="policy service returned 503 after 3 attempts",
            )
        )
    jobs.extend(stuck_migrations(scenario, tenant_id))
    return sorted(jobs, key=lambda j: j["started_at"], reverse=True)


def stuck_migrations(scenario: Scenario, tenant_id: str) -> list[dict[str, Any]]:
    truth = scenario.truth
    if truth.pattern != "migration_hang" or tenant_id not in truth.tenants:
        return []
    job_id = truth.job_ids[truth.tenants.index(tenant_id)]
    stuck_since = scenario.incident_start
    started = stuck_since - timedelta(minutes=scenario.rng("migrate", tenant_id).randint(15, 60))
    return [
        _job(job_id, "migrate", "running", "verify_checksums", started=started, updated=stuck_since)
    ]
