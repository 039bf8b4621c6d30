"""The two queues of a move, with boto3's errors turned into the package's.

Holds the SQS calls a move makes (receive, send with the move id, delete, visibility), the
handles a scan keeps hidden until it hands them back, and the read of the target that decides
whether an interrupted send can be retried without a duplicate.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from tenancy_diag.errors import SourceConfigError, SourceRejected, SourceUnavailable, shorten
from tenancy_diag.redacting import Redactor
from tenancy_diag.remediating.moves import (
    MOVE_ID_ATTRIBUTE,
    SOURCE,
    MessageRef,
    MoveRequest,
    QueueCounts,
)
from tenancy_diag.sources.sqs import change_visibility

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

T = TypeVar("T")

_BATCH = 10  # ReceiveMessage, ChangeMessageVisibilityBatch take at most ten
MAX_ATTRIBUTES = 10  # SQS refuses an eleventh message attribute
_TARGET_SCAN_LIMIT = 1000  # reading more of a target to find lost copies is not best effort
# The parts of a received message attribute that SendMessage takes back.
_ATTRIBUTE_KEYS = ("DataType", "StringValue", "BinaryValue")
_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


# -- SQS -----------------------------------------------------------------------------------
@dataclass
class Queue:
    """One queue, with every boto3 error turned into the package's errors."""

    client: SQSClient
    region: str
    name: str
    redactor: Redactor
    url: str = ""

    def call(self, action: str, call: Callable[[SQSClient], T]) -> T:
        try:
            return call(self.client)
        except NoCredentialsError as e:
            raise SourceConfigError(
                SOURCE,
                f"no AWS credentials for SQS in {self.region}; set AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment",
            ) from e
        except ClientError as e:
            raise self._rejected(action, e) from e
        except BotoCoreError as e:
            raise SourceUnavailable(
                SOURCE,
                f"SQS at {self.client.meta.endpoint_url} failed {action} on {self.name} in "
                f"{self.region} ({shorten(e, 160)}); check the endpoint, then rerun with the "
                "same journal",
            ) from e

    def _rejected(self, action: str, error: ClientError) -> SourceRejected:
        code = error.response.get("Error", {}).get("Code", "")
        if code in _MISSING_QUEUE:
            return SourceRejected(
                SOURCE,
                f"queue {self.name} does not exist in {self.region}; check the queue name "
                "and the region",
            )
        message = self.redactor.redact(error.response.get("Error", {}).get("Message", ""))
        return SourceRejected(
            SOURCE,
            f"SQS in {self.region} refused {action} on {self.name}: {code} "
            f"{shorten(message, 160)}; check the queue's access policy, then rerun with the "
            "same journal",
        )

    def attributes(self) -> dict[str, str]:
        answer = self.call(
            "GetQueueAttributes",
            lambda c: c.get_queue_attributes(QueueUrl=self.url, AttributeNames=["All"]),
        )
        return {str(k): v for k, v in answer.get("Attributes", {}).items()}

    def counts(self) -> QueueCounts:
        got = self.attributes()
        return QueueCounts(
            int(got.get("ApproximateNumberOfMessages", 0)),
            int(got.get("ApproximateNumberOfMessagesNotVisible", 0)),
            int(got.get("ApproximateNumberOfMessagesDelayed", 0)),
        )

    def redrive_policy(self) -> str | None:
        return self.attributes().get("RedrivePolicy") or None

    def receive(self, wait_s: int, visibility_s: int) -> list[dict[str, Any]]:
        answer = self.call(
            "ReceiveMessage",
            lambda c: c.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=_BATCH,
                VisibilityTimeout=visibility_s,
                WaitTimeSeconds=wait_s,
                MessageAttributeNames=["All"],
            ),
        )
        return [dict(m) for m in answer.get("Messages", [])]

    def send(self, message: dict[str, Any], ref: MessageRef) -> str:
        """Send a copy carrying the move id; return its MessageId once SQS confirmed the body."""
        body: str = message.get("Body", "")
        attributes = {
            **forwarded_attributes(message),
            MOVE_ID_ATTRIBUTE: {"DataType": "String", "StringValue": ref.message_id},
        }
        answer = self.call(
            "SendMessage",
            lambda c: c.send_message(
                QueueUrl=self.url,
                MessageBody=body,
                MessageAttributes=attributes,  # type: ignore[arg-type]
            ),
        )
        expected = hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest()
        if answer.get("MD5OfMessageBody") != expected:
            # Deleting the original now could leave only a damaged copy.
            raise SourceRejected(
                SOURCE,
                f"SQS stored the copy of message {ref.message_id} in {self.name} with MD5 "
                f"{answer.get('MD5OfMessageBody')!r}, not {expected}; the original was kept, "
                "inspect the target and rerun with the same journal",
            )
        return answer["MessageId"]

    def delete(self, receipt_handle: str) -> None:
        self.call(
            "DeleteMessage",
            lambda c: c.delete_message(QueueUrl=self.url, ReceiptHandle=receipt_handle),
        )

    def set_visibility(self, handles: Sequence[str], seconds: int) -> None:
        """Failures are only logged: this runs in ``finally``, and the timeout is the net."""
        change_visibility(self.client, self.url, handles, seconds, self.name)


