"""What a notebook cell calls: open a diagnosis from the parameters cell, show evidence, finish.

A notebook holds no logic: each cell is a call, a table, a plot, and a sentence. Tables are
shown for a reader: every column says its unit, numbers read "10,000 ms" or "1.2 %", text is
never cut (pandas would cut it at 50 characters), and the index is hidden.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import HTML, Markdown, display
from matplotlib.figure import Figure

from tenancy_diag import plugins
from tenancy_diag.analysis import dlq as dlq_analysis
from tenancy_diag.analysis.findings import Findings
from tenancy_diag.analysis.frames import VALUE
from tenancy_diag.analysis.quantities import measure, number, quantity, unit_of
from tenancy_diag.diagnosing import RECOVERY, connect, diagnosis_class
from tenancy_diag.diagnosing.steps import Diagnosis, DlqEvidence, StepResult
from tenancy_diag.diagnosing.verification import RecoveryVerification
from tenancy_diag.errors import ConfigError
from tenancy_diag.settings import lab_mode, notebook_fallbacks
from tenancy_diag.sources.registry import registry as source_kinds
from tenancy_diag.sources.snapshots import INDEX_FILE

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
#: A table with more rows than this is folded under its first line, so the steps after it
#: stay within reach.
_FOLDED_ROWS = 10
#: Column-name endings that say a column's unit; ratios are shown as percentages.
_SUFFIX_UNITS = (
    ("_ratio", "ratio"),
    ("share", "ratio"),
    ("_ms", "ms"),
    ("_minutes", "min"),
    ("_seconds", "s"),
)
_RESULT_COLOURS = {"FAIL": "background-color:#f8d7da", "pass": "background-color:#d1e7dd"}


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
    _move_last_recording_aside(str(params["snapshot_dir"]))
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


def _move_last_recording_aside(snapshot_dir: str) -> None:
    """In the lab a notebook runs again and again, and a snapshot folder takes one recording:
    the last run's moves to ``<folder>.1`` (then ``.2``...), so the folder beside the findings
    always holds the latest run's calls. Headless runs record into a new folder every time."""
    folder = Path(snapshot_dir)
    if not snapshot_dir or not lab_mode() or not folder.is_dir():
        return
    if not (folder / INDEX_FILE).exists() and not any(folder.glob("*/*.json")):
        return
    n = 1
    while (aside := folder.with_name(f"{folder.name}.{n}")).exists():
        n += 1
    folder.rename(aside)


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
            show(*table(item))
        elif item is not None:
            display(item)


def table(df: pd.DataFrame, title: str = "") -> list[Any]:
    """``df`` as a reader's table: SLO rows as value against target, other frames with units
    in their headers and numbers formatted; the first rows only, saying how many there are."""
    if df.empty:
        return [f"{title}: _(nothing)_" if title else "_(nothing)_"]
    shown = df.head(_MAX_ROWS)
    styler = _slo_table(shown) if {"pass", "threshold", "op"} <= set(df.columns) else None
    styler = styler if styler is not None else _plain_table(shown)
    more = f" (first {_MAX_ROWS} of {len(df)} rows)" if len(df) > _MAX_ROWS else ""
    if len(shown) > _FOLDED_ROWS:
        summary = html.escape(title or f"{len(df)} rows") + more
        return [HTML(f"<details><summary>{summary}</summary>{styler.to_html()}</details>")]
    return [*([f"**{title}**{more}"] if title or more else []), styler]


def _plain_table(df: pd.DataFrame) -> Any:
    out = pd.DataFrame(index=df.index)
    for column in df.columns:
        header, cells = _column(str(column), df[column], measure(df))
        out[header] = cells
    return _styler(out)


def _column(name: str, values: pd.Series, measured: str) -> tuple[str, pd.Series]:
    """A column's header with its unit, and its cells as text."""
    unit = ""
    if name == VALUE and measured != VALUE:
        name, unit = measured, unit_of(measured)
    else:
        unit = next((u for suffix, u in _SUFFIX_UNITS if name.endswith(suffix)), "")
    if unit == "ratio":
        name = f"{name.removesuffix(' ratio')} (%)" if name != "ratio" else "ratio (%)"
        return name, values.map(lambda v: _cell(v, lambda x: number(x * 100)))
    if unit and f"({unit})" not in name and not name.endswith("/s"):
        name = f"{name} ({unit})"
    if pd.api.types.is_datetime64_any_dtype(values):
        return name, values.map(lambda v: "" if pd.isna(v) else f"{v:%Y-%m-%d %H:%M:%S} UTC")
    if pd.api.types.is_integer_dtype(values):
        # Counts and identifiers alike (a DLQ sequence number takes no separator).
        return name, values.map(lambda v: "" if pd.isna(v) else str(int(v)))
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return name, values.map(lambda v: _cell(v, number))
    return name, values.map(_text)


def _text(value: object) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, list | tuple | set):
        return ", ".join(str(v) for v in value)
    return str(value)


def _cell(value: object, text: Callable[[float], str]) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return ""
    return text(float(value))  # type: ignore[arg-type]


def _slo_table(df: pd.DataFrame) -> Any:
    rows = []
    for row in df.to_dict("records"):
        value = None if pd.isna(row["value"]) else float(row["value"])
        unit = str(row.get("unit") or "")
        rows.append(
            {
                "SLO": row["name"],
                "region": row["region"],
                "measured": quantity(value, unit),
                "target": f"{row['op']} {quantity(float(row['threshold']), unit)}",
                "result": row["pass"],
            }
        )
    shown = pd.DataFrame(rows, columns=["SLO", "region", "measured", "target", "result"])
    return _styler(shown).map(lambda v: _RESULT_COLOURS.get(str(v), ""), subset=["result"])


def _styler(df: pd.DataFrame) -> Any:
    # A fixed id instead of pandas' random one: the same table renders to the same HTML, so a
    # rerun's notebook and nbval's golden copies compare equal.
    digest = hashlib.sha256(df.to_json(date_format="iso").encode()).hexdigest()[:8]
    return df.style.hide(axis="index").set_uuid(f"td{digest}")


def _dlq_parts(evidence: DlqEvidence) -> list[Any]:
    if evidence.depth.empty:
        return ["_No DLQ could be read._"]
    parts: list[Any] = [*table(evidence.depth, "Queue depth (messages)")]
    if evidence.sample.empty:
        return [*parts, "_The DLQs are empty._"]
    parts += [
        f"**Sample of {len(evidence.sample)} messages** (bodies redacted; none deleted or hidden)",
        dlq_analysis.summary(evidence.sample),
        *table(dlq_analysis.readable(evidence.sample), "The sampled messages"),
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
        ("Tenants (most affected first)", _tenants(findings) or "none"),
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
        f"<tr><th style='text-align:left;vertical-align:top'>{k}</th>"
        f"<td style='text-align:left'>{v}</td></tr>"
        for k, v in rows
    )
    return HTML(
        f"<table>{body}</table><details><summary>findings.json</summary><pre>"
        f"{html.escape(json.dumps(data, indent=2, default=str))}</pre></details>"
    )


def _tenants(findings: Findings, shown: int = 20) -> str:
    items = []
    for tenant in findings.tenants[:shown]:
        figure = findings.tenant_figures.get(tenant)
        items.append(html.escape(f"{tenant} ({figure})" if figure else tenant))
    more = len(findings.tenants) - shown
    return "<br>".join(items) + (f"<br>… and {more} more" if more > 0 else "")
