"""The runbook's Verification After Recovery as verdicts: figures in, pass / FAIL / no data out.

Pure: the diagnosis layer reads Prometheus, SQS, Alertmanager and the audit log; this module
only judges what they answered, so every rule of the checklist has a unit test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from tenancy_diag.analysis import dlq
from tenancy_diag.analysis.findings import SloRow, Status
from tenancy_diag.errors import ConfigError
from tenancy_diag.journaling import AUDIT_SCHEMA, parse_jsonl

Verdict = Literal["pass", "FAIL", "no data"]
PASS: Verdict = "pass"  # noqa: S105 (a verdict, not a password)
FAIL: Verdict = "FAIL"
NO_DATA: Verdict = "no data"
#: The audit action ``tenancy-diag close`` (and the service on resolution) records.
CLOSE_ACTION = "close"

#: The runbook's checklist, its first bullet split in two so each item has one verdict.
ITEMS: dict[int, str] = {
    1: "Alerts cleared",
    2: "SLOs met",
    3: "Queues drained",
    4: "Reconciles successful for the last {window}",
    5: "Webhook deliveries normal latency and no DLQ growth",
    6: "Policy evaluation latency below threshold",
    7: "Audit logs show closure event",
}
#: What the on-call does next when an item fails.
NEXT_STEPS: dict[int, str] = {
    1: "rerun the diagnosis of the subsystem each still-firing alert names",
    2: "rerun the diagnosis of every subsystem whose SLO fails",
    3: "run controller_health: the work queue still holds a backlog",
    4: "run controller_health: reconciles still fail",
    5: "run webhook_delivery: deliveries are still slow or the DLQ still grows",
    6: "run policy_evaluation: evaluations are still slow",
    7: "record the closure with `tenancy-diag close --incident ID --out OUT --reason TEXT`",
}
_MAX_FIGURES = 6


@dataclass(frozen=True)
class Check:
    """One checklist item's verdict and the figure it rests on."""

    number: int
    item: str
    verdict: Verdict
    figure: str

    def to_json(self) -> dict[str, Any]:
        return {
            "item": self.number,
            "check": self.item,
            "pass": self.verdict,
            "figure": self.figure,
        }


def item_title(number: int, window: str = "15m") -> str:
    return ITEMS[number].format(window=_spoken(window))


def _spoken(window: str) -> str:
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    amount, unit = window[:-1], window[-1:]
    return f"{amount} {units[unit]}" if amount.isdigit() and unit in units else window


# -- thresholds ------------------------------------------------------------------------------


def merge_thresholds(
    slos: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, Any]
) -> dict[str, dict[str, float]]:
    """signals.yaml's ``slos`` (numbers only) with ``overrides`` ({subsystem: {name: value}})."""
    merged = {
        subsystem: {k: float(v) for k, v in values.items() if _number(v)}
        for subsystem, values in slos.items()
    }
    for subsystem, values in overrides.items():
        if subsystem not in merged:
            raise ConfigError(
                f"thresholds names subsystem {subsystem!r}; use one of {', '.join(merged)}"
            )
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"thresholds[{subsystem!r}] is {values!r}, not a mapping; write it like "
                '{"policy": {"latency_p99_ms_max": 300}}'
            )
        for name, value in values.items():
            if name not in merged[subsystem]:
                raise ConfigError(
                    f"thresholds[{subsystem!r}] names {name!r}, not an SLO of {subsystem}; use "
                    f"one of {', '.join(merged[subsystem])}"
                )
            if not _number(value):
                raise ConfigError(
                    f"thresholds[{subsystem!r}][{name!r}] is {value!r}; give a number"
                )
            merged[subsystem][name] = float(value)
    return merged


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- SLO-shaped items (2..6) -----------------------------------------------------------------


def verdict_of(rows: Sequence[SloRow], strict: bool = True) -> Verdict:
    """FAIL when any row fails. Strict (one signal per region, items 3..6): pass only when
    every row passes, since an unmeasured region is not a recovered one. Not strict (item 2,
    as the subsystem diagnoses judge): rows without data do not count, as a gauge such as
    replication lag has no series while nothing migrates; no data only when none has data."""
    if any(row.passed is False for row in rows):
        return FAIL
    measured = [row for row in rows if row.passed is not None]
    if measured and (len(measured) == len(rows) or not strict):
        return PASS
    return NO_DATA


def figure_of(rows: Sequence[SloRow], strict: bool = True) -> str:
    """The failing rows, else the unmeasured (when they count), else the worst row per SLO."""
    failing = [r for r in rows if r.passed is False]
    missing = [r for r in rows if r.passed is None]
    if not rows:
        return "no series answered"
    if failing:
        return _bounded([_row_text(r) for r in failing])
    measured = [r for r in rows if r.passed is True]
    if not measured or (strict and missing):
        return _bounded([_row_text(r) for r in missing])
    figure = f"every measured region passes; worst: {'; '.join(map(_row_text, _worst(measured)))}"
    if missing:
        figure += "; no series: " + ", ".join(dict.fromkeys(r.name for r in missing))
    return figure


def _bounded(texts: Sequence[str]) -> str:
    more = len(texts) - _MAX_FIGURES
    return "; ".join(texts[:_MAX_FIGURES]) + (f"; and {more} more" if more > 0 else "")


