"""The receiver's socket: uvicorn's HTTP/1.1 server (h11) with the limits uvicorn lacks.

uvicorn gives the backlog, keep-alive, an event loop that costs no thread per connection, and
the ASGI plumbing. It has no deadline on a request's headers (each byte resets its keep-alive
timer, so a header line every 25 s holds a connection forever), its connection limit answers
a bare text 503 only once a request arrived, and it answers an oversized head 400 without a
trace in our log. :class:`_Guarded` adds those on top of uvicorn's h11 protocol, the extension
point ``uvicorn.Config(http=...)`` offers:

- a **head deadline**: from the connection's start (or the previous answer) to the end of the
  request's headers, however steadily they trickle; then 408 (or a silent close when nothing
  came at all) and the connection closes;
- a **connection cap**: one connection over it is answered 503 with ``Retry-After`` at once;
- **414 and 431** for a request line or head over the limits, before h11 buffers more;
- every such answer (and h11's own 400) logged as a JSON line and counted like any request.

The body's deadline and size are the application's (:mod:`.http`): it knows the route.
An answer sent before the request was read is followed by a lingering close (our side shut,
up to 1 MiB or 1 s of the client's bytes read and dropped), so a reset cannot destroy it.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from tenancy_diag.errors import ConfigError, shorten
from tenancy_diag.service.limits import Limits
from tenancy_diag.service.telemetry import Telemetry

#: (method or None, path, status, reason): how a refused connection reaches the request log.
Record = Callable[[str | None, str, int, str], None]

RETRY_AFTER_S = 30
_LINGER_BYTES = 1 << 20
_LINGER_S = 1.0
_STOP_S = 10.0
_REQUEST_LINE = re.compile(rb"([A-Z]{1,20}) (/[^ ?]{0,200})")


@dataclass(frozen=True)
class _Guard:
    limits: Limits
    record: Record
    telemetry: Telemetry


class _Guarded(H11Protocol):
    """uvicorn's h11 protocol with a head deadline, a connection cap and head size limits."""

    guard: ClassVar[_Guard]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head = bytearray()
        self._head_done = False
        self._seen_cycle: object = None
        self._deadline: asyncio.TimerHandle | None = None
        self._lingering: int | None = None
        if len(self.connections) >= self.guard.limits.max_connections:
            # Not handed to uvicorn: this connection never joins the ones it serves.
            self.transport = transport
            self.guard.telemetry.connection_closed("limit")
            self._refuse(
                503,
                f"the receiver holds its limit of {self.guard.limits.max_connections} connections; "
                "retry later",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
            return
        super().connection_made(transport)
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            self._lingering -= len(data)
            if self._lingering <= 0:
                self.transport.close()
            return
        if not self._head_done:
            too_big = self._measure_head(data)
            if too_big is not None:
                self._refuse(*too_big)
                return
        super().data_received(data)
        self._note_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or self._lingering is not None:
            return
        self._note_request()
        if self.cycle is self._seen_cycle and self.cycle.response_complete:
            # Waiting for the next request on this connection: its head gets a deadline too.
            self._head = bytearray()
            self._head_done = False
            self._arm_deadline()

    def send_400_response(self, msg: str) -> None:
        method, path = self._request_line()
        self.guard.record(method, path, 400, "the request is not valid HTTP/1.1; check the client")
        super().send_400_response(msg)

    def _note_request(self) -> None:
        """The head is complete once uvicorn started a request cycle for it."""
        if self.cycle is not None and self.cycle is not self._seen_cycle:
            self._seen_cycle = self.cycle
            self._head_done = True
            self._head = bytearray()
            self._disarm_deadline()

    def _measure_head(self, data: bytes) -> tuple[int, str] | None:
        limits = self.guard.limits
        keep = limits.max_head_bytes + 4 - len(self._head)
        if keep > 0:
            self._head += data[:keep]
        head = bytes(self._head)
        line_end = head.find(b"\n")
        if (line_end == -1 and len(head) > limits.max_request_line_bytes) or (
            line_end > limits.max_request_line_bytes
        ):
            return 414, (
                f"the request line is over {limits.max_request_line_bytes} bytes; shorten the URL"
            )
        ends = [i for i in (head.find(b"\n\r\n"), head.find(b"\n\n")) if i != -1]
        head_end = min(ends) if ends else -1
        if (head_end == -1 and len(head) > limits.max_head_bytes) or (
            head_end > limits.max_head_bytes
        ):
            return 431, f"the request's headers are over {limits.max_head_bytes} bytes; send fewer"
        return None

    def _arm_deadline(self) -> None:
        self._disarm_deadline()
        self._deadline = self.loop.call_later(
            self.guard.limits.head_deadline_s, self._deadline_passed
        )

    def _disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self._head_done:
            return
        self.guard.telemetry.connection_closed("deadline")
        if not self._head:
            self.transport.close()  # nothing came at all: no request to answer
            return
        self._refuse(
            408,
            f"the request's headers did not arrive within {self.guard.limits.head_deadline_s:g} s; "
            "send them at once",
        )

    def _request_line(self) -> tuple[str | None, str]:
        found = _REQUEST_LINE.match(bytes(self._head[:256]))
        if found is None:
            return None, "other"
        return found[1].decode("ascii"), found[2].decode("latin-1")

    def _refuse(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        """Answer ``status`` outside h11 (no request was parsed), then close lingering."""
        self._disarm_deadline()
        self._unset_keepalive_if_required()
        method, path = self._request_line()
        self.guard.record(method, path, status, reason)
        body = json.dumps({"error": shorten(reason)}).encode()
        lines = [f"HTTP/1.1 {status} {_PHRASES.get(status, 'Error')}"]
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        lines += ["Connection: close", "", ""]
        self.transport.write("\r\n".join(lines).encode("latin-1") + body)
        self._lingering = _LINGER_BYTES
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_S, self.transport.close)


_PHRASES = {408: "Request Timeout", 414: "URI Too Long", 431: "Request Header Fields Too Large"}
_PHRASES |= {503: "Service Unavailable"}


def protocol_class(limits: Limits, record: Record, telemetry: Telemetry) -> type[H11Protocol]:
    """The guarded protocol bound to these limits and this log (one class per listener)."""
    return type("GuardedH11Protocol", (_Guarded,), {"guard": _Guard(limits, record, telemetry)})


class Listener:
    """The bound socket and the uvicorn server on it, run in a thread of its own."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        limits: Limits,
        record: Record,
        telemetry: Telemetry,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise ConfigError(
                f"cannot listen on {host}:{port} ({e.strerror}); choose a free port"
            ) from e
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(
            app,
            http=protocol_class(limits, record, telemetry),
            loop="asyncio",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=False,
            backlog=limits.backlog,
            timeout_keep_alive=int(max(1, limits.keep_alive_s)),
            timeout_graceful_shutdown=int(_STOP_S),
            # Bigger than our own limits, so ours answer 414/431 first; h11's is the backstop.
            h11_max_incomplete_event_size=2 * limits.max_head_bytes,
        )
        self.server = uvicorn.Server(config)
        telemetry.track_connections(lambda: len(self.server.server_state.connections))
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="receiver", daemon=True
        )

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(
                    f"the receiver on {self.host}:{self.port} did not start; see the log above"
                )
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop accepting, let answers in flight finish (up to 10 s), close the socket."""
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(_STOP_S + 5)
        self.sock.close()
