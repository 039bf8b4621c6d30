"""The durable queue: accepted requests, their runs, attachments and resolutions, in SQLite.

Every write commits (WAL, ``synchronous=FULL``) before the method returns, because the
receiver answers 2xx only afterwards and Alertmanager never resends an answered notification.

    StoreError         the database cannot be opened or used, or a job is not where expected
    ├── QueueFull      queued + running jobs reached the capacity; answer 503 and let them retry
    └── UnknownJob     no job has that id

Job states: queued -> running -> done | failed (running -> queued again on retry or restart).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenancy_diag.errors import TenancyDiagError
from tenancy_diag.running.naming import check_name
from tenancy_diag.service.intake import RunRequest
from tenancy_diag.service.jobs import STATES, Attachment, Job, Resolution
from tenancy_diag.times import iso

SCHEMA_VERSION = 1
#: ``not_before`` of a held job: claimable in no lifetime until released.
HELD = 1e18

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, dedupe_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL, incident_id TEXT NOT NULL, state TEXT NOT NULL, request TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, not_before REAL NOT NULL DEFAULT 0, worker TEXT,
    run_id TEXT, bundle TEXT, exit_code INTEGER, error TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, id);
CREATE TABLE IF NOT EXISTS attachments (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL REFERENCES jobs (id),
    sink TEXT NOT NULL, ok INTEGER NOT NULL, detail TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS resolutions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, dedupe_key TEXT NOT NULL UNIQUE,
    incident_id TEXT NOT NULL, request TEXT NOT NULL, received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS resolutions_by_incident ON resolutions (incident_id);
"""


class StoreError(TenancyDiagError):
    """The queue database failed, or a job is not in the state an operation needs."""


class QueueFull(StoreError):
    """Queued plus running jobs reached the store's capacity."""


class UnknownJob(StoreError):
    """No job has the given id."""


