"""The objects clients write (Jobs, their pods, Secrets, ConfigMaps, Namespaces) and their events.

As etcd does for kube-apiserver: every write takes the next resourceVersion from one counter
for the whole cluster (so a watch can resume from any version a list returned) and leaves an
event (ADDED, MODIFIED, DELETED) holding the object as written. The log keeps the last
``history`` events; a watch from an older version is told 410 Expired, as the real API tells it
once etcd has compacted.

Objects are stored without ``kind``/``apiVersion`` (list items carry none); whoever answers a
single object or an event adds them.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Body = dict[str, Any]
#: Far above the hashed versions of the scenario's objects, so the two never collide.
FIRST_VERSION = 2_000_000


@dataclass(frozen=True)
class Event:
    version: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: str  # plural: jobs, pods, secrets, configmaps, namespaces
    namespace: str
    object: Body


class Resources:
    """The stored objects behind one lock; writers bump the version and wake the watchers."""

    def __init__(self, history: int = 1000) -> None:
        self._objects: dict[tuple[str, str, str], Body] = {}
        self._events: deque[Event] = deque(maxlen=history)
        self._version = FIRST_VERSION
        self._changed = threading.Condition()
        self.closed = False

    @property
    def version(self) -> int:
        with self._changed:
            return self._version

    def get(self, resource: str, namespace: str, name: str) -> Body | None:
        with self._changed:
            found = self._objects.get((resource, namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def listed(self, resource: str, namespace: str | None = None) -> tuple[list[Body], int]:
        """The objects of ``resource`` (in ``namespace``, or all) and the version they are at."""
        with self._changed:
            found = [
                copy.deepcopy(body)
                for (kind, ns, _), body in sorted(self._objects.items())
                if kind == resource and namespace in (None, ns)
            ]
            return found, self._version

    def add(self, resource: str, body: Body) -> Body | None:
        """Store a new object; None when its name is taken (the caller answers 409)."""
        meta = body["metadata"]
        key = (resource, meta.get("namespace", ""), meta["name"])
        with self._changed:
            if key in self._objects:
                return None
            return self._write("ADDED", key, body)

    def update(
        self, resource: str, namespace: str, name: str, change: Callable[[Body], Any]
    ) -> Body | None:
        """Apply ``change`` to the stored object in place; None when it is gone."""
        key = (resource, namespace, name)
        with self._changed:
            body = self._objects.get(key)
            if body is None:
                return None
            change(body)
            return self._write("MODIFIED", key, body)

    def remove(self, resource: str, namespace: str, name: str) -> Body | None:
        key = (resource, namespace, name)
        with self._changed:
            body = self._objects.pop(key, None)
            if body is None:
                return None
            return self._write("DELETED", key, body, keep=False)

    def events_after(self, version: int) -> list[Event] | None:
        """Every event newer than ``version``; None when the log no longer reaches back there."""
        with self._changed:
            if self._events and version < self._events[0].version - 1:
                return None
            return [e for e in self._events if e.version > version]

    def oldest(self) -> int:
        with self._changed:
            return self._events[0].version if self._events else self._version

    def wait(self, version: int, timeout_s: float) -> None:
        """Return once something newer than ``version`` was written, or after ``timeout_s``."""
        with self._changed:
            self._changed.wait_for(lambda: self._version > version or self.closed, timeout_s)

    def close(self) -> None:
        """End every watch (the server is going away)."""
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def _write(self, kind: str, key: tuple[str, str, str], body: Body, keep: bool = True) -> Body:
        self._version += 1
        if kind != "DELETED":
            # A delete is its own write, with its own version, as on a real cluster.
            body["metadata"]["resourceVersion"] = str(self._version)
        else:
            body = copy.deepcopy(body)
            body["metadata"]["resourceVersion"] = str(self._version)
        if keep:
            self._objects[key] = body
        snapshot = copy.deepcopy(body)
        self._events.append(Event(self._version, kind, key[0], key[1], snapshot))
        self._changed.notify_all()
        return copy.deepcopy(snapshot)
