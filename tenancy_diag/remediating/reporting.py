"""A remediation's findings: what it planned or did, what the checks after it say, what next.

Written as ``evidence.FINDINGS_SCHEMA`` like every notebook's, so the run summary, the service
and the postmortem read remediations as they read diagnoses; the plan, each call's outcome and
the rollbacks go in ``details``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tenancy_diag.analysis.findings import Findings, Status
from tenancy_diag.remediating.connecting import Session
from tenancy_diag.remediating.executing import Execution
from tenancy_diag.remediating.plans import Check


def subsystem_of(session: Session) -> str:
    for pattern in session.runbook.patterns.values():
        if pattern.remediation == session.procedure:
            return pattern.subsystem
    return session.procedure


def findings(session: Session, run: Execution, post: Sequence[Check]) -> Findings:
    plan = run.plan
    status, summary = _verdict(session, run, post)
    return Findings(
        subsystem=subsystem_of(session),
        incident=session.incident,
        status=status,
        summary=summary,
        regions=[str(plan.scope["region"])] if plan.scope.get("region") else [],
        tenants=[str(plan.scope["tenant"])] if plan.scope.get("tenant") else [],
        actions=[*plan.followups, *run.rollbacks()],
        details={
            "remediation": run.to_json(),
            "post_checks": [c.to_json() for c in post],
            "actor": session.trail.actor,
        },
    )


def finish(session: Session, run: Execution, post: Sequence[Check], path: str | Path) -> Findings:
    """Write the findings to ``path`` (the runner's findings_path) and return them."""
    result = findings(session, run, post)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(result.dumps() + "\n", encoding="utf-8")
    return result


def _verdict(session: Session, run: Execution, post: Sequence[Check]) -> tuple[Status, str]:
    title, n = run.plan.title, len(run.plan.steps)
    if run.dry_run:
        blocking = run.plan.blocking()
        if blocking:
            names = ", ".join(c.name for c in blocking)
            return "degraded", f"{title}, dry run: would refuse, precondition not met: {names}."
        return "ok", (
            f"{title}, dry run: {n} call(s) planned, preconditions hold, nothing changed; to act "
            f"run again with -p dry_run=false -p confirm={session.incident}."
        )
    if run.failed:
        return "failing", (
            f"{title}: step {run.failed} failed after {len(run.done)} of {n} step(s) ran; "
            "roll back with the calls listed, newest first."
        )
    failing = [c.name for c in post if c.passed is False]
    if failing:
        return "degraded", (
            f"{title}: {n} call(s) done; not yet effective: {', '.join(failing)}; check again "
            "in five minutes."
        )
    return "ok", f"{title}: {n} call(s) done by {session.trail.actor}; checks after it pass."
