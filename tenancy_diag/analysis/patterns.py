"""The contract's failure patterns, recognised from tidy frames. Pure: frames in, matches out.

Each detector scores independent pieces of evidence (the contract's "signature in the
signals") and reports the pattern when the primary symptom is present; the confidence says how
many of the corroborating signs agree, and the evidence sentences say which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import pandas as pd

from tenancy_diag.analysis.findings import PatternMatch, SloRow
from tenancy_diag.analysis.frames import TIME, VALUE

# A failure is "concentrated" when this share of it comes from the top few offenders.
CONCENTRATION_SHARE = 0.6
CONCENTRATION_TOP = 3
# Evidence from metrics, logs and queues never proves a cause outright.
MAX_CONFIDENCE = 0.95


def failing_regions(slo: Sequence[SloRow], name: str) -> list[str]:
    return [row.region for row in slo if row.name == name and row.passed is False]


def onset(series: pd.DataFrame, threshold: float, *, above: bool = True) -> datetime | None:
    """Start of the last sustained run past ``threshold`` (what an alert's startsAt would be).

    Past a maximum is at or over it, past a minimum is under it, as the SLO rows judge; a NaN
    sample is a gap, not a return under the threshold.
    """
    if series.empty:
        return None
    values = series.groupby(TIME)[VALUE].max().dropna().sort_index()
    if values.empty:
        return None
    past = values >= threshold if above else values < threshold
    if not past.iloc[-1]:
        return None
    calm = past[~past]
    first = past.index[0] if calm.empty else past[past.index > calm.index[-1]].index[0]
    return pd.Timestamp(first).to_pydatetime()


def _region(df: pd.DataFrame, region: str) -> pd.DataFrame:
    return df[df["region"] == region] if "region" in df.columns and not df.empty else df.iloc[0:0]


def shares(df: pd.DataFrame, label: str) -> pd.Series:
    """Share of the total ``value`` per ``label``, largest first (empty when nothing failed)."""
    if df.empty or label not in df.columns:
        return pd.Series(dtype="float64")
    # A counter reset can leave a negative increase; it is no failure, and would push shares past 1.
    totals = df[VALUE].clip(lower=0).groupby(df[label]).sum()
    total = totals.sum()
    if total <= 0:
        return pd.Series(dtype="float64")
    return (totals / total).sort_values(ascending=False)


def concentrated(share: pd.Series) -> list[str]:
    """The few offenders carrying most of the failures, or [] when failures are spread out."""
    if share.empty or share.head(CONCENTRATION_TOP).sum() < CONCENTRATION_SHARE:
        return []
    return [str(k) for k, v in share.head(CONCENTRATION_TOP).items() if v >= 0.1]


def _match(
    pattern: str,
    scores: Mapping[str, float],
    evidence: list[str],
    starts: list[datetime | None],
    regions: list[str],
) -> PatternMatch:
    known = [s for s in starts if s is not None]
    return PatternMatch(
        pattern,
        min(MAX_CONFIDENCE, sum(scores.values())),
        tuple(evidence),
        min(known) if known else None,
        tuple(sorted(set(regions))),
    )


def reconcile_backlog(
    queue: pd.DataFrame,
    slo: Sequence[SloRow],
    reasons: pd.DataFrame,
    dlq_growth: Mapping[str, int],
    queue_depth_max: float,
) -> PatternMatch | None:
    """queue_depth rising and high; reconcile failures up (policy_error/throttled); DLQ growing."""
    scores: dict[str, float] = {}
    evidence: list[str] = []
    starts: list[datetime | None] = []
    regions: list[str] = []
    for region in sorted(set(queue["region"])) if not queue.empty else []:
        # NaN samples are gaps: a region with no known depth is unknown, not backlogged.
        series = _region(queue, region).dropna(subset=[VALUE]).sort_values(TIME)
        if series.empty:
            continue
        now = float(series[VALUE].iloc[-1])
        # The SLO is queue_depth < max, so a depth at the maximum already breaches it.
        if now < queue_depth_max:
            continue
        regions.append(region)
        starts.append(onset(series, queue_depth_max))
        scores["queue_high"] = 0.45
        earlier = series[series[TIME] <= series[TIME].iloc[-1] - pd.Timedelta(minutes=15)]
        rising = not earlier.empty and now > float(earlier[VALUE].iloc[-1])
        if rising:
            scores["rising"] = 0.15
        evidence.append(
            f"{region}: queue_depth {now:.0f} >= {queue_depth_max:g}"
            + (" and rising over the last 15 min" if rising else "")
        )
        top = shares(_region(reasons, region), "reason")
        if not top.empty and top.index[0] in ("policy_error", "throttled", "timeout"):
            scores["reasons"] = 0.15
            evidence.append(f"{region}: {top.iloc[0]:.0%} of reconcile failures are {top.index[0]}")
        if dlq_growth.get(region, 0) > 0:
            scores["dlq"] = 0.1
            evidence.append(f"{region}: reconcile DLQ grew by {dlq_growth[region]} messages")
    failing = [r for r in failing_regions(slo, "reconcile_success_ratio") if r in regions]
    if failing:
        scores["slo"] = 0.15
        evidence.append(f"reconcile success ratio below SLO in {', '.join(failing)}")
    return _match("reconcile_backlog", scores, evidence, starts, regions) if regions else None


def webhook_storm(
    *,
    slo: Sequence[SloRow],
    endpoints: pd.DataFrame,
    codes: pd.DataFrame,
    dlq_endpoints: pd.Series,
    failure_ratio: pd.DataFrame,
    failure_ratio_max: float,
) -> tuple[PatternMatch | None, list[str]]:
    """Failures concentrated on one or a few endpoints; DLQ growing with those endpoints."""
    failing = failing_regions(slo, "failure_ratio")
    regions: list[str] = []  # where the failures concentrate: the storm's regions
    offenders: list[str] = []
    scores: dict[str, float] = {}
    evidence: list[str] = []
    for region in failing:
        share = shares(_region(endpoints, region), "endpoint")
        few = concentrated(share)
        if share.empty:
            evidence.append(f"{region}: no per-endpoint failure data")
            continue
        if not few:
            evidence.append(f"{region}: failures spread over {len(share)} endpoints (not a storm)")
            continue
        regions.append(region)
        offenders.extend(few)
        scores["concentrated"] = 0.5
        evidence.append(
            f"{region}: {share.head(len(few)).sum():.0%} of webhook failures hit {', '.join(few)}"
        )
        top_codes = shares(_region(codes, region), "code")
        outage = [
            c
            for c in top_codes.index[:3]
            if str(c).startswith("5") or c in ("timeout", "connection_refused", "tls")
        ]
        if outage:
            scores["codes"] = 0.2
            evidence.append(f"{region}: failing with {', '.join(map(str, outage))}")
    if not offenders:
        return None, []
    if not dlq_endpoints.empty and set(dlq_endpoints.index[:CONCENTRATION_TOP]) & set(offenders):
        scores["dlq"] = 0.15
        evidence.append(
            f"webhook DLQ holds mostly {dlq_endpoints.index[0]} "
            f"({dlq_endpoints.iloc[0]:.0%} of sampled messages)"
        )
    if failing_regions(slo, "latency_p99_ms"):
        scores["latency"] = 0.15
        evidence.append("p99 delivery latency over SLO")
    start = [onset(_region(failure_ratio, r), failure_ratio_max) for r in regions]
    offenders = list(dict.fromkeys(offenders))
    return _match("webhook_storm", scores, evidence, start, regions), offenders


def policy_timeout(
    *,
    slo: Sequence[SloRow],
    reasons: pd.DataFrame,
    up_changes: pd.DataFrame,
    up_min: pd.DataFrame,
    latency: pd.DataFrame,
    latency_max: float,
) -> PatternMatch | None:
    """p99 over threshold; errors timeout/unavailable; cache hit down; policy-service flapping."""
    regions = failing_regions(slo, "latency_p99_ms")
    if not regions:
        return None
    scores = {"latency": 0.45}
    evidence = [f"policy p99 latency over {latency_max:g} ms in {', '.join(regions)}"]
    for region in regions:
        top = shares(_region(reasons, region), "reason")
        slow = top[top.index.isin(["timeout", "unavailable"])].sum() if not top.empty else 0.0
        if slow >= 0.5:
            scores["reasons"] = 0.2
            evidence.append(f"{region}: {slow:.0%} of policy errors are timeout/unavailable")
        flaps = _region(up_changes, region)[VALUE].sum() if not up_changes.empty else 0
        down = (_region(up_min, region)[VALUE] < 1).any() if not up_min.empty else False
        if flaps > 0 or down:
            scores["up"] = 0.2
            evidence.append(
                f"{region}: policy-service `up` changed {flaps:.0f} times"
                + (" and is down now" if down else "")
            )
    cache = failing_regions(slo, "cache_hit_ratio")
    if cache:
        scores["cache"] = 0.15
        evidence.append(f"cache hit ratio below SLO in {', '.join(cache)}")
    start = [onset(_region(latency, r), latency_max) for r in regions]
    return _match("policy_timeout", scores, evidence, start, regions)


def rate_limit_saturation(
    slo: Sequence[SloRow],
    clients: pd.DataFrame,
    ratio_429: pd.DataFrame,
    ratio_max: float,
) -> tuple[PatternMatch | None, list[str]]:
    """429 share up; gateway_throttled_total dominated by one or a few client_ids."""
    regions = failing_regions(slo, "ratio_429")
    offenders: list[str] = []
    evidence: list[str] = []
    for region in regions:
        share = shares(_region(clients, region), "client_id")
        few = concentrated(share)
        offenders.extend(few)
        if few:
            evidence.append(
                f"{region}: {share.head(len(few)).sum():.0%} of 429s go to {', '.join(few)}"
            )
    if not regions:
        return None, []
    scores = {"ratio": 0.45, "concentrated": 0.35 if offenders else 0.0}
    evidence.insert(0, f"429 ratio over {ratio_max:.1%} in {', '.join(regions)}")
    # "Within SLO" needs a measured 5xx ratio where the gateway sheds; no data is no claim.
    measured = [r.passed for r in slo if r.name == "error_ratio_5xx" and r.region in regions]
    backend_ok = bool(measured) and all(p is True for p in measured)
    if backend_ok and not failing_regions(slo, "error_ratio_5xx"):
        scores["backend_ok"] = 0.2
        evidence.append("5xx ratio within SLO: the backend is healthy, the gateway is shedding")
    start = [onset(_region(ratio_429, r), ratio_max) for r in regions]
    offenders = list(dict.fromkeys(offenders))
    return _match("rate_limit_saturation", scores, evidence, start, regions), offenders


def migration_hang(
    stuck_jobs: pd.DataFrame,
    slo: Sequence[SloRow],
    lag: pd.DataFrame,
    lag_max: float,
    stuck_steps: pd.DataFrame,
) -> PatternMatch | None:
    """migrate jobs stuck in one step past the threshold; replication lag high for those tenants."""
    if stuck_jobs.empty and stuck_steps.empty:
        return None
    scores: dict[str, float] = {}
    evidence: list[str] = []
    regions: list[str] = []
    if not stuck_jobs.empty:
        scores["jobs"] = 0.5
        steps = stuck_jobs["step"].value_counts()
        oldest = stuck_jobs["stuck_minutes"].max()
        evidence.append(
            f"{len(stuck_jobs)} migrate jobs stuck; "
            + (
                f"step {steps.index[0]} holds {steps.iloc[0]}"
                if not steps.empty
                else "step unknown"
            )
            + (f"; oldest update {oldest:.0f} min ago" if pd.notna(oldest) else "")
        )
        regions.extend(stuck_jobs.get("region", pd.Series(dtype=str)).dropna().tolist())
    if not stuck_steps.empty:
        scores["gauge"] = 0.2
        regions.extend(stuck_steps.get("region", pd.Series(dtype=str)).dropna().tolist())
        evidence.append(
            "lifecycle_jobs_in_progress flat for migrate step "
            f"{stuck_steps['step'].iloc[0]} past the threshold"
        )
    lagging = failing_regions(slo, "replication_lag_s")
    if lagging:
        scores["lag"] = 0.3
        evidence.append(f"replication lag over {lag_max:g} s in {', '.join(lagging)}")
        regions.extend(lagging)
    start = [onset(_region(lag, r), lag_max) for r in lagging]
    started = (
        pd.to_datetime(stuck_jobs["updated_at"], utc=True, errors="coerce").dropna()
        if not stuck_jobs.empty
        else None
    )
    if started is not None and not started.empty:
        start.append(started.min().to_pydatetime())
    return _match("migration_hang", scores, evidence, start, regions)
