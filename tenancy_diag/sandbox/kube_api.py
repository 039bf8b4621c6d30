"""A Kubernetes API server for the sandbox: the Tenancy pods, their Deployments and their logs.

It answers the read calls the diagnostics make with the real API's JSON (kinds, apiVersions,
metadata, Status objects for errors, worded as kube-apiserver words them), so the real
``kubernetes`` client and kubectl work against it unchanged. Everything is derived from the
scenario (:mod:`~tenancy_diag.sandbox.topology`, :mod:`~tenancy_diag.sandbox.pod_logs`).

One server can pose as one cluster serving every region (the default context) or as one
cluster per region: a context whose server URL ends in ``/clusters/<region>`` sees only that
region's pods, as a per-region cluster would.

The server's clock is the scenario's end, not the wall clock: the logs stop there, and
``sinceSeconds`` counts back from there so "the last 15 minutes" means the incident's last 15
minutes even when the sandbox was started with an end in the past (a pinned scenario, a replay).
A client that computes ``sinceSeconds`` from the wall clock therefore gets at least what it asked
for, never less; the log source trims the surplus by each line's ``ts``.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tenancy_diag import signals as signals_mod
from tenancy_diag.sandbox import pod_logs, serving
from tenancy_diag.sandbox.topology import REPLICAS, Pod, Scenario, ScenarioSpec

CONTEXT = "tenancy-sandbox"
CLUSTER_PREFIX = "/clusters/"
IMAGE_TAG = "1.42.0"
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
# Paths a real cluster answers without credentials (system:public-info-viewer).
_PUBLIC = frozenset({"/version", "/healthz", "/livez", "/readyz"})
_NAMESPACES = ("default", "kube-public", "kube-system")
_JSON = "application/json"


# -- errors ---------------------------------------------------------------------------------
class ApiError(Exception):
    """An error answer, sent as a ``Status`` object."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _not_found(kind: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind} "{name}" not found', {"name": name, "kind": kind})


def _no_route() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _invalid(pod: str, field: str, value: object, why: str) -> ApiError:
    message = f'PodLogOptions "{pod}" is invalid: {field}: Invalid value: {value}: {why}'
    causes = [
        {"reason": "FieldValueInvalid", "message": f"Invalid value: {value}: {why}", "field": field}
    ]
    return ApiError(
        422, "Invalid", message, {"name": pod, "kind": "PodLogOptions", "causes": causes}
    )


# -- label selectors ------------------------------------------------------------------------
@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector: ``key op values``."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "exists":
            return value is not None
        if self.op == "!":
            return value is None
        if self.op in ("=", "in"):
            return value in self.values
        return value not in self.values  # "!=" and "notin" match a missing label too


_SET_CLAUSE = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^()]*)\)\s*$")
_EQ_CLAUSE = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)\s*$")
_KEY_CLAUSE = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """Equality (``=``, ``==``, ``!=``), set (``in``, ``notin``) and existence clauses."""
    return tuple(_clause(c) for c in _split_clauses(text) if c.strip())


def _split_clauses(text: str) -> list[str]:
    clauses: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            clauses.append("".join(current))
            current = []
        else:
            current.append(char)
    clauses.append("".join(current))
    return clauses


def _clause(text: str) -> Requirement:
    if match := _SET_CLAUSE.match(text):
        values = frozenset(v.strip() for v in match[3].split(",") if v.strip())
        return Requirement(match[1], match[2], values)
    if match := _EQ_CLAUSE.match(text):
        return Requirement(match[1], "!=" if match[2] == "!=" else "=", frozenset({match[3]}))
    if match := _KEY_CLAUSE.match(text):
        return Requirement(match[2], "!" if match[1] else "exists")
    raise _bad_request(
        f"unable to parse requirement: found '{text.strip()}', expected: "
        "'=', '!=', '==', 'in', 'notin'"
    )


