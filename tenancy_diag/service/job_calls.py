"""The Kubernetes calls of the Job executor: create a Job or find the one already there, wait for
its end by watching, read its pod's exit code and log tail, delete it.

::

    TenancyDiagError
    └── JobApiError    the Kubernetes API refused a call or did not answer; ``retryable`` says
                       whether another attempt may help (a 5xx, a timeout) or not (403, 422)

Objects come back as the API's JSON (camelCase dicts), after the client has validated them
against its models. Waiting is a list then a watch from the list's ``resourceVersion``: each
watch asks the server to end it after ``watch_s``, and is reopened from the last version seen;
410 Expired (the version was compacted) starts over from a fresh list; a dropped connection
reopens from where it was.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client as kube_client
from kubernetes import config as kube_config
from kubernetes import watch as kube_watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from tenancy_diag.errors import ConfigError, TenancyDiagError, shorten
from tenancy_diag.service.job_manifests import CONTAINER, JobSettings

T = TypeVar("T")
Body = dict[str, Any]
_LOG_TAIL_LINES = 60
_LOG_LIMIT_BYTES = 16_000
_RETRYABLE = frozenset({429, 500, 502, 503, 504})


class JobApiError(TenancyDiagError):
    """A Kubernetes call failed; the message names the call and the next step."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class JobGone(JobApiError):
    """The Job was deleted while it was awaited (by another replica, a person, or its TTL)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


@dataclass(frozen=True)
class PodOutcome:
    """What the Job's pod left: its container's exit code (None: never ran or gone) and log."""

    exit_code: int | None
    log_tail: str


def new_api_client(kubeconfig: Path | None) -> kube_client.ApiClient:
    """The pod's service account inside a cluster, else the kubeconfig (or the default one)."""
    if kubeconfig is None:
        configuration = kube_client.Configuration()
        try:
            kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return kube_client.ApiClient(configuration)
        except ConfigException:
            pass  # not in a pod: the usual kubeconfig lookup follows
    try:
        api: kube_client.ApiClient = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig) if kubeconfig else None, persist_config=False
        )
    except (ConfigException, OSError, ValueError, TypeError, KeyError) as e:
        where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
        raise ConfigError(
            f"cannot reach the Kubernetes API that runs the Jobs: no service account and no "
            f"usable kubeconfig at {where} ({shorten(e, 160)}); pass --job-kubeconfig"
        ) from e
    return api


