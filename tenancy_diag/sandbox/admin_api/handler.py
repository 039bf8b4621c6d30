"""HTTP plumbing: the bearer token, the ``X-Actor`` of mutating calls, bodies and JSON answers.

Everything about the wire lives here, so calls deal only in dicts and :class:`ApiError`.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tenancy_diag.sandbox.admin_api.errors import ApiError
from tenancy_diag.sandbox.admin_api.routes import route
from tenancy_diag.sandbox.admin_api.state import AdminState
from tenancy_diag.sandbox.topology import Scenario

log = logging.getLogger(__name__)

ACTOR_HEADER = "X-Actor"
MAX_BODY_BYTES = 64 * 1024
_ACTOR = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,127}")


class _Handler(BaseHTTPRequestHandler):
    state: AdminState
    token: str
    server_version = "tenancy-admin-sandbox/1"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            self._authorize()
            call, ids, mutating = route(method, urlsplit(self.path).path)
            actor = self._actor() if mutating else ""
            # A call's arguments: the JSON body of a POST, the query string of a GET.
            body = self._body() if method == "POST" else self._query()
            status, payload = call(self.state, ids, body, actor)
        except ApiError as e:
            self._send(e.status, {"error": e.code, "message": e.message})
            return
        self._send(status, payload)

    def _authorize(self) -> None:
        presented = self.headers.get("Authorization", "")
        scheme, _, token = presented.partition(" ")
        # Constant-time comparison, so response timing reveals nothing about the token.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self.token.encode()
        ):
            raise ApiError(
                HTTPStatus.UNAUTHORIZED, "unauthorized", "a valid bearer token is required"
            )

    def _actor(self) -> str:
        actor = self.headers.get(ACTOR_HEADER, "").strip()
        if not _ACTOR.fullmatch(actor):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "actor_required",
                f"mutating calls need an {ACTOR_HEADER} header naming who acts",
            )
        return actor

    def _query(self) -> dict[str, Any]:
        pairs = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        return {key: values[-1] for key, values in pairs.items()}

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "invalid_body",
                f"Content-Length must be 0 to {MAX_BODY_BYTES} bytes",
            )
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_body", "the body must be a JSON object")
        return body

    def _send(self, status: HTTPStatus, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="tenancy-admin"')
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line only: headers (and so the token) never reach the log.
        log.info("%s %s", self.address_string(), format % args)


def make_handler(scenario: Scenario, token: str) -> type[BaseHTTPRequestHandler]:
    """A handler class serving ``scenario``'s admin API behind bearer ``token``.

    Its ``state`` attribute (an :class:`AdminState`) lets in-process tests read the audit.
    """
    if not token:
        raise ValueError("the admin API needs a non-empty token")
    state = AdminState(scenario)
    return type("AdminApiHandler", (_Handler,), {"state": state, "token": token})
