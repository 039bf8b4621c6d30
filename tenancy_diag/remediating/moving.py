"""Move selected messages between two SQS queues, losing none and duplicating none.

SQS's own ``StartMessageMoveTask`` moves a whole queue and moto's server lacks it, so a move is
ReceiveMessage / SendMessage / DeleteMessage, made crash-safe by a journal (JSONL, one fsync'd
line per step, schema ``evidence.MOVE_JOURNAL_SCHEMA``). For each selected message:

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
* **Nothing left quietly.** What a run could not move is counted in its report (``not_moved``,
  :meth:`MoveReport.shortfall`): messages ``uncertain``, over ``max_messages``, hidden in the
  source by another receiver (``in_flight``: a crashed run's, say; a rerun after their
  visibility timeout finishes them), and selected messages carrying SQS's maximum of ten
  attributes, which have no room for the move id and are refused (``unmovable``), never sent
  without it.
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

from pathlib import Path
from typing import TYPE_CHECKING

from tenancy_diag.evidence import MOVE_JOURNAL_SCHEMA as JOURNAL_SCHEMA
from tenancy_diag.evidence import MOVE_PLAN_SCHEMA as PLAN_SCHEMA
from tenancy_diag.evidence import MOVE_REPORT_SCHEMA as REPORT_SCHEMA
from tenancy_diag.redacting import Redactor, default_redactor
from tenancy_diag.remediating.move_journals import Journal
from tenancy_diag.remediating.move_queues import Held, check_target, open_pair
from tenancy_diag.remediating.move_runs import Fault, Run, attributes_full, classify
from tenancy_diag.remediating.moves import (
    MOVE_ID_ATTRIBUTE,
    SKIP_ERROR_CODE,
    SKIP_LIMIT,
    SKIP_SEQUENCE,
    SKIP_TENANT,
    SKIP_UNPARSABLE,
    UNMOVABLE_ATTRIBUTES,
    Depths,
    MessageRef,
    Moved,
    MovePlan,
    MoveReport,
    MoveRequest,
    QueueCounts,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

__all__ = [
    "JOURNAL_SCHEMA",
    "MOVE_ID_ATTRIBUTE",
    "PLAN_SCHEMA",
    "REPORT_SCHEMA",
    "SKIP_ERROR_CODE",
    "SKIP_LIMIT",
    "SKIP_SEQUENCE",
    "SKIP_TENANT",
    "SKIP_UNPARSABLE",
    "UNMOVABLE_ATTRIBUTES",
    "Depths",
    "Fault",
    "MessageRef",
    "MovePlan",
    "MoveReport",
    "MoveRequest",
    "Moved",
    "QueueCounts",
    "move_messages",
    "plan_move",
]


def plan_move(
    client: SQSClient, request: MoveRequest, *, redactor: Redactor | None = None
) -> MovePlan:
    """List what :func:`move_messages` would move and what it would skip, changing nothing.

    ``selected`` is every message the selection names; ``unmovable`` those of them a move
    would refuse (ten attributes), which a requeue, naming sequences only, still covers.

    Every received message is handed back (visibility 0) when the scan ends, and none is
    deleted; receiving still adds one to each message's ApproximateReceiveCount.
    """
    redactor = redactor or default_redactor()
    source, target = open_pair(client, request, redactor)
    depths = Depths(source.counts(), target.counts())
    held = Held(source, request.visibility_timeout_s)
    selected: list[MessageRef] = []
    unmovable: list[MessageRef] = []
    skipped: dict[str, list[MessageRef]] = {}
    complete = True
    try:
        for batch in held.batches(request.receive_wait_s):
            for message in batch:
                ref, reason = classify(request, message, redactor)
                if reason is None and len(selected) >= request.max_messages:
                    reason = SKIP_LIMIT
                if reason is None:
                    selected.append(ref)
                    if attributes_full(message):
                        unmovable.append(ref)
                else:
                    skipped.setdefault(reason, []).append(ref)
            if len(selected) >= request.max_messages:
                complete = False
                break
    finally:
        held.hand_back()
    frozen = {reason: tuple(refs) for reason, refs in skipped.items()}
    return MovePlan(request, tuple(selected), frozen, depths, complete, tuple(unmovable))


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
    source, target = open_pair(client, request, redactor)
    with Journal.open(journal, request) as book:
        before = Depths(source.counts(), target.counts())
        check = check_target(target, request, book.pending(("intent",)))
        run = Run(request, source, book, check, redactor, fault)
        try:
            run.scan()
        finally:
            run.held.hand_back()
        after = Depths(source.counts(), target.counts())
        run.settle_unseen(after.source)
        report = run.report(str(journal), before, after)
        book.write("finish", None, moved=len(report.moved), resumed=len(report.resumed))
    return report
