"""Dead-letter messages as a DataFrame, and the tallies the runbook asks for.

Pure: the peeked messages (already redacted by the source) in, DataFrames out. A body that is
not the contract's JSON is kept as a row with ``parse_error`` set rather than dropped, because
a DLQ full of unreadable messages is itself a finding.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from tenancy_diag.analysis.findings import SloRow

#: The contract's body fields (tenancy-signals.md, "Dead-letter queues").
BODY_FIELDS = (
    "tenant_id",
    "region",
    "kind",
    "event_type",
    "sequence",
    "endpoint",
    "error_code",
    "attempts",
    "first_failed_at",
    "last_error",
)
#: Fields a body must carry to count as readable (``endpoint`` is for webhooks only).
REQUIRED_FIELDS = ("tenant_id", "region", "kind", "error_code", "first_failed_at")
MESSAGE_FIELDS = ("message_id", "sent_at", "receive_count")
COLUMNS = (*MESSAGE_FIELDS, *BODY_FIELDS, "parse_error", "raw_body")
_INTEGERS = ("receive_count", "sequence", "attempts")
_TIMES = ("sent_at", "first_failed_at")
_TEXT = tuple(c for c in COLUMNS if c not in _INTEGERS and c not in _TIMES)


def frame(messages: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per message: the message's own fields, the body's fields, and ``parse_error``.

    Times are UTC; ``raw_body`` is kept only for rows whose body could not be read.
    """
    rows = [_row(m) for m in messages]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in _TIMES:
        times = pd.to_datetime(df[column], utc=True, errors="coerce", format="ISO8601")
        df[column] = times.astype("datetime64[ns, UTC]")
    for column in _INTEGERS:
        df[column] = pd.to_numeric(df[column], errors="coerce").astype("Int64")
    for column in _TEXT:
        df[column] = df[column].astype("object")
    bad_time = df["first_failed_at"].isna() & df["parse_error"].isna()
    df.loc[bad_time, "parse_error"] = "first_failed_at is not an ISO-8601 time"
    return df


def _row(message: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {k: message.get(k) for k in MESSAGE_FIELDS}
    raw = message.get("body", "")
    body, error = _parse(raw)
    row.update({k: _scalar(body.get(k)) for k in BODY_FIELDS})
    row["parse_error"] = error
    row["raw_body"] = raw if error else None
    return row


def _parse(raw: object) -> tuple[dict[str, Any], str | None]:
    try:
        body = json.loads(raw) if isinstance(raw, str | bytes) else raw
    except json.JSONDecodeError as e:
        return {}, f"body is not JSON ({e.msg} at character {e.pos})"
    except (ValueError, TypeError) as e:
        return {}, f"body is not JSON ({type(e).__name__})"
    if not isinstance(body, dict):
        return {}, f"body is JSON {type(body).__name__}, not an object"
    missing = [k for k in REQUIRED_FIELDS if body.get(k) in (None, "")]
    return body, f"body lacks {', '.join(missing)}" if missing else None


def _scalar(value: Any) -> Any:
    # A nested value would make the column unhashable for group-bys; keep it readable instead.
    return json.dumps(value) if isinstance(value, dict | list) else value


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """The rows whose body follows the contract."""
    return df[df["parse_error"].isna()]


def summary(df: pd.DataFrame, by: str | Sequence[str] = ("endpoint", "error_code")) -> pd.DataFrame:
    """Messages, distinct tenants and failure window per group, most messages first.

    ``by`` is any body field or list of them: ``endpoint`` for a webhook storm, ``error_code``
    for a reconcile backlog, ``tenant_id`` for who is hit. Unreadable rows are left out (count
    them with ``df.parse_error.notna().sum()``); a missing group value shows as "(none)".
    """
    keys = [by] if isinstance(by, str) else list(by)
    ok = readable(df).copy()
    for key in keys:
        ok[key] = ok[key].fillna("(none)").astype(str)
    columns = [*keys, "messages", "tenants", "first_failed_at", "last_failed_at", "share"]
    if ok.empty:
        return pd.DataFrame(columns=columns)
    grouped = ok.groupby(keys, sort=False).agg(
        messages=("tenant_id", "size"),
        tenants=("tenant_id", "nunique"),
        first_failed_at=("first_failed_at", "min"),
        last_failed_at=("first_failed_at", "max"),
    )
    grouped["share"] = grouped["messages"] / len(ok)
    order = [False, *[True] * len(keys)]
    out = grouped.reset_index().sort_values(["messages", *keys], ascending=order)
    return out[columns].reset_index(drop=True)


def sequence_ranges(df: pd.DataFrame) -> pd.DataFrame:
    """Per webhook tenant and endpoint, the sequence range the requeue call takes.

    The range is what the sample saw: a DLQ holding more than the sample may hold more.
    """
    columns = ["tenant_id", "endpoint", "from_sequence", "to_sequence", "messages"]
    hooks = readable(df)
    hooks = hooks[(hooks["kind"] == "webhook") & hooks["sequence"].notna()]
    if hooks.empty:
        return pd.DataFrame(columns=columns)
    grouped = hooks.groupby(["tenant_id", "endpoint"], dropna=False).agg(
        from_sequence=("sequence", "min"),
        to_sequence=("sequence", "max"),
        messages=("sequence", "size"),
    )
    out = grouped.reset_index().sort_values(["messages", "tenant_id"], ascending=[False, True])
    return out[columns].reset_index(drop=True)


# -- growth: messages that first failed within a window --------------------------------------


def growth_within(sample: pd.DataFrame, end: datetime, window: str) -> dict[str, int]:
    """Messages per region that first failed within ``window`` before ``end``."""
    if sample.empty or "first_failed_at" not in sample or "region" not in sample:
        return {}
    since = pd.Timestamp(end) - pd.Timedelta(window)
    failed_at = pd.to_datetime(sample["first_failed_at"], utc=True, errors="coerce")
    recent = sample[(failed_at >= since) & (failed_at <= pd.Timestamp(end))]
    return {str(k): int(v) for k, v in recent.groupby("region").size().items()}


def dlq_growth_rows(
    growth: Mapping[str, int], regions: Sequence[str], read: Iterable[str], limit: float
) -> list[SloRow]:
    """One row per region; a region whose DLQ could not be read has no data."""
    readable = set(read)
    return [
        SloRow(
            "dlq_growth",
            region,
            float(growth.get(region, 0)) if region in readable else None,
            limit,
            "<=",
            "messages",
        )
        for region in regions
    ]
