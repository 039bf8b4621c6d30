"""Pod logs through the real ``kubernetes`` client, redacted before they leave this module.

:class:`KubeLogSource` is the :class:`~tenancy_diag.sources.base.PodLogReader` for a cluster
(or one cluster per region: which kube context serves which region is configuration).
Collecting an app's logs across regions, and adapting a reader to the backend-neutral
:class:`~tenancy_diag.sources.base.LogSource`, live in :mod:`tenancy_diag.sources.pod_logs`,
which imports no client library.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import urllib3
from kubernetes import client as kube_client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from tenancy_diag.errors import (
    ConfigError,
    SourceError,
    SourceRejected,
    SourceUnavailable,
    shorten,
)
from tenancy_diag.redacting import Redactor
from tenancy_diag.settings import KubeSettings
from tenancy_diag.sources.base import LogRequest, PodQuery

T = TypeVar("T")
SOURCE = "kubernetes"
_UNAUTHORIZED = (401, 403)


@dataclass(frozen=True)
class _Cluster:
    api: kube_client.ApiClient
    context: str  # the context's name, for messages
    url: str


class KubeLogSource:
    """A :class:`~tenancy_diag.sources.base.PodLogReader` on the Kubernetes API.

    One ApiClient per kube context, made on first use; ``close()`` releases them.
    """

    name = SOURCE

    def __init__(self, settings: KubeSettings, redactor: Redactor) -> None:
        self.settings = settings
        self.redactor = redactor
        self._clusters: dict[str | None, _Cluster] = {}
        self._lock = threading.Lock()

    # -- the PodLogReader protocol--------------------------------------------------------
    def list_pods(self, request: PodQuery) -> list[dict[str, Any]]:
        cluster = self._cluster(request.region)
        core = kube_client.CoreV1Api(cluster.api)
        subject = f"pods matching {request.label_selector!r} in namespace {request.namespace}"
        pods = self._call(
            cluster,
            subject,
            lambda: core.list_namespaced_pod(
                request.namespace,
                label_selector=request.label_selector,
                _request_timeout=self.settings.timeout_s,
            ),
        )
        return [_pod_summary(pod) for pod in pods.items]

    def fetch(self, request: LogRequest) -> list[str]:
        cluster = self._cluster(request.region)
        core = kube_client.CoreV1Api(cluster.api)
        subject = f"pod {request.namespace}/{request.pod}"
        text: str = self._call(
            cluster,
            subject,
            lambda: core.read_namespaced_pod_log(
                request.pod,
                request.namespace,
                container=request.container,
                previous=request.previous,
                tail_lines=request.tail_lines,
                since_seconds=since_seconds(request.since),
                _request_timeout=self.settings.timeout_s,
            ),
        )
        # Better be safe: lines are redacted here, so no caller ever holds a raw one.
        return [self.redactor.redact(line) for line in (text or "").splitlines()]

    def close(self) -> None:
        with self._lock:
            clusters, self._clusters = list(self._clusters.values()), {}
        for cluster in clusters:
            cluster.api.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> KubeLogSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- clients and errors ---------------------------------------------------------------
    def _cluster(self, region: str | None) -> _Cluster:
        context = self.settings.contexts_by_region.get(region) if region else None
        if context is None and region and self.settings.contexts_by_region:
            known = ", ".join(sorted(self.settings.contexts_by_region))
            raise ConfigError(
                f"region {region!r} has no kube context configured (known: {known}); "
                "add it to the region-to-context mapping"
            )
        with self._lock:
            if context not in self._clusters:
                self._clusters[context] = self._connect(context)
            return self._clusters[context]

    def _connect(self, context: str | None) -> _Cluster:
        # One quick retry for a refused connection; none for a read timeout, so a dead
        # server costs timeout_s once, not once per retry.
        retries = urllib3.Retry(total=1, connect=1, read=0, status=0, backoff_factor=0.2)
        api, name = new_api_client(self.settings, context, retries)
        return _Cluster(api, name, str(api.configuration.host))

    def _call(self, cluster: _Cluster, subject: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except ApiException as e:
            raise self._api_error(cluster, subject, e) from e
        except urllib3.exceptions.HTTPError as e:
            raise SourceUnavailable(SOURCE, self._unanswered(cluster, e)) from e
        except ValueError as e:  # pydantic's ValidationError is one: an answer we cannot read
            raise SourceRejected(
                SOURCE,
                f"Kubernetes API at {cluster.url} sent an unreadable answer for "
                f"{subject} ({shorten(e, 160)}); is --kubeconfig pointing at a Kubernetes API?",
            ) from e

    def _unanswered(self, cluster: _Cluster, error: urllib3.exceptions.HTTPError) -> str:
        reason = getattr(error, "reason", None) or error
        timeout = self.settings.timeout_s
        # NewConnectionError subclasses ConnectTimeoutError in urllib3 2, so it is asked first.
        if isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
            reason, urllib3.exceptions.NewConnectionError
        ):
            return (
                f"Kubernetes API at {cluster.url} did not answer in {timeout:g} s; "
                "check --kubeconfig"
            )
        why = "connection refused" if "refused" in str(reason).lower() else shorten(reason, 120)
        return f"Kubernetes API at {cluster.url} did not answer ({why}); check --kubeconfig"

    def _api_error(self, cluster: _Cluster, subject: str, error: ApiException) -> SourceError:
        status, message = error.status or 0, _status_message(error)
        if status == 0:  # the client's own wrapping of TLS failures: nothing answered
            return SourceUnavailable(
                SOURCE,
                f"Kubernetes API at {cluster.url} did not answer ({message}); "
                "check --kubeconfig and its certificates",
            )
        if status in _UNAUTHORIZED:
            return SourceRejected(
                SOURCE,
                f"Kubernetes API at {cluster.url} refused the credentials of context "
                f"{cluster.context!r} ({status} {message}); refresh them in --kubeconfig",
            )
        if status == 404 and subject.startswith("pod "):
            return SourceRejected(
                SOURCE,
                f"{subject} was not found in context {cluster.context!r}; "
                "list the pods again, it may have been replaced",
            )
        return SourceRejected(
            SOURCE,
            f"Kubernetes API at {cluster.url} rejected the request for {subject} "
            f"({status} {message}); check the namespace, selector and container",
        )


def new_api_client(
    settings: KubeSettings, context: str | None, retries: urllib3.Retry
) -> tuple[kube_client.ApiClient, str]:
    """A client for kube ``context`` (None: the current one) and the context's name."""
    path = settings.kubeconfig
    configuration = kube_client.Configuration()
    configuration.retries = retries
    configuration.connection_pool_maxsize = max(1, settings.max_concurrency)
    if settings.in_cluster:
        return _in_cluster(configuration)
    try:
        api = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(path) if path else None,
            context=context,
            persist_config=False,
            client_configuration=configuration,
        )
        name = (
            context
            or kube_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                str(path) if path else None
            )[1]["name"]
        )
    except (ConfigException, OSError, ValueError, TypeError, KeyError) as e:
        where = path or "the default kubeconfig (~/.kube/config or $KUBECONFIG)"
        raise ConfigError(
            f"cannot use kube context {context or '(current)'} from {where} "
            f"({shorten(e, 160)}); fix --kubeconfig or the region's context"
        ) from e
    return api, str(name)


