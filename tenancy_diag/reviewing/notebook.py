"""What the postmortem notebook's cells call: open the report from the parameters, show a
section, export the documents, write findings.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from tenancy_diag import runbook
from tenancy_diag.analysis.findings import Findings, Status
from tenancy_diag.errors import ConfigError
from tenancy_diag.evidence import AUDIT_FILE
from tenancy_diag.reviewing import writing
from tenancy_diag.reviewing.gathering import gather_bundles, read_audit
from tenancy_diag.reviewing.postmortems import Postmortem, Request, assemble

#: Where bundles are looked for when the runner did not say (``tenancy-diag run``'s --out).
DEFAULT_EVIDENCE_DIR = "outputs"
_LISTS = ("corrective_actions", "prevention_tasks", "contributing_factors")


def open_postmortem(
    params: Mapping[str, Any], book: runbook.Runbook | None = None, now: datetime | None = None
) -> Postmortem:
    """The postmortem of ``incident_id`` from a notebook's parameters (its ``globals()``)."""
    for name in _LISTS:
        value = params.get(name, [])
        if not isinstance(value, list | tuple):
            raise ConfigError(
                f"parameter {name} is {type(value).__name__}; give a list, e.g. "
                '[{"action": "...", "owner": "...", "due": "2026-12-04"}]'
            )
    incident = str(params["incident_id"])
    evidence = Path(str(params.get("evidence_dir") or DEFAULT_EVIDENCE_DIR))
    audit_path = Path(str(params.get("audit_path") or evidence / AUDIT_FILE))
    own = str(params.get("bundle_dir") or "")
    request = Request(
        incident=incident,
        title=str(params.get("title") or ""),
        incident_commander=str(params.get("incident_commander") or ""),
        summary_note=str(params.get("summary_note") or ""),
        corrective_actions=list(params.get("corrective_actions") or []),
        prevention_tasks=list(params.get("prevention_tasks") or []),
        contributing_factors=list(params.get("contributing_factors") or []),
    )
    bundles = gather_bundles(evidence, incident, skip=Path(own) if own else None)
    return assemble(
        request, bundles, read_audit(audit_path, incident), book or runbook.default(), now=now
    )


def section(pm: Postmortem, name: str) -> str:
    """One report section as Markdown (redacted), for ``nb.show``."""
    return writing.section(pm, name)


def export(pm: Postmortem, bundle_dir: str, findings_path: str) -> dict[str, Path]:
    """``postmortem.md`` and ``.html`` in the run's bundle folder (beside findings when unset)."""
    folder = Path(bundle_dir) if bundle_dir else Path(findings_path).resolve().parent
    return writing.export(pm, folder)


def finish(pm: Postmortem, exports: Mapping[str, Path], findings_path: str | Path) -> Findings:
    """Write findings.json: ok when any bundle was found, unknown when none was.

    ``details["exports"]`` names the documents relative to their folder (the run's bundle),
    so the evidence stays valid wherever the bundle is copied.
    """
    status: Status = "ok" if pm.bundles else "unknown"
    rc = pm.root_cause
    summary = (
        f"Postmortem of {pm.request.incident}: {len(pm.trusted)} verified bundle(s)"
        f", {len(pm.untrusted)} failed verification; root cause {rc.pattern or 'not determined'}"
        f"; {len(pm.actions)} action item(s), {len(pm.flagged)} lacking an owner or due date."
    )
    if not pm.bundles:
        summary = f"Postmortem of {pm.request.incident}: no bundle of this incident was found."
    findings = Findings(
        subsystem="postmortem",
        incident=pm.request.incident,
        status=status,
        summary=summary,
        regions=list(pm.impact.regions),
        tenants=list(pm.impact.tenants),
        actions=[_action_line(a.action, a.owner, a.due) for a in pm.actions],
        escalation=pm.escalation,
        details={
            "exports": {kind: path.name for kind, path in exports.items()},
            "incident_severity": pm.impact.severity,
            "root_cause": rc.pattern,
            "retrospective_due": pm.retrospective_due.isoformat() if pm.retrospective_due else None,
            "bundles": {
                "verified": [b.run_id for b in pm.trusted],
                "failed_verification": {b.run_id: list(b.problems) for b in pm.untrusted},
            },
            "flagged_actions": [{"action": a.action, "flags": list(a.flags)} for a in pm.flagged],
        },
    )
    target = Path(findings_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(findings.dumps(), encoding="utf-8")
    return findings


def _action_line(action: str, owner: str, due: object) -> str:
    return f"{action} (owner: {owner or 'none'}, due: {due or 'none'})"
