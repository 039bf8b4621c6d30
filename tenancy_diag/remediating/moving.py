"""Move selected messages between two SQS queues, losing none and duplicating none.

SQS's own ``StartMessageMoveTask`` moves a whole queue and moto's server lacks it, so a move is
ReceiveMessage / SendMessage / DeleteMessage, made crash-safe by a journal (JSONL, one fsync'd
line per step, schema ``tenancy-diag/move-journal/v1``). For each selected message:

    intent (move id = source MessageId, body sha256)
      -> SendMessage to the target, with attribute ``tenancy-diag-move-id`` = move id
      -> sent (target MessageId)  -> DeleteMessage from the source  -> deleted

Guarantees, and why they hold:

* **No loss.** A source message is deleted only after SendMessage returned an MD5 matching its
  body and the ``sent`` line is on disk; everything received and not deleted is handed back
  (visibility 0) in a ``finally``, and after a hard crash the visibility timeout frees it.
* **No duplicate** when resumed with the same journal, whatever step failed: a message the
  journal calls ``sent`` is only deleted, whatever the current selection says (a resume with a
  narrower selection must still finish it). A message with only ``intent`` may or may not have
  reached the target (the answer to SendMessage was lost), so the target is read first (its
  messages received and handed straight back) looking for its move id. Found with the same
  body sha256: only deleted. Not found: sent again only when that read was conclusive. The
  read is conclusive only for a queue nobody consumes: if ``target_consumed`` is set, the
  target has a RedrivePolicy (it is a source queue that a controller drains; it is then not
  read at all, since a receive there counts toward its maxReceiveCount), or it holds in-flight
  or delayed messages, a missing copy may have been taken already, so the message is left in
  the source and its id reported ``uncertain`` instead of guessed.
* **One mover per journal.** The journal is held under an exclusive ``flock`` for the whole
  run, since two movers sharing it could both send the same message.
* **Nothing secret is written.** Bodies never reach the journal or the report: only ids,
  tenant, sequence, error_code (redacted) and the body's sha256.

Selection: every criterion given must hold (error_code in ``error_codes``, the tenant, the
sequence range); at least one is required so a typo cannot move a whole queue. Messages not
selected stay hidden while the run scans (handing them back at once would make the next
receive return them again, and the scan would never get past them) and are handed back when it
ends; they are renewed before their timeout so a slow scan does not meet them twice.
:func:`plan_move` is the same scan with no sending or deleting: the dry run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from tenancy_diag.errors import (
    ConfigError,
    SourceConfigError,
    SourceRejected,
    SourceUnavailable,
    shorten,
)
from tenancy_diag.redacting import Redactor, default_redactor
from tenancy_diag.sources.sqs import change_visibility

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)
T = TypeVar("T")

JOURNAL_SCHEMA = "tenancy-diag/move-journal/v1"
REPORT_SCHEMA = "tenancy-diag/move-report/v1"
PLAN_SCHEMA = "tenancy-diag/move-plan/v1"
MOVE_ID_ATTRIBUTE = "tenancy-diag-move-id"

# Why a scanned message was not moved (the keys of ``skipped``).
SKIP_UNPARSABLE = "unparsable"  # the body is not a JSON object
SKIP_ERROR_CODE = "error_code"  # its error_code is not one of the retryable codes
SKIP_TENANT = "tenant"
SKIP_SEQUENCE = "sequence"  # no integer sequence, or outside from_sequence..to_sequence
SKIP_ATTRIBUTES = "attributes_full"  # ten attributes already: no room for the move id
SKIP_LIMIT = "limit"  # selected, but max_messages were already sent in this run

Fault = Callable[[str, int], None]

_SOURCE = "sqs"
_BATCH = 10  # ReceiveMessage, ChangeMessageVisibilityBatch take at most ten
_MAX_ATTRIBUTES = 10  # SQS refuses an eleventh message attribute
_TARGET_SCAN_LIMIT = 1000  # reading more of a target to find lost copies is not best effort
# The parts of a received message attribute that SendMessage takes back.
_ATTRIBUTE_KEYS = ("DataType", "StringValue", "BinaryValue")
_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


# -- requests and results ------------------------------------------------------------------
@dataclass(frozen=True)
class MoveRequest:
    """What to move: from ``source_queue`` to ``target_queue`` in ``region``, and which ones.

    ``error_codes`` (retryable codes), ``tenant`` and the inclusive ``from_sequence`` ..
    ``to_sequence`` range all must hold; None means "any". ``max_messages`` caps the messages
    sent per run. ``visibility_timeout_s`` hides a received batch while it is moved (seconds;
    long enough for ten sends and deletes, short enough that a crashed run frees its messages
    soon). ``receive_wait_s`` is the long poll, which asks every SQS server so a small queue
    does not look empty. ``target_consumed`` says something drains the target (see the module
    docstring: lost copies are then reported, not re-sent).
    """

    region: str
    source_queue: str
    target_queue: str
    error_codes: frozenset[str] | None = None
    tenant: str | None = None
    from_sequence: int | None = None
    to_sequence: int | None = None
    max_messages: int = 100
    visibility_timeout_s: int = 60
    receive_wait_s: int = 1
    target_consumed: bool = False

    def __post_init__(self) -> None:
        problem = next(_request_problems(self), None)
        if problem is not None:
            raise SourceConfigError(_SOURCE, problem)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["error_codes"] = sorted(self.error_codes) if self.error_codes is not None else None
        return data


def _request_problems(request: MoveRequest) -> Iterator[str]:
    if request.source_queue == request.target_queue:
        yield f"cannot move {request.source_queue} onto itself; name a different target queue"
    if request.error_codes == frozenset():
        yield "error_codes is empty, so nothing would move; list the retryable codes"
    if (
        request.error_codes is None
        and request.tenant is None
        and (request.from_sequence is None and request.to_sequence is None)
    ):
        yield (
            f"a move from {request.source_queue} with no selection would move every message; "
            "set error_codes, tenant or from_sequence/to_sequence"
        )
    if request.max_messages < 1:
        yield f"max_messages={request.max_messages} moves nothing; ask for at least 1"
    low, high = request.from_sequence, request.to_sequence
    if low is not None and high is not None and low > high:
        yield f"from_sequence={low} is above to_sequence={high}; swap them"
    if not 1 <= request.visibility_timeout_s <= 43_200:
        yield f"visibility_timeout_s={request.visibility_timeout_s} is outside SQS's 1..43200"
    if not 0 <= request.receive_wait_s <= 20:
        yield f"receive_wait_s={request.receive_wait_s} is outside SQS's 0..20"


@dataclass(frozen=True)
class MessageRef:
    """One message as the journal and reports name it: never its body."""

    message_id: str
    body_sha256: str
    tenant: str | None = None
    sequence: int | None = None
    error_code: str | None = None


@dataclass(frozen=True)
class Moved:
    ref: MessageRef
    target_message_id: str

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self.ref), "target_message_id": self.target_message_id}


@dataclass(frozen=True)
class QueueCounts:
    """SQS's approximate counts (exact on moto)."""

    visible: int
    not_visible: int
    delayed: int


