"""Moving DLQ messages against moto's real server: nothing lost, nothing doubled, at any crash.

Each test gets its own pair of queues (a fresh name), so tests share one moto process and stay
independent. Bodies are the contract's, from the sandbox's generator, some carrying planted
secrets; the comparison is always the multiset of body sha256 across both queues.
"""

import hashlib
import json
import socket
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from botocore.exceptions import BotoCoreError, EndpointConnectionError

from tenancy_diag.errors import ConfigError, SourceConfigError, SourceRejected, SourceUnavailable
from tenancy_diag.remediating.moving import (
    JOURNAL_SCHEMA,
    MOVE_ID_ATTRIBUTE,
    SKIP_ERROR_CODE,
    SKIP_LIMIT,
    SKIP_SEQUENCE,
    SKIP_TENANT,
    MoveRequest,
    move_messages,
    plan_move,
)
from tenancy_diag.sandbox import moto_proc
from tenancy_diag.sandbox.dlq_content import dlq_messages
from tenancy_diag.sandbox.secrets import PLANTED
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec

REGION = "us-east-1"
END = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
RETRYABLE = frozenset({"503", "timeout"})
COUNT = 40


class Crash(Exception):
    """What the fault hook raises: the run dies between two steps."""


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    proc = moto_proc.start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield proc
    finally:
        assert proc.stop()


@pytest.fixture(scope="module")
def client(moto):
    return moto_proc.sqs_client(moto.url, REGION)


@pytest.fixture(scope="module")
def bodies():
    """Contract-shaped webhook DLQ bodies; every fourth gets a non-retryable 400 or tls."""
    scenario = Scenario(ScenarioSpec(name="webhook_storm", tenants=60, end=END))
    out = [dict(b) for b in dlq_messages(scenario)[(REGION, "webhook")][:COUNT]]
    for i, body in enumerate(out):
        if i % 4 == 3:
            body["error_code"] = ("400", "tls")[i // 4 % 2]
    texts = [json.dumps(b) for b in out]
    assert {b["error_code"] for b in out} >= {"503", "timeout", "400", "tls"}
    assert any(secret in t for t in texts for secret in PLANTED.values())
    return texts


@pytest.fixture(scope="module")
def n_selected(bodies):
    n = sum(_code(b) in RETRYABLE for b in bodies)
    assert 20 <= n < COUNT
    return n


def _sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def _code(text):
    return json.loads(text)["error_code"]


class Pair:
    """A fresh source queue filled with ``bodies`` and an empty target, on moto."""

    def __init__(self, client, bodies, *, target_attributes=None):
        tag = uuid.uuid4().hex[:8]
        self.client = client
        self.source = f"tenancy-webhook-dlq-{tag}"
        self.target = f"tenancy-webhook-archive-{tag}"
        self.source_url = client.create_queue(QueueName=self.source)["QueueUrl"]
        self.target_url = client.create_queue(
            QueueName=self.target, Attributes=target_attributes or {}
        )["QueueUrl"]
        self.ids = {}  # source MessageId -> body
        for start in range(0, len(bodies), 10):
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": body,
                    "MessageAttributes": {
                        "producer": {"DataType": "String", "StringValue": f"hook-{start + i}"}
                    },
                }
                for i, body in enumerate(bodies[start : start + 10])
            ]
            sent = client.send_message_batch(QueueUrl=self.source_url, Entries=entries)
            assert not sent.get("Failed")
            for ok in sent["Successful"]:
                self.ids[ok["MessageId"]] = entries[int(ok["Id"])]["MessageBody"]

    def request(self, **options):
        options.setdefault("error_codes", RETRYABLE)
        options.setdefault("receive_wait_s", 0)  # moto answers every receive from one store
        return MoveRequest(REGION, self.source, self.target, **options)

    def counts(self, url):
        got = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return (
            int(got["ApproximateNumberOfMessages"]),
            int(got["ApproximateNumberOfMessagesNotVisible"]),
        )

    def drain(self, url):
        """Every message of ``url`` (taken for a minute): the end-of-test inventory."""
        out = []
        while True:
            batch = self.client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=60,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                return out
            out.extend(batch)

    def assert_exactly_once(self, bodies, codes=RETRYABLE):
        """Selected bodies are in the target once each, the rest in the source, nothing else."""
        assert self.counts(self.source_url)[1] == 0  # nothing left hidden
        source, target = self.drain(self.source_url), self.drain(self.target_url)
        wanted = Counter(_sha(b) for b in bodies if _code(b) in codes)
        kept = Counter(_sha(b) for b in bodies if _code(b) not in codes)
        assert Counter(_sha(m["Body"]) for m in target) == wanted
        assert Counter(_sha(m["Body"]) for m in source) == kept
        moved_ids = [m["MessageAttributes"][MOVE_ID_ATTRIBUTE]["StringValue"] for m in target]
        assert len(set(moved_ids)) == len(moved_ids)
        assert all(self.ids[i] == m["Body"] for i, m in zip(moved_ids, target, strict=True))
        return source, target


