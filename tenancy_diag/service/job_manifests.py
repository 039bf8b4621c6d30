"""A job of the queue as a ``batch/v1`` Job: its name, its pod, its limits. Pure: data in, JSON out.

**The name is the request's identity**, not the attempt's: ``tenancy-diag-<incident>-<digest of
the request's dedupe key>``, lowercased and cut to a DNS label (at most 63 characters, since it
becomes the pods' ``job-name`` label). The worker draws a fresh run id per service, so a name
made from the run id would let two replicas that received the same alert start two Jobs; a name
made from what the queue dedupes on lands the same replica after a crash, and any other replica,
on the same Job (409 AlreadyExists, then watch it). The run id of whoever created the Job rides
along as an annotation and names the bundle.

**The pod** runs ``tenancy-diag run-and-upload --to s3://... <run arguments>``: the same run
the subprocess executor starts, then the bundle's upload, in one command (no shell in the
image). It runs as user 10001 with a read-only root filesystem (``/work`` and ``/tmp`` are
emptyDirs; ``HOME`` is ``/tmp`` for Jupyter's runtime files), no privilege escalation, every
capability dropped and the runtime's default seccomp profile. Source endpoints come from a
ConfigMap as ``TENANCY_DIAG_*`` variables (``envFrom``); tokens from a Secret mounted as files
(``tenancy-api-token`` as ``TENANCY_API_TOKEN_FILE``, ``aws-credentials`` as
``AWS_SHARED_CREDENTIALS_FILE``); Kubernetes reads use the pod's service account.

**Time and retries**: ``activeDeadlineSeconds`` is the run timeout (the kernels share the pod
and die with it), ``backoffLimit: 0`` because the worker owns retries and their backoff, and
``ttlSecondsAfterFinished`` removes a Job nobody came back for.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tenancy_diag.errors import ConfigError
from tenancy_diag.service.jobs import Job
from tenancy_diag.settings import ENV_ACTOR

PREFIX = "tenancy-diag"
CONTAINER = "tenancy-diag"
#: Where the pod's bundle is written (an emptyDir), and its Secret's files.
WORK, OUT, TMP = "/work", "/work/out", "/tmp"  # noqa: S108 - the container's own emptyDir
SECRETS_DIR = "/etc/tenancy-diag/secrets"
TOKEN_KEY, AWS_KEY = "tenancy-api-token", "aws-credentials"
#: Annotations and labels the service reads back from a Job it did not create.
RUN_ID = f"{PREFIX}/run-id"
INCIDENT = f"{PREFIX}/incident"
REQUEST = f"{PREFIX}/request"
_MAX_NAME = 63
_DIGEST_CHARS = 10
_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class JobResources:
    """Requests and limits of the run's container: CPU in millicores, memory and the two
    emptyDirs' size limits in MiB (``/work`` holds the bundle, ``/tmp`` the kernels' files)."""

    cpu_request_m: int = 500
    cpu_limit_m: int = 2000
    memory_request_mib: int = 1024
    memory_limit_mib: int = 2048
    work_mib: int = 2048
    tmp_mib: int = 512

    def as_json(self) -> dict[str, dict[str, str]]:
        scratch = f"{self.work_mib + self.tmp_mib}Mi"
        return {
            "requests": {
                "cpu": f"{self.cpu_request_m}m",
                "memory": f"{self.memory_request_mib}Mi",
                "ephemeral-storage": scratch,
            },
            "limits": {
                "cpu": f"{self.cpu_limit_m}m",
                "memory": f"{self.memory_limit_mib}Mi",
                "ephemeral-storage": scratch,
            },
        }


@dataclass(frozen=True)
class JobSettings:
    """How the service runs a job as a Kubernetes Job; durations in seconds."""

    namespace: str
    image: str
    service_account: str
    #: ``s3://bucket/prefix``: where the pod puts the bundle and the service fetches it from.
    evidence: str
    #: ConfigMap of ``TENANCY_DIAG_*`` source endpoints for the pod (``envFrom``); None: none.
    config_map: str | None = None
    #: Secret mounted at :data:`SECRETS_DIR` (``tenancy-api-token``, ``aws-credentials``).
    secret: str | None = None
    #: The kubeconfig for the service's own calls; None: the pod's service account in a
    #: cluster, else ``$KUBECONFIG`` or ``~/.kube/config``.
    kubeconfig: Path | None = None
    resources: JobResources = field(default_factory=JobResources)
    ttl_after_finished_s: int = 3600
    termination_grace_s: int = 30
    #: Waited beyond the run timeout for the Job to end: scheduling, image pull, upload, grace.
    finish_grace_s: float = 120.0
    #: One watch request's ``timeoutSeconds``; the watch is then reopened where it left off.
    watch_s: int = 60
    #: One API call's timeout.
    request_timeout_s: float = 30.0
    run_as_user: int = 10001

    def __post_init__(self) -> None:
        missing = [
            flag
            for flag, value in (
                ("--namespace", self.namespace),
                ("--image", self.image),
                ("--service-account", self.service_account),
                ("--evidence-bucket", self.evidence),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"--executor kubernetes needs {', '.join(missing)}; the bundle leaves the pod "
                "through --evidence-bucket s3://bucket/prefix"
            )
        evidence_location(self.evidence)


def evidence_location(spec: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix)."""
    parts = urlsplit(spec)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            f"--evidence-bucket {spec!r} is not s3://bucket/prefix; name the bucket the Jobs' "
            "pods upload their bundles to"
        )
    return parts.netloc, parts.path.strip("/")


