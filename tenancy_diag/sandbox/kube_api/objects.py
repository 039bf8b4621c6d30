"""The live pods, Deployments and namespaces as the API's JSON, and the pods' logs.

Items carry no ``kind``/``apiVersion``: a list's items have none on a real cluster, and a
single-object answer adds them itself. Which pods are live is :mod:`.workloads`' business; a
Deployment's status counts them, so a replacement that is not Ready yet lowers
``readyReplicas`` as it would on a real cluster.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from tenancy_diag import signals as signals_mod
from tenancy_diag.sandbox import pod_logs
from tenancy_diag.sandbox.kube_api.identities import (
    IMAGE_TAG,
    container_spec,
    digest,
    image,
    iso,
    node_ip,
    node_name,
    pod_ip,
    resource_version,
    uid,
)
from tenancy_diag.sandbox.kube_api.workloads import Birth, WorkloadOptions, Workloads
from tenancy_diag.sandbox.topology import Pod, Scenario

_NAMESPACES = ("default", "kube-public", "kube-system")


class Fleet:
    """The live pods, Deployments and namespaces as API objects, and pod logs (cached)."""

    def __init__(self, scenario: Scenario, options: WorkloadOptions | None = None) -> None:
        logs = signals_mod.load().doc.logs
        self.scenario = scenario
        self.namespace = logs.namespace
        self.app_label, self.region_label = logs.app_label, logs.region_label
        self.workloads = Workloads(scenario, options or WorkloadOptions())
        self.created = scenario.start - timedelta(days=3)
        self._logs: dict[tuple[str, bool], tuple[list[float], list[str]]] = {}
        self._lock = threading.Lock()

    def namespace_names(self) -> tuple[str, ...]:
        return (*_NAMESPACES, self.namespace)

    def namespace_json(self, name: str) -> dict[str, Any]:
        return {
            "metadata": {
                "name": name,
                "uid": uid("ns", name),
                "resourceVersion": resource_version("ns", name),
                "creationTimestamp": iso(self.created - timedelta(days=90)),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    def pod_json(self, pod: Pod) -> dict[str, Any]:
        birth = self.workloads.birth(pod.name)
        return {
            "metadata": self._pod_meta(pod, birth),
            "spec": self._pod_spec(pod),
            "status": self._born_status(pod, birth) if birth else self._pod_status(pod),
        }

    def deleted_pod_json(self, pod: Pod, grace_s: int) -> dict[str, Any]:
        """``pod`` as a graceful delete answers it: marked for deletion ``grace_s`` from now."""
        body = self.pod_json(pod)
        now = self.workloads.clock()
        body["metadata"]["deletionTimestamp"] = iso(now + timedelta(seconds=grace_s))
        body["metadata"]["deletionGracePeriodSeconds"] = grace_s
        body["metadata"]["resourceVersion"] = resource_version(pod.name, "deleted")
        return body

    def _pod_meta(self, pod: Pod, birth: Birth | None) -> dict[str, Any]:
        template = pod.name.rsplit("-", 2)[-2]
        replica_set = pod.name.rsplit("-", 1)[0]
        # A replacement's version moves when it becomes Ready, as its status update would.
        version = (
            (pod.restarts,) if birth is None else ("born", birth.ready(self.workloads.clock()))
        )
        return {
            "name": pod.name,
            "generateName": f"{replica_set}-",
            "namespace": self.namespace,
            "uid": uid(pod.name),
            "resourceVersion": resource_version(pod.name, *version),
            "creationTimestamp": iso(birth.created if birth else self.created),
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
                    "uid": uid(replica_set),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }

    def _pod_spec(self, pod: Pod) -> dict[str, Any]:
        return {
            "containers": [container_spec(pod.app)],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": pod.app,
            "nodeName": node_name(pod),
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
                "lastTransitionTime": iso(started if kind.endswith("Ready") else self.created),
            }
            for kind in (
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            )
        ]
        ip = pod_ip(pod)
        return {
            "phase": "Running",
            "conditions": conditions,
            "qosClass": "Burstable",
            "hostIP": node_ip(pod),
            "hostIPs": [{"ip": node_ip(pod)}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": iso(self.created),
            "containerStatuses": [self._container_status(pod, started)],
        }

    def _born_status(self, pod: Pod, birth: Birth) -> dict[str, Any]:
        """A replacement's status: Running since its birth, Ready once its probe passed."""
        ready = birth.ready(self.workloads.clock())
        created, became = iso(birth.created), iso(birth.ready_at if ready else birth.created)
        conditions: list[dict[str, Any]] = []
        for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"):
            readiness = kind in ("Ready", "ContainersReady")
            condition: dict[str, Any] = {
                "type": kind,
                "status": "True" if ready or not readiness else "False",
                "lastProbeTime": None,
                "lastTransitionTime": became if readiness else created,
            }
            if readiness and not ready:
                condition["reason"] = "ContainersNotReady"
                condition["message"] = f"containers with unready status: [{pod.app}]"
            conditions.append(condition)
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": created,
            }
        )
        status = self._pod_status(pod)
        container = self._container_status(pod, birth.created)
        container.update(ready=ready, restartCount=0, lastState={})
        status.update(conditions=conditions, startTime=created, containerStatuses=[container])
        return status

    def _container_status(self, pod: Pod, started: datetime) -> dict[str, Any]:
        last: dict[str, Any] = {}
        restart = pod_logs.restart_at(self.scenario, pod)
        if restart is not None:
            last = {
                "terminated": {
                    "exitCode": 137,
                    "reason": "OOMKilled",
                    "startedAt": iso(self.created),
                    "finishedAt": iso(restart),
                    "containerID": f"containerd://{digest(pod.name, 'previous')}",
                }
            }
        return {
            "name": pod.app,
            "image": image(pod.app),
            "imageID": f"{image(pod.app).split(':')[0]}@sha256:{digest(pod.app, IMAGE_TAG)}",
            "containerID": f"containerd://{digest(pod.name, pod.restarts)}",
            "ready": True,
            "started": True,
            "restartCount": pod.restarts,
            "state": {"running": {"startedAt": iso(started)}},
            "lastState": last,
        }

    def deployment_json(self, app: str, regions: tuple[str, ...]) -> dict[str, Any]:
        replicas = self.workloads.options.per_region(app) * len(regions)
        pods = [p for p in self.workloads.live() if p.app == app and p.region in regions]
        ready = sum(self.workloads.ready(p) for p in pods)
        labels = {self.app_label: app}
        generation = 3
        status: dict[str, Any] = {
            "observedGeneration": generation,
            "replicas": len(pods),
            "updatedReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": self._deployment_conditions(app, replicas, ready),
        }
        if len(pods) > ready:
            status["unavailableReplicas"] = len(pods) - ready
        return {
            "metadata": {
                "name": app,
                "namespace": self.namespace,
                "uid": uid("deploy", app, *regions),
                "resourceVersion": resource_version(
                    "deploy", app, *regions, *sorted(p.name for p in pods), ready
                ),
                "generation": generation,
                "creationTimestamp": iso(self.created - timedelta(days=30)),
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
                    "spec": {"containers": [container_spec(app)]},
                },
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
                },
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
            "status": status,
        }

    def _deployment_conditions(self, app: str, replicas: int, ready: int) -> list[dict[str, Any]]:
        moment = iso(self.created)
        # maxUnavailable is 25 %, rounded down as the Deployment controller rounds it.
        available = ready >= replicas - replicas // 4
        return [
            {
                "type": "Available",
                "status": "True" if available else "False",
                "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                "message": "Deployment has minimum availability."
                if available
                else "Deployment does not have minimum availability.",
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
        birth = self.workloads.birth(pod.name)
        if birth is not None:
            return _startup_lines(pod, birth, self.workloads.clock())
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


def _startup_lines(pod: Pod, birth: Birth, now: datetime) -> tuple[list[float], list[str]]:
    """A replacement's log so far: a healthy start, then "ready" once its probe passes."""
    start = birth.created.timestamp()
    events = [
        (start, f'msg="starting" version={IMAGE_TAG}'),
        (start + 0.05, 'msg="connected to policy service"'),
        (birth.ready_at.timestamp(), 'msg="ready" port=8080'),
    ]
    times, lines = [], []
    for moment, text in events:
        if moment <= now.timestamp():
            stamp = datetime.fromtimestamp(moment, birth.created.tzinfo)
            ts = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
            times.append(moment)
            lines.append(f"ts={ts} level=INFO {text} region={pod.region} pod={pod.name}")
    return times, lines
