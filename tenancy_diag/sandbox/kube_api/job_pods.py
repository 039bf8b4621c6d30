"""A Job's pod as the API shows it, from creation through its container's exit.

The pod is made from the Job's template as the Job controller makes it (``<job>-<suffix>``, the
template's labels, a controller owner reference to the Job, the ``job-tracking`` finalizer), then
scheduled onto the sandbox's one node and moved along by the kubelet: Pending with its
container waiting (ContainerCreating, or CreateContainerConfigError when a Secret or ConfigMap
it needs is missing), Running, then Succeeded or Failed with the container's ``terminated``
state holding the exit code (128 + the signal's number when a signal ended it, as container
runtimes report it).
"""

from __future__ import annotations

import copy
from typing import Any

from tenancy_diag.sandbox.kube_api.identities import digest
from tenancy_diag.sandbox.kube_api.jobs import API_VERSION, TRACKING_FINALIZER
from tenancy_diag.sandbox.kube_api.resources import Body

NODE = "sandbox-kubelet"
NODE_IP = "10.0.0.10"
_DEFAULT_TOLERATIONS = [
    {
        "key": f"node.kubernetes.io/{taint}",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    }
    for taint in ("not-ready", "unreachable")
]
_CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
)


def new_pod(job: Body, name: str, uid: str, now: str) -> Body:
    """The pod the Job controller creates for ``job``, already bound to the sandbox's node."""
    template = job["spec"]["template"]
    meta = job["metadata"]
    spec = copy.deepcopy(template["spec"])
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec.update(
        serviceAccountName=account,
        serviceAccount=account,
        nodeName=NODE,
        priority=0,
        enableServiceLinks=spec.get("enableServiceLinks", True),
        preemptionPolicy="PreemptLowerPriority",
        tolerations=spec.get("tolerations") or copy.deepcopy(_DEFAULT_TOLERATIONS),
    )
    metadata: dict[str, Any] = {
        "name": name,
        "generateName": f"{meta['name']}-",
        "namespace": meta["namespace"],
        "uid": uid,
        "creationTimestamp": now,
        "labels": dict(template["metadata"].get("labels") or {}),
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": "Job",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
        "finalizers": [TRACKING_FINALIZER],
    }
    if template["metadata"].get("annotations"):
        metadata["annotations"] = dict(template["metadata"]["annotations"])
    container = spec["containers"][0]
    return {
        "metadata": metadata,
        "spec": spec,
        "status": {
            "phase": "Pending",
            "conditions": _conditions(
                now, ready=False, reason="ContainersNotReady", name=container["name"]
            ),
            "hostIP": NODE_IP,
            "hostIPs": [{"ip": NODE_IP}],
            "startTime": now,
            "qosClass": qos_class(spec),
            "containerStatuses": [
                _container(container, {"waiting": {"reason": "ContainerCreating"}}, ready=False)
            ],
        },
    }


def waiting(pod: Body, reason: str, message: str) -> None:
    state = {"waiting": {"reason": reason, "message": message}}
    pod["status"]["containerStatuses"][0]["state"] = state


def running(pod: Body, now: str) -> None:
    status = pod["status"]
    container = status["containerStatuses"][0]
    ip = _pod_ip(pod["metadata"]["uid"])
    container.update(
        state={"running": {"startedAt": now}},
        ready=True,
        started=True,
        imageID=_image_id(container["image"]),
        containerID=f"containerd://{digest('container', pod['metadata']['uid'])}",
    )
    status.update(
        phase="Running",
        podIP=ip,
        podIPs=[{"ip": ip}],
        conditions=_conditions(now, ready=True),
    )


def terminated(
    pod: Body, exit_code: int, now: str, reason: str | None = None, message: str | None = None
) -> None:
    """The container ended (``reason`` StartError and a ``message`` when it never started)."""
    status = pod["status"]
    container = status["containerStatuses"][0]
    started_at = (container["state"].get("running") or {}).get("startedAt", now)
    state: Body = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": started_at,
        "finishedAt": now,
        "containerID": container.get("containerID", ""),
    }
    if message:
        state["message"] = message
    container.update(
        state={"terminated": state},
        ready=False,
        started=False,
    )
    status.update(
        phase="Succeeded" if exit_code == 0 else "Failed",
        conditions=_conditions(now, ready=False, reason="PodCompleted"),
    )


def marked_for_deletion(pod: Body, now: str, grace_s: int) -> None:
    pod["metadata"]["deletionTimestamp"] = now
    pod["metadata"]["deletionGracePeriodSeconds"] = grace_s


def untracked(pod: Body) -> None:
    """The Job controller counted the pod: its finalizer goes."""
    pod["metadata"]["finalizers"] = [
        f for f in pod["metadata"].get("finalizers", []) if f != TRACKING_FINALIZER
    ]


def exit_code(pod: Body) -> int | None:
    state = pod["status"]["containerStatuses"][0]["state"]
    terminated_state = state.get("terminated")
    return None if terminated_state is None else int(terminated_state["exitCode"])


def qos_class(spec: Body) -> str:
    """Guaranteed when every container's CPU and memory limits equal its requests, BestEffort
    when none has any, Burstable otherwise (as the API server computes it)."""
    resources = [c.get("resources") or {} for c in spec["containers"]]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                return "Burstable"
    return "Guaranteed"


def _container(container: Body, state: Body, ready: bool) -> Body:
    return {
        "name": container["name"],
        "image": container["image"],
        "imageID": "",
        "ready": ready,
        "started": False,
        "restartCount": 0,
        "state": state,
        "lastState": {},
    }


def _conditions(
    now: str,
    *,
    ready: bool,
    reason: str = "",
    name: str = "",
) -> list[Body]:
    found = []
    for kind in _CONDITIONS:
        ok = kind in ("Initialized", "PodScheduled") or ready
        condition: Body = {
            "type": kind,
            "status": "True" if ok else "False",
            "lastProbeTime": None,
            "lastTransitionTime": now,
        }
        if not ok and kind in ("Ready", "ContainersReady") and reason:
            condition["reason"] = reason
            if name:
                condition["message"] = f"containers with unready status: [{name}]"
        found.append(condition)
    return found


def _image_id(image: str) -> str:
    return f"{image.split(':', maxsplit=1)[0]}@sha256:{digest('image', image)}"


def _pod_ip(uid: str) -> str:
    value = int(digest("job-pod-ip", uid)[:8], 16)
    return f"10.244.{value % 250 + 1}.{(value >> 8) % 250 + 2}"
