"""The durable queue: dedupe, capacity, job states, crash recovery, concurrent writers."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading

import pytest

from tenancy_diag.errors import ConfigError
from tenancy_diag.service.intake import RunRequest, parse_incident
from tenancy_diag.service.store import QueueFull, Store, StoreError, UnknownJob


def request(n: int = 1, **overrides: object) -> RunRequest:
    payload = {
        "incident_id": f"INC-{n}",
        "subsystem": "controller",
        "region": "eu-west-1",
        "tenant": "t-000123",
        "time": "2026-11-27T03:00:00Z",
    }
    payload.update(overrides)
    return parse_incident(json.dumps(payload).encode())


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "queue.sqlite3", capacity=5) as s:
        yield s


def test_enqueue_dedupes_on_the_key(store):
    assert store.enqueue(request(1)) == (1, True)
    assert store.enqueue(request(1)) == (1, False)
    assert store.enqueue(request(2)) == (2, True)
    assert store.depth() == {"queued": 2, "running": 0, "done": 0, "failed": 0}


def test_a_job_carries_its_request(store):
    job_id, _ = store.enqueue(request(7))
    job = store.get(job_id)
    assert (job.kind, job.incident_id, job.status, job.attempts) == (
        "incident",
        "INC-7",
        "queued",
        0,
    )
    assert (job.subsystems, job.region, job.tenant) == (("controller",), "eu-west-1", "t-000123")
    assert job.starts_at == "2026-11-27T03:00:00Z"
    assert job.run_request() == request(7)


def test_a_full_queue_refuses_new_work_but_still_answers_repeats(store):
    for n in range(5):
        store.enqueue(request(n))
    with pytest.raises(QueueFull, match="capacity of 5"):
        store.enqueue(request(99))
    assert store.enqueue(request(0)) == (1, False)
    # Finished jobs free their place.
    job = store.claim("w1")
    store.finish(job.id, "/out/INC-0/run", 0)
    assert store.enqueue(request(99))[1] is True


def test_claim_takes_the_oldest_ready_job_and_counts_attempts(store):
    first, _ = store.enqueue(request(1))
    second, _ = store.enqueue(request(2))
    job = store.claim("w1")
    assert (job.id, job.status, job.attempts) == (first, "running", 1)
    store.retry_later(first, "prometheus timed out", delay_s=3600)
    assert store.get(first).error == "prometheus timed out"
    assert store.claim("w1").id == second
    assert store.claim("w1") is None  # the first waits for its backoff
    store.retry_later(second, "again", delay_s=0)
    again = store.claim("w2")
    assert (again.id, again.attempts) == (second, 2)


def test_finish_and_fail_record_the_outcome(store):
    a, _ = store.enqueue(request(1))
    b, _ = store.enqueue(request(2))
    store.claim("w")
    store.claim("w")
    store.finish(a, "/out/INC-1/20261127T030000Z", 0)
    store.fail(b, "notebook raised KeyError")
    assert (store.get(a).status, store.get(a).bundle, store.get(a).exit_code) == (
        "done",
        "/out/INC-1/20261127T030000Z",
        0,
    )
    assert (store.get(b).status, store.get(b).error) == ("failed", "notebook raised KeyError")
    assert store.depth() == {"queued": 0, "running": 0, "done": 1, "failed": 1}


def test_only_a_running_job_can_finish(store):
    job_id, _ = store.enqueue(request(1))
    with pytest.raises(StoreError, match="is queued, not running"):
        store.finish(job_id, "/out", 0)
    with pytest.raises(UnknownJob, match="no job 42"):
        store.fail(42, "x")
    with pytest.raises(UnknownJob):
        store.get(42)


def test_the_run_id_is_kept_and_must_name_a_folder(store):
    job_id, _ = store.enqueue(request(1))
    store.set_run_id(job_id, "20261127T030000Z-1")
    assert store.get(job_id).run_id == "20261127T030000Z-1"
    with pytest.raises(ConfigError):
        store.set_run_id(job_id, "../escape")


def test_attachments_and_resolutions_are_recorded(store):
    job_id, _ = store.enqueue(request(1))
    store.record_attachment(job_id, "s3", False, "endpoint refused")
    store.record_attachment(job_id, "s3", True, "s3://bucket/INC-1/")
    assert [(a.sink, a.ok, a.detail) for a in store.attachments(job_id)] == [
        ("s3", False, "endpoint refused"),
        ("s3", True, "s3://bucket/INC-1/"),
    ]
    resolved = RunRequest.from_dict(
        {**request(1).to_dict(), "status": "resolved", "dedupe_key": "r1"}
    )
    first = store.record_resolution(resolved)
    assert store.record_resolution(resolved) == first
    [resolution] = store.resolutions("INC-1")
    assert (resolution.id, resolution.request["status"]) == (first, "resolved")
    assert store.depth()["queued"] == 1  # a resolution is not a job


def test_requeue_interrupted_moves_running_jobs_back(store):
    a, _ = store.enqueue(request(1))
    store.enqueue(request(2))
    store.claim("w")
    assert store.requeue_interrupted() == 1
    job = store.get(a)
    assert (job.status, job.attempts) == ("queued", 1)
    assert store.claim("w").id == a


def test_a_queued_job_survives_close_and_reopen(tmp_path):
    path = tmp_path / "queue.sqlite3"
    with Store(path) as s:
        job_id, _ = s.enqueue(request(1))
        s.set_run_id(job_id, "run-1")
    with Store(path) as s:
        assert s.get(job_id).status == "queued"
        assert s.get(job_id).run_id == "run-1"
        assert s.enqueue(request(1)) == (job_id, False)


def test_writes_survive_a_kill_9_and_the_running_job_resumes(tmp_path):
    path = tmp_path / "queue.sqlite3"
    # The writer is killed with SIGKILL the instant claim returns: nothing gets to flush.
    code = (
        "import json, os, sys\n"
        "from pathlib import Path\n"
        "from tenancy_diag.service.intake import parse_incident\n"
        "from tenancy_diag.service.store import Store\n"
        "body = json.dumps({'incident_id': 'INC-9', 'subsystem': 'api', 'region': 'eu-west-1',"
        " 'time': '2026-11-27T03:00:00Z'}).encode()\n"
        "s = Store(Path(sys.argv[1]))\n"
        "s.enqueue(parse_incident(body))\n"
        "s.claim('w')\n"
        "os.kill(os.getpid(), 9)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, timeout=60, check=False
    )
    assert run.returncode == -9, run.stderr
    with Store(path) as s:
        assert s.depth()["running"] == 1
        assert s.requeue_interrupted() == 1
        assert s.jobs("queued")[0].incident_id == "INC-9"


def test_the_database_is_wal_with_full_sync(store):
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_an_unknown_schema_is_refused(tmp_path):
    path = tmp_path / "queue.sqlite3"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="schema 99"):
        Store(path)


def test_concurrent_enqueues_store_each_request_exactly_once(tmp_path):
    path = tmp_path / "queue.sqlite3"
    # Two stores on one file: two connections contend for SQLite's lock, not just our mutex.
    stores = [Store(path, capacity=1000), Store(path, capacity=1000)]
    results: list[tuple[int, bool]] = []
    lock = threading.Lock()

    def submit(thread: int) -> None:
        for n in range(10):
            # Every request twice: the repeat must find the first, whoever wrote it.
            for _ in range(2):
                outcome = stores[thread % 2].enqueue(request(thread * 100 + n))
                with lock:
                    results.append(outcome)

    threads = [threading.Thread(target=submit, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    created = [job for job, new in results if new]
    assert len(created) == len(set(created)) == 80
    assert {job for job, _ in results} == set(created)
    assert len(stores[0].jobs()) == 80
    for s in stores:
        s.close()
