"""Webhook delivery, step by step as the runbook's Diagnostic Workflow has it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from tenancy_diag import plots
from tenancy_diag.analysis import patterns
from tenancy_diag.analysis.findings import Findings
from tenancy_diag.diagnosing.judging import Basis, conclude
from tenancy_diag.diagnosing.steps import (
    Diagnosis,
    StepResult,
    column,
    dlq_growth_rows,
    slo_frame,
    tenant_figures,
)


def judge(evidence: Mapping[str, Any], basis: Basis) -> Findings:
    """Webhook storm: failures concentrated on few endpoints, in the DLQ as in the metrics.

    DLQ growth is an SLO row per region; a region whose DLQ could not be read has no data."""
    dlq = evidence["dlq"]
    slo = [*evidence["slo"], *dlq_growth_rows(dlq, basis)]
    match, offenders = patterns.webhook_storm(
        slo=slo,
        endpoints=evidence["endpoints"],
        codes=evidence["codes"],
        dlq_endpoints=dlq.endpoints,
        failure_ratio=evidence["ratio"],
        failure_ratio_max=basis.thresholds["failure_ratio_max"],
    )
    return conclude(
        basis,
        [match] if match else [],
        slo,
        tenants=column(evidence, "tenants"),
        tenant_figures=tenant_figures(evidence),
        endpoints=offenders,
    )


@dataclass
class WebhookDiagnosis(Diagnosis):
    subsystem: str = "webhook"
    REQUIRES: ClassVar[tuple[str, ...]] = (
        "step1_overview",
        "step2_trends",
        "step3_endpoints",
        "step4_dlq",
    )
    judge = staticmethod(judge)

    def step1_overview(self) -> StepResult:
        """Dashboard `Webhook Delivery`: the SLO table (DLQ growth is judged in step 4)."""
        rows = self.slo()
        return self._done("step1_overview", slo_frame(rows), slo=rows)

    def step2_trends(self) -> StepResult:
        """webhook_failures_total and webhook_latency_ms trends."""
        ratio = self.series("webhook.failure_ratio")
        latency = self.series("webhook.latency_quantile", quantile="0.99")
        start, th = self.ctx.incident_start, self.ctx.thresholds
        figures = [
            plots.timeseries(
                ratio,
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
        return self._done("step2_trends", figures, ratio=ratio)

    def step3_endpoints(self) -> StepResult:
        """Endpoints with persistent failures, and the failure codes."""
        endpoints = self.top("webhook.top_endpoints", "endpoint")
        codes = self.instant("webhook.failures_by_code", window=self.incident_window())
        tenants = self.top("webhook.top_tenants", "tenant")
        figure = plots.bars(
            endpoints, "endpoint", "Endpoints with the most failed deliveries (per second)"
        )
        return self._done(
            "step3_endpoints", endpoints, figure, endpoints=endpoints, codes=codes, tenants=tenants
        )

    def step4_dlq(self) -> StepResult:
        """Recent DLQ inserts (the `aws sqs receive-message` step, without consuming)."""
        dlq = self.dlq()
        return self._done("step4_dlq", dlq, dlq=dlq)

    def step5_endpoint_availability(self) -> StepResult:
        """Endpoint availability as the dispatcher's logs report it (the synthetic-probe step)."""
        log = self.logs()
        return self._done("step5_endpoint_availability", log.signatures, log=log)
