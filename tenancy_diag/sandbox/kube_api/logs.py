"""Pod logs: the log call's query options, validated as the API does, and the answer's text.

The server's clock is the scenario's end, not the wall clock: the logs stop there, and
``sinceSeconds`` counts back from there so "the last 15 minutes" means the incident's last 15
minutes even when the sandbox was started with an end in the past (a pinned scenario, a replay).
A client that computes ``sinceSeconds`` from the wall clock therefore gets at least what it asked
for, never less; the log source trims the surplus by each line's ``ts``.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tenancy_diag.sandbox.kube_api.errors import bad_request, invalid
from tenancy_diag.sandbox.kube_api.objects import Fleet
from tenancy_diag.sandbox.topology import Pod


@dataclass(frozen=True)
class LogOptions:
    container: str | None = None
    since: datetime | None = None
    tail_lines: int | None = None
    previous: bool = False
    timestamps: bool = False
    limit_bytes: int | None = None


def log_options(query: Mapping[str, str], pod: str, clock: datetime) -> LogOptions:
    """The log call's query string, validated as kube-apiserver validates PodLogOptions."""
    since_seconds = _int_param(query, "sinceSeconds")
    since_time = _time_param(query, "sinceTime")
    if since_seconds is not None and since_time is not None:
        raise invalid(
            pod,
            "sinceSeconds",
            since_seconds,
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        )
    if since_seconds is not None and since_seconds < 1:
        raise invalid(pod, "sinceSeconds", since_seconds, "must be greater than 0")
    tail = _int_param(query, "tailLines")
    if tail is not None and tail < 0:
        raise invalid(pod, "tailLines", tail, "must be greater than or equal to 0")
    limit = _int_param(query, "limitBytes")
    if limit is not None and limit < 1:
        raise invalid(pod, "limitBytes", limit, "must be greater than 0")
    if since_seconds is not None:
        since_time = clock - timedelta(seconds=since_seconds)
    return LogOptions(
        container=query.get("container") or None,
        since=since_time,
        tail_lines=tail,
        previous=_bool_param(query, "previous"),
        timestamps=_bool_param(query, "timestamps"),
        limit_bytes=limit,
    )


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    if name not in query:
        return None
    try:
        return int(query[name])
    except ValueError:
        raise bad_request(f'strconv.ParseInt: parsing "{query[name]}": invalid syntax') from None


def _bool_param(query: Mapping[str, str], name: str) -> bool:
    # As apimachinery converts query booleans: only "0" and "false" are false.
    raw = query.get(name)
    return raw is not None and raw != "0" and raw.lower() != "false"


def _time_param(query: Mapping[str, str], name: str) -> datetime | None:
    if name not in query:
        return None
    try:
        moment = datetime.fromisoformat(query[name])
    except ValueError:
        raise bad_request(
            f'parsing time "{query[name]}" as "2006-01-02T15:04:05Z07:00": cannot parse'
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def log_text(fleet: Fleet, pod: Pod, options: LogOptions) -> bytes:
    """The body of a log answer: the selected lines, each ending in a newline."""
    if options.container not in (None, pod.app):
        raise bad_request(f"container {options.container} is not valid for pod {pod.name}")
    if options.previous and not pod.restarts:
        raise bad_request(
            f'previous terminated container "{pod.app}" in pod "{pod.name}" not found'
        )
    times, lines = fleet.logs(pod, options.previous)
    first = bisect.bisect_left(times, options.since.timestamp()) if options.since else 0
    if options.tail_lines is not None:
        first = max(first, len(lines) - options.tail_lines)
    chosen = lines[first:]
    if options.timestamps:
        chosen = [f"{_nano(t)} {line}" for t, line in zip(times[first:], chosen, strict=True)]
    body = "".join(line + "\n" for line in chosen).encode()
    return body[: options.limit_bytes] if options.limit_bytes else body


def _nano(moment: float) -> str:
    millis = round(moment * 1000)
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000))
    return f"{whole}.{millis % 1000:03d}000000Z"
