"""MoveRequest refuses unsafe or impossible moves before any queue is touched."""

import json

import pytest

from tenancy_diag.errors import SourceConfigError, TenancyDiagError
from tenancy_diag.redacting import Redactor
from tenancy_diag.remediating.move_runs import classify
from tenancy_diag.remediating.moving import (
    REPORT_SCHEMA,
    SKIP_ERROR_CODE,
    SKIP_SEQUENCE,
    SKIP_TENANT,
    Depths,
    MessageRef,
    Moved,
    MoveReport,
    MoveRequest,
    QueueCounts,
)

DLQ, ARCHIVE = "tenancy-webhook-dlq-us-east-1", "tenancy-webhook-archive-us-east-1"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, f"a move from {DLQ} with no selection would move every message; set error_codes"),
        ({"error_codes": frozenset()}, "error_codes is empty, so nothing would move"),
        ({"tenant": "t-1", "max_messages": 0}, "max_messages=0 moves nothing; ask for at least 1"),
        ({"from_sequence": 9, "to_sequence": 3}, "from_sequence=9 is above to_sequence=3; swap"),
        ({"tenant": "t-1", "visibility_timeout_s": 0}, "visibility_timeout_s=0 is outside"),
        ({"tenant": "t-1", "receive_wait_s": 21}, "receive_wait_s=21 is outside SQS's 0..20"),
    ],
)
def test_a_bad_request_names_the_value_and_the_fix(options, message):
    with pytest.raises(SourceConfigError, match=message.replace(".", r"\.")) as info:
        MoveRequest("us-east-1", DLQ, ARCHIVE, **options)
    assert isinstance(info.value, TenancyDiagError) and info.value.source == "sqs"


def test_a_queue_cannot_be_moved_onto_itself():
    with pytest.raises(SourceConfigError, match=f"cannot move {DLQ} onto itself"):
        MoveRequest("us-east-1", DLQ, DLQ, tenant="t-1")


@pytest.mark.parametrize(
    ("options", "selected", "skipped", "reason"),
    [
        (
            {"error_codes": frozenset({"503"})},
            {"tenant_id": "t-9", "error_code": "503", "sequence": 999},
            {"tenant_id": "t-9", "error_code": "400", "sequence": 999},
            SKIP_ERROR_CODE,
        ),
        (
            {"tenant": "t-1"},
            {"tenant_id": "t-1", "error_code": "400", "sequence": 999},
            {"tenant_id": "t-2", "error_code": "400", "sequence": 999},
            SKIP_TENANT,
        ),
        (
            {"to_sequence": 5},
            {"tenant_id": "t-9", "error_code": "400", "sequence": 5},
            {"tenant_id": "t-9", "error_code": "400", "sequence": 6},
            SKIP_SEQUENCE,
        ),
    ],
    ids=["error_codes", "tenant", "to_sequence"],
)
def test_any_one_criterion_is_a_selection(options, selected, skipped, reason):
    request = MoveRequest("us-east-1", DLQ, ARCHIVE, **options)
    # The one criterion given decides alone: the fields it does not name match anything.
    assert _skip_reason(request, selected) is None
    assert _skip_reason(request, skipped) == reason


def _skip_reason(request: MoveRequest, fields: dict) -> str | None:
    message = {"MessageId": "m-1", "Body": json.dumps(fields)}
    return classify(request, message, Redactor())[1]


def test_report_json_is_versioned_and_plain():
    request = MoveRequest("us-east-1", DLQ, ARCHIVE, error_codes=frozenset({"timeout", "503"}))
    ref = MessageRef("m-1", "ab" * 32, "t-000001", 7, "503")
    counts = QueueCounts(1, 0, 0)
    report = MoveReport(
        request,
        "/out/move.jsonl",
        (Moved(ref, "copy-1"),),
        (),
        {"error_code": (MessageRef("m-2", "cd" * 32, "t-2", 8, "400"),)},
        {"m-3": "why"},
        Depths(counts, counts),
        Depths(counts, counts),
    )
    data = json.loads(json.dumps(report.to_json()))
    assert data["schema"] == REPORT_SCHEMA
    assert data["request"]["error_codes"] == ["503", "timeout"]
    assert data["moved"] == [
        {**data["moved"][0], "message_id": "m-1", "target_message_id": "copy-1"}
    ]
    assert data["skipped"]["error_code"][0]["error_code"] == "400"
    assert data["before"]["source"] == {"visible": 1, "not_visible": 0, "delayed": 0}
