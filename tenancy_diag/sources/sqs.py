"""Dead-letter queues on SQS (or an SQS-compatible endpoint such as moto), read without harm.

SQS has no true "peek": receiving a message hides it for a visibility timeout and counts as a
receive. :meth:`SqsQueueSource.peek` therefore receives with a short timeout (renewed while a
slow peek runs), and whatever happens hands every message straight back (visibility 0), so the
consumers that drain the DLQ see no gap and nothing is deleted. A queue that itself has a
RedrivePolicy is refused: every receive there moves a message closer to its own dead-letter
queue. Bodies are redacted before they leave this module.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from tenancy_diag.errors import SourceConfigError, SourceRejected, SourceUnavailable, shorten
from tenancy_diag.redacting import MASK, Redactor
from tenancy_diag.settings import SqsSettings
from tenancy_diag.sources.base import PeekRequest, QueueRef

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)
T = TypeVar("T")

_BATCH = 10  # ReceiveMessage and ChangeMessageVisibilityBatch take at most ten
# Long polling asks every SQS server, so a small queue does not look empty; one second is
# what it costs once, at the end of a queue holding fewer messages than asked for.
_WAIT_S = 1
_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_ATTRIBUTES: dict[str, str] = {
    "visible": "ApproximateNumberOfMessages",
    "not_visible": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}


class SqsQueueSource:
    """A :class:`~tenancy_diag.sources.base.QueueSource` on SQS, one client per region."""

    name = "sqs"

    def __init__(
        self, settings: SqsSettings, redactor: Redactor, session: boto3.Session | None = None
    ) -> None:
        self.settings = settings
        self.redactor = redactor
        self._session = session or boto3.Session()
        self._clients: dict[str, SQSClient] = {}
        self._urls: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        # A wrong endpoint should fail in seconds, and one retry covers a dropped connection.
        self._config = Config(
            connect_timeout=settings.timeout_s,
            read_timeout=max(settings.timeout_s, _WAIT_S + 1.0),
            retries={"max_attempts": 2, "mode": "standard"},
        )

    # -- QueueSource -----------------------------------------------------------------------
    def depth(self, request: QueueRef) -> dict[str, Any]:
        url = self._queue_url(request.region, request.queue_name)
        attributes: dict[str, str] = self._call(
            request.region,
            request.queue_name,
            lambda c: c.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]),
        ).get("Attributes", {})  # type: ignore[assignment]
        out: dict[str, Any] = {
            "queue_url": url,
            "region": request.region,
            "queue_name": request.queue_name,
        }
        out.update({key: int(attributes.get(name, 0)) for key, name in _ATTRIBUTES.items()})
        policy = attributes.get("RedrivePolicy")
        out["redrive_policy"] = json.loads(policy) if policy else None
        out["created_at"] = _epoch_iso(attributes.get("CreatedTimestamp"))
        out["modified_at"] = _epoch_iso(attributes.get("LastModifiedTimestamp"))
        return out

    def source_queues(self, request: QueueRef) -> list[str]:
        url = self._queue_url(request.region, request.queue_name)

        def listing(client: SQSClient) -> list[str]:
            pages = client.get_paginator("list_dead_letter_source_queues").paginate(QueueUrl=url)
            return [u for page in pages for u in page.get("queueUrls", [])]

        urls = self._call(request.region, request.queue_name, listing)
        return sorted(u.rstrip("/").rsplit("/", 1)[-1] for u in urls)

    def peek(self, request: PeekRequest) -> list[dict[str, Any]]:
        """Up to ``max_messages`` (capped by ``settings.sample_size``), none deleted or hidden."""
        if request.max_messages < 1:
            raise SourceConfigError(
                self.name, f"cannot peek {request.max_messages} messages; ask for at least 1"
            )
        self._refuse_redriven(request)
        url = self._queue_url(request.region, request.queue_name)
        limit = min(request.max_messages, self.settings.sample_size)
        handles: dict[str, str] = {}
        try:
            messages = self._receive(request, url, limit, handles)
        finally:
            self._set_visibility(request, url, handles, 0)
        return [self._shape(m) for m in messages]

    # -- peeking ---------------------------------------------------------------------------
    def _refuse_redriven(self, request: PeekRequest) -> None:
        depth = self.depth(QueueRef(request.region, request.queue_name))
        if depth["redrive_policy"]:
            raise SourceConfigError(
                self.name,
                f"queue {request.queue_name} in {request.region} has a RedrivePolicy, so peeking "
                "would count toward its maxReceiveCount and could move messages; peek its "
                "dead-letter queue instead",
            )

    def _receive(
        self, request: PeekRequest, url: str, limit: int, handles: dict[str, str]
    ) -> list[dict[str, Any]]:
        """Receive until ``limit`` distinct messages or a batch brings nothing new.

        ``handles`` (MessageId -> newest receipt handle) is filled as messages arrive, so the
        caller can hand back even what an interrupted receive already took.
        """
        messages: list[dict[str, Any]] = []
        hidden_at = time.monotonic()
        while len(messages) < limit:
            hidden_at = self._keep_hidden(request, url, handles, hidden_at)
            batch = self._call(
                request.region,
                request.queue_name,
                lambda c: c.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(_BATCH, limit - len(messages)),
                    VisibilityTimeout=self.settings.peek_visibility_timeout_s,
                    WaitTimeSeconds=_WAIT_S,
                    MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
                ),
            ).get("Messages", [])
            fresh = [dict(m) for m in batch if m["MessageId"] not in handles]
            # A message that came round twice is valid only under its newest handle.
            handles.update({m["MessageId"]: m["ReceiptHandle"] for m in batch})
            if not fresh:
                break
            messages.extend(fresh)
        return messages

    def _keep_hidden(
        self, request: PeekRequest, url: str, handles: dict[str, str], hidden_at: float
    ) -> float:
        """Re-hide what the peek holds once half its timeout has passed; returns when it did.

        A slow peek would otherwise see its first messages reappear and come back first, ending
        the sample early; a crash still frees everything within the timeout of the last renewal.
        """
        timeout = self.settings.peek_visibility_timeout_s
        if not handles or time.monotonic() - hidden_at < timeout / 2:
            return hidden_at
        renewed = time.monotonic()
        self._set_visibility(request, url, handles, timeout)
        return renewed

    def _set_visibility(
        self, request: PeekRequest, url: str, handles: dict[str, str], seconds: int
    ) -> None:
        """Set every held message's visibility (0 hands it back); failures only delay them."""
        client = self._client(request.region)
        change_visibility(client, url, list(handles.values()), seconds, request.queue_name)

    def _shape(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = message.get("Attributes", {})
        return {
            "message_id": message["MessageId"],
            "sent_at": _epoch_iso(attributes.get("SentTimestamp")),
            "receive_count": int(attributes.get("ApproximateReceiveCount", 0)),
            "body": redact_body(self.redactor, message.get("Body", "")),
        }

    # -- plumbing --------------------------------------------------------------------------
    def _client(self, region: str) -> SQSClient:
        with self._lock:
            if region not in self._clients:
                try:
                    self._clients[region] = self._session.client(
                        "sqs",
                        region_name=region,
                        endpoint_url=self.settings.endpoint_url,
                        config=self._config,
                    )
                except (BotoCoreError, ValueError) as e:
                    raise SourceConfigError(
                        self.name,
                        f"cannot make an SQS client for region {region!r} "
                        f"({shorten(e, 120)}); check the region and --aws-endpoint-url",
                    ) from e
            return self._clients[region]

    def _queue_url(self, region: str, queue_name: str) -> str:
        key = (region, queue_name)
        if key not in self._urls:
            self._urls[key] = self._call(
                region, queue_name, lambda c: c.get_queue_url(QueueName=queue_name)
            )["QueueUrl"]
        return self._urls[key]

    def _endpoint(self, region: str) -> str:
        client = self._clients.get(region)
        default = client.meta.endpoint_url if client else f"https://sqs.{region}.amazonaws.com"
        return self.settings.endpoint_url or default

    def _call(self, region: str, queue_name: str, call: Callable[[SQSClient], T]) -> T:
        client = self._client(region)
        try:
            return call(client)
        except (ConnectTimeoutError, ReadTimeoutError) as e:
            raise self._unavailable(region, f"within {self.settings.timeout_s:g} s") from e
        except (EndpointConnectionError, ConnectionClosedError) as e:
            raise self._unavailable(region, "(the connection failed)") from e
        except NoCredentialsError as e:
            raise SourceConfigError(
                self.name,
                f"no AWS credentials for SQS in {region}; set AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment",
            ) from e
        except ClientError as e:
            raise self._rejected(e, region, queue_name) from e
        except BotoCoreError as e:
            raise self._unavailable(region, f"({shorten(e, 160)})") from e

    def _unavailable(self, region: str, how: str) -> SourceUnavailable:
        return SourceUnavailable(
            self.name,
            f"SQS at {self._endpoint(region)} did not answer {how} for region {region}; "
            "check --aws-endpoint-url",
        )

    def _rejected(self, error: ClientError, region: str, queue_name: str) -> SourceRejected:
        code = error.response.get("Error", {}).get("Code", "")
        if code in _MISSING_QUEUE:
            return SourceRejected(
                self.name,
                f"queue {queue_name} does not exist in {region}; check the queue "
                "name in parameters/signals.yaml (dlq.queues) and the region",
            )
        message = error.response.get("Error", {}).get("Message", "")
        return SourceRejected(
            self.name,
            f"SQS in {region} refused the call on {queue_name}: {code} "
            f"{shorten(self.redactor.redact(message), 160)}; check the queue's access policy",
        )


def redact_body(redactor: Redactor, body: str) -> str:
    """Redact a message body, keeping JSON bodies valid JSON.

    Text redaction sees a secret in its context ("password": "..."); if masking a match ate a
    JSON escape the result no longer parses, and the body is instead redacted value by value.
    """
    redacted = redactor.redact(body)
    try:
        parsed = json.loads(body)
    except ValueError:
        return redacted
    try:
        json.loads(redacted)
    except ValueError:
        return json.dumps(_redact_values(redactor, parsed), ensure_ascii=False)
    return redacted


def _redact_values(redactor: Redactor, value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _redact_values(redactor, v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_values(redactor, v, key) for v in value]
    if isinstance(value, str):
        alone = redactor.redact(value)
        if alone == value and key and redactor.redact(f"{key}={value}") != f"{key}={value}":
            return MASK  # only the key says it is a secret ("password": "...")
        return alone
    return value


def _epoch_iso(stamp: str | None) -> str | None:
    """An SQS timestamp as ISO-8601 UTC; AWS sends epoch milliseconds or seconds, moto floats."""
    try:
        number = float(stamp) if stamp else None
    except ValueError:
        return None
    if number is None:
        return None
    seconds = number / 1000 if number > 10**11 else number
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def change_visibility(
    client: SQSClient, url: str, handles: Sequence[str], seconds: int, queue_name: str
) -> None:
    """Set the visibility of received messages, ten at a time (0 hands them back).

    Failures are only logged: callers run this in ``finally``, where raising would hide their
    own error, and the visibility timeout already set is the safety net.
    """
    for start in range(0, len(handles), _BATCH):
        entries = [
            {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": seconds}
            for i, h in enumerate(handles[start : start + _BATCH])
        ]
        try:
            failed = client.change_message_visibility_batch(
                QueueUrl=url,
                Entries=entries,  # type: ignore[arg-type]
            ).get("Failed", [])
        except (BotoCoreError, ClientError) as e:
            log.warning(
                "could not set visibility %d s on %d messages of %s (%s)",
                seconds,
                len(entries),
                queue_name,
                shorten(e, 120),
            )
            continue
        for failure in failed:
            log.warning(
                "could not set visibility %d s on a message of %s (%s)",
                seconds,
                queue_name,
                failure.get("Code"),
            )
