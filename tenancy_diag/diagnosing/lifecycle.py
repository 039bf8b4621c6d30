"""Lifecycle orchestration, step by step as the runbook's Diagnostic Workflow has it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from tenancy_diag import plots
from tenancy_diag.analysis import patterns
from tenancy_diag.analysis.findings import Findings, SloRow
from tenancy_diag.diagnosing.steps import EMPTY, Diagnosis, LogEvidence, SloSpec
from tenancy_diag.sources.admin_api import JOB_FIELDS
from tenancy_diag.sources.base import JobsRequest

SLOS = (
    SloSpec("failure_ratio", "lifecycle.failure_ratio", "failure_ratio_max", "<", "ratio"),
    SloSpec(
        "replication_lag_s",
        "lifecycle.replication_lag_max",
        "replication_lag_seconds_max",
        "<",
        "s",
    ),
)
JOB_COLUMNS = ["tenant", "region", *JOB_FIELDS, "stuck_minutes"]


@dataclass
class LifecycleDiagnosis(Diagnosis):
    subsystem: str = "lifecycle"
    lag: pd.DataFrame = field(default_factory=lambda: EMPTY)
    flat_steps: pd.DataFrame = field(default_factory=lambda: EMPTY)
    candidates: pd.DataFrame = field(default_factory=lambda: EMPTY)
    jobs: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=JOB_COLUMNS))
    log: LogEvidence | None = None

    @property
    def stuck_minutes(self) -> float:
        return float(self.ctx.thresholds["stuck_step_minutes_max"])

    def step1_failures(self) -> tuple[pd.DataFrame, list[Figure]]:
        """lifecycle_job_failures_total (by step) and replication lag, against the SLOs."""
        table = self.slo(SLOS)
        failures = self.series("lifecycle.failures_by_step")
        self.lag = self.series("lifecycle.replication_lag_max")
        start = self.ctx.incident_start
        if not failures.empty:
            failures = failures.assign(step=failures["job_type"] + "/" + failures["step"])
        return table, [
            plots.timeseries(
                failures, "step", "Job step failures per second", incident_start=start
            ),
            plots.timeseries(
                self.lag,
                "region",
                "Max replication lag (s)",
                threshold=self.ctx.thresholds["replication_lag_seconds_max"],
                incident_start=start,
                ylabel="s",
            ),
        ]

    def step2_stuck_steps(self) -> tuple[pd.DataFrame, pd.DataFrame, Figure]:
        """Job logs and the steps whose in-progress count has not moved."""
        window = f"{int(self.stuck_minutes * 60)}s"
        self.flat_steps = self.instant("lifecycle.flat_steps", window=window)
        progress = self.series("lifecycle.jobs_in_progress")
        if not progress.empty:
            progress = progress.assign(step=progress["job_type"] + "/" + progress["step"])
        self.log = self.logs("lifecycle")
        return (
            self.flat_steps,
            self.log.signatures,
            plots.timeseries(
                progress,
                "step",
                "Jobs in progress per step",
                incident_start=self.ctx.incident_start,
            ),
        )

    def step3_jobs(self) -> pd.DataFrame:
        """`GET /tenants/{tenantId}/jobs` for the tenants that lag or fail (and the one asked)."""
        lagging = self.top("lifecycle.top_lagging_tenants", "tenant")
        failing = self.top("lifecycle.top_failing_tenants", "tenant")
        self.candidates = pd.concat([lagging, failing], ignore_index=True)
        tenants = list(
            dict.fromkeys(
                ([self.ctx.scope.tenant] if self.ctx.scope.tenant else [])
                + self.candidates.get("tenant", pd.Series(dtype=str)).tolist()
            )
        )
        region_of = dict(
            zip(self.candidates.get("tenant", []), self.candidates.get("region", []), strict=False)
        )
        source = self.ctx.admin_source
        if source is None:
            self.notes.append("Admin API: no --tenancy-api-url given, so jobs are not listed.")
            return self.jobs
        rows: list[dict[str, Any]] = []
        for tenant in tenants:
            jobs = self.ctx.attempt("admin-api", partial(source.jobs, JobsRequest(tenant)))
            rows.extend(
                {"tenant": tenant, "region": region_of.get(tenant), **job} for job in jobs or []
            )
        self.jobs = self._with_age(pd.DataFrame(rows, columns=JOB_COLUMNS))
        return self.jobs

    def step4_retry_candidates(self) -> pd.DataFrame:
        """Failed or stuck jobs an admin override could retry; nothing is retried from here."""
        stuck = self.stuck()
        failed = self.jobs[self.jobs["status"] == "failed"]
        return pd.concat([stuck, failed], ignore_index=True)

    def stuck(self) -> pd.DataFrame:
        running = self.jobs[self.jobs["status"] == "running"]
        return running[running["stuck_minutes"] > self.stuck_minutes]

    def _with_age(self, jobs: pd.DataFrame) -> pd.DataFrame:
        if jobs.empty:
            return jobs
        updated = pd.to_datetime(jobs["updated_at"], utc=True, errors="coerce")
        jobs["stuck_minutes"] = (
            (pd.Timestamp(self.ctx.end) - updated).dt.total_seconds() / 60
        ).round(1)
        return jobs

    def assess(self) -> Findings:
        stuck = self.stuck()
        stuck_migrations = stuck[stuck["job_type"] == "migrate"]
        if self.ctx.admin_source is not None and self.ctx.sources.get("admin-api") == "ok":
            worst = float(stuck["stuck_minutes"].max()) if not stuck.empty else 0.0
            for region in self.regions():
                self.slo_rows.append(
                    SloRow(
                        "stuck_step_minutes",
                        region,
                        worst if region in set(stuck["region"]) else 0.0,
                        self.stuck_minutes,
                        "<=",
                        "min",
                    )
                )
        match = patterns.migration_hang(
            stuck_migrations,
            self.slo_rows,
            self.lag,
            self.ctx.thresholds["replication_lag_seconds_max"],
            self.flat_steps,
        )
        tenants = list(
            dict.fromkeys(
                stuck["tenant"].tolist()
                + self.candidates.get("tenant", pd.Series(dtype=str)).tolist()
            )
        )
        jobs = stuck[
            ["tenant", "job_id", "job_type", "step", "status", "updated_at", "stuck_minutes"]
        ].to_dict("records")
        return self.findings([match] if match else [], tenants=tenants, jobs=jobs)
