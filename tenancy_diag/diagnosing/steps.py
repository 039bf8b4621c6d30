"""What every subsystem diagnosis does: SLO tables, series, top-N, pod logs, DLQs, findings.

Each runbook step is a method that returns a :class:`StepResult`: what the notebook shows and
the evidence the verdict reads. The diagnosis keeps each step's result under the step's name;
``assess()`` gathers them, names any step that has not run, and hands the evidence to the
subsystem's pure ``judge``. Skip a cell in the lab and ``assess()`` says which; run the cells in
another order and the verdict is the same.

A step that cannot reach its source returns empty frames and leaves a note; the findings say
which source was missing, so "unknown" is never mistaken for "ok".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, ClassVar

import pandas as pd

from tenancy_diag.analysis import dlq as dlq_analysis
from tenancy_diag.analysis import logs as log_analysis
from tenancy_diag.analysis.findings import Findings, SloRow
from tenancy_diag.analysis.frames import VALUE, matrix_frame, vector_frame
from tenancy_diag.analysis.quantities import figures, measure_of, measured
from tenancy_diag.diagnosing.context import Context
from tenancy_diag.diagnosing.judging import Basis
from tenancy_diag.errors import ConfigError
from tenancy_diag.querying import choose_step
from tenancy_diag.sources.base import InstantQuery, LogQuery, PeekRequest, QueueRef, RangeQuery
from tenancy_diag.subsystems import SloSpec, Subsystem
from tenancy_diag.subsystems import registry as subsystems
from tenancy_diag.times import iso

EMPTY = pd.DataFrame(columns=["timestamp", "value"])


@dataclass(frozen=True)
class StepResult:
    """One runbook step: what the notebook shows, and the evidence the verdict reads."""

    step: str
    shown: tuple[Any, ...]
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class LogEvidence:
    lines: pd.DataFrame
    signatures: pd.DataFrame
    failures: list[str]


@dataclass
class DlqEvidence:
    depth: pd.DataFrame  # region, queue, visible, not_visible, delayed, source_queues
    sample: pd.DataFrame  # the contract's body fields, redacted
    growth: dict[str, int]  # region -> messages first failed within the SLO window
    endpoints: pd.Series  # share of sampled messages per endpoint

    @property
    def read(self) -> list[str]:
        """Regions whose DLQ could be read: growth elsewhere is unknown, not zero."""
        return self.depth["region"].tolist() if "region" in self.depth else []


@dataclass
class Diagnosis:
    """Base of the subsystem diagnoses; a notebook calls one method per runbook step."""

    ctx: Context
    subsystem: str = ""
    notes: list[str] = field(default_factory=list)
    #: Step name -> its result, as the steps ran.
    results: dict[str, StepResult] = field(default_factory=dict)
    #: The steps whose evidence ``judge`` reads, in the runbook's order.
    REQUIRES: ClassVar[tuple[str, ...]] = ()

    @property
    def descriptor(self) -> Subsystem:
        return subsystems.get(self.subsystem)

    # -- steps and the verdict -----------------------------------------------------------
    def _done(self, step: str, *shown: Any, **evidence: Any) -> StepResult:
        result = StepResult(step, shown, evidence)
        self.results[step] = result
        return result

    def evidence(self) -> dict[str, Any]:
        """Every required step's evidence, merged; names the steps that have not run."""
        missing = [step for step in self.REQUIRES if step not in self.results]
        if missing:
            raise ConfigError(
                f"{self.subsystem}: assess() needs the evidence of {', '.join(missing)}; run "
                "those steps' cells first (Run All runs them in order)"
            )
        merged: dict[str, Any] = {}
        for step in self.REQUIRES:
            merged.update(self.results[step].evidence)
        return merged

    def basis(self) -> Basis:
        return Basis(
            subsystem=self.descriptor,
            incident=self.ctx.incident_id,
            end=self.ctx.end,
            thresholds=dict(self.ctx.thresholds),
            regions=tuple(self.regions()),
            runbook=self.ctx.runbook,
            sources=self.ctx.needed_sources(),
            window={
                "start": iso(self.ctx.start),
                "end": iso(self.ctx.end),
                "slo_window": self.ctx.slo_window,
            },
            slo_window=self.ctx.slo_window,
        )

    @staticmethod
    def judge(evidence: Mapping[str, Any], basis: Basis) -> Findings:
        """The subsystem's verdict: a pure function of the evidence and the basis."""
        raise NotImplementedError

    def assess(self) -> Findings:
        return type(self).judge(self.evidence(), self.basis())

    @property
    def slo_rows(self) -> list[SloRow]:
        """The SLO rows judged so far (step evidence ``slo``)."""
        return [row for r in self.results.values() for row in r.evidence.get("slo", [])]

    # -- regions and windows -----------------------------------------------------------
    def regions(self) -> list[str]:
        """The scope's regions, else the fleet's, else what Prometheus knows."""
        if self.ctx.scope.regions:
            return list(self.ctx.scope.regions)
        if self.ctx.fleet_regions:
            return list(self.ctx.fleet_regions)
        found = self.instant_raw(
            f"count by ({self.ctx.signals.label('region')}) "
            f"({self.ctx.signals.selector('reconcile_total')})"
        )
        regions = sorted(found["region"].dropna().unique()) if "region" in found else []
        self.ctx.fleet_regions = tuple(regions)
        return list(regions)

    def incident_window(self) -> str:
        """A PromQL range covering the incident so far (30 min when its start is unknown)."""
        start = self.ctx.incident_start or self.ctx.end - timedelta(minutes=30)
        seconds = max(int((self.ctx.end - start).total_seconds()), 300)
        return f"{seconds}s"

    # -- Prometheus ----------------------------------------------------------------------
    def instant_raw(self, promql: str) -> pd.DataFrame:
        source = self.ctx.wanted("metrics")
        if source is None:
            return EMPTY
        result = self.ctx.attempt(
            "metrics", lambda: source.instant_query(InstantQuery(promql, self.ctx.end))
        )
        return vector_frame(result) if result is not None else EMPTY

    def instant(self, key: str, **params: Any) -> pd.DataFrame:
        df = self.instant_raw(self.ctx.signals.render(key, self.ctx.scope, **params))
        return measured(df.copy(), self.measure(key))

    def measure(self, key: str) -> str:
        """What query ``key``'s value measures ("webhook failures /s"), for columns and axes."""
        group, _, name = key.partition(".")
        return measure_of(self.ctx.signals.doc.queries[group][name])

    def series(self, key: str, **params: Any) -> pd.DataFrame:
        """Range query over the lookback, rate window ``ctx.rate_window`` unless given."""
        source = self.ctx.wanted("metrics")
        if source is None:
            return measured(EMPTY.copy(), self.measure(key))
        params.setdefault("window", self.ctx.rate_window)
        params = {
            k: v
            for k, v in params.items()
            if f"${k}"
            in self.ctx.signals.doc.queries[key.split(".", maxsplit=1)[0]][key.split(".")[1]]
        }
        promql = self.ctx.signals.render(key, self.ctx.scope, **params)
        step = choose_step(self.ctx.start, self.ctx.end)
        request = RangeQuery(promql, self.ctx.start, self.ctx.end, step)
        result = self.ctx.attempt("metrics", lambda: source.range_query(request))
        frame = matrix_frame(result) if result is not None else EMPTY.copy()
        return measured(frame, self.measure(key))

    def top(self, key: str, label: str) -> pd.DataFrame:
        """Top-N by ``label`` over the incident window, zeros dropped, largest first."""
        df = self.instant(key, k=self.ctx.top_n, window=self.incident_window())
        if df.empty or label not in df.columns:
            return measured(pd.DataFrame(columns=["region", label, VALUE]), self.measure(key))
        df = df[df[VALUE] > 0].sort_values([VALUE, label], ascending=[False, True])
        top = df[[c for c in ("region", label, VALUE) if c in df.columns]].reset_index(drop=True)
        return measured(top, self.measure(key))

    def slo(self, specs: Sequence[SloSpec] | None = None) -> list[SloRow]:
        """One row per (SLO, region) judged over the SLO window at ``end``; the descriptor's
        SLOs unless given."""
        chosen = self.descriptor.slos if specs is None else specs
        return self.slo_rows_for(chosen, self.ctx.slo_window, self.ctx.thresholds)

    def slo_rows_for(
        self,
        specs: Sequence[SloSpec],
        window: str,
        thresholds: Mapping[str, float],
        prefix: str = "",
    ) -> list[SloRow]:
        """The rows of :meth:`slo` over ``window`` against ``thresholds``; ``prefix`` tells
        apart SLOs of several subsystems judged together."""
        rows: list[SloRow] = []
        for spec in specs:
            params: dict[str, Any] = {"window": window, **dict(spec.params)}
            df = self.instant(spec.query, **params)
            values = {
                str(r): float(v)
                for r, v in zip(df.get("region", []), df.get(VALUE, []), strict=False)
            }
            limit = float(thresholds[spec.threshold])
            rows += [
                SloRow(
                    f"{prefix}{spec.name}", region, values.get(region), limit, spec.op, spec.unit
                )
                for region in self.regions()
            ]
        return rows

    # -- pod logs ------------------------------------------------------------------------
    def logs(self, app_key: str | None = None, since: datetime | None = None) -> LogEvidence:
        """The subsystem's pods' logs (the descriptor's app unless given), ERRORs grouped."""
        source = self.ctx.wanted("logs")
        empty = LogEvidence(pd.DataFrame(), pd.DataFrame(), [])
        if source is None:
            self.notes.append("Pod logs: no log source given, so no log evidence.")
            return empty
        app_key = app_key or self.descriptor.log_app
        if app_key is None:
            raise ConfigError(f"subsystem {self.subsystem!r} names no log_app; set one")
        query = LogQuery(
            app=self.ctx.signals.doc.logs.apps[app_key],
            regions=tuple(self.regions()),
            since=since or self.ctx.start,
            until=self.ctx.end,
            tail_lines=5000,
        )
        answer = self.ctx.attempt("logs", lambda: source.lines(query))
        if answer is None:
            self.notes.append(f"Pod logs unavailable: {self.ctx.state_of('logs')}")
            return empty
        lines = log_analysis.frame(answer.get("lines") or [])
        failures = [
            f"{e.get('pod') or e.get('region')}: {e.get('message')}"
            for e in answer.get("errors") or []
        ]
        return LogEvidence(lines, log_analysis.failure_signatures(lines), failures)

    # -- dead-letter queues ----------------------------------------------------------------
    def dlq(
        self, kind: str | None = None, sample_size: int = 100, window: str | None = None
    ) -> DlqEvidence:
        """The DLQ (the descriptor's unless given) per region: depth and a sample read without
        deleting or hiding; growth counts messages that first failed within ``window``."""
        source = self.ctx.wanted("queues")
        empty = DlqEvidence(pd.DataFrame(), dlq_analysis.frame([]), {}, pd.Series(dtype=float))
        if source is None:
            self.notes.append("DLQ: no queue source given, so no DLQ evidence.")
            return empty
        kind = kind or self.descriptor.dlq_kind
        if kind is None:
            raise ConfigError(f"subsystem {self.subsystem!r} names no dlq_kind; set one")
        names = self.ctx.signals.doc.dlq.queues[kind]
        depth_rows: list[dict[str, Any]] = []
        messages: list[dict[str, Any]] = []
        for region in self.regions():
            ref = QueueRef(region, names.dlq.format(region=region))
            depth = self.ctx.attempt("queues", partial(source.depth, ref))
            if depth is None:
                continue
            feeding = self.ctx.attempt("queues", partial(source.source_queues, ref)) or []
            depth_rows.append(
                {
                    "region": region,
                    "queue": ref.queue_name,
                    **_depth_fields(depth),
                    "source_queues": ", ".join(feeding),
                }
            )
            peek = PeekRequest(region, ref.queue_name, sample_size)
            messages.extend(self.ctx.attempt("queues", partial(source.peek, peek)) or [])
        sample = dlq_analysis.frame(messages)
        growth = dlq_analysis.growth_within(sample, self.ctx.end, window or self.ctx.slo_window)
        return DlqEvidence(pd.DataFrame(depth_rows), sample, growth, _endpoint_shares(sample))


