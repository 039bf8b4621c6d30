"""API health, step by step as the runbook's Diagnostic Workflow has it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from tenancy_diag import plots
from tenancy_diag.analysis import logs as log_analysis
from tenancy_diag.analysis import patterns
from tenancy_diag.analysis.findings import Findings
from tenancy_diag.diagnosing.judging import Basis, conclude
from tenancy_diag.diagnosing.steps import Diagnosis, StepResult, slo_frame


def judge(evidence: Mapping[str, Any], basis: Basis) -> Findings:
    """Rate-limit saturation: 429s concentrated on few clients; tenants from the API's logs."""
    match, offenders = patterns.rate_limit_saturation(
        evidence["slo"],
        evidence["clients"],
        evidence["ratio_429"],
        basis.thresholds["ratio_429_max"],
    )
    log = evidence.get("log")
    lines = log.lines if log is not None else pd.DataFrame()
    tenants = log_analysis.tenants_where(lines, "client_id", offenders)
    return conclude(
        basis, [match] if match else [], evidence["slo"], tenants=tenants, client_ids=offenders
    )


@dataclass
class ApiDiagnosis(Diagnosis):
    subsystem: str = "api"
    REQUIRES: ClassVar[tuple[str, ...]] = (
        "step1_requests_and_errors",
        "step2_bursts",
        "step3_rate_limits_and_latency",
        "step4_client_or_service",
    )
    judge = staticmethod(judge)

    def step1_requests_and_errors(self) -> StepResult:
        """http_requests_total and http_errors_total, against the SLOs."""
        rows = self.slo()
        requests = self.series("api.request_rate")
        codes = self.series("api.errors_by_code")
        start = self.ctx.incident_start
        figures = [
            plots.timeseries(requests, "region", "Requests per second", incident_start=start),
            plots.timeseries(
                codes, "code", "Errors per second by status code", incident_start=start
            ),
        ]
        return self._done("step1_requests_and_errors", slo_frame(rows), figures, slo=rows)

    def step2_bursts(self) -> StepResult:
        """429 and 5xx error bursts."""
        ratio_429 = self.series("api.ratio_429")
        ratio_5xx = self.series("api.error_ratio_5xx")
        start, th = self.ctx.incident_start, self.ctx.thresholds
        figures = [
            plots.timeseries(
                ratio_429,
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
        return self._done("step2_bursts", figures, ratio_429=ratio_429)

    def step3_rate_limits_and_latency(self) -> StepResult:
        """Gateway rate-limit configuration (burst multiplier) and backend latency."""
        burst = self.instant("api.burst_multiplier")
        latency = self.series("api.latency_quantile", quantile="0.99")
        clients = self.top("api.top_clients", "client_id")
        figures = [
            plots.timeseries(
                latency,
                "region",
                "Backend latency p99 (ms)",
                threshold=self.ctx.thresholds["latency_p99_ms_max"],
                incident_start=self.ctx.incident_start,
                ylabel="ms",
            ),
            plots.bars(clients, "client_id", "Clients the gateway throttled most (429/s)"),
        ]
        return self._done("step3_rate_limits_and_latency", burst, figures, clients=clients)

    def step4_client_or_service(self) -> StepResult:
        """Client versus service: whose requests fail, as the API's logs say."""
        log = self.logs()
        return self._done("step4_client_or_service", log.signatures, log=log)
