"""A ``batch/v1`` Job as the API stores it: validated, defaulted, and its status as it moves.

What kube-apiserver does to a Job on create, in the parts a client sees: the name must be a DNS
subdomain of at most 63 characters (it becomes the pods' ``job-name`` label); the template's
``restartPolicy`` must be Never or OnFailure; every container needs a name and an image and may
only mount volumes the pod declares. Defaults follow the API's (``backoffLimit`` 6,
``completionMode`` NonIndexed, ``podReplacementPolicy`` TerminatingOrFailed, the generated
selector and its four labels, the pod template's ``dnsPolicy``, ``schedulerName``,
``terminationGracePeriodSeconds``, a container's ``terminationMessagePath`` and
``imagePullPolicy``).

Status follows the Job controller of Kubernetes 1.31: ``startTime``, ``active``/``ready``/
``terminating``/``succeeded``/``failed``, ``uncountedTerminatedPods``, and a terminal condition
preceded by its interim one (SuccessCriteriaMet then Complete; FailureTarget then Failed, with
reason DeadlineExceeded or BackoffLimitExceeded), ``completionTime`` on success only.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from tenancy_diag.sandbox.kube_api.errors import bad_request, invalid_object
from tenancy_diag.sandbox.kube_api.resources import Body

GROUP = "batch"
API_VERSION = "batch/v1"
#: The labels the API server puts on a Job's pod template (the legacy pair and the prefixed one).
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_LABELS = {"controller-uid": CONTROLLER_UID, "job-name": JOB_NAME}
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
DEFAULT_BACKOFF_LIMIT = 6

DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")
BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SUBDOMAIN_HELP = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_RESTART_POLICIES = ("OnFailure", "Never")


def check_object(body: Mapping[str, Any], kind: str, api_version: str, namespace: str) -> None:
    """What every create checks: the body's kind, version and namespace agree with the URL."""
    if body.get("kind") not in (None, kind) or body.get("apiVersion") not in (None, api_version):
        raise bad_request(
            f"the API version in the data ({body.get('apiVersion')}) does not match the expected "
            f"API version ({api_version})"
        )
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        raise bad_request("Object 'metadata' is missing or not an object")
    if meta.get("namespace") not in (None, "", namespace):
        raise bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )


def check_object_name(kind: str, group: str, name: object, max_length: int = 253) -> str:
    if not isinstance(name, str) or not name:
        raise invalid_object(
            kind,
            group,
            "",
            [
                (
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                )
            ],
        )
    problems = []
    if not _SUBDOMAIN.fullmatch(name):
        problems.append(f'Invalid value: "{name}": {_SUBDOMAIN_HELP}')
    if len(name) > max_length:
        problems.append(f'Invalid value: "{name}": must be no more than {max_length} characters')
    if problems:
        raise invalid_object(
            kind, group, name, [("FieldValueInvalid", "metadata.name", p) for p in problems]
        )
    return name


def validate_job(body: Mapping[str, Any], namespace: str) -> str:
    """The Job's name, once its body passes the checks the API makes; else 400 or 422."""
    check_object(body, "Job", API_VERSION, namespace)
    name = check_object_name("Job", GROUP, body["metadata"].get("name"), max_length=63)
    given = body.get("spec")
    spec: Mapping[str, Any] = given if isinstance(given, dict) else {}
    causes: list[tuple[str, str, str]] = []
    for field in ("activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished"):
        value = spec.get(field)
        least = 1 if field == "activeDeadlineSeconds" else 0
        if value is not None and (not isinstance(value, int) or value < least):
            causes.append(
                (
                    "FieldValueInvalid",
                    f"spec.{field}",
                    f"Invalid value: {value}: must be greater than or equal to {least}",
                )
            )
    template = spec.get("template")
    pod = (template.get("spec") if isinstance(template, dict) else None) or {}
    causes += _pod_causes(pod)
    if causes:
        raise invalid_object("Job", GROUP, name, causes)
    return name


