"""Policy cache refresh: the admin API's invalidate call for one region (and key), only when
the policy service answers (flushing a cache in front of a dead service turns every hit into
a timeout), with the cache key and root cause written into the incident's audit."""

from __future__ import annotations

from functools import partial

from tenancy_diag.remediating.connecting import Session
from tenancy_diag.remediating.executing import Execution
from tenancy_diag.remediating.plans import Check, Plan, Step
from tenancy_diag.remediating.procedures.checks import region_value, slo, threshold_check

PROCEDURE = "policy_cache_refresh"


def plan(session: Session, *, region: str, key: str = "", note: str = "") -> Plan:
    book = session.runbook.remediations[PROCEDURE]
    up = region_value(session, "policy.service_up", region)
    latency = region_value(session, "policy.latency_quantile", region, quantile="0.99", window="5m")
    body = {"region": region, **({"key": key} if key else {})}
    call = session.admin_call("invalidate_policy_cache", body)
    result = Plan(PROCEDURE, book.title, session.incident, {"region": region, "key": key or None})
    result.preconditions = [
        Check(
            "policy service reachable (up == 1 on every instance)",
            None if up is None else up >= 1,
            "no data (is --prometheus-url given?)" if up is None else f"min(up) = {up:g}",
        ),
        Check(
            "cache key and root cause documented (parameter note)",
            bool(note.strip()),
            note.strip() or "note is empty",
        ),
        threshold_check(
            "p99 evaluation latency before the refresh (for comparison)",
            latency,
            slo(session, "policy", "latency_p99_ms_max"),
            "<",
            " ms",
            required=False,
        ),
    ]
    result.steps.append(
        Step(
            title=book.steps[0],
            call=call,
            perform=partial(session.send, call),
            no_rollback=(
                "an emptied cache refills from the policy service on the next evaluations; "
                "expect a burst of misses"
            ),
        )
    )
    result.notes = [f"cache key: {key or '(whole region)'}; root cause: {note.strip() or '?'}"]
    result.followups = [
        f"{book.steps[1]} See the post-check below; run policy_evaluation again in 5 minutes.",
        f"{book.steps[2]} Done: the note is in the audit log with the call.",
    ]
    return result


def post_checks(session: Session, plan: Plan, run: Execution) -> list[Check]:
    region = str(plan.scope["region"])
    return [
        threshold_check(
            "next evaluation latency normal (p99 over 5m)",
            region_value(session, "policy.latency_quantile", region, quantile="0.99", window="5m"),
            slo(session, "policy", "latency_p99_ms_max"),
            "<",
            " ms",
        )
    ]
