"""A kubeconfig that points the real ``kubernetes`` client and kubectl at the sandbox."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from tenancy_diag.sandbox.kube_api.handler import CLUSTER_PREFIX

CONTEXT = "tenancy-sandbox"


def write_kubeconfig(
    path: Path, server_url: str, token: str, contexts: Mapping[str, str] | None
) -> None:
    """A kubeconfig for the sandbox, readable by its owner only.

    It always holds the context ``tenancy-sandbox`` (current) serving every region.
    ``contexts`` maps region -> context name, as ``KubeSettings.contexts_by_region`` does, and
    adds one context per region whose cluster sees only that region.
    """
    servers = {CONTEXT: server_url.rstrip("/")}
    for region, name in (contexts or {}).items():
        servers[name] = f"{server_url.rstrip('/')}{CLUSTER_PREFIX}{region}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "current-context": CONTEXT,
        "clusters": [{"name": n, "cluster": {"server": url}} for n, url in servers.items()],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": CONTEXT}} for n in servers],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created private before the token is written, so it is never readable by others.
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
