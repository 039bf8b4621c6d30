"""The admin API's paths: which call answers which method and path, and which calls mutate
(those need an ``X-Actor``, so the audit trail can say who acted).
"""

from __future__ import annotations

import re
from http import HTTPStatus

from tenancy_diag.sandbox.admin_api import calls
from tenancy_diag.sandbox.admin_api.calls import Call
from tenancy_diag.sandbox.admin_api.errors import ApiError
from tenancy_diag.sandbox.admin_api.inputs import path_id

# (method, path pattern, what each group names, call, mutating); groups are raw segments.
_ROUTES: tuple[tuple[str, re.Pattern[str], tuple[str, ...], Call, bool], ...] = (
    ("GET", re.compile(r"/tenants/([^/]+)/jobs"), ("tenant id",), calls.get_jobs, False),
    (
        "POST",
        re.compile(r"/tenants/([^/]+)/jobs/([^/]+):retry"),
        ("tenant id", "job id"),
        calls.retry_job,
        True,
    ),
    (
        "POST",
        re.compile(r"/tenants/([^/]+)/webhooks:requeue"),
        ("tenant id",),
        calls.requeue_webhooks,
        True,
    ),
    (
        "POST",
        re.compile(r"/admin/policy-cache:invalidate"),
        (),
        calls.invalidate_policy_cache,
        True,
    ),
    ("POST", re.compile(r"/admin/rate-limit:override"), (), calls.override_rate_limit, True),
    ("GET", re.compile(r"/admin/audit"), (), calls.get_audit, False),
    # The sandbox's remediation calls, beyond the contract (see the package docstring).
    ("GET", re.compile(r"/admin/rate-limit"), (), calls.get_rate_limit, False),
    ("GET", re.compile(r"/admin/policy-cache"), (), calls.get_policy_cache, False),
    (
        "POST",
        re.compile(r"/tenants/([^/]+)/jobs/([^/]+):pause"),
        ("tenant id", "job id"),
        calls.move_job("pause", "pause_job"),
        True,
    ),
    (
        "POST",
        re.compile(r"/tenants/([^/]+)/jobs/([^/]+):resume"),
        ("tenant id", "job id"),
        calls.move_job("resume", "resume_job"),
        True,
    ),
    ("GET", re.compile(r"/tenants/([^/]+)/routing"), ("tenant id",), calls.get_routing, False),
    (
        "POST",
        re.compile(r"/tenants/([^/]+)/routing:switch"),
        ("tenant id",),
        calls.switch_routing,
        True,
    ),
    (
        "GET",
        re.compile(r"/tenants/([^/]+)/checksums"),
        ("tenant id",),
        calls.get_checksums,
        False,
    ),
)


def route(method: str, path: str) -> tuple[Call, tuple[str, ...], bool]:
    """The call answering ``method`` on ``path``, the ids in its path, and whether it mutates."""
    allowed = []
    for verb, pattern, names, call, mutating in _ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        if verb != method:
            allowed.append(verb)
            continue
        pairs = zip(match.groups(), names, strict=True)
        ids = tuple(path_id(raw, what) for raw, what in pairs)
        return call, ids, mutating
    if allowed:
        raise ApiError(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "method_not_allowed",
            f"{method} is not allowed on {path}; use {', '.join(allowed)}",
        )
    raise ApiError(HTTPStatus.NOT_FOUND, "not_found", f"no call at {path[:120]}")
