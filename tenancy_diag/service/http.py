"""The receiver: Alertmanager and incident webhooks in, durable jobs out (a Starlette app).

A POST is checked in this order: route, token, content type, length, body, payload. Nobody
without the token learns the payload rules, and no byte of a body is read before the request
is known to be wanted and small enough. A 2xx goes out only after the store has committed.
Every client mistake is a 4xx with a one-line reason; a 5xx means this service failed.

The app runs on :mod:`.listening`'s server; parsing and the store's commits run in worker
threads, so the event loop keeps accepting while SQLite syncs.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenancy_diag.errors import ConfigError, TenancyDiagError, shorten
from tenancy_diag.service.intake import Rejection, RunRequest, parse_alertmanager, parse_incident
from tenancy_diag.service.limits import Limits
from tenancy_diag.service.logs import configure_logging, describe
from tenancy_diag.service.schema import openapi
from tenancy_diag.service.store import QueueFull, Store, StoreError
from tenancy_diag.service.telemetry import CONTENT_TYPE, Telemetry

__all__ = [
    "ENV_SERVICE_TOKEN",
    "ENV_SERVICE_TOKEN_FILE",
    "RequestLog",
    "configure_logging",
    "make_app",
    "read_token",
]

# Names of variables, not secrets.
ENV_SERVICE_TOKEN = "TENANCY_DIAG_SERVICE_TOKEN"  # noqa: S105
ENV_SERVICE_TOKEN_FILE = "TENANCY_DIAG_SERVICE_TOKEN_FILE"  # noqa: S105
#: Seconds a 503 asks the sender to wait; Alertmanager backs off on its own schedule anyway.
RETRY_AFTER_S = 30
#: Methods HTTP defines: one of these on a path that does not take it is 405, anything else 501.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)
_LOG_KEY = "tenancy_diag.log"

log = logging.getLogger(__name__)


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


class ResolvedHook(Protocol):
    """What a resolved notification starts beyond being recorded; returns (job id, created)."""

    def __call__(self, req: RunRequest) -> tuple[int, bool]: ...


class RequestLog:
    """One JSON line and one count per answer, whoever gave it (the app or the listener)."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def __call__(
        self,
        method: str | None,
        path: str,
        status: int,
        reason: str | None = None,
        *,
        job: int | None = None,
        started: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.telemetry.request_served(path, status)
        fields: dict[str, Any] = {"method": method, "path": shorten(path, 200), "status": status}
        fields |= {"job": job, "reason": reason}
        if started is not None:
            fields["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        if error is not None:
            fields |= describe(error)
        log.log(logging.ERROR if status >= 500 else logging.INFO, json.dumps(fields))


@dataclass
class _Receiver:
    store: Store
    token: bytes
    telemetry: Telemetry
    limits: Limits
    on_resolved: ResolvedHook | None

    async def healthz(self, request: Request) -> Response:
        try:
            depth = await run_in_threadpool(self.store.depth)
        except StoreError as e:
            _note(request, reason=shorten(e))
            return JSONResponse({"status": "error", "error": shorten(e)}, 503)
        return JSONResponse({"status": "ok", "queue": depth})

    async def metrics(self, request: Request) -> Response:
        body = await run_in_threadpool(self.telemetry.exposition)
        return Response(body, media_type=CONTENT_TYPE)

    async def schema(self, request: Request) -> Response:
        return JSONResponse(openapi(self.limits))

    async def alerts(self, request: Request) -> Response:
        return await self._accept(request, parse_alertmanager)

    async def incidents(self, request: Request) -> Response:
        return await self._accept(request, parse_incident)

    async def _accept(self, request: Request, parse: Callable[[bytes], RunRequest]) -> Response:
        self._authorize(request)
        content_type = request.headers.get("content-type", "")
        if content_type.partition(";")[0].strip().lower() not in ("application/json", "text/json"):
            raise Rejection(
                415,
                f"content type {shorten(content_type, 60)!r} is not JSON; send "
                "Content-Type: application/json",
            )
        body = await self._body(request)
        answer, job = await run_in_threadpool(self._store, parse, body)
        _note(request, job=job)
        return JSONResponse(answer)

    def _store(
        self, parse: Callable[[bytes], RunRequest], body: bytes
    ) -> tuple[dict[str, Any], int | None]:
        req = parse(body)
        if req.status != "resolved":
            job, created = self.store.enqueue(req)
            return {"job": job, "created": created}, job
        if self.on_resolved is None:
            return {"resolution": self.store.record_resolution(req)}, None
        # The hook first: when the queue is full it refuses (503) before anything is written,
        # and Alertmanager's retry finds nothing half done.
        job, created = self.on_resolved(req)
        resolution = self.store.record_resolution(req)
        return {"resolution": resolution, "job": job, "created": created}, job

    def _authorize(self, request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise Rejection(401, "no bearer token; send the header 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(given.strip().encode(), self.token):
            raise Rejection(
                401, f"the bearer token is wrong; send the one in {ENV_SERVICE_TOKEN}(_FILE)"
            )

    async def _body(self, request: Request) -> bytes:
        raw = request.headers.get("content-length")
        if raw is None:
            raise Rejection(411, "no Content-Length; send the body with its length, not chunked")
        length = _byte_count(raw)
        if length is None:
            raise Rejection(400, f"Content-Length {shorten(raw, 20)!r} is not a byte count")
        if length > self.limits.max_body_bytes:
            raise Rejection(
                413,
                f"the body is {length} bytes, over the limit of {self.limits.max_body_bytes}; "
                "send fewer alerts per notification (max_alerts in Alertmanager's webhook_config)",
            )
        chunks: list[bytes] = []
        got = 0
        try:
            async with asyncio.timeout(self.limits.body_deadline_s):
                async for chunk in request.stream():
                    chunks.append(chunk)
                    got += len(chunk)
        except TimeoutError as e:
            raise Rejection(
                408,
                f"the body stopped after {got} of {length} bytes for "
                f"{self.limits.body_deadline_s:g} s; resend it whole",
            ) from e
        except ClientDisconnect as e:
            raise Rejection(
                400, f"the client closed the connection after {got} of {length} bytes"
            ) from e
        return b"".join(chunks)


def _byte_count(raw: str) -> int | None:
    raw = raw.strip()
    # isdigit() alone also accepts digits int() rejects, such as '²'.
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def _note(request: Request, **fields: Any) -> None:
    request.scope.setdefault(_LOG_KEY, {}).update(fields)


def _refusal(
    request: Request, status: int, reason: str, headers: dict[str, str] | None = None
) -> Response:
    reason = shorten(reason)
    _note(request, reason=reason)
    return JSONResponse({"error": reason}, status, headers=headers)


async def _rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Rejection)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    if exc.status == 408:
        # The rest of the body may still come: this connection cannot carry another request.
        headers["Connection"] = "close"
    return _refusal(request, exc.status, exc.reason, headers)


async def _queue_full(request: Request, exc: Exception) -> Response:
    return _refusal(request, 503, str(exc), {"Retry-After": str(RETRY_AFTER_S)})


async def _failed(request: Request, exc: Exception) -> Response:
    # This service's own failure (a broken disk, an unsafe audit log): Alertmanager retries.
    return _refusal(request, 500, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    method, path = request.method, request.url.path
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "another method")
        reason = f"{path} does not take {method}; use {allowed}"
    elif method in ("GET", "HEAD"):
        reason = f"no page at {path}; GET /healthz, /metrics or /openapi.json"
    else:
        reason = f"nothing accepts {method} {path}; send to /alerts or /incidents"
    return _refusal(request, exc.status_code, reason, dict(exc.headers or {}))


async def _crashed(request: Request, exc: Exception) -> Response:
    # A bug in one request must still answer (Alertmanager retries a 500) and leave a trace:
    # the request log line below names the error and where it was raised.
    return _refusal(request, 500, "internal error; see the service log")


class _Logged:
    """Outermost: 501 for unknown methods, then one log line and one count per request."""

    def __init__(self, app: ASGIApp, record: RequestLog) -> None:
        self.app = app
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        notes: dict[str, Any] = scope.setdefault(_LOG_KEY, {})
        status = 500

        async def send_noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method, path = scope["method"], scope["path"]
        error: BaseException | None = None
        try:
            if method not in KNOWN_METHODS:
                reason = f"method {shorten(method, 20)!r} is not implemented; use GET or POST"
                notes["reason"] = reason
                await JSONResponse({"error": reason}, 501)(scope, receive, send_noting)
            else:
                await self.app(scope, receive, send_noting)
        except Exception as e:
            # Already answered 500 by the app's last handler; logged here, not re-raised, so
            # the server adds no traceback of its own.
            error = e
        self.record(
            method,
            path,
            status,
            notes.get("reason"),
            job=notes.get("job"),
            started=started,
            error=error,
        )


def make_app(
    store: Store,
    token: str,
    telemetry: Telemetry,
    *,
    limits: Limits | None = None,
    on_resolved: ResolvedHook | None = None,
    record: RequestLog | None = None,
) -> ASGIApp:
    """The ASGI app serving the endpoints above; ``on_resolved`` (see
    :mod:`tenancy_diag.service.recovery`) acts on resolved notifications, ``record`` logs and
    counts each answer (share it with the listener, which answers some on its own)."""
    if not token.strip():
        raise ConfigError(
            f"the service token is empty; set {ENV_SERVICE_TOKEN} or {ENV_SERVICE_TOKEN_FILE}"
        )
    limits = limits or Limits()
    telemetry.track_queue(store.depth)
    receiver = _Receiver(store, token.strip().encode(), telemetry, limits, on_resolved)
    app = Starlette(
        routes=[
            Route("/alerts", receiver.alerts, methods=["POST"]),
            Route("/incidents", receiver.incidents, methods=["POST"]),
            Route("/healthz", receiver.healthz, methods=["GET"]),
            Route("/metrics", receiver.metrics, methods=["GET"]),
            Route("/openapi.json", receiver.schema, methods=["GET"]),
        ],
        exception_handlers={
            Rejection: _rejected,
            QueueFull: _queue_full,
            TenancyDiagError: _failed,
            HTTPException: _http_error,
            Exception: _crashed,
        },
    )
    return _Logged(app, record or RequestLog(telemetry))
