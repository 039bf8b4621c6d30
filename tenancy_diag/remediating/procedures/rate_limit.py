"""API rate limit adjustment: raise the burst multiplier through the admin override, with its
reason and expiry recorded; ``rollback=True`` puts the region back to its default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from tenancy_diag.errors import ConfigError, SourceError
from tenancy_diag.remediating.connecting import Session
from tenancy_diag.remediating.executing import Execution
from tenancy_diag.remediating.plans import Call, Check, Plan, Step
from tenancy_diag.remediating.procedures.checks import region_value, slo, threshold_check
from tenancy_diag.times import iso, parse_duration

PROCEDURE = "api_rate_limit_adjustment"
#: How long the rollback call's own override lasts: it sets the default, so it may lapse.
ROLLBACK_EXPIRY = timedelta(hours=1)


def plan(
    session: Session,
    *,
    region: str,
    burst_multiplier: float = 2.0,
    reason: str = "",
    expires_in: str = "2h",
    rollback: bool = False,
) -> Plan:
    book = session.runbook.remediations[PROCEDURE]
    limits = session.runbook.automation
    current, default = _current(session, region)
    scope = {"region": region, "rollback": rollback}
    result = Plan(PROCEDURE, book.title, session.incident, scope)
    ratio = region_value(session, "api.ratio_429", region, window="5m")
    seen = threshold_check(
        "429 share of requests (why raise)",
        ratio,
        slo(session, "api", "ratio_429_max"),
        "<",
        "",
        required=False,
    )
    if rollback:
        result.preconditions = [
            Check(
                "an override is in force",
                None if current is None else current != default,
                f"burst multiplier {_fmt(current)} (default {default:g})",
            ),
            seen,
        ]
        call = _override(session, region, default, f"rollback for {session.incident}")
        result.steps.append(
            Step(book.steps[2], call, partial(session.send, call), no_rollback=_AGAIN)
        )
        return result
    expiry = parse_duration(expires_in, "expires_in")
    result.preconditions = [
        Check("reason recorded", bool(reason.strip()), reason.strip() or "reason is empty"),
        Check(
            f"expiry within {limits.max_override_hours:g} h",
            timedelta(0) < expiry <= timedelta(hours=limits.max_override_hours),
            f"expires_in = {expires_in}",
        ),
        Check(
            f"multiplier above the current one and at most {limits.max_burst_multiplier:g}",
            None if current is None else current < burst_multiplier <= limits.max_burst_multiplier,
            f"{_fmt(current)} -> {burst_multiplier:g}",
        ),
        seen,
    ]
    # The override starts when the call is made, whatever window the evidence looked at.
    expires_at = iso(datetime.now(UTC).replace(microsecond=0) + expiry)
    call = _override(session, region, burst_multiplier, reason.strip(), expires_at)
    undo = _override(session, region, current if current is not None else default, "rollback")
    result.steps.append(Step(book.steps[0], call, partial(session.send, call), rollback=undo))
    result.notes = [
        f"reason: {reason.strip() or '?'}; expected rollback by {expires_at} (the override "
        "lapses then)"
    ]
    result.followups = [
        f"{book.steps[1]} Recorded in the audit log with the call.",
        f"{book.steps[2]} After closure, run this notebook with -p rollback=true.",
    ]
    return result


def post_checks(session: Session, plan: Plan, run: Execution) -> list[Check]:
    region = str(plan.scope["region"])
    current, default = _current(session, region)
    if plan.scope.get("rollback"):
        return [
            Check(
                "burst multiplier back to default",
                None if current is None else current == default,
                _fmt(current),
            )
        ]
    return [
        threshold_check(
            "429 share of requests",
            region_value(session, "api.ratio_429", region, window="5m"),
            slo(session, "api", "ratio_429_max"),
            "<",
            "",
        )
    ]


_AGAIN = "to raise the limit again, run this notebook without rollback"


def _override(
    session: Session, region: str, multiplier: float, reason: str, expires_at: str = ""
) -> Call:
    when = expires_at or iso(datetime.now(UTC).replace(microsecond=0) + ROLLBACK_EXPIRY)
    body: dict[str, Any] = {
        "region": region,
        "burst_multiplier": multiplier,
        "reason": reason,
        "expires_at": when,
    }
    return session.admin_call("override_rate_limit", body)


def _current(session: Session, region: str) -> tuple[float | None, float]:
    """(multiplier in force, the default): the admin API's view, else the gateway's gauge."""
    try:
        answer = session.send(session.admin_call("rate_limits"))
    except (SourceError, ConfigError):  # no such call here: fall back to the gauge
        answer = None
    if isinstance(answer, dict):
        default = float(answer.get("default_burst_multiplier", 1.0))
        for override in answer.get("overrides", []):
            if override.get("region") == region:
                return float(override["burst_multiplier"]), default
        return default, default
    return region_value(session, "api.burst_multiplier", region), 1.0


def _fmt(value: float | None) -> str:
    return "unknown" if value is None else f"{value:g}"
