"""The runner's rules for notebooks that act (they declare ``dry_run``: the remediations).

**Confirmation**, checked before any kernel starts: a run acts only when the command line
carries the literal ``-p dry_run=false`` and ``-p confirm=<incident id>``, the id typed exactly
as ``--incident`` was. Nothing read loosely counts: YAML reads ``False``, ``no`` and ``off`` as
false and strips ``INC-1 `` to ``INC-1``, and a ``-f`` parameters file is written once and
reused, so a file that acts would act on every run that names it. The library's guard checks
the same rule again in the kernel.

**Run ids**: a run id names one run. A dry run and an act never share one, and an act is never
"reused": the runner's retry rule (an intact bundle of that id is returned as is) would
otherwise answer an act with a dry run's bundle, having done nothing.

**Exit code**: a remediation that ran to its end may still have failed a step or a check after
it; :func:`problems` names each, so the runner exits ``FAILED`` and says which.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tenancy_diag import settings
from tenancy_diag.errors import ParameterError
from tenancy_diag.remediating.guarding import check_actor, how_to_act
from tenancy_diag.running.bundles import Bundle, finished_bundle, read_manifest
from tenancy_diag.running.coercing import Given
from tenancy_diag.running.execution import NotebookOutcome
from tenancy_diag.running.naming import check_name, inside

#: The parameter every notebook that acts declares; its presence is what makes one.
DRY_RUN = "dry_run"
CONFIRM = "confirm"
#: The only texts ``-p dry_run=`` takes for a notebook that acts.
ACT, DRY = "false", "true"
_COMMAND_LINE = "-p"


def acts(declared: Iterable[str]) -> bool:
    """Whether a notebook declaring these parameters is one that acts."""
    return DRY_RUN in set(declared)


def confirmed(given: Mapping[str, Given], incident: str) -> bool:
    """True when ``given`` asks, strictly, to act on ``incident``; False for a dry run.

    ParameterError, saying exactly what to type, for anything in between.
    """
    how = how_to_act(incident)
    for name in (DRY_RUN, CONFIRM):
        value = given.get(name)
        if value is not None and value.origin != _COMMAND_LINE:
            raise ParameterError(
                f"{name} comes from {value.origin}; acting is confirmed on the command line "
                f"only, so a file cannot act; {how}"
            )
    dry, confirm = given.get(DRY_RUN), given.get(CONFIRM)
    if dry is None or dry.text == DRY:
        return False
    if dry.text != ACT:
        raise ParameterError(f"dry_run {dry.text!r} is neither 'true' nor 'false'; {how}")
    if confirm is None:
        raise ParameterError(f"dry_run=false needs confirm; {how}")
    if confirm.text != incident:
        raise ParameterError(
            f"confirm {confirm.text!r} is not the incident id {incident!r} exactly; {how}"
        )
    check_actor(settings.actor())
    return True


def pin(
    parameters: Mapping[str, Any], declared: Iterable[str], acting: bool, incident: str
) -> dict[str, Any]:
    """A notebook's typed parameters with ``dry_run`` and ``confirm`` as decided above, so a
    notebook whose own defaults differ cannot act unconfirmed."""
    decided = {DRY_RUN: not acting, CONFIRM: incident if acting else ""}
    names = set(declared)
    return {**parameters, **{k: v for k, v in decided.items() if k in names}}


def reusable_bundle(
    out: Path, incident: str, run_id: str, *, acts: bool, acting: bool
) -> Bundle | None:
    """The intact bundle ``run_id`` already names, to return instead of running again; None
    when there is none yet (or, for notebooks that do not act, it is not intact).

    For notebooks that act, only a dry run stands on an earlier dry run's bundle; anything else
    is a ParameterError naming a fresh run id, since reusing the id could hide an act.
    """
    if not acts:
        return finished_bundle(out, incident, run_id)
    root = out / check_name(incident, "incident id") / check_name(run_id, "run id")
    if not inside(out, root, "run id").exists():
        return None
    done = finished_bundle(out, incident, run_id)
    was = _what(done)
    if not acting and was == "a dry run":
        return done
    fresh = f"{run_id}-{'act' if acting else 'dry'}-{secrets.token_hex(3)}"
    raise ParameterError(
        f"run id {run_id} already names {was} of {incident}; "
        + ("acting never reuses a bundle" if acting else "a dry run never stands for it")
        + f", so pass a fresh one, e.g. --run-id {fresh} (or none)"
    )


def _what(bundle: Bundle | None) -> str:
    if bundle is None:
        return "an interrupted or damaged run (no intact bundle)"
    parameters = read_manifest(bundle.root).get("parameters") or {}
    acted = any(isinstance(p, dict) and p.get(DRY_RUN) is False for p in parameters.values())
    return "an act" if acted else "a dry run"


def problems(outcomes: Iterable[NotebookOutcome]) -> list[str]:
    """Why each notebook that acted, and ran to its end, did not do what it set out to: a step
    that failed, a check after it that failed or could not be judged."""
    found: list[str] = []
    for outcome in outcomes:
        details = outcome.findings.get("details") if outcome.ran else None
        if not isinstance(details, dict) or not isinstance(details.get("remediation"), dict):
            continue
        if details["remediation"].get("dry_run") is not False:
            continue
        found.extend(f"{outcome.name}: {problem}" for problem in _problems(details))
    return found


def _problems(details: Mapping[str, Any]) -> list[str]:
    remediation = details["remediation"]
    found: list[str] = []
    if remediation.get("failed"):
        steps = [o for o in remediation.get("outcomes") or [] if isinstance(o, dict)]
        failed = next((o for o in steps if o.get("state") == "failed"), {})
        found.append(f"step {remediation['failed']} failed: {failed.get('detail', '?')}")
    for check in details.get("post_checks") or []:
        if not isinstance(check, dict) or check.get("passed") is True:
            continue
        verdict = "failed" if check.get("passed") is False else "has no data"
        found.append(f"post-check {check.get('name')} {verdict} ({check.get('figure')})")
    return found
