"""`tenancy-diag serve`: the receiver, the durable queue, the worker pool and the sinks, wired.

Start-up order matters for "each accepted request yields exactly one bundle": the state folder
is locked first (one service per queue: a second one exits naming the first), the queue is
opened and jobs a killed predecessor left running are requeued *before* any worker claims, and
the receiver listens last, so nothing is accepted that no one will run. SIGTERM reverses it:
stop accepting, let running jobs finish (up to ``drain_timeout_s``), close the queue, unlock.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from tenancy_diag.errors import ConfigError
from tenancy_diag.running.warming import PoolSettings
from tenancy_diag.service.executor import Executor, SubprocessExecutor
from tenancy_diag.service.http import RequestLog, make_app
from tenancy_diag.service.limits import Limits
from tenancy_diag.service.listening import Listener
from tenancy_diag.service.logs import configure_logging
from tenancy_diag.service.owning import StateLock
from tenancy_diag.service.recovery import on_resolved
from tenancy_diag.service.retention import Pruner, Retention
from tenancy_diag.service.sinks import create_sink
from tenancy_diag.service.store import Store
from tenancy_diag.service.telemetry import Telemetry
from tenancy_diag.service.worker import Worker

if TYPE_CHECKING:
    from tenancy_diag.service.job_manifests import JobSettings

log = logging.getLogger(__name__)

#: The only address the receiver binds: it has no TLS, so a proxy must front any exposure.
LOOPBACK = "127.0.0.1"
#: All interfaces: only with ``--in-cluster`` (deploy/ limits who reaches the pod).
ANY_HOST = "0.0.0.0"  # noqa: S104 (opt-in, in a pod only)
QUEUE_FILE = "queue.sqlite"
#: Under the state folder: one folder of kernel connection files per run, emptied at start.
RUNTIME_DIR = "runtime"


@dataclass(frozen=True)
class ServiceConfig:
    """Everything `serve` needs; durations in seconds."""

    listen: str  # 127.0.0.1:PORT
    state_dir: Path  # holds the queue
    out: Path  # bundles go to OUT/<incident>/<run_id>
    token: str
    workers: int = 2
    run_timeout_s: float = 1800.0
    sinks: tuple[str, ...] = ("local",)
    #: Runner source flag (``--prometheus-url``...) -> value.
    sources: Mapping[str, str] = field(default_factory=dict)
    #: Extra runner arguments, as given (``--sample`` replays offline).
    runner_args: tuple[str, ...] = ()
    #: Running in a pod: --listen may be 0.0.0.0 (the NetworkPolicy admits Alertmanager only).
    in_cluster: bool = False
    capacity: int = 100
    max_attempts: int = 3
    backoff_s: float = 30.0  # before the first retry; doubled each time
    drain_timeout_s: float = 60.0
    #: What one client may cost the receiver (body size, deadlines, connections).
    limits: Limits = field(default_factory=Limits)
    #: How much finished evidence is kept (``--retain-days``, ``--retain-bytes``).
    retention: Retention = field(default_factory=Retention)
    #: Where runs happen: "subprocess" (this host) or "kubernetes" (one Job each, ``jobs``).
    executor: str = "subprocess"
    jobs: JobSettings | None = None
    #: The warm kernel pool of ``--executor pool``.
    pool: PoolSettings = field(default_factory=PoolSettings)


def parse_listen(text: str, *, in_cluster: bool = False) -> tuple[str, int]:
    """``127.0.0.1:8080`` -> (host, port); any other host is refused unless ``in_cluster``
    (a pod behind a Service and a NetworkPolicy, where 0.0.0.0 is the only way to be reached)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen {text!r} is not HOST:PORT; use e.g. {LOOPBACK}:9464")
    if host != LOOPBACK and not (in_cluster and host == ANY_HOST):
        raise ConfigError(
            f"--listen host {host!r} is not {LOOPBACK}; the receiver speaks plain HTTP, so it "
            "binds loopback only; put a TLS proxy in front to receive from elsewhere, or in a "
            f"pod behind a NetworkPolicy pass --in-cluster with --listen {ANY_HOST}:PORT"
        )
    return host, int(port)


