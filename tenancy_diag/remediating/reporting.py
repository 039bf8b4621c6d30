"""A remediation's findings: what it planned or did, what the checks after it say, what next.

Written as ``evidence.FINDINGS_SCHEMA`` like every notebook's, so the run summary, the service
and the postmortem read remediations as they read diagnoses; the plan, each call's outcome and
the rollbacks go in ``details``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tenancy_diag.analysis.findings import Findings, Status
from tenancy_diag.redacting import default_redactor
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
    # The calls' bodies and the servers' answers are quoted whole: redact them like the audit.
    redact = default_redactor().redact_data
    return Findings(
        subsystem=subsystem_of(session),
        incident=session.incident,
        status=status,
        summary=redact(summary),
        regions=[str(plan.scope["region"])] if plan.scope.get("region") else [],
        tenants=[str(plan.scope["tenant"])] if plan.scope.get("tenant") else [],
        actions=redact([*plan.followups, *run.rollbacks()]),
        details=redact(
            {
                "remediation": run.to_json(),
                "post_checks": [c.to_json() for c in post],
                "actor": session.trail.actor,
            }
        ),
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
    failing = [f"{c.name} ({c.figure})" for c in post if c.passed is False]
    # A check that could not be judged did not pass: unknown stays unknown on the way up.
    unknown = [c.name for c in post if c.passed is None]
    if failing or unknown:
        said = [f"not yet effective: {'; '.join(failing)}"] if failing else []
        said += [f"not checked, no data: {', '.join(unknown)}"] if unknown else []
        return "degraded", (
            f"{title}: {n} call(s) done; {'; '.join(said)}; check again in five minutes."
        )
    return "ok", f"{title}: {n} call(s) done by {session.trail.actor}; checks after it pass."
