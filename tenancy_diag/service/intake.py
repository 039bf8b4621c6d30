"""Turning a webhook body into a :class:`RunRequest`, or a :class:`Rejection` with its 4xx.

Pure: bytes in, a frozen request out, no I/O. Alert labels are written by whoever controls a
Prometheus rule, and they end up as notebook parameters and folder names, so only four labels
pass (an allowlist, not a denylist) and each must match a strict shape before it gets anywhere.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from tenancy_diag.errors import ConfigError, TenancyDiagError, shorten
from tenancy_diag.running.naming import check_name
from tenancy_diag.subsystems import registry as subsystems
from tenancy_diag.times import iso

Kind = Literal["alert", "incident"]
Status = Literal["firing", "resolved"]

#: The Alertmanager webhook payload version this parser understands.
ALERTMANAGER_VERSION = "4"
#: The only labels that reach notebook parameters.
ALLOWED_LABELS = ("subsystem", "region", "tenant", "severity")
#: The label that, when present, names the incident instead of the derived ``am-…`` id.
INCIDENT_LABEL = "incident"

# ASCII only: `\d` (and [a-z] under re.IGNORECASE) match far more than an operator typed, and
# these values become folder names and notebook parameters.
_SHAPES = {
    "region": (re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]", re.ASCII), "like eu-west-1"),
    "tenant": (re.compile(r"t-[0-9]{6}", re.ASCII), "like t-000123"),
    "severity": (re.compile(r"sev[1-4]", re.ASCII), "one of sev1..sev4"),
}
#: Each shaped label's pattern, for the published schema (``fullmatch``: anchor it there).
LABEL_PATTERNS = {name: pattern.pattern for name, (pattern, _) in _SHAPES.items()}


class Rejection(TenancyDiagError):
    """A request the service refuses; ``status`` is the HTTP code and ``reason`` its one line.

    400 malformed JSON (too deep, a lone surrogate) or wrong shape, 401 missing or wrong
    token, 408 body not sent in time, 411 no Content-Length, 413 body over the limit, 415 not
    JSON, 422 wrong payload version, a bad label value or a time out of range.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class RunRequest:
    """One accepted notification: what to run, for which incident, and how to dedupe it."""

    kind: Kind
    #: sha256 hex; equal keys mean "the same notification again".
    dedupe_key: str
    incident_id: str
    subsystems: tuple[str, ...]
    region: str | None
    tenant: str | None
    severity: str | None
    #: ISO-8601 UTC of the earliest alert (or the incident's time).
    starts_at: str | None
    status: Status
    group_key: str | None = None
    fingerprints: tuple[str, ...] = ()
    #: Allowlisted label -> the distinct validated values seen, for the audit trail.
    received: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRequest:
        """The inverse of :meth:`to_dict`, for a request read back from the store."""
        values = dict(data)
        values["subsystems"] = tuple(values["subsystems"])
        values["fingerprints"] = tuple(values.get("fingerprints", ()))
        return cls(**values)


def parse_alertmanager(body: bytes) -> RunRequest:
    """An Alertmanager webhook (payload version 4) as one request for its whole group."""
    payload = _json_object(body)
    version = payload.get("version")
    # Alertmanager sends "4"; some relays re-encode it as the number 4 (never as 4.0 or true).
    if not (version == ALERTMANAGER_VERSION or (type(version) is int and str(version) == "4")):
        raise Rejection(
            422,
            f"payload version {shorten(version, 40)!r} is not supported; configure an "
            f"Alertmanager that sends webhook version {ALERTMANAGER_VERSION}",
        )
    group_key = _field(payload, "groupKey", str)
    status = _status(payload.get("status"))
    alerts = _field(payload, "alerts", list)
    if not alerts or not all(isinstance(a, dict) for a in alerts):
        raise Rejection(400, "'alerts' must be a non-empty list of objects; send Alertmanager's")
    # The contract puts a subsystem on every alert (tenancy-signals.md, "Alerts"), and the
    # published schema says so: an alert without one is refused, not silently folded in.
    unnamed = [
        i
        for i, a in enumerate(alerts)
        if isinstance(a.get("labels"), dict) and "subsystem" not in a["labels"]
    ]
    if unnamed:
        raise Rejection(
            422,
            f"alert {unnamed[0]} has no subsystem label; label every alert with one of "
            + ", ".join(subsystems.names()),
        )
    # A firing group can still list alerts that resolved since the last notification; they
    # drop out of the next one, so counting them would turn a repeat into a new run.
    active = [a for a in alerts if a.get("status") == status] or alerts
    labels = [_labels(alert.get("labels"), "alert labels") for alert in active]
    common = _labels(payload.get("commonLabels", {}), "commonLabels")
    received = _allowlisted([*labels, common])
    starts = [_field(alert, "startsAt", str) for alert in active]
    fingerprints = sorted(_fingerprint(a, lab) for a, lab in zip(active, labels, strict=True))
    return RunRequest(
        kind="alert",
        dedupe_key=_digest("alert", group_key, fingerprints, sorted(starts), status),
        incident_id=_alert_incident(group_key, labels, common),
        subsystems=_subsystems(received),
        region=_one(received, "region"),
        tenant=_one(received, "tenant"),
        # sev1 is the most severe and sorts first.
        severity=min(received["severity"]) if "severity" in received else None,
        starts_at=min(_iso(s, "startsAt") for s in starts),
        status=status,
        group_key=group_key,
        fingerprints=tuple(fingerprints),
        received=received,
    )


