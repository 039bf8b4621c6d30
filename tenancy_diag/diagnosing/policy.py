"""Policy evaluation, step by step as the runbook's Diagnostic Workflow has it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

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
    """Policy timeout: evaluations slow or timing out while the service flaps or lags."""
    match = patterns.policy_timeout(
        slo=evidence["slo"],
        reasons=evidence["reasons"],
        up_changes=evidence["up_changes"],
        up_min=evidence["up_min"],
        latency=evidence["latency"],
        latency_max=basis.thresholds["latency_p99_ms_max"],
    )
    return conclude(
        basis,
        [match] if match else [],
        evidence["slo"],
        tenants=column(evidence, "tenants"),
        tenant_figures=tenant_figures(evidence),
    )


@dataclass
class PolicyDiagnosis(Diagnosis):
    subsystem: str = "policy"
    REQUIRES: ClassVar[tuple[str, ...]] = (
        "step1_latency_and_errors",
        "step2_connectivity_and_cache",
        "step3_failing_tenant",
    )
    judge = staticmethod(judge)

    def step1_latency_and_errors(self) -> StepResult:
        """policy_eval_latency_ms and policy_eval_errors_total, against the SLOs."""
        rows = self.slo()
        latency = self.series("policy.latency_quantile", quantile="0.99")
        errors = self.series("policy.errors_by_reason")
        reasons = self.instant("policy.errors_by_reason", window=self.ctx.slo_window)
        start, th = self.ctx.incident_start, self.ctx.thresholds
        figures = [
            plots.timeseries(
                latency,
                "region",
                "Policy evaluation latency p99 (ms)",
                threshold=th["latency_p99_ms_max"],
                incident_start=start,
                ylabel="ms",
            ),
            plots.timeseries(
                errors,
                "reason",
                "Policy evaluation errors by reason (per second)",
                incident_start=start,
                ylabel="errors/s",
            ),
        ]
        return self._done(
            "step1_latency_and_errors",
            slo_frame(rows),
            figures,
            slo=rows,
            latency=latency,
            reasons=reasons,
        )

    def step2_connectivity_and_cache(self) -> StepResult:
        """Connectivity to the policy service (`up`) and the cache hit rate."""
        up = self.series("policy.service_up")
        cache = self.series("policy.cache_hit_ratio")
        up_changes = self.instant("policy.service_up_changes", window=self.ctx.slo_window)
        up_min = self.instant("policy.service_up")
        start = self.ctx.incident_start
        figures = [
            plots.timeseries(
                up, "region", "policy-service up (1 = reachable)", incident_start=start
            ),
            plots.timeseries(
                cache,
                "region",
                "Policy cache hit ratio",
                threshold=self.ctx.thresholds["cache_hit_ratio_min"],
                incident_start=start,
            ),
        ]
        return self._done(
            "step2_connectivity_and_cache", figures, up_changes=up_changes, up_min=up_min
        )

    def step3_failing_tenant(self) -> StepResult:
        """Evaluations for the failing tenants, as the policy client logged them."""
        tenants = self.top("policy.top_tenants", "tenant")
        log = self.logs()
        return self._done("step3_failing_tenant", tenants, log.signatures, tenants=tenants, log=log)

    def step4_versions(self) -> StepResult:
        """Residency and encryption policy ids and versions loaded, per region."""
        versions = self.instant("policy.policy_versions")
        if versions.empty:
            return self._done("step4_versions", versions, versions=versions)
        table = versions.pivot_table(
            index=["policy_id", "kind"], columns="region", values="version", aggfunc="first"
        )
        # Every region must run the same version of a policy; a mismatch is a finding on its own.
        table["consistent"] = table.nunique(axis=1) == 1
        table = pd.DataFrame(table.reset_index())
        return self._done("step4_versions", table, versions=table)
