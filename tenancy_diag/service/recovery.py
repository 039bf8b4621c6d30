"""When an incident's alerts resolve: record its closure, then queue the recovery check.

The runbook ends an incident with Verification After Recovery, whose last item is a closure
event in the audit log. A resolved notification is that event as far as the alerts can tell,
so the service writes it to ``OUT/audit.jsonl`` and enqueues a job running
``verification_after_recovery`` for the incident, which then checks everything else.

Alertmanager resends a notification it got no 2xx for, so both steps are idempotent: the
closure names the notification's dedupe key in its command and is not written twice, and the
job's dedupe key derives from the notification's, so the store returns the first job.

Order: the job takes its place in the queue first, held; a full queue refuses it (503) before
anything is written, so a refused notification closes nothing. Then the closure is written,
and only then is the job released, since the verification looks for the closure. A crash in
between leaves the job held; the notification, never answered 2xx, comes again and finishes.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from tenancy_diag.running.catalog import VERIFICATION_NOTEBOOK
from tenancy_diag.running.closing import close_incident, closure_records
from tenancy_diag.service.intake import RunRequest
from tenancy_diag.service.store import Store

#: The audit log's actor for what the service does on its own.
SERVICE_ACTOR = "tenancy-diag-service"
CLOSE_REASON = "alerts resolved"


def verification_request(resolved: RunRequest) -> RunRequest:
    """The job request that verifies recovery after ``resolved``; same input, same key."""
    key = hashlib.sha256(f"verify:{resolved.dedupe_key}".encode()).hexdigest()
    return replace(resolved, dedupe_key=key, subsystems=(VERIFICATION_NOTEBOOK,))


def closure_command(resolved: RunRequest) -> list[str]:
    return ["serve", "resolved", f"notification={resolved.dedupe_key}"]


def on_resolved(store: Store, out: Path, resolved: RunRequest) -> tuple[int, bool]:
    """Enqueue the verification (held), record the closure once, release; (job id, created)."""
    job, created = store.enqueue(verification_request(resolved), hold=True)
    command = closure_command(resolved)
    written = closure_records(out, resolved.incident_id)
    if not any(record.get("command") == command for record in written):
        close_incident(
            out, resolved.incident_id, CLOSE_REASON, actor=SERVICE_ACTOR, command=command
        )
    store.release(job)
    return job, created
