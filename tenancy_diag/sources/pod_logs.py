"""An app's pod logs across regions, from any :class:`~tenancy_diag.sources.base.PodLogReader`.

:func:`collect_logs` lists an app's pods per region and fetches their current and, after a
restart, previous container logs concurrently, keeping what one pod's failure cost apart from
what the others returned. :class:`PodLogs` adapts any PodLogReader to the backend-neutral
:class:`~tenancy_diag.sources.base.LogSource`, so recording and replay stay at the pod level.

No client library here: a run replaying a recording never imports ``kubernetes``, whose package
import (its dynamic client, and with it jsonschema) costs a kernel a second or more.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from tenancy_diag.errors import ConfigError, TenancyDiagError
from tenancy_diag.sources.base import LogQuery, LogRequest, PodLogReader, PodQuery

T = TypeVar("T")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- collecting an app's logs across regions ---------------------------------------------------
@dataclass(frozen=True)
class LogLine:
    """One (already redacted) log line and where it came from."""

    line: str
    pod: str
    container: str
    previous: bool
    region: str | None


@dataclass(frozen=True)
class LogFailure:
    """What could not be read; ``pod`` is None when listing the region's pods failed."""

    region: str | None
    pod: str | None
    container: str | None
    previous: bool
    message: str


@dataclass(frozen=True)
class LogBatch:
    lines: tuple[LogLine, ...]
    errors: tuple[LogFailure, ...]
    pods: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class _Window:
    since: datetime
    until: datetime

    def keeps(self, line: str) -> bool:
        match = _TS.search(line)
        if match is None:
            return True  # a line without a time cannot be placed; dropping it would hide it
        try:
            moment = datetime.fromisoformat(match[1])
        except ValueError:
            return True
        return self.since <= _aware(moment) <= self.until


_TS = re.compile(r"(?:^|\s)ts=\"?([0-9][0-9T:.+\-]*Z?)")


def collect_logs(
    source: PodLogReader,
    namespace: str,
    app: str,
    regions: Sequence[str],
    *,
    since: datetime,
    until: datetime,
    tail_lines: int,
    max_concurrency: int,
    region_label: str = "region",
    app_label: str = "app",
) -> LogBatch:
    """Every pod of ``app`` in ``regions``: lines in [since, until], and per-pod failures.

    Raises the first listing error only when no region could be listed at all.
    """
    if max_concurrency < 1:
        raise ConfigError(f"max_concurrency {max_concurrency} must be at least 1; use 1 or more")
    window = _Window(_aware(since), _aware(until))
    queries = [
        PodQuery(namespace, f"{app_label}={app},{region_label}={region}", region)
        for region in regions
    ] or [PodQuery(namespace, f"{app_label}={app}", None)]
    with ThreadPoolExecutor(max_concurrency, thread_name_prefix="kube-logs") as pool:
        listed = list(pool.map(lambda q: _attempt(lambda: source.list_pods(q)), queries))
        _raise_if_all_failed([error for _, error in listed])
        requests = [
            request
            for query, (pods, _) in zip(queries, listed, strict=True)
            for pod in pods or []
            for request in _log_requests(query, pod, window.since, tail_lines, region_label)
        ]
        fetched = list(pool.map(lambda r: _attempt(lambda: source.fetch(r)), requests))
    lines, errors = _assemble(requests, fetched, window)
    errors[:0] = [
        LogFailure(query.region, None, None, False, str(error))
        for query, (_, error) in zip(queries, listed, strict=True)
        if error is not None
    ]
    pods = tuple(pod for found, _ in listed for pod in found or [])
    return LogBatch(tuple(lines), tuple(errors), pods)


def _attempt(call: Callable[[], T]) -> tuple[T | None, TenancyDiagError | None]:
    try:
        return call(), None
    except TenancyDiagError as e:
        return None, e


def _raise_if_all_failed(errors: list[TenancyDiagError | None]) -> None:
    if errors and all(error is not None for error in errors):
        raise errors[0]  # type: ignore[misc]  # all() above: none is None


def _log_requests(
    query: PodQuery, pod: dict[str, Any], since: datetime, tail_lines: int, region_label: str
) -> list[LogRequest]:
    region = pod["labels"].get(region_label) or query.region
    # The previous container holds the run-up to a crash, often the most telling part.
    instances = (True, False) if pod.get("restart_count") else (False,)
    return [
        LogRequest(query.namespace, pod["name"], container, since, tail_lines, previous, region)
        for container in pod["containers"]
        for previous in instances
    ]


def _assemble(
    requests: list[LogRequest],
    fetched: list[tuple[list[str] | None, TenancyDiagError | None]],
    window: _Window,
) -> tuple[list[LogLine], list[LogFailure]]:
    lines: list[LogLine] = []
    errors: list[LogFailure] = []
    for request, (got, error) in zip(requests, fetched, strict=True):
        if error is not None:
            errors.append(
                LogFailure(
                    request.region, request.pod, request.container, request.previous, str(error)
                )
            )
            continue
        lines.extend(
            LogLine(line, request.pod, request.container, request.previous, request.region)
            for line in got or []
            if window.keeps(line)
        )
    return lines, errors


class PodLogs:
    """The :class:`~tenancy_diag.sources.base.LogSource` of a :class:`PodLogReader`: an app's
    pods per region, listed by label, their lines fetched concurrently."""

    def __init__(
        self,
        reader: PodLogReader,
        namespace: str,
        *,
        app_label: str = "app",
        region_label: str = "region",
        max_concurrency: int = 8,
    ) -> None:
        self.reader = reader
        self.name = reader.name
        self.namespace = namespace
        self.app_label = app_label
        self.region_label = region_label
        self.max_concurrency = max_concurrency

    def lines(self, request: LogQuery) -> dict[str, Any]:
        batch = collect_logs(
            self.reader,
            self.namespace,
            request.app,
            request.regions,
            since=request.since,
            until=request.until,
            tail_lines=request.tail_lines,
            max_concurrency=self.max_concurrency,
            region_label=self.region_label,
            app_label=self.app_label,
        )
        return {
            "lines": [asdict(line) for line in batch.lines],
            "errors": [asdict(error) for error in batch.errors],
        }
