"""Whether a remediation may act: dry run by default, confirmed with the incident id exactly,
by someone the audit can name, and only when the runbook's preconditions hold.

The exact rule, here and in the runner (which checks the command line before any kernel
starts): acting takes ``dry_run`` False and ``confirm`` equal to the incident id, character for
character; nothing is trimmed or read loosely, because a confirmation that forgives a typo
forgives a wrong incident too.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenancy_diag.errors import ParameterError, RemediationRefused
from tenancy_diag.remediating.plans import Plan
from tenancy_diag.settings import ENV_ACTOR

#: What settings.actor() answers when neither TENANCY_DIAG_ACTOR nor a login name is set.
UNKNOWN_ACTOR = "unknown"
_MAX_ACTOR_CHARS = 200


def how_to_act(incident: str) -> str:
    """The words that act, as the refusals quote them."""
    return f"to act, type exactly: -p dry_run=false -p confirm={incident}"


def check_actor(name: str) -> str:
    """``name`` when it can stand in the audit as who acted; ParameterError saying how to set
    one when it is blank, unknown or not a single printable line."""
    if not name.strip():
        raise ParameterError(
            f"{ENV_ACTOR} is blank ({name!r}); acting is audited with who acted: set it to your "
            "name, e.g. alice@example.com"
        )
    if name == UNKNOWN_ACTOR:
        raise ParameterError(
            f"acting needs to know who acts, for the audit: set {ENV_ACTOR} to your name"
        )
    if name != name.strip() or not name.isprintable() or len(name) > _MAX_ACTOR_CHARS:
        raise ParameterError(
            f"{ENV_ACTOR} {name!r} is not one printable line of at most {_MAX_ACTOR_CHARS} "
            "characters without surrounding spaces; set it to your name"
        )
    return name


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
        if not isinstance(self.confirm, str):
            raise ParameterError(
                f"confirm {self.confirm!r} is not text; {how_to_act(self.incident)}"
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
                f"confirm {self.confirm!r} is not the incident id {self.incident!r} exactly; "
                + how_to_act(self.incident)
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
