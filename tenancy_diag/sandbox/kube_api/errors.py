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
