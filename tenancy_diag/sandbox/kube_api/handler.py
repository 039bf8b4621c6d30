"""HTTP plumbing: bearer-token checks, per-region cluster URLs, and Status bodies for errors.

One server can pose as one cluster serving every region (the default context) or as one
cluster per region: a context whose server URL ends in ``/clusters/<region>`` sees only that
region's pods, as a per-region cluster would. The routes say which methods a path allows and
answer 405 for the others; a watch is streamed with chunked transfer encoding.
"""

from __future__ import annotations

import hmac
import json
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from tenancy_diag.sandbox.kube_api.answers import Reply
from tenancy_diag.sandbox.kube_api.errors import ApiError, bad_request, no_route
from tenancy_diag.sandbox.kube_api.kubelet import KubeletOptions
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
    kubelet: KubeletOptions | None = None,
) -> type[BaseHTTPRequestHandler]:
    """A request handler class serving ``scenario`` to clients presenting ``token``.

    ``options`` changes the workloads (fewer replicas of a Deployment, how long a replacement
    pod takes to become Ready); see :class:`~.workloads.WorkloadOptions`. ``kubelet`` runs the
    pods of the Jobs clients create as processes on this machine (see :mod:`.kubelet`); without
    it they stay Pending. The class's ``api`` attribute lets in-process tests look at the
    cluster's state, and its ``api.close()`` stops the pods.
    """
    served = Api(scenario, options, kubelet)
    expected = f"Bearer {token}".encode()
    regions = frozenset(scenario.spec.regions)

    class KubeApiHandler(BaseHTTPRequestHandler):
        api: ClassVar[Api] = served
        server_version = "kube-apiserver-sandbox/1.31"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            try:
                answer = self._route(self.command, self._body())
            except ApiError as e:
                answer = Reply(e.code, JSON, json.dumps(e.status()).encode())
            _respond(self, answer if isinstance(answer, Reply) else Reply(200, *answer))

        def _route(self, method: str, body: bytes) -> Answer | Reply:
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

        def log_message(self, format: str, *args: Any) -> None:
            if log_requests:
                super().log_message(format, *args)

    return KubeApiHandler


def _respond(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
    """Send ``reply``: whole, or (a watch) chunk by chunk until it ends or the client goes."""
    handler.send_response(reply.code)
    handler.send_header("Content-Type", reply.content_type)
    handler.send_header("Cache-Control", "no-cache, private")
    if isinstance(reply.body, bytes):
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        handler.wfile.write(reply.body)
        return
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    try:
        for chunk in reply.body:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            handler.wfile.flush()
        handler.wfile.write(b"0\r\n\r\n")
    except OSError:
        handler.close_connection = True


def _split_cluster(path: str, regions: frozenset[str]) -> tuple[str | None, str]:
    """``/clusters/<region>/api/...`` -> (region, ``/api/...``); other paths serve all regions."""
    if not path.startswith(CLUSTER_PREFIX):
        return None, path
    region, _, rest = path[len(CLUSTER_PREFIX) :].partition("/")
    if region not in regions:
        raise no_route()
    return region, "/" + rest
