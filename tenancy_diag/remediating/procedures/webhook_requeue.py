"""Webhook requeue: the DLQ's retryable messages, as sequence ranges per tenant, re-delivered
through the admin API's requeue call. A later run with ``archive=True``, once deliveries
succeed, moves those messages from the DLQ to its archive queue, losing and duplicating none.

Neither says done when it is not: messages hidden in the DLQ when it was read (a crashed
run's, a consumer's) or past ``max_messages`` were not requeued, and an archive that could not
move every selected message says ``incomplete: N messages not moved, rerun to finish``; the
checks after either pass only when nothing is left.

Only the configured retryable codes are requeued (the runbook's "DLQ auto requeue for
specific retryable codes"): a 4xx says the request itself is wrong, and re-delivering it
only refills the DLQ. A range never spans a message that is not retryable, since the
requeue call re-delivers every sequence between its bounds.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

from tenancy_diag.analysis.calls import INTENT
from tenancy_diag.journaling import AUDIT_SCHEMA, read_jsonl
from tenancy_diag.remediating.connecting import Session
from tenancy_diag.remediating.executing import Execution
from tenancy_diag.remediating.moving import (
    SKIP_LIMIT,
    MessageRef,
    MovePlan,
    MoveRequest,
    move_messages,
    plan_move,
)
from tenancy_diag.remediating.plans import Call, Check, Plan, Step
from tenancy_diag.remediating.procedures.checks import region_value, slo, threshold_check

PROCEDURE = "webhook_requeue"
KIND = "webhook"
#: The plan's reading of the DLQ, which the check after a requeue judges.
READ_ALL = "every message of the DLQ read"
MOVED_ALL = "every selected message moved (archive complete)"
REQUEUED_ALL = "every retryable message requeued"


def sequence_ranges(
    refs: Iterable[MessageRef], retryable: frozenset[str]
) -> dict[str, list[tuple[int, int]]]:
    """Tenant -> ascending (first, last) runs of retryable sequences, split at any sequence
    of that tenant that is not retryable."""
    by_tenant: dict[str, dict[int, bool]] = {}
    for ref in refs:
        if ref.tenant is None or ref.sequence is None:
            continue
        seen = by_tenant.setdefault(ref.tenant, {})
        ok = (ref.error_code or "") in retryable
        # One bad copy of a sequence makes the sequence not retryable.
        seen[ref.sequence] = seen.get(ref.sequence, True) and ok
    ranges: dict[str, list[tuple[int, int]]] = {}
    for tenant, sequences in sorted(by_tenant.items()):
        runs: list[tuple[int, int]] = []
        for sequence in sorted(sequences):
            if not sequences[sequence]:
                continue
            # Only adjacent sequences join: a gap was delivered, and need not be again.
            if runs and runs[-1][1] == sequence - 1:
                runs[-1] = (runs[-1][0], sequence)
            else:
                runs.append((sequence, sequence))
        if runs:
            ranges[tenant] = runs
    return ranges


def plan(
    session: Session,
    *,
    region: str,
    tenant: str = "",
    max_messages: int = 100,
    archive: bool = False,
) -> Plan:
    book = session.runbook.remediations[PROCEDURE]
    retryable = frozenset(session.runbook.automation.retryable_codes)
    names = session.signals.doc.dlq.queues[KIND]
    dlq, archive_queue = names.dlq.format(region=region), names.archive.format(region=region)
    client = session.sqs(region)
    # Read every sequenced message (not only retryable ones): a range must not span a
    # sequence that is not retryable. The request only reads here; nothing moves.
    everything = MoveRequest(
        region,
        dlq,
        archive_queue,
        tenant=tenant or None,
        from_sequence=0,
        max_messages=max_messages,
    )
    seen = plan_move(client, everything)
    ranges = sequence_ranges(seen.selected, retryable)
    codes = sorted({r.error_code or "?" for r in seen.selected})
    requeued = sum(
        1
        for r in seen.selected
        if r.tenant in ranges
        and r.sequence is not None
        and any(a <= r.sequence <= b for a, b in ranges[r.tenant])
    )
    failure = region_value(session, "webhook.failure_ratio", region, window="5m")
    scope = {"region": region, "tenant": tenant or None, "dlq": dlq, "archive": archive}
    result = Plan(PROCEDURE, book.title, session.incident, scope)
    result.facts = {
        "in_flight": seen.in_flight,
        "read_to_end": seen.complete,
        "max_messages": max_messages,
    }
    result.preconditions = [
        Check(
            "retryable messages in the DLQ",
            requeued > 0,
            f"{requeued} of {len(seen.selected)} read are retryable "
            f"({', '.join(sorted(retryable))}); codes seen: {', '.join(codes) or 'none'}"
            + ("" if seen.complete else f"; stopped at {max_messages}"),
        ),
        _read_all(seen, max_messages),
        threshold_check(
            "deliveries succeed now (success confirmed)"
            if archive
            else "delivery failure ratio now (requeueing into a failing endpoint refills the DLQ)",
            failure,
            slo(session, "webhook", "failure_ratio_max"),
            "<",
            "",
        ),
    ]
    if archive:
        # The runbook archives only after the requeue succeeded: a separate, later run.
        done = _requeues_done(session)
        result.preconditions.append(
            Check(
                "requeued earlier in this incident (audit log)",
                done > 0,
                f"{done} requeue call(s) made for {session.incident}",
                required=False,
            )
        )
        result.preconditions.append(_movable(seen, retryable, ranges))
        result.steps = _archive_steps(session, book.steps[3], everything, retryable, ranges)
        result.followups = [f"{book.steps[3]} Done by this run; the undo moves them back."]
        return result
    for tenant_id, runs in ranges.items():
        for first, last in runs:
            call = session.admin_call(
                "requeue_webhooks",
                {"from_sequence": first, "to_sequence": last},
                tenant_id=tenant_id,
            )
            result.steps.append(
                Step(
                    f"{book.steps[1]} ({tenant_id} {first}..{last})",
                    call,
                    partial(session.send, call),
                    no_rollback=(
                        "a delivery cannot be recalled; every delivery carries its sequence, "
                        "so receivers drop the ones they already have"
                    ),
                )
            )
    result.followups = [
        f"{book.steps[2]} See the post-check below; run webhook_delivery again in 5 minutes.",
        f"{book.steps[3]} Once deliveries succeed, run this notebook again with -p archive=true.",
    ]
    return result


def _requeues_done(session: Session) -> int:
    path = session.trail.audit_path
    if path is None:
        return 0
    return sum(
        1
        for entry in read_jsonl(path, AUDIT_SCHEMA)
        if entry.get("incident") == session.incident
        and entry.get("procedure") == PROCEDURE
        and entry.get("dry_run") is False
        and entry.get("phase") != INTENT
        and entry.get("exit_code") == 0
        and "webhooks:requeue" in str(entry.get("call") or "")
    )


def _archive_steps(
    session: Session,
    title: str,
    request: MoveRequest,
    retryable: frozenset[str],
    ranges: dict[str, list[tuple[int, int]]],
) -> list[Step]:
    steps = []
    journals = session.journal_dir()
    for tenant_id, runs in ranges.items():
        for first, last in runs:
            forward = _selection(request, retryable, tenant_id, first, last)
            back = MoveRequest(
                forward.region,
                forward.target_queue,
                forward.source_queue,
                forward.error_codes,
                tenant_id,
                first,
                last,
                forward.max_messages,
            )
            # One journal per queue pair, whatever the selection: a later run with other ranges
            # still finds the messages an interrupted run sent but did not delete.
            journal = journals / f"{forward.source_queue}-to-{forward.target_queue}.jsonl"
            client = session.sqs(request.region)
            steps.append(
                Step(
                    f"{title} ({tenant_id} {first}..{last})",
                    _move_call(forward),
                    partial(_move, client, forward, journal),
                    rollback=_move_call(back),
                )
            )
    return steps


def _selection(
    request: MoveRequest, retryable: frozenset[str], tenant: str, first: int, last: int
) -> MoveRequest:
    return MoveRequest(
        request.region,
        request.source_queue,
        request.target_queue,
        retryable,
        tenant,
        first,
        last,
        request.max_messages,
    )


def _move_call(request: MoveRequest) -> Call:
    body: dict[str, Any] = {
        "error_codes": sorted(request.error_codes or ()),
        "tenant": request.tenant,
        "from_sequence": request.from_sequence,
        "to_sequence": request.to_sequence,
    }
    return Call("sqs", "MOVE", f"{request.source_queue} -> {request.target_queue}", body)


def _move(client: Any, request: MoveRequest, journal: Path) -> dict[str, Any]:
    report = move_messages(client, request, journal)
    return {
        # First, so a shortened detail still says it.
        "outcome": report.shortfall() or "complete",
        "moved": len(report.moved),
        "resumed": len(report.resumed),
        "uncertain": len(report.uncertain),
        "unmovable": len(report.unmovable),
        "over_limit": len(report.skipped.get(SKIP_LIMIT, ())),
        "in_flight": report.in_flight,
        "journal": journal.name,
    }


def _read_all(seen: MovePlan, max_messages: int) -> Check:
    """Whether the plan read the whole DLQ: what it did not read, it neither requeues nor
    archives."""
    missed = [f"{seen.in_flight} in flight (hidden by another receiver)"] if seen.in_flight else []
    if not seen.complete:
        missed.append(f"those past max_messages={max_messages}")
    return Check(
        READ_ALL,
        not missed,
        "; ".join(missed) + ": not read" if missed else "read to the end, none in flight",
        required=False,
    )


def _movable(
    seen: MovePlan, retryable: frozenset[str], ranges: dict[str, list[tuple[int, int]]]
) -> Check:
    refused = [
        r
        for r in seen.unmovable
        if (r.error_code or "") in retryable
        and r.sequence is not None
        and any(a <= r.sequence <= b for a, b in ranges.get(r.tenant or "", []))
    ]
    figure = (
        f"{len(refused)} carry 10 message attributes (SQS's maximum): no room for the move id, "
        "so they stay in the DLQ to be moved by hand"
        if refused
        else "none carries SQS's maximum of 10 attributes"
    )
    return Check("every selected message can be moved", not refused, figure, required=False)


def post_checks(session: Session, plan: Plan, run: Execution) -> list[Check]:
    region = str(plan.scope["region"])
    checks = [
        threshold_check(
            "delivery failure ratio after the requeue",
            region_value(session, "webhook.failure_ratio", region, window="5m"),
            slo(session, "webhook", "failure_ratio_max"),
            "<",
            "",
        )
    ]
    if plan.scope.get("archive"):
        return [*checks, _archived_all(run)]
    return [*checks, _requeued_all(plan)]


def _archived_all(run: Execution) -> Check:
    """Complete only when no step's move left anything, by its report's own counts."""
    answers = [o.answer for o in run.outcomes]
    refused = sum(a.get("unmovable", 0) for a in answers)
    # In flight is the whole DLQ's, seen alike by every step's move: counted once.
    left = refused + sum(a.get("uncertain", 0) + a.get("over_limit", 0) for a in answers)
    left += max((a.get("in_flight", 0) for a in answers), default=0)
    moved = sum(a.get("moved", 0) + a.get("resumed", 0) for a in answers)
    if not left:
        return Check(MOVED_ALL, True, f"{moved} moved, none left")
    why = "; ".join(str(a["outcome"]) for a in answers if a.get("outcome") != "complete")
    rerun = ", rerun to finish" if left > refused else ""
    return Check(
        MOVED_ALL, False, f"incomplete: {left} messages not moved{rerun}; {moved} moved ({why})"
    )


def _requeued_all(plan: Plan) -> Check:
    """A requeue re-delivers what its plan read; what the plan could not read is left."""
    in_flight, complete = plan.facts.get("in_flight", 0), plan.facts.get("read_to_end", True)
    if not in_flight and complete:
        return Check(REQUEUED_ALL, True, "the plan read the whole DLQ")
    figure = f"incomplete: {in_flight} messages not requeued, rerun to finish (in flight)"
    if not complete:
        figure = (
            f"incomplete: {in_flight} in flight and those past max_messages="
            f"{plan.facts.get('max_messages')} not requeued, rerun to finish"
        )
    return Check(REQUEUED_ALL, False, figure)