def forwarded_attributes(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The message's own attributes as SendMessage takes them, minus an older move id."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in message.get("MessageAttributes", {}).items():
        if name == MOVE_ID_ATTRIBUTE:
            continue
        out[name] = {k: v for k, v in value.items() if k in _ATTRIBUTE_KEYS}
    return out


def open_pair(client: SQSClient, request: MoveRequest, redactor: Redactor) -> tuple[Queue, Queue]:
    queues = []
    for name in (request.source_queue, request.target_queue):
        queue = Queue(client, request.region, name, redactor)
        queue.url = queue.call("GetQueueUrl", _url_getter(name))
        if name.endswith(".fifo"):
            raise SourceConfigError(
                SOURCE, f"queue {name} is FIFO, which a move does not support; move by hand"
            )
        queues.append(queue)
    source, target = queues
    if source.redrive_policy():
        raise SourceConfigError(
            SOURCE,
            f"queue {source.name} in {source.region} has a RedrivePolicy, so every receive "
            "counts toward its maxReceiveCount; move from its dead-letter queue instead",
        )
    return source, target


def _url_getter(name: str) -> Callable[[SQSClient], str]:
    return lambda c: c.get_queue_url(QueueName=name)["QueueUrl"]


class Held:
    """Receipt handles of the messages a scan holds hidden, renewed before they reappear."""

    def __init__(self, queue: Queue, timeout_s: int) -> None:
        self.queue = queue
        self.timeout_s = timeout_s
        self.handles: dict[str, str] = {}  # MessageId -> newest receipt handle
        self.seen: set[str] = set()
        self._hidden_at = time.monotonic()

    def batches(self, wait_s: int) -> Iterator[list[dict[str, Any]]]:
        """Batches of messages not met before, until a receive brings nothing new."""
        while True:
            self._renew()
            batch = self.queue.receive(wait_s, self.timeout_s)
            # A message met twice is valid only under its newest handle.
            self.handles.update({m["MessageId"]: m["ReceiptHandle"] for m in batch})
            fresh = [m for m in batch if m["MessageId"] not in self.seen]
            self.seen.update(m["MessageId"] for m in fresh)
            if not fresh:
                return
            yield fresh

    def release(self, message_id: str) -> None:
        self.handles.pop(message_id, None)

    def hand_back(self) -> None:
        self.queue.set_visibility(list(self.handles.values()), 0)
        self.handles.clear()

    def _renew(self) -> None:
        if self.handles and time.monotonic() - self._hidden_at >= self.timeout_s / 2:
            self.queue.set_visibility(list(self.handles.values()), self.timeout_s)
            self._hidden_at = time.monotonic()


# -- the target check ----------------------------------------------------------------------
@dataclass(frozen=True)
class TargetCheck:
    """Copies of interrupted moves found in the target: move id -> (MessageId, body sha256).

    ``conclusive`` says a move id missing from ``copies`` was never sent; ``why`` says why not.
    """

    target: Queue
    copies: Mapping[str, tuple[str, str]]
    conclusive: bool
    why: str = ""


def check_target(target: Queue, request: MoveRequest, wanted: Sequence[str]) -> TargetCheck:
    if not wanted:
        return TargetCheck(target, {}, conclusive=True)
    if target.redrive_policy():
        why = f"{target.name} has a RedrivePolicy, so it was not read"
        return TargetCheck(target, {}, False, why + "; check it for this move id by hand")
    busy = target.counts()
    copies, ended = _find_copies(target, request, set(wanted))
    if request.target_consumed:
        why = f"{target.name} is consumed, so a copy may have been sent and taken already"
    elif busy.not_visible or busy.delayed:
        why = f"{target.name} held in-flight or delayed messages that could not be read"
    elif not ended:
        why = f"{target.name} holds more than {_TARGET_SCAN_LIMIT} messages; not all were read"
    else:
        return TargetCheck(target, copies, conclusive=True)
    return TargetCheck(target, copies, False, why + "; check it for this move id by hand")


def _find_copies(
    target: Queue, request: MoveRequest, wanted: set[str]
) -> tuple[dict[str, tuple[str, str]], bool]:
    """Read the whole target (handing everything back); True when its end was reached."""
    held = Held(target, request.visibility_timeout_s)
    copies: dict[str, tuple[str, str]] = {}
    ended = True
    try:
        for batch in held.batches(request.receive_wait_s):
            for message in batch:
                move_id = message.get("MessageAttributes", {}).get(MOVE_ID_ATTRIBUTE, {})
                if move_id.get("StringValue") in wanted:
                    digest = hashlib.sha256(message.get("Body", "").encode("utf-8")).hexdigest()
                    copies[move_id["StringValue"]] = (message["MessageId"], digest)
            if len(held.seen) >= _TARGET_SCAN_LIMIT:
                ended = False
                break
    finally:
        held.hand_back()
    return copies, ended
