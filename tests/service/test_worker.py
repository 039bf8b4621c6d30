"""The worker pool against a real queue and a fake executor: concurrency, retries, sinks."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tenancy_diag.running.bundles import Bundle, write_json, write_manifest
from tenancy_diag.service.executor import Execution
from tenancy_diag.service.intake import parse_incident
from tenancy_diag.service.sinks import Attachment, SinkError
from tenancy_diag.service.store import Store
from tenancy_diag.service.telemetry import Telemetry
from tenancy_diag.service.worker import Worker, judge


def _incident(n: int) -> bytes:
    return json.dumps(
        {
            "incident_id": f"INC-{n}",
            "subsystem": "webhook",
            "region": "us-east-1",
            "time": "2026-11-27T03:00:00Z",
        }
    ).encode()


def write_bundle(root: Path, incident: str, run_id: str, sources: dict | None = None) -> None:
    """A sealed bundle whose one notebook reports ``sources`` (unknown status when given)."""
    root.mkdir(parents=True)
    bundle = Bundle(root, incident, run_id)
    status = "unknown" if sources else "ok"
    write_json(bundle.findings("webhook_delivery"), {"status": status, "sources": sources or {}})
    row = {
        "notebook": "webhook_delivery",
        "status": status,
        "files": {"findings": "findings/webhook_delivery.json"},
    }
    write_json(root / "summary.json", {"incident": incident, "run_id": run_id, "subsystems": [row]})
    write_manifest(bundle, {"run_id": run_id, "incident": incident})


@dataclass
class FakeExecutor:
    """Writes a sealed bundle after ``seconds``; ``script`` scripts the first attempts."""

    out: Path
    seconds: float = 0.0
    script: list[str] = field(default_factory=list)  # "ok", "crash", "timeout", "unreachable"
    calls: list[tuple[int, str, float]] = field(default_factory=list)
    running: int = 0
    peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def execute(self, job, run_id, timeout_s):
        with self.lock:
            self.calls.append((job.id, run_id, time.monotonic()))
            self.running += 1
            self.peak = max(self.peak, self.running)
            step = self.script.pop(0) if self.script else "ok"
        try:
            time.sleep(self.seconds)
            root = self.out / job.incident_id / run_id
            if step == "timeout":
                return Execution(root, -15, True, "", timeout_s)
            if step == "crash":
                return Execution(root, -9, False, "Killed\n", self.seconds)
            sources = None
            if step == "unreachable":
                sources = {"prometheus": "unavailable: Prometheus at http://x is unreachable"}
            write_bundle(root, job.incident_id, run_id, sources)
            return Execution(root, 0, False, "", self.seconds)
        finally:
            with self.lock:
                self.running -= 1


@dataclass
class FakeSink:
    name: str = "fake"
    fail: bool = False
    attached: list[tuple[Path, dict]] = field(default_factory=list)

    def attach(self, bundle, summary):
        self.attached.append((bundle, dict(summary)))
        if self.fail:
            raise SinkError(self.name, "the tracker answered 400; fix the note", retryable=False)
        return Attachment(self.name, {"index.html": f"fake://{bundle.name}"}, "attached")


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "queue.sqlite") as s:
        yield s


def _pool(store, executor, sinks=(), **options):
    options = {"workers": 2, "run_timeout_s": 5, "backoff_s": 0.05, "poll_s": 0.02, **options}
    telemetry = Telemetry()
    return Worker(store, executor, list(sinks), telemetry, **options), telemetry


def _settle(store, ids, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = [store.get(i) for i in ids]
        if all(j.status in ("done", "failed") for j in jobs):
            return jobs
        time.sleep(0.02)
    raise AssertionError(f"jobs did not settle: {[(j.id, j.status) for j in jobs]}")


def _runs(telemetry, outcome):
    return telemetry.registry.get_sample_value("tenancy_diag_runs_total", {"outcome": outcome})


def test_no_more_runs_at_once_than_workers(store, tmp_path):
    executor = FakeExecutor(tmp_path / "out", seconds=0.15)
    ids = [store.enqueue(parse_incident(_incident(n)))[0] for n in range(6)]
    pool, telemetry = _pool(store, executor, workers=2)
    pool.start()
    jobs = _settle(store, ids)
    assert pool.stop(5)
    assert executor.peak == 2
    assert [j.status for j in jobs] == ["done"] * 6 and _runs(telemetry, "ok") == 6
    # One run id per job, pinned in the store, naming the bundle the job points at.
    assert all(j.bundle == str(tmp_path / "out" / j.incident_id / j.run_id) for j in jobs)


def test_a_crashed_attempt_is_retried_with_backoff_and_then_succeeds(store, tmp_path):
    executor = FakeExecutor(tmp_path / "out", script=["crash", "crash", "ok"])
    job_id, _ = store.enqueue(parse_incident(_incident(1)))
    pool, telemetry = _pool(store, executor, workers=1, max_attempts=3, backoff_s=0.1)
    pool.start()
    (job,) = _settle(store, [job_id])
    pool.stop(5)
    assert job.status == "done" and job.attempts == 3
    times = [t for _, _, t in executor.calls]
    assert times[1] - times[0] >= 0.1 and times[2] - times[1] >= 0.2  # doubled
    assert len({run_id for _, run_id, _ in executor.calls}) == 1  # the same bundle folder
    assert _runs(telemetry, "ok") == 1 and _runs(telemetry, "error") == 0


def test_a_run_that_keeps_timing_out_is_retried_then_failed(store, tmp_path):
    executor = FakeExecutor(tmp_path / "out", script=["timeout"] * 5)
    job_id, _ = store.enqueue(parse_incident(_incident(1)))
    pool, telemetry = _pool(store, executor, workers=1, max_attempts=2, run_timeout_s=7)
    pool.start()
    (job,) = _settle(store, [job_id])
    pool.stop(5)
    assert job.status == "failed" and job.attempts == 2 and len(executor.calls) == 2
    assert "7 s timeout" in job.error
    assert _runs(telemetry, "error") == 1


def test_an_unreachable_source_is_retried_and_the_sealed_attempt_kept_aside(store, tmp_path):
    out = tmp_path / "out"
    executor = FakeExecutor(out, script=["unreachable", "ok"])
    job_id, _ = store.enqueue(parse_incident(_incident(1)))
    pool, _ = _pool(store, executor, workers=1)
    pool.start()
    (job,) = _settle(store, [job_id])
    pool.stop(5)
    assert job.status == "done" and job.attempts == 2
    folders = sorted(p.name for p in (out / "INC-1").iterdir())
    assert folders == [job.run_id, f"{job.run_id}.attempt-1"]


def test_judge_retries_only_sources_that_did_not_answer(tmp_path):
    miss = {"prometheus": "unavailable: replay snapshot /x has no answer for a query"}
    write_bundle(tmp_path / "a", "INC-1", "a", miss)
    assert judge(Execution(tmp_path / "a", 0, False, "", 1.0), 60).action == "done"
    down = {"kubernetes": "unavailable: Kubernetes API at https://k did not answer (timeout)"}
    write_bundle(tmp_path / "b", "INC-1", "b", down)
    verdict = judge(Execution(tmp_path / "b", 0, False, "", 1.0), 60)
    assert verdict.action == "retry" and "kubernetes" in verdict.reason
    refused = judge(Execution(tmp_path / "c", 2, False, "error: bad region\n", 1.0), 60)
    assert refused.action == "fail" and "bad region" in refused.reason


def test_every_sink_gets_each_finished_job_once(store, tmp_path):
    executor = FakeExecutor(tmp_path / "out")
    sinks = [FakeSink("one"), FakeSink("two")]
    ids = [store.enqueue(parse_incident(_incident(n)))[0] for n in range(3)]
    pool, _ = _pool(store, executor, sinks)
    pool.start()
    jobs = _settle(store, ids)
    pool.stop(5)
    for sink in sinks:
        assert sorted(str(b) for b, _ in sink.attached) == sorted(j.bundle for j in jobs)
    assert [a.sink for a in store.attachments(ids[0])] == ["one", "two"]


def test_a_failed_attachment_is_recorded_and_the_job_still_done(store, tmp_path):
    executor = FakeExecutor(tmp_path / "out")
    sinks = [FakeSink("tracker", fail=True), FakeSink("local")]
    job_id, _ = store.enqueue(parse_incident(_incident(1)))
    pool, telemetry = _pool(store, executor, sinks)
    pool.start()
    (job,) = _settle(store, [job_id])
    pool.stop(5)
    assert job.status == "done" and Path(job.bundle, "manifest.json").is_file()
    recorded = {a.sink: (a.ok, a.detail) for a in store.attachments(job_id)}
    assert recorded["tracker"][0] is False and "400" in recorded["tracker"][1]
    assert recorded["local"] == (True, "attached")
    failures = telemetry.registry.get_sample_value(
        "tenancy_diag_attachment_failures_total", {"sink": "tracker"}
    )
    assert failures == 1


def test_stop_waits_for_the_running_job(store, tmp_path):
    executor = FakeExecutor(tmp_path / "out", seconds=0.3)
    job_id, _ = store.enqueue(parse_incident(_incident(1)))
    pool, _ = _pool(store, executor, workers=1)
    pool.start()
    while not executor.calls:
        time.sleep(0.01)
    assert pool.stop(5)
    assert store.get(job_id).status == "done"
