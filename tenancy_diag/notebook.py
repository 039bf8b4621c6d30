"""What a notebook cell calls: open a diagnosis from the parameters cell, show evidence, finish.

A notebook holds no logic: each cell is a call, a table, a plot, and a sentence.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import HTML, Markdown, display
from matplotlib.figure import Figure

from tenancy_diag import plugins
from tenancy_diag.analysis import dlq as dlq_analysis
from tenancy_diag.analysis.findings import Findings
from tenancy_diag.diagnosing import RECOVERY, connect, diagnosis_class
from tenancy_diag.diagnosing.steps import Diagnosis, DlqEvidence, StepResult
from tenancy_diag.diagnosing.verification import RecoveryVerification
from tenancy_diag.errors import ConfigError
from tenancy_diag.settings import notebook_fallbacks
from tenancy_diag.sources.registry import registry as source_kinds

#: Parameters every subsystem notebook declares, beside its thresholds and the endpoint of
#: each source it reads (a source kind's ``parameter``).
COMMON = (
    "incident_id",
    "regions",
    "tenant",
    "end",
    "lookback",
    "incident_start",
    "snapshot_dir",
    "replay_dir",
    "findings_path",
    "slo_window",
    "top_n",
)
_MAX_ROWS = 25


def open_diagnosis(subsystem: str, params: Mapping[str, Any]) -> Diagnosis:
    """The subsystem's diagnosis, built from a notebook's parameters (its ``globals()``)."""
    plugins.load()
    kind = diagnosis_class(subsystem)
    missing = [name for name in COMMON if name not in params]
    if not any(p in params for p in source_kinds.parameters()):
        missing.append("an endpoint parameter (" + ", ".join(source_kinds.parameters()) + ")")
    if missing:
        raise ConfigError(f"the parameters cell lacks {', '.join(missing)}; add them")
    params = {**params, **notebook_fallbacks(params, source_kinds.env_variables())}
    thresholds = {
        k: float(v)
        for k, v in params.items()
        if k.endswith(("_min", "_max")) and isinstance(v, int | float)
    }
    regions = params["regions"]
    ctx = connect(
        params["incident_id"],
        regions=[regions] if isinstance(regions, str) else regions,
        tenant=params["tenant"],
        end=params["end"],
        lookback=params["lookback"],
        incident_start=params["incident_start"],
        endpoints={
            p: str(params[p]) for p in source_kinds.parameters() if params.get(p) is not None
        },
        snapshot_dir=params["snapshot_dir"],
        replay_dir=params["replay_dir"],
        thresholds=thresholds,
        slo_window=params["slo_window"],
        top_n=int(params["top_n"]),
    )
    diagnosis: Diagnosis = kind(ctx)
    return diagnosis


def open_verification(params: Mapping[str, Any]) -> RecoveryVerification:
    """Verification After Recovery, built from its notebook's parameters (its ``globals()``)."""
    verification = open_diagnosis(RECOVERY, params)
    if not isinstance(verification, RecoveryVerification):
        raise ConfigError("the recovery diagnosis is not a RecoveryVerification; restore it")
    return verification.configure(
        audit_path=str(params.get("audit_path") or ""),
        verify_window=str(params.get("verify_window") or "15m"),
        thresholds=params.get("thresholds") or {},
    )


def show(*items: Any) -> None:
    """Display tables, figures, DLQ evidence and sentences the way an on-call reader needs them."""
    for item in items:
        if isinstance(item, list | tuple):
            show(*item)
        elif isinstance(item, str):
            display(Markdown(item))
        elif isinstance(item, StepResult):
            show(*item.shown)
        elif isinstance(item, Figure):
            display(item)
        elif isinstance(item, DlqEvidence):
            show(*_dlq_parts(item))
        elif isinstance(item, pd.DataFrame):
            display(_styled(item) if "pass" in item.columns else _bounded(item))
        elif item is not None:
            display(item)


def _bounded(df: pd.DataFrame) -> pd.DataFrame | str:
    if df.empty:
        return "_(nothing)_"
    return df.head(_MAX_ROWS)


