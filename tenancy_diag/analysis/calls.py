"""The remediation calls in the audit log, and the ones whose outcome nobody knows.

Every real call is two lines sharing a ``call_id``: an ``intent``, written and fsync'd before
the call is made, and a ``result`` after it. A process killed between the two (kill -9, a lost
machine, a kernel dying with its runner) leaves an intent alone: the call may or may not have
reached its server, and only looking there can tell. Dry runs, refusals and notes change
nothing, so they are single lines with neither phase.

Pure: audit records in, the unanswered intents and the sentence that names each out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: The audit action of every line a remediation writes.
REMEDIATE_ACTION = "remediate"
#: ``phase`` of the line written before a real call, and of the line written after it.
INTENT = "intent"
RESULT = "result"


def unanswered(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Intent lines no result line of the same ``call_id`` follows, in the order given."""
    records = list(records)
    answered = {r.get("call_id") for r in records if r.get("phase") == RESULT}
    return [r for r in records if r.get("phase") == INTENT and r.get("call_id") not in answered]


def outcome_unknown(intent: Mapping[str, Any]) -> str:
    """What a reader must do about an unanswered intent, in one sentence."""
    procedure = intent.get("procedure") or "remediation"
    call = intent.get("call") or intent.get("step") or "?"
    when = intent.get("time") or "?"
    return (
        f"{procedure}: outcome unknown, check {call} (intent recorded at {when}, no result: "
        "the run died during the call)"
    )
