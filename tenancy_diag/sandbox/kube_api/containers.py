"""What a container becomes on this machine: a command line, an environment, mapped folders.

The sandbox's kubelet has no image and no mount namespace, so a pod's filesystem is mapped:

- each volume is a folder under the pod's folder (:mod:`.volumes`), and every
  command-line argument, ``workingDir`` and environment value that names a path under a
  ``mountPath`` (whole, or after ``--flag=``) is rewritten to the mapped folder;
- the root filesystem is a folder of its own, the working directory and ``HOME`` unless the
  container names others, made read-only when ``readOnlyRootFilesystem`` is set, so a program
  that writes where a read-only pod could not fails here too (unless the kubelet runs as root,
  whom file modes do not stop; see :mod:`.volumes`);
- a volume mounted at ``/tmp`` also sets ``TMPDIR`` (a real container's ``/tmp`` is the mount).

The environment is what the kubelet gives a container and nothing of this host's but ``PATH``:
``HOSTNAME``, then ``envFrom`` (ConfigMaps and Secrets, with their ``prefix``), then ``env``
(literal values with ``$(VAR)`` references expanded, ``secretKeyRef``, ``configMapKeyRef`` and
``fieldRef`` to the pod's name, namespace, node and service account). A missing Secret, ConfigMap
or key that is not ``optional`` stops the container before it starts, with the reason and
message kubelet gives (CreateContainerConfigError, or ContainerCreating for a volume).

The image's program is found through ``programs``: ``tenancy-diag`` runs as
``python -m tenancy_diag.cli`` with this interpreter.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenancy_diag.sandbox.kube_api.errors import ContainerNotStarted
from tenancy_diag.sandbox.kube_api.resources import Body
from tenancy_diag.sandbox.kube_api.volumes import Lookup, check_user, mount_volumes, object_data

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path


def prepare(
    pod: Body, lookup: Lookup, folder: Path, programs: Mapping[str, tuple[str, ...]]
) -> Launch:
    """The first container of ``pod`` as a local process rooted at ``folder``."""
    spec, meta = pod["spec"], pod["metadata"]
    container = spec["containers"][0]
    check_user(pod, container)
    volumes = mount_volumes(spec, meta["namespace"], lookup, folder / "volumes")
    mounts = []
    for mount in container.get("volumeMounts") or []:
        local = volumes[mount["name"]] / mount.get("subPath", "")
        if not local.exists():
            local.mkdir(parents=True)
        mounts.append((mount["mountPath"].rstrip("/") or "/", local))
    rewrite = _rewriter(mounts)
    root = folder / "rootfs"
    root.mkdir(parents=True, exist_ok=True)
    read_only = bool((container.get("securityContext") or {}).get("readOnlyRootFilesystem"))
    root.chmod(0o555 if read_only else 0o777)
    # Everything is expanded in the container's terms first and rewritten once: a mapped folder
    # may itself lie under a mount path (this host's /tmp under the pod's "/tmp").
    seen = _environment(pod, container, lookup)
    command = [_expand(part, seen) for part in container.get("command") or []]
    args = [_expand(part, seen) for part in container.get("args") or []]
    if not command:
        raise ContainerNotStarted(
            "CreateContainerError",
            "the sandbox has no image to take an entrypoint from; give the container a command",
        )
    program = programs.get(Path(command[0]).name)
    argv = [*(program or [rewrite(command[0])]), *map(rewrite, [*command[1:], *args])]
    env = {name: rewrite(value) for name, value in seen.items()}
    env["PATH"] = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("HOME", str(root))
    if "/tmp" in dict(mounts):  # noqa: S108 - the container's path, mapped to a folder here
        env.setdefault("TMPDIR", str(dict(mounts)["/tmp"]))  # noqa: S108
    working = container.get("workingDir")
    cwd = Path(rewrite(working)) if working else root
    return Launch(argv, env, cwd)


def _environment(pod: Body, container: Body, lookup: Lookup) -> dict[str, str]:
    meta = pod["metadata"]
    env = {"HOSTNAME": meta["name"]}
    for source in container.get("envFrom") or []:
        env.update(_env_from(source, meta["namespace"], lookup))
    for variable in container.get("env") or []:
        if "value" in variable or "valueFrom" not in variable:
            env[variable["name"]] = _expand(str(variable.get("value", "")), env)
            continue
        value = _value_from(variable, pod, lookup)
        if value is not None:
            env[variable["name"]] = value
    return env


def _env_from(source: Body, namespace: str, lookup: Lookup) -> dict[str, str]:
    resource, ref = (
        ("configmaps", source["configMapRef"])
        if "configMapRef" in source
        else ("secrets", source.get("secretRef") or {})
    )
    body = lookup(resource, namespace, str(ref.get("name")))
    if body is None:
        if ref.get("optional"):
            return {}
        kind = "configmap" if resource == "configmaps" else "secret"
        raise ContainerNotStarted(
            "CreateContainerConfigError", f'{kind} "{ref.get("name")}" not found'
        )
    prefix = source.get("prefix", "")
    return {prefix + k: v.decode() for k, v in object_data(resource, body).items()}


def _value_from(variable: Body, pod: Body, lookup: Lookup) -> str | None:
    source = variable["valueFrom"]
    meta = pod["metadata"]
    if "fieldRef" in source:
        fields = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "spec.nodeName": pod["spec"].get("nodeName", ""),
            "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        }
        return str(fields.get(source["fieldRef"].get("fieldPath", ""), ""))
    resource, ref = (
        ("secrets", source["secretKeyRef"])
        if "secretKeyRef" in source
        else ("configmaps", source.get("configMapKeyRef") or {})
    )
    kind = "Secret" if resource == "secrets" else "ConfigMap"
    body = lookup(resource, meta["namespace"], str(ref.get("name")))
    data = object_data(resource, body) if body is not None else None
    if data is None or ref.get("key") not in data:
        if ref.get("optional"):
            return None
        message = (
            f'{kind.lower()} "{ref.get("name")}" not found'
            if data is None
            else f"couldn't find key {ref.get('key')} in {kind} "
            f"{meta['namespace']}/{ref.get('name')}"
        )
        raise ContainerNotStarted("CreateContainerConfigError", message)
    return data[ref["key"]].decode()


def _expand(text: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` becomes VAR's value when defined; ``$$`` escapes a dollar, as kubelet does."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return env.get(match[1], match[0])

    return _REFERENCE.sub(replace, text)


def _rewriter(mounts: list[tuple[str, Path]]) -> Callable[[str], str]:
    ordered = sorted(mounts, key=lambda m: len(m[0]), reverse=True)

    def rewrite_path(text: str) -> str:
        for mount, local in ordered:
            if text == mount or text.startswith(mount.rstrip("/") + "/"):
                return str(local) + text[len(mount) :]
        return text

    def rewrite(text: str) -> str:
        if text.startswith("/"):
            return rewrite_path(text)
        flag, equals, value = text.partition("=")
        if equals and flag.startswith("-") and value.startswith("/"):
            return f"{flag}={rewrite_path(value)}"
        return text

    return rewrite


def describe(launch: Launch) -> dict[str, Any]:
    """The launch as JSON, for the kubelet's own log."""
    return {"argv": launch.argv, "cwd": str(launch.cwd), "env": sorted(launch.env)}
