"""The Kubernetes calls a controller restart makes: read the Deployment, list and delete pods,
wait for readiness. Errors come back in the package's tree, as the log source's do."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes import client as kube_client
from kubernetes.client.exceptions import ApiException

from tenancy_diag.errors import SourceRejected, SourceUnavailable, shorten
from tenancy_diag.settings import KubeSettings
from tenancy_diag.sources.kube_logs import new_api_client

T = TypeVar("T")
SOURCE = "kubernetes"


class KubeActions:
    """Reads and pod deletions in ``namespace`` on one cluster per region (the region's kube
    context).

    The namespace is the caller's (the signals mapping's ``logs.namespace``), never
    ``settings.namespace``: the audit names the namespace a plan read from the mapping, and the
    calls must go where the audit says they went.
    """

    def __init__(self, settings: KubeSettings, *, namespace: str) -> None:
        self.settings = settings
        self.namespace = namespace
        self._apis: dict[str | None, kube_client.ApiClient] = {}

    def deployment(self, region: str, name: str) -> dict[str, Any]:
        apps = kube_client.AppsV1Api(self._api(region))
        found = self._call(
            f"deployment {self.namespace}/{name}",
            lambda: apps.read_namespaced_deployment(
                name, self.namespace, _request_timeout=self.settings.timeout_s
            ),
        )
        spec, status = found.spec, found.status
        return {
            "name": name,
            "replicas": int(getattr(spec, "replicas", 0) or 0),
            "ready": int(getattr(status, "ready_replicas", 0) or 0),
            "available": int(getattr(status, "available_replicas", 0) or 0),
        }

    def pods(self, region: str, selector: str) -> list[dict[str, Any]]:
        core = kube_client.CoreV1Api(self._api(region))
        found = self._call(
            f"pods matching {selector!r}",
            lambda: core.list_namespaced_pod(
                self.namespace,
                label_selector=selector,
                _request_timeout=self.settings.timeout_s,
            ),
        )
        return [
            _pod(p) for p in found.items if getattr(p.metadata, "deletion_timestamp", None) is None
        ]

    def delete_pod(self, region: str, name: str, grace_s: int = 30) -> dict[str, Any]:
        core = kube_client.CoreV1Api(self._api(region))
        self._call(
            f"pod {self.namespace}/{name}",
            lambda: core.delete_namespaced_pod(
                name,
                self.namespace,
                grace_period_seconds=grace_s,
                _request_timeout=self.settings.timeout_s,
            ),
        )
        return {"deleted": name}

    def wait_ready(
        self, region: str, selector: str, want: int, gone: str, timeout_s: float
    ) -> dict[str, Any]:
        """Wait until ``want`` pods match and are Ready and ``gone`` is not among them."""
        deadline = time.monotonic() + timeout_s
        while True:
            pods = self.pods(region, selector)
            ready = [p for p in pods if p["ready"] and p["name"] != gone]
            if len(ready) >= want:
                new = sorted({p["name"] for p in pods} - {gone})
                return {"ready": len(ready), "pods": len(pods), "newest": _newest(pods, new)}
            if time.monotonic() >= deadline:
                raise SourceUnavailable(
                    SOURCE,
                    f"only {len(ready)} of {want} pods matching {selector!r} were Ready after "
                    f"{timeout_s:g} s; stop restarting and inspect the new pod's events",
                )
            time.sleep(0.5)

    def close(self) -> None:
        for api in self._apis.values():
            api.close()  # type: ignore[no-untyped-call]
        self._apis.clear()

    def _api(self, region: str) -> kube_client.ApiClient:
        context = self.settings.contexts_by_region.get(region)
        if context not in self._apis:
            # Never retry a DELETE blindly: the audit must count each call once.
            self._apis[context] = new_api_client(self.settings, context, urllib3.Retry(total=0))[0]
        return self._apis[context]

    def _call(self, subject: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except ApiException as e:
            raise SourceRejected(
                SOURCE,
                f"Kubernetes refused the call on {subject} ({e.status} {shorten(e.reason, 80)});"
                " check the namespace, name and the context's permissions",
            ) from e
        except urllib3.exceptions.HTTPError as e:
            raise SourceUnavailable(
                SOURCE, f"Kubernetes did not answer for {subject} ({shorten(e, 120)}); retry"
            ) from e
        except ValueError as e:
            raise SourceRejected(
                SOURCE, f"Kubernetes sent an unreadable answer for {subject} ({shorten(e, 120)})"
            ) from e


def _pod(pod: Any) -> dict[str, Any]:
    conditions = pod.status.conditions or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    return {
        "name": pod.metadata.name,
        "phase": pod.status.phase,
        "ready": ready,
        "started": pod.status.start_time,
        "node": pod.spec.node_name,
    }


def _newest(pods: list[dict[str, Any]], names: list[str]) -> str:
    dated = [p for p in pods if p["name"] in names and p["started"] is not None]
    return max(dated, key=lambda p: p["started"])["name"] if dated else ""
