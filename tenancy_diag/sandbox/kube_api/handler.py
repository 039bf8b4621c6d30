"""HTTP plumbing: bearer-token checks, per-region cluster URLs, and Status bodies for errors.

One server can pose as one cluster serving every region (the default context) or as one
cluster per region: a context whose server URL ends in ``/clusters/<region>`` sees only that
region's pods, as a per-region cluster would.
"""

from __future__ import annotations

import hmac
import json
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tenancy_diag.sandbox.kube_api.errors import ApiError, no_route
from tenancy_diag.sandbox.kube_api.routes import JSON, Answer, Api
from tenancy_diag.sandbox.topology import Scenario

CLUSTER_PREFIX = "/clusters/"
# Paths a real cluster answers without credentials (system:public-info-viewer).
_PUBLIC = frozenset({"/version", "/healthz", "/livez", "/readyz"})


def make_handler(
    scenario: Scenario, token: str, *, log_requests: bool = False
) -> type[BaseHTTPRequestHandler]:
    """A request handler class serving ``scenario`` to clients presenting ``token``."""
    api = Api(scenario)
    expected = f"Bearer {token}".encode()
    regions = frozenset(scenario.spec.regions)

    class KubeApiHandler(BaseHTTPRequestHandler):
        server_version = "kube-apiserver-sandbox/1.31"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            try:
                content_type, body = self._route()
                self._send(200, content_type, body)
            except ApiError as e:
                self._send(e.code, JSON, json.dumps(e.status()).encode())

        def _route(self) -> Answer:
            parts = urlsplit(self.path)
            region, path = _split_cluster(parts.path, regions)
            path = path.rstrip("/") or "/"
            if path not in _PUBLIC and not self._authorized():
                raise ApiError(401, "Unauthorized", "Unauthorized")
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            return api.answer(path, region, query)

        def _authorized(self) -> bool:
            presented = (self.headers.get("Authorization") or "").strip().encode()
            return hmac.compare_digest(presented, expected)

        def _refuse(self) -> None:
            error = ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
            self._send(405, JSON, json.dumps(error.status()).encode())

        do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache, private")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            if log_requests:
                super().log_message(format, *args)

    return KubeApiHandler


def _split_cluster(path: str, regions: frozenset[str]) -> tuple[str | None, str]:
    """``/clusters/<region>/api/...`` -> (region, ``/api/...``); other paths serve all regions."""
    if not path.startswith(CLUSTER_PREFIX):
        return None, path
    region, _, rest = path[len(CLUSTER_PREFIX) :].partition("/")
    if region not in regions:
        raise no_route()
    return region, "/" + rest
