"""Migration rollback: pause the tenant's migration jobs, switch its traffic back to the
previous endpoint, and prove by checksum that the endpoint now serving holds what it held
before the switch; the re-run is left for a controlled schedule."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from tenancy_diag.errors import RemediationFailed
from tenancy_diag.remediating.connecting import Session
from tenancy_diag.remediating.executing import Execution
from tenancy_diag.remediating.plans import Check, Plan, Step

PROCEDURE = "migration_rollback"
ACTIVE = ("pending", "running")


def plan(session: Session, *, tenant: str, job_id: str = "", endpoint: str = "") -> Plan:
    book = session.runbook.remediations[PROCEDURE]
    jobs = session.send(session.admin_call("jobs", tenant_id=tenant))
    migrations = [
        j
        for j in jobs
        if j.get("job_type") == "migrate"
        and j.get("status") in ACTIVE
        and (not job_id or j.get("job_id") == job_id)
    ]
    routing = session.send(session.admin_call("routing", tenant_id=tenant))
    serving = str(routing.get("endpoint") or "")
    others = [e for e in routing.get("endpoints", []) if e != serving]
    target = endpoint or (others[0] if len(others) == 1 else "")
    before = _checksums(session, tenant, target) if target else {}
    current = _checksums(session, tenant, serving) if serving else {}
    scope = {"tenant": tenant, "from_endpoint": serving, "to_endpoint": target or None}
    result = Plan(PROCEDURE, book.title, session.incident, scope)
    result.preconditions = [
        Check(
            "an ongoing migration job",
            bool(migrations),
            ", ".join(f"{j['job_id']} ({j['status']}, step {j.get('step')})" for j in migrations)
            or f"no pending or running migrate job for {tenant}"
            + (f" with id {job_id}" if job_id else ""),
        ),
        Check(
            "a previous endpoint to switch to",
            bool(target) and target in routing.get("endpoints", []) and target != serving,
            f"serving {serving or '?'}; known {', '.join(routing.get('endpoints', [])) or 'none'}"
            + (f"; asked for {endpoint}" if endpoint else ""),
        ),
        Check(
            "the previous endpoint answers with its checksums",
            bool(before),
            f"{len(before)} tables on {target or '?'}",
        ),
    ]
    for job in migrations:
        job_ids = {"tenant_id": tenant, "job_id": str(job["job_id"])}
        pause = session.admin_call("pause_job", None, **job_ids)
        result.steps.append(
            Step(
                f"{book.steps[0]} ({job['job_id']})",
                pause,
                partial(session.send, pause),
                rollback=session.admin_call("resume_job", None, **job_ids),
            )
        )
    if target:
        switch = session.admin_call("switch_routing", {"endpoint": target}, tenant_id=tenant)
        back = session.admin_call("switch_routing", {"endpoint": serving}, tenant_id=tenant)
        result.steps.append(
            Step(book.steps[1], switch, partial(session.send, switch), rollback=back)
        )
        verify = session.admin_call("checksums", tenant_id=tenant, endpoint=target)
        result.steps.append(
            Step(
                book.steps[2],
                verify,
                partial(_verify, session, tenant, target, before),
                no_rollback="a read",
            )
        )
    result.notes = [_difference(current, before, serving, target)] if before and current else []
    result.followups = [
        f"{book.steps[3]} When replication is healthy, in a change window: "
        + "; ".join(
            f"POST /tenants/{tenant}/jobs/{j['job_id']}:resume (or :retry)" for j in migrations
        )
    ]
    return result


def post_checks(session: Session, plan: Plan, run: Execution) -> list[Check]:
    tenant = str(plan.scope["tenant"])
    routing = session.send(session.admin_call("routing", tenant_id=tenant))
    want = plan.scope.get("to_endpoint")
    return [
        Check(
            "traffic on the previous endpoint",
            routing.get("endpoint") == want,
            f"serving {routing.get('endpoint')}",
        )
    ]


def _checksums(session: Session, tenant: str, endpoint: str) -> dict[str, Any]:
    answer = session.send(session.admin_call("checksums", tenant_id=tenant, endpoint=endpoint))
    tables = answer.get("tables") if isinstance(answer, dict) else None
    return dict(tables) if isinstance(tables, dict) else {}


def _verify(
    session: Session, tenant: str, endpoint: str, before: Mapping[str, Any]
) -> dict[str, Any]:
    after = _checksums(session, tenant, endpoint)
    differing = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
    if differing:
        raise RemediationFailed(
            f"checksums of {', '.join(differing)} on {endpoint} changed across the switch; "
            "roll back the switch and page the database owner"
        )
    return {"tables_verified": len(after), "endpoint": endpoint}


def _difference(
    serving: Mapping[str, Any], previous: Mapping[str, Any], now: str, then: str
) -> str:
    behind = sorted(t for t in set(serving) | set(previous) if serving.get(t) != previous.get(t))
    if not behind:
        return f"{now} and {then} hold the same data (checksums of {len(previous)} tables agree)"
    return (
        f"{now} differs from {then} on {', '.join(behind)}: what the migration had not copied; "
        "the re-run must copy it"
    )
