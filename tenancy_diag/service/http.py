"""The receiver: Alertmanager and incident webhooks in, durable jobs out.

A POST is checked in this order: route, token, content type, length, body, payload. Nobody
without the token learns the payload rules, and no byte of a body is read before the request
is known to be wanted and small enough. A 2xx goes out only after the store has committed.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar, Protocol, TextIO
from urllib.parse import urlsplit

from tenancy_diag.errors import ConfigError, TenancyDiagError, shorten
from tenancy_diag.service.intake import Rejection, RunRequest, parse_alertmanager, parse_incident
from tenancy_diag.service.store import QueueFull, Store, StoreError
from tenancy_diag.service.telemetry import CONTENT_TYPE, Telemetry

# Names of variables, not secrets.
ENV_SERVICE_TOKEN = "TENANCY_DIAG_SERVICE_TOKEN"  # noqa: S105
ENV_SERVICE_TOKEN_FILE = "TENANCY_DIAG_SERVICE_TOKEN_FILE"  # noqa: S105
#: Seconds a 503 asks the sender to wait; Alertmanager backs off on its own schedule anyway.
RETRY_AFTER_S = 30
#: An unread body left in the socket makes close() send a reset, which can destroy our error
#: reply before the client reads it; so up to this much is drained (and dropped) first.
_LINGER_BYTES = 1 << 20
_LINGER_S = 1.0

log = logging.getLogger(__name__)
_PARSERS: dict[str, Callable[[bytes], RunRequest]] = {
    "/alerts": parse_alertmanager,
    "/incidents": parse_incident,
}


def read_token(env: Mapping[str, str] | None = None) -> str:
    """The bearer token from ``TENANCY_DIAG_SERVICE_TOKEN`` or the file named by ``…_FILE``."""
    env = os.environ if env is None else env
    if env.get(ENV_SERVICE_TOKEN, "").strip():
        return env[ENV_SERVICE_TOKEN].strip()
    path = env.get(ENV_SERVICE_TOKEN_FILE)
    if not path:
        raise ConfigError(
            f"no service token: set {ENV_SERVICE_TOKEN}, or {ENV_SERVICE_TOKEN_FILE} to a file "
            "holding it"
        )
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(
            f"cannot read {ENV_SERVICE_TOKEN_FILE}={path} ({e.strerror}); point it at a readable "
            "file"
        ) from e
    if not token:
        raise ConfigError(f"{ENV_SERVICE_TOKEN_FILE}={path} is empty; write the token into it")
    return token


def configure_logging(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Write the service's log lines (already JSON) unadorned to ``stream`` (stderr); idempotent."""
    logger = logging.getLogger("tenancy_diag.service")
    logger.setLevel(level)
    if any(h.name == "tenancy-diag-service" for h in logger.handlers):
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.name = "tenancy-diag-service"
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)


class ResolvedHook(Protocol):
    """What a resolved notification starts beyond being recorded; returns (job id, created)."""

    def __call__(self, req: RunRequest) -> tuple[int, bool]: ...


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    job: int | None = None
    reason: str | None = None


def _json(status: int, payload: dict[str, Any], **extra: Any) -> _Reply:
    return _Reply(status, json.dumps(payload).encode(), **extra)


def _refusal(status: int, reason: str, headers: dict[str, str] | None = None) -> _Reply:
    reason = shorten(reason)
    return _json(status, {"error": reason}, headers=headers or {}, reason=reason)