def dlq_growth_rows(evidence: DlqEvidence | None, basis: Basis) -> list[SloRow]:
    """The DLQ-growth SLO per region; a region whose DLQ could not be read has no data."""
    read = evidence.read if evidence is not None else []
    growth = evidence.growth if evidence is not None else {}
    limit = float(basis.thresholds.get("dlq_growth_max", 0))
    return dlq_analysis.dlq_growth_rows(growth, basis.regions, read, limit)


def slo_frame(rows: Sequence[SloRow]) -> pd.DataFrame:
    data = [r.to_json() for r in rows]
    df = pd.DataFrame(data, columns=["name", "region", "value", "op", "threshold", "unit", "pass"])
    df["pass"] = df["pass"].map({True: "pass", False: "FAIL", None: "no data"})
    return df


def _depth_fields(depth: dict[str, Any]) -> dict[str, Any]:
    return {k: depth.get(k) for k in ("visible", "not_visible", "delayed")}


def _endpoint_shares(sample: pd.DataFrame) -> pd.Series:
    if sample.empty or "endpoint" not in sample or sample["endpoint"].isna().all():
        return pd.Series(dtype=float)
    return sample["endpoint"].value_counts(normalize=True)


def column(evidence: Mapping[str, Any], key: str, name: str = "tenant") -> list[str]:
    """Column ``name`` of the frame ``evidence[key]``, empty when it has none."""
    frame = evidence.get(key)
    if not isinstance(frame, pd.DataFrame) or name not in frame:
        return []
    return [str(v) for v in frame[name].tolist()]


def tenant_figures(evidence: Mapping[str, Any], key: str = "tenants") -> dict[str, str]:
    """What each tenant of the top-N frame ``evidence[key]`` suffered, with its unit."""
    frame = evidence.get(key)
    return figures(frame) if isinstance(frame, pd.DataFrame) else {}