def _styled(df: pd.DataFrame) -> Any:
    def colour(value: object) -> str:
        return {"FAIL": "background-color:#f8d7da", "pass": "background-color:#d1e7dd"}.get(
            str(value), ""
        )

    return df.style.map(colour, subset=["pass"]).format(precision=4).hide(axis="index")


def _dlq_parts(evidence: DlqEvidence) -> list[Any]:
    if evidence.depth.empty:
        return ["_No DLQ could be read._"]
    parts: list[Any] = ["**Queue depth**", evidence.depth]
    if evidence.sample.empty:
        return [*parts, "_The DLQs are empty._"]
    parts += [
        f"**Sample of {len(evidence.sample)} messages** (bodies redacted; none deleted or hidden)",
        dlq_analysis.summary(evidence.sample),
        dlq_analysis.readable(evidence.sample),
    ]
    if evidence.growth:
        grown = ", ".join(f"{r}: {n}" for r, n in sorted(evidence.growth.items()))
        parts.append(f"Messages that first failed within the SLO window: {grown}")
    return parts


def notes(diagnosis: Diagnosis) -> None:
    """Say which evidence is missing and why, instead of silently showing less."""
    lines = [f"- {n}" for n in diagnosis.notes]
    lines += [
        f"- **{kind}**: {state}"
        for kind, state in diagnosis.ctx.needed_sources().items()
        if state != "ok"
    ]
    if lines:
        show("**Evidence gaps**\n\n" + "\n".join(dict.fromkeys(lines)))


def finish(diagnosis: Diagnosis, findings: Findings, path: str | Path) -> Findings:
    """Write ``findings.json``, close the snapshot, and render the findings for a reader."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(findings.dumps(), encoding="utf-8")
    diagnosis.ctx.close()
    show(render(findings))
    return findings


def render(findings: Findings) -> Any:
    data = findings.to_json()
    colour = {
        "ok": "#198754",
        "degraded": "#fd7e14",
        "failing": "#dc3545",
        "unknown": "#6c757d",
        "error": "#6f42c1",
    }[findings.status]
    rows = [
        ("Status", f"<b style='color:{colour}'>{findings.status.upper()}</b>"),
        ("Severity", findings.severity or "none"),
        ("Summary", html.escape(findings.summary)),
        (
            "Missing evidence",
            "<br>".join(html.escape(m) for m in findings.missing) or "none",
        ),
        (
            "Patterns",
            "<br>".join(
                f"<b>{html.escape(p['id'])}</b> ({p['confidence']:.0%}): "
                + "; ".join(html.escape(e) for e in p["evidence"])
                for p in data["patterns"]
            )
            or "none",
        ),
        ("Regions", html.escape(", ".join(findings.regions)) or "none"),
        ("Tenants (most affected first)", html.escape(", ".join(findings.tenants[:20])) or "none"),
    ]
    for key, title in (("endpoints", "Offending endpoints"), ("client_ids", "Offending clients")):
        if data[key]:
            rows.append((title, html.escape(", ".join(data[key]))))
    if findings.jobs:
        rows.append(("Stuck jobs", html.escape(", ".join(j["job_id"] for j in findings.jobs))))
    if findings.actions:
        rows.append(
            (
                "What to do (runbook)",
                "<ol>" + "".join(f"<li>{html.escape(a)}</li>" for a in findings.actions) + "</ol>",
            )
        )
    if findings.escalation:
        esc = findings.escalation
        rows.append(
            (
                "Whom to page",
                html.escape(
                    f"{esc['primary']} (backup {esc['backup'] or 'none'}), "
                    f"then {esc['path']}; include " + ", ".join(esc["must_include"])
                ),
            )
        )
    body = "".join(
        f"<tr><th style='text-align:left;vertical-align:top'>{k}</th><td>{v}</td></tr>"
        for k, v in rows
    )
    return HTML(
        f"<table>{body}</table><details><summary>findings.json</summary><pre>"
        f"{html.escape(json.dumps(data, indent=2, default=str))}</pre></details>"
    )