def _crash_at(stage, index):
    def fault(at_stage, at_index):
        if (at_stage, at_index) == (stage, index):
            raise Crash(f"{stage} {index}")

    return fault


def _journal_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.integration
def test_plan_changes_nothing_and_names_exactly_the_selected(client, bodies):
    pair = Pair(client, bodies)
    before = pair.counts(pair.source_url)
    plan = plan_move(client, pair.request())
    assert pair.counts(pair.source_url) == before == (COUNT, 0)
    assert pair.counts(pair.target_url) == (0, 0)
    selected = {i for i, b in pair.ids.items() if _code(b) in RETRYABLE}
    assert {r.message_id for r in plan.selected} == selected
    assert {r.message_id for r in plan.skipped[SKIP_ERROR_CODE]} == set(pair.ids) - selected
    assert {r.error_code for r in plan.selected} == set(RETRYABLE)
    assert all(r.body_sha256 == _sha(pair.ids[r.message_id]) for r in plan.selected)
    assert plan.complete and plan.depths.source.visible == COUNT
    assert {m["MessageId"] for m in pair.drain(pair.source_url)} == set(pair.ids)
    text = json.dumps(plan.to_json())
    assert not [kind for kind, secret in PLANTED.items() if secret in text]


@pytest.mark.integration
def test_plan_stops_at_max_messages_and_says_so(client, bodies):
    pair = Pair(client, bodies)
    plan = plan_move(client, pair.request(max_messages=3))
    assert len(plan.selected) == 3 and not plan.complete
    assert pair.counts(pair.source_url) == (COUNT, 0)
    assert plan.skipped[SKIP_LIMIT]  # the first batch of ten held more than three selected


@pytest.mark.integration
def test_full_move_puts_each_selected_message_in_the_target_once(
    client, bodies, n_selected, tmp_path
):
    pair = Pair(client, bodies)
    journal = tmp_path / "move.jsonl"
    started = time.monotonic()
    report = move_messages(client, pair.request(), journal)
    elapsed = time.monotonic() - started
    selected = {i for i, b in pair.ids.items() if _code(b) in RETRYABLE}
    assert {m.ref.message_id for m in report.moved} == selected
    assert not report.resumed and not report.uncertain
    assert report.before.source.visible == COUNT and report.before.target.visible == 0
    assert report.after.source.visible == COUNT - len(selected)
    assert report.after.target.visible == len(selected)
    assert pair.counts(pair.source_url) == (COUNT - len(selected), 0)  # the rest is visible
    _, target = pair.assert_exactly_once(bodies)
    assert all(
        m["MessageAttributes"]["producer"]["StringValue"].startswith("hook-") for m in target
    )
    lines = _journal_lines(journal)
    assert {line["schema"] for line in lines} == {JOURNAL_SCHEMA}
    events = Counter(line["event"] for line in lines)
    n = n_selected
    assert events == {"start": 1, "intent": n, "sent": n, "deleted": n, "finish": 1}
    text = journal.read_text() + json.dumps(report.to_json())
    assert not [kind for kind, secret in PLANTED.items() if secret in text]
    assert elapsed < 10


@pytest.mark.integration
def test_only_the_configured_retryable_codes_move(client, bodies, tmp_path):
    pair = Pair(client, bodies)
    move_messages(client, pair.request(error_codes=frozenset({"503", "timeout"})), tmp_path / "j")
    source, target = pair.assert_exactly_once(bodies)
    assert {_code(m["Body"]) for m in target} == {"503", "timeout"}
    left = {_code(m["Body"]) for m in source}
    assert left == {_code(b) for b in bodies} - {"503", "timeout"} and {"400", "tls"} <= left