def _in_cluster(configuration: kube_client.Configuration) -> tuple[kube_client.ApiClient, str]:
    """A client on the pod's own service account (one cluster: contexts mean nothing here)."""
    try:
        kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException as e:
        raise ConfigError(
            f"--kubeconfig in-cluster, but this is not a pod with a service account "
            f"({shorten(e, 160)}); pass a kubeconfig path instead"
        ) from e
    return kube_client.ApiClient(configuration), "in-cluster"


def _status_message(error: ApiException) -> str:
    # The body is a Status object; its message is what kubectl would print.
    try:
        return shorten(json.loads(error.body or "")["message"], 200)
    except (ValueError, KeyError, TypeError):
        return shorten(error.reason or "no reason given", 200)


def since_seconds(since: datetime, now: datetime | None = None) -> int:
    """``sinceSeconds`` for a ``sinceTime``: the generated client has no sinceTime parameter.

    Counted from the wall clock; if the server's clock is behind (a sandbox with a pinned end),
    it returns more than asked, which :func:`collect_logs` trims by each line's ``ts``.
    """
    now = now or datetime.now(UTC)
    return max(1, math.ceil((now - _aware(since)).total_seconds()))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _pod_summary(pod: Any) -> dict[str, Any]:
    meta, spec, status = pod.metadata, pod.spec, pod.status
    statuses = (status.container_statuses if status else None) or []
    return {
        "name": meta.name,
        "namespace": meta.namespace,
        "labels": dict(meta.labels or {}),
        "containers": [c.name for c in (spec.containers if spec else [])],
        "restart_count": sum(s.restart_count or 0 for s in statuses),
        "phase": status.phase if status else None,
        "node": spec.node_name if spec else None,
    }
