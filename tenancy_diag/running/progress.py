"""Progress of a run, one line per notebook start and finish, for a person at a terminal."""

from __future__ import annotations

import threading
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    def started(self, notebook: str) -> None: ...

    def finished(self, notebook: str, status: str, seconds: float) -> None: ...


class NullProgress:
    """For pipes, logs and tests: the bundle and the exit code say everything."""

    def started(self, notebook: str) -> None:
        pass

    def finished(self, notebook: str, status: str, seconds: float) -> None:
        pass


class LineProgress:
    """``[  12.3s] api_health               failing    9.8 s``, safe to call from threads."""

    def __init__(self, stream: TextIO, total: int | None = None) -> None:
        self._stream = stream
        self._total = total
        self._done = 0
        self._begun = time.monotonic()
        self._lock = threading.Lock()

    def started(self, notebook: str) -> None:
        self._line(f"{notebook:<26} started")

    def finished(self, notebook: str, status: str, seconds: float) -> None:
        with self._lock:
            self._done += 1
            done = self._done
        count = f"{done}/{self._total}" if self._total else str(done)
        self._line(f"{notebook:<26} {status:<9} {seconds:6.1f} s   ({count} done)")

    def _line(self, text: str) -> None:
        with self._lock:
            print(f"[{time.monotonic() - self._begun:7.1f}s] {text}", file=self._stream, flush=True)


def for_stream(stream: TextIO, total: int | None = None) -> Progress:
    """Lines on a terminal; nothing when the stream is redirected (CI, cron, a pipe)."""
    isatty = getattr(stream, "isatty", None)
    return LineProgress(stream, total) if callable(isatty) and isatty() else NullProgress()
