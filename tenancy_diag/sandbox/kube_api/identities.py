"""The stable made-up details of the cluster's objects: ids, versions, images, nodes, IPs.

Ids, versions, nodes and IPs are hashes of the object's name, so a pod keeps them across
restarts of the sandbox and every client sees the same ones, as on a real cluster.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from tenancy_diag.sandbox.topology import Pod

IMAGE_TAG = "1.42.0"


def digest(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def uid(*parts: object) -> str:
    return str(uuid.UUID(hex=digest("uid", *parts)[:32]))


def resource_version(*parts: object) -> str:
    return str(100_000 + int(digest("rv", *parts)[:8], 16) % 900_000)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def image(app: str) -> str:
    return f"registry.example.com/tenancy/{app}:{IMAGE_TAG}"


def container_spec(app: str) -> dict[str, Any]:
    return {
        "name": app,
        "image": image(app),
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
    value = int(digest(*parts)[:8], 16)
    return value % 250 + 1, (value >> 8) % 250 + 2


def node_ip(pod: Pod) -> str:
    a, b = _octets("node", pod.region, pod.name)
    return f"10.{a % 16}.{a}.{b}"


def node_name(pod: Pod) -> str:
    return f"ip-{node_ip(pod).replace('.', '-')}.{pod.region}.compute.internal"


def pod_ip(pod: Pod) -> str:
    a, b = _octets("pod", pod.name)
    return f"100.64.{a}.{b}"
