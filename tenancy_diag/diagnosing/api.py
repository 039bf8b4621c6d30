"""API health, step by step as the runbook's Diagnostic Workflow has it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from tenancy_diag import plots
from tenancy_diag.analysis import logs as log_analysis
from tenancy_diag.analysis import patterns
from tenancy_diag.analysis.findings import Findings
from tenancy_diag.diagnosing.steps import EMPTY, Diagnosis, LogEvidence, SloSpec

SLOS = (
    SloSpec("error_ratio_5xx", "api.error_ratio_5xx", "error_ratio_5xx_max", "<", "ratio"),
    SloSpec("ratio_429", "api.ratio_429", "ratio_429_max", "<", "ratio"),
    SloSpec(
        "latency_p99_ms",
        "api.latency_quantile",
        "latency_p99_ms_max",
        "<",
        "ms",
        (("quantile", "0.99"),),
    ),
)


@dataclass
class ApiDiagnosis(Diagnosis):
    subsystem: str = "api"
    ratio_429: pd.DataFrame = field(default_factory=lambda: EMPTY)
    clients: pd.DataFrame = field(default_factory=lambda: EMPTY)
    log: LogEvidence | None = None

    def step1_requests_and_errors(self) -> tuple[pd.DataFrame, list[Figure]]:
        """http_requests_total and http_errors_total, against the SLOs."""
        table = self.slo(SLOS)
        requests = self.series("api.request_rate")
        codes = self.series("api.errors_by_code")
        start = self.ctx.incident_start
        return table, [
            plots.timeseries(requests, "region", "Requests per second", incident_start=start),
            plots.timeseries(
                codes, "code", "Errors per second by status code", incident_start=start
            ),
        ]

    def step2_bursts(self) -> list[Figure]:
        """429 and 5xx error bursts."""
        self.ratio_429 = self.series("api.ratio_429")
        ratio_5xx = self.series("api.error_ratio_5xx")
        start, th = self.ctx.incident_start, self.ctx.thresholds
        return [
            plots.timeseries(
                self.ratio_429,
                "region",
                "429 share of requests",
                threshold=th["ratio_429_max"],
                incident_start=start,
            ),
            plots.timeseries(
                ratio_5xx,
                "region",
                "5xx share of requests",
                threshold=th["error_ratio_5xx_max"],
                incident_start=start,
            ),
        ]

    def step3_rate_limits_and_latency(self) -> tuple[pd.DataFrame, list[Figure]]:
        """Gateway rate-limit configuration (burst multiplier) and backend latency."""
        burst = self.instant("api.burst_multiplier")
        latency = self.series("api.latency_quantile", quantile="0.99")
        self.clients = self.top("api.top_clients", "client_id")
        return burst, [
            plots.timeseries(
                latency,
                "region",
                "Backend latency p99 (ms)",
                threshold=self.ctx.thresholds["latency_p99_ms_max"],
                incident_start=self.ctx.incident_start,
                ylabel="ms",
            ),
            plots.bars(self.clients, "client_id", "Clients the gateway throttled most (429/s)"),
        ]

    def step4_client_or_service(self) -> pd.DataFrame:
        """Client versus service: whose requests fail, as the API's logs say."""
        self.log = self.logs("api")
        return self.log.signatures

    def assess(self) -> Findings:
        match, offenders = patterns.rate_limit_saturation(
            self.slo_rows, self.clients, self.ratio_429, self.ctx.thresholds["ratio_429_max"]
        )
        lines = self.log.lines if self.log else pd.DataFrame()
        tenants = log_analysis.tenants_where(lines, "client_id", offenders)
        return self.findings([match] if match else [], tenants=tenants, client_ids=offenders)
