"""Whether a remediation may act: dry run by default, confirmed with the incident id, and
only when the runbook's preconditions hold."""

from __future__ import annotations

from dataclasses import dataclass

from tenancy_diag.errors import ParameterError, RemediationRefused
from tenancy_diag.remediating.plans import Plan


@dataclass(frozen=True)
class Guard:
    incident: str
    dry_run: bool = True
    confirm: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.dry_run, bool):
            raise ParameterError(
                f"dry_run {self.dry_run!r} is not a boolean; pass -p dry_run=true or false"
            )

    @property
    def acting(self) -> bool:
        return not self.dry_run

    def authorize(self, plan: Plan) -> None:
        """Raise :class:`RemediationRefused` unless a dry run, or confirmed and safe to act."""
        if self.dry_run:
            return
        if self.confirm != self.incident:
            raise RemediationRefused(
                f"confirm {self.confirm!r} is not the incident id {self.incident!r}; to act, "
                f"pass -p dry_run=false -p confirm={self.incident}"
            )
        blocking = plan.blocking()
        if blocking:
            why = "; ".join(
                f"{c.name}: {'failed' if c.passed is False else 'no data'} ({c.figure})"
                for c in blocking
            )
            raise RemediationRefused(
                f"{plan.title} will not act: precondition {why}; fix it, or choose another "
                "procedure"
            )
        if not plan.steps:
            raise RemediationRefused(
                f"{plan.title} has nothing to do for {dict(plan.scope)}; check the scope"
            )
