"""The runbook's monthly task "validate metric names and dashboard bindings", as a command.

For every series the signals mapping expects, ask Prometheus whether it exists near a given
time and which of its expected labels never appear, so a renamed metric or a dropped label is
caught before an incident needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tenancy_diag.signals import ExpectedSeries, Signals
from tenancy_diag.sources.base import InstantQuery, MetricSource

_CHECK = "tenancy_diag_check"


@dataclass(frozen=True)
class SeriesCheck:
    key: str
    name: str
    series: int  # how many series exist (0 = missing)
    missing_labels: tuple[str, ...]

    @property
    def present(self) -> bool:
        return self.series > 0 and not self.missing_labels


def _check_query(expected: ExpectedSeries, lookback: str) -> str:
    # One query per metric: the series count, then one count per label that must be non-empty,
    # each tagged with the label it checks; an absent tag means no series carries that label.
    parts = [
        f"label_replace(count(last_over_time({expected.selector()}[{lookback}])), "
        f'"{_CHECK}", "__series__", "", "")'
    ]
    for label in expected.labels:
        selector = expected.selector([f'{label}!=""'])
        parts.append(
            f"label_replace(count(last_over_time({selector}[{lookback}])), "
            f'"{_CHECK}", "{label}", "", "")'
        )
    return " or ".join(parts)


def check_signals(
    source: MetricSource, signals: Signals, at: datetime, lookback: str = "1h"
) -> list[SeriesCheck]:
    """Check every expected series at ``at`` (looking back ``lookback``)."""
    out = []
    for expected in signals.expected_series():
        result = source.instant_query(InstantQuery(_check_query(expected, lookback), at))
        counts = {r["metric"].get(_CHECK, ""): int(float(r["value"][1])) for r in result}
        series = counts.get("__series__", 0)
        missing = () if series == 0 else tuple(lab for lab in expected.labels if lab not in counts)
        out.append(SeriesCheck(expected.key, expected.name, series, missing))
    return out


def report_lines(checks: list[SeriesCheck]) -> list[str]:
    lines = []
    for c in checks:
        if c.series == 0:
            lines.append(f"MISSING  {c.name}  (signals key {c.key}): no series")
        elif c.missing_labels:
            lines.append(
                f"MISSING  {c.name}  (signals key {c.key}): {c.series} series, "
                f"lacking labels {', '.join(c.missing_labels)}"
            )
        else:
            lines.append(f"present  {c.name}  ({c.series} series)")
    bad = sum(not c.present for c in checks)
    lines.append(f"{len(checks) - bad} of {len(checks)} expected series present, {bad} missing")
    return lines
