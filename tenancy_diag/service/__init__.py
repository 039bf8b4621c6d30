"""The alert-driven service: webhooks in, durable jobs, notebook runs, evidence attached.

intake     webhook bodies -> RunRequest, or a Rejection carrying its 4xx
store      the durable SQLite queue (jobs, attachments, resolutions)
jobs       the plain records the store hands back
http       the receiver, an ASGI app (POST /alerts, /incidents; GET /healthz, /metrics,
           /openapi.json)
listening  the socket and the server it runs on (uvicorn), with deadlines and a connection cap
limits     what one client may cost: body size, deadlines, connections
telemetry  the service's own Prometheus metrics
retention  bounded disk: attached bundles and attempts pruned by age and size
"""

from __future__ import annotations

from tenancy_diag.service.http import configure_logging, make_app, read_token
from tenancy_diag.service.intake import Rejection, RunRequest, parse_alertmanager, parse_incident
from tenancy_diag.service.jobs import Attachment, Job, Resolution
from tenancy_diag.service.limits import Limits
from tenancy_diag.service.store import QueueFull, Store, StoreError, UnknownJob
from tenancy_diag.service.telemetry import Telemetry

__all__ = [
    "Attachment",
    "Job",
    "Limits",
    "QueueFull",
    "Rejection",
    "Resolution",
    "RunRequest",
    "Store",
    "StoreError",
    "Telemetry",
    "UnknownJob",
    "configure_logging",
    "make_app",
    "parse_alertmanager",
    "parse_incident",
    "read_token",
]