def parse_incident(body: bytes) -> RunRequest:
    """A plain incident-created JSON: incident_id, subsystem(s), region, tenant?, time."""
    payload = _json_object(body)
    incident = _valid_incident(_field(payload, "incident_id", str))
    subsystem = _field(payload, "subsystem", (str, list))
    names = [subsystem] if isinstance(subsystem, str) else subsystem
    if not names or not all(isinstance(name, str) for name in names):
        raise Rejection(400, "'subsystem' must be a string or a non-empty list of strings")
    region = _field(payload, "region", str)
    optional = {k: payload[k] for k in ("tenant", "severity") if payload.get(k) is not None}
    received = _allowlisted([{"region": region, **_labels(optional, "tenant and severity")}])
    received["subsystem"] = sorted({_check_label("subsystem", name) for name in names})
    starts_at = _iso(_field(payload, "time", str), "time")
    subsystems = _subsystems(received)
    tenant = _one(received, "tenant")
    return RunRequest(
        kind="incident",
        dedupe_key=_digest("incident", incident, subsystems, region, tenant, starts_at),
        incident_id=incident,
        subsystems=subsystems,
        region=region,
        tenant=tenant,
        severity=_one(received, "severity"),
        starts_at=starts_at,
        status="firing",
        received=received,
    )


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
        # A lone surrogate ("\ud800") is valid JSON but no Unicode: it would fail later, when
        # hashed or written to a file, so it is refused here while the sender can be told.
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise Rejection(
            400,
            f"the body holds a lone UTF-16 surrogate ({shorten(e.object[e.start : e.end], 20)!r}); "
            "send valid Unicode",
        ) from e
    except RecursionError as e:
        raise Rejection(
            400, "the body's JSON is nested too deep to read; send Alertmanager's flat payload"
        ) from e
    except ValueError as e:
        # JSONDecodeError, UnicodeDecodeError, and an integer past Python's 4300 digits.
        raise Rejection(
            400, f"the body is not valid JSON ({shorten(e, 80)}); send a JSON object"
        ) from e
    if not isinstance(payload, dict):
        raise Rejection(
            400, f"the body is a JSON {type(payload).__name__}, not an object; send an object"
        )
    return payload


def _field(payload: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = payload.get(name)
    if not isinstance(value, kind):
        raise Rejection(
            400, f"field {name!r} is missing or of the wrong type ({shorten(value, 40)!r}); send it"
        )
    return value


def _status(value: object) -> Status:
    if value in ("firing", "resolved"):
        return value
    raise Rejection(400, f"status {shorten(value, 40)!r} is neither 'firing' nor 'resolved'")


def _labels(value: object, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise Rejection(400, f"{what} must be an object of strings; send Alertmanager's label set")
    return value


def _allowlisted(label_sets: Iterable[Mapping[str, str]]) -> dict[str, list[str]]:
    """Every value of an allowlisted label, validated; other labels are dropped here."""
    seen: dict[str, set[str]] = {}
    for labels in label_sets:
        for name in ALLOWED_LABELS:
            if name in labels:
                seen.setdefault(name, set()).add(_check_label(name, labels[name]))
    return {name: sorted(values) for name, values in seen.items()}


def _check_label(name: str, value: str) -> str:
    if name == "subsystem":
        if value not in subsystems:
            raise Rejection(
                422,
                f"unknown subsystem {shorten(value, 60)!r}; use one of "
                + ", ".join(subsystems.names()),
            )
        return value
    pattern, hint = _SHAPES[name]
    if not pattern.fullmatch(value):
        raise Rejection(422, f"{name} {shorten(value, 60)!r} is malformed; send it {hint}")
    return value


def _subsystems(received: Mapping[str, list[str]]) -> tuple[str, ...]:
    wanted = set(received.get("subsystem", ()))
    if not wanted:
        raise Rejection(
            422, f"no subsystem given; label the alert with one of {', '.join(subsystems.names())}"
        )
    return tuple(s for s in subsystems.names() if s in wanted)


def _one(received: Mapping[str, list[str]], name: str) -> str | None:
    """The value when exactly one was seen; None when absent or when a group's alerts disagree."""
    values = received.get(name, [])
    return values[0] if len(values) == 1 else None


def _alert_incident(group_key: str, labels: list[dict[str, str]], common: Mapping[str, str]) -> str:
    for label_set in [*labels, common]:
        if INCIDENT_LABEL in label_set:
            _valid_incident(label_set[INCIDENT_LABEL])
    if INCIDENT_LABEL in common:
        return common[INCIDENT_LABEL]
    # Firing and resolved notifications share the group key, so both map to the same incident.
    return "am-" + hashlib.sha256(group_key.encode()).hexdigest()[:12]


def _valid_incident(value: str) -> str:
    try:
        return check_name(value, "incident id")
    except ConfigError as e:
        raise Rejection(422, str(e)) from e


def _fingerprint(alert: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    value = alert.get("fingerprint")
    if isinstance(value, str) and value:
        return value
    # Alertmanager before 0.19 sent no fingerprint; the label set identifies the alert as well.
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


def _iso(value: str, what: str) -> str:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        return iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    except ValueError as e:
        raise Rejection(
            422, f"{what} {shorten(value, 60)!r} is not ISO-8601; send e.g. 2026-11-27T03:00:00Z"
        ) from e
    except OverflowError as e:
        # 9999-12-31T23:59:59-23:59 parses, but in UTC it falls past the year 9999.
        raise Rejection(
            422, f"{what} {shorten(value, 60)!r} is out of range in UTC; send a real time"
        ) from e


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()
