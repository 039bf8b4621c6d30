"""The receiver's OpenAPI 3.1 document, served at ``GET /openapi.json``.

Written from the parser's own rules (:mod:`.intake`: the label patterns, the subsystem names,
the payload version), so what the document promises is what the receiver checks. The rule
JSON Schema cannot say stays in prose: a time must also exist in UTC. tests/service/test_fuzz.py
fuzzes the receiver with it (schemathesis): no 5xx, every answer as documented.
"""

from __future__ import annotations

from typing import Any

from tenancy_diag.service.intake import (
    ALERTMANAGER_VERSION,
    ALLOWED_LABELS,
    INCIDENT_LABEL,
    LABEL_PATTERNS,
)
from tenancy_diag.service.limits import Limits
from tenancy_diag.subsystems import registry as subsystems

#: Bumped when a request or answer changes shape.
SCHEMA_VERSION = "1"
#: running.naming.check_name: what may name a folder.
_INCIDENT_ID = r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _optional(pattern: str) -> dict[str, Any]:
    return {"anyOf": [{"type": "null"}, {"type": "string", "pattern": f"^{pattern}$"}]}


def _labels() -> dict[str, Any]:
    shaped = {name: {"type": "string", "pattern": f"^{p}$"} for name, p in LABEL_PATTERNS.items()}
    return {
        "type": "object",
        "description": f"Only {', '.join(ALLOWED_LABELS)} are read; the rest are ignored.",
        "properties": {
            "subsystem": {"enum": list(subsystems.names())},
            INCIDENT_LABEL: {"type": "string", "pattern": _INCIDENT_ID},
            **shaped,
        },
        "additionalProperties": {"type": "string"},
    }


def _components() -> dict[str, Any]:
    time = {"type": "string", "format": "date-time", "description": "e.g. 2026-11-27T03:00:00Z"}
    return {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Labels": _labels(),
            # Only what the receiver reads is described; Alertmanager's other fields (receiver,
            # annotations, endsAt, URLs...) may be anything and are ignored.
            "Alert": {
                "type": "object",
                "required": ["labels", "startsAt"],
                "properties": {
                    # A subsystem on each alert: what Alertmanager's commonLabels come from.
                    "labels": {"allOf": [_ref("Labels"), {"required": ["subsystem"]}]},
                    "startsAt": time,
                },
            },
            "AlertmanagerWebhook": {
                "type": "object",
                "description": "Alertmanager's webhook payload, version 4.",
                "required": ["version", "groupKey", "status", "alerts"],
                "properties": {
                    "version": {"enum": [ALERTMANAGER_VERSION, int(ALERTMANAGER_VERSION)]},
                    "groupKey": {"type": "string"},
                    "status": {"enum": ["firing", "resolved"]},
                    "commonLabels": _ref("Labels"),
                    "alerts": {"type": "array", "minItems": 1, "items": _ref("Alert")},
                },
            },
            "Incident": {
                "type": "object",
                "required": ["incident_id", "subsystem", "region", "time"],
                "properties": {
                    "incident_id": {"type": "string", "pattern": _INCIDENT_ID},
                    "subsystem": {
                        "oneOf": [
                            {"enum": list(subsystems.names())},
                            {
                                "type": "array",
                                "minItems": 1,
                                "items": {"enum": list(subsystems.names())},
                            },
                        ]
                    },
                    "region": {"type": "string", "pattern": f"^{LABEL_PATTERNS['region']}$"},
                    "tenant": _optional(LABEL_PATTERNS["tenant"]),
                    "severity": _optional(LABEL_PATTERNS["severity"]),
                    "time": time,
                },
            },
            "Queued": {
                "type": "object",
                "required": ["job", "created"],
                "properties": {"job": {"type": "integer"}, "created": {"type": "boolean"}},
                "additionalProperties": False,
            },
            "Resolved": {
                "type": "object",
                "required": ["resolution"],
                "properties": {
                    "resolution": {"type": "integer"},
                    "job": {"type": "integer"},
                    "created": {"type": "boolean"},
                },
                "additionalProperties": False,
            },
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string", "description": "one sentence"}},
                "additionalProperties": False,
            },
        },
    }


def _post(summary: str, body: str, limits: Limits) -> dict[str, Any]:
    error = _ref("Error")
    return {
        "summary": summary,
        "security": [{"bearer": []}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        },
        "responses": {
            "200": _json(
                {"anyOf": [_ref("Queued"), _ref("Resolved")]},
                "Committed to the queue (a repeat names the job it already has).",
            ),
            "400": _json(error, "Not JSON, not an object, nested too deep, or the wrong shape."),
            "401": {
                **_json(error, "No bearer token, or the wrong one."),
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
            },
            "408": _json(error, f"The body took over {limits.body_deadline_s:g} s."),
            "411": _json(error, "No Content-Length."),
            "413": _json(error, f"The body is over {limits.max_body_bytes} bytes."),
            "415": _json(error, "The content type is not JSON."),
            "422": _json(error, "A wrong version, label, subsystem, incident id or time."),
            "503": {
                **_json(error, "The queue is full; retry after the given seconds."),
                "headers": {"Retry-After": {"schema": {"type": "string"}}},
            },
        },
    }


def openapi(limits: Limits) -> dict[str, Any]:
    """The document; ``limits`` fill in the sizes and deadlines the answers mention."""
    health = {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"enum": ["ok", "error"]},
            "queue": {"type": "object", "additionalProperties": {"type": "integer"}},
            "error": {"type": "string"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tenancy-diag serve",
            "version": SCHEMA_VERSION,
            "description": "Alertmanager and incident webhooks in; one diagnosis run each.",
        },
        "paths": {
            "/alerts": {
                "post": _post("An Alertmanager notification", "AlertmanagerWebhook", limits)
            },
            "/incidents": {"post": _post("An incident was created", "Incident", limits)},
            "/healthz": {
                "get": {
                    "summary": "Alive, with the queue's depth by state; no token needed",
                    "security": [],
                    "responses": {
                        "200": _json(health, "The queue answers."),
                        "503": _json(health, "The queue does not."),
                    },
                }
            },
        },
        "components": _components(),
    }