class Store:
    """The queue at ``path``; safe to share between threads (one connection behind a lock)."""

    def __init__(self, path: Path, capacity: int = 100) -> None:
        self.path = path
        #: Queued plus running jobs accepted at most; more answer 503 until some finish.
        self.capacity = capacity
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are opened explicitly in _write, never implicitly.
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # A second process (a CLI status command) may hold the write lock briefly.
            self._db.execute("PRAGMA busy_timeout=10000")
            with self._write() as db:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                found = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open the queue at {path} ({e}); check the folder") from e
        if int(found["value"]) != SCHEMA_VERSION:
            self._db.close()
            raise StoreError(
                f"the queue at {path} has schema {found['value']}, this tenancy-diag reads "
                f"{SCHEMA_VERSION}; drain it with the matching version or use another path"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def enqueue(self, req: RunRequest, *, hold: bool = False) -> tuple[int, bool]:
        """(job id, created); a known dedupe key returns its job even when the queue is full.

        A job enqueued with ``hold`` is not claimed until :meth:`release`: its place in the
        queue is taken (or refused with QueueFull) before the caller writes what it needs.
        """
        with self._write() as db:
            row = db.execute("SELECT id FROM jobs WHERE dedupe_key=?", (req.dedupe_key,)).fetchone()
            if row is not None:
                return int(row["id"]), False
            (active,) = db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"
            ).fetchone()
            if active >= self.capacity:
                raise QueueFull(
                    f"the queue holds {active} queued or running jobs, its capacity of "
                    f"{self.capacity}; retry later or raise the capacity"
                )
            now = _now()
            cursor = db.execute(
                "INSERT INTO jobs (dedupe_key, kind, incident_id, state, request, not_before,"
                " created_at, updated_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)",
                (
                    req.dedupe_key,
                    req.kind,
                    req.incident_id,
                    json.dumps(req.to_dict()),
                    HELD if hold else 0,
                    now,
                    now,
                ),
            )
            return int(cursor.lastrowid or 0), True

    def release(self, job_id: int) -> None:
        """Let a held job be claimed; a job not held is left as it is."""
        with self._write() as db:
            self._require(db, job_id)
            db.execute(
                "UPDATE jobs SET not_before=0, updated_at=? WHERE id=? AND not_before>=?",
                (_now(), job_id, HELD),
            )

    def claim(self, worker: str) -> Job | None:
        """The oldest queued job that may start now, moved to running; None when there is none."""
        with self._write() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE state='queued' AND not_before<=? ORDER BY id LIMIT 1",
                (time.time(),),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET state='running', attempts=attempts+1, worker=?, error=NULL,"
                " updated_at=? WHERE id=?",
                (worker, _now(), row["id"]),
            )
        return self.get(int(row["id"]))

    def finish(self, job_id: int, bundle: str, exit_code: int) -> None:
        self._update(job_id, "state='done', bundle=?, exit_code=?", (bundle, exit_code), "running")

    def retry_later(self, job_id: int, error: str, delay_s: float) -> None:
        """Back to queued, claimable again ``delay_s`` seconds from now."""
        not_before = time.time() + delay_s
        self._update(
            job_id, "state='queued', error=?, not_before=?", (error, not_before), "running"
        )

    def fail(self, job_id: int, error: str) -> None:
        self._update(job_id, "state='failed', error=?", (error,), "running")

    def requeue_interrupted(self) -> int:
        """Running jobs back to queued, at startup: their worker died with the last process."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE jobs SET state='queued', not_before=0, updated_at=? WHERE state='running'",
                (_now(),),
            )
            return cursor.rowcount

    def set_run_id(self, job_id: int, run_id: str) -> None:
        """Pin the run id (and so the bundle folder) before executing, so a rerun reuses it."""
        check_name(run_id, "run id")
        self._update(job_id, "run_id=?", (run_id,))

    def record_attachment(self, job_id: int, sink: str, ok: bool, detail: str) -> None:
        with self._write() as db:
            self._require(db, job_id)
            db.execute(
                "INSERT INTO attachments (job_id, sink, ok, detail, at) VALUES (?, ?, ?, ?, ?)",
                (job_id, sink, int(ok), detail, _now()),
            )

    def attachments(self, job_id: int) -> list[Attachment]:
        rows = self._read(
            "SELECT sink, ok, detail, at FROM attachments WHERE job_id=? ORDER BY id", (job_id,)
        )
        return [Attachment(r["sink"], bool(r["ok"]), r["detail"], r["at"]) for r in rows]

    def attached_sinks(self) -> dict[int, set[str]]:
        """Job id -> the sinks it was attached to successfully at least once."""
        rows = self._read("SELECT DISTINCT job_id, sink FROM attachments WHERE ok=1", ())
        found: dict[int, set[str]] = {}
        for row in rows:
            found.setdefault(int(row["job_id"]), set()).add(str(row["sink"]))
        return found

    def forget(self, job_id: int) -> int:
        """Delete a settled job and its attachments (retention); 1 when it was there."""
        with self._write() as db:
            row = db.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                return 0
            if row["state"] not in ("done", "failed"):
                raise StoreError(f"job {job_id} is {row['state']}; only settled jobs are pruned")
            db.execute("DELETE FROM attachments WHERE job_id=?", (job_id,))
            db.execute("DELETE FROM jobs WHERE id=?", (job_id,))
            return 1

    def prune_resolutions(self, before_epoch_s: float) -> int:
        """Delete resolutions received before the given time; how many went."""
        cutoff = iso(datetime.fromtimestamp(before_epoch_s, UTC))
        with self._write() as db:
            return db.execute("DELETE FROM resolutions WHERE received_at<?", (cutoff,)).rowcount

    def record_resolution(self, req: RunRequest) -> int:
        """The resolution's id; the same notification again returns the first one's id."""
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO resolutions (dedupe_key, incident_id, request, received_at)"
                " VALUES (?, ?, ?, ?)",
                (req.dedupe_key, req.incident_id, json.dumps(req.to_dict()), _now()),
            )
            row = db.execute(
                "SELECT id FROM resolutions WHERE dedupe_key=?", (req.dedupe_key,)
            ).fetchone()
            return int(row["id"])

    def resolutions(self, incident_id: str) -> list[Resolution]:
        rows = self._read(
            "SELECT * FROM resolutions WHERE incident_id=? ORDER BY id", (incident_id,)
        )
        return [Resolution.from_row(r) for r in rows]

    def depth(self) -> dict[str, int]:
        """Jobs per state, every state present (zero included)."""
        counts = dict.fromkeys(STATES, 0)
        for row in self._read("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state", ()):
            counts[row["state"]] = int(row["n"])
        return counts

    def get(self, job_id: int) -> Job:
        rows = self._read("SELECT * FROM jobs WHERE id=?", (job_id,))
        if not rows:
            raise UnknownJob(f"no job {job_id} in the queue at {self.path}; list the jobs first")
        return Job.from_row(rows[0])

    def jobs(self, state: str | None = None) -> list[Job]:
        """Every job (or those in ``state``), oldest first."""
        where, params = ("WHERE state=?", (state,)) if state else ("", ())
        rows = self._read(f"SELECT * FROM jobs {where} ORDER BY id", params)  # noqa: S608
        return [Job.from_row(r) for r in rows]

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so check-then-insert cannot race.
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    # SQLite may already have rolled back (disk full); a second ROLLBACK fails.
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                raise StoreError(f"the queue at {self.path} failed ({e}); check the disk") from e

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._lock:
            try:
                return [dict(row) for row in self._db.execute(sql, params)]
            except sqlite3.Error as e:
                raise StoreError(f"the queue at {self.path} failed ({e}); check the disk") from e

    def _require(self, db: sqlite3.Connection, job_id: int) -> str:
        row = db.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJob(f"no job {job_id} in the queue at {self.path}; list the jobs first")
        return str(row["state"])

    def _update(
        self, job_id: int, assignments: str, params: tuple[Any, ...], leaving: str | None = None
    ) -> None:
        """Set columns on one job; with ``leaving``, only if the job is in that state."""
        with self._write() as db:
            state = self._require(db, job_id)
            if leaving is not None and state != leaving:
                # Finishing a job nobody claimed would mean two workers own it.
                raise StoreError(
                    f"job {job_id} is {state}, not {leaving}; claim it before finishing it"
                )
            # ``assignments`` are literals from this module, never request data.
            db.execute(
                f"UPDATE jobs SET {assignments}, updated_at=? WHERE id=?",  # noqa: S608
                (*params, _now(), job_id),
            )


def _now() -> str:
    return iso(datetime.now(UTC))
