"""The Tenancy admin API of the sandbox: tenants' lifecycle jobs, and the audited admin overrides.

Jobs are a pure function of the scenario, so they agree with the metrics and logs (a migration
hang shows the same tenants stuck in ``verify_checksums`` everywhere). The mutating calls only
change in-memory state and append to an audit trail (``GET /admin/audit``), which is what tests
and remediation notebooks check: who did what, when, with which arguments.

Beyond the contract's calls (shared/tenancy-signals.md), the sandbox serves the calls an operator
configures for remediations, so a test can read state before and after one:

==========================================  ================================================
``GET /admin/rate-limit``                   default multiplier and the overrides in force
``GET /admin/policy-cache``                 each region's invalidation history
``POST /tenants/{t}/jobs/{j}:pause``        pending/running -> paused (audited)
``POST /tenants/{t}/jobs/{j}:resume``       paused -> running (audited)
``GET /tenants/{t}/routing``                the database endpoint serving the tenant
``POST /tenants/{t}/routing:switch``        body ``{"endpoint": E}`` (audited)
``GET /tenants/{t}/checksums?endpoint=E``   per-table row counts and sha256 at one endpoint
==========================================  ================================================

A tenant with a stuck migration is served from its target ``db-<region>-b``, which lags the
source ``db-<region>-a`` on one table; every other tenant knows only ``db-<region>-a``.

    python -m tenancy_diag.sandbox.admin_api --scenario-file F --token-file T --ready-file R
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tenancy_diag.sandbox.serving import HOST, serve_forever
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec

log = logging.getLogger(__name__)

ACTOR_HEADER = "X-Actor"
MAX_BODY_BYTES = 64 * 1024
MAX_REQUEUE_SPAN = 1_000_000
MAX_BURST_MULTIPLIER = 10.0
#: A rate-limit override is temporary by design: it must expire within this.
MAX_OVERRIDE = timedelta(hours=24)
RETRYABLE = ("failed", "running")  # running: the admin override for a stuck step
PAUSABLE = ("pending", "running")
#: The multiplier in force without an override; overriding to it removes the override.
DEFAULT_BURST_MULTIPLIER = 1.0
CHECKSUM_TABLES = ("tenants", "memberships", "policies")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ACTOR = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,127}")
_RUNNING_STEPS = {
    "provision": ("create_namespace", "apply_policies"),
    "suspend": ("drain_sessions", "revoke_tokens"),
}


class ApiError(Exception):
    """An answer other than success: HTTP status, short code, one-sentence message."""

    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _iso(moment: datetime) -> str:
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
        "started_at": _iso(started),
        "updated_at": _iso(updated),
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
    jobs.extend(_stuck_migrations(scenario, tenant_id))
    return sorted(jobs, key=lambda j: j["started_at"], reverse=True)


def _stuck_migrations(scenario: Scenario, tenant_id: str) -> list[dict[str, Any]]:
    truth = scenario.truth
    if truth.pattern != "migration_hang" or tenant_id not in truth.tenants:
        return []
    job_id = truth.job_ids[truth.tenants.index(tenant_id)]
    stuck_since = scenario.incident_start
    started = stuck_since - timedelta(minutes=scenario.rng("migrate", tenant_id).randint(15, 60))
    return [
        _job(job_id, "migrate", "running", "verify_checksums", started=started, updated=stuck_since)
    ]


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
                    "at": _iso(datetime.now(UTC)),
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
                updated_at=_iso(datetime.now(UTC)),
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
            job.update(status=to, updated_at=_iso(datetime.now(UTC)))
            return previous, dict(job)

    def routing_of(self, tenant_id: str) -> dict[str, Any]:
        region = self.region_of(tenant_id)
        stuck = bool(_stuck_migrations(self.scenario, tenant_id))
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
            routing.update(endpoint=endpoint, switched_at=_iso(datetime.now(UTC)))
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


# -- request validation -------------------------------------------------------------------
def _segment(raw: str, what: str) -> str:
    value = unquote(raw)
    if not _ID.fullmatch(value):
        raise ApiError(
            HTTPStatus.BAD_REQUEST, "invalid_id", f"{what} {value[:80]!r} is not a valid id"
        )
    return value


def _integer(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_body",
            f"{key} must be a non-negative integer, not {value!r}",
        )
    return value


def _region(state: AdminState, body: dict[str, Any]) -> str:
    region = body.get("region")
    if region not in state.scenario.spec.regions:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_body",
            f"region {region!r} is not one of {', '.join(state.scenario.spec.regions)}",
        )
    return str(region)


def _expiry(body: dict[str, Any]) -> datetime:
    raw = body.get("expires_at")
    try:
        expires = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        expires = None
    now = datetime.now(UTC)
    if expires is None or expires.tzinfo is None or not now < expires <= now + MAX_OVERRIDE:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_body",
            f"expires_at {raw!r} must be an ISO-8601 UTC time within the next "
            f"{MAX_OVERRIDE.total_seconds() / 3600:g} h",
        )
    return expires


# -- the calls ------------------------------------------------------------------------------
Call = Callable[[AdminState, tuple[str, ...], dict[str, Any], str], tuple[HTTPStatus, Any]]


def _get_jobs(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    return HTTPStatus.OK, state.jobs(ids[0])


def _get_audit(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    with state.lock:
        return HTTPStatus.OK, list(state.audit)


def _retry(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    tenant_id, job_id = ids
    job = state.retry(tenant_id, job_id)
    state.record(
        actor, "retry_job", f"tenants/{tenant_id}/jobs/{job_id}", {"attempts": job["attempts"]}
    )
    return HTTPStatus.ACCEPTED, {"tenant_id": tenant_id, **job}


def _requeue(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    tenant_id = ids[0]
    state.jobs(tenant_id)  # 404 for an unknown tenant
    first, last = _integer(body, "from_sequence"), _integer(body, "to_sequence")
    if not first <= last < first + MAX_REQUEUE_SPAN:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_body",
            f"sequence range {first}..{last} must be ascending and span at most {MAX_REQUEUE_SPAN}",
        )
    details = {"from_sequence": first, "to_sequence": last, "requeued": last - first + 1}
    state.record(actor, "requeue_webhooks", f"tenants/{tenant_id}/webhooks", details)
    return HTTPStatus.ACCEPTED, {"tenant_id": tenant_id, **details}


def _invalidate(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    region, key = _region(state, body), body.get("key")
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
            {"at": _iso(datetime.now(UTC)), "key": key, "actor": actor}
        )
    return HTTPStatus.ACCEPTED, {**details, "invalidated": True}


def _override(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    region = _region(state, body)
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
        "expires_at": _iso(_expiry(body)),
    }
    # Overriding to the default is going back to normal: the override is removed, not stored.
    cleared = override["burst_multiplier"] == DEFAULT_BURST_MULTIPLIER
    with state.lock:
        if cleared:
            state.rate_limits.pop(region, None)
        else:
            set_at = _iso(datetime.now(UTC))
            state.rate_limits[region] = {**override, "set_by": actor, "set_at": set_at}
    details = {**override, "cleared": True} if cleared else override
    state.record(actor, "override_rate_limit", f"rate-limit/{region}", details)
    return HTTPStatus.OK, override


def _get_rate_limit(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    now = _iso(datetime.now(UTC))
    with state.lock:
        # An expired override no longer applies, so it is not shown as in force.
        overrides = [dict(o) for o in state.rate_limits.values() if o["expires_at"] > now]
    return HTTPStatus.OK, {
        "default_burst_multiplier": DEFAULT_BURST_MULTIPLIER,
        "overrides": sorted(overrides, key=lambda o: o["region"]),
    }


def _get_policy_cache(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    with state.lock:
        regions = [
            {"region": r, "invalidations": [dict(i) for i in state.invalidations.get(r, [])]}
            for r in state.scenario.spec.regions
        ]
    return HTTPStatus.OK, {"regions": regions}


def _move_job(verb: str, action: str) -> Call:
    def call(
        state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
    ) -> tuple[HTTPStatus, Any]:
        tenant_id, job_id = ids
        previous, job = state.move(tenant_id, job_id, verb)
        details = {"from_status": previous, "to_status": job["status"]}
        state.record(actor, action, f"tenants/{tenant_id}/jobs/{job_id}", details)
        return HTTPStatus.ACCEPTED, {"tenant_id": tenant_id, **job}

    return call


def _get_routing(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    return HTTPStatus.OK, state.routing_of(ids[0])


def _switch_routing(
    state: AdminState, ids: tuple[str, ...], body: dict[str, Any], actor: str
) -> tuple[HTTPStatus, Any]:
    tenant_id = ids[0]
    routing = state.switch(tenant_id, body.get("endpoint"))
    details = {"endpoint": routing["endpoint"], "previous_endpoint": routing["previous_endpoint"]}
    state.record(actor, "switch_routing", f"tenants/{tenant_id}/routing", details)
    return HTTPStatus.OK, routing


def _get_checksums(
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


# (method, path pattern, what each group names, call, mutating); groups are raw segments.
_ROUTES: tuple[tuple[str, re.Pattern[str], tuple[str, ...], Call, bool], ...] = (
    ("GET", re.compile(r"/tenants/([^/]+)/jobs"), ("tenant id",), _get_jobs, False),
    (
        "POST",
        re.compile(r"/tenants/([^/]+)/jobs/([^/]+):retry"),
        ("tenant id", "job id"),
        _retry,
        True,
    ),
    ("POST", re.compile(r"/tenants/([^/]+)/webhooks:requeue"), ("tenant id",), _requeue, True),
    ("POST", re.compile(r"/admin/policy-cache:invalidate"), (), _invalidate, True),
    ("POST", re.compile(r"/admin/rate-limit:override"), (), _override, True),
    ("GET", re.compile(r"/admin/audit"), (), _get_audit, False),
    # The sandbox's remediation calls, beyond the contract (see the module docstring).
    ("GET", re.compile(r"/admin/rate-limit"), (), _get_rate_limit, False),
    ("GET", re.compile(r"/admin/policy-cache"), (), _get_policy_cache, False),
    (
        "POST",
        re.compile(r"/tenants/([^/]+)/jobs/([^/]+):pause"),
        ("tenant id", "job id"),
        _move_job("pause", "pause_job"),
        True,
    ),
    (
        "POST",
        re.compile(r"/tenants/([^/]+)/jobs/([^/]+):resume"),
        ("tenant id", "job id"),
        _move_job("resume", "resume_job"),
        True,
    ),
    ("GET", re.compile(r"/tenants/([^/]+)/routing"), ("tenant id",), _get_routing, False),
    (
        "POST",
        re.compile(r"/tenants/([^/]+)/routing:switch"),
        ("tenant id",),
        _switch_routing,
        True,
    ),
    ("GET", re.compile(r"/tenants/([^/]+)/checksums"), ("tenant id",), _get_checksums, False),
)


class _Handler(BaseHTTPRequestHandler):
    state: AdminState
    token: str
    server_version = "tenancy-admin-sandbox/1"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            self._authorize()
            call, ids, mutating = self._route(method)
            actor = self._actor() if mutating else ""
            # A call's arguments: the JSON body of a POST, the query string of a GET.
            body = self._body() if method == "POST" else self._query()
            status, payload = call(self.state, ids, body, actor)
        except ApiError as e:
            self._send(e.status, {"error": e.code, "message": e.message})
            return
        self._send(status, payload)

    def _authorize(self) -> None:
        presented = self.headers.get("Authorization", "")
        scheme, _, token = presented.partition(" ")
        # Constant-time comparison, so response timing reveals nothing about the token.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self.token.encode()
        ):
            raise ApiError(
                HTTPStatus.UNAUTHORIZED, "unauthorized", "a valid bearer token is required"
            )

    def _route(self, method: str) -> tuple[Call, tuple[str, ...], bool]:
        path = urlsplit(self.path).path
        allowed = []
        for verb, pattern, names, call, mutating in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if verb != method:
                allowed.append(verb)
                continue
            pairs = zip(match.groups(), names, strict=True)
            ids = tuple(_segment(raw, what) for raw, what in pairs)
            return call, ids, mutating
        if allowed:
            raise ApiError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                f"{method} is not allowed on {path}; use {', '.join(allowed)}",
            )
        raise ApiError(HTTPStatus.NOT_FOUND, "not_found", f"no call at {path[:120]}")

    def _actor(self) -> str:
        actor = self.headers.get(ACTOR_HEADER, "").strip()
        if not _ACTOR.fullmatch(actor):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "actor_required",
                f"mutating calls need an {ACTOR_HEADER} header naming who acts",
            )
        return actor

    def _query(self) -> dict[str, Any]:
        pairs = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        return {key: values[-1] for key, values in pairs.items()}

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "invalid_body",
                f"Content-Length must be 0 to {MAX_BODY_BYTES} bytes",
            )
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_body", "the body must be a JSON object")
        return body

    def _send(self, status: HTTPStatus, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="tenancy-admin"')
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line only: headers (and so the token) never reach the log.
        log.info("%s %s", self.address_string(), format % args)


def make_handler(scenario: Scenario, token: str) -> type[BaseHTTPRequestHandler]:
    """A handler class serving ``scenario``'s admin API behind bearer ``token``.

    Its ``state`` attribute (an :class:`AdminState`) lets in-process tests read the audit.
    """
    if not token:
        raise ValueError("the admin API needs a non-empty token")
    state = AdminState(scenario)
    return type("AdminApiHandler", (_Handler,), {"state": state, "token": token})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario-file", type=Path, required=True)
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    spec = ScenarioSpec.from_json(json.loads(args.scenario_file.read_text(encoding="utf-8")))
    token = args.token_file.read_text(encoding="utf-8").strip()
    server = ThreadingHTTPServer((HOST, args.port), make_handler(Scenario(spec), token))
    server.daemon_threads = True
    serve_forever(server, args.ready_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
