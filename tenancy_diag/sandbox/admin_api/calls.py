"""The calls the admin API answers, one function each, with the same signature so the route
table can hold them all.

A call gets its path ids, its arguments (a POST's JSON body, a GET's query string) and the
acting ``X-Actor``; each mutating call records itself in the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from tenancy_diag.sandbox.admin_api.errors import ApiError
from tenancy_diag.sandbox.admin_api.inputs import expiry, integer, known_region
from tenancy_diag.sandbox.admin_api.jobs import iso
from tenancy_diag.sandbox.admin_api.state import AdminState, tenant_checksums

MAX_REQUEUE_SPAN = 1_000_000
MAX_BURST_MULTIPLIER = 10.0
#: The multiplier in force without an override; overriding to it removes the override.
DEFAULT_BURST_MULTIPLIER = 1.0

Call = Callable[[AdminState, tuple[str, ...], dict[str, Any], str], tuple[HTTPStatus, Any]]


def get_jobs(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    return HTTPStatus.OK, state.jobs(ids[0])


def get_audit(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    with state.lock:
        return HTTPStatus.OK, list(state.audit)


def retry_job(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    tenant_id, job_id = ids
    job = state.retry(tenant_id, job_id)
    state.record(
        actor, "retry_job", f"tenants/{tenant_id}/jobs/{job_id}", {"attempts": job["attempts"]}
    )
    return HTTPStatus.ACCEPTED, {"tenant_id": tenant_id, **job}


def requeue_webhooks(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    tenant_id = ids[0]
    state.jobs(tenant_id)  # 404 for an unknown tenant
    first, last = integer(body, "from_sequence"), integer(body, "to_sequence")
    if not first <= last < first + MAX_REQUEUE_SPAN:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_body",
            f"sequence range {first}..{last} must be ascending and span at most {MAX_REQUEUE_SPAN}",
        )
    details = {"from_sequence": first, "to_sequence": last, "requeued": last - first + 1}
    state.record(actor, "requeue_webhooks", f"tenants/{tenant_id}/webhooks", details)
    return HTTPStatus.ACCEPTED, {"tenant_id": tenant_id, **details}


def invalidate_policy_cache(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    region, key = known_region(state, body), body.get("key")
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 200):
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_body",
            f"key {key!r} must be a non-empty string of at most 200 characters",
        )
    details = {"region": region, "key": key}
    state.record(actor, "invalidate_policy_cache", f"policy-cache/{region}", details)
    with state.lock:
        state.invalidations.setdefault(region, []).append(
            {"at": iso(datetime.now(UTC)), "key": key, "actor": actor}
        )
    return HTTPStatus.ACCEPTED, {**details, "invalidated": True}


def override_rate_limit(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    region = known_region(state, body)
    multiplier, reason = body.get("burst_multiplier"), body.get("reason")
    if (
        not isinstance(multiplier, int | float)
        or isinstance(multiplier, bool)
        or not 1.0 <= multiplier <= MAX_BURST_MULTIPLIER
    ):
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_body",
            f"burst_multiplier {multiplier!r} must be a number from 1 to {MAX_BURST_MULTIPLIER:g}",
        )
    if not isinstance(reason, str) or not reason.strip():
        raise ApiError(
            HTTPStatus.BAD_REQUEST, "invalid_body", "reason must say why the limit is raised"
        )
    override = {
        "region": region,
        "burst_multiplier": float(multiplier),
        "reason": reason.strip()[:500],
        "expires_at": iso(expiry(body)),
    }
    # Overriding to the default is going back to normal: the override is removed, not stored.
    cleared = override["burst_multiplier"] == DEFAULT_BURST_MULTIPLIER
    with state.lock:
        if cleared:
            state.rate_limits.pop(region, None)
        else:
            set_at = iso(datetime.now(UTC))
            state.rate_limits[region] = {**override, "set_by": actor, "set_at": set_at}
    details = {**override, "cleared": True} if cleared else override
    state.record(actor, "override_rate_limit", f"rate-limit/{region}", details)
    return HTTPStatus.OK, override


def get_rate_limit(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    now = iso(datetime.now(UTC))
    with state.lock:
        # An expired override no longer applies, so it is not shown as in force.
        overrides = [dict(o) for o in state.rate_limits.values() if o["expires_at"] > now]
    return HTTPStatus.OK, {
        "default_burst_multiplier": DEFAULT_BURST_MULTIPLIER,
        "overrides": sorted(overrides, key=lambda o: o["region"]),
    }


def get_policy_cache(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    with state.lock:
        regions = [
            {"region": r, "invalidations": [dict(i) for i in state.invalidations.get(r, [])]}
            for r in state.scenario.spec.regions
        ]
    return HTTPStatus.OK, {"regions": regions}


def move_job(verb: str, action: str) -> Call:
    def call(
        state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
    ) -> tuple[HTTPStatus, Any]:
        tenant_id, job_id = ids
        previous, job = state.move(tenant_id, job_id, verb)
        details = {"from_status": previous, "to_status": job["status"]}
        state.record(actor, action, f"tenants/{tenant_id}/jobs/{job_id}", details)
        return HTTPStatus.ACCEPTED, {"tenant_id": tenant_id, **job}

    return call


def get_routing(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    return HTTPStatus.OK, state.routing_of(ids[0])


def switch_routing(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    tenant_id = ids[0]
    routing = state.switch(tenant_id, body.get("endpoint"))
    details = {"endpoint": routing["endpoint"], "previous_endpoint": routing["previous_endpoint"]}
    state.record(actor, "switch_routing", f"tenants/{tenant_id}/routing", details)
    return HTTPStatus.OK, routing


def get_checksums(
    state: AdminState, ids: tuple[str, ...], query: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    tenant_id, endpoint = ids[0], query.get("endpoint")
    known = state.routing_of(tenant_id)["endpoints"]
    if endpoint not in known:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_query",
            f"endpoint {endpoint!r} is not one of tenant {tenant_id}'s endpoints: "
            f"{', '.join(known)}; pass ?endpoint=",
        )
    region = state.region_of(tenant_id)
    return HTTPStatus.OK, tenant_checksums(state.scenario, tenant_id, region, str(endpoint))
