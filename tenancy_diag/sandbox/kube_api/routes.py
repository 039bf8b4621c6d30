"""The API's paths and what each answers: discovery, namespaces, pods, logs, Deployments, and
(from :mod:`.batch_routes` and :mod:`.configs`) Jobs, Secrets, ConfigMaps.

The scenario's objects are read-only but for deleting a pod (``DELETE .../pods/{name}``), which
answers the pod marked for deletion and leaves its ReplicaSet's replacement in its place. Jobs,
their pods, Secrets, ConfigMaps and Namespaces are what clients create, stored in
:class:`~.resources.Resources`; a Job's pods show beside the scenario's in the pod routes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tenancy_diag.sandbox import serving
from tenancy_diag.sandbox.kube_api.answers import JSON, Answer, Reply, Request, json_answer
from tenancy_diag.sandbox.kube_api.batch_routes import BatchApi
from tenancy_diag.sandbox.kube_api.configs import ConfigApi
from tenancy_diag.sandbox.kube_api.deletions import delete_options
from tenancy_diag.sandbox.kube_api.errors import ApiError, no_route, not_found, precondition_failed
from tenancy_diag.sandbox.kube_api.identities import resource_version, uid
from tenancy_diag.sandbox.kube_api.kubelet import KubeletOptions
from tenancy_diag.sandbox.kube_api.logs import log_options, log_text
from tenancy_diag.sandbox.kube_api.objects import Fleet
from tenancy_diag.sandbox.kube_api.resources import Resources
from tenancy_diag.sandbox.kube_api.selectors import (
    parse_fields,
    parse_selector,
    select,
    select_fields,
)
from tenancy_diag.sandbox.kube_api.watches import is_watch
from tenancy_diag.sandbox.kube_api.workloads import WorkloadOptions
from tenancy_diag.sandbox.topology import REPLICAS, Pod, Scenario

__all__ = ["JSON", "VERSION", "Answer", "Api", "Reply", "Request"]
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

Handler = Callable[[Request], Answer | Reply]


class Api:
    """The routes, independent of HTTP plumbing so they read like the API reference."""

    def __init__(
        self,
        scenario: Scenario,
        options: WorkloadOptions | None = None,
        kubelet: KubeletOptions | None = None,
    ) -> None:
        self.fleet = Fleet(scenario, options)
        self.scenario = scenario
        self.resources = Resources()
        self.configs = ConfigApi(self.resources, self.fleet.namespace_names)
        #: Jobs; their pods run on this machine when ``kubelet`` options are given.
        self.batch = BatchApi(self.resources, self.configs, kubelet)
        pod = r"/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)"
        self.table: dict[str, list[tuple[re.Pattern[str], Handler]]] = {
            "DELETE": [(re.compile(pod), self.delete_pod)]
        }
        self.table["GET"] = [
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
        for method, pattern, handler in (*self.configs.routes, *self.batch.routes):
            self.table.setdefault(method, []).append((re.compile(pattern), handler))

    def answer(
        self,
        path: str,
        region: str | None,
        query: Mapping[str, str],
        method: str = "GET",
        body: bytes = b"",
    ) -> Answer | Reply:
        for pattern, handler in self.table.get(method, []):
            if match := pattern.fullmatch(path):
                return handler(Request(region, query, match, body))
        if any(p.fullmatch(path) for routes in self.table.values() for p, _ in routes):
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        raise no_route()

    def close(self) -> None:
        """Stop the Jobs' pods and end every watch."""
        self.batch.controller.close()

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
        groups = []
        for name in ("apps", "batch"):
            version = {"groupVersion": f"{name}/v1", "version": "v1"}
            groups.append({"name": name, "versions": [version], "preferredVersion": version})
        return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    # namespaces
    def namespaces(self, request: Request) -> Answer:
        items = [self._namespace_json(name) for name in self.configs.namespaces()]
        return _json(_list("NamespaceList", "v1", items))

    def namespace(self, request: Request) -> Answer:
        name = request.match["ns"]
        self.configs.require_namespace(name)
        return _json({"kind": "Namespace", "apiVersion": "v1", **self._namespace_json(name)})

    def _namespace_json(self, name: str) -> dict[str, Any]:
        return self.configs.namespace_json(name) or self.fleet.namespace_json(name)

    # pods
    def pods(self, request: Request) -> Answer | Reply:
        namespace = request.match.groupdict().get("ns")
        if is_watch(request.query):
            # Only the Jobs' pods change; the scenario's are listed, never watched.
            return self.batch.watch_pods(namespace, request.query)
        selector = parse_selector(request.query.get("labelSelector", ""))
        fields = parse_fields(request.query.get("fieldSelector", ""), "pods")
        bodies = [self.fleet.pod_json(pod) for pod in self._pods_in(request.region, namespace)]
        bodies = select_fields(select(bodies, selector), fields)
        if request.region is None:
            bodies += self.batch.pods(namespace, request.query)
        # The version of what clients write, so a watch can start where this list ended.
        return _json(_list("PodList", "v1", bodies, str(self.resources.version)))

    def pod(self, request: Request) -> Answer:
        job_pod = self._job_pod(request)
        if job_pod is not None:
            return _json({"kind": "Pod", "apiVersion": "v1", **job_pod})
        pod = self._find_pod(request)
        return _json({"kind": "Pod", "apiVersion": "v1", **self.fleet.pod_json(pod)})

    def pod_log(self, request: Request) -> Answer:
        job_pod = self._job_pod(request)
        if job_pod is not None:
            return "text/plain", self.batch.pod_log(job_pod, request.query)
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

    def _job_pod(self, request: Request) -> dict[str, Any] | None:
        if request.region is not None:
            return None
        return self.batch.pod(request.match["ns"], request.match["name"])

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


def _list(
    kind: str, api_version: str, items: list[dict[str, Any]], version: str | None = None
) -> dict[str, Any]:
    # Items of a list carry no kind/apiVersion of their own, as on a real cluster.
    version = version or resource_version(kind, len(items))
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"resourceVersion": version},
        "items": items,
    }


def _json(body: Mapping[str, Any]) -> Answer:
    return json_answer(body)
