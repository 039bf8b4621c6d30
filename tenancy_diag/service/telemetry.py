"""The service's own signals, in Prometheus format, on a registry of its own.

A fresh :class:`CollectorRegistry` per :class:`Telemetry` (not the process-wide default) keeps
tests and several services in one process from colliding over metric names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from tenancy_diag.errors import ConfigError, TenancyDiagError

#: ok: every notebook finished; failed: the run finished but a notebook failed (non-zero exit);
#: error: the run could not finish (timeout, crash, a source that kept failing).
OUTCOMES = ("ok", "failed", "error")
#: What ``/metrics`` answers with; the text format every Prometheus version scrapes.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
#: Notebook runs take seconds to tens of minutes; the default buckets stop at 10 s.
RUN_BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)
#: Paths counted by name; anything else is "other", so scanners cannot blow up cardinality.
KNOWN_PATHS = ("/alerts", "/incidents", "/healthz", "/metrics", "/openapi.json")
#: Why the receiver closed a connection on its own: over the connection cap, or its request's
#: headers missed their deadline.
CLOSE_REASONS = ("limit", "deadline")
#: What the disk gauge measures: finished bundles, moved-aside attempts, the queue's folder.
DISK_PARTS = ("bundles", "partials", "state")

DepthSource = Callable[[], Mapping[str, int]]


class _QueueDepth(Collector):
    """Reads the queue at scrape time, so the gauge can never drift from the store."""

    def __init__(self) -> None:
        self.source: DepthSource | None = None

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "tenancy_diag_queue_depth", "Jobs in the queue by state.", labels=["state"]
        )

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        if self.source is not None:
            try:
                depth = self.source()
            except TenancyDiagError:
                # A broken store must not take the other metrics down with it; /healthz says why.
                depth = {}
            for state, count in depth.items():
                family.add_metric([state], count)
        return [family]


class Telemetry:
    """Metrics the receiver and the worker update; :meth:`exposition` serves them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        self.runs = Counter(
            "tenancy_diag_runs_total",
            "Finished runs by outcome (ok, failed, error).",
            ["outcome"],
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "tenancy_diag_run_duration_seconds",
            "Wall time of one run, from claim to finish, seconds.",
            buckets=RUN_BUCKETS_S,
            registry=self.registry,
        )
        self.attachment_failures = Counter(
            "tenancy_diag_attachment_failures_total",
            "Failed attempts to attach evidence, by sink.",
            ["sink"],
            registry=self.registry,
        )
        self.requests = Counter(
            "tenancy_diag_requests_total",
            "HTTP requests answered, by path and status code.",
            ["path", "code"],
            registry=self.registry,
        )
        self.connections_closed = Counter(
            "tenancy_diag_connections_closed_total",
            "Connections the receiver closed on its own: over the cap, or headers too slow.",
            ["reason"],
            registry=self.registry,
        )
        self.open_connections = Gauge(
            "tenancy_diag_open_connections",
            "Connections the receiver is serving now.",
            registry=self.registry,
        )
        self.disk = Gauge(
            "tenancy_diag_disk_bytes",
            "Bytes on disk: finished bundles (all of OUT but partials), moved-aside attempts "
            "(partials) and the queue's folder (state), as of the last retention pass.",
            ["what"],
            registry=self.registry,
        )
        self.pruned = Counter(
            "tenancy_diag_pruned_total",
            "What retention removed: bundles, partials, store rows.",
            ["what"],
            registry=self.registry,
        )
        # Zero-valued series from the start, so rate() and alerts see them before the first run.
        for outcome in OUTCOMES:
            self.runs.labels(outcome=outcome)
        for reason in CLOSE_REASONS:
            self.connections_closed.labels(reason=reason)
        for what in ("bundles", "partials", "rows"):
            self.pruned.labels(what=what)
        for what in DISK_PARTS:
            self.disk.labels(what=what)
        self._queue = _QueueDepth()
        self.registry.register(self._queue)

    def track_queue(self, depth: DepthSource) -> None:
        """Report ``depth()`` (state -> jobs) as ``tenancy_diag_queue_depth`` on every scrape."""
        self._queue.source = depth

    def track_connections(self, count: Callable[[], int]) -> None:
        """Report ``count()`` as ``tenancy_diag_open_connections`` on every scrape."""
        self.open_connections.set_function(count)

    def connection_closed(self, reason: str) -> None:
        self.connections_closed.labels(reason=reason).inc()

    def disk_measured(self, usage: Mapping[str, int]) -> None:
        for what, size in usage.items():
            self.disk.labels(what=what).set(size)

    def run_finished(self, outcome: str, duration_s: float) -> None:
        if outcome not in OUTCOMES:
            raise ConfigError(
                f"run outcome {outcome!r} is unknown; use one of {', '.join(OUTCOMES)}"
            )
        self.runs.labels(outcome=outcome).inc()
        self.run_duration.observe(duration_s)

    def attachment_failed(self, sink: str) -> None:
        self.attachment_failures.labels(sink=sink).inc()

    def request_served(self, path: str, code: int) -> None:
        label = path if path in KNOWN_PATHS else "other"
        self.requests.labels(path=label, code=str(code)).inc()

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (serve it as :data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
