"""The admin API's state: jobs as overridden, the audit trail, rate limits, cache invalidations
and routing, all behind one lock.

The mutating calls only change this in-memory state and append to the audit trail, which is
what tests and remediation notebooks check: who did what, when, with which arguments.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from tenancy_diag.sandbox.admin_api.errors import ApiError
from tenancy_diag.sandbox.admin_api.jobs import iso, stuck_migrations, tenant_jobs
from tenancy_diag.sandbox.topology import Scenario

RETRYABLE = ("failed", "running")  # running: the admin override for a stuck step
PAUSABLE = ("pending", "running")
CHECKSUM_TABLES = ("tenants", "memberships", "policies")


@dataclass
class AdminState:
    """Jobs (built on first read per tenant) and the admin overrides, behind one lock."""

    scenario: Scenario
    audit: list[dict[str, Any]] = field(default_factory=list)
    rate_limits: dict[str, dict[str, Any]] = field(default_factory=dict)
    invalidations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    routing: dict[str, dict[str, Any]] = field(default_factory=dict)
    _jobs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _tenants: dict[str, str] = field(default_factory=dict)  # tenant id -> region
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._tenants = {t.id: t.region for t in self.scenario.tenants}

    def region_of(self, tenant_id: str) -> str:
        region = self._tenants.get(tenant_id)
        if region is None:
            raise ApiError(
                HTTPStatus.NOT_FOUND, "tenant_not_found", f"tenant {tenant_id} does not exist"
            )
        return region

    def jobs(self, tenant_id: str) -> list[dict[str, Any]]:
        self.region_of(tenant_id)
        with self.lock:
            if tenant_id not in self._jobs:
                self._jobs[tenant_id] = tenant_jobs(self.scenario, tenant_id)
            return [dict(j) for j in self._jobs[tenant_id]]

    def record(self, actor: str, action: str, target: str, details: dict[str, Any]) -> None:
        with self.lock:
            self.audit.append(
                {
                    "at": iso(datetime.now(UTC)),
                    "actor": actor,
                    "action": action,
                    "target": target,
                    "details": details,
                }
            )

    def _job(self, tenant_id: str, job_id: str) -> dict[str, Any]:
        """The stored job, for a caller holding the lock (after :meth:`jobs` built the list)."""
        job = next((j for j in self._jobs[tenant_id] if j["job_id"] == job_id), None)
        if job is None:
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                "job_not_found",
                f"job {job_id} does not exist for tenant {tenant_id}",
            )
        return job

    def retry(self, tenant_id: str, job_id: str) -> dict[str, Any]:
        self.jobs(tenant_id)  # 404 for an unknown tenant, and builds the list
        with self.lock:
            job = self._job(tenant_id, job_id)
            if job["status"] not in RETRYABLE:
                raise ApiError(
                    HTTPStatus.CONFLICT,
                    "not_retryable",
                    f"job {job_id} is {job['status']}; only failed or running jobs can be retried",
                )
            job.update(
                status="pending",
                error=None,
                attempts=job["attempts"] + 1,
                updated_at=iso(datetime.now(UTC)),
            )
            return dict(job)

    def move(self, tenant_id: str, job_id: str, verb: str) -> tuple[str, dict[str, Any]]:
        """Pause or resume a job; the status it had before, and the job as it is now."""
        allowed, to, code = (
            (PAUSABLE, "paused", "not_pausable")
            if verb == "pause"
            else (("paused",), "running", "not_resumable")
        )
        self.jobs(tenant_id)
        with self.lock:
            job = self._job(tenant_id, job_id)
            if job["status"] not in allowed:
                raise ApiError(
                    HTTPStatus.CONFLICT,
                    code,
                    f"job {job_id} is {job['status']}; only {' or '.join(allowed)} jobs "
                    f"can be {verb}d",
                )
            previous = job["status"]
            job.update(status=to, updated_at=iso(datetime.now(UTC)))
            return previous, dict(job)

    def routing_of(self, tenant_id: str) -> dict[str, Any]:
        region = self.region_of(tenant_id)
        stuck = bool(stuck_migrations(self.scenario, tenant_id))
        source, target = f"db-{region}-a", f"db-{region}-b"
        with self.lock:
            routing = self.routing.setdefault(
                tenant_id,
                {
                    "tenant_id": tenant_id,
                    "endpoint": target if stuck else source,
                    "endpoints": [source, target] if stuck else [source],
                    "switched_at": None,
                },
            )
            return {**routing, "endpoints": list(routing["endpoints"])}

    def switch(self, tenant_id: str, endpoint: object) -> dict[str, Any]:
        known = self.routing_of(tenant_id)["endpoints"]
        if endpoint not in known:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "invalid_body",
                f"endpoint {endpoint!r} is not one of tenant {tenant_id}'s endpoints: "
                f"{', '.join(known)}",
            )
        with self.lock:
            routing = self.routing[tenant_id]
            previous = routing["endpoint"]
            routing.update(endpoint=endpoint, switched_at=iso(datetime.now(UTC)))
            return {**routing, "endpoints": list(known), "previous_endpoint": previous}


def tenant_checksums(
    scenario: Scenario, tenant_id: str, region: str, endpoint: str
) -> dict[str, Any]:
    """Per-table checksums of the tenant's data at ``endpoint``, a pure function of the scenario.

    A stuck migration's target (``db-<region>-b``) lags the source on one table: the copy that
    ``verify_checksums`` is waiting for.
    """
    rng = scenario.rng("checksums", tenant_id)
    rows = {"tenants": 1, "memberships": rng.randint(5, 5000), "policies": rng.randint(3, 60)}
    lagging = rng.choice(CHECKSUM_TABLES[1:])
    if endpoint == f"db-{region}-b":
        rows[lagging] -= rng.randint(1, rows[lagging] - 1)
    tables = {
        table: {
            "rows": count,
            "sha256": hashlib.sha256(
                f"{scenario.spec.seed}/{tenant_id}/{table}/{count}".encode()
            ).hexdigest(),
        }
        for table, count in rows.items()
    }
    return {"tenant_id": tenant_id, "endpoint": endpoint, "tables": tables}
