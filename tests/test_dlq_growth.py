"""DLQ growth has one rule, used by the webhook diagnosis and recovery verification alike.

Before, the diagnosis counted every message that first failed after ``end - window`` (a
message stamped after ``end``, from a skewed clock or a replay, counted as growth) while the
checklist bounded the window on both sides; and a region whose DLQ could not be read counted 0.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tenancy_diag.analysis import checklist, dlq
from tenancy_diag.diagnosing import connect
from tenancy_diag.diagnosing.steps import Diagnosis, dlq_growth_rows
from tenancy_diag.errors import SourceUnavailable

END = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
STAMPS = ("2026-11-27T02:50:00Z", "2026-11-27T02:30:00Z", "2026-11-27T03:10:00Z")


class Queues:
    """A queue source of three peeked messages per region; ``dead`` regions do not answer."""

    name = "sqs"

    def __init__(self, dead: tuple[str, ...] = ()) -> None:
        self.dead = dead

    def _check(self, region: str) -> None:
        if region in self.dead:
            raise SourceUnavailable("sqs", f"SQS in {region} did not answer")

    def depth(self, request):
        self._check(request.region)
        return {"visible": 3, "not_visible": 0, "delayed": 0}

    def source_queues(self, request):
        return []

    def peek(self, request):
        self._check(request.region)
        body = {"tenant_id": "t-1", "region": request.region, "kind": "webhook"}
        return [
            {
                "message_id": f"{request.region}-{i}",
                "sent_at": stamp,
                "receive_count": 1,
                "body": json.dumps({**body, "error_code": "503", "first_failed_at": stamp}),
            }
            for i, stamp in enumerate(STAMPS)
        ]


def _diagnosis(queues: Queues) -> Diagnosis:
    ctx = connect("INC-1", regions=["us-east-1", "eu-west-1"], end=END, slo_window="15m")
    ctx.by_role["queues"] = ("sqs", queues)
    ctx.sources["sqs"] = "ok"
    return Diagnosis(ctx, subsystem="webhook")


def test_the_checklist_uses_the_diagnosis_rule():
    assert checklist.growth_within is dlq.growth_within
    assert checklist.dlq_growth_rows is dlq.dlq_growth_rows


def test_growth_counts_only_messages_that_failed_within_the_window_before_end():
    evidence = _diagnosis(Queues()).dlq()
    # 02:50 is within 15 min of 03:00; 02:30 is older; 03:10 is after `end`, not growth.
    assert evidence.growth == {"us-east-1": 1, "eu-west-1": 1}


def test_a_region_whose_dlq_could_not_be_read_has_no_data_not_zero():
    diagnosis = _diagnosis(Queues(dead=("eu-west-1",)))
    evidence = diagnosis.dlq()
    rows = {row.region: row for row in dlq_growth_rows(evidence, diagnosis.basis())}
    assert rows["us-east-1"].value == 1.0 and rows["us-east-1"].passed is False
    assert rows["eu-west-1"].value is None and rows["eu-west-1"].passed is None
    assert diagnosis.ctx.needed_sources()["sqs"].startswith("unavailable")
