"""Error answers, sent as ``Status`` objects worded as kube-apiserver words them.

The kubernetes client and kubectl branch on ``code`` and ``reason`` and show ``message``, so all
three follow the real server's wording.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer, sent as a ``Status`` object."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(kind: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind} "{name}" not found', {"name": name, "kind": kind})


def no_route() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(pod: str, field: str, value: object, why: str) -> ApiError:
    message = f'PodLogOptions "{pod}" is invalid: {field}: Invalid value: {value}: {why}'
    causes = [
        {"reason": "FieldValueInvalid", "message": f"Invalid value: {value}: {why}", "field": field}
    ]
    return ApiError(
        422, "Invalid", message, {"name": pod, "kind": "PodLogOptions", "causes": causes}
    )


def invalid_delete_options(field: str, value: object, why: str) -> ApiError:
    message = f'DeleteOptions.meta.k8s.io "" is invalid: {field}: {why}'
    causes = [{"reason": "FieldValueNotSupported", "message": why, "field": field}]
    return ApiError(
        422, "Invalid", message, {"group": "meta.k8s.io", "kind": "DeleteOptions", "causes": causes}
    )


def precondition_failed(kind: str, name: str, expected: str, actual: str) -> ApiError:
    message = (
        f'Operation cannot be fulfilled on {kind} "{name}": Precondition failed: '
        f"UID in precondition: {expected}, UID in object meta: {actual}"
    )
    return ApiError(409, "Conflict", message, {"name": name, "kind": kind})


def not_found_in(group: str, resource: str, name: str) -> ApiError:
    """404 for a named object of an API group's resource (``jobs.batch "x" not found``)."""
    qualified = f"{resource}.{group}" if group else resource
    details = {"name": name, "group": group, "kind": resource} if group else None
    return ApiError(
        404,
        "NotFound",
        f'{qualified} "{name}" not found',
        details or {"name": name, "kind": resource},
    )


def already_exists(group: str, resource: str, name: str) -> ApiError:
    """409 for a create whose name is taken, as kube-apiserver words it."""
    qualified = f"{resource}.{group}" if group else resource
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return ApiError(409, "AlreadyExists", f'{qualified} "{name}" already exists', details)


def invalid_object(
    kind: str, group: str, name: str, causes: list[tuple[str, str, str]]
) -> ApiError:
    """422 for an object that fails validation; ``causes`` are (reason, field, detail)."""
    qualified = f"{kind}.{group}" if group else kind
    listed = ", ".join(f"{field}: {detail}" for _, field, detail in causes)
    message = f'{qualified} "{name}" is invalid: '
    message += listed if len(causes) == 1 else f"[{listed}]"
    details: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "causes": [
            {"reason": reason, "message": detail, "field": field}
            for reason, field, detail in causes
        ],
    }
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", message, details)


def expired(requested: int, oldest: int) -> ApiError:
    """410 for a watch from a version the event log no longer holds."""
    return ApiError(410, "Expired", f"too old resource version: {requested} ({oldest})")


class ContainerNotStarted(Exception):
    """Not an answer: why the kubelet cannot start a container yet (its waiting state's
    ``reason`` and ``message``, as kubelet words them)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message
