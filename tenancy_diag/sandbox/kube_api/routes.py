"""The API's paths and what each answers: discovery, namespaces, pods, logs, Deployments.

Reads are GETs; the one write is deleting a pod (``DELETE .../pods/{name}``), which answers the
pod marked for deletion and leaves its ReplicaSet's replacement in its place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tenancy_diag.sandbox import serving
from tenancy_diag.sandbox.kube_api.deletions import delete_options
from tenancy_diag.sandbox.kube_api.errors import ApiError, no_route, not_found, precondition_failed
from tenancy_diag.sandbox.kube_api.identities import resource_version, uid
from tenancy_diag.sandbox.kube_api.logs import log_options, log_text
from tenancy_diag.sandbox.kube_api.objects import Fleet
from tenancy_diag.sandbox.kube_api.selectors import parse_selector, select
from tenancy_diag.sandbox.kube_api.workloads import WorkloadOptions
from tenancy_diag.sandbox.topology import REPLICAS, Pod, Scenario

JSON = "application/json"
VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.4",
    "gitCommit": "a78aa47129b8",
    "gitTreeState": "clean",
    "buildDate": "2026-10-01T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass(frozen=True)
class Request:
    """What a route sees: the region the client's cluster serves (None: all) and the query."""

    region: str | None
    query: Mapping[str, str]
    match: re.Match[str]
    body: bytes = b""


Answer = tuple[str, bytes]  # (content type, body)


class Api:
    """The routes, independent of HTTP plumbing so they read like the API reference."""

    def __init__(self, scenario: Scenario, options: WorkloadOptions | None = None) -> None:
        self.fleet = Fleet(scenario, options)
        self.scenario = scenario
        self.deletes: list[tuple[re.Pattern[str], Callable[[Request], Answer]]] = [
            (re.compile(r"/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)"), self.delete_pod)
        ]
        self.routes: list[tuple[re.Pattern[str], Callable[[Request], Answer]]] = [
            (re.compile(pattern), handler)
            for pattern, handler in (
                (r"/version", self.version),
                (r"/(healthz|livez|readyz)", self.health),
                (r"/api", self.api_versions),
                (r"/apis", self.api_groups),
                (r"/api/v1/namespaces", self.namespaces),
                (r"/api/v1/namespaces/(?P<ns>[^/]+)", self.namespace),
                (r"/api/v1/pods", self.pods),
                (r"/api/v1/namespaces/(?P<ns>[^/]+)/pods", self.pods),
                (r"/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)", self.pod),
                (r"/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/log", self.pod_log),
                (r"/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments", self.deployments),
                (
                    r"/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments/(?P<name>[^/]+)",
                    self.deployment,
                ),
            )
        ]

    def answer(
        self,
        path: str,
        region: str | None,
        query: Mapping[str, str],
        method: str = "GET",
        body: bytes = b"",
    ) -> Answer:
        routes = {"GET": self.routes, "DELETE": self.deletes}.get(method, [])
        for pattern, handler in routes:
            if match := pattern.fullmatch(path):
                return handler(Request(region, query, match, body))
        if any(pattern.fullmatch(path) for pattern, _ in (*self.routes, *self.deletes)):
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        raise no_route()

    # discovery
    def version(self, request: Request) -> Answer:
        return _json(VERSION)

    def health(self, request: Request) -> Answer:
        return "text/plain", b"ok"

    def api_versions(self, request: Request) -> Answer:
        return _json(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{serving.HOST}:6443"}
                ],
            }
        )

    def api_groups(self, request: Request) -> Answer:
        apps = {"groupVersion": "apps/v1", "version": "v1"}
        return _json(
            {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [{"name": "apps", "versions": [apps], "preferredVersion": apps}],
            }
        )

    # namespaces
    def namespaces(self, request: Request) -> Answer:
        items = [self.fleet.namespace_json(name) for name in self.fleet.namespace_names()]
        return _json(_list("NamespaceList", "v1", items))

    def namespace(self, request: Request) -> Answer:
        name = request.match["ns"]
        if name not in self.fleet.namespace_names():
            raise not_found("namespaces", name)
        return _json({"kind": "Namespace", "apiVersion": "v1", **self.fleet.namespace_json(name)})

    # pods
    def pods(self, request: Request) -> Answer:
        namespace = request.match.groupdict().get("ns")
        selector = parse_selector(request.query.get("labelSelector", ""))
        bodies = [self.fleet.pod_json(pod) for pod in self._pods_in(request.region, namespace)]
        return _json(_list("PodList", "v1", select(bodies, selector)))

    def pod(self, request: Request) -> Answer:
        pod = self._find_pod(request)
        return _json({"kind": "Pod", "apiVersion": "v1", **self.fleet.pod_json(pod)})

    def pod_log(self, request: Request) -> Answer:
        pod = self._find_pod(request)
        options = log_options(request.query, pod.name, self.scenario.end)
        return "text/plain", log_text(self.fleet, pod, options)

    def delete_pod(self, request: Request) -> Answer:
        options = delete_options(request.query, request.body)
        pod = self._find_pod(request)
        if options.uid is not None and options.uid != uid(pod.name):
            raise precondition_failed("pods", pod.name, options.uid, uid(pod.name))
        body = {
            "kind": "Pod",
            "apiVersion": "v1",
            **self.fleet.deleted_pod_json(pod, options.grace_s),
        }
        # Another request may have deleted it since it was found: only one delete succeeds.
        if not options.dry_run and self.fleet.workloads.delete(pod) is None:
            raise not_found("pods", pod.name)
        return _json(body)

    def _pods_in(self, region: str | None, namespace: str | None) -> list[Pod]:
        if namespace not in (None, self.fleet.namespace):
            return []  # the real API lists an unknown namespace as empty, it does not 404
        return self.fleet.workloads.live(region)

    def _find_pod(self, request: Request) -> Pod:
        name = request.match["name"]
        pod = self.fleet.workloads.find(name)
        if (
            pod is None
            or request.match["ns"] != self.fleet.namespace
            or request.region not in (None, pod.region)
        ):
            raise not_found("pods", name)
        return pod

    # deployments
    def deployments(self, request: Request) -> Answer:
        selector = parse_selector(request.query.get("labelSelector", ""))
        bodies = [self._deployment(request, app) for app in self._apps(request)]
        return _json(_list("DeploymentList", "apps/v1", select(bodies, selector)))

    def deployment(self, request: Request) -> Answer:
        name = request.match["name"]
        if name not in self._apps(request):
            raise not_found("deployments.apps", name)
        return _json(
            {"kind": "Deployment", "apiVersion": "apps/v1", **self._deployment(request, name)}
        )

    def _apps(self, request: Request) -> tuple[str, ...]:
        return tuple(REPLICAS) if request.match["ns"] == self.fleet.namespace else ()

    def _deployment(self, request: Request, app: str) -> dict[str, Any]:
        # One cluster serving every region shows each Deployment once, its pods spread over
        # the regions (told apart by the region label); a per-region cluster shows its own.
        regions = (request.region,) if request.region else self.scenario.spec.regions
        return self.fleet.deployment_json(app, regions)


def _list(kind: str, api_version: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    # Items of a list carry no kind/apiVersion of their own, as on a real cluster.
    version = resource_version(kind, len(items))
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"resourceVersion": version},
        "items": items,
    }


def _json(body: Mapping[str, Any]) -> Answer:
    return JSON, json.dumps(body, separators=(",", ":")).encode()
