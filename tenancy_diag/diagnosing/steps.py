"""What every subsystem diagnosis does: SLO tables, series, top-N, pod logs, DLQs, findings.

A step that cannot reach its source returns empty frames and leaves a note; the findings say
which source was missing, so "unknown" is never mistaken for "ok".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal

import pandas as pd

from tenancy_diag.analysis import dlq as dlq_analysis
from tenancy_diag.analysis import logs as log_analysis
from tenancy_diag.analysis.findings import Findings, PatternMatch, SloRow
from tenancy_diag.analysis.frames import VALUE, matrix_frame, vector_frame
from tenancy_diag.analysis.verdicts import actions_for, escalation_for, severity_of, status_of
from tenancy_diag.diagnosing.context import Context
from tenancy_diag.querying import choose_step
from tenancy_diag.sources.base import InstantQuery, PeekRequest, QueueRef, RangeQuery
from tenancy_diag.sources.kube_logs import collect_logs
from tenancy_diag.times import iso

EMPTY = pd.DataFrame(columns=["timestamp", "value"])


@dataclass(frozen=True)
class SloSpec:
    name: str  # row name in the findings
    query: str  # signals query key
    threshold: str  # ctx.thresholds key
    op: Literal["<", "<=", ">", ">="]
    unit: str = ""
    params: tuple[tuple[str, str], ...] = ()


@dataclass
class LogEvidence:
    lines: pd.DataFrame
    signatures: pd.DataFrame
    failures: list[str]


@dataclass
class DlqEvidence:
    depth: pd.DataFrame  # region, queue, visible, not_visible, delayed, source_queues
    sample: pd.DataFrame  # the contract's body fields, redacted
    growth: dict[str, int]  # region -> messages first failed within the SLO window
    endpoints: pd.Series  # share of sampled messages per endpoint


@dataclass
class Diagnosis:
    """Base of the five subsystem diagnoses; a notebook calls one method per runbook step."""

    ctx: Context
    subsystem: str = ""
    notes: list[str] = field(default_factory=list)
    slo_rows: list[SloRow] = field(default_factory=list)

    # -- regions and windows -----------------------------------------------------------
    def regions(self) -> list[str]:
        """The scope's regions, else the fleet's, else what Prometheus knows."""
        if self.ctx.scope.regions:
            return list(self.ctx.scope.regions)
        if self.ctx.fleet_regions:
            return list(self.ctx.fleet_regions)
        found = self.instant_raw(
            f"count by ({self.ctx.signals.label('region')}) "
            f"({self.ctx.signals.selector('reconcile_total')})"
        )
        regions = sorted(found["region"].dropna().unique()) if "region" in found else []
        self.ctx.fleet_regions = tuple(regions)
        return list(regions)

    def incident_window(self) -> str:
        """A PromQL range covering the incident so far (30 min when its start is unknown)."""
        start = self.ctx.incident_start or self.ctx.end - timedelta(minutes=30)
        seconds = max(int((self.ctx.end - start).total_seconds()), 300)
        return f"{seconds}s"

    # -- Prometheus ----------------------------------------------------------------------
    def instant_raw(self, promql: str) -> pd.DataFrame:
        source = self.ctx.metric_source
        if source is None:
            return EMPTY
        result = self.ctx.attempt(
            "prometheus", lambda: source.instant_query(InstantQuery(promql, self.ctx.end))
        )
        return vector_frame(result) if result is not None else EMPTY

    def instant(self, key: str, **params: Any) -> pd.DataFrame:
        return self.instant_raw(self.ctx.signals.render(key, self.ctx.scope, **params))

    def series(self, key: str, **params: Any) -> pd.DataFrame:
        """Range query over the lookback, rate window ``ctx.rate_window`` unless given."""
        source = self.ctx.metric_source
        if source is None:
            return EMPTY
        params.setdefault("window", self.ctx.rate_window)
        params = {
            k: v
            for k, v in params.items()
            if f"${k}"
            in self.ctx.signals.doc.queries[key.split(".", maxsplit=1)[0]][key.split(".")[1]]
        }
        promql = self.ctx.signals.render(key, self.ctx.scope, **params)
        step = choose_step(self.ctx.start, self.ctx.end)
        request = RangeQuery(promql, self.ctx.start, self.ctx.end, step)
        result = self.ctx.attempt("prometheus", lambda: source.range_query(request))
        return matrix_frame(result) if result is not None else EMPTY

    def top(self, key: str, label: str) -> pd.DataFrame:
        """Top-N by ``label`` over the incident window, zeros dropped, largest first."""
        df = self.instant(key, k=self.ctx.top_n, window=self.incident_window())
        if df.empty or label not in df.columns:
            return pd.DataFrame(columns=["region", label, VALUE])
        df = df[df[VALUE] > 0].sort_values(VALUE, ascending=False)
        return df[[c for c in ("region", label, VALUE) if c in df.columns]].reset_index(drop=True)

    def slo(self, specs: Sequence[SloSpec]) -> pd.DataFrame:
        """One row per (SLO, region) judged over the SLO window at ``end``."""
        self.slo_rows = self.slo_rows_for(specs, self.ctx.slo_window, self.ctx.thresholds)
        return slo_frame(self.slo_rows)

    def slo_rows_for(
        self,
        specs: Sequence[SloSpec],
        window: str,
        thresholds: Mapping[str, float],
        prefix: str = "",
    ) -> list[SloRow]:
        """The rows of :meth:`slo` over ``window`` against ``thresholds``; ``prefix`` tells
        apart SLOs of several subsystems judged together."""
        rows: list[SloRow] = []
        for spec in specs:
            params: dict[str, Any] = {"window": window, **dict(spec.params)}
            df = self.instant(spec.query, **params)
            values = {
                str(r): float(v)
                for r, v in zip(df.get("region", []), df.get(VALUE, []), strict=False)
            }
            limit = float(thresholds[spec.threshold])
            rows += [
                SloRow(
                    f"{prefix}{spec.name}", region, values.get(region), limit, spec.op, spec.unit
                )
                for region in self.regions()
            ]
        return rows

    # -- pod logs ------------------------------------------------------------------------
    def logs(self, app_key: str, since: datetime | None = None) -> LogEvidence:
        source = self.ctx.log_source
        empty = LogEvidence(pd.DataFrame(), pd.DataFrame(), [])
        if source is None:
            self.notes.append("Pod logs: no kubeconfig given, so no log evidence.")
            return empty
        cfg = self.ctx.signals.doc.logs
        batch = self.ctx.attempt(
            "kubernetes",
            lambda: collect_logs(
                source,
                cfg.namespace,
                cfg.apps[app_key],
                self.regions(),
                since=since or self.ctx.start,
                until=self.ctx.end,
                tail_lines=5000,
                max_concurrency=8,
                region_label=cfg.region_label,
                app_label=cfg.app_label,
            ),
        )
        if batch is None:
            self.notes.append(f"Pod logs unavailable: {self.ctx.sources['kubernetes']}")
            return empty
        lines = log_analysis.frame(batch.lines)
        failures = [f"{f.pod or f.region}: {f.message}" for f in batch.errors]
        return LogEvidence(lines, log_analysis.failure_signatures(lines), failures)

    # -- dead-letter queues ----------------------------------------------------------------
    def dlq(self, kind: str, sample_size: int = 100) -> DlqEvidence:
        source = self.ctx.queue_source
        empty = DlqEvidence(pd.DataFrame(), dlq_analysis.frame([]), {}, pd.Series(dtype=float))
        if source is None:
            self.notes.append("DLQ: no AWS endpoint given, so no DLQ evidence.")
            return empty
        names = self.ctx.signals.doc.dlq.queues[kind]
        depth_rows, messages = [], []
        for region in self.regions():
            ref = QueueRef(region, names.dlq.format(region=region))
            depth = self.ctx.attempt("sqs", partial(source.depth, ref))
            if depth is None:
                continue
            feeding = self.ctx.attempt("sqs", partial(source.source_queues, ref)) or []
            depth_rows.append(
                {
                    "region": region,
                    "queue": ref.queue_name,
                    **_depth_fields(depth),
                    "source_queues": ", ".join(feeding),
                }
            )
            peek = PeekRequest(region, ref.queue_name, sample_size)
            messages.extend(self.ctx.attempt("sqs", partial(source.peek, peek)) or [])
        sample = dlq_analysis.frame(messages)
        return DlqEvidence(
            pd.DataFrame(depth_rows), sample, self._growth(sample), _endpoint_shares(sample)
        )

    def _growth(self, sample: pd.DataFrame) -> dict[str, int]:
        if sample.empty or "first_failed_at" not in sample:
            return {}
        since = pd.Timestamp(self.ctx.end) - pd.Timedelta(self.ctx.slo_window)
        recent = sample[sample["first_failed_at"] >= since]
        return {str(k): int(v) for k, v in recent.groupby("region").size().items()}

    # -- findings --------------------------------------------------------------------------
    def findings(
        self, patterns: Sequence[PatternMatch], *, tenants: Sequence[str] = (), **extra: Any
    ) -> Findings:
        unavailable = self.ctx.unavailable()
        status = status_of(self.slo_rows, patterns, unavailable)
        regions = sorted(
            {r for p in patterns for r in p.regions}
            | {row.region for row in self.slo_rows if row.passed is False}
        )
        severity = severity_of(self.subsystem, status, regions, self.regions())
        book = self.ctx.runbook
        summary = summarize(self.subsystem, status, patterns, regions, book)
        if status == "unknown" and unavailable:
            summary = (
                f"{self.subsystem}: not enough evidence: "
                + "; ".join(f"{kind} {self.ctx.sources[kind]}" for kind in unavailable)
                + "."
            )
        summary = summarize(self.subsystem, status, patterns, regions, book)
        if status == "unknown" and unavailable:
            gaps = "; ".join(f"{kind} {self.ctx.sources[kind]}" for kind in unavailable)
            summary = f"{self.subsystem}: not enough evidence: {gaps}."
        return Findings(
            subsystem=self.subsystem,
            incident=self.ctx.incident_id,
            status=status,
            severity=severity,
            summary=summary,
            patterns=list(patterns),
            regions=regions,
            # Background noise names tenants too; only an unhealthy subsystem has affected ones.
            tenants=list(dict.fromkeys(tenants)) if status in ("failing", "degraded") else [],
            slo=self.slo_rows,
            actions=actions_for(patterns, book),
            escalation=escalation_for(severity, book),
            sources=dict(self.ctx.sources),
            window={
                "start": iso(self.ctx.start),
                "end": iso(self.ctx.end),
                "slo_window": self.ctx.slo_window,
            },
            **extra,
        )


def summarize(
    subsystem: str, status: str, patterns: Sequence[PatternMatch], regions: Sequence[str], book: Any
) -> str:
    where = f" in {', '.join(regions)}" if regions else ""
    if patterns:
        names = ", ".join(book.patterns[p.id].title for p in patterns)
        return f"{subsystem}: {names}{where} ({status})."
    return {
        "ok": f"{subsystem}: every SLO met; no failure pattern.",
        "degraded": f"{subsystem}: SLO breached{where}, no known failure pattern matches.",
        "unknown": f"{subsystem}: not enough evidence; a source did not answer.",
    }.get(status, f"{subsystem}: {status}{where}.")


def slo_frame(rows: Sequence[SloRow]) -> pd.DataFrame:
    data = [r.to_json() for r in rows]
    df = pd.DataFrame(data, columns=["name", "region", "value", "op", "threshold", "unit", "pass"])
    df["pass"] = df["pass"].map({True: "pass", False: "FAIL", None: "no data"})
    return df


def _depth_fields(depth: dict[str, Any]) -> dict[str, Any]:
    return {k: depth.get(k) for k in ("visible", "not_visible", "delayed")}


def _endpoint_shares(sample: pd.DataFrame) -> pd.Series:
    if sample.empty or "endpoint" not in sample or sample["endpoint"].isna().all():
        return pd.Series(dtype=float)
    return sample["endpoint"].value_counts(normalize=True)
