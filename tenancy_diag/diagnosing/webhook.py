"""Webhook delivery, step by step as the runbook's Diagnostic Workflow has it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from tenancy_diag import plots
from tenancy_diag.analysis import patterns
from tenancy_diag.analysis.findings import Findings, SloRow
from tenancy_diag.diagnosing.steps import EMPTY, Diagnosis, DlqEvidence, LogEvidence, SloSpec

SLOS = (
    SloSpec(
        "latency_p99_ms",
        "webhook.latency_quantile",
        "latency_p99_ms_max",
        "<",
        "ms",
        (("quantile", "0.99"),),
    ),
    SloSpec("failure_ratio", "webhook.failure_ratio", "failure_ratio_max", "<", "ratio"),
)


@dataclass
class WebhookDiagnosis(Diagnosis):
    subsystem: str = "webhook"
    ratio: pd.DataFrame = field(default_factory=lambda: EMPTY)
    endpoints: pd.DataFrame = field(default_factory=lambda: EMPTY)
    codes: pd.DataFrame = field(default_factory=lambda: EMPTY)
    tenants: pd.DataFrame = field(default_factory=lambda: EMPTY)
    log: LogEvidence | None = None
    dlq_evidence: DlqEvidence | None = None

    def step1_overview(self) -> pd.DataFrame:
        """Dashboard `Webhook Delivery`: the SLO table (DLQ growth is judged in step 4)."""
        return self.slo(SLOS)

    def step2_trends(self) -> list[Figure]:
        """webhook_failures_total and webhook_latency_ms trends."""
        self.ratio = self.series("webhook.failure_ratio")
        latency = self.series("webhook.latency_quantile", quantile="0.99")
        start, th = self.ctx.incident_start, self.ctx.thresholds
        return [
            plots.timeseries(
                self.ratio,
                "region",
                "Webhook failure ratio",
                threshold=th["failure_ratio_max"],
                incident_start=start,
            ),
            plots.timeseries(
                latency,
                "region",
                "Webhook delivery latency p99 (ms)",
                threshold=th["latency_p99_ms_max"],
                incident_start=start,
                ylabel="ms",
            ),
        ]

    def step3_endpoints(self) -> tuple[pd.DataFrame, Figure]:
        """Endpoints with persistent failures, and the failure codes."""
        self.endpoints = self.top("webhook.top_endpoints", "endpoint")
        self.codes = self.instant("webhook.failures_by_code", window=self.incident_window())
        self.tenants = self.top("webhook.top_tenants", "tenant")
        return self.endpoints, plots.bars(
            self.endpoints, "endpoint", "Endpoints with the most failed deliveries (per second)"
        )

    def step4_dlq(self) -> DlqEvidence:
        """Recent DLQ inserts (the `aws sqs receive-message` step, without consuming)."""
        self.dlq_evidence = self.dlq("webhook")
        return self.dlq_evidence

    def step5_endpoint_availability(self) -> pd.DataFrame:
        """Endpoint availability as the dispatcher's logs report it (the synthetic-probe step)."""
        self.log = self.logs("webhook")
        return self.log.signatures

    def assess(self) -> Findings:
        dlq_endpoints = self.dlq_evidence.endpoints if self.dlq_evidence else pd.Series(dtype=float)
        growth = self.dlq_evidence.growth if self.dlq_evidence else {}
        self._dlq_slo(growth)
        match, offenders = patterns.webhook_storm(
            slo=self.slo_rows,
            endpoints=self.endpoints,
            codes=self.codes,
            dlq_endpoints=dlq_endpoints,
            failure_ratio=self.ratio,
            failure_ratio_max=self.ctx.thresholds["failure_ratio_max"],
        )
        tenants = self.tenants["tenant"].tolist() if "tenant" in self.tenants else []
        return self.findings([match] if match else [], tenants=tenants, endpoints=offenders)

    def _dlq_slo(self, growth: dict[str, int]) -> None:
        if self.dlq_evidence is None or self.dlq_evidence.depth.empty:
            return
        limit = float(self.ctx.thresholds.get("dlq_growth_max", 0))
        for region in self.regions():
            self.slo_rows.append(
                SloRow("dlq_growth", region, float(growth.get(region, 0)), limit, "<=", "messages")
            )
