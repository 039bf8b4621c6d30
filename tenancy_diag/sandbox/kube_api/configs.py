"""Secrets, ConfigMaps and Namespaces a client creates: what a Job's pod is configured from.

Create, get, list and delete, as the API does them: a Secret's ``stringData`` is merged into
its base64 ``data`` (and not kept), its ``type`` defaults to Opaque; names must be DNS
subdomains (Namespaces DNS labels); a taken name is 409 AlreadyExists; reads of another
namespace's object are 404. The scenario's own namespaces (:class:`~.objects.Fleet`) exist from
the start and cannot be created again.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Callable
from typing import Any

from tenancy_diag.sandbox.kube_api.answers import (
    Answer,
    Reply,
    Request,
    json_answer,
    json_reply,
    read_body,
)
from tenancy_diag.sandbox.kube_api.controlling import now_iso
from tenancy_diag.sandbox.kube_api.errors import (
    already_exists,
    bad_request,
    invalid_object,
    not_found,
)
from tenancy_diag.sandbox.kube_api.jobs import check_object, check_object_name
from tenancy_diag.sandbox.kube_api.resources import Body, Resources
from tenancy_diag.sandbox.kube_api.watches import Watched

Route = tuple[str, str, Callable[[Request], Answer | Reply]]
_KINDS = {"secrets": "Secret", "configmaps": "ConfigMap"}
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_HELP = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character"
)


class ConfigApi:
    """The routes for Secrets, ConfigMaps and created Namespaces."""

    def __init__(
        self, resources: Resources, fleet_namespaces: Callable[[], tuple[str, ...]]
    ) -> None:
        self.resources = resources
        self.fleet_namespaces = fleet_namespaces
        ns = r"/api/v1/namespaces/(?P<ns>[^/]+)"
        self.routes: list[Route] = [("POST", r"/api/v1/namespaces", self.create_namespace)]
        for resource in _KINDS:
            self.routes += [
                ("POST", rf"{ns}/{resource}", self._create(resource)),
                ("GET", rf"{ns}/{resource}", self._list(resource)),
                ("GET", rf"{ns}/{resource}/(?P<name>[^/]+)", self._get(resource)),
                ("DELETE", rf"{ns}/{resource}/(?P<name>[^/]+)", self._delete(resource)),
            ]

    def namespaces(self) -> list[str]:
        created, _ = self.resources.listed("namespaces")
        return [*self.fleet_namespaces(), *(n["metadata"]["name"] for n in created)]

    def namespace_json(self, name: str) -> Body | None:
        return self.resources.get("namespaces", "", name)

    def require_namespace(self, name: str) -> None:
        if name not in self.namespaces():
            raise not_found("namespaces", name)

    def lookup(self, resource: str, namespace: str, name: str) -> Body | None:
        return self.resources.get(resource, namespace, name)

    def create_namespace(self, request: Request) -> Reply:
        body = read_body(request.body)
        check_object(body, "Namespace", "v1", "")
        name = body["metadata"].get("name")
        if not isinstance(name, str) or not _LABEL.fullmatch(name) or len(name) > 63:
            detail = f'Invalid value: "{name}": {_LABEL_HELP}'
            raise invalid_object(
                "Namespace", "", str(name), [("FieldValueInvalid", "metadata.name", detail)]
            )
        if name in self.namespaces():
            raise already_exists("", "namespaces", name)
        stored = {
            "metadata": {
                **_meta(body, "", name),
                "labels": {
                    **body["metadata"].get("labels", {}),
                    "kubernetes.io/metadata.name": name,
                },
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
        created = self.resources.add("namespaces", stored)
        if created is None:
            raise already_exists("", "namespaces", name)
        return json_reply(201, {"kind": "Namespace", "apiVersion": "v1", **created})

    def _create(self, resource: str) -> Callable[[Request], Reply]:
        kind = _KINDS[resource]

        def create(request: Request) -> Reply:
            namespace = request.match["ns"]
            body = read_body(request.body)
            check_object(body, kind, "v1", namespace)
            name = check_object_name(kind, "", body["metadata"].get("name"))
            self.require_namespace(namespace)
            stored = {"metadata": _meta(body, namespace, name), **_content(resource, body)}
            created = self.resources.add(resource, stored)
            if created is None:
                raise already_exists("", resource, name)
            return json_reply(201, {"kind": kind, "apiVersion": "v1", **created})

        return create

    def _list(self, resource: str) -> Callable[[Request], Answer]:
        def listed(request: Request) -> Answer:
            watched = Watched.from_query(
                request.query, resource, _KINDS[resource], "v1", request.match["ns"]
            )
            items, version = self.resources.listed(resource, request.match["ns"])
            items = [i for i in items if watched.matches(request.match["ns"], i)]
            return json_answer(
                {
                    "kind": f"{_KINDS[resource]}List",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(version)},
                    "items": items,
                }
            )

        return listed

    def _get(self, resource: str) -> Callable[[Request], Answer]:
        def get(request: Request) -> Answer:
            found = self.resources.get(resource, request.match["ns"], request.match["name"])
            if found is None:
                raise not_found(resource, request.match["name"])
            return json_answer({"kind": _KINDS[resource], "apiVersion": "v1", **found})

        return get

    def _delete(self, resource: str) -> Callable[[Request], Answer]:
        def delete(request: Request) -> Answer:
            gone = self.resources.remove(resource, request.match["ns"], request.match["name"])
            if gone is None:
                raise not_found(resource, request.match["name"])
            return json_answer(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": request.match["name"],
                        "kind": resource,
                        "uid": gone["metadata"]["uid"],
                    },
                }
            )

        return delete


def _meta(body: Body, namespace: str, name: str) -> dict[str, Any]:
    given = body["metadata"]
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_iso())
    for field in ("labels", "annotations"):
        if given.get(field):
            meta[field] = dict(given[field])
    return meta


def _content(resource: str, body: Body) -> dict[str, Any]:
    if resource == "configmaps":
        return {k: dict(body[k]) for k in ("data", "binaryData") if body.get(k)}
    data = dict(body.get("data") or {})
    for key, value in data.items():
        try:
            base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(f"illegal base64 data in the Secret's data[{key!r}]") from None
    for key, value in (body.get("stringData") or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    content: dict[str, Any] = {"type": body.get("type") or "Opaque"}
    if data:
        content["data"] = data
    return content
