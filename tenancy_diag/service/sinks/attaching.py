"""Attaching one bundle to every configured sink, retrying what may succeed on a second try.

Nothing here raises: the bundle stays on local disk whatever a sink does, and each outcome is
returned and handed to ``record`` (the service's metrics and audit log) instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tenancy_diag.errors import TenancyDiagError, shorten
from tenancy_diag.service.sinks.attachments import AttachmentResult, Sink, SinkError

Record = Callable[[str, bool, str], None]
# Only the pages a responder opens first travel in a note; the incident page links the rest.
NOTE_LINK_FILES = ("index.html", "summary.json")

log = logging.getLogger(__name__)


def attach_all(
    sinks: Sequence[Sink],
    bundle: Path,
    summary: Mapping[str, Any],
    *,
    retries: int = 3,
    backoff_s: float = 0.5,
    record: Record | None = None,
) -> list[AttachmentResult]:
    """Attach ``bundle`` to each sink; results come back in the order of ``sinks``.

    A sink failing with a retryable :class:`SinkError` is tried again up to ``retries`` more
    times, waiting ``backoff_s``, then twice that, and so on. Sinks with a true ``needs_links``
    (notes) run after the others and get their links in ``summary["links"]`` as
    ``<sink>:<name>`` (only ``NOTE_LINK_FILES``), after any links the caller put there.
    """
    order = sorted(range(len(sinks)), key=lambda i: bool(getattr(sinks[i], "needs_links", False)))
    results: dict[int, AttachmentResult] = {}
    for index in order:
        sink = sinks[index]
        given = summary
        if getattr(sink, "needs_links", False):
            given = {**summary, "links": {**(summary.get("links") or {}), **note_links(results)}}
        result = attach_one(sink, bundle, given, retries=retries, backoff_s=backoff_s)
        results[index] = result
        if record is not None:
            record(result.sink, result.ok, result.detail)
    return [results[i] for i in range(len(sinks))]


def attach_one(
    sink: Sink, bundle: Path, summary: Mapping[str, Any], *, retries: int, backoff_s: float
) -> AttachmentResult:
    name = str(getattr(sink, "name", type(sink).__name__))
    attempt = 0
    while True:
        attempt += 1
        try:
            attachment = sink.attach(bundle, summary)
        except SinkError as e:
            if e.retryable and attempt <= retries:
                log.warning(
                    "attaching to %s failed (%s); attempt %d of %d", name, e, attempt, retries + 1
                )
                time.sleep(backoff_s * 2 ** (attempt - 1))
                continue
            return _failed(name, attempt, str(e), retryable=e.retryable)
        except TenancyDiagError as e:
            return _failed(name, attempt, str(e), retryable=False)
        except Exception as e:
            # A sink's own bug must not cost the other sinks their attachment.
            log.exception("sink %s crashed", name)
            return _failed(name, attempt, f"{type(e).__name__}: {shorten(e)}", retryable=False)
        return AttachmentResult(name, True, attempt, attachment=attachment)


def note_links(results: Mapping[int, AttachmentResult]) -> dict[str, str]:
    """The headline links of the successful attachments so far, keyed ``<sink>:<name>``."""
    links = {}
    for result in results.values():
        if result.attachment is None:
            continue
        for key, url in result.attachment.links.items():
            if key.removeprefix("web:") in NOTE_LINK_FILES:
                links[f"{result.sink}:{key}"] = url
    return links


def _failed(name: str, attempts: int, error: str, *, retryable: bool) -> AttachmentResult:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    log.error("attaching to %s failed%s: %s", name, tries, error)
    return AttachmentResult(name, False, attempts, error=f"{error}{tries}", retryable=retryable)