class JobsApi:
    """Jobs and their pods in ``settings.namespace``."""

    def __init__(self, settings: JobSettings, api: kube_client.ApiClient | None = None) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self.api = api or new_api_client(settings.kubeconfig)
        self.batch = kube_client.BatchV1Api(self.api)
        self.core = kube_client.CoreV1Api(self.api)

    def create_or_find(self, manifest: Body) -> tuple[Body, bool]:
        """(the Job, True) when this call created it; (the Job already there, False) on 409.

        A Job of that name still being deleted is waited out, then the create is tried again.
        """
        name = manifest["metadata"]["name"]
        # Built as the client's model first, so a malformed manifest fails here, not in the API.
        try:
            body = kube_client.V1Job.from_dict(manifest)
        except ValueError as e:
            raise ConfigError(
                f"the Job manifest for {name} is malformed ({shorten(e, 200)})"
            ) from e
        if body is None:
            raise ConfigError(f"the Job manifest for {name} is empty")
        for _ in range(3):
            try:
                created = self._call(
                    f"create Job {self.namespace}/{name}",
                    lambda: self.batch.create_namespaced_job(
                        self.namespace, body, _request_timeout=self._timeout()
                    ),
                    expect=409,
                )
            except _Expected:
                existing = self.read(name)
                if existing is None:
                    continue  # deleted in between: create again
                if not existing["metadata"].get("deletionTimestamp"):
                    return existing, False
                self._wait_gone(name)
                continue
            return self._json(created), True
        raise JobApiError(
            f"Job {self.namespace}/{name} kept reappearing while being deleted; retry later",
            retryable=True,
        )

    def read(self, name: str) -> Body | None:
        items, _ = self._list(name)
        return items[0] if items else None

    def wait_finished(self, name: str, deadline: float) -> Body | None:
        """The Job once it is Complete or Failed; None when ``deadline`` (monotonic) passes."""
        version: str | None = None
        while time.monotonic() < deadline:
            if version is None:
                items, version = self._list(name)
                if not items:
                    raise JobGone(f"Job {self.namespace}/{name} was deleted before it finished")
                if finished(items[0]):
                    return items[0]
            try:
                version, found = self._watch(name, version, deadline)
            except _Expired:
                version = None
                continue
            if found is not None:
                return found
        return None

    def pod_outcome(self, name: str) -> PodOutcome:
        """The newest pod of Job ``name``: its container's exit code and the end of its log."""
        listed = self._call(
            f"list the pods of Job {self.namespace}/{name}",
            lambda: self.core.list_namespaced_pod(
                self.namespace,
                label_selector=f"batch.kubernetes.io/job-name={name}",
                _request_timeout=self._timeout(),
            ),
        )
        pods = sorted(
            (self._json(p) for p in listed.items),
            key=lambda p: str(p["metadata"].get("creationTimestamp", "")),
        )
        if not pods:
            return PodOutcome(None, "")
        pod = pods[-1]
        terminated = _terminated(pod)
        tail = self._log_tail(pod["metadata"]["name"])
        if terminated is None:
            return PodOutcome(None, tail)
        if terminated.get("message"):
            # Why the runtime ended it (StartError, OOMKilled...), which the log cannot say.
            tail += f"\ncontainer {CONTAINER}: {terminated.get('reason')}: {terminated['message']}"
        return PodOutcome(int(terminated["exitCode"]), tail)

    def delete(self, name: str) -> None:
        """Delete Job ``name`` and (in the background) its pods; gone already is fine."""
        with contextlib.suppress(_Expected):
            self._call(
                f"delete Job {self.namespace}/{name}",
                lambda: self.batch.delete_namespaced_job(
                    name,
                    self.namespace,
                    propagation_policy="Background",
                    _request_timeout=self._timeout(),
                ),
                expect=404,
            )

    # -- helpers --------------------------------------------------------------------------------
    def _list(self, name: str) -> tuple[list[Body], str]:
        listed = self._call(
            f"read Job {self.namespace}/{name}",
            lambda: self.batch.list_namespaced_job(
                self.namespace,
                field_selector=f"metadata.name={name}",
                _request_timeout=self._timeout(),
            ),
        )
        version = listed.metadata.resource_version if listed.metadata else None
        return [self._json(j) for j in listed.items], str(version or "")

    def _watch(self, name: str, version: str, deadline: float) -> tuple[str, Body | None]:
        """Watch from ``version`` for at most one ``watch_s``: (last version, the finished Job)."""
        remaining = max(1.0, deadline - time.monotonic())
        window = int(min(remaining, self.settings.watch_s)) or 1
        watcher = kube_watch.Watch()  # type: ignore[no-untyped-call]
        try:
            for event in watcher.stream(  # type: ignore[no-untyped-call]
                self.batch.list_namespaced_job,
                self.namespace,
                field_selector=f"metadata.name={name}",
                resource_version=version,
                timeout_seconds=window,
                _request_timeout=window + self.settings.request_timeout_s,
            ):
                body = event["raw_object"]
                version = str(body["metadata"]["resourceVersion"])
                if event["type"] == "DELETED":
                    raise JobGone(f"Job {self.namespace}/{name} was deleted before it finished")
                if finished(body):
                    return version, body
        except ApiException as e:
            if e.status == 410:
                raise _Expired from e
            raise self._wrap(f"watch Job {self.namespace}/{name}", e) from e
        except (urllib3.exceptions.HTTPError, OSError):
            time.sleep(1.0)  # the connection dropped: reopen from the last version seen
        finally:
            watcher.stop()  # type: ignore[no-untyped-call]
        return version, None

    def _log_tail(self, pod: str) -> str:
        try:
            text = self.core.read_namespaced_pod_log(
                pod,
                self.namespace,
                container=CONTAINER,
                tail_lines=_LOG_TAIL_LINES,
                limit_bytes=_LOG_LIMIT_BYTES,
                _request_timeout=self._timeout(),
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            return ""  # the pod went (deleted by its deadline or another replica): no log
        return str(text or "")

    def _call(self, what: str, call: Callable[[], T], *, expect: int | None = None) -> T:
        """``call()``; its errors wrapped, but for status ``expect`` (raised as _Expected)."""
        try:
            return call()
        except ApiException as e:
            if expect is not None and e.status == expect:
                raise _Expected from e
            raise self._wrap(what, e) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise JobApiError(
                f"the Kubernetes API did not answer to {what} ({shorten(e, 160)}); check "
                "--job-kubeconfig or the cluster's health",
                retryable=True,
            ) from e

    def _wrap(self, what: str, error: ApiException) -> JobApiError:
        status = int(error.status or 0)
        message = _status_message(error)
        if status in (401, 403):
            hint = (
                f"grant the service's account create/get/list/watch/delete on jobs and "
                f"get/list on pods and pods/log in namespace {self.namespace}"
            )
        elif status == 404:
            hint = f"does namespace {self.namespace} exist? check --namespace"
        elif status == 422:
            hint = "the cluster refused the Job's manifest; check --image and the job settings"
        else:
            hint = "retry later"
        return JobApiError(
            f"the Kubernetes API refused to {what} ({status} {message}); {hint}",
            retryable=status in _RETRYABLE,
        )

    def _wait_gone(self, name: str) -> None:
        deadline = time.monotonic() + self.settings.termination_grace_s + 30
        while time.monotonic() < deadline and self.read(name) is not None:
            time.sleep(0.5)

    def _json(self, model: Any) -> Body:
        return dict(self.api.sanitize_for_serialization(model))  # type: ignore[no-untyped-call]

    def _timeout(self) -> float:
        return self.settings.request_timeout_s


class _Expected(Exception):
    """The status the caller expects and handles (409 on create, 404 on delete)."""


class _Expired(Exception):
    """410: the watch's version is older than the server keeps."""


def finished(job: Body) -> bool:
    return terminal_condition(job) is not None


def terminal_condition(job: Body) -> Body | None:
    """The Job's Complete or Failed condition (True), else None."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return dict(condition)
    return None


def _terminated(pod: Body) -> Body | None:
    """The run container's ``state.terminated``, or None while it has not ended."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            terminated = (status.get("state") or {}).get("terminated")
            return dict(terminated) if terminated is not None else None
    return None


def _status_message(error: ApiException) -> str:
    # The body is a Status object; its message is what kubectl would print.
    try:
        return shorten(json.loads(error.body or "")["message"], 200)
    except (ValueError, KeyError, TypeError):
        return shorten(error.reason or "no reason given", 200)