def job_name(job: Job) -> str:
    """``tenancy-diag-<incident>-<digest>``: the same for every service that got this request."""
    digest = hashlib.sha256(str(job.request.get("dedupe_key") or job.id).encode()).hexdigest()
    room = _MAX_NAME - len(PREFIX) - _DIGEST_CHARS - 2
    slug = _NOT_DNS.sub("-", job.incident_id.lower()).strip("-")[:room].strip("-")
    return "-".join(p for p in (PREFIX, slug, digest[:_DIGEST_CHARS]) if p)


def run_arguments(job: Job, run_id: str, extra: Sequence[str] = ()) -> list[str]:
    """``tenancy-diag run``'s arguments for ``job``, writing under :data:`OUT`."""
    arguments = [*(job.subsystems or ("all",)), "--incident", job.incident_id]
    arguments += ["--out", OUT, "--run-id", run_id]
    if job.region:
        arguments += ["--region", job.region]
    if job.tenant:
        arguments += ["--tenant", job.tenant]
    return [*arguments, *extra]


def job_manifest(
    job: Job, run_id: str, timeout_s: float, settings: JobSettings, extra: Sequence[str] = ()
) -> dict[str, Any]:
    """The Job that runs ``job`` into the bundle ``run_id`` and uploads it."""
    labels = {
        "app.kubernetes.io/name": PREFIX,
        "app.kubernetes.io/component": "run",
        INCIDENT: _label_value(job.incident_id),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(job),
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": {
                RUN_ID: run_id,
                INCIDENT: job.incident_id,
                REQUEST: str(job.request.get("dedupe_key", "")),
            },
        },
        "spec": {
            "activeDeadlineSeconds": max(1, math.ceil(timeout_s)),
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": settings.ttl_after_finished_s,
            "template": {
                "metadata": {"labels": labels, "annotations": {RUN_ID: run_id}},
                "spec": _pod_spec(job, run_id, settings, extra),
            },
        },
    }


def _pod_spec(job: Job, run_id: str, settings: JobSettings, extra: Sequence[str]) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [
        {"name": "work", "emptyDir": {"sizeLimit": f"{settings.resources.work_mib}Mi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": f"{settings.resources.tmp_mib}Mi"}},
    ]
    if settings.secret:
        # Readable by the run's group only (fsGroup), never by others.
        volumes.append(
            {"name": "secrets", "secret": {"secretName": settings.secret, "defaultMode": 0o440}}
        )
    return {
        "restartPolicy": "Never",
        "serviceAccountName": settings.service_account,
        "automountServiceAccountToken": True,
        "terminationGracePeriodSeconds": settings.termination_grace_s,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_user,
            "fsGroup": settings.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(job, run_id, settings, extra)],
        "volumes": volumes,
    }


def _container(
    job: Job, run_id: str, settings: JobSettings, extra: Sequence[str]
) -> dict[str, Any]:
    env = [
        {"name": "HOME", "value": TMP},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        # A pod has no login name; the audit log names who ran it.
        {
            "name": ENV_ACTOR,
            "value": f"system:serviceaccount:{settings.namespace}:{settings.service_account}",
        },
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "work", "mountPath": WORK},
        {"name": "tmp", "mountPath": TMP},
    ]
    if settings.secret:
        env += [
            {"name": "TENANCY_API_TOKEN_FILE", "value": f"{SECRETS_DIR}/{TOKEN_KEY}"},
            {"name": "AWS_SHARED_CREDENTIALS_FILE", "value": f"{SECRETS_DIR}/{AWS_KEY}"},
        ]
        mounts.append({"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True})
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["tenancy-diag"],
        "args": [
            "run-and-upload",
            "--to",
            settings.evidence,
            *run_arguments(job, run_id, extra),
        ],
        "env": env,
        "resources": settings.resources.as_json(),
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
        "workingDir": WORK,
    }
    if settings.config_map:
        container["envFrom"] = [{"configMapRef": {"name": settings.config_map}}]
    return container


def _label_value(text: str) -> str:
    value = _LABEL_VALUE.sub("-", text)[:_MAX_NAME]
    return value.strip("-._") or "none"
