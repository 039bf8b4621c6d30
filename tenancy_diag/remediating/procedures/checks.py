"""Prometheus-backed checks the procedures share: one value per region at ``end``."""

from __future__ import annotations

from typing import Literal

from tenancy_diag.analysis.findings import SloRow
from tenancy_diag.errors import SourceError
from tenancy_diag.remediating.connecting import Session
from tenancy_diag.remediating.plans import Check
from tenancy_diag.signals import Scope


def region_value(session: Session, key: str, region: str, **params: str) -> float | None:
    """The signals query ``key`` for ``region`` at ``end``; None without data or Prometheus."""
    promql = session.signals.render(key, Scope(regions=(region,)), **params)
    try:
        rows = session.instant(promql)
    except SourceError:
        return None
    for row in rows or []:
        if row.get("metric", {}).get("region", region) == region:
            return float(row["value"][1])
    return None


def threshold_check(
    name: str,
    value: float | None,
    threshold: float,
    op: Literal["<", ">="],
    unit: str,
    *,
    required: bool = True,
) -> Check:
    """``value <op> threshold`` judged as an SLO row is (NaN is no data), as a precondition."""
    passed = SloRow(name, "", value, threshold, op, unit).passed
    if passed is None or value is None:
        return Check(name, None, "no data (is --prometheus-url given?)", required)
    return Check(name, passed, f"{value:.4g}{unit} ({op} {threshold:g}{unit} wanted)", required)


def slo(session: Session, subsystem: str, name: str) -> float:
    return float(session.signals.doc.slos[subsystem][name])
