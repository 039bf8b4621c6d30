"""``?watch=true``: one resource's events as JSON lines, ``{"type": ..., "object": ...}``.

As the API serves them: without ``resourceVersion`` (or with "0") the watch starts with an
ADDED event for every object that matches, then streams changes; with a version it streams
every change after it, or one ERROR event carrying a 410 Expired Status when the log no longer
reaches back that far. The stream ends after ``timeoutSeconds`` (the real server picks 30-60
minutes when none is given), and the client is expected to reconnect from the last version it
saw.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from tenancy_diag.sandbox.kube_api.errors import bad_request, expired
from tenancy_diag.sandbox.kube_api.resources import Body, Resources
from tenancy_diag.sandbox.kube_api.selectors import (
    FieldRequirement,
    Requirement,
    parse_fields,
    parse_selector,
)

DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Watched:
    """What one watch (or list) asks for: a resource's objects in a namespace, filtered."""

    resource: str
    kind: str
    api_version: str
    namespace: str | None
    labels: tuple[Requirement, ...] = ()
    fields: tuple[FieldRequirement, ...] = ()

    @classmethod
    def from_query(
        cls,
        query: Mapping[str, str],
        resource: str,
        kind: str,
        api_version: str,
        namespace: str | None,
    ) -> Watched:
        return cls(
            resource,
            kind,
            api_version,
            namespace,
            parse_selector(query.get("labelSelector", "")),
            parse_fields(query.get("fieldSelector", ""), resource),
        )

    def matches(self, namespace: str, body: Body) -> bool:
        labels = body["metadata"].get("labels") or {}
        return (
            self.namespace in (None, namespace)
            and all(r.matches(labels) for r in self.labels)
            and all(r.matches(body) for r in self.fields)
        )


def is_watch(query: Mapping[str, str]) -> bool:
    raw = query.get("watch")
    return raw is not None and raw not in ("0", "false", "False")


def stream(resources: Resources, watched: Watched, query: Mapping[str, str]) -> Iterator[bytes]:
    """The watch's lines; the generator returns when the watch times out."""
    timeout_s = _timeout(query)
    start = _start(query)
    # Checked before the first byte, so a bad request still gets its 400.
    deadline = time.monotonic() + timeout_s
    return _lines(resources, watched, start, deadline)


def _lines(
    resources: Resources, watched: Watched, start: int | None, deadline: float
) -> Iterator[bytes]:
    if start is None:
        current, last = resources.listed(watched.resource, watched.namespace)
        for body in current:
            if watched.matches(body["metadata"].get("namespace", ""), body):
                yield _line("ADDED", watched, body)
    else:
        last = start
    while not resources.closed:
        events = resources.events_after(last)
        if events is None:
            yield _error(expired(last, resources.oldest()).status())
            return
        for event in events:
            last = event.version
            if event.resource == watched.resource and watched.matches(
                event.namespace, event.object
            ):
                yield _line(event.type, watched, event.object)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        resources.wait(last, min(remaining, 1.0))


def _line(kind: str, watched: Watched, body: Body) -> bytes:
    obj = {"kind": watched.kind, "apiVersion": watched.api_version, **body}
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _error(status: Body) -> bytes:
    return json.dumps({"type": "ERROR", "object": status}, separators=(",", ":")).encode() + b"\n"


def _timeout(query: Mapping[str, str]) -> float:
    raw = query.get("timeoutSeconds")
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        return max(0.0, float(int(raw)))
    except ValueError:
        raise bad_request(f'strconv.ParseInt: parsing "{raw}": invalid syntax') from None


def _start(query: Mapping[str, str]) -> int | None:
    raw = query.get("resourceVersion", "")
    if raw in ("", "0"):
        return None
    if not raw.isdigit():
        raise bad_request(f'resourceVersion: Invalid value: "{raw}": must be a number')
    return int(raw)
