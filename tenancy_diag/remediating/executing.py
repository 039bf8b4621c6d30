"""Running a plan: refuse, show (dry run) or act step by step, auditing every call.

Acting stops at the first failed step: what ran is listed with its rollback, newest first,
because undoing in reverse order is the only order that is always safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from tenancy_diag.errors import RemediationRefused, TenancyDiagError, shorten
from tenancy_diag.evidence import REMEDIATION_SCHEMA as EXECUTION_SCHEMA
from tenancy_diag.remediating.auditing import AuditTrail, Line
from tenancy_diag.remediating.guarding import Guard
from tenancy_diag.remediating.plans import Plan


@dataclass
class StepOutcome:
    number: int
    title: str
    call: str
    state: str  # would call, done, failed, not run
    detail: str
    rollback: str
    #: What ``perform`` (and ``settle``) answered, for the checks after the plan to judge.
    answer: dict[str, Any] = field(default_factory=dict)


@dataclass
class Execution:
    plan: Plan
    dry_run: bool
    outcomes: list[StepOutcome] = field(default_factory=list)
    failed: str | None = None

    @property
    def done(self) -> list[StepOutcome]:
        return [o for o in self.outcomes if o.state == "done"]

    def frame(self) -> pd.DataFrame:
        columns = ["#", "step", "call", "state", "detail", "rollback"]
        rows = [[o.number, o.title, o.call, o.state, o.detail, o.rollback] for o in self.outcomes]
        return pd.DataFrame(rows, columns=columns)

    def markdown(self) -> str:
        """What happened, for a reader: a dry run's one sentence, or each call's outcome."""
        if self.dry_run:
            return (
                f"**Dry run**: none of the {len(self.outcomes)} call(s) above was made; each is "
                "in the audit log as a dry run."
            )
        rows = ["| # | state | result | undo |", "|---|---|---|---|"]
        for o in self.outcomes:
            cells = [str(o.number), o.state, o.detail, o.rollback]
            rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        undo = self.rollbacks()
        tail = "\n\n**To undo, newest first:**\n" + "\n".join(f"- {u}" for u in undo)
        return "\n".join(rows) + (tail if undo else "")

    def rollbacks(self) -> list[str]:
        """What undoes the steps that ran, in the order to run it."""
        return [f"step {o.number}: {o.rollback}" for o in reversed(self.done)]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": EXECUTION_SCHEMA,
            "plan": self.plan.to_json(),
            "dry_run": self.dry_run,
            "failed": self.failed,
            "outcomes": [vars(o) for o in self.outcomes],
            "rollbacks": self.rollbacks(),
        }


def execute(plan: Plan, guard: Guard, trail: AuditTrail) -> Execution:
    """Show or perform ``plan``; raises :class:`RemediationRefused` (audited) when refused.

    Each real call is audited ahead: its intent is on disk before it is made, its result after.
    """
    try:
        guard.authorize(plan)
    except RemediationRefused as e:
        trail.record(Line("authorize", None, f"refused: {e}", dry_run=guard.dry_run, ok=False))
        raise
    run = Execution(plan, guard.dry_run)
    if guard.acting and plan.notes:
        # The runbook wants the key and the root cause in the incident's notes: the audit log
        # is the note that cannot be forgotten.
        trail.record(Line("notes", None, "; ".join(plan.notes), dry_run=False))
    reverts = bool(plan.scope.get("rollback"))
    for number, step in enumerate(plan.steps, start=1):
        outcome = StepOutcome(number, step.title, str(step.call), "", "", step.rollback_text())
        run.outcomes.append(outcome)
        line = Line(
            step.title,
            step.call,
            "",
            rollback=step.rollback,
            no_rollback=step.no_rollback,
            dry_run=guard.dry_run,
            reverts=reverts,
        )
        if guard.dry_run:
            outcome.state, outcome.detail = "would call", "dry run: not called"
            trail.record(replace(line, result=outcome.detail))
            continue
        if run.failed:
            # Never reached, so never called: nothing to audit.
            outcome.state, outcome.detail = "not run", f"stopped after step {run.failed}"
            continue
        call_id = trail.intend(line)
        _perform(step, outcome, run)
        result = outcome.detail if outcome.state != "done" else f"ok: {outcome.detail}"
        trail.answer(replace(line, result=result, ok=outcome.state != "failed"), call_id)
    return run


def _perform(step: Any, outcome: StepOutcome, run: Execution) -> None:
    try:
        answer = dict(step.perform())
        if step.settle is not None:
            answer |= dict(step.settle())
    except TenancyDiagError as e:
        outcome.state, outcome.detail = "failed", shorten(e, 300)
        run.failed = str(outcome.number)
        return
    outcome.state, outcome.answer = "done", answer
    outcome.detail = shorten(", ".join(f"{k}={v}" for k, v in answer.items()) or "ok", 300)
