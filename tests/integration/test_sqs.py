"""The SQS source against moto's real server: peeking must neither delete nor hide messages."""

import json
import socket
import time
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import BotoCoreError, EndpointConnectionError

from tenancy_diag import signals as signals_mod
from tenancy_diag.analysis import dlq
from tenancy_diag.errors import SourceConfigError, SourceRejected, SourceUnavailable
from tenancy_diag.redacting import Redactor
from tenancy_diag.sandbox import moto_proc
from tenancy_diag.sandbox.dlq_content import dlq_messages
from tenancy_diag.sandbox.secrets import PLANTED
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec
from tenancy_diag.settings import SqsSettings
from tenancy_diag.sources.base import PeekRequest, QueueRef
from tenancy_diag.sources.sqs import SqsQueueSource, redact_body

REGION = "us-east-1"
DLQ = f"tenancy-reconcile-dlq-{REGION}"
SOURCE = f"tenancy-reconcile-{REGION}"
END = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


class _NoRedaction:
    """Shows what moto really holds; never used outside these tests."""

    def redact(self, text):
        return text


@pytest.fixture(scope="module")
def scenario():
    return Scenario(ScenarioSpec(name="reconcile_backlog", tenants=200, end=END))


@pytest.fixture(scope="module")
def moto(tmp_path_factory, scenario):
    proc = moto_proc.start_moto(tmp_path_factory.mktemp("moto"))
    try:
        moto_proc.fill_queues(proc.url, scenario, signals_mod.load())
        yield proc
    finally:
        assert proc.stop()


def _session():
    # Placeholder credentials: moto accepts anything, and real ones must never be needed.
    return boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


def _source(url, redactor=None, **settings):
    return SqsQueueSource(
        SqsSettings(endpoint_url=url, timeout_s=5, **settings),
        redactor or Redactor(),
        session=_session(),
    )


def _counts(source, queue=DLQ):
    depth = source.depth(QueueRef(REGION, queue))
    return depth["visible"], depth["not_visible"], depth["delayed"]


@pytest.mark.integration
def test_peek_neither_deletes_nor_hides(moto, scenario):
    source = _source(moto.url)
    sent = len(dlq_messages(scenario)[(REGION, "reconcile")])
    assert sent >= 150
    before = _counts(source)
    assert before == (sent, 0, 0)
    sample = source.peek(PeekRequest(REGION, DLQ, max_messages=100))
    assert len(sample) == 100
    assert len({m["message_id"] for m in sample}) == 100
    assert _counts(source) == before  # same visible, same not-visible: nothing deleted or hidden
    assert all(m["receive_count"] >= 1 and m["sent_at"] for m in sample)


