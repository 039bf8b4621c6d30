"""One registry of data-source kinds: a :class:`SourceKind` descriptor each, registered once.

Everything about a kind is derived from its descriptor, as papermill derives everything about
an engine from one ``register()`` call: the runner's and the service's flag (``--<parameter>``),
the environment fallback (``TENANCY_DIAG_<PARAMETER>``), the notebook parameter that carries its
endpoint, how a notebook's context builds, records and replays it, and which role it plays for
a verdict. Another package registers its own kind (say, Loki for logs) from a plugin module
(see :mod:`tenancy_diag.plugins`); the module-level registry is only a default, and anything
that creates sources accepts ``registry=``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenancy_diag.errors import ConfigError
from tenancy_diag.importing import defer_iri_grammar
from tenancy_diag.redacting import Redactor
from tenancy_diag.settings import (
    WINDOW_ENV_FALLBACKS,
    AdminApiSettings,
    AlertmanagerSettings,
    KubeSettings,
    PrometheusSettings,
    SqsSettings,
    read_token,
)
from tenancy_diag.signals import Signals
from tenancy_diag.sources.base import (
    ROLE_PROTOCOLS,
    AdminSource,
    AlertSource,
    LogSource,
    MetricSource,
    PodLogReader,
    QueueSource,
)
from tenancy_diag.subsystems import Role

#: Builds a live source from the endpoint given for it (a URL or a path) and the run's redactor.
Factory = Callable[[str, Redactor], Any]
ENV_PREFIX = "TENANCY_DIAG_"


@dataclass(frozen=True)
class SourceKind:
    """A kind of data source, and every name it goes by."""

    #: Kind name: in ``findings.sources``, snapshot folders and error messages.
    name: str
    #: The evidence it gives (metrics, logs, queues, admin, alerts); its Protocol follows.
    role: Role
    #: Notebook parameter holding its endpoint (empty: not configured).
    parameter: str
    factory: Factory
    #: One line for ``--help`` and the parameters cell.
    help: str = ""
    #: The endpoint is a file path: the runner hands kernels an absolute one.
    is_path: bool = False
    #: Endpoint values that are words, not URLs or paths ("aws", "in-cluster").
    keywords: tuple[str, ...] = ()
    #: The Protocol it is recorded and replayed at, when lower than its role's (Kubernetes
    #: speaks pods and containers); ``adapt`` then lifts it to the role's Protocol.
    speaks: type | None = None
    adapt: Callable[[Any, Signals], Any] | None = None

    @property
    def protocol(self) -> type:
        """What a recording of this kind answers."""
        return self.speaks or ROLE_PROTOCOLS[self.role]

    def for_role(self, source: Any, signals: Signals) -> Any:
        """``source`` (live, recorded or replayed) as its role's Protocol."""
        return self.adapt(source, signals) if self.adapt is not None else source

    @property
    def flag(self) -> str:
        return "--" + self.parameter.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.parameter.upper()

    def create(self, endpoint: str, redactor: Redactor) -> Any:
        return self.factory(endpoint, redactor)

    def absolute(self, endpoint: str) -> str:
        """The endpoint as a run started in another folder must see it."""
        if not self.is_path or not endpoint or endpoint in self.keywords:
            return endpoint
        return str(Path(endpoint).expanduser().resolve())


class SourceRegistry:
    def __init__(self) -> None:
        self._kinds: dict[str, SourceKind] = {}

    def register(self, kind: SourceKind, *, replace: bool = False) -> SourceKind:
        if kind.role not in ROLE_PROTOCOLS:
            raise ConfigError(
                f"source kind {kind.name!r} plays unknown role {kind.role!r}; valid: "
                + ", ".join(ROLE_PROTOCOLS)
            )
        clash = [
            k.name
            for k in self._kinds.values()
            if k.name != kind.name and k.parameter == kind.parameter
        ]
        if clash:
            raise ConfigError(
                f"source kind {kind.name!r} reuses parameter {kind.parameter!r} of {clash[0]!r}"
            )
        if kind.name in self._kinds and not replace:
            raise ConfigError(
                f"source kind {kind.name!r} is already registered; pass replace=True to override"
            )
        self._kinds[kind.name] = kind
        return kind

    def unregister(self, name: str) -> None:
        self._kinds.pop(name, None)

    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self._kinds))

    def __iter__(self) -> Iterator[SourceKind]:
        return iter(tuple(self._kinds.values()))

    def get(self, name: str) -> SourceKind:
        try:
            return self._kinds[name]
        except KeyError:
            raise ConfigError(
                f"unknown source kind {name!r}; valid kinds: {', '.join(self.kinds())}"
            ) from None

    def parameters(self) -> tuple[str, ...]:
        """Every kind's notebook parameter, in registration order."""
        return tuple(k.parameter for k in self._kinds.values())

    def create(self, name: str, endpoint: str, redactor: Redactor) -> Any:
        return self.get(name).create(endpoint, redactor)

    def by_parameter(self, parameter: str) -> SourceKind | None:
        return next((k for k in self._kinds.values() if k.parameter == parameter), None)

    def env_variables(self) -> dict[str, str]:
        """Notebook parameter -> environment variable, for every kind and the window: the one
        flag/environment table the runner, the service and the lab read."""
        return {**{k.parameter: k.env for k in self._kinds.values()}, **WINDOW_ENV_FALLBACKS}