@pytest.mark.integration
def test_a_sequence_range_and_tenant_narrow_the_move(client, bodies, tmp_path):
    pair = Pair(client, bodies)
    parsed = [json.loads(b) for b in bodies]
    tenant = Counter(b["tenant_id"] for b in parsed).most_common(1)[0][0]
    sequences = sorted(b["sequence"] for b in parsed if b["tenant_id"] == tenant)
    low, high = sequences[0], sequences[len(sequences) // 2]
    request = pair.request(error_codes=None, tenant=tenant, from_sequence=low, to_sequence=high)
    report = move_messages(client, request, tmp_path / "j")
    wanted = [b for b in parsed if b["tenant_id"] == tenant and low <= b["sequence"] <= high]
    assert len(report.moved) == len(wanted) > 0
    assert Counter(_sha(m["Body"]) for m in pair.drain(pair.target_url)) == Counter(
        _sha(json.dumps(b)) for b in wanted
    )
    outside = [b for b in parsed if b["tenant_id"] == tenant and b["sequence"] > high]
    assert len(report.skipped[SKIP_SEQUENCE]) == len(outside) > 0
    assert len(report.skipped[SKIP_TENANT]) == COUNT - len(sequences)


@pytest.mark.integration
@pytest.mark.parametrize("stage", ["received", "sent", "deleted"])
def test_a_crash_at_any_step_then_resume_loses_and_doubles_nothing(
    client, bodies, n_selected, tmp_path, stage
):
    pair = Pair(client, bodies)
    journal = tmp_path / "move.jsonl"
    with pytest.raises(Crash):
        move_messages(client, pair.request(), journal, fault=_crash_at(stage, 7))
    assert pair.counts(pair.source_url)[1] == 0  # the crashed run handed back what it held
    report = move_messages(client, pair.request(), journal)
    resumed = [m.ref.message_id for m in report.resumed]
    if stage == "sent":
        assert len(resumed) == 1 and len(report.moved) == n_selected - 8
    else:
        done = 7 if stage == "received" else 8
        assert not resumed and len(report.moved) == n_selected - done
    assert not report.uncertain
    pair.assert_exactly_once(bodies)


@pytest.mark.integration
def test_a_lost_send_answer_is_found_in_the_target_not_sent_twice(
    client, bodies, n_selected, tmp_path
):
    pair = Pair(client, bodies)
    journal = tmp_path / "move.jsonl"
    sends = []

    def lose_fifth_answer(**kwargs):
        sends.append(1)
        if len(sends) == 5:  # SQS stored it; the answer never came back
            raise EndpointConnectionError(endpoint_url="http://lost")

    client.meta.events.register("after-call.sqs.SendMessage", lose_fifth_answer)
    try:
        with pytest.raises(SourceUnavailable, match="rerun with the same journal"):
            move_messages(client, pair.request(), journal)
    finally:
        client.meta.events.unregister("after-call.sqs.SendMessage", lose_fifth_answer)
    assert _journal_lines(journal)[-1]["event"] == "intent"
    report = move_messages(client, pair.request(), journal)
    assert len(report.resumed) == 1 and not report.uncertain
    assert len(report.moved) == n_selected - 5
    pair.assert_exactly_once(bodies)


@pytest.mark.integration
def test_a_send_that_never_happened_is_sent_again_on_resume(client, bodies, n_selected, tmp_path):
    pair = Pair(client, bodies)
    journal = tmp_path / "move.jsonl"
    sends = []

    def refuse_fifth(**kwargs):
        sends.append(1)
        if len(sends) == 5:
            raise EndpointConnectionError(endpoint_url="http://refused")

    client.meta.events.register("before-call.sqs.SendMessage", refuse_fifth)
    try:
        with pytest.raises(SourceUnavailable) as info:
            move_messages(client, pair.request(), journal)
    finally:
        client.meta.events.unregister("before-call.sqs.SendMessage", refuse_fifth)
    assert isinstance(info.value.__cause__, BotoCoreError)
    report = move_messages(client, pair.request(), journal)
    assert len(report.moved) == n_selected - 4 and not report.resumed and not report.uncertain
    pair.assert_exactly_once(bodies)


@pytest.mark.integration
def test_a_consumed_target_makes_a_lost_send_uncertain_not_guessed(
    client, bodies, n_selected, tmp_path
):
    pair = Pair(client, bodies)
    journal = tmp_path / "move.jsonl"

    def refuse(**kwargs):
        raise EndpointConnectionError(endpoint_url="http://refused")

    client.meta.events.register("before-call.sqs.SendMessage", refuse)
    try:
        with pytest.raises(SourceUnavailable):
            move_messages(client, pair.request(), journal)
    finally:
        client.meta.events.unregister("before-call.sqs.SendMessage", refuse)
    pending = _journal_lines(journal)[-1]["move_id"]
    report = move_messages(client, pair.request(target_consumed=True), journal)
    assert list(report.uncertain) == [pending]
    assert "consumed" in report.uncertain[pending]
    assert pending not in {m.ref.message_id for m in report.moved}
    # It stays, visible, in the source; everything else moved.
    assert pair.counts(pair.source_url) == (COUNT - n_selected + 1, 0)


@pytest.mark.integration
def test_a_hard_crash_is_finished_once_the_visibility_timeout_frees_its_messages(
    client, bodies, tmp_path
):
    """No ``finally`` ran (hand-back failed): the crashed run's messages stay hidden a while."""
    pair = Pair(client, bodies)
    journal = tmp_path / "move.jsonl"

    def no_hand_back(**kwargs):
        raise EndpointConnectionError(endpoint_url="http://gone")

    client.meta.events.register("before-call.sqs.ChangeMessageVisibilityBatch", no_hand_back)
    try:
        with pytest.raises(Crash):
            move_messages(
                client, pair.request(visibility_timeout_s=3), journal, fault=_crash_at("sent", 2)
            )
    finally:
        client.meta.events.unregister("before-call.sqs.ChangeMessageVisibilityBatch", no_hand_back)
    early = move_messages(client, pair.request(), journal)
    assert len(early.uncertain) == 1  # sent, but still hidden: reported, not forgotten
    time.sleep(3.2)
    late = move_messages(client, pair.request(), journal)
    assert len(late.resumed) == 1 and not late.uncertain
    pair.assert_exactly_once(bodies)


@pytest.mark.integration
def test_a_torn_last_journal_line_is_dropped_and_the_move_resumes(client, bodies, tmp_path):
    pair = Pair(client, bodies)
    journal = tmp_path / "move.jsonl"
    with pytest.raises(Crash):
        move_messages(client, pair.request(), journal, fault=_crash_at("sent", 3))
    with journal.open("a") as handle:
        handle.write('{"schema": "tenancy-diag/move-jou')
    report = move_messages(client, pair.request(), journal)
    assert len(report.resumed) == 1
    pair.assert_exactly_once(bodies)
    assert all(line["schema"] == JOURNAL_SCHEMA for line in _journal_lines(journal))


@pytest.mark.integration
def test_a_journal_of_another_move_is_refused(client, bodies, tmp_path):
    first, second = Pair(client, bodies[:5]), Pair(client, bodies[:5])
    journal = tmp_path / "move.jsonl"
    move_messages(client, first.request(), journal)
    with pytest.raises(ConfigError, match="use a new journal for a different move"):
        move_messages(client, second.request(), journal)
    assert second.counts(second.source_url) == (5, 0)


@pytest.mark.integration
def test_a_redriven_source_and_a_missing_queue_are_refused(client, bodies, tmp_path):
    pair = Pair(client, bodies[:3])
    arn = client.get_queue_attributes(QueueUrl=pair.source_url, AttributeNames=["QueueArn"])
    policy = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": "5"}
    redriven = f"tenancy-webhook-{uuid.uuid4().hex[:8]}"
    client.create_queue(QueueName=redriven, Attributes={"RedrivePolicy": json.dumps(policy)})
    with pytest.raises(SourceConfigError, match=f"queue {redriven} in {REGION} has a Redrive"):
        plan_move(client, MoveRequest(REGION, redriven, pair.target, error_codes=RETRYABLE))
    with pytest.raises(SourceRejected, match=f"queue tenancy-nope does not exist in {REGION}"):
        move_messages(
            client, MoveRequest(REGION, pair.source, "tenancy-nope", tenant="t"), tmp_path / "j"
        )


@pytest.mark.integration
def test_an_unreachable_endpoint_is_source_unavailable(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = moto_proc.sqs_client(f"http://127.0.0.1:{port}", REGION)
    with pytest.raises(SourceUnavailable, match=f"127.0.0.1:{port}.*check the endpoint") as info:
        plan_move(client, MoveRequest(REGION, "a", "b", error_codes=RETRYABLE))
    assert isinstance(info.value.__cause__, BotoCoreError)
