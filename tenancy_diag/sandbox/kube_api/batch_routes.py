"""The ``batch/v1`` Job routes, and the Jobs' pods as the core pod routes show them.

Jobs: create (201; 409 AlreadyExists), get, ``/status``, list and watch in a namespace or all,
delete with ``propagationPolicy`` (and ``preconditions.uid``). A Job's pods are listed, read,
watched and their logs read through the same paths as the scenario's pods; the log is what the
container wrote to stdout and stderr, and a pod whose container never started answers 400 as
kubelet does ("is waiting to start").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from tenancy_diag.sandbox.kube_api import jobs
from tenancy_diag.sandbox.kube_api.answers import (
    JSON,
    Answer,
    Reply,
    Request,
    json_answer,
    json_reply,
    read_body,
)
from tenancy_diag.sandbox.kube_api.configs import ConfigApi
from tenancy_diag.sandbox.kube_api.controlling import JobController
from tenancy_diag.sandbox.kube_api.deletions import delete_options
from tenancy_diag.sandbox.kube_api.errors import bad_request, not_found_in, precondition_failed
from tenancy_diag.sandbox.kube_api.kubelet import KubeletOptions
from tenancy_diag.sandbox.kube_api.logs import log_options
from tenancy_diag.sandbox.kube_api.resources import Body, Resources
from tenancy_diag.sandbox.kube_api.watches import Watched, is_watch, stream

Route = tuple[str, str, Callable[[Request], Answer | Reply]]
_RESOURCES = [
    {
        "name": "jobs",
        "singularName": "job",
        "namespaced": True,
        "kind": "Job",
        "verbs": [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ],
        "categories": ["all"],
    },
    {
        "name": "jobs/status",
        "singularName": "",
        "namespaced": True,
        "kind": "Job",
        "verbs": ["get", "patch", "update"],
    },
]


class BatchApi:
    """Jobs, and the pods the Job controller makes for them."""

    def __init__(
        self, resources: Resources, configs: ConfigApi, kubelet: KubeletOptions | None
    ) -> None:
        self.resources = resources
        self.configs = configs
        self.controller = JobController(resources, kubelet)
        ns = r"/apis/batch/v1/namespaces/(?P<ns>[^/]+)"
        self.routes: list[Route] = [
            ("GET", r"/apis/batch/v1", self.discovery),
            ("GET", r"/apis/batch/v1/jobs", self.jobs),
            ("POST", rf"{ns}/jobs", self.create_job),
            ("GET", rf"{ns}/jobs", self.jobs),
            ("GET", rf"{ns}/jobs/(?P<name>[^/]+)", self.job),
            ("GET", rf"{ns}/jobs/(?P<name>[^/]+)/status", self.job),
            ("DELETE", rf"{ns}/jobs/(?P<name>[^/]+)", self.delete_job),
        ]

    # -- jobs -----------------------------------------------------------------------------------
    def discovery(self, request: Request) -> Answer:
        return json_answer(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": jobs.API_VERSION,
                "resources": _RESOURCES,
            }
        )

    def create_job(self, request: Request) -> Reply:
        namespace = request.match["ns"]
        body = read_body(request.body)
        jobs.validate_job(body, namespace)
        self.configs.require_namespace(namespace)
        created = self.controller.create(namespace, body)
        return json_reply(201, _single(created))

    def jobs(self, request: Request) -> Answer | Reply:
        namespace = request.match.groupdict().get("ns")
        watched = Watched.from_query(request.query, "jobs", "Job", jobs.API_VERSION, namespace)
        if is_watch(request.query):
            return Reply(200, JSON, stream(self.resources, watched, request.query))
        items, version = self.resources.listed("jobs", namespace)
        return _list("JobList", watched, items, version)

    def job(self, request: Request) -> Answer:
        found = self.resources.get("jobs", request.match["ns"], request.match["name"])
        if found is None:
            raise not_found_in(jobs.GROUP, "jobs", request.match["name"])
        return json_answer(_single(found))

    def delete_job(self, request: Request) -> Answer | Reply:
        options = delete_options(request.query, request.body)
        namespace, name = request.match["ns"], request.match["name"]
        found = self.resources.get("jobs", namespace, name)
        if found is None:
            raise not_found_in(jobs.GROUP, "jobs", name)
        if options.uid is not None and options.uid != found["metadata"]["uid"]:
            raise precondition_failed("jobs.batch", name, options.uid, found["metadata"]["uid"])
        if options.dry_run:
            return json_answer(_single(found))
        code, body = self.controller.delete(namespace, name, options.propagation)
        body = body if body.get("kind") == "Status" else _single(body)
        return json_reply(code, body) if code != 200 else json_answer(body)

    # -- the Jobs' pods -------------------------------------------------------------------------
    def pods(self, namespace: str | None, query: Mapping[str, str]) -> list[Body]:
        watched = Watched.from_query(query, "pods", "Pod", "v1", namespace)
        items, _ = self.resources.listed("pods", namespace)
        return [p for p in items if watched.matches(p["metadata"]["namespace"], p)]

    def watch_pods(self, namespace: str | None, query: Mapping[str, str]) -> Reply:
        watched = Watched.from_query(query, "pods", "Pod", "v1", namespace)
        return Reply(200, JSON, stream(self.resources, watched, query))

    def pod(self, namespace: str, name: str) -> Body | None:
        return self.resources.get("pods", namespace, name)

    def pod_log(self, pod: Body, query: Mapping[str, str]) -> bytes:
        meta = pod["metadata"]
        container = pod["spec"]["containers"][0]["name"]
        options = log_options(query, meta["name"], datetime.now(UTC))
        if options.container not in (None, container):
            raise bad_request(f"container {options.container} is not valid for pod {meta['name']}")
        if options.previous:
            raise bad_request(
                f'previous terminated container "{container}" in pod "{meta["name"]}" not found'
            )
        kubelet = self.controller.kubelet
        lines = kubelet.log(meta["namespace"], meta["name"]) if kubelet else None
        if lines is None:
            state = pod["status"]["containerStatuses"][0]["state"].get("waiting") or {}
            raise bad_request(
                f'container "{container}" in pod "{meta["name"]}" is waiting to start: '
                f"{state.get('reason', 'ContainerCreating')}"
            )
        if options.since is not None:
            lines = [(t, line) for t, line in lines if t >= options.since.timestamp()]
        if options.tail_lines is not None:
            lines = lines[len(lines) - min(options.tail_lines, len(lines)) :]
        text = "".join(
            (f"{_stamp(t)} " if options.timestamps else "") + line + "\n" for t, line in lines
        ).encode()
        return text[: options.limit_bytes] if options.limit_bytes else text


def _single(body: Body) -> Body:
    return {"kind": "Job", "apiVersion": jobs.API_VERSION, **body}


def _list(kind: str, watched: Watched, items: list[Body], version: int) -> Answer:
    selected = [i for i in items if watched.matches(i["metadata"]["namespace"], i)]
    return json_answer(
        {
            "kind": kind,
            "apiVersion": watched.api_version,
            "metadata": {"resourceVersion": str(version)},
            "items": selected,
        }
    )


def _stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