def _pod_causes(pod: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    where = "spec.template.spec"
    causes = []
    policy = pod.get("restartPolicy")
    if policy not in _RESTART_POLICIES:
        supported = ", ".join(f'"{p}"' for p in _RESTART_POLICIES)
        detail = (
            f"Required value: valid values: {supported}"
            if policy is None
            else f'Unsupported value: "{policy}": supported values: {supported}'
        )
        reason = "FieldValueRequired" if policy is None else "FieldValueNotSupported"
        causes.append((reason, f"{where}.restartPolicy", detail))
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        return [*causes, ("FieldValueRequired", f"{where}.containers", "Required value")]
    volumes = {v.get("name") for v in pod.get("volumes") or [] if isinstance(v, dict)}
    for i, container in enumerate(containers):
        for field in ("name", "image"):
            if not (isinstance(container, dict) and container.get(field)):
                causes.append(
                    ("FieldValueRequired", f"{where}.containers[{i}].{field}", "Required value")
                )
        for j, mount in enumerate((container or {}).get("volumeMounts") or []):
            if mount.get("name") not in volumes:
                causes.append(
                    (
                        "FieldValueNotFound",
                        f"{where}.containers[{i}].volumeMounts[{j}].name",
                        f'Not found: "{mount.get("name")}"',
                    )
                )
    return causes


def defaulted(body: Mapping[str, Any], namespace: str, uid: str, now: str) -> Body:
    """The Job as stored: metadata filled in, the spec defaulted, an empty status."""
    job = copy.deepcopy(dict(body))
    job.pop("kind", None)
    job.pop("apiVersion", None)
    meta = job["metadata"]
    meta.update(namespace=namespace, uid=uid, generation=1, creationTimestamp=now)
    spec = job.setdefault("spec", {})
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", DEFAULT_BACKOFF_LIMIT)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    spec.setdefault("manualSelector", None)
    if spec["manualSelector"] is None:
        del spec["manualSelector"]
    spec["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}
    template = spec["template"]
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    generated = {CONTROLLER_UID: uid, JOB_NAME: meta["name"]}
    labels.update(generated)
    labels.update({legacy: generated[key] for legacy, key in LEGACY_LABELS.items()})
    if not meta.get("labels"):
        meta["labels"] = dict(labels)
    _default_pod_spec(template["spec"])
    job["status"] = {}
    return job


def _default_pod_spec(pod: dict[str, Any]) -> None:
    pod.setdefault("dnsPolicy", "ClusterFirst")
    pod.setdefault("schedulerName", "default-scheduler")
    pod.setdefault("securityContext", {})
    pod.setdefault("terminationGracePeriodSeconds", 30)
    for container in pod["containers"]:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        image = str(container["image"])
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    for volume in pod.get("volumes") or []:
        for source in ("secret", "configMap"):
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 0o644)


# -- status --------------------------------------------------------------------------------
def started(job: Body, now: str) -> None:
    """The controller picked the Job up and created its first pod."""
    job["status"] = {
        "startTime": now,
        "active": 1,
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    }


def pod_ready(job: Body, ready: bool) -> None:
    job["status"]["ready"] = int(ready)


def pod_replaced(job: Body) -> None:
    """A failed pod counted, a new one created in its place (``backoffLimit`` not reached)."""
    status = job["status"]
    status["failed"] = status.get("failed", 0) + 1
    status.update(active=1, ready=0)


def succeeded(job: Body, now: str) -> None:
    status = job["status"]
    status.pop("active", None)
    status.update(ready=0, terminating=0, succeeded=status.get("succeeded", 0) + 1)
    status["conditions"] = [
        *status.get("conditions", []),
        condition("SuccessCriteriaMet", COMPLETIONS_REACHED, now),
        condition("Complete", COMPLETIONS_REACHED, now),
    ]
    status["completionTime"] = now


def failure_target(job: Body, why: tuple[str, str], now: str, terminating: int) -> None:
    """The Job will fail; its pods are being stopped (``terminating`` of them)."""
    status = job["status"]
    status.pop("active", None)
    status.update(ready=0, terminating=terminating)
    status["conditions"] = [*status.get("conditions", []), condition("FailureTarget", why, now)]


def failed(job: Body, now: str, pods_failed: int) -> None:
    """Every pod is gone: the interim FailureTarget becomes the terminal Failed."""
    status = job["status"]
    target = next(c for c in status["conditions"] if c["type"] == "FailureTarget")
    status.update(ready=0, terminating=0, failed=status.get("failed", 0) + pods_failed)
    status["conditions"] = [
        *status["conditions"],
        condition("Failed", (target["reason"], target["message"]), now),
    ]


def condition(kind: str, why: tuple[str, str], now: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True",
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": why[0],
        "message": why[1],
    }


def has_condition(job: Mapping[str, Any], kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def finished(job: Mapping[str, Any]) -> bool:
    return has_condition(job, "Complete") or has_condition(job, "Failed")
