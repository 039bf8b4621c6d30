"""The runbook's Verification After Recovery, item by item: one method per checklist item.

Every item reads what the subsystem diagnoses read (their SLO specs, signals.yaml's queries
and thresholds), judged at ``end`` over ``verify_window``; the verdicts are pure functions of
:mod:`tenancy_diag.analysis.checklist`.

Alerts are read twice on purpose. Alertmanager (or Prometheus's ``ALERTS``) says what fires
now; but a Prometheus holding backfilled history (the sandbox's, a restored one) evaluates its
rules in wall-clock time only, so each rule of ``parameters/alerts/tenancy.rules.yml`` is also
evaluated at ``end`` by an instant query, and a rule whose condition still holds fails item 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tenancy_diag import resources
from tenancy_diag.analysis import checklist
from tenancy_diag.analysis.checklist import Check
from tenancy_diag.analysis.findings import Findings, SloRow
from tenancy_diag.analysis.frames import VALUE, vector_frame
from tenancy_diag.diagnosing.steps import Diagnosis, slo_frame
from tenancy_diag.errors import ConfigError
from tenancy_diag.journaling import AUDIT_SCHEMA, read_jsonl
from tenancy_diag.sources.base import AlertSource, AlertsRequest, InstantQuery
from tenancy_diag.subsystems import SloSpec
from tenancy_diag.subsystems import registry as subsystems
from tenancy_diag.times import iso, parse_duration

#: The shipped rules: what :func:`load_rules` reads unless a folder replaces the parameters.
RULES_PATH = resources.PARAMETERS.shipped() / resources.ALERT_RULES


def _spec(subsystem: str, name: str) -> SloSpec:
    return subsystems.get(subsystem).slo(name)


# -- alerting rules ------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRule:
    alert: str
    expr: str
    subsystem: str
    severity: str


def load_rules(path: Path | None = None) -> list[AlertRule]:
    """The alerting rules of a Prometheus rules file; by default the replacement parameters
    folder's (``--parameters``, ``TENANCY_DIAG_PARAMETERS``), else :data:`RULES_PATH`."""
    if path is None:
        path = resources.PARAMETERS.override_file(resources.ALERT_RULES) or RULES_PATH
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read alerting rules {path} ({e}); check the file") from e
    rules = []
    for group in (doc or {}).get("groups") or []:
        for rule in group.get("rules") or []:
            if "alert" in rule:
                labels = rule.get("labels") or {}
                rules.append(
                    AlertRule(
                        str(rule["alert"]),
                        " ".join(str(rule["expr"]).split()),
                        str(labels.get("subsystem", "")),
                        str(labels.get("severity", "")),
                    )
                )
    return rules


# -- the checklist -------------------------------------------------------------------------


