"""The move journal: the JSONL file that makes a move safe to rerun after any failure.

One fsync'd line per step, read back on the next run to learn where each message got to, and
held under ``flock`` so two movers never share it (see the guarantees in :mod:`moving`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from tenancy_diag.errors import ConfigError
from tenancy_diag.evidence import MOVE_JOURNAL_SCHEMA as JOURNAL_SCHEMA
from tenancy_diag.remediating.moves import MessageRef, MoveRequest


@dataclass(frozen=True)
class Entry:
    """The newest journal line of one move id."""

    event: str  # intent, sent, deleted
    body_sha256: str
    target_message_id: str | None


class Journal:
    """The move's JSONL journal, held under ``flock`` while a run appends to it."""

    def __init__(self, path: Path, request: MoveRequest, handle: BinaryIO) -> None:
        self.path = path
        self.request = request
        self._handle = handle
        self._states: dict[str, Entry] = {}

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path, request: MoveRequest) -> Iterator[Journal]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("a+b")
        except OSError as e:
            raise ConfigError(f"cannot open move journal {path} ({e.strerror}); check it") from e
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                raise ConfigError(
                    f"move journal {path} is held by another running move; wait for it to end"
                ) from e
            journal = cls(path, request, handle)
            journal._load()
            journal.write("start", None, selection=request.to_json())
            yield journal

    def _load(self) -> None:
        self._handle.seek(0)
        data = self._handle.read()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            # A torn last line (a crash mid-write) recorded nothing that happened: each line is
            # written before the step it permits (intent) or after the step it reports.
            self._handle.truncate(complete)
        lines = data[:complete].decode("utf-8", errors="replace").split("\n")[:-1]
        for number, line in enumerate(lines, start=1):
            self._read_line(number, line)

    def _read_line(self, number: int, line: str) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or record.get("schema") != JOURNAL_SCHEMA:
            raise ConfigError(
                f"line {number} of move journal {self.path} is not a {JOURNAL_SCHEMA} record; "
                "restore the journal or start a new one only after checking both queues"
            )
        mine = (self.request.region, self.request.source_queue, self.request.target_queue)
        theirs = (record.get("region"), record.get("source"), record.get("target"))
        if theirs != mine:
            raise ConfigError(
                f"move journal {self.path} records a move {theirs}, not {mine}; use a new "
                "journal for a different move"
            )
        if record.get("event") in ("intent", "sent", "deleted"):
            old = self._states.get(record["move_id"])
            self._states[record["move_id"]] = Entry(
                record["event"],
                record.get("body_sha256", ""),
                record.get("target_message_id") or (old.target_message_id if old else None),
            )

    def state(self, move_id: str) -> Entry | None:
        return self._states.get(move_id)

    def pending(self, events: Sequence[str]) -> list[str]:
        return sorted(m for m, entry in self._states.items() if entry.event in events)

    def write(self, event: str, ref: MessageRef | None, **extra: Any) -> None:
        record: dict[str, Any] = {
            "schema": JOURNAL_SCHEMA,
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "event": event,
            "region": self.request.region,
            "source": self.request.source_queue,
            "target": self.request.target_queue,
        }
        if ref is not None:
            record.update(asdict(ref), move_id=ref.message_id)
        record.update(extra)
        try:
            self._handle.write(json.dumps(record).encode("ascii") + b"\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as e:
            raise ConfigError(
                f"cannot append to move journal {self.path} ({e.strerror}); free space or fix "
                "permissions, then rerun with the same journal"
            ) from e
        if ref is not None and event in ("intent", "sent", "deleted"):
            old = self._states.get(ref.message_id)
            target_id = extra.get("target_message_id") or (old.target_message_id if old else None)
            self._states[ref.message_id] = Entry(event, ref.body_sha256, target_id)