# -- the cluster's objects ------------------------------------------------------------------
def _hash(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def _uid(*parts: object) -> str:
    return str(uuid.UUID(hex=_hash("uid", *parts)[:32]))


def _rv(*parts: object) -> str:
    return str(100_000 + int(_hash("rv", *parts)[:8], 16) % 900_000)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Fleet:
    """The scenario's pods and Deployments as API objects, and their logs (cached)."""

    def __init__(self, scenario: Scenario) -> None:
        logs = signals_mod.load().doc.logs
        self.scenario = scenario
        self.namespace = logs.namespace
        self.app_label, self.region_label = logs.app_label, logs.region_label
        self.pods = {pod.name: pod for pod in scenario.pods}
        self.created = scenario.start - timedelta(days=3)
        self._logs: dict[tuple[str, bool], tuple[list[float], list[str]]] = {}
        self._lock = threading.Lock()

    def pod_json(self, pod: Pod) -> dict[str, Any]:
        return {
            "metadata": self._pod_meta(pod),
            "spec": self._pod_spec(pod),
            "status": self._pod_status(pod),
        }

    def _pod_meta(self, pod: Pod) -> dict[str, Any]:
        template = pod.name.rsplit("-", 2)[-2]
        replica_set = pod.name.rsplit("-", 1)[0]
        return {
            "name": pod.name,
            "generateName": f"{replica_set}-",
            "namespace": self.namespace,
            "uid": _uid(pod.name),
            "resourceVersion": _rv(pod.name, pod.restarts),
            "creationTimestamp": _iso(self.created),
            "labels": {
                self.app_label: pod.app,
                self.region_label: pod.region,
                "pod-template-hash": template,
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": replica_set,
                    "uid": _uid(replica_set),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }

    def _pod_spec(self, pod: Pod) -> dict[str, Any]:
        return {
            "containers": [_container(pod.app)],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": pod.app,
            "nodeName": _node(pod),
            "schedulerName": "default-scheduler",
            "nodeSelector": {"topology.kubernetes.io/region": pod.region},
        }

    def _pod_status(self, pod: Pod) -> dict[str, Any]:
        started = pod_logs.restart_at(self.scenario, pod) or self.created
        conditions = [
            {
                "type": kind,
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": _iso(started if kind.endswith("Ready") else self.created),
            }
            for kind in (
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            )
        ]
        ip = _pod_ip(pod)
        return {
            "phase": "Running",
            "conditions": conditions,
            "qosClass": "Burstable",
            "hostIP": _node_ip(pod),
            "hostIPs": [{"ip": _node_ip(pod)}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": _iso(self.created),
            "containerStatuses": [self._container_status(pod, started)],
        }

    def _container_status(self, pod: Pod, started: datetime) -> dict[str, Any]:
        last: dict[str, Any] = {}
        restart = pod_logs.restart_at(self.scenario, pod)
        if restart is not None:
            last = {
                "terminated": {
                    "exitCode": 137,
                    "reason": "OOMKilled",
                    "startedAt": _iso(self.created),
                    "finishedAt": _iso(restart),
                    "containerID": f"containerd://{_hash(pod.name, 'previous')}",
                }
            }
        return {
            "name": pod.app,
            "image": _image(pod.app),
            "imageID": f"{_image(pod.app).split(':')[0]}@sha256:{_hash(pod.app, IMAGE_TAG)}",
            "containerID": f"containerd://{_hash(pod.name, pod.restarts)}",
            "ready": True,
            "started": True,
            "restartCount": pod.restarts,
            "state": {"running": {"startedAt": _iso(started)}},
            "lastState": last,
        }

    def deployment_json(self, app: str, regions: tuple[str, ...]) -> dict[str, Any]:
        replicas = REPLICAS[app] * len(regions)
        labels = {self.app_label: app}
        generation = 3
        return {
            "metadata": {
                "name": app,
                "namespace": self.namespace,
                "uid": _uid("deploy", app, *regions),
                "resourceVersion": _rv("deploy", app, *regions),
                "generation": generation,
                "creationTimestamp": _iso(self.created - timedelta(days=30)),
                "labels": labels,
                "annotations": {
                    "deployment.kubernetes.io/revision": str(generation),
                    "tenancy.sandbox/regions": ",".join(regions),
                },
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [_container(app)]},
                },
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
                },
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
            "status": {
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "conditions": self._deployment_conditions(app),
            },
        }

    def _deployment_conditions(self, app: str) -> list[dict[str, Any]]:
        moment = _iso(self.created)
        return [
            {
                "type": "Available",
                "status": "True",
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
                "lastUpdateTime": moment,
                "lastTransitionTime": moment,
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable",
                "message": f'ReplicaSet "{app}" has successfully progressed.',
                "lastUpdateTime": moment,
                "lastTransitionTime": moment,
            },
        ]

    def logs(self, pod: Pod, previous: bool) -> tuple[list[float], list[str]]:
        key = (pod.name, previous)
        cached = self._logs.get(key)
        if cached is None:
            # Generated outside the lock: it is deterministic, so a rare duplicate is harmless
            # and one slow container never blocks requests for the others.
            timed = pod_logs.timed_lines_for(self.scenario, pod, previous)
            cached = ([moment for moment, _ in timed], [line for _, line in timed])
            with self._lock:
                self._logs.setdefault(key, cached)
        return cached


def _image(app: str) -> str:
    return f"registry.example.com/tenancy/{app}:{IMAGE_TAG}"


def _container(app: str) -> dict[str, Any]:
    return {
        "name": app,
        "image": _image(app),
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
        ],
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"},
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def _octets(*parts: object) -> tuple[int, int]:
    digest = int(_hash(*parts)[:8], 16)
    return digest % 250 + 1, (digest >> 8) % 250 + 2


def _node_ip(pod: Pod) -> str:
    a, b = _octets("node", pod.region, pod.name)
    return f"10.{a % 16}.{a}.{b}"


def _node(pod: Pod) -> str:
    return f"ip-{_node_ip(pod).replace('.', '-')}.{pod.region}.compute.internal"


def _pod_ip(pod: Pod) -> str:
    a, b = _octets("pod", pod.name)
    return f"100.64.{a}.{b}"


# -- pod logs -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogOptions:
    container: str | None = None
    since: datetime | None = None
    tail_lines: int | None = None
    previous: bool = False
    timestamps: bool = False
    limit_bytes: int | None = None


def log_options(query: Mapping[str, str], pod: str, clock: datetime) -> LogOptions:
    """The log call's query string, validated as kube-apiserver validates PodLogOptions."""
    since_seconds = _int_param(query, "sinceSeconds")
    since_time = _time_param(query, "sinceTime")
    if since_seconds is not None and since_time is not None:
        raise _invalid(
            pod,
            "sinceSeconds",
            since_seconds,
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        )
    if since_seconds is not None and since_seconds < 1:
        raise _invalid(pod, "sinceSeconds", since_seconds, "must be greater than 0")
    tail = _int_param(query, "tailLines")
    if tail is not None and tail < 0:
        raise _invalid(pod, "tailLines", tail, "must be greater than or equal to 0")
    limit = _int_param(query, "limitBytes")
    if limit is not None and limit < 1:
        raise _invalid(pod, "limitBytes", limit, "must be greater than 0")
    if since_seconds is not None:
        since_time = clock - timedelta(seconds=since_seconds)
    return LogOptions(
        container=query.get("container") or None,
        since=since_time,
        tail_lines=tail,
        previous=_bool_param(query, "previous"),
        timestamps=_bool_param(query, "timestamps"),
        limit_bytes=limit,
    )


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    if name not in query:
        return None
    try:
        return int(query[name])
    except ValueError:
        raise _bad_request(f'strconv.ParseInt: parsing "{query[name]}": invalid syntax') from None


def _bool_param(query: Mapping[str, str], name: str) -> bool:
    # As apimachinery converts query booleans: only "0" and "false" are false.
    raw = query.get(name)
    return raw is not None and raw != "0" and raw.lower() != "false"


def _time_param(query: Mapping[str, str], name: str) -> datetime | None:
    if name not in query:
        return None
    try:
        moment = datetime.fromisoformat(query[name])
    except ValueError:
        raise _bad_request(
            f'parsing time "{query[name]}" as "2006-01-02T15:04:05Z07:00": cannot parse'
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def log_text(fleet: Fleet, pod: Pod, options: LogOptions) -> bytes:
    """The body of a log answer: the selected lines, each ending in a newline."""
    if options.container not in (None, pod.app):
        raise _bad_request(f"container {options.container} is not valid for pod {pod.name}")
    if options.previous and not pod.restarts:
        raise _bad_request(
            f'previous terminated container "{pod.app}" in pod "{pod.name}" not found'
        )
    times, lines = fleet.logs(pod, options.previous)
    first = bisect.bisect_left(times, options.since.timestamp()) if options.since else 0
    if options.tail_lines is not None:
        first = max(first, len(lines) - options.tail_lines)
    chosen = lines[first:]
    if options.timestamps:
        chosen = [f"{_nano(t)} {line}" for t, line in zip(times[first:], chosen, strict=True)]
    body = "".join(line + "\n" for line in chosen).encode()
    return body[: options.limit_bytes] if options.limit_bytes else body


def _nano(moment: float) -> str:
    millis = round(moment * 1000)
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000))
    return f"{whole}.{millis % 1000:03d}000000Z"