@dataclass(frozen=True)
class Depths:
    source: QueueCounts
    target: QueueCounts


@dataclass(frozen=True)
class MovePlan:
    """The dry run: what :func:`move_messages` would move now. ``complete`` is False when the
    scan stopped at ``max_messages`` before the end of the queue."""

    request: MoveRequest
    selected: tuple[MessageRef, ...]
    skipped: Mapping[str, tuple[MessageRef, ...]]
    depths: Depths
    complete: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": PLAN_SCHEMA,
            "request": self.request.to_json(),
            "selected": [asdict(r) for r in self.selected],
            "skipped": _refs_json(self.skipped),
            "depths": asdict(self.depths),
            "complete": self.complete,
        }


@dataclass(frozen=True)
class MoveReport:
    """What a run did. ``resumed`` were sent by an earlier run (or found in the target) and only
    deleted here; ``uncertain`` maps move ids whose copy this run could not establish to why
    (they stay in the source, and the journal keeps them for the next run)."""

    request: MoveRequest
    journal: str
    moved: tuple[Moved, ...]
    resumed: tuple[Moved, ...]
    skipped: Mapping[str, tuple[MessageRef, ...]]
    uncertain: Mapping[str, str]
    before: Depths
    after: Depths

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "request": self.request.to_json(),
            "journal": self.journal,
            "moved": [m.to_json() for m in self.moved],
            "resumed": [m.to_json() for m in self.resumed],
            "skipped": _refs_json(self.skipped),
            "uncertain": dict(self.uncertain),
            "before": asdict(self.before),
            "after": asdict(self.after),
        }


