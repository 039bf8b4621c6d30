"""What an evidence sink is and what it hands back: the contract every sink keeps.

TenancyDiagError
└── SinkError        a sink could not attach the bundle; ``retryable`` says whether trying
                     again may help (a timeout, a 5xx) or not (a 4xx, a missing bucket)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tenancy_diag.errors import TenancyDiagError


class SinkError(TenancyDiagError):
    """A sink failed to attach a bundle; ``sink`` names it, ``retryable`` drives the backoff."""

    def __init__(self, sink: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.sink = sink
        self.retryable = retryable


@dataclass(frozen=True)
class Attachment:
    """Where a sink put the evidence.

    ``links`` maps a name to a URL. File sinks key by the file's path inside the bundle
    (``index.html``); a browsable twin of a non-browsable link adds ``web:<path>``.
    """

    sink: str
    links: dict[str, str]
    detail: str


@dataclass(frozen=True)
class AttachmentResult:
    """One sink's outcome after every attempt ``attach_all`` made."""

    sink: str
    ok: bool
    attempts: int
    attachment: Attachment | None = None
    error: str | None = None
    retryable: bool = False  # of the last error; a retryable failure ran out of attempts

    @property
    def detail(self) -> str:
        if self.attachment is not None:
            return self.attachment.detail
        return self.error or ""


class Sink(Protocol):
    """An evidence sink: puts a finished bundle (``OUT/<incident>/<run_id>``) somewhere.

    ``attach`` raises :class:`SinkError` (or another ``TenancyDiagError``) on failure and must
    never move or delete the local bundle. A sink that reports what the others attached (a
    note) sets a true ``needs_links`` attribute: ``attach_all`` then runs it last and hands it
    their links in ``summary["links"]``.
    """

    name: str

    def attach(self, bundle: Path, summary: Mapping[str, Any]) -> Attachment: ...
