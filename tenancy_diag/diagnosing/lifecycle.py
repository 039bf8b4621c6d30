"""Lifecycle orchestration, step by step as the runbook's Diagnostic Workflow has it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any, ClassVar

import pandas as pd

from tenancy_diag import plots
from tenancy_diag.analysis import patterns
from tenancy_diag.analysis.findings import Findings, SloRow
from tenancy_diag.analysis.quantities import figures, merge_figures
from tenancy_diag.diagnosing.judging import Basis, conclude
from tenancy_diag.diagnosing.steps import Diagnosis, StepResult, column, slo_frame
from tenancy_diag.sources.admin_api import JOB_FIELDS
from tenancy_diag.sources.base import JobsRequest

JOB_COLUMNS = ["tenant", "region", *JOB_FIELDS, "stuck_minutes"]
STUCK_COLUMNS = ["tenant", "job_id", "job_type", "step", "status", "updated_at", "stuck_minutes"]


def stuck(jobs: pd.DataFrame, stuck_minutes_max: float) -> pd.DataFrame:
    """Running jobs whose step has not moved for longer than the threshold."""
    running = jobs[jobs["status"] == "running"]
    return running[running["stuck_minutes"] > stuck_minutes_max]


def with_age(jobs: pd.DataFrame, end: datetime) -> pd.DataFrame:
    """Jobs with ``stuck_minutes``: minutes since their last update, at ``end``."""
    if jobs.empty:
        return jobs
    updated = pd.to_datetime(jobs["updated_at"], utc=True, errors="coerce")
    jobs = jobs.copy()
    jobs["stuck_minutes"] = ((pd.Timestamp(end) - updated).dt.total_seconds() / 60).round(1)
    return jobs


def stuck_rows(jobs: pd.DataFrame, listed: bool, basis: Basis) -> list[SloRow]:
    """The stuck-step SLO per region; no data when the jobs could not be listed."""
    limit = float(basis.thresholds["stuck_step_minutes_max"])
    late = stuck(jobs, limit)
    worst = float(late["stuck_minutes"].max()) if not late.empty else 0.0
    regions = set(late["region"])
    return [
        SloRow(
            "stuck_step_minutes",
            region,
            (worst if region in regions else 0.0) if listed else None,
            limit,
            "<=",
            "min",
        )
        for region in basis.regions
    ]


def idle_regions(progress: pd.DataFrame) -> set[str]:
    """Regions whose lifecycle exporter answers (it reports jobs in progress per step).

    The contract's replication lag is "of a running migration": the gauge has series only
    while a migration replicates, and which steps replicate is the service's business. So where
    the exporter answers and the gauge has no series, no migration is replicating: lag 0, not a
    gap. Where the exporter does not answer either, the lag stays no data."""
    if progress.empty or "region" not in progress.columns:
        return set()
    return {str(region) for region in progress["region"].dropna().unique()}


def with_idle_lag(slo: list[SloRow], idle: set[str]) -> list[SloRow]:
    """Replication lag is "a running migration's": with none running it is 0, not no data."""
    return [
        replace(row, value=0.0)
        if row.name == "replication_lag_s" and row.passed is None and row.region in idle
        else row
        for row in slo
    ]


def judge(evidence: Mapping[str, Any], basis: Basis) -> Findings:
    """Migration hang: a migrate job stuck on one step while replication lags or steps stall.

    Jobs are listed for the tenants that lag or fail; when there are such tenants and the admin
    API could not list their jobs, the stuck-step SLO has no data."""
    jobs: pd.DataFrame = evidence["jobs"]
    limit = float(basis.thresholds["stuck_step_minutes_max"])
    late = stuck(jobs, limit)
    slo = with_idle_lag(list(evidence["slo"]), idle_regions(evidence["progress"]))
    if evidence["jobs_listed"] is not None:
        slo += stuck_rows(jobs, evidence["jobs_listed"], basis)
    match = patterns.migration_hang(
        late[late["job_type"] == "migrate"],
        slo,
        evidence["lag"],
        basis.thresholds["replication_lag_seconds_max"],
        evidence["flat_steps"],
    )
    tenants = list(dict.fromkeys(late["tenant"].tolist() + column(evidence, "candidates")))
    return conclude(
        basis,
        [match] if match else [],
        slo,
        tenants=tenants,
        tenant_figures=dict(evidence.get("tenant_figures") or {}),
        jobs=late[STUCK_COLUMNS].to_dict("records"),
    )


@dataclass
class LifecycleDiagnosis(Diagnosis):
    subsystem: str = "lifecycle"
    REQUIRES: ClassVar[tuple[str, ...]] = ("step1_failures", "step2_stuck_steps", "step3_jobs")
    judge = staticmethod(judge)

    @property
    def stuck_minutes(self) -> float:
        return float(self.ctx.thresholds["stuck_step_minutes_max"])

    def step1_failures(self) -> StepResult:
        """lifecycle_job_failures_total (by step) and replication lag, against the SLOs."""
        rows = self.slo()
        failures = self.series("lifecycle.failures_by_step")
        lag = self.series("lifecycle.replication_lag_max")
        start = self.ctx.incident_start
        if not failures.empty:
            failures = failures.assign(step=failures["job_type"] + "/" + failures["step"])
        figures = [
            plots.timeseries(
                failures, "step", "Job step failures per second", incident_start=start
            ),
            plots.timeseries(
                lag,
                "region",
                "Max replication lag (s)",
                threshold=self.ctx.thresholds["replication_lag_seconds_max"],
                incident_start=start,
                ylabel="s",
            ),
        ]
        return self._done("step1_failures", slo_frame(rows), figures, slo=rows, lag=lag)

    def step2_stuck_steps(self) -> StepResult:
        """Job logs and the steps whose in-progress count has not moved."""
        window = f"{int(self.stuck_minutes * 60)}s"
        flat_steps = self.instant("lifecycle.flat_steps", window=window)
        progress = self.series("lifecycle.jobs_in_progress")
        if not progress.empty:
            progress = progress.assign(step=progress["job_type"] + "/" + progress["step"])
        log = self.logs()
        figure = plots.timeseries(
            progress, "step", "Jobs in progress per step", incident_start=self.ctx.incident_start
        )
        return self._done(
            "step2_stuck_steps",
            flat_steps,
            log.signatures,
            figure,
            flat_steps=flat_steps,
            progress=progress,
            log=log,
        )

    def step3_jobs(self) -> StepResult:
        """`GET /tenants/{tenantId}/jobs` for the tenants that lag or fail (and the one asked)."""
        lagging = self.top("lifecycle.top_lagging_tenants", "tenant")
        failing = self.top("lifecycle.top_failing_tenants", "tenant")
        candidates = pd.concat([lagging, failing], ignore_index=True)
        tenants = list(
            dict.fromkeys(
                ([self.ctx.scope.tenant] if self.ctx.scope.tenant else [])
                + candidates.get("tenant", pd.Series(dtype=str)).tolist()
            )
        )
        region_of = dict(
            zip(candidates.get("tenant", []), candidates.get("region", []), strict=False)
        )
        jobs = pd.DataFrame(columns=JOB_COLUMNS)
        # None: no tenant needed listing, so the stuck-step SLO is not judged at all.
        listed: bool | None = None
        source = self.ctx.wanted("admin") if tenants else None
        if tenants and source is None:
            self.notes.append("Admin API: no --tenancy-api-url given, so jobs are not listed.")
            listed = False
        elif source is not None:
            rows: list[dict[str, Any]] = []
            answered = 0
            for tenant in tenants:
                found = self.ctx.attempt("admin", partial(source.jobs, JobsRequest(tenant)))
                answered += found is not None
                rows.extend(
                    {"tenant": tenant, "region": region_of.get(tenant), **job}
                    for job in found or []
                )
            jobs = with_age(pd.DataFrame(rows, columns=JOB_COLUMNS), self.ctx.end)
            listed = answered == len(tenants)
        return self._done(
            "step3_jobs",
            jobs,
            jobs=jobs,
            jobs_listed=listed,
            candidates=candidates,
            tenant_figures=merge_figures(figures(lagging), figures(failing)),
        )

    def step4_retry_candidates(self) -> StepResult:
        """Failed or stuck jobs an admin override could retry; nothing is retried from here."""
        jobs = self.results["step3_jobs"].evidence["jobs"] if "step3_jobs" in self.results else None
        if jobs is None:
            return self._done("step4_retry_candidates", "_Run step 3 first: no jobs listed._")
        late = stuck(jobs, self.stuck_minutes)
        failed = jobs[jobs["status"] == "failed"]
        table = pd.concat([late, failed], ignore_index=True)
        return self._done("step4_retry_candidates", table, retry_candidates=table)
