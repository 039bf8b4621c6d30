"""What one client may cost the receiver: bytes, seconds and connections, in one place.

Alertmanager sends a few kilobytes per notification and retries whatever gets no answer, so
every limit here can be tight: a client over one gets a 4xx (or its connection closed) and
the service keeps answering everybody else.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenancy_diag.errors import ConfigError


@dataclass(frozen=True)
class Limits:
    """The receiver's limits; sizes in bytes, durations in seconds."""

    #: A request body larger than this is refused with 413 before it is read.
    max_body_bytes: int = 1_000_000
    #: The request line (method, target, version); longer is refused with 414.
    max_request_line_bytes: int = 8192
    #: The request line and headers together; more is refused with 431.
    max_head_bytes: int = 16384
    #: From the connection's start (or the previous answer) to the end of the request's
    #: headers, however steadily they trickle in; past it the connection gets 408 and closes.
    head_deadline_s: float = 10.0
    #: From the end of the headers to the end of the body; past it 408 and the connection closes.
    body_deadline_s: float = 10.0
    #: An idle keep-alive connection is closed after this long.
    keep_alive_s: float = 5.0
    #: Open connections at most; one more is answered 503 with Retry-After and closed at once.
    max_connections: int = 1024
    #: Connections the kernel queues before the receiver accepts them (``listen(2)``'s backlog;
    #: the kernel caps it at ``net.core.somaxconn``).
    backlog: int = 2048

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise ConfigError(f"the receiver limit {name}={value} must be positive")
        if self.max_request_line_bytes > self.max_head_bytes:
            raise ConfigError(
                f"max_request_line_bytes={self.max_request_line_bytes} exceeds max_head_bytes="
                f"{self.max_head_bytes}; the request line is part of the head"
            )
