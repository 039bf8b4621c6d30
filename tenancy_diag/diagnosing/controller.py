"""Controller health, step by step as the runbook's Diagnostic Workflow has it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from tenancy_diag import plots
from tenancy_diag.analysis import patterns
from tenancy_diag.analysis.findings import Findings
from tenancy_diag.diagnosing.steps import EMPTY, Diagnosis, DlqEvidence, LogEvidence, SloSpec

SLOS = (
    SloSpec(
        "reconcile_success_ratio",
        "controller.reconcile_success_ratio",
        "reconcile_success_ratio_min",
        ">=",
        "ratio",
    ),
    SloSpec("queue_depth", "controller.queue_depth", "queue_depth_max", "<", "items"),
)


@dataclass
class ControllerDiagnosis(Diagnosis):
    subsystem: str = "controller"
    queue: pd.DataFrame = field(default_factory=lambda: EMPTY)
    reasons_now: pd.DataFrame = field(default_factory=lambda: EMPTY)
    log: LogEvidence | None = None
    dlq_evidence: DlqEvidence | None = None
    tenants: pd.DataFrame = field(default_factory=lambda: EMPTY)

    def step1_overview(self) -> pd.DataFrame:
        """Dashboard `Controller Health`: the SLO table."""
        return self.slo(SLOS)

    def step2_graphs(self) -> list[Figure]:
        """reconcile_failures_total (by reason) and queue_depth, threshold and start marked."""
        failures = self.series("controller.failures_by_reason")
        self.queue = self.series("controller.queue_depth")
        self.reasons_now = self.instant("controller.failures_by_reason", window=self.ctx.slo_window)
        start = self.ctx.incident_start
        return [
            plots.timeseries(
                failures,
                "reason",
                "Reconcile failures by reason (per second)",
                incident_start=start,
                ylabel="failures/s",
            ),
            plots.timeseries(
                self.queue,
                "region",
                "Controller work queue depth",
                threshold=self.ctx.thresholds["queue_depth_max"],
                incident_start=start,
                ylabel="items",
            ),
        ]

    def step3_log_signatures(self) -> pd.DataFrame:
        """`kubectl logs controller-<id> | grep ERROR`, grouped into failure signatures."""
        self.log = self.logs("controller")
        return self.log.signatures

    def step4_dlq(self) -> DlqEvidence:
        """SQS queue depth and the reconcile DLQ (a sample that neither deletes nor hides)."""
        self.dlq_evidence = self.dlq("reconcile")
        return self.dlq_evidence

    def step5_correlation(self) -> tuple[pd.DataFrame, Figure]:
        """Do failures concentrate on specific tenants or regions?"""
        self.tenants = self.top("controller.top_tenants", "tenant")
        return self.tenants, plots.bars(
            self.tenants, "tenant", "Tenants with the most reconcile failures (per second)"
        )

    def assess(self) -> Findings:
        growth = self.dlq_evidence.growth if self.dlq_evidence else {}
        match = patterns.reconcile_backlog(
            self.queue,
            self.slo_rows,
            self.reasons_now,
            growth,
            self.ctx.thresholds["queue_depth_max"],
        )
        found = [match] if match else []
        tenants = self.tenants["tenant"].tolist() if "tenant" in self.tenants else []
        return self.findings(found, tenants=tenants)