def _worst(rows: Sequence[SloRow]) -> list[SloRow]:
    """Per SLO, the row nearest its threshold (the largest value for < and <=)."""
    worst: dict[str, SloRow] = {}
    for row in rows:
        kept = worst.get(row.name)
        upper = row.op in ("<", "<=")
        if kept is None or (row.value or 0) * (1 if upper else -1) > (kept.value or 0) * (
            1 if upper else -1
        ):
            worst[row.name] = row
    return list(worst.values())


def _row_text(row: SloRow) -> str:
    if row.passed is None:
        return f"{row.region} {row.name}: no data"
    unit = f" {row.unit}" if row.unit and row.unit != "ratio" else ""
    return f"{row.region} {row.name} {row.value:.4g}{unit} (needs {row.op} {row.threshold:g})"


def rows_check(
    number: int, rows: Sequence[SloRow], window: str = "15m", strict: bool = True
) -> Check:
    return Check(
        number, item_title(number, window), verdict_of(rows, strict), figure_of(rows, strict)
    )


def failing_regions(rows: Iterable[SloRow]) -> list[str]:
    return sorted({row.region for row in rows if row.passed is False})


# -- item 1: alerts --------------------------------------------------------------------------

ALERT_COLUMNS = ["alertname", "region", "subsystem", "severity", "value", "source"]


def alertmanager_frame(alerts: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Alertmanager's ``GET /api/v2/alerts`` answer, one row per active alert."""
    rows = []
    for alert in alerts:
        labels = alert.get("labels") or {}
        annotations = alert.get("annotations") or {}
        state = (alert.get("status") or {}).get("state", "active")
        if state != "active":
            continue
        rows.append(
            {
                "alertname": labels.get("alertname"),
                "region": labels.get("region"),
                "subsystem": labels.get("subsystem"),
                "severity": labels.get("severity"),
                "value": annotations.get("value"),
                "source": "alertmanager",
            }
        )
    return pd.DataFrame(rows, columns=ALERT_COLUMNS)


def alerts_check(still: pd.DataFrame, answered: bool) -> Check:
    """FAIL while any alert fires or any rule's condition still holds at ``end``."""
    if not still.empty:
        names = [
            f"{row['alertname']} ({_region(row['region'])}, {row['value']})"
            for row in still.drop_duplicates(["alertname", "region"]).to_dict("records")
        ]
        more = len(names) - _MAX_FIGURES
        figure = "; ".join(names[:_MAX_FIGURES]) + (f"; and {more} more" if more > 0 else "")
        return Check(1, item_title(1), FAIL, f"{len(names)} still firing or holding: {figure}")
    if not answered:
        return Check(1, item_title(1), NO_DATA, "neither Alertmanager nor Prometheus answered")
    return Check(1, item_title(1), PASS, "no alert firing and no rule condition holding")


def _region(value: object) -> str:
    return value if isinstance(value, str) and value else "every region"


# -- item 5: DLQ growth, by the one rule the diagnoses use too (analysis.dlq) --------------

growth_within = dlq.growth_within
dlq_growth_rows = dlq.dlq_growth_rows


# -- item 7: closure in the audit log --------------------------------------------------------


def parse_audit(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The audit log's records; lines of another schema or not JSON are skipped."""
    return parse_jsonl(lines, AUDIT_SCHEMA)


def closures(records: Iterable[Mapping[str, Any]], incident: str) -> list[Mapping[str, Any]]:
    return [r for r in records if r.get("action") == CLOSE_ACTION and r.get("incident") == incident]


def closure_check(
    records: Sequence[Mapping[str, Any]] | None, incident: str, where: str = "the audit log"
) -> Check:
    """pass when the log holds a close record for ``incident``; no data without a log."""
    if records is None:
        return Check(7, item_title(7), NO_DATA, f"{where} was not given or could not be read")
    found = closures(records, incident)
    if not found:
        return Check(
            7, item_title(7), FAIL, f"{where} holds no close record for incident {incident}"
        )
    last = found[-1]
    figure = f"closed by {last.get('actor')} at {last.get('time')}: {last.get('result')}"
    return Check(7, item_title(7), PASS, figure)


# -- the whole checklist ---------------------------------------------------------------------


def checklist_status(checks: Sequence[Check]) -> Status:
    """failing when an item fails; unknown when an item has no data; ok when all pass."""
    if any(c.verdict == FAIL for c in checks):
        return "failing"
    if not checks or any(c.verdict == NO_DATA for c in checks):
        return "unknown"
    return "ok"


def checklist_summary(checks: Sequence[Check]) -> str:
    failing = [c for c in checks if c.verdict == FAIL]
    blind = [c for c in checks if c.verdict == NO_DATA]
    if failing:
        items = ", ".join(f"{c.number} ({c.item})" for c in failing)
        steps = "; ".join(NEXT_STEPS[c.number] for c in failing)
        return f"recovery not verified: item(s) {items} fail; next: {steps}."
    if blind:
        items = ", ".join(f"{c.number} ({c.item})" for c in blind)
        return f"recovery not verified: no data for item(s) {items}; check the sources and rerun."
    return "recovery verified: every checklist item passes; the incident can be closed."


def checklist_frame(checks: Sequence[Check]) -> pd.DataFrame:
    return pd.DataFrame([c.to_json() for c in checks], columns=["item", "check", "pass", "figure"])