def create_executor(config: ServiceConfig) -> Executor:
    """The executor ``config.executor`` names: the subprocess one, or Kubernetes Jobs."""
    if config.executor == "kubernetes":
        if config.jobs is None:
            raise ConfigError("--executor kubernetes needs --namespace, --image and the rest")
        # Deferred: the kubernetes client loads only for the service that uses it.
        from tenancy_diag.service.kube_jobs import KubernetesJobExecutor  # noqa: PLC0415

        aws = config.sources.get("--aws-endpoint-url")
        return KubernetesJobExecutor(
            config.out,
            config.jobs,
            extra_args=config.runner_args,
            aws_endpoint_url=None if aws in (None, "aws") else aws,
        )
    if config.executor == "pool":
        from tenancy_diag.service.pooled import PooledExecutor  # noqa: PLC0415

        return PooledExecutor(
            config.out,
            config.sources,
            extra_args=config.runner_args,
            pool=config.pool,
            runtime_root=config.state_dir / RUNTIME_DIR,
        )
    if config.executor != "subprocess":
        raise ConfigError(
            f"unknown executor {config.executor!r}; use subprocess, pool or kubernetes"
        )
    return SubprocessExecutor(
        config.out,
        config.sources,
        extra_args=config.runner_args,
        runtime_root=config.state_dir / RUNTIME_DIR,
    )


class Service:
    """The running service; :meth:`start`, then :meth:`stop` (or :meth:`run` until SIGTERM)."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        host, port = parse_listen(config.listen, in_cluster=config.in_cluster)
        self.lock = StateLock(config.state_dir)
        try:
            self._wire(config, host, port)
        except BaseException:
            self.lock.release()
            raise
        self._stopped = threading.Event()

    def _wire(self, config: ServiceConfig, host: str, port: int) -> None:
        # Connection files (kernel HMAC keys) of runs a killed predecessor left behind.
        shutil.rmtree(config.state_dir / RUNTIME_DIR, ignore_errors=True)
        aws = config.sources.get("--aws-endpoint-url") or None
        sinks = [create_sink(spec, out=config.out, aws_endpoint_url=aws) for spec in config.sinks]
        executor = self.executor = create_executor(config)
        self.store = Store(config.state_dir / QUEUE_FILE, capacity=config.capacity)
        self.requeued = self.store.requeue_interrupted()
        self.telemetry = Telemetry()
        self.worker = Worker(
            self.store,
            executor,
            sinks,
            self.telemetry,
            workers=config.workers,
            run_timeout_s=config.run_timeout_s,
            max_attempts=config.max_attempts,
            backoff_s=config.backoff_s,
        )
        self.pruner = Pruner(
            self.store,
            config.out,
            state_dir=config.state_dir,
            sinks=[sink.name for sink in sinks],
            retention=config.retention,
            telemetry=self.telemetry,
        )
        record = RequestLog(self.telemetry)
        app = make_app(
            self.store,
            config.token,
            self.telemetry,
            limits=config.limits,
            on_resolved=partial(on_resolved, self.store, config.out),
            record=record,
        )
        try:
            self.listener = Listener(
                app, host, port, limits=config.limits, record=record, telemetry=self.telemetry
            )
        except ConfigError:
            self.store.close()
            raise

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.listener.port}"

    def start(self) -> None:
        start = getattr(self.executor, "start", None)
        if start is not None:
            start()  # the pool executor's kernels begin warming before the first alert
        self.worker.start()
        self.pruner.start()
        self.listener.start()
        _log(
            "service started",
            url=self.url,
            workers=self.config.workers,
            requeued=self.requeued,
            sinks=len(self.config.sinks),
            owner=self.lock.owner,
        )

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.listener.stop()
        drained = self.worker.stop(self.config.drain_timeout_s)
        close = getattr(self.executor, "close", None)
        if close is not None:
            close()
        self.pruner.stop()
        # Jobs still running stay "running" in the queue and are requeued at the next start.
        _log("service stopped", drained=drained, queue=self.store.depth())
        self.store.close()
        self.lock.release()

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop gracefully."""
        wanted = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            wanted.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, on_signal)
        self.start()
        while not wanted.wait(1.0):
            pass  # a timed wait, so the signal handler gets to run promptly
        self.stop()


def serve(config: ServiceConfig) -> int:
    configure_logging()
    Service(config).run()
    return 0


def _log(event: str, **fields: object) -> None:
    log.info(json.dumps({"event": event, **fields}, default=str))
