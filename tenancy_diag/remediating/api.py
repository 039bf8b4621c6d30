"""What a remediation notebook's cells call: open a session, plan, act (or not), check, finish."""

from __future__ import annotations

from typing import Any

from tenancy_diag.errors import ParameterError
from tenancy_diag.remediating.connecting import Session, open_session
from tenancy_diag.remediating.executing import Execution, execute
from tenancy_diag.remediating.plans import Check, Plan
from tenancy_diag.remediating.procedures import PROCEDURES
from tenancy_diag.remediating.reporting import finish

#: Scope parameters a procedure cannot do without.
REQUIRED = {
    "controller_restart": ("region",),
    "webhook_requeue": ("region",),
    "policy_cache_refresh": ("region",),
    "api_rate_limit_adjustment": ("region",),
    "migration_rollback": ("tenant",),
}


def plan(session: Session, **scope: Any) -> Plan:
    """The session's procedure planned for ``scope`` (its notebook's parameters), reading only."""
    for name in REQUIRED[session.procedure]:
        if not str(scope.get(name) or "").strip():
            raise ParameterError(
                f"{session.procedure} needs {name}; pass -p {name}=... (e.g. "
                + ("us-east-1" if name == "region" else "t-000123")
                + ")"
            )
    built: Plan = PROCEDURES[session.procedure].plan(session, **scope)
    return built


def act(session: Session, planned: Plan) -> Execution:
    """Dry run (the default) or act, as the session's guard says; every call audited."""
    return execute(planned, session.guard, session.trail)


def post_checks(session: Session, planned: Plan, run: Execution) -> list[Check]:
    """After acting, whether it worked; after a dry run, nothing to check."""
    if run.dry_run or run.failed:
        return []
    checks: list[Check] = PROCEDURES[session.procedure].post_checks(session, planned, run)
    return checks


__all__ = ["act", "finish", "open_session", "plan", "post_checks"]
