"""The scenario's pods, Deployments and namespaces as the API's JSON, and the pods' logs.

Items carry no ``kind``/``apiVersion``: a list's items have none on a real cluster, and a
single-object answer adds them itself.
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
from tenancy_diag.sandbox.topology import REPLICAS, Pod, Scenario

_NAMESPACES = ("default", "kube-public", "kube-system")


class Fleet:
    """The scenario's pods, Deployments and namespaces as API objects, and pod logs (cached)."""

    def __init__(self, scenario: Scenario) -> None:
        logs = signals_mod.load().doc.logs
        self.scenario = scenario
        self.namespace = logs.namespace
        self.app_label, self.region_label = logs.app_label, logs.region_label
        self.pods = {pod.name: pod for pod in scenario.pods}
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
            "uid": uid(pod.name),
            "resourceVersion": resource_version(pod.name, pod.restarts),
            "creationTimestamp": iso(self.created),
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
        replicas = REPLICAS[app] * len(regions)
        labels = {self.app_label: app}
        generation = 3
        return {
            "metadata": {
                "name": app,
                "namespace": self.namespace,
                "uid": uid("deploy", app, *regions),
                "resourceVersion": resource_version("deploy", app, *regions),
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
        moment = iso(self.created)
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
