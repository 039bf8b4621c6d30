"""What the queue holds: jobs (one run per accepted request), attachments and resolutions.

Plain data read back from :mod:`tenancy_diag.service.store`; nothing here touches the database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tenancy_diag.service.intake import RunRequest

#: queued -> running -> done | failed; running goes back to queued on retry or restart.
STATES = ("queued", "running", "done", "failed")


@dataclass
class Job:
    """One run of the notebooks for one accepted request; ``status`` is the job's state."""

    id: int
    kind: str
    incident_id: str
    subsystems: tuple[str, ...]
    region: str | None
    tenant: str | None
    severity: str | None
    starts_at: str | None
    #: One of :data:`STATES`.
    status: str
    #: Claims so far, the current one included.
    attempts: int
    #: Chosen by the worker before the first attempt, so a rerun writes the same bundle folder.
    run_id: str | None
    bundle: str | None
    exit_code: int | None
    #: The last failure (kept while a retry waits), else None.
    error: str | None
    created_at: str
    updated_at: str
    #: The :class:`RunRequest` as a dict; :meth:`run_request` rebuilds it.
    request: dict[str, Any]

    def run_request(self) -> RunRequest:
        return RunRequest.from_dict(self.request)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        request = json.loads(row["request"])
        return cls(
            id=row["id"],
            kind=row["kind"],
            incident_id=row["incident_id"],
            subsystems=tuple(request["subsystems"]),
            region=request["region"],
            tenant=request["tenant"],
            severity=request["severity"],
            starts_at=request["starts_at"],
            status=row["state"],
            attempts=row["attempts"],
            run_id=row["run_id"],
            bundle=row["bundle"],
            exit_code=row["exit_code"],
            error=row["error"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            request=request,
        )


@dataclass(frozen=True)
class Attachment:
    """One attempt to attach a job's evidence to a sink, successful or not."""

    sink: str
    ok: bool
    detail: str
    at: str


@dataclass(frozen=True)
class Resolution:
    """A resolved notification, kept against its incident for the recovery check to come."""

    id: int
    incident_id: str
    dedupe_key: str
    received_at: str
    request: dict[str, Any]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Resolution:
        request = json.loads(row["request"])
        return cls(row["id"], row["incident_id"], row["dedupe_key"], row["received_at"], request)
