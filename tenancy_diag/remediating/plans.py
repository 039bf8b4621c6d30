"""What a remediation is, as data: the calls it makes, their rollbacks, the checks before.

A :class:`Plan` is built by reading only, so it can be shown whole before anything acts: each
:class:`Step` names the exact call (method, path, body) and the call that undoes it, or why
none is needed. The runbook's Incident Response Framework asks exactly that: reversibility,
and a command trace for the audit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tenancy_diag.errors import ConfigError
from tenancy_diag.evidence import REMEDIATION_PLAN_SCHEMA as PLAN_SCHEMA

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Call:
    """One call against a system: ``target`` is admin-api, kubernetes or sqs."""

    target: str
    method: str
    path: str
    body: Mapping[str, Any] = field(default_factory=dict)

    def command(self) -> list[str]:
        """The call as the audit log records it: target, method, path, body as JSON."""
        parts = [self.target, self.method, self.path]
        return [*parts, json.dumps(dict(self.body), sort_keys=True)] if self.body else parts

    def __str__(self) -> str:
        return " ".join(self.command())


@dataclass(frozen=True)
class Check:
    """A precondition (or a post-check): ``passed`` None when it could not be judged."""

    name: str
    passed: bool | None
    figure: str  # what was seen, e.g. "spec.replicas = 3"
    required: bool = True  # a failing required check refuses the plan

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "figure": self.figure,
            "required": self.required,
        }


@dataclass(frozen=True)
class Step:
    """A runbook step and the call that performs it; ``perform`` returns the answer's summary."""

    title: str
    call: Call
    perform: Callable[[], Mapping[str, Any]]
    rollback: Call | None = None
    #: Why there is no rollback, when there is none (never left blank for an acting step).
    no_rollback: str = ""
    #: Called after ``perform`` succeeded, before the next step; raises to stop the plan.
    settle: Callable[[], Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        # A reviewer undoing an incident reads the audit: a missing undo must say why.
        if self.rollback is None and not self.no_rollback.strip():
            raise ConfigError(
                f"step {self.title!r} has no rollback and does not say why; give it a rollback "
                "call or a no_rollback reason"
            )

    def rollback_text(self) -> str:
        return str(self.rollback) if self.rollback else f"none: {self.no_rollback}"


@dataclass
class Plan:
    """A remediation procedure for one scope, ready to show, refuse or run."""

    procedure: str  # runbook.yaml remediations key
    title: str
    incident: str
    scope: Mapping[str, Any]  # region, tenant, ... what it acts on
    preconditions: list[Check] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    #: Runbook steps not run by this notebook, with how to do them (e.g. verify in 5 minutes).
    followups: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Figures the plan read that the checks after it judge (e.g. messages it could not read).
    facts: dict[str, Any] = field(default_factory=dict)

    def blocking(self) -> list[Check]:
        """Required preconditions that failed or could not be judged."""
        return [c for c in self.preconditions if c.required and c.passed is not True]

    def checks_frame(self) -> pd.DataFrame:
        # pandas only here: the runner checks who may act without paying for it.
        import pandas as pd  # noqa: PLC0415

        rows = [
            {
                "precondition": c.name,
                "pass": {True: "pass", False: "FAIL", None: "no data"}[c.passed],
                "seen": c.figure,
                "required": c.required,
            }
            for c in self.preconditions
        ]
        return pd.DataFrame(rows, columns=["precondition", "pass", "seen", "required"])

    def calls_markdown(self) -> str:
        """Every call in full, with its undo: a table is cut to fit, this never is."""
        if not self.steps:
            return "_No call to make._"
        rows = ["| # | runbook step | call | undo |", "|---|---|---|---|"]
        previous = ""
        for number, step in enumerate(self.steps, start=1):
            # Long plans repeat one runbook step per call; naming it once reads better.
            title = _cell(step.title) if step.title != previous else "〃"
            previous = step.title
            undo = _cell(step.rollback_text())
            if step.rollback:
                undo = f"`{_cell(str(step.rollback))}`"
            rows.append(f"| {number} | {title} | `{_cell(str(step.call))}` | {undo} |")
        return f"**{len(self.steps)} call(s)**\n\n" + "\n".join(rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": PLAN_SCHEMA,
            "procedure": self.procedure,
            "incident": self.incident,
            "scope": dict(self.scope),
            "preconditions": [c.to_json() for c in self.preconditions],
            "steps": [
                {
                    "title": s.title,
                    "call": s.call.command(),
                    "rollback": s.rollback.command() if s.rollback else None,
                    "no_rollback": s.no_rollback or None,
                }
                for s in self.steps
            ],
            "followups": list(self.followups),
            "notes": list(self.notes),
            "facts": dict(self.facts),
        }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
