"""One service per ``--state``: an exclusive ``flock`` on ``STATE/owner.lock``, held for life.

Two services on one queue requeue each other's running jobs at start and run the same run id
twice (issue 11). The lock is taken before the queue is opened and lives as long as the
process: the kernel drops it when the process dies, even by ``kill -9``, so a stale file never
blocks a restart. The file holds the owner's PID, host and start time, so the second service
can say whom it found. The descriptor is not inherited by the runs the service starts.

``flock`` is local to one kernel: a state folder on NFS shared by two hosts is not protected;
deploy/ mounts it ReadWriteOnce and runs one replica with ``strategy: Recreate``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from tenancy_diag.errors import ConfigError
from tenancy_diag.times import iso

LOCK_FILE = "owner.lock"


class StateLock:
    """The held lock on ``state_dir``; :meth:`release` (or the process ending) frees it."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise ConfigError(
                f"cannot open the lock {self.path} ({e.strerror}); check --state"
            ) from e
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _holder(self._fd)
            os.close(self._fd)
            raise ConfigError(
                f"--state {state_dir} is in use by {holder}; stop that service first (a "
                "rolling restart stops the old one before the new one starts), or pass another "
                "--state"
            ) from e
        self.owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, (json.dumps(self.owner) + "\n").encode(), 0)
        os.fsync(self._fd)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)


def _holder(fd: int) -> str:
    try:
        found = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {found['pid']} on host {found['host']} (since {found['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its lock file names no owner yet)"


def _now() -> str:
    return iso(datetime.now(UTC))
