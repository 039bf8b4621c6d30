"""A pod's volumes as folders on this machine, and the user check kubelet makes first.

Volumes, as kubelet lays them out: an ``emptyDir`` is an empty folder anyone may write (0777);
a ``secret`` or ``configMap`` is one file per key (or per ``items`` entry) with ``defaultMode``,
group-owned by the pod's ``fsGroup``. A missing Secret or ConfigMap that is not ``optional``
keeps the container waiting (ContainerCreating, "MountVolume.SetUp failed"); other volume types
are not mounted by the sandbox.

The user: the process runs as the kubelet's own user (switching to ``runAsUser`` would need
an interpreter that user can run, which a developer's machine rarely has), so file modes and a
read-only root filesystem hold only when that user is not root. What kubelet checks before it
starts anything is checked: ``runAsNonRoot`` (the container's over the pod's) refuses a
container that would run as root, with kubelet's message; the sandbox has no image, so without
``runAsUser`` the "image user" is the kubelet's.
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tenancy_diag.sandbox.kube_api.errors import ContainerNotStarted
from tenancy_diag.sandbox.kube_api.resources import Body

#: Looks a Secret or ConfigMap up: (resource, namespace, name) -> its body or None.
Lookup = Callable[[str, str, str], Body | None]


def check_user(pod: Body, container: Body) -> None:
    """Refuse, as kubelet does, a container that must not run as root but would."""
    pod_context = pod["spec"].get("securityContext") or {}
    own = container.get("securityContext") or {}

    def setting(name: str) -> Any:
        return own.get(name, pod_context.get(name))

    user = setting("runAsUser")
    if setting("runAsNonRoot") and (user if user is not None else os.geteuid()) == 0:
        meta = pod["metadata"]
        raise ContainerNotStarted(
            "CreateContainerConfigError",
            f'container has runAsNonRoot and image will run as root (pod: "{meta["name"]}_'
            f'{meta["namespace"]}({meta["uid"]})", container: {container["name"]})',
        )


def mount_volumes(spec: Body, namespace: str, lookup: Lookup, folder: Path) -> dict[str, Path]:
    """Every volume of the pod spec as a folder under ``folder``: name -> folder."""
    found = {}
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    for volume in spec.get("volumes") or []:
        path = folder / volume["name"]
        path.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in volume:
            path.chmod(0o777)
        elif "secret" in volume or "configMap" in volume:
            _fill(volume, namespace, lookup, path)
        else:
            raise ContainerNotStarted(
                "ContainerCreating",
                f'MountVolume.SetUp failed for volume "{volume["name"]}" : the sandbox kubelet '
                "mounts emptyDir, secret and configMap volumes only",
            )
        found[volume["name"]] = path
    return found


def object_data(resource: str, body: Body) -> dict[str, bytes]:
    """A Secret's or ConfigMap's keys and their bytes."""
    if resource == "secrets":
        return {k: base64.b64decode(v) for k, v in (body.get("data") or {}).items()}
    data = {k: str(v).encode() for k, v in (body.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (body.get("binaryData") or {}).items()})
    return data


def _fill(volume: Body, namespace: str, lookup: Lookup, path: Path) -> None:
    is_secret = "secret" in volume
    source = volume["secret"] if is_secret else volume["configMap"]
    name = str(source.get("secretName") if is_secret else source.get("name"))
    resource = "secrets" if is_secret else "configmaps"
    body = lookup(resource, namespace, name)
    if body is None:
        if source.get("optional"):
            return
        raise ContainerNotStarted(
            "ContainerCreating",
            f'MountVolume.SetUp failed for volume "{volume["name"]}" : '
            f'{"secret" if is_secret else "configmap"} "{name}" not found',
        )
    data = object_data(resource, body)
    items = source.get("items") or [{"key": k, "path": k} for k in sorted(data)]
    mode = int(source.get("defaultMode", 0o644))
    path.chmod(0o755)
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise ContainerNotStarted(
                "ContainerCreating",
                f'MountVolume.SetUp failed for volume "{volume["name"]}" : configmap references '
                f"non-existent config key: {item['key']}",
            )
        target = path / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[item["key"]])
        target.chmod(int(item.get("mode", mode)) | stat.S_IRUSR)