def _refs_json(refs: Mapping[str, Sequence[MessageRef]]) -> dict[str, list[dict[str, Any]]]:
    return {reason: [asdict(r) for r in items] for reason, items in sorted(refs.items())}


# -- public entry points -------------------------------------------------------------------
def plan_move(
    client: SQSClient, request: MoveRequest, *, redactor: Redactor | None = None
) -> MovePlan:
    """List what :func:`move_messages` would move and what it would skip, changing nothing.

    Every received message is handed back (visibility 0) when the scan ends, and none is
    deleted; receiving still adds one to each message's ApproximateReceiveCount.
    """
    redactor = redactor or default_redactor()
    source, target = _open_pair(client, request, redactor)
    depths = Depths(source.counts(), target.counts())
    held = _Held(source, request.visibility_timeout_s)
    selected: list[MessageRef] = []
    skipped: dict[str, list[MessageRef]] = {}
    complete = True
    try:
        for batch in held.batches(request.receive_wait_s):
            for message in batch:
                ref, reason = _classify(request, message, redactor)
                if reason is None and len(selected) >= request.max_messages:
                    reason = SKIP_LIMIT
                if reason is None:
                    selected.append(ref)
                else:
                    skipped.setdefault(reason, []).append(ref)
            if len(selected) >= request.max_messages:
                complete = False
                break
    finally:
        held.hand_back()
    frozen = {reason: tuple(refs) for reason, refs in skipped.items()}
    return MovePlan(request, tuple(selected), frozen, depths, complete)


def move_messages(
    client: SQSClient,
    request: MoveRequest,
    journal: Path,
    *,
    fault: Fault | None = None,
    redactor: Redactor | None = None,
) -> MoveReport:
    """Move the selected messages, journaling each step in ``journal`` (JSONL, appended).

    Rerun with the same journal after any failure: it finishes what the failed run started.
    ``fault(stage, index)`` is called after each message's "received", "sent" and "deleted"
    steps (index counts the messages this run acts on), so tests can fail at any point.
    """
    redactor = redactor or default_redactor()
    source, target = _open_pair(client, request, redactor)
    with _Journal.open(journal, request) as book:
        before = Depths(source.counts(), target.counts())
        check = _check_target(target, request, book.pending(("intent",)))
        run = _Run(request, source, book, check, redactor, fault)
        try:
            run.scan()
        finally:
            run.held.hand_back()
        after = Depths(source.counts(), target.counts())
        run.settle_unseen(after.source)
        report = run.report(str(journal), before, after)
        book.write("finish", None, moved=len(report.moved), resumed=len(report.resumed))
    return report


