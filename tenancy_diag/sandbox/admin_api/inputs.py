"""Checks on what a caller sends (path ids, body fields), each refusing with a 400 that names
the bad value, so a wrong call is told how to fix itself.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from tenancy_diag.sandbox.admin_api.errors import ApiError
from tenancy_diag.sandbox.admin_api.state import AdminState

#: A rate-limit override is temporary by design: it must expire within this.
MAX_OVERRIDE = timedelta(hours=24)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def path_id(raw: str, what: str) -> str:
    value = unquote(raw)
    if not _ID.fullmatch(value):
        raise ApiError(
            HTTPStatus.BAD_REQUEST, "invalid_id", f"{what} {value[:80]!r} is not a valid id"
        )
    return value


def integer(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_body",
            f"{key} must be a non-negative integer, not {value!r}",
        )
    return value


def known_region(state: AdminState, body: dict[str, Any]) -> str:
    region = body.get("region")
    if region not in state.scenario.spec.regions:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_body",
            f"region {region!r} is not one of {', '.join(state.scenario.spec.regions)}",
        )
    return str(region)


def expiry(body: dict[str, Any]) -> datetime:
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
