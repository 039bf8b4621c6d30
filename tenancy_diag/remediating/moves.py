"""The data of a move: what is asked, what a scan finds, and what a run reports.

Kept apart from the modules that act (:mod:`moving`, :mod:`move_runs`, :mod:`move_queues`,
:mod:`move_journals`) so each of them can use these types without importing the others.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tenancy_diag.errors import SourceConfigError
from tenancy_diag.evidence import MOVE_PLAN_SCHEMA as PLAN_SCHEMA
from tenancy_diag.evidence import MOVE_REPORT_SCHEMA as REPORT_SCHEMA

MOVE_ID_ATTRIBUTE = "tenancy-diag-move-id"

# Why a scanned message was not moved (the keys of ``skipped``).
SKIP_UNPARSABLE = "unparsable"  # the body is not a JSON object
SKIP_ERROR_CODE = "error_code"  # its error_code is not one of the retryable codes
SKIP_TENANT = "tenant"
SKIP_SEQUENCE = "sequence"  # no integer sequence, or outside from_sequence..to_sequence
SKIP_LIMIT = "limit"  # selected, but max_messages were already sent in this run

#: Why a selected message is refused rather than moved: SQS takes at most ten message
#: attributes, so a message carrying ten has no room for the move id, and a copy without one
#: could not be told from a duplicate after a lost send. Refused loudly, never skipped quietly:
#: it stays in the source, and the run is incomplete until someone moves it.
UNMOVABLE_ATTRIBUTES = (
    "10 message attributes (SQS's maximum) leave no room for the move id; it stays in the "
    "source: move it by hand"
)

SOURCE = "sqs"


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
            raise SourceConfigError(SOURCE, problem)

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
    #: Selected messages a move would refuse (see :data:`UNMOVABLE_ATTRIBUTES`).
    unmovable: tuple[MessageRef, ...] = ()

    @property
    def in_flight(self) -> int:
        """Messages hidden in the source when the scan began: it could not read them."""
        return self.depths.source.not_visible + self.depths.source.delayed

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": PLAN_SCHEMA,
            "request": self.request.to_json(),
            "selected": [asdict(r) for r in self.selected],
            "skipped": _refs_json(self.skipped),
            "unmovable": [asdict(r) for r in self.unmovable],
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
    #: Selected messages refused, move id -> why (they stay in the source).
    unmovable: Mapping[str, str] = field(default_factory=dict)
    #: Messages hidden in the source by another receiver (a crashed run, a consumer), which
    #: this run could not read, beyond those the journal already names as uncertain.
    in_flight: int = 0

    @property
    def not_moved(self) -> int:
        """Messages this run may have been meant to move and did not: uncertain, refused,
        over ``max_messages``, or in flight where it could not see them."""
        limit = len(self.skipped.get(SKIP_LIMIT, ()))
        return len(self.uncertain) + len(self.unmovable) + limit + self.in_flight

    def shortfall(self) -> str | None:
        """``incomplete: N messages not moved, rerun to finish (why)``; None when complete."""
        if not self.not_moved:
            return None
        counts = {
            "uncertain": len(self.uncertain),
            f"in flight in {self.request.source_queue}": self.in_flight,
            "over max_messages": len(self.skipped.get(SKIP_LIMIT, ())),
        }
        why = [f"{n} {what}" for what, n in counts.items() if n]
        # A rerun finishes all of those; a refused message needs a person.
        rerun = ", rerun to finish" if why else ""
        if self.unmovable:
            why.append(f"{len(self.unmovable)} refused: {UNMOVABLE_ATTRIBUTES}")
        return f"incomplete: {self.not_moved} messages not moved{rerun} ({'; '.join(why)})"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "request": self.request.to_json(),
            "journal": self.journal,
            "moved": [m.to_json() for m in self.moved],
            "resumed": [m.to_json() for m in self.resumed],
            "skipped": _refs_json(self.skipped),
            "uncertain": dict(self.uncertain),
            "unmovable": dict(self.unmovable),
            "in_flight": self.in_flight,
            "not_moved": self.not_moved,
            "before": asdict(self.before),
            "after": asdict(self.after),
        }


def _refs_json(refs: Mapping[str, Sequence[MessageRef]]) -> dict[str, list[dict[str, Any]]]:
    return {reason: [asdict(r) for r in items] for reason, items in sorted(refs.items())}
