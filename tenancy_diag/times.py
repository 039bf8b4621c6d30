"""Parsing the times and durations people type at 3 a.m."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tenancy_diag.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float, what: str = "duration") -> timedelta:
    """``90s``, ``15m``, ``3h``, ``2d``, ``1w``, or a number of seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if match is None:
            raise ConfigError(
                f"{what} {text!r} is not a duration; write it like 90s, 15m, 3h or 2d"
            )
        seconds = float(match[1]) * _UNITS[match[2]]
    if seconds <= 0:
        raise ConfigError(f"{what} {text!r} must be positive")
    return timedelta(seconds=seconds)


def parse_time(text: str | datetime | None, what: str = "time") -> datetime:
    """``now``, ISO-8601 (``2026-11-27T03:00Z``; naive means UTC) or Unix seconds, as UTC."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("", "now")):
        return datetime.now(UTC)
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=UTC)
    raw = text.strip()
    try:
        return datetime.fromtimestamp(float(raw), UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{what} {text!r} is not a time; use 'now', ISO-8601 like 2026-11-27T03:00:00Z, "
            "or Unix seconds"
        ) from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