# Imports are deferred so a notebook that needs only Prometheus never pays for boto3.
def _prometheus(url: str, redactor: Redactor) -> MetricSource:
    from tenancy_diag.sources.prometheus import PrometheusSource

    return PrometheusSource(PrometheusSettings(url=url))


def _kubernetes(kubeconfig: str, redactor: Redactor) -> PodLogReader:
    # The kubernetes package imports its dynamic client, which imports jsonschema (with the
    # kubernetes-validate extra installed): the IRI grammar is deferred first, as for papermill.
    defer_iri_grammar()
    from tenancy_diag.sources.kube_logs import KubeLogSource

    if kubeconfig == KubeSettings.IN_CLUSTER:
        return KubeLogSource(KubeSettings(in_cluster=True), redactor)
    return KubeLogSource(KubeSettings(kubeconfig=Path(kubeconfig)), redactor)


def _pod_logs(reader: PodLogReader, signals: Signals) -> LogSource:
    from tenancy_diag.sources.pod_logs import PodLogs

    logs = signals.doc.logs
    return PodLogs(
        reader,
        logs.namespace,
        app_label=logs.app_label,
        region_label=logs.region_label,
        max_concurrency=KubeSettings().max_concurrency,
    )


def _sqs(endpoint: str, redactor: Redactor) -> QueueSource:
    from tenancy_diag.sources.sqs import SqsQueueSource

    # "aws" means AWS itself: each region's own SQS endpoint, not one override for all.
    override = None if endpoint == SqsSettings.AWS_ITSELF else endpoint
    return SqsQueueSource(SqsSettings(endpoint_url=override), redactor)


def _admin_api(url: str, redactor: Redactor) -> AdminSource:
    from tenancy_diag.sources.admin_api import AdminApiClient

    return AdminApiClient(AdminApiSettings(url=url, token=read_token()), redactor)


def _alertmanager(url: str, redactor: Redactor) -> AlertSource:
    from tenancy_diag.sources.alertmanager import AlertmanagerSource

    return AlertmanagerSource(AlertmanagerSettings(url=url))


BUILT_IN = (
    SourceKind("prometheus", "metrics", "prometheus_url", _prometheus, "Prometheus base URL"),
    SourceKind(
        "kubernetes",
        "logs",
        "kubeconfig",
        _kubernetes,
        'kubeconfig path for pod logs, or "in-cluster" for the pod\'s service account',
        is_path=True,
        keywords=(KubeSettings.IN_CLUSTER,),
        speaks=PodLogReader,
        adapt=_pod_logs,
    ),
    SourceKind(
        "sqs",
        "queues",
        "aws_endpoint_url",
        _sqs,
        '"aws" for AWS itself, or an SQS-compatible server URL (DLQs)',
        keywords=(SqsSettings.AWS_ITSELF,),
    ),
    SourceKind(
        "admin-api",
        "admin",
        "tenancy_api_url",
        _admin_api,
        "Tenancy admin API base URL (token from TENANCY_API_TOKEN[_FILE])",
    ),
    SourceKind(
        "alertmanager", "alerts", "alertmanager_url", _alertmanager, "Alertmanager base URL"
    ),
)

registry = SourceRegistry()
for _kind in BUILT_IN:
    registry.register(_kind)


def register(kind: SourceKind, *, replace: bool = False) -> SourceKind:
    """Add a source kind to the default registry (what a plugin module calls at import)."""
    return registry.register(kind, replace=replace)
