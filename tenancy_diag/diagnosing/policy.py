"""Policy evaluation, step by step as the runbook's Diagnostic Workflow has it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from tenancy_diag import plots
from tenancy_diag.analysis import patterns
from tenancy_diag.analysis.findings import Findings
from tenancy_diag.diagnosing.steps import EMPTY, Diagnosis, LogEvidence, SloSpec

SLOS = (
    SloSpec(
        "latency_p99_ms",
        "policy.latency_quantile",
        "latency_p99_ms_max",
        "<",
        "ms",
        (("quantile", "0.99"),),
    ),
    SloSpec("error_ratio", "policy.error_ratio", "error_ratio_max", "<", "ratio"),
    SloSpec("cache_hit_ratio", "policy.cache_hit_ratio", "cache_hit_ratio_min", ">=", "ratio"),
)


@dataclass
class PolicyDiagnosis(Diagnosis):
    subsystem: str = "policy"
    latency: pd.DataFrame = field(default_factory=lambda: EMPTY)
    reasons: pd.DataFrame = field(default_factory=lambda: EMPTY)
    up_changes: pd.DataFrame = field(default_factory=lambda: EMPTY)
    up_min: pd.DataFrame = field(default_factory=lambda: EMPTY)
    tenants: pd.DataFrame = field(default_factory=lambda: EMPTY)
    log: LogEvidence | None = None

    def step1_latency_and_errors(self) -> tuple[pd.DataFrame, list[Figure]]:
        """policy_eval_latency_ms and policy_eval_errors_total, against the SLOs."""
        table = self.slo(SLOS)
        self.latency = self.series("policy.latency_quantile", quantile="0.99")
        errors = self.series("policy.errors_by_reason")
        self.reasons = self.instant("policy.errors_by_reason", window=self.ctx.slo_window)
        start, th = self.ctx.incident_start, self.ctx.thresholds
        return table, [
            plots.timeseries(
                self.latency,
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

    def step2_connectivity_and_cache(self) -> list[Figure]:
        """Connectivity to the policy service (`up`) and the cache hit rate."""
        up = self.series("policy.service_up")
        cache = self.series("policy.cache_hit_ratio")
        self.up_changes = self.instant("policy.service_up_changes", window=self.ctx.slo_window)
        self.up_min = self.instant("policy.service_up")
        start = self.ctx.incident_start
        return [
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

    def step3_failing_tenant(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Evaluations for the failing tenants, as the policy client logged them."""
        self.tenants = self.top("policy.top_tenants", "tenant")
        self.log = self.logs("policy")
        return self.tenants, self.log.signatures

    def step4_versions(self) -> pd.DataFrame:
        """Residency and encryption policy ids and versions loaded, per region."""
        versions = self.instant("policy.policy_versions")
        if versions.empty:
            return versions
        table = versions.pivot_table(
            index=["policy_id", "kind"], columns="region", values="version", aggfunc="first"
        )
        # Every region must run the same version of a policy; a mismatch is a finding on its own.
        table["consistent"] = table.nunique(axis=1) == 1
        return table.reset_index()

    def assess(self) -> Findings:
        match = patterns.policy_timeout(
            slo=self.slo_rows,
            reasons=self.reasons,
            up_changes=self.up_changes,
            up_min=self.up_min,
            latency=self.latency,
            latency_max=self.ctx.thresholds["latency_p99_ms_max"],
        )
        tenants = self.tenants["tenant"].tolist() if "tenant" in self.tenants else []
        return self.findings([match] if match else [], tenants=tenants)
