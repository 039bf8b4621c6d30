"""Named queries from the signals mapping, run against a metric source, as DataFrames."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from tenancy_diag.analysis.frames import matrix_frame, vector_frame
from tenancy_diag.errors import ConfigError
from tenancy_diag.settings import PrometheusSettings
from tenancy_diag.signals import Scope, Signals
from tenancy_diag.sources.base import InstantQuery, MetricSource, RangeQuery

# Steps a person reads easily on a graph axis, seconds.
_NICE_STEPS = (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


def choose_step(
    start: datetime,
    end: datetime,
    *,
    target_points: int = 720,
    min_step_s: int = 15,
    max_points: int = 11_000,
) -> int:
    """A readable step giving about ``target_points`` and never more than ``max_points``.

    Prometheus refuses a range query returning more than 11,000 points per series.
    """
    span = (end - start).total_seconds()
    if span <= 0:
        raise ConfigError(f"range start {start.isoformat()} is not before end {end.isoformat()}")
    wanted = max(min_step_s, span / max(target_points, 1))
    step = next((s for s in _NICE_STEPS if s >= wanted), math.ceil(wanted))
    # ``points = span/step + 1`` must stay within the server's limit.
    floor = math.ceil(span / (max_points - 1))
    return max(step, floor)


@dataclass
class Metrics:
    """The signals mapping's queries, scoped to a run, against one metric source."""

    source: MetricSource
    signals: Signals
    scope: Scope = field(default_factory=Scope)
    settings: PrometheusSettings | None = None

    def promql(self, key: str, **params: str | int | float) -> str:
        return self.signals.render(key, self.scope, **params)

    def instant(self, key: str, at: datetime, **params: str | int | float) -> pd.DataFrame:
        request = InstantQuery(self.promql(key, **params), at)
        return vector_frame(self.source.instant_query(request))

    def range(
        self,
        key: str,
        start: datetime,
        end: datetime,
        *,
        target_points: int = 720,
        **params: str | int | float,
    ) -> pd.DataFrame:
        min_step = self.settings.min_step_s if self.settings else 15
        max_points = self.settings.max_points_per_series if self.settings else 11_000
        step = choose_step(
            start, end, target_points=target_points, min_step_s=min_step, max_points=max_points
        )
        request = RangeQuery(self.promql(key, **params), start, end, step)
        return matrix_frame(self.source.range_query(request))