@pytest.mark.integration
def test_peek_hands_back_what_it_took_when_interrupted(moto):
    source = _source(moto.url)
    before = _counts(source)
    calls = []

    def fail_on_fourth_receive(**kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise EndpointConnectionError(endpoint_url=moto.url)

    source._client(REGION).meta.events.register(
        "before-call.sqs.ReceiveMessage", fail_on_fourth_receive
    )
    with pytest.raises(SourceUnavailable, match="--aws-endpoint-url"):
        source.peek(PeekRequest(REGION, DLQ, max_messages=100))
    assert _counts(source) == before  # the 30 messages received before the failure are back


@pytest.mark.integration
def test_a_peek_slower_than_its_visibility_timeout_still_gets_distinct_messages(moto):
    source = _source(moto.url, peek_visibility_timeout_s=2)
    before = _counts(source)

    def slow_receive(**kwargs):
        time.sleep(0.4)  # ten receives: about twice the visibility timeout

    source._client(REGION).meta.events.register("before-call.sqs.ReceiveMessage", slow_receive)
    started = time.monotonic()
    sample = source.peek(PeekRequest(REGION, DLQ, max_messages=100))
    assert time.monotonic() - started > 2 * source.settings.peek_visibility_timeout_s
    assert len({m["message_id"] for m in sample}) == 100
    assert _counts(source) == before


@pytest.mark.integration
def test_peek_refuses_a_queue_with_a_redrive_policy(moto):
    with pytest.raises(SourceConfigError, match=f"{SOURCE} in {REGION} has a RedrivePolicy"):
        _source(moto.url).peek(PeekRequest(REGION, SOURCE, max_messages=10))


@pytest.mark.integration
def test_peek_redacts_planted_secrets(moto, scenario):
    raw = _source(moto.url, _NoRedaction(), sample_size=400).peek(PeekRequest(REGION, DLQ, 400))
    raw_text = json.dumps(raw)
    assert all(secret in raw_text for secret in PLANTED.values())  # moto really holds them

    sample = _source(moto.url, sample_size=400).peek(PeekRequest(REGION, DLQ, 400))
    assert len(sample) == len(raw)
    text = json.dumps(sample)
    assert not [kind for kind, secret in PLANTED.items() if secret in text]
    assert "[REDACTED]" in text
    df = dlq.frame(sample)
    assert df["parse_error"].isna().all()  # redaction kept every body valid JSON
    assert not any(secret in df.to_csv() for secret in PLANTED.values())


@pytest.mark.integration
def test_small_queue_returns_everything_it_holds(moto, scenario):
    queue = "tenancy-webhook-dlq-eu-west-1"
    expected = len(dlq_messages(scenario)[("eu-west-1", "webhook")])
    source = _source(moto.url)
    sample = source.peek(PeekRequest("eu-west-1", queue, max_messages=100))
    assert len(sample) == expected
    assert source.depth(QueueRef("eu-west-1", queue))["visible"] == expected


@pytest.mark.integration
def test_sample_size_caps_the_peek(moto):
    assert len(_source(moto.url, sample_size=7).peek(PeekRequest(REGION, DLQ, 100))) == 7


@pytest.mark.integration
def test_depth_and_source_queue_discovery(moto, scenario):
    source = _source(moto.url)
    for region in scenario.spec.regions:
        for kind in ("reconcile", "webhook"):
            dlq_name = f"tenancy-{kind}-dlq-{region}"
            assert source.source_queues(QueueRef(region, dlq_name)) == [f"tenancy-{kind}-{region}"]
            depth = source.depth(QueueRef(region, dlq_name))
            assert depth["redrive_policy"] is None and depth["queue_url"].endswith(dlq_name)
            assert depth["created_at"].endswith("Z")
    policy = source.depth(QueueRef(REGION, SOURCE))["redrive_policy"]
    assert int(policy["maxReceiveCount"]) == 5 and policy["deadLetterTargetArn"].endswith(DLQ)


@pytest.mark.integration
def test_missing_queue_is_rejected_naming_queue_and_region(moto):
    with pytest.raises(SourceRejected, match="queue tenancy-nope does not exist in eu-west-1"):
        _source(moto.url).depth(QueueRef("eu-west-1", "tenancy-nope"))


@pytest.mark.integration
def test_zero_messages_is_refused(moto):
    with pytest.raises(SourceConfigError, match="ask for at least 1"):
        _source(moto.url).peek(PeekRequest(REGION, DLQ, 0))


@pytest.mark.integration
def test_unreachable_endpoint_is_source_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    source = _source(url)
    for call in (
        lambda: source.depth(QueueRef(REGION, DLQ)),
        lambda: source.peek(PeekRequest(REGION, DLQ, 10)),
        lambda: source.source_queues(QueueRef(REGION, DLQ)),
    ):
        expected = f"SQS at {url} did not answer.*--aws-endpoint-url"
        with pytest.raises(SourceUnavailable, match=expected) as info:
            call()
        assert not isinstance(info.value, BotoCoreError)
        assert isinstance(info.value.__cause__, BotoCoreError)


def test_redact_body_keeps_json_valid_when_a_match_eats_an_escape():
    redactor = Redactor()
    body = json.dumps({"last_error": 'token=abcdef"x', "password": "hunter22", "n": 1})
    out = redact_body(redactor, body)
    parsed = json.loads(out)
    assert "abcdef" not in out and "hunter22" not in out
    assert parsed["n"] == 1


def test_redact_body_passes_non_json_through_the_redactor():
    assert redact_body(Redactor(), f"oops {PLANTED['aws_access_key_id']}") == "oops [REDACTED]"


def test_missing_credentials_are_a_config_error(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    source = SqsQueueSource(
        SqsSettings(endpoint_url="http://127.0.0.1:9", timeout_s=2),
        Redactor(),
        session=boto3.Session(region_name=REGION),
    )
    with pytest.raises(SourceConfigError, match="no AWS credentials for SQS in us-east-1"):
        source.depth(QueueRef(REGION, DLQ))
