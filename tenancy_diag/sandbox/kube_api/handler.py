"""HTTP plumbing: bearer-token checks, per-region cluster URLs, and Status bodies for errors.

One server can pose as one cluster serving every region (the default context) or as one
cluster per region: a context whose server URL ends in ``/clusters/<region>`` sees only that
region's pods, as a per-region cluster would. GET reads; DELETE deletes a pod; other methods
are refused with 405.
"""

from __future__ import annotations

import hmac
import json
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from tenancy_diag.sandbox.kube_api.errors import ApiError, bad_request, no_route
from tenancy_diag.sandbox.kube_api.routes import JSON, Answer, Api
from tenancy_diag.sandbox.kube_api.workloads import WorkloadOptions
from tenancy_diag.sandbox.topology import Scenario

CLUSTER_PREFIX = "/clusters/"
# Paths a real cluster answers without credentials (system:public-info-viewer).
_PUBLIC = frozenset({"/version", "/healthz", "/livez", "/readyz"})
MAX_BODY_BYTES = 64 * 1024


def make_handler(
    scenario: Scenario,
    token: str,
    *,
    log_requests: bool = False,
    options: WorkloadOptions | None = None,
) -> type[BaseHTTPRequestHandler]:
    """A request handler class serving ``scenario`` to clients presenting ``token``.

    ``options`` changes the workloads (fewer replicas of a Deployment, how long a replacement
    pod takes to become Ready); see :class:`~.workloads.WorkloadOptions`. The class's ``api``
    attribute lets in-process tests look at the cluster's state.
    """
    served = Api(scenario, options)
    expected = f"Bearer {token}".encode()
    regions = frozenset(scenario.spec.regions)

    class KubeApiHandler(BaseHTTPRequestHandler):
        api: ClassVar[Api] = served
        server_version = "kube-apiserver-sandbox/1.31"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            try:
                body = self._body()
                content_type, answer = self._route(self.command, body)
                self._send(200, content_type, answer)
            except ApiError as e:
                self._send(e.code, JSON, json.dumps(e.status()).encode())

        def _route(self, method: str, body: bytes) -> Answer:
            parts = urlsplit(self.path)
            region, path = _split_cluster(parts.path, regions)
            path = path.rstrip("/") or "/"
            if path not in _PUBLIC and not self._authorized():
                raise ApiError(401, "Unauthorized", "Unauthorized")
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            return served.answer(path, region, query, method, body)

        def _body(self) -> bytes:
            # Read whatever was sent, so the next request on a kept-alive connection starts clean.
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY_BYTES:
                self.close_connection = True
                raise bad_request(f"Content-Length must be 0 to {MAX_BODY_BYTES} bytes")
            return self.rfile.read(length) if length else b""

        def _authorized(self) -> bool:
            presented = (self.headers.get("Authorization") or "").strip().encode()
            return hmac.compare_digest(presented, expected)

        # The routes know which methods a path allows, and answer 405 for the others.
        do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

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