class _Receiver(BaseHTTPRequestHandler):
    store: ClassVar[Store]
    telemetry: ClassVar[Telemetry]
    token: ClassVar[bytes]
    max_body_bytes: ClassVar[int]
    #: What a resolved notification starts beyond being recorded: (job id, created).
    on_resolved: ClassVar[ResolvedHook | None] = None
    server_version = "tenancy-diag"
    sys_version = ""
    # Seconds a client may stall one read; keeps slow clients from pinning threads forever.
    timeout = 30

    def do_GET(self) -> None:
        self._handle(self._get)

    def do_POST(self) -> None:
        self._handle(self._post)

    def log_message(self, format: str, *args: Any) -> None:
        # The stdlib's access log is free text; ours is the JSON line in _handle.
        log.debug(format, *args)

    def _handle(self, route: Callable[[str], _Reply]) -> None:
        started = time.monotonic()
        self._body_read = False
        path = urlsplit(self.path).path
        try:
            reply = route(path)
        except Rejection as e:
            auth = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
            reply = _refusal(e.status, e.reason, auth)
        except QueueFull as e:
            reply = _refusal(503, str(e), {"Retry-After": str(RETRY_AFTER_S)})
        except TenancyDiagError as e:
            reply = _refusal(500, str(e))
        except Exception:
            # A bug in one request must still answer (Alertmanager retries a 500) and leave a trace.
            log.exception("request %s %s failed", self.command, path)
            reply = _refusal(500, "internal error; see the service log")
        self._send(reply)
        self._linger()
        self.telemetry.request_served(path, reply.status)
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        fields = {"method": self.command, "path": path, "status": reply.status}
        fields |= {"job": reply.job, "reason": reply.reason, "duration_ms": duration_ms}
        log.info(json.dumps(fields))

    def _get(self, path: str) -> _Reply:
        if path == "/healthz":
            try:
                return _json(200, {"status": "ok", "queue": self.store.depth()})
            except StoreError as e:
                return _json(503, {"status": "error", "error": shorten(e)}, reason=shorten(e))
        if path == "/metrics":
            return _Reply(200, self.telemetry.exposition(), CONTENT_TYPE)
        raise Rejection(404, f"no page at {path}; GET /healthz or /metrics")

    def _post(self, path: str) -> _Reply:
        parse = _PARSERS.get(path)
        if parse is None:
            raise Rejection(404, f"nothing accepts POST {path}; send to {' or '.join(_PARSERS)}")
        self._authorize()
        if self.headers.get_content_type() not in ("application/json", "text/json"):
            raise Rejection(
                415,
                f"content type {self.headers.get('Content-Type')!r} is not JSON; send "
                "Content-Type: application/json",
            )
        req = parse(self._read_body())
        if req.status == "resolved":
            resolution = self.store.record_resolution(req)
            # Read from the class: a plain function stored on it would bind as a method.
            hook = type(self).on_resolved
            if hook is None:
                return _json(200, {"resolution": resolution})
            job, created = hook(req)
            return _json(200, {"resolution": resolution, "job": job, "created": created}, job=job)
        job, created = self.store.enqueue(req)
        return _json(200, {"job": job, "created": created}, job=job)

    def _authorize(self) -> None:
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise Rejection(401, "no bearer token; send the header 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(given.strip().encode(), self.token):
            raise Rejection(
                401, f"the bearer token is wrong; send the one in {ENV_SERVICE_TOKEN}(_FILE)"
            )

    def _read_body(self) -> bytes:
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise Rejection(411, "no Content-Length; send the body with its length, not chunked")
        length = _byte_count(raw)
        if length is None:
            raise Rejection(400, f"Content-Length {shorten(raw, 20)!r} is not a byte count")
        if length > self.max_body_bytes:
            raise Rejection(
                413,
                f"the body is {length} bytes, over the limit of {self.max_body_bytes}; send fewer "
                "alerts per notification (max_alerts in Alertmanager's webhook_config)",
            )
        body = self.rfile.read(length)
        self._body_read = True
        if len(body) < length:
            raise Rejection(400, f"the body ended after {len(body)} of {length} bytes; resend it")
        return body

    def _send(self, reply: _Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            # The client hung up; the log line below still records what it would have got.
            self.close_connection = True

    def _linger(self) -> None:
        """Drop a body we refused to read, so our reply is not lost to a connection reset."""
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        declared = _byte_count(self.headers.get("Content-Length", "0")) or 0
        if self._body_read or not (chunked or declared > 0):
            return
        self.close_connection = True
        deadline = time.monotonic() + _LINGER_S
        left = _LINGER_BYTES
        try:
            self.connection.shutdown(socket.SHUT_WR)
            while left > 0 and time.monotonic() < deadline:
                self.connection.settimeout(max(deadline - time.monotonic(), 0.01))
                chunk = self.connection.recv(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass  # gone or too slow: either way there is nothing left to protect


def _byte_count(raw: str) -> int | None:
    raw = raw.strip()
    # isdigit() alone also accepts digits int() rejects, such as '²'.
    return int(raw) if raw.isascii() and raw.isdigit() else None


def make_handler(
    store: Store,
    token: str,
    telemetry: Telemetry,
    max_body_bytes: int = 1_000_000,
    on_resolved: ResolvedHook | None = None,
) -> type[BaseHTTPRequestHandler]:
    """A request handler class for ``ThreadingHTTPServer`` serving the endpoints above;
    ``on_resolved`` (see :mod:`tenancy_diag.service.recovery`) acts on resolved notifications."""
    if not token.strip():
        raise ConfigError(
            f"the service token is empty; set {ENV_SERVICE_TOKEN} or {ENV_SERVICE_TOKEN_FILE}"
        )
    telemetry.track_queue(store.depth)

    class ServiceHandler(_Receiver):
        pass

    ServiceHandler.store = store
    ServiceHandler.telemetry = telemetry
    ServiceHandler.token = token.strip().encode()
    ServiceHandler.max_body_bytes = max_body_bytes
    ServiceHandler.on_resolved = on_resolved
    return ServiceHandler
