"""One move run: what happens to each message a scan meets, given what the journal says.

Here lives the resume logic the guarantees in :mod:`moving` rest on (finish a ``sent``, look
for the copy of an ``intent``, report what cannot be established), and the selection that
decides which messages a run or a dry run would move.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenancy_diag.redacting import Redactor
from tenancy_diag.remediating.move_journals import Entry, Journal
from tenancy_diag.remediating.move_queues import (
    MAX_ATTRIBUTES,
    Held,
    Queue,
    TargetCheck,
    forwarded_attributes,
)
from tenancy_diag.remediating.moves import (
    SKIP_ERROR_CODE,
    SKIP_LIMIT,
    SKIP_SEQUENCE,
    SKIP_TENANT,
    SKIP_UNPARSABLE,
    UNMOVABLE_ATTRIBUTES,
    Depths,
    MessageRef,
    Moved,
    MoveReport,
    MoveRequest,
    QueueCounts,
)

Fault = Callable[[str, int], None]


@dataclass
class Run:
    request: MoveRequest
    source: Queue
    book: Journal
    check: TargetCheck
    redactor: Redactor
    fault: Fault | None
    held: Held = field(init=False)
    moved: list[Moved] = field(default_factory=list)
    resumed: list[Moved] = field(default_factory=list)
    skipped: dict[str, list[MessageRef]] = field(default_factory=dict)
    uncertain: dict[str, str] = field(default_factory=dict)
    unmovable: dict[str, str] = field(default_factory=dict)
    acted: int = 0  # messages this run acted on: the fault hook's index
    unseen: set[str] = field(init=False)  # unfinished journal entries not met in the source
    #: Of those, how many settle_unseen reported uncertain because they may still be hidden.
    hidden_uncertain: int = 0

    def __post_init__(self) -> None:
        self.held = Held(self.source, self.request.visibility_timeout_s)
        self.unseen = set(self.book.pending(("intent", "sent")))

    def scan(self) -> None:
        for batch in self.held.batches(self.request.receive_wait_s):
            for message in batch:
                self._handle(message)
            # Unfinished entries are worth the rest of the queue: each may be a duplicate.
            if len(self.moved) >= self.request.max_messages and not self.unseen:
                return

    def _handle(self, message: dict[str, Any]) -> None:
        ref, reason = classify(self.request, message, self.redactor)
        self.unseen.discard(ref.message_id)
        state = self.book.state(ref.message_id)
        if state is not None and state.event in ("sent", "deleted"):
            self._finish(message, ref, state.target_message_id)
        elif state is not None and state.event == "intent":
            self._recover(message, ref, state)
        elif reason is None and len(self.moved) >= self.request.max_messages:
            self.skipped.setdefault(SKIP_LIMIT, []).append(ref)
        elif reason is None and attributes_full(message):
            self.unmovable[ref.message_id] = UNMOVABLE_ATTRIBUTES
        elif reason is None:
            self._move(message, ref)
        else:
            self.skipped.setdefault(reason, []).append(ref)

    def _recover(self, message: dict[str, Any], ref: MessageRef, state: Entry) -> None:
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
            self.hidden_uncertain += 1 if hidden else 0
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
            dict(self.unmovable),
            max(0, in_flight(before, after) - self.hidden_uncertain),
        )


def in_flight(before: Depths, after: Depths) -> int:
    """Source messages hidden from the whole run: hidden when it began and still when it ended.

    The smaller of the two counts, since SQS's counts are approximate and may still show, just
    after a run, the messages it has handed back, or, just before, an earlier run's.
    """

    def hidden(counts: QueueCounts) -> int:
        return counts.not_visible + counts.delayed

    return min(hidden(before.source), hidden(after.source))


def classify(
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
    return None


def attributes_full(message: dict[str, Any]) -> bool:
    """Whether the message's own attributes leave no room for the move id's."""
    return len(forwarded_attributes(message)) >= MAX_ATTRIBUTES


def _text(value: object) -> str | None:
    # A producer may write error_code 503 as a number; it still means "503".
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value)