# -- one run -------------------------------------------------------------------------------
@dataclass
class _Run:
    request: MoveRequest
    source: _Queue
    book: _Journal
    check: _TargetCheck
    redactor: Redactor
    fault: Fault | None
    held: _Held = field(init=False)
    moved: list[Moved] = field(default_factory=list)
    resumed: list[Moved] = field(default_factory=list)
    skipped: dict[str, list[MessageRef]] = field(default_factory=dict)
    uncertain: dict[str, str] = field(default_factory=dict)
    acted: int = 0  # messages this run acted on: the fault hook's index
    unseen: set[str] = field(init=False)  # unfinished journal entries not met in the source

    def __post_init__(self) -> None:
        self.held = _Held(self.source, self.request.visibility_timeout_s)
        self.unseen = set(self.book.pending(("intent", "sent")))

    def scan(self) -> None:
        for batch in self.held.batches(self.request.receive_wait_s):
            for message in batch:
                self._handle(message)
            # Unfinished entries are worth the rest of the queue: each may be a duplicate.
            if len(self.moved) >= self.request.max_messages and not self.unseen:
                return

    def _handle(self, message: dict[str, Any]) -> None:
        ref, reason = _classify(self.request, message, self.redactor)
        self.unseen.discard(ref.message_id)
        state = self.book.state(ref.message_id)
        if state is not None and state.event in ("sent", "deleted"):
            self._finish(message, ref, state.target_message_id)
        elif state is not None and state.event == "intent":
            self._recover(message, ref, state)
        elif reason is None and len(self.moved) >= self.request.max_messages:
            self.skipped.setdefault(SKIP_LIMIT, []).append(ref)
        elif reason is None:
            self._move(message, ref)
        else:
            self.skipped.setdefault(reason, []).append(ref)

    def _recover(self, message: dict[str, Any], ref: MessageRef, state: _Entry) -> None:
        """A message whose send may or may not have happened: find its copy or report it."""
        copy = self.check.copies.get(ref.message_id)
        if copy is not None and copy[1] == state.body_sha256:
            self.book.write("sent", ref, target_message_id=copy[0], found_in_target=True)
            self._finish(message, ref, copy[0])
        elif copy is not None:
            self.uncertain[ref.message_id] = "a copy with a different body is in the target"
        elif self.check.conclusive:
            self._move(message, ref)
        else:
            self.uncertain[ref.message_id] = self.check.why

    def _move(self, message: dict[str, Any], ref: MessageRef) -> None:
        index = self._next_index()
        self.book.write("intent", ref)
        target_id = self.check.target.send(message, ref)
        self.book.write("sent", ref, target_message_id=target_id)
        self._step("sent", index)
        self._delete(message, ref, index)
        self.moved.append(Moved(ref, target_id))

    def _finish(self, message: dict[str, Any], ref: MessageRef, target_id: str | None) -> None:
        index = self._next_index()
        self._delete(message, ref, index)
        self.resumed.append(Moved(ref, target_id or ""))

    def _delete(self, message: dict[str, Any], ref: MessageRef, index: int) -> None:
        # SQS honours only the newest receipt handle; an older one may "succeed" and keep it.
        self.source.delete(self.held.handles.get(ref.message_id, message["ReceiptHandle"]))
        self.held.release(ref.message_id)
        self.book.write("deleted", ref)
        self._step("deleted", index)

    def _next_index(self) -> int:
        index, self.acted = self.acted, self.acted + 1
        self._step("received", index)
        return index

    def _step(self, stage: str, index: int) -> None:
        if self.fault is not None:
            self.fault(stage, index)

    def settle_unseen(self, source_after: QueueCounts) -> None:
        """Report unfinished journal entries this run never met in the source.

        A ``sent`` one is gone when the source holds nothing hidden (its delete happened but the
        ``deleted`` line did not); otherwise a crashed run may still hide it.
        """
        hidden = source_after.not_visible + source_after.delayed
        for move_id in sorted(self.unseen):
            state = self.book.state(move_id)
            if state is not None and state.event == "sent" and not hidden:
                continue
            self.uncertain[move_id] = (
                f"the journal says {state.event if state else '?'} but this run did not see it in"
                f" the source (hidden by another receiver or a crashed run); rerun with the same "
                f"journal after {self.request.visibility_timeout_s} s"
            )

    def report(self, journal: str, before: Depths, after: Depths) -> MoveReport:
        return MoveReport(
            self.request,
            journal,
            tuple(self.moved),
            tuple(self.resumed),
            {reason: tuple(refs) for reason, refs in self.skipped.items()},
            dict(self.uncertain),
            before,
            after,
        )


def _classify(
    request: MoveRequest, message: dict[str, Any], redactor: Redactor
) -> tuple[MessageRef, str | None]:
    """The message's reference and why it is skipped (None: it is selected)."""
    body: str = message.get("Body", "")
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    try:
        fields = json.loads(body)
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        return MessageRef(message["MessageId"], digest), SKIP_UNPARSABLE
    tenant, code, sequence = _text(fields.get("tenant_id")), _text(fields.get("error_code")), None
    if isinstance(fields.get("sequence"), int) and not isinstance(fields["sequence"], bool):
        sequence = fields["sequence"]
    ref = MessageRef(
        message["MessageId"],
        digest,
        redactor.redact(tenant) if tenant is not None else None,
        sequence,
        redactor.redact(code) if code is not None else None,
    )
    return ref, _skip_reason(request, message, tenant, code, sequence)


