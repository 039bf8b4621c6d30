"""The alert-driven service: webhooks in, durable jobs, notebook runs, evidence attached.

intake     webhook bodies -> RunRequest, or a Rejection carrying its 4xx
store      the durable SQLite queue (jobs, attachments, resolutions)
jobs       the plain records the store hands back
http       the receiver (POST /alerts, POST /incidents, GET /healthz, GET /metrics)
telemetry  the service's own Prometheus metrics
"""

from __future__ import annotations

from tenancy_diag.service.http import configure_logging, make_handler, read_token
from tenancy_diag.service.intake import Rejection, RunRequest, parse_alertmanager, parse_incident
from tenancy_diag.service.jobs import Attachment, Job, Resolution
from tenancy_diag.service.store import QueueFull, Store, StoreError, UnknownJob
from tenancy_diag.service.telemetry import Telemetry

__all__ = [
    "Attachment",
    "Job",
    "QueueFull",
    "Rejection",
    "Resolution",
    "RunRequest",
    "Store",
    "StoreError",
    "Telemetry",
    "UnknownJob",
    "configure_logging",
    "make_handler",
    "parse_alertmanager",
    "parse_incident",
    "read_token",
]
