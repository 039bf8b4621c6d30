"""Controller health, step by step as the runbook's Diagnostic Workflow has it."""

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
    slo_frame,
    tenant_figures,
)


def judge(evidence: Mapping[str, Any], basis: Basis) -> Findings:
    """Reconcile backlog: a deep, growing queue with failing reconciles and DLQ inserts."""
    dlq = evidence["dlq"]
    match = patterns.reconcile_backlog(
        evidence["queue"],
        evidence["slo"],
        evidence["reasons_now"],
        dlq.growth,
        basis.thresholds["queue_depth_max"],
    )
    return conclude(
        basis,
        [match] if match else [],
        evidence["slo"],
        tenants=column(evidence, "tenants"),
        tenant_figures=tenant_figures(evidence),
    )


@dataclass
class ControllerDiagnosis(Diagnosis):
    subsystem: str = "controller"
    REQUIRES: ClassVar[tuple[str, ...]] = (
        "step1_overview",
        "step2_graphs",
        "step4_dlq",
        "step5_correlation",
    )
    judge = staticmethod(judge)

    def step1_overview(self) -> StepResult:
        """Dashboard `Controller Health`: the SLO table."""
        rows = self.slo()
        return self._done("step1_overview", slo_frame(rows), slo=rows)

    def step2_graphs(self) -> StepResult:
        """reconcile_failures_total (by reason) and queue_depth, threshold and start marked."""
        failures = self.series("controller.failures_by_reason")
        queue = self.series("controller.queue_depth")
        reasons_now = self.instant("controller.failures_by_reason", window=self.ctx.slo_window)
        start = self.ctx.incident_start
        figures = [
            plots.timeseries(
                failures,
                "reason",
                "Reconcile failures by reason (per second)",
                incident_start=start,
                ylabel="failures/s",
            ),
            plots.timeseries(
                queue,
                "region",
                "Controller work queue depth",
                threshold=self.ctx.thresholds["queue_depth_max"],
                incident_start=start,
                ylabel="items",
            ),
        ]
        return self._done("step2_graphs", figures, queue=queue, reasons_now=reasons_now)

    def step3_log_signatures(self) -> StepResult:
        """`kubectl logs controller-<id> | grep ERROR`, grouped into failure signatures."""
        log = self.logs()
        return self._done("step3_log_signatures", log.signatures, log=log)

    def step4_dlq(self) -> StepResult:
        """SQS queue depth and the reconcile DLQ (a sample that neither deletes nor hides)."""
        dlq = self.dlq()
        return self._done("step4_dlq", dlq, dlq=dlq)

    def step5_correlation(self) -> StepResult:
        """Do failures concentrate on specific tenants or regions?"""
        tenants = self.top("controller.top_tenants", "tenant")
        figure = plots.bars(
            tenants, "tenant", "Tenants with the most reconcile failures (per second)"
        )
        return self._done("step5_correlation", tenants, figure, tenants=tenants)
