"""A diagnostic run's context: window, scope, thresholds, sources (live, recorded or replayed).

Notebooks build one with :func:`connect` from their parameters cell. A source that is not
configured or does not answer is noted in ``ctx.sources`` and its steps show a sentence instead
of evidence, so one dead server never hides what the others say.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from tenancy_diag import runbook as runbook_mod
from tenancy_diag import signals as signals_mod
from tenancy_diag.errors import SourceError
from tenancy_diag.querying import Metrics
from tenancy_diag.redacting import Redactor, default_redactor
from tenancy_diag.runbook import Runbook
from tenancy_diag.settings import (
    AdminApiSettings,
    KubeSettings,
    PrometheusSettings,
    SqsSettings,
    read_token,
)
from tenancy_diag.signals import Scope, Signals
from tenancy_diag.sources.base import AdminSource, LogSource, MetricSource, QueueSource
from tenancy_diag.sources.recording import SnapshotWriter, record, replay
from tenancy_diag.sources.registry import SourceRegistry
from tenancy_diag.sources.registry import registry as default_registry
from tenancy_diag.times import parse_duration, parse_time

T = TypeVar("T")
AWS_ITSELF = "aws"
SOURCE_KINDS = ("prometheus", "kubernetes", "sqs", "admin-api")


@dataclass
class Context:
    incident_id: str
    end: datetime
    lookback: timedelta
    scope: Scope
    thresholds: dict[str, float]
    signals: Signals
    runbook: Runbook
    redactor: Redactor
    metric_source: MetricSource | None = None
    log_source: LogSource | None = None
    queue_source: QueueSource | None = None
    admin_source: AdminSource | None = None
    # source kind -> "ok" | "not configured" | "unavailable: <sentence>"
    sources: dict[str, str] = field(default_factory=dict)
    incident_start: datetime | None = None
    writer: SnapshotWriter | None = None
    fleet_regions: tuple[str, ...] = ()
    #: Window the SLOs are judged over (the contract's "over 15 min").
    slo_window: str = "15m"
    #: Rate window of the plotted time series.
    rate_window: str = "5m"
    top_n: int = 10

    @property
    def start(self) -> datetime:
        return self.end - self.lookback

    @property
    def metrics(self) -> Metrics | None:
        if self.metric_source is None:
            return None
        return Metrics(self.metric_source, self.signals, self.scope)

    def attempt(self, kind: str, call: Callable[[], T]) -> T | None:
        """Run a source call; on a source error, note it and return None instead of raising."""
        try:
            result = call()
        except SourceError as e:
            self.sources[kind] = f"unavailable: {e}"
            return None
        self.sources.setdefault(kind, "ok")
        return result

    def unavailable(self) -> list[str]:
        return [k for k, v in self.sources.items() if v.startswith("unavailable")]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@dataclass(frozen=True)
class Endpoints:
    prometheus_url: str = ""
    kubeconfig: str = ""
    aws_endpoint_url: str = ""
    tenancy_api_url: str = ""


def _live_sources(
    endpoints: Endpoints, redactor: Redactor, registry: SourceRegistry
) -> dict[str, Any]:
    live: dict[str, Any] = {}
    if endpoints.prometheus_url:
        live["prometheus"] = registry.create(
            "prometheus", PrometheusSettings(url=endpoints.prometheus_url)
        )
    if endpoints.kubeconfig:
        live["kubernetes"] = registry.create(
            "kubernetes", KubeSettings(kubeconfig=Path(endpoints.kubeconfig)), redactor
        )
    if endpoints.aws_endpoint_url:
        # "aws" means AWS itself: each region's own SQS endpoint, not one override for all.
        override = None if endpoints.aws_endpoint_url == AWS_ITSELF else endpoints.aws_endpoint_url
        live["sqs"] = registry.create("sqs", SqsSettings(endpoint_url=override), redactor)
    if endpoints.tenancy_api_url:
        settings = AdminApiSettings(url=endpoints.tenancy_api_url, token=read_token())
        live["admin-api"] = registry.create("admin-api", settings, redactor)
    return live


_PROTOCOLS: Mapping[str, Any] = {
    "prometheus": MetricSource,
    "kubernetes": LogSource,
    "sqs": QueueSource,
    "admin-api": AdminSource,
}
_SNAPSHOT_NAMES = {
    "prometheus": "prometheus",
    "kubernetes": "kubernetes",
    "sqs": "sqs",
    "admin-api": "admin-api",
}


def _replayed_sources(folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, protocol in _PROTOCOLS.items():
        if (folder / _SNAPSHOT_NAMES[kind]).is_dir():
            out[kind] = replay(_SNAPSHOT_NAMES[kind], folder, protocol)
    return out


def connect(
    incident_id: str = "INC-0000",
    *,
    regions: Sequence[str] = (),
    tenant: str = "",
    end: str | datetime = "now",
    lookback: str = "3h",
    incident_start: str = "",
    endpoints: Endpoints = Endpoints(),
    snapshot_dir: str = "",
    replay_dir: str = "",
    thresholds: Mapping[str, float] | None = None,
    fleet_regions: Sequence[str] = (),
    slo_window: str = "15m",
    top_n: int = 10,
    registry: SourceRegistry = default_registry,
) -> Context:
    """Build a run's context from notebook parameters (no secrets among them)."""
    redactor = default_redactor()
    if replay_dir:
        sources = _replayed_sources(Path(replay_dir))
    else:
        sources = _live_sources(endpoints, redactor, registry)
    writer = None
    if snapshot_dir and sources:
        writer = SnapshotWriter(Path(snapshot_dir), redactor)
        sources = {kind: record(src, writer) for kind, src in sources.items()}
    ctx = Context(
        incident_id=incident_id,
        end=parse_time(end, "end"),
        lookback=parse_duration(lookback, "lookback"),
        scope=Scope(regions=tuple(regions), tenant=tenant or None),
        thresholds=dict(thresholds or {}),
        signals=signals_mod.load(),
        runbook=runbook_mod.default(),
        redactor=redactor,
        metric_source=sources.get("prometheus"),
        log_source=sources.get("kubernetes"),
        queue_source=sources.get("sqs"),
        admin_source=sources.get("admin-api"),
        incident_start=parse_time(incident_start, "incident_start") if incident_start else None,
        writer=writer,
        fleet_regions=tuple(fleet_regions or regions),
        slo_window=slo_window,
        top_n=top_n,
    )
    parse_duration(slo_window, "slo_window")
    for kind in SOURCE_KINDS:
        if kind not in sources:
            ctx.sources[kind] = "not configured"
    return ctx