def _skip_reason(
    request: MoveRequest,
    message: dict[str, Any],
    tenant: str | None,
    code: str | None,
    sequence: int | None,
) -> str | None:
    if request.error_codes is not None and code not in request.error_codes:
        return SKIP_ERROR_CODE
    if request.tenant is not None and tenant != request.tenant:
        return SKIP_TENANT
    low, high = request.from_sequence, request.to_sequence
    if (low is not None or high is not None) and (
        sequence is None
        or (low is not None and sequence < low)
        or (high is not None and sequence > high)
    ):
        return SKIP_SEQUENCE
    if len(_forwarded_attributes(message)) >= _MAX_ATTRIBUTES:
        return SKIP_ATTRIBUTES
    return None


def _text(value: object) -> str | None:
    # A producer may write error_code 503 as a number; it still means "503".
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value)


# -- the target check ----------------------------------------------------------------------
@dataclass(frozen=True)
class _TargetCheck:
    """Copies of interrupted moves found in the target: move id -> (MessageId, body sha256).

    ``conclusive`` says a move id missing from ``copies`` was never sent; ``why`` says why not.
    """

    target: _Queue
    copies: Mapping[str, tuple[str, str]]
    conclusive: bool
    why: str = ""


def _check_target(target: _Queue, request: MoveRequest, wanted: Sequence[str]) -> _TargetCheck:
    if not wanted:
        return _TargetCheck(target, {}, conclusive=True)
    if target.redrive_policy():
        why = f"{target.name} has a RedrivePolicy, so it was not read"
        return _TargetCheck(target, {}, False, why + "; check it for this move id by hand")
    busy = target.counts()
    copies, ended = _find_copies(target, request, set(wanted))
    if request.target_consumed:
        why = f"{target.name} is consumed, so a copy may have been sent and taken already"
    elif busy.not_visible or busy.delayed:
        why = f"{target.name} held in-flight or delayed messages that could not be read"
    elif not ended:
        why = f"{target.name} holds more than {_TARGET_SCAN_LIMIT} messages; not all were read"
    else:
        return _TargetCheck(target, copies, conclusive=True)
    return _TargetCheck(target, copies, False, why + "; check it for this move id by hand")


def _find_copies(
    target: _Queue, request: MoveRequest, wanted: set[str]
) -> tuple[dict[str, tuple[str, str]], bool]:
    """Read the whole target (handing everything back); True when its end was reached."""
    held = _Held(target, request.visibility_timeout_s)
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


