"""One module per runbook Remediation Procedure; each builds a :class:`Plan` by reading only,
and says afterwards (``post_checks``) whether the procedure had its effect."""

from tenancy_diag.remediating.procedures import (
    controller_restart,
    migration_rollback,
    policy_cache_refresh,
    rate_limit,
    webhook_requeue,
)

#: runbook.yaml remediations key -> module
PROCEDURES = {
    "controller_restart": controller_restart,
    "webhook_requeue": webhook_requeue,
    "policy_cache_refresh": policy_cache_refresh,
    "api_rate_limit_adjustment": rate_limit,
    "migration_rollback": migration_rollback,
}
__all__ = ["PROCEDURES"]
