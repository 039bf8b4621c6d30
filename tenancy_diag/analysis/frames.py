"""Prometheus answers as tidy DataFrames: one row per sample, one column per label, UTC times."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

TIME = "timestamp"
VALUE = "value"


def _rows(result: Iterable[dict[str, Any]], key: str) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = []
    labels: set[str] = set()
    for series in result:
        metric = series.get("metric", {})
        labels.update(metric)
        points = series.get(key) or []
        if key == "value":
            points = [points] if points else []
        for ts, value in points:
            rows.append({**metric, TIME: float(ts), VALUE: float(value)})
    return rows, sorted(labels)


def _frame(rows: list[dict[str, Any]], labels: list[str]) -> pd.DataFrame:
    columns = [*labels, TIME, VALUE]
    if not rows:
        return pd.DataFrame(
            {c: pd.Series(dtype="object") for c in labels}
            | {TIME: pd.Series(dtype="datetime64[ns, UTC]"), VALUE: pd.Series(dtype="float64")}
        )[columns]
    df = pd.DataFrame(rows, columns=columns)
    df[TIME] = pd.to_datetime(df[TIME], unit="s", utc=True)
    for label in labels:
        df[label] = df[label].astype("object")
    return df.sort_values([*labels, TIME], kind="stable").reset_index(drop=True)


def vector_frame(result: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """An instant query's vector: one row per series."""
    return _frame(*_rows(result, "value"))


def matrix_frame(result: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """A range query's matrix in long form: one row per (series, timestamp)."""
    return _frame(*_rows(result, "values"))


def wide(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Long -> wide for plotting: index timestamp, one column per value of label ``by``."""
    if df.empty:
        return pd.DataFrame()
    return df.pivot_table(index=TIME, columns=by, values=VALUE, aggfunc="sum").sort_index()
