"""Bounded disk: finished evidence older or bigger than allowed goes, oldest first.

Each pass measures ``OUT`` and the state folder (``tenancy_diag_disk_bytes``) and, when a bound
is set, removes:

- **bundles of done jobs attached to every configured sink** (an ``ok`` attachment per sink
  name), with their job's row and attachments: the evidence lives on in the sinks;
- **moved-aside attempts** (``<run_id>.partial-N``, ``<run_id>.attempt-N``) of settled jobs.

Never a bundle still unattached (a sink failed, or the job is queued or running), nor a failed
job's folder: nothing else holds those. ``retain_days`` removes what is older (its folder's
last write); ``retain_bytes`` then removes the oldest removable until ``OUT`` fits, and says so
in the log when what is left still does not. Resolutions older than ``retain_days`` go too.
A job's row going means the same alert group, resent later, runs again: keep days >= 1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tenancy_diag.errors import ConfigError, TenancyDiagError
from tenancy_diag.service.store import Store
from tenancy_diag.service.telemetry import Telemetry

log = logging.getLogger(__name__)
_DAY_S = 86400.0
_ASIDE = (".partial-", ".attempt-")


@dataclass(frozen=True)
class Retention:
    """How much finished evidence to keep; None: no bound of that kind."""

    #: Days a removable bundle or attempt is kept after its last write.
    max_age_days: float | None = None
    #: Bytes ``OUT`` may hold before removable bundles go, oldest first.
    max_bytes: int | None = None
    #: Seconds between passes (each also measures the disk for /metrics).
    interval_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_age_days is not None and self.max_age_days <= 0:
            raise ConfigError(f"--retain-days {self.max_age_days} must be positive")
        if self.max_bytes is not None and self.max_bytes <= 0:
            raise ConfigError(f"--retain-bytes {self.max_bytes} must be positive")

    @property
    def bounded(self) -> bool:
        return self.max_age_days is not None or self.max_bytes is not None


@dataclass(frozen=True)
class _Removable:
    path: Path
    mtime: float
    size: int
    job: int | None  # the job whose row goes with it; None for an attempt folder


class Pruner:
    """Runs retention passes in a thread: :meth:`start`, :meth:`stop`; :meth:`prune` is one."""

    def __init__(
        self,
        store: Store,
        out: Path,
        *,
        state_dir: Path,
        sinks: Sequence[str],
        retention: Retention,
        telemetry: Telemetry,
    ) -> None:
        self.store = store
        self.out = out.resolve()
        self.state_dir = state_dir
        #: Sink names a bundle must be attached to (ok) before it may go.
        self.sinks = frozenset(sinks)
        self.retention = retention
        self.telemetry = telemetry
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.prune()
            except (OSError, TenancyDiagError) as e:
                _log(logging.ERROR, "retention failed", error=str(e))
            self._stopping.wait(self.retention.interval_s)

    def prune(self) -> dict[str, int]:
        """One pass; what it removed by kind (bundles, partials, rows)."""
        removed = {"bundles": 0, "partials": 0, "rows": 0}
        if self.retention.bounded:
            removed = self._remove(self._removable())
            cutoff = self._cutoff()
            if cutoff is not None:
                removed["rows"] += self.store.prune_resolutions(cutoff)
        usage = self.measure()
        self.telemetry.disk_measured(usage)
        for what, count in removed.items():
            if count:
                self.telemetry.pruned.labels(what=what).inc(count)
        if any(removed.values()):
            _log(logging.INFO, "retention pass", removed=removed, disk_bytes=usage)
        limit = self.retention.max_bytes
        if limit is not None and usage["bundles"] + usage["partials"] > limit:
            _log(
                logging.WARNING,
                "over retain-bytes with nothing left to remove",
                disk_bytes=usage,
                retain_bytes=limit,
                why="what is left is unattached, failed or still running; see the queue",
            )
        return removed

    def measure(self) -> dict[str, int]:
        """Bytes under OUT (attempts apart) and under the state folder."""
        usage = {"bundles": 0, "partials": 0, "state": _size(self.state_dir)}
        for incident in _folders(self.out):
            for run in _folders(incident):
                usage["partials" if _aside(run.name) else "bundles"] += _size(run)
            usage["bundles"] += sum(_file_size(p) for p in _files(incident))
        usage["bundles"] += sum(_file_size(p) for p in _files(self.out))
        return usage

    def _cutoff(self) -> float | None:
        days = self.retention.max_age_days
        return None if days is None else time.time() - days * _DAY_S

    def _removable(self) -> list[_Removable]:
        attached = self.store.attached_sinks()
        settled: set[str] = set()
        found: list[_Removable] = []
        for job in self.store.jobs():
            if job.status in ("done", "failed") and job.run_id:
                settled.add(f"{job.incident_id}/{job.run_id}")
            everywhere = self.sinks <= attached.get(job.id, set())
            if job.status != "done" or not job.bundle or not everywhere:
                continue
            folder = Path(job.bundle)
            if not self._inside(folder):
                continue
            if not folder.exists():
                found.append(_Removable(folder, 0.0, 0, job.id))
            elif not folder.is_symlink():
                found.append(_Removable(folder, folder.stat().st_mtime, _size(folder), job.id))
        for incident in _folders(self.out):
            for run in _folders(incident):
                owner = run.name.split(".", 1)[0]
                if _aside(run.name) and f"{incident.name}/{owner}" in settled:
                    found.append(_Removable(run, run.stat().st_mtime, _size(run), None))
        return sorted(found, key=lambda r: r.mtime)

    def _remove(self, candidates: list[_Removable]) -> dict[str, int]:
        removed = {"bundles": 0, "partials": 0, "rows": 0}
        cutoff = self._cutoff()
        limit = self.retention.max_bytes
        total = sum(self.measure()[k] for k in ("bundles", "partials")) if limit else 0
        for item in candidates:
            too_old = cutoff is not None and item.mtime < cutoff
            too_big = limit is not None and total > limit
            if not (too_old or too_big):
                continue
            if item.path.exists():
                try:
                    shutil.rmtree(item.path)
                except OSError as e:
                    _log(logging.ERROR, "retention could not remove", path=item.path, error=str(e))
                    continue
                with contextlib.suppress(OSError):
                    item.path.parent.rmdir()  # the incident's folder, once empty
            total -= item.size
            if item.job is None:
                removed["partials"] += 1
            else:
                removed["bundles"] += 1 if item.size else 0
                removed["rows"] += self.store.forget(item.job)
        return removed

    def _inside(self, folder: Path) -> bool:
        try:
            resolved = folder.parent.resolve() / folder.name
        except OSError:
            return False
        # Exactly OUT/<incident>/<run>: never OUT itself, never outside it.
        return resolved.parent.parent == self.out


def _aside(name: str) -> bool:
    return any(marker in name for marker in _ASIDE)


def _folders(root: Path) -> Iterator[Path]:
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            if entry.is_dir(follow_symlinks=False):
                yield Path(entry.path)


def _files(root: Path) -> Iterator[Path]:
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            if entry.is_file(follow_symlinks=False):
                yield Path(entry.path)


def _file_size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def _size(root: Path) -> int:
    total = 0
    for folder, _, names in os.walk(root):
        total += sum(_file_size(Path(folder) / name) for name in names)
    return total


def _log(level: int, event: str, **fields: object) -> None:
    log.log(level, json.dumps({"event": event, **fields}, default=str))
