"""The source contracts: one small Protocol per kind of source, and their request types.

Every method takes one frozen request dataclass and returns plain JSON-able data, already
redacted where it carries free text. That is what lets :mod:`tenancy_diag.sources.recording`
record any call and replay it offline: the request is the key, the answer the payload.
Turning answers into DataFrames is the job of pure functions elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

JSON = Any


@dataclass(frozen=True)
class InstantQuery:
    promql: str
    at: datetime  # UTC, timezone-aware


@dataclass(frozen=True)
class RangeQuery:
    promql: str
    start: datetime  # UTC, timezone-aware
    end: datetime
    step_s: int


@runtime_checkable
class MetricSource(Protocol):
    """Answers PromQL. Returns Prometheus's ``data.result`` list (vector or matrix)."""

    name: str

    def instant_query(self, request: InstantQuery) -> list[dict[str, Any]]: ...

    def range_query(self, request: RangeQuery) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class PodQuery:
    namespace: str
    label_selector: str  # e.g. "app=tenancy-controller,region=us-east-1"
    region: str | None = None  # picks the kube context when contexts are per region


@dataclass(frozen=True)
class LogRequest:
    namespace: str
    pod: str
    container: str
    since: datetime  # UTC; the API's sinceTime
    tail_lines: int
    previous: bool = False  # the container instance before the last restart
    region: str | None = None


@runtime_checkable
class PodLogReader(Protocol):
    """Kubernetes' own shape of logs: list pods, fetch one container's lines. A kind that speaks
    it is recorded at this level and adapted to :class:`LogSource` (see ``pod_logs.PodLogs``)."""

    name: str

    def list_pods(self, request: PodQuery) -> list[dict[str, Any]]:
        """``[{name, namespace, labels, containers, restart_count, phase, node}]``."""
        ...

    def fetch(self, request: LogRequest) -> list[str]: ...


@dataclass(frozen=True)
class LogQuery:
    """Lines of one app in some regions over a window: what any log backend can answer."""

    app: str  # the app's label value (signals.yaml ``logs.apps``)
    regions: tuple[str, ...]  # empty: wherever the app runs
    since: datetime  # UTC
    until: datetime
    tail_lines: int  # at most this many lines per pod (or stream)


@runtime_checkable
class LogSource(Protocol):
    """Answers an app's (redacted) log lines for regions and a window, whatever the backend."""

    name: str

    def lines(self, request: LogQuery) -> dict[str, Any]:
        """``{"lines": [{line, pod, container, previous, region}],
        "errors": [{region, pod, container, previous, message}]}``; raises only when nothing at
        all could be read."""
        ...


@dataclass(frozen=True)
class QueueRef:
    region: str
    queue_name: str


@dataclass(frozen=True)
class PeekRequest:
    region: str
    queue_name: str
    max_messages: int


@runtime_checkable
class QueueSource(Protocol):
    """Reads dead-letter queues without consuming or hiding their messages."""

    name: str

    def depth(self, request: QueueRef) -> dict[str, Any]:
        """``{queue_url, visible, not_visible, delayed, redrive_policy, ...}``."""
        ...

    def source_queues(self, request: QueueRef) -> list[str]:
        """Names of the queues whose RedrivePolicy points at this DLQ."""
        ...

    def peek(self, request: PeekRequest) -> list[dict[str, Any]]:
        """``[{message_id, sent_at, receive_count, body}]`` with bodies redacted."""
        ...


@dataclass(frozen=True)
class JobsRequest:
    tenant_id: str


@runtime_checkable
class AdminSource(Protocol):
    """The Tenancy admin API's read calls."""

    name: str

    def jobs(self, request: JobsRequest) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class AlertsRequest:
    #: Alertmanager matchers (``subsystem=~"a|b"``), ANDed.
    filters: tuple[str, ...] = ()


@runtime_checkable
class AlertSource(Protocol):
    """Answers which alerts are active (not silenced, not inhibited)."""

    name: str

    def alerts(self, request: AlertsRequest) -> list[dict[str, Any]]: ...


#: The Protocol a source of each role answers (see ``tenancy_diag.subsystems.ROLES``).
ROLE_PROTOCOLS: dict[str, type] = {
    "metrics": MetricSource,
    "logs": LogSource,
    "queues": QueueSource,
    "admin": AdminSource,
    "alerts": AlertSource,
}
