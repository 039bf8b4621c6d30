"""The Tenancy admin API of the sandbox: tenants' lifecycle jobs, and the audited admin overrides.

Jobs are a pure function of the scenario, so they agree with the metrics and logs (a migration
hang shows the same tenants stuck in ``verify_checksums`` everywhere). The mutating calls only
change in-memory state and append to an audit trail (``GET /admin/audit``), which is what tests
and remediation notebooks check: who did what, when, with which arguments.

Beyond the contract's calls (shared/tenancy-signals.md), the sandbox serves the calls an operator
configures for remediations, so a test can read state before and after one:

==========================================  ================================================
``GET /admin/rate-limit``                   default multiplier and the overrides in force
``GET /admin/policy-cache``                 each region's invalidation history
``POST /tenants/{t}/jobs/{j}:pause``        pending/running -> paused (audited)
``POST /tenants/{t}/jobs/{j}:resume``       paused -> running (audited)
``GET /tenants/{t}/routing``                the database endpoint serving the tenant
``POST /tenants/{t}/routing:switch``        body ``{"endpoint": E}`` (audited)
``GET /tenants/{t}/checksums?endpoint=E``   per-table row counts and sha256 at one endpoint
==========================================  ================================================

A tenant with a stuck migration is served from its target ``db-<region>-b``, which lags the
source ``db-<region>-a`` on one table; every other tenant knows only ``db-<region>-a``.

Where things live, as in one of moto's backends: :mod:`.jobs` and :mod:`.state` (the state),
:mod:`.inputs` and :mod:`.calls` (what a call accepts and answers), :mod:`.routes` (the paths),
:mod:`.handler` (HTTP), :mod:`.errors` (error answers), :mod:`.running` (the process).

    python -m tenancy_diag.sandbox.admin_api --scenario-file F --token-file T --ready-file R
"""

from tenancy_diag.sandbox.admin_api.calls import (
    DEFAULT_BURST_MULTIPLIER,
    MAX_BURST_MULTIPLIER,
    MAX_REQUEUE_SPAN,
    Call,
)
from tenancy_diag.sandbox.admin_api.errors import ApiError
from tenancy_diag.sandbox.admin_api.handler import ACTOR_HEADER, MAX_BODY_BYTES, make_handler
from tenancy_diag.sandbox.admin_api.inputs import MAX_OVERRIDE
from tenancy_diag.sandbox.admin_api.jobs import tenant_jobs
from tenancy_diag.sandbox.admin_api.running import main
from tenancy_diag.sandbox.admin_api.state import (
    CHECKSUM_TABLES,
    PAUSABLE,
    RETRYABLE,
    AdminState,
    tenant_checksums,
)

__all__ = [
    "ACTOR_HEADER",
    "CHECKSUM_TABLES",
    "DEFAULT_BURST_MULTIPLIER",
    "MAX_BODY_BYTES",
    "MAX_BURST_MULTIPLIER",
    "MAX_OVERRIDE",
    "MAX_REQUEUE_SPAN",
    "PAUSABLE",
    "RETRYABLE",
    "AdminState",
    "ApiError",
    "Call",
    "main",
    "make_handler",
    "tenant_checksums",
    "tenant_jobs",
]