# -- routing --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """What a route sees: the region the client's cluster serves (None: all) and the query."""

    region: str | None
    query: Mapping[str, str]
    match: re.Match[str]


Answer = tuple[str, bytes]  # (content type, body)


class Api:
    """The routes, independent of HTTP plumbing so they read like the API reference."""

    def __init__(self, scenario: Scenario) -> None:
        self.fleet = Fleet(scenario)
        self.scenario = scenario
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

    def answer(self, path: str, region: str | None, query: Mapping[str, str]) -> Answer:
        for pattern, handler in self.routes:
            if match := pattern.fullmatch(path):
                return handler(Request(region, query, match))
        raise _no_route()

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
        items = [self._namespace_json(name) for name in self._namespace_names()]
        return _json(_list("NamespaceList", "v1", items))

    def namespace(self, request: Request) -> Answer:
        name = request.match["ns"]
        if name not in self._namespace_names():
            raise _not_found("namespaces", name)
        return _json({"kind": "Namespace", "apiVersion": "v1", **self._namespace_json(name)})

    def _namespace_names(self) -> tuple[str, ...]:
        return (*_NAMESPACES, self.fleet.namespace)

    def _namespace_json(self, name: str) -> dict[str, Any]:
        return {
            "metadata": {
                "name": name,
                "uid": _uid("ns", name),
                "resourceVersion": _rv("ns", name),
                "creationTimestamp": _iso(self.fleet.created - timedelta(days=90)),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    # pods
    def pods(self, request: Request) -> Answer:
        namespace = request.match.groupdict().get("ns")
        selector = parse_selector(request.query.get("labelSelector", ""))
        bodies = [self.fleet.pod_json(pod) for pod in self._pods_in(request.region, namespace)]
        return _json(_list("PodList", "v1", _select(bodies, selector)))

    def pod(self, request: Request) -> Answer:
        pod = self._find_pod(request)
        return _json({"kind": "Pod", "apiVersion": "v1", **self.fleet.pod_json(pod)})

    def pod_log(self, request: Request) -> Answer:
        pod = self._find_pod(request)
        options = log_options(request.query, pod.name, self.scenario.end)
        return "text/plain", log_text(self.fleet, pod, options)

    def _pods_in(self, region: str | None, namespace: str | None) -> list[Pod]:
        if namespace not in (None, self.fleet.namespace):
            return []  # the real API lists an unknown namespace as empty, it does not 404
        return [p for p in self.scenario.pods if region in (None, p.region)]

    def _find_pod(self, request: Request) -> Pod:
        name = request.match["name"]
        pod = self.fleet.pods.get(name)
        if pod is None or pod not in self._pods_in(request.region, request.match["ns"]):
            raise _not_found("pods", name)
        return pod

    # deployments
    def deployments(self, request: Request) -> Answer:
        selector = parse_selector(request.query.get("labelSelector", ""))
        bodies = [self._deployment(request, app) for app in self._apps(request)]
        return _json(_list("DeploymentList", "apps/v1", _select(bodies, selector)))

    def deployment(self, request: Request) -> Answer:
        name = request.match["name"]
        if name not in self._apps(request):
            raise _not_found("deployments.apps", name)
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


def _select(
    bodies: list[dict[str, Any]], selector: tuple[Requirement, ...]
) -> list[dict[str, Any]]:
    return [b for b in bodies if all(r.matches(b["metadata"]["labels"]) for r in selector)]


def _list(kind: str, api_version: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    # Items of a list carry no kind/apiVersion of their own, as on a real cluster.
    version = _rv(kind, len(items))
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"resourceVersion": version},
        "items": items,
    }


def _json(body: Mapping[str, Any]) -> Answer:
    return _JSON, json.dumps(body, separators=(",", ":")).encode()


# -- HTTP -----------------------------------------------------------------------------------
def make_handler(
    scenario: Scenario, token: str, *, log_requests: bool = False
) -> type[BaseHTTPRequestHandler]:
    """A request handler class serving ``scenario`` to clients presenting ``token``."""
    api = Api(scenario)
    expected = f"Bearer {token}".encode()
    regions = frozenset(scenario.spec.regions)

    class KubeApiHandler(BaseHTTPRequestHandler):
        server_version = "kube-apiserver-sandbox/1.31"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            try:
                content_type, body = self._route()
                self._send(200, content_type, body)
            except ApiError as e:
                self._send(e.code, _JSON, json.dumps(e.status()).encode())

        def _route(self) -> Answer:
            parts = urlsplit(self.path)
            region, path = _split_cluster(parts.path, regions)
            path = path.rstrip("/") or "/"
            if path not in _PUBLIC and not self._authorized():
                raise ApiError(401, "Unauthorized", "Unauthorized")
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            return api.answer(path, region, query)

        def _authorized(self) -> bool:
            presented = (self.headers.get("Authorization") or "").strip().encode()
            return hmac.compare_digest(presented, expected)

        def _refuse(self) -> None:
            error = ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
            self._send(405, _JSON, json.dumps(error.status()).encode())

        do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache, private")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            if log_requests:
                super().log_message(format, *args)

    return KubeApiHandler


def _split_cluster(path: str, regions: frozenset[str]) -> tuple[str | None, str]:
    """``/clusters/<region>/api/...`` -> (region, ``/api/...``); other paths serve all regions."""
    if not path.startswith(CLUSTER_PREFIX):
        return None, path
    region, _, rest = path[len(CLUSTER_PREFIX) :].partition("/")
    if region not in regions:
        raise _no_route()
    return region, "/" + rest


# -- kubeconfig and process -----------------------------------------------------------------
def write_kubeconfig(
    path: Path, server_url: str, token: str, contexts: Mapping[str, str] | None
) -> None:
    """A kubeconfig for the sandbox, readable by its owner only.

    It always holds the context ``tenancy-sandbox`` (current) serving every region.
    ``contexts`` maps region -> context name, as ``KubeSettings.contexts_by_region`` does, and
    adds one context per region whose cluster sees only that region.
    """
    servers = {CONTEXT: server_url.rstrip("/")}
    for region, name in (contexts or {}).items():
        servers[name] = f"{server_url.rstrip('/')}{CLUSTER_PREFIX}{region}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "current-context": CONTEXT,
        "clusters": [{"name": n, "cluster": {"server": url}} for n, url in servers.items()],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": CONTEXT}} for n in servers],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created private before the token is written, so it is never readable by others.
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The sandbox's Kubernetes API server.")
    parser.add_argument("--scenario-file", type=Path, required=True)
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    spec = ScenarioSpec.from_json(json.loads(args.scenario_file.read_text(encoding="utf-8")))
    token = args.token_file.read_text(encoding="utf-8").strip()
    handler = make_handler(Scenario(spec), token, log_requests=True)
    server = ThreadingHTTPServer((serving.HOST, args.port), handler)
    server.daemon_threads = True
    serving.serve_forever(server, args.ready_file)


if __name__ == "__main__":
    main()
