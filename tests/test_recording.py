"""Record and replay of source calls: a recorded run answers the same offline, or says why not."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tenancy_diag.errors import (
    ReplayMiss,
    SnapshotError,
    SourceRejected,
    SourceUnavailable,
    TenancyDiagError,
)
from tenancy_diag.redacting import MASK, Redactor
from tenancy_diag.sandbox.secrets import PLANTED
from tenancy_diag.sources import recording, snapshots
from tenancy_diag.sources.base import (
    AdminSource,
    InstantQuery,
    JobsRequest,
    LogRequest,
    LogSource,
    MetricSource,
    PeekRequest,
    PodQuery,
    QueueRef,
    QueueSource,
    RangeQuery,
)
from tenancy_diag.sources.recording import Recorder, SnapshotWriter, record, replay
from tenancy_diag.sources.snapshots import (
    CALL_SCHEMA,
    INDEX_FILE,
    SNAPSHOT_SCHEMA,
    call_key,
    request_json,
    verify_snapshot,
)

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))
DEPTH = RangeQuery(
    promql="max by (region) (queue_depth)", start=T0, end=T0 + timedelta(hours=1), step_s=60
)


# --- tiny fake sources, one per protocol ------------------------------------------------------


class FakeMetrics:
    name = "prometheus"

    def __init__(self) -> None:
        self.calls = 0

    def instant_query(self, request: InstantQuery) -> list[dict[str, Any]]:
        self.calls += 1
        return [
            {
                "metric": {"__name__": "up", "region": "us-east-1"},
                "value": [request.at.timestamp(), "1"],
            }
        ]

    def range_query(self, request: RangeQuery) -> list[dict[str, Any]]:
        self.calls += 1
        if "unreachable" in request.promql:
            raise SourceUnavailable(
                "prometheus",
                "Prometheus at http://prom:9090 did not answer in 10 s; check --prometheus-url",
            )
        start = request.start.timestamp()
        values = [[start + i * request.step_s, str(i * 7)] for i in range(3)]
        return [{"metric": {"region": "us-east-1", "promql": request.promql}, "values": values}]


class FakeLogs:
    name = "kubernetes"

    def list_pods(self, request: PodQuery) -> list[dict[str, Any]]:
        return [
            {
                "name": "tenancy-controller-7d9f8-abcde",
                "namespace": request.namespace,
                "labels": {"app": "tenancy-controller"},
                "containers": ["controller"],
                "restart_count": 2,
                "phase": "Running",
                "node": "n1",
            }
        ]

    def fetch(self, request: LogRequest) -> list[str]:
        return [
            f'ts=2026-11-27T01:02:03.123Z level=ERROR msg="reconcile failed" tenant=t-000123 '
            f"pod={request.pod}"
        ]


class FakeQueues:
    name = "sqs"

    def depth(self, request: QueueRef) -> dict[str, Any]:
        return {
            "queue_url": f"http://sqs/{request.queue_name}",
            "visible": 12,
            "not_visible": 0,
            "delayed": 0,
        }

    def source_queues(self, request: QueueRef) -> list[str]:
        return [request.queue_name.replace("-dlq", "")]

    def peek(self, request: PeekRequest) -> list[dict[str, Any]]:
        return [
            {"message_id": f"m{i}", "receive_count": 5, "body": {"tenant_id": "t-000123"}}
            for i in range(request.max_messages)
        ]

    def close(self) -> None:
        """A lifecycle call with no request: forwarded, never recorded."""


class FakeAdmin:
    name = "admin-api"

    def __init__(self) -> None:
        self.failures_left = 0

    def jobs(self, request: JobsRequest) -> list[dict[str, Any]]:
        if request.tenant_id == "t-forbidden":
            raise SourceRejected(
                "admin-api",
                f"admin API refused GET /tenants/{request.tenant_id}/jobs with 403; check token",
            )
        if request.tenant_id == "t-leaky":
            raise SourceRejected(
                "admin-api",
                f"admin API at https://ops:{PLANTED['url_password']}@admin.internal returned 500",
            )
        if self.failures_left:
            self.failures_left -= 1
            raise SourceUnavailable("admin-api", "admin API did not answer in 10 s; retry")
        return [
            {
                "job_id": "j-1",
                "job_type": "migrate",
                "status": "running",
                "step": "copy",
                "attempts": 1,
            }
        ]


CALLS: list[tuple[Any, str, Any]] = [
    (MetricSource, "instant_query", InstantQuery(promql="up", at=T0)),
    (MetricSource, "range_query", DEPTH),
    (
        LogSource,
        "list_pods",
        PodQuery(namespace="tenancy", label_selector="app=tenancy-controller"),
    ),
    (
        LogSource,
        "fetch",
        LogRequest(
            namespace="tenancy", pod="p-1", container="controller", since=T0, tail_lines=100
        ),
    ),
    (
        QueueSource,
        "depth",
        QueueRef(region="us-east-1", queue_name="tenancy-webhook-dlq-us-east-1"),
    ),
    (
        QueueSource,
        "source_queues",
        QueueRef(region="us-east-1", queue_name="tenancy-webhook-dlq-us-east-1"),
    ),
    (
        QueueSource,
        "peek",
        PeekRequest(region="us-east-1", queue_name="tenancy-webhook-dlq-us-east-1", max_messages=3),
    ),
    (AdminSource, "jobs", JobsRequest(tenant_id="t-000123")),
]


def fakes() -> dict[Any, Any]:
    return {
        MetricSource: FakeMetrics(),
        LogSource: FakeLogs(),
        QueueSource: FakeQueues(),
        AdminSource: FakeAdmin(),
    }


def writer_for(folder: Path) -> SnapshotWriter:
    return SnapshotWriter(folder, redactor=Redactor())


def record_one(folder: Path, source: Any, method: str, request: Any) -> Any:
    with writer_for(folder) as writer:
        return getattr(record(source, writer), method)(request)


def call_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*/*.json"))


# --- a recorded run replays -------------------------------------------------------------------


def test_recorded_run_replays_identical_answers_without_the_sources(tmp_path: Path) -> None:
    live = fakes()
    with writer_for(tmp_path) as writer:
        recorded = {proto: record(src, writer) for proto, src in live.items()}
        answers = [getattr(recorded[proto], method)(req) for proto, method, req in CALLS]
    del live, recorded  # nothing live is left to answer

    for (proto, method, req), answer in zip(CALLS, answers, strict=True):
        source = replay(fakes()[proto].name, tmp_path, proto)
        assert getattr(source, method)(req) == answer
    assert verify_snapshot(tmp_path) == []


def test_recorder_and_replayer_look_like_the_source(tmp_path: Path) -> None:
    inner = FakeMetrics()
    with writer_for(tmp_path) as writer:
        wrapped = record(inner, writer)
        assert isinstance(wrapped, Recorder)
        assert isinstance(wrapped, MetricSource)
        assert wrapped.name == "prometheus"
        wrapped.range_query(DEPTH)
    assert inner.calls == 1
    replayed = replay("prometheus", tmp_path, MetricSource)
    assert isinstance(replayed, MetricSource)
    assert replayed.name == "prometheus"


def test_call_file_layout_and_request_json(tmp_path: Path) -> None:
    record_one(tmp_path, FakeMetrics(), "range_query", DEPTH)
    [path] = call_files(tmp_path)
    key = call_key("prometheus", "range_query", request_json(DEPTH))
    assert path.relative_to(tmp_path).as_posix() == f"prometheus/range_query-{key[:12]}.json"
    envelope = json.loads(path.read_text())
    assert envelope["schema"] == CALL_SCHEMA
    assert (envelope["source"], envelope["method"]) == ("prometheus", "range_query")
    assert envelope["request"] == {
        "promql": DEPTH.promql,
        "start": "2026-11-27T01:00:00Z",
        "end": "2026-11-27T02:00:00Z",
        "step_s": 60,
    }
    assert {"response", "response_sha256", "recorded_at"} <= envelope.keys()
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    assert index["schema"] == SNAPSHOT_SCHEMA
    assert [c["file"] for c in index["calls"]] == [path.relative_to(tmp_path).as_posix()]
    assert set(index["calls"][0]) == {"file", "source", "method", "sha256"}


def test_identical_calls_are_stored_once(tmp_path: Path) -> None:
    inner = FakeMetrics()
    with writer_for(tmp_path) as writer:
        source = record(inner, writer)
        first, second = source.range_query(DEPTH), source.range_query(DEPTH)
    assert first == second
    assert inner.calls == 2  # recording never answers from the snapshot
    assert len(call_files(tmp_path)) == 1
    assert len(json.loads((tmp_path / INDEX_FILE).read_text())["calls"]) == 1


def test_datetimes_of_one_instant_in_any_zone_share_a_key(tmp_path: Path) -> None:
    in_cest = RangeQuery(
        promql=DEPTH.promql,
        start=DEPTH.start.astimezone(CEST),
        end=DEPTH.end.astimezone(CEST),
        step_s=60,
    )
    naive_utc = RangeQuery(
        promql=DEPTH.promql,
        start=DEPTH.start.replace(tzinfo=None),
        end=DEPTH.end.replace(tzinfo=None),
        step_s=60,
    )
    assert request_json(in_cest) == request_json(DEPTH) == request_json(naive_utc)
    assert call_key("prometheus", "range_query", request_json(in_cest)) == call_key(
        "prometheus", "range_query", request_json(DEPTH)
    )

    answer = record_one(tmp_path, FakeMetrics(), "range_query", in_cest)
    assert replay("prometheus", tmp_path, MetricSource).range_query(DEPTH) == answer


def test_lifecycle_calls_are_forwarded_unrecorded(tmp_path: Path) -> None:
    with writer_for(tmp_path) as writer:
        record(FakeQueues(), writer).close()
    assert call_files(tmp_path) == []


# --- misses, errors, tampering ----------------------------------------------------------------


def test_missing_call_raises_replay_miss_naming_the_call(tmp_path: Path) -> None:
    record_one(tmp_path, FakeMetrics(), "range_query", DEPTH)
    source = replay("prometheus", tmp_path, MetricSource)
    other = RangeQuery(
        promql="sum(rate(reconcile_failures_total[5m]))", start=T0, end=DEPTH.end, step_s=60
    )

    with pytest.raises(ReplayMiss) as info:
        source.range_query(other)
    message = str(info.value)
    assert info.value.source == "prometheus"
    assert message.startswith(
        f"replay snapshot {tmp_path} has no answer for prometheus.range_query(promql='sum(rate("
    )
    assert "start='2026-11-27T01:00:00Z'" in message
    assert (
        "nearest recorded is prometheus.range_query(promql='max by (region) (queue_depth)'"
        in message
    )
    assert message.endswith("re-record with a live source")

    with pytest.raises(ReplayMiss, match=r"prometheus\.instant_query\(promql='up'") as info:
        source.instant_query(InstantQuery(promql="up", at=T0))
    assert "nearest" not in str(info.value)


def test_errors_replay_as_the_same_class_and_message(tmp_path: Path) -> None:
    unreachable = RangeQuery(promql="unreachable", start=T0, end=DEPTH.end, step_s=60)
    forbidden = JobsRequest(tenant_id="t-forbidden")
    live: dict[str, TenancyDiagError] = {}
    with writer_for(tmp_path) as writer:
        metrics, admin = record(FakeMetrics(), writer), record(FakeAdmin(), writer)
        with pytest.raises(SourceUnavailable) as a:
            metrics.range_query(unreachable)
        with pytest.raises(SourceRejected) as b:
            admin.jobs(forbidden)
        live = {"metrics": a.value, "admin": b.value}

    with pytest.raises(SourceUnavailable) as a:
        replay("prometheus", tmp_path, MetricSource).range_query(unreachable)
    with pytest.raises(SourceRejected) as b:
        replay("admin-api", tmp_path, AdminSource).jobs(forbidden)
    for replayed, original in ((a.value, live["metrics"]), (b.value, live["admin"])):
        assert type(replayed) is type(original)
        assert str(replayed) == str(original)
        assert replayed.source == original.source  # type: ignore[attr-defined]


def test_error_messages_are_redacted_on_disk(tmp_path: Path) -> None:
    with writer_for(tmp_path) as writer, pytest.raises(SourceRejected):
        record(FakeAdmin(), writer).jobs(JobsRequest(tenant_id="t-leaky"))
    [path] = call_files(tmp_path)
    assert PLANTED["url_password"] not in path.read_text()
    with pytest.raises(SourceRejected, match=r"https://ops:\[REDACTED\]@admin\.internal"):
        replay("admin-api", tmp_path, AdminSource).jobs(JobsRequest(tenant_id="t-leaky"))
    assert MASK in path.read_text()


def test_a_retried_call_replays_as_its_final_success(tmp_path: Path) -> None:
    inner = FakeAdmin()
    inner.failures_left = 1
    request = JobsRequest(tenant_id="t-000123")
    with writer_for(tmp_path) as writer:
        source = record(inner, writer)
        with pytest.raises(SourceUnavailable):
            source.jobs(request)
        answer = source.jobs(request)
    assert replay("admin-api", tmp_path, AdminSource).jobs(request) == answer
    assert verify_snapshot(tmp_path) == []


def test_errors_outside_the_tree_are_not_recorded(tmp_path: Path) -> None:
    class Buggy:
        name = "buggy"

        def jobs(self, request: JobsRequest) -> list[dict[str, Any]]:
            raise KeyError("a bug, not a source failure")

    with writer_for(tmp_path) as writer, pytest.raises(KeyError):
        record(Buggy(), writer).jobs(JobsRequest(tenant_id="t-1"))
    assert call_files(tmp_path) == []


def tamper(path: Path, change: Any) -> None:
    envelope = json.loads(path.read_text())
    change(envelope)
    path.write_text(json.dumps(envelope, indent=2))


def test_tampered_response_fails_the_index_checksum(tmp_path: Path) -> None:
    record_one(tmp_path, FakeMetrics(), "range_query", DEPTH)
    [path] = call_files(tmp_path)
    tamper(path, lambda e: e["response"][0]["values"][0].__setitem__(1, "9999"))

    with pytest.raises(SnapshotError, match=rf"{path}.*sha256 in .*index\.json"):
        replay("prometheus", tmp_path, MetricSource).range_query(DEPTH)
    [problem] = verify_snapshot(tmp_path)
    assert str(path) in problem


def test_tampered_response_fails_its_own_checksum_without_an_index(tmp_path: Path) -> None:
    record_one(tmp_path, FakeMetrics(), "range_query", DEPTH)
    (tmp_path / INDEX_FILE).unlink()
    [path] = call_files(tmp_path)
    tamper(path, lambda e: e["response"][0]["metric"].__setitem__("region", "eu-west-1"))

    with pytest.raises(SnapshotError, match=rf"{path} fails its response_sha256 check"):
        replay("prometheus", tmp_path, MetricSource).range_query(DEPTH)


def test_tampered_error_fails_its_checksum(tmp_path: Path) -> None:
    with writer_for(tmp_path) as writer, pytest.raises(SourceRejected):
        record(FakeAdmin(), writer).jobs(JobsRequest(tenant_id="t-forbidden"))
    (tmp_path / INDEX_FILE).unlink()
    [path] = call_files(tmp_path)
    tamper(path, lambda e: e["error"].__setitem__("message", "all good"))
    with pytest.raises(SnapshotError, match="error_sha256"):
        replay("admin-api", tmp_path, AdminSource).jobs(JobsRequest(tenant_id="t-forbidden"))


def test_unknown_schemas_are_refused(tmp_path: Path) -> None:
    record_one(tmp_path, FakeMetrics(), "range_query", DEPTH)
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    (tmp_path / INDEX_FILE).write_text(json.dumps({**index, "schema": "tenancy-diag/snapshot/v0"}))
    with pytest.raises(SnapshotError, match=r"schema 'tenancy-diag/snapshot/v0'"):
        replay("prometheus", tmp_path, MetricSource)

    (tmp_path / INDEX_FILE).unlink()
    [path] = call_files(tmp_path)
    tamper(path, lambda e: e.__setitem__("schema", "someone-else/v9"))
    with pytest.raises(SnapshotError, match=rf"{path} has schema 'someone-else/v9'"):
        replay("prometheus", tmp_path, MetricSource).range_query(DEPTH)


def test_unknown_error_type_is_refused(tmp_path: Path) -> None:
    with writer_for(tmp_path) as writer, pytest.raises(SourceRejected):
        record(FakeAdmin(), writer).jobs(JobsRequest(tenant_id="t-forbidden"))
    (tmp_path / INDEX_FILE).unlink()
    [path] = call_files(tmp_path)

    def to_os_error(envelope: dict[str, Any]) -> None:
        envelope["error"].update(module="os", type="system")
        envelope["error_sha256"] = (
            __import__("hashlib")
            .sha256(json.dumps(envelope["error"], sort_keys=True, separators=(",", ":")).encode())
            .hexdigest()
        )

    tamper(path, to_os_error)
    with pytest.raises(SnapshotError, match=r"os\.system, which is not a tenancy_diag error"):
        replay("admin-api", tmp_path, AdminSource).jobs(JobsRequest(tenant_id="t-forbidden"))


def test_verify_snapshot_reports_every_problem(tmp_path: Path) -> None:
    assert verify_snapshot(tmp_path / "absent") == [
        f"snapshot folder {tmp_path / 'absent'} does not exist; record one first"
    ]
    with writer_for(tmp_path) as writer:
        source = record(FakeMetrics(), writer)
        source.range_query(DEPTH)
        source.instant_query(InstantQuery(promql="up", at=T0))
    instant, ranged = call_files(tmp_path)
    planted = instant.with_name("instant_query-000000000000.json")
    planted.write_bytes(instant.read_bytes())
    ranged.unlink()

    problems = verify_snapshot(tmp_path)
    assert len(problems) == 2
    assert any(str(ranged) in p and "missing" in p for p in problems)
    assert any(str(planted) in p and "not listed" in p for p in problems)

    (tmp_path / INDEX_FILE).unlink()
    problems = verify_snapshot(tmp_path)
    assert any("has no index.json" in p for p in problems)
    assert any(str(planted) in p and "renamed or edited" in p for p in problems)


def test_snapshot_without_index_still_replays(tmp_path: Path) -> None:
    writer = writer_for(tmp_path)  # never closed, as when a run is killed half-way
    answer = record(FakeMetrics(), writer).range_query(DEPTH)
    assert not (tmp_path / INDEX_FILE).exists()
    assert replay("prometheus", tmp_path, MetricSource).range_query(DEPTH) == answer


# --- module layout -----------------------------------------------------------------------------


def test_public_names_resolve_and_recording_reexports_the_format() -> None:
    for module in (recording, snapshots):
        assert all(hasattr(module, name) for name in module.__all__), module.__name__
    # The format moved out of recording; imports written against recording must keep working.
    moved = {"CALL_SCHEMA", "INDEX_FILE", "SNAPSHOT_SCHEMA", "call_key", "canonical"}
    moved |= {"request_json", "verify_snapshot"}
    for name in moved:
        assert name in recording.__all__
        assert getattr(recording, name) is getattr(snapshots, name)


# --- the writer's own rules -------------------------------------------------------------------


def test_writer_refuses_a_folder_that_holds_a_recording(tmp_path: Path) -> None:
    record_one(tmp_path, FakeMetrics(), "range_query", DEPTH)
    with pytest.raises(SnapshotError, match=rf"{tmp_path} already holds a recording"):
        SnapshotWriter(tmp_path)


def test_writer_refuses_calls_after_close(tmp_path: Path) -> None:
    writer = writer_for(tmp_path)
    source = record(FakeMetrics(), writer)
    writer.close()
    with pytest.raises(SnapshotError, match="is closed"):
        source.range_query(DEPTH)


def test_non_json_answers_and_non_dataclass_requests_are_refused(tmp_path: Path) -> None:
    class Odd:
        name = "odd"

        def jobs(self, request: Any) -> Any:
            return {"when": T0}

    with writer_for(tmp_path) as writer:
        odd = record(Odd(), writer)
        with pytest.raises(SnapshotError, match=r"odd\.jobs answered data that is not JSON"):
            odd.jobs(JobsRequest(tenant_id="t-1"))
        with pytest.raises(SnapshotError, match="one request dataclass"):
            odd.jobs("t-1")


def test_replay_of_a_missing_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match=rf"replay snapshot {tmp_path / 'nope'} does not exist"):
        replay("prometheus", tmp_path / "nope", MetricSource)


# --- concurrency ------------------------------------------------------------------------------


def test_concurrent_recording_yields_a_consistent_index(tmp_path: Path) -> None:
    # 200 calls, 150 distinct: duplicates race each other for the same file.
    requests = [
        RangeQuery(
            promql=f"sum(rate(reconcile_total{{tenant='t-{i % 150:06d}'}}[5m]))",
            start=T0,
            end=DEPTH.end,
            step_s=60,
        )
        for i in range(200)
    ]
    with writer_for(tmp_path) as writer:
        source = record(FakeMetrics(), writer)
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(source.range_query, requests))

    index = json.loads((tmp_path / INDEX_FILE).read_text())
    files = [c["file"] for c in index["calls"]]
    assert len(files) == len(set(files)) == 150
    assert sorted(files) == [p.relative_to(tmp_path).as_posix() for p in call_files(tmp_path)]
    assert not list(tmp_path.rglob("*.tmp"))
    assert verify_snapshot(tmp_path) == []
    replayed = replay("prometheus", tmp_path, MetricSource)
    assert [replayed.range_query(r) for r in requests] == answers