@dataclass
class RecoveryVerification(Diagnosis):
    """Verification After Recovery; call :meth:`configure`, then ``checkN_*`` and :meth:`assess`."""

    subsystem: str = "recovery"
    audit_path: str = ""
    verify_window: str = "15m"
    #: subsystem -> threshold name -> value: signals.yaml's ``slos`` with the overrides.
    limits: dict[str, dict[str, float]] = field(default_factory=dict)
    alerts_source: AlertSource | None = None
    rules: list[AlertRule] = field(default_factory=list)
    checks: dict[int, Check] = field(default_factory=dict)
    #: Alerts firing or rule conditions holding at ``end``.
    still_firing: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=checklist.ALERT_COLUMNS)
    )
    #: SLO rows of items 2..6, by item.
    rows: dict[int, list[SloRow]] = field(default_factory=dict)

    def configure(
        self,
        *,
        audit_path: str = "",
        verify_window: str = "15m",
        thresholds: Mapping[str, Any] | None = None,
        rules_path: Path | None = None,
    ) -> RecoveryVerification:
        parse_duration(verify_window, "verify_window")
        self.audit_path = audit_path
        self.verify_window = verify_window
        self.limits = checklist.merge_thresholds(self.ctx.signals.doc.slos, thresholds or {})
        self.alerts_source = self.ctx.source("alerts")
        self.rules = load_rules(rules_path)
        return self

    # -- item 1 ------------------------------------------------------------------------------
    def check1_alerts_cleared(self) -> tuple[str, pd.DataFrame]:
        """Alertmanager's active alerts (else ``ALERTS``), and each rule evaluated at ``end``."""
        frames = []
        firing_now = self._alertmanager() if self.alerts_source is not None else None
        if firing_now is None:
            firing_now = self._alerts_metric()
        if firing_now is not None:
            frames.append(firing_now)
        holding = self._rules_holding()
        if holding is not None:
            frames.append(holding)
        still = pd.concat(frames, ignore_index=True) if frames else self.still_firing
        self.still_firing = still[checklist.ALERT_COLUMNS].reset_index(drop=True)
        # The rules need Prometheus; Alertmanager alone cannot say a condition stopped holding.
        check = checklist.alerts_check(self.still_firing, answered=holding is not None)
        return self._record(check, self.still_firing)

    def _alertmanager(self) -> pd.DataFrame | None:
        source = self.alerts_source
        if source is None:
            return None
        request = AlertsRequest(tuple(self._matchers()))
        alerts = self.ctx.attempt("alerts", partial(source.alerts, request))
        if alerts is None:
            self.notes.append(f"Alertmanager: {self.ctx.state_of('alerts')}")
            return None
        return checklist.alertmanager_frame(alerts)

    def _matchers(self) -> list[str]:
        matchers = [f'subsystem=~"{"|".join(subsystems.names())}"']
        if self.ctx.scope.regions:
            matchers.append(f'region=~"{"|".join(self.ctx.scope.regions)}"')
        return matchers

    def _alerts_metric(self) -> pd.DataFrame | None:
        selector = ", ".join(['alertstate="firing"', *self._matchers()])
        df = self._instant(f"ALERTS{{{selector}}}")
        if df is None:
            return None
        return _alert_rows(df, "Prometheus ALERTS")

    def _rules_holding(self) -> pd.DataFrame | None:
        """Rows for every (rule, series) whose expression is non-empty at ``end``; None when
        Prometheus did not answer."""
        frames = []
        for rule in self.rules:
            df = self._instant(rule.expr)
            if df is None:
                return None
            if self.ctx.scope.regions and "region" in df:
                df = df[df["region"].isin(self.ctx.scope.regions)]
            frames.append(
                _alert_rows(
                    df.assign(
                        alertname=rule.alert, subsystem=rule.subsystem, severity=rule.severity
                    ),
                    "rule at end",
                )
            )
        return pd.concat(frames, ignore_index=True) if frames else _alert_rows(pd.DataFrame(), "")

    # -- items 2..6 --------------------------------------------------------------------------
    def check2_slos_met(self) -> tuple[str, pd.DataFrame]:
        """Every subsystem's SLOs over ``slo_window``, as its diagnosis judges them."""
        rows: list[SloRow] = []
        for subsystem in subsystems:
            rows += self._judge(subsystem.name, subsystem.slos, self.ctx.slo_window)
        return self._rows_item(2, rows)

    def check3_queues_drained(self) -> tuple[str, pd.DataFrame]:
        """The controller's work queue below ``queue_depth_max`` in every region."""
        spec = _spec("controller", "queue_depth")
        return self._rows_item(3, self._judge("controller", [spec], self.verify_window))

    def check4_reconciles_successful(self) -> tuple[str, pd.DataFrame]:
        """The reconcile success ratio over ``verify_window``, per region."""
        spec = _spec("controller", "reconcile_success_ratio")
        return self._rows_item(4, self._judge("controller", [spec], self.verify_window))

    def check5_webhook_deliveries(self) -> tuple[str, pd.DataFrame]:
        """Webhook p99 latency over ``verify_window``, and no webhook DLQ message that first
        failed within it (the peeked sample's ``first_failed_at``, as the diagnosis counts)."""
        rows = self._judge("webhook", [_spec("webhook", "latency_p99_ms")], self.verify_window)
        evidence = self.dlq("webhook", window=self.verify_window)
        limit = self.limits["webhook"].get("dlq_growth_max", 0.0)
        rows += checklist.dlq_growth_rows(evidence.growth, self.regions(), evidence.read, limit)
        return self._rows_item(5, rows)

    def check6_policy_latency(self) -> tuple[str, pd.DataFrame]:
        """Policy evaluation p99 latency over ``verify_window``, per region."""
        spec = _spec("policy", "latency_p99_ms")
        return self._rows_item(6, self._judge("policy", [spec], self.verify_window))

    # -- item 7 ------------------------------------------------------------------------------
    def check7_closure_event(self) -> tuple[str, pd.DataFrame]:
        """A ``close`` record for this incident in the audit log (``audit_path``)."""
        records = self._audit_records()
        check = checklist.closure_check(records, self.ctx.incident_id, self._audit_where())
        found = checklist.closures(records or [], self.ctx.incident_id)
        columns = ["time", "actor", "result", "run_id"]
        table = pd.DataFrame([{k: r.get(k) for k in columns} for r in found], columns=columns)
        return self._record(check, table)

    def _audit_where(self) -> str:
        return f"audit log {self.audit_path}" if self.audit_path else "the audit log"

    def _audit_records(self) -> list[dict[str, Any]] | None:
        if not self.audit_path:
            self.notes.append("Audit log: no audit_path given, so the closure cannot be seen.")
            return None
        try:
            # A log that does not exist yet holds no closure either: an empty list, not None.
            return read_jsonl(Path(self.audit_path), AUDIT_SCHEMA)
        except ConfigError as e:
            self.notes.append(f"Audit log unreadable: {e}")
            return None

    # -- the whole ---------------------------------------------------------------------------
    def run_all(self) -> pd.DataFrame:
        """Every item in order (for scripts; the notebook calls them one cell each)."""
        for step in (
            self.check1_alerts_cleared,
            self.check2_slos_met,
            self.check3_queues_drained,
            self.check4_reconciles_successful,
            self.check5_webhook_deliveries,
            self.check6_policy_latency,
            self.check7_closure_event,
        ):
            step()
        return self.checklist()

    def checklist(self) -> pd.DataFrame:
        """The checklist so far: item, check, pass / FAIL / no data, figure."""
        return checklist.checklist_frame([self.checks[n] for n in sorted(self.checks)])

    def assess(self) -> Findings:
        checks = [self.checks[n] for n in sorted(self.checks)]
        missing = [n for n in checklist.ITEMS if n not in self.checks]
        if missing:
            raise ConfigError(
                f"checklist items {missing} were not run; run every checkN_* cell before assess()"
            )
        status = checklist.checklist_status(checks)
        all_rows = [row for n in sorted(self.rows) for row in self.rows[n]]
        alert_regions = {str(r) for r in self.still_firing["region"].dropna()}
        return Findings(
            subsystem=self.subsystem,
            incident=self.ctx.incident_id,
            status=status,
            summary=checklist.checklist_summary(checks),
            regions=sorted(set(checklist.failing_regions(all_rows)) | alert_regions),
            slo=self.rows.get(2, []),
            sources=dict(self.ctx.sources),
            window={
                "start": iso(self.ctx.start),
                "end": iso(self.ctx.end),
                "slo_window": self.ctx.slo_window,
                "verify_window": self.verify_window,
            },
            details={
                "checklist": [c.to_json() for c in checks],
                "still_firing": self.still_firing.astype(object)
                .where(self.still_firing.notna(), None)
                .to_dict("records"),
                "rows": {
                    str(n): [row.to_json() for row in rows] for n, rows in sorted(self.rows.items())
                },
                "thresholds": self.limits,
            },
        )

    # -- helpers -----------------------------------------------------------------------------
    def _instant(self, promql: str) -> pd.DataFrame | None:
        """An instant query at ``end``; None (and a note in ``ctx.sources``) when unanswered."""
        source = self.ctx.wanted("metrics")
        if source is None:
            return None
        result = self.ctx.attempt(
            "metrics", lambda: source.instant_query(InstantQuery(promql, self.ctx.end))
        )
        return vector_frame(result) if result is not None else None

    def _judge(self, subsystem: str, specs: Sequence[SloSpec], window: str) -> list[SloRow]:
        """``Diagnosis.slo`` with this subsystem's thresholds: thresholds of different
        subsystems share names (latency_p99_ms_max), so one flat mapping cannot hold them."""
        return self.slo_rows_for(specs, window, self.limits[subsystem], prefix=f"{subsystem}.")

    def _rows_item(self, number: int, rows: list[SloRow]) -> tuple[str, pd.DataFrame]:
        self.rows[number] = rows
        # Item 2 spans every SLO, some of which have no series while idle (replication lag).
        check = checklist.rows_check(number, rows, self.verify_window, strict=number != 2)
        return self._record(check, slo_frame(rows))

    def _record(self, check: Check, table: pd.DataFrame) -> tuple[str, pd.DataFrame]:
        self.checks[check.number] = check
        return f"**Item {check.number}: {check.verdict}**: {check.figure}", table


def _alert_rows(df: pd.DataFrame, source: str) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for column in ("alertname", "region", "subsystem", "severity"):
        out[column] = df.get(column)
    out["value"] = df[VALUE].round(4) if VALUE in df else None
    out["source"] = source
    return out[checklist.ALERT_COLUMNS].reset_index(drop=True)
