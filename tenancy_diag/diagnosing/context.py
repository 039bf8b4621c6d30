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

from tenancy_diag import plugins
from tenancy_diag import runbook as runbook_mod
from tenancy_diag import signals as signals_mod
from tenancy_diag.errors import ConfigError, SourceError
from tenancy_diag.querying import Metrics
from tenancy_diag.redacting import Redactor, default_redactor
from tenancy_diag.runbook import Runbook
from tenancy_diag.signals import Scope, Signals
from tenancy_diag.sources.base import AdminSource, LogSource, MetricSource, QueueSource
from tenancy_diag.sources.recording import SnapshotWriter, record, replay
from tenancy_diag.sources.registry import SourceKind, SourceRegistry
from tenancy_diag.sources.registry import registry as default_registry
from tenancy_diag.subsystems import Role
from tenancy_diag.times import parse_duration, parse_time

T = TypeVar("T")
#: Notebook parameter -> endpoint (URL or path); a parameter left empty is not configured.
Endpoints = Mapping[str, str]


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
    #: Role -> (kind name, source): at most one source per role.
    by_role: dict[str, tuple[str, Any]] = field(default_factory=dict)
    # source kind -> "ok" | "not configured" | "unavailable: <sentence>"
    sources: dict[str, str] = field(default_factory=dict)
    #: Source kinds some step needed, configured or not.
    needed: set[str] = field(default_factory=set)
    #: Role -> the kind named for it when none is configured (the first registered).
    role_kinds: dict[str, str] = field(default_factory=dict)
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

    def source(self, role: Role) -> Any:
        """The source playing ``role``, or None when none is configured."""
        found = self.by_role.get(role)
        return found[1] if found else None

    def kind_of(self, role: Role) -> str:
        """The kind name of the source playing ``role`` (the role's name when there is none)."""
        found = self.by_role.get(role)
        return found[0] if found else self.role_kinds.get(role, role)

    @property
    def metric_source(self) -> MetricSource | None:
        source: MetricSource | None = self.source("metrics")
        return source

    @property
    def log_source(self) -> LogSource | None:
        source: LogSource | None = self.source("logs")
        return source

    @property
    def queue_source(self) -> QueueSource | None:
        source: QueueSource | None = self.source("queues")
        return source

    @property
    def admin_source(self) -> AdminSource | None:
        source: AdminSource | None = self.source("admin")
        return source

    def state_of(self, role: Role) -> str:
        """ "ok", "not configured" or "unavailable: ..." for the source playing ``role``."""
        return self.sources.get(self.kind_of(role), "not configured")

    @property
    def metrics(self) -> Metrics | None:
        if self.metric_source is None:
            return None
        return Metrics(self.metric_source, self.signals, self.scope)

    def wanted(self, role: Role) -> Any:
        """The source playing ``role`` for a step that needs it, or None; either way the role
        counts as needed, so a verdict knows what it lacked."""
        self.needed.add(self.kind_of(role))
        return self.source(role)

    def attempt(self, role: Role, call: Callable[[], T]) -> T | None:
        """Run a source call; on a source error, note it and return None instead of raising."""
        kind = self.kind_of(role)
        self.needed.add(kind)
        try:
            result = call()
        except SourceError as e:
            self.sources[kind] = f"unavailable: {e}"
            return None
        self.sources.setdefault(kind, "ok")
        return result

    def needed_sources(self) -> dict[str, str]:
        """State of every source kind a step needed."""
        return {kind: self.sources.get(kind, "not configured") for kind in sorted(self.needed)}

    def unavailable(self) -> list[str]:
        return [k for k, v in self.sources.items() if v.startswith("unavailable")]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _live_sources(
    endpoints: Endpoints, redactor: Redactor, registry: SourceRegistry
) -> dict[str, Any]:
    return {
        kind.name: kind.create(endpoints[kind.parameter], redactor)
        for kind in registry
        if endpoints.get(kind.parameter)
    }


def _replayed_sources(folder: Path, registry: SourceRegistry) -> dict[str, Any]:
    return {
        kind.name: replay(kind.name, folder, kind.protocol)
        for kind in registry
        if (folder / kind.name).is_dir()
    }


def _by_role(
    sources: Mapping[str, Any], registry: SourceRegistry, signals: Signals
) -> dict[str, tuple[str, Any]]:
    out: dict[str, tuple[str, Any]] = {}
    for name, source in sources.items():
        kind: SourceKind = registry.get(name)
        if kind.role in out:
            raise ConfigError(
                f"both {out[kind.role][0]} and {name} are configured as the {kind.role} source; "
                f"leave one of {registry.get(out[kind.role][0]).flag}, {kind.flag} empty"
            )
        out[kind.role] = (name, kind.for_role(source, signals))
    return out


def connect(
    incident_id: str = "INC-0000",
    *,
    regions: Sequence[str] = (),
    tenant: str = "",
    end: str | datetime = "now",
    lookback: str = "3h",
    incident_start: str = "",
    endpoints: Endpoints | None = None,
    snapshot_dir: str = "",
    replay_dir: str = "",
    thresholds: Mapping[str, float] | None = None,
    fleet_regions: Sequence[str] = (),
    slo_window: str = "15m",
    top_n: int = 10,
    registry: SourceRegistry = default_registry,
) -> Context:
    """Build a run's context from notebook parameters (no secrets among them)."""
    plugins.load()
    redactor = default_redactor()
    if replay_dir:
        sources = _replayed_sources(Path(replay_dir), registry)
    else:
        sources = _live_sources(endpoints or {}, redactor, registry)
    writer = None
    if snapshot_dir and sources:
        writer = SnapshotWriter(Path(snapshot_dir), redactor)
        sources = {kind: record(src, writer) for kind, src in sources.items()}
    signals = signals_mod.load()
    ctx = Context(
        incident_id=incident_id,
        end=parse_time(end, "end"),
        lookback=parse_duration(lookback, "lookback"),
        scope=Scope(regions=tuple(regions), tenant=tenant or None),
        thresholds=dict(thresholds or {}),
        signals=signals,
        runbook=runbook_mod.default(),
        redactor=redactor,
        by_role=_by_role(sources, registry, signals),
        role_kinds={k.role: k.name for k in reversed(tuple(registry))},
        incident_start=parse_time(incident_start, "incident_start") if incident_start else None,
        writer=writer,
        fleet_regions=tuple(fleet_regions or regions),
        slo_window=slo_window,
        top_n=top_n,
    )
    parse_duration(slo_window, "slo_window")
    for role in ("metrics", "logs", "queues", "admin"):
        if role not in ctx.by_role:
            ctx.sources[ctx.kind_of(role)] = "not configured"
    # A configured source is "ok" until a call says otherwise.
    for kind, _ in ctx.by_role.values():
        ctx.sources[kind] = "ok"
    return ctx
