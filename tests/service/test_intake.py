"""Webhook bodies -> RunRequest: the allowlist, validation, dedupe keys, incident ids."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from tenancy_diag.errors import TenancyDiagError
from tenancy_diag.service.intake import (
    Rejection,
    RunRequest,
    parse_alertmanager,
    parse_incident,
)

FIXTURE = Path(__file__).parent / "fixtures" / "alertmanager_webhook_firing.json"


def real_payload() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def body(payload: dict) -> bytes:
    return json.dumps(payload).encode()


def incident(**overrides: object) -> bytes:
    payload = {
        "incident_id": "INC-4711",
        "subsystem": "policy",
        "region": "us-east-2",
        "time": "2026-11-27T03:00:00Z",
    }
    payload.update(overrides)
    return json.dumps({k: v for k, v in payload.items() if v is not None}).encode()


def rejected(parse, data: bytes) -> Rejection:
    with pytest.raises(Rejection) as info:
        parse(data)
    return info.value


def test_a_real_alertmanager_payload_becomes_one_request():
    payload = real_payload()
    req = parse_alertmanager(body(payload))
    assert req.kind == "alert"
    assert req.status == "firing"
    assert req.subsystems == ("webhook",)
    assert (req.region, req.tenant) == ("eu-west-1", "t-000123")
    assert req.severity == "sev2"  # the most severe of sev2 and sev3
    assert req.starts_at == "2026-11-27T03:00:12.345678Z"
    assert req.group_key == payload["groupKey"]
    assert req.fingerprints == ("0f5e8b2d7c6a4913", "a3c1d9e27f40b615")
    digest = hashlib.sha256(payload["groupKey"].encode()).hexdigest()[:12]
    assert req.incident_id == f"am-{digest}"
    assert len(req.dedupe_key) == 64
    # Only allowlisted labels survive; alertname, job and instance never reach parameters.
    assert req.received == {
        "region": ["eu-west-1"],
        "severity": ["sev2", "sev3"],
        "subsystem": ["webhook"],
        "tenant": ["t-000123"],
    }


def test_repeats_share_a_key_but_a_resolution_or_a_new_start_does_not():
    payload = real_payload()
    first = parse_alertmanager(body(payload))
    reordered = copy.deepcopy(payload)
    reordered["alerts"].reverse()
    assert parse_alertmanager(body(reordered)).dedupe_key == first.dedupe_key

    resolved = copy.deepcopy(payload)
    resolved["status"] = "resolved"
    for alert in resolved["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2026-11-27T03:30:00Z"
    done = parse_alertmanager(body(resolved))
    assert done.status == "resolved"
    assert done.dedupe_key != first.dedupe_key
    assert done.incident_id == first.incident_id

    refired = copy.deepcopy(payload)
    refired["alerts"][0]["startsAt"] = "2026-11-27T04:00:00Z"
    assert parse_alertmanager(body(refired)).dedupe_key != first.dedupe_key


def test_an_alert_resolved_inside_a_firing_group_does_not_change_the_key():
    payload = real_payload()
    first = parse_alertmanager(body(payload))
    later = copy.deepcopy(payload)
    extra = copy.deepcopy(later["alerts"][0])
    extra.update(status="resolved", fingerprint="ffffffffffffffff")
    later["alerts"].append(extra)
    assert parse_alertmanager(body(later)).dedupe_key == first.dedupe_key


def test_an_incident_label_names_the_incident():
    payload = real_payload()
    payload["commonLabels"]["incident"] = "INC-2026-0042"
    assert parse_alertmanager(body(payload)).incident_id == "INC-2026-0042"


def test_a_group_across_regions_runs_without_a_region():
    payload = real_payload()
    payload["alerts"][1]["labels"]["region"] = "us-east-2"
    del payload["commonLabels"]["region"]
    req = parse_alertmanager(body(payload))
    assert req.region is None
    assert req.received["region"] == ["eu-west-1", "us-east-2"]


def test_several_subsystems_come_out_in_runbook_order():
    payload = real_payload()
    payload["alerts"][1]["labels"]["subsystem"] = "controller"
    del payload["commonLabels"]["subsystem"]
    assert parse_alertmanager(body(payload)).subsystems == ("controller", "webhook")


def test_alerts_without_a_fingerprint_still_dedupe():
    payload = real_payload()
    for alert in payload["alerts"]:
        del alert["fingerprint"]
    assert parse_alertmanager(body(payload)).dedupe_key == (
        parse_alertmanager(body(payload)).dedupe_key
    )


@pytest.mark.parametrize(
    ("mutate", "status", "needle"),
    [
        (lambda p: p.update(version="3"), 422, "version"),
        (lambda p: p.pop("groupKey"), 400, "groupKey"),
        (lambda p: p.update(status="pending"), 400, "pending"),
        (lambda p: p.update(alerts=[]), 400, "alerts"),
        (lambda p: p["alerts"][0]["labels"].update(subsystem="billing"), 422, "billing"),
        (
            lambda p: [
                a["labels"].pop("subsystem") for a in [*p["alerts"], {"labels": p["commonLabels"]}]
            ],
            422,
            "subsystem",
        ),
        (lambda p: p["alerts"][0]["labels"].update(region="../x"), 422, "region"),
        (lambda p: p["commonLabels"].update(region="eu-west-1/../../etc"), 422, "region"),
        (lambda p: p["alerts"][1]["labels"].update(tenant="../x"), 422, "tenant"),
        (lambda p: p["alerts"][0]["labels"].update(severity="critical"), 422, "severity"),
        (lambda p: p["alerts"][0]["labels"].update(incident="../x"), 422, "incident"),
        (lambda p: p["alerts"][0]["labels"].update(region=7), 400, "labels"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), 422, "startsAt"),
    ],
)
def test_bad_alert_payloads_are_rejected_with_their_code(mutate, status, needle):
    payload = real_payload()
    mutate(payload)
    error = rejected(parse_alertmanager, body(payload))
    assert error.status == status
    assert needle in error.reason
    assert "\n" not in error.reason
    assert isinstance(error, TenancyDiagError)


@pytest.mark.parametrize("data", [b"{not json", b"\xff\xfe", b"", b'["a list"]', b"42"])
def test_non_objects_are_400(data):
    assert rejected(parse_alertmanager, data).status == 400
    assert rejected(parse_incident, data).status == 400


def test_an_incident_becomes_a_request():
    req = parse_incident(incident(tenant="t-000042", severity="sev1"))
    assert (req.kind, req.status, req.incident_id) == ("incident", "firing", "INC-4711")
    assert req.subsystems == ("policy",)
    assert (req.region, req.tenant, req.severity) == ("us-east-2", "t-000042", "sev1")
    assert req.starts_at == "2026-11-27T03:00:00Z"
    assert req.group_key is None and req.fingerprints == ()


def test_incident_dedupe_covers_its_fields():
    assert parse_incident(incident()).dedupe_key == parse_incident(incident()).dedupe_key
    same_moment = incident(time="2026-11-27T03:00:00+00:00")
    assert parse_incident(same_moment).dedupe_key == parse_incident(incident()).dedupe_key
    assert parse_incident(incident(tenant="t-000001")).dedupe_key != (
        parse_incident(incident()).dedupe_key
    )


def test_an_incident_may_name_several_subsystems():
    req = parse_incident(incident(subsystem=["lifecycle", "api"]))
    assert req.subsystems == ("api", "lifecycle")


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"incident_id": "../x"}, 422),
        ({"incident_id": "a/b"}, 422),
        ({"incident_id": None}, 400),
        ({"subsystem": "storage"}, 422),
        ({"subsystem": []}, 400),
        ({"region": "../x"}, 422),
        ({"region": None}, 400),
        ({"tenant": "../x"}, 422),
        ({"tenant": "t-1"}, 422),
        ({"time": None}, 400),
        ({"time": "soon"}, 422),
    ],
)
def test_bad_incidents_are_rejected_with_their_code(overrides, status):
    assert rejected(parse_incident, incident(**overrides)).status == status


def test_a_request_survives_a_round_trip_through_json():
    req = parse_alertmanager(FIXTURE.read_bytes())
    again = RunRequest.from_dict(json.loads(json.dumps(req.to_dict())))
    assert again == req


def test_every_alert_must_name_its_subsystem_as_the_contract_and_schema_say():
    from tenancy_diag.service import intake as intake_mod

    payload = {
        "version": "4",
        "groupKey": "g",
        "status": "firing",
        "alerts": [
            {"labels": {"subsystem": "webhook"}, "startsAt": "2026-11-27T03:00:00Z"},
            {"labels": {"region": "us-east-1"}, "startsAt": "2026-11-27T03:00:00Z"},
        ],
    }
    with pytest.raises(intake_mod.Rejection) as refused:
        intake_mod.parse_alertmanager(json.dumps(payload).encode())
    assert refused.value.status == 422 and "alert 1 has no subsystem label" in str(refused.value)