# -- SQS -----------------------------------------------------------------------------------
@dataclass
class _Queue:
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
                _SOURCE,
                f"no AWS credentials for SQS in {self.region}; set AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment",
            ) from e
        except ClientError as e:
            raise self._rejected(action, e) from e
        except BotoCoreError as e:
            raise SourceUnavailable(
                _SOURCE,
                f"SQS at {self.client.meta.endpoint_url} failed {action} on {self.name} in "
                f"{self.region} ({shorten(e, 160)}); check the endpoint, then rerun with the "
                "same journal",
            ) from e

    def _rejected(self, action: str, error: ClientError) -> SourceRejected:
        code = error.response.get("Error", {}).get("Code", "")
        if code in _MISSING_QUEUE:
            return SourceRejected(
                _SOURCE,
                f"queue {self.name} does not exist in {self.region}; check the queue name "
                "and the region",
            )
        message = self.redactor.redact(error.response.get("Error", {}).get("Message", ""))
        return SourceRejected(
            _SOURCE,
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
            **_forwarded_attributes(message),
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
                _SOURCE,
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


def _forwarded_attributes(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The message's own attributes as SendMessage takes them, minus an older move id."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in message.get("MessageAttributes", {}).items():
        if name == MOVE_ID_ATTRIBUTE:
            continue
        out[name] = {k: v for k, v in value.items() if k in _ATTRIBUTE_KEYS}
    return out


def _open_pair(
    client: SQSClient, request: MoveRequest, redactor: Redactor
) -> tuple[_Queue, _Queue]:
    queues = []
    for name in (request.source_queue, request.target_queue):
        queue = _Queue(client, request.region, name, redactor)
        queue.url = queue.call("GetQueueUrl", _url_getter(name))
        if name.endswith(".fifo"):
            raise SourceConfigError(
                _SOURCE, f"queue {name} is FIFO, which a move does not support; move by hand"
            )
        queues.append(queue)
    source, target = queues
    if source.redrive_policy():
        raise SourceConfigError(
            _SOURCE,
            f"queue {source.name} in {source.region} has a RedrivePolicy, so every receive "
            "counts toward its maxReceiveCount; move from its dead-letter queue instead",
        )
    return source, target


def _url_getter(name: str) -> Callable[[SQSClient], str]:
    return lambda c: c.get_queue_url(QueueName=name)["QueueUrl"]


class _Held:
    """Receipt handles of the messages a scan holds hidden, renewed before they reappear."""

    def __init__(self, queue: _Queue, timeout_s: int) -> None:
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


# -- the journal ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Entry:
    """The newest journal line of one move id."""

    event: str  # intent, sent, deleted
    body_sha256: str
    target_message_id: str | None


class _Journal:
    """The move's JSONL journal, held under ``flock`` while a run appends to it."""

    def __init__(self, path: Path, request: MoveRequest, handle: BinaryIO) -> None:
        self.path = path
        self.request = request
        self._handle = handle
        self._states: dict[str, _Entry] = {}

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path, request: MoveRequest) -> Iterator[_Journal]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("a+b")
        except OSError as e:
            raise ConfigError(f"cannot open move journal {path} ({e.strerror}); check it") from e
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                raise ConfigError(
                    f"move journal {path} is held by another running move; wait for it to end"
                ) from e
            journal = cls(path, request, handle)
            journal._load()
            journal.write("start", None, selection=request.to_json())
            yield journal

    def _load(self) -> None:
        self._handle.seek(0)
        data = self._handle.read()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            # A torn last line (a crash mid-write) recorded nothing that happened: each line is
            # written before the step it permits (intent) or after the step it reports.
            self._handle.truncate(complete)
        lines = data[:complete].decode("utf-8", errors="replace").split("\n")[:-1]
        for number, line in enumerate(lines, start=1):
            self._read_line(number, line)

    def _read_line(self, number: int, line: str) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or record.get("schema") != JOURNAL_SCHEMA:
            raise ConfigError(
                f"line {number} of move journal {self.path} is not a {JOURNAL_SCHEMA} record; "
                "restore the journal or start a new one only after checking both queues"
            )
        mine = (self.request.region, self.request.source_queue, self.request.target_queue)
        theirs = (record.get("region"), record.get("source"), record.get("target"))
        if theirs != mine:
            raise ConfigError(
                f"move journal {self.path} records a move {theirs}, not {mine}; use a new "
                "journal for a different move"
            )
        if record.get("event") in ("intent", "sent", "deleted"):
            old = self._states.get(record["move_id"])
            self._states[record["move_id"]] = _Entry(
                record["event"],
                record.get("body_sha256", ""),
                record.get("target_message_id") or (old.target_message_id if old else None),
            )

    def state(self, move_id: str) -> _Entry | None:
        return self._states.get(move_id)

    def pending(self, events: Sequence[str]) -> list[str]:
        return sorted(m for m, entry in self._states.items() if entry.event in events)

    def write(self, event: str, ref: MessageRef | None, **extra: Any) -> None:
        record: dict[str, Any] = {
            "schema": JOURNAL_SCHEMA,
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "event": event,
            "region": self.request.region,
            "source": self.request.source_queue,
            "target": self.request.target_queue,
        }
        if ref is not None:
            record.update(asdict(ref), move_id=ref.message_id)
        record.update(extra)
        try:
            self._handle.write(json.dumps(record).encode("ascii") + b"\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as e:
            raise ConfigError(
                f"cannot append to move journal {self.path} ({e.strerror}); free space or fix "
                "permissions, then rerun with the same journal"
            ) from e
        if ref is not None and event in ("intent", "sent", "deleted"):
            old = self._states.get(ref.message_id)
            target_id = extra.get("target_message_id") or (old.target_message_id if old else None)
            self._states[ref.message_id] = _Entry(event, ref.body_sha256, target_id)
