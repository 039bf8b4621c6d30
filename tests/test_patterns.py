"""The five failure-pattern detectors: frames in, a match (or None) and offenders out.

Frames are built the way the diagnoses get them, from Prometheus-shaped answers through
``matrix_frame``/``vector_frame``; SLO rows are built as ``Diagnosis.slo_rows_for`` builds them.
Thresholds a detector takes as arguments come from parameters/signals.yaml.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from tenancy_diag import signals
from tenancy_diag.analysis import patterns
from tenancy_diag.analysis.findings import PatternMatch, SloRow
from tenancy_diag.analysis.frames import matrix_frame, vector_frame
from tenancy_diag.sources.admin_api import JOB_FIELDS

SLOS = signals.load().doc.slos
QUEUE_MAX = float(SLOS["controller"]["queue_depth_max"])
SUCCESS_MIN = float(SLOS["controller"]["reconcile_success_ratio_min"])
WEBHOOK_RATIO_MAX = float(SLOS["webhook"]["failure_ratio_max"])
WEBHOOK_P99_MAX = float(SLOS["webhook"]["latency_p99_ms_max"])
POLICY_P99_MAX = float(SLOS["policy"]["latency_p99_ms_max"])
CACHE_MIN = float(SLOS["policy"]["cache_hit_ratio_min"])
RATIO_429_MAX = float(SLOS["api"]["ratio_429_max"])
RATIO_5XX_MAX = float(SLOS["api"]["error_ratio_5xx_max"])
LAG_MAX = float(SLOS["lifecycle"]["replication_lag_seconds_max"])

US, EU, AP = "us-east-1", "eu-west-1", "ap-southeast-2"
START = datetime(2026, 11, 27, 2, tzinfo=UTC)
STEP_S = 60
NOW = START + timedelta(minutes=30)
NAN = float("nan")
# What a diagnosis holds before a step ran or when a source did not answer (steps.EMPTY).
EMPTY = pd.DataFrame(columns=["timestamp", "value"])
JOB_COLUMNS = ["tenant", "region", *JOB_FIELDS, "stuck_minutes"]
# Just below, at and just above a threshold, as a fraction of it.
EDGES = [(-0.01, False), (0.0, True), (0.01, True)]


def _sample(v: float) -> str:
    return "NaN" if math.isnan(v) else repr(float(v))


def matrix(*series: tuple[Mapping[str, str], Sequence[float]]) -> pd.DataFrame:
    """A range query's answer: one sample a minute from START."""
    return matrix_frame(
        {
            "metric": dict(labels),
            "values": [[START.timestamp() + i * STEP_S, _sample(v)] for i, v in enumerate(values)],
        }
        for labels, values in series
    )


def vector(label: str, *rows: tuple[str | None, str, float]) -> pd.DataFrame:
    """An instant query's answer: (region, label value, value) per series."""
    return vector_frame(
        {
            "metric": {label: key} | ({"region": region} if region is not None else {}),
            "value": [NOW.timestamp(), _sample(v)],
        }
        for region, key, v in rows
    )


def region_series(region: str, values: Sequence[float]) -> pd.DataFrame:
    return matrix(({"region": region}, values))


def points(region: str, samples: Mapping[int, float]) -> pd.DataFrame:
    """A range answer with samples only at the given minutes from START."""
    values = [[START.timestamp() + m * 60, _sample(v)] for m, v in samples.items()]
    return matrix_frame([{"metric": {"region": region}, "values": values}])


def at_minute(minute: int) -> datetime:
    return START + timedelta(minutes=minute)


def near(threshold: float, fraction: float) -> float:
    return threshold * (1 + fraction)


def only(match: PatternMatch | None) -> PatternMatch:
    assert match is not None
    return match


def has(match: PatternMatch, text: str) -> bool:
    return any(text in line for line in match.evidence)


def no_nan_text(match: PatternMatch) -> None:
    assert not any("nan" in line.lower() for line in match.evidence), match.evidence


# -- helpers the detectors share ----------------------------------------------------------


@pytest.mark.parametrize(("fraction", "past"), EDGES)
def test_onset_counts_a_sample_at_the_threshold_as_past_it(fraction, past):
    series = region_series(US, [10.0] * 5 + [near(QUEUE_MAX, fraction)] * 5)
    assert patterns.onset(series, QUEUE_MAX) == (at_minute(5) if past else None)


def test_onset_is_the_start_of_the_last_run_only():
    series = region_series(US, [200, 200, 10, 200, 200, 10, 10, 200, 200])
    assert patterns.onset(series, QUEUE_MAX) == at_minute(7)
    assert patterns.onset(region_series(US, [200, 200, 10]), QUEUE_MAX) is None


def test_onset_below_a_minimum():
    series = region_series(US, [0.99, 0.95, 0.8, 0.8])
    assert patterns.onset(series, CACHE_MIN, above=False) == at_minute(2)
    assert patterns.onset(region_series(US, [0.95, CACHE_MIN]), CACHE_MIN, above=False) is None


def test_onset_of_empty_frames_is_unknown():
    assert patterns.onset(EMPTY, QUEUE_MAX) is None
    assert patterns.onset(matrix(), QUEUE_MAX) is None
    assert patterns.onset(pd.DataFrame(), QUEUE_MAX) is None


def test_onset_skips_nan_samples_rather_than_ending_the_run():
    assert patterns.onset(region_series(US, [10, 200, NAN, 200]), QUEUE_MAX) == at_minute(1)
    assert patterns.onset(region_series(US, [10, 200, 200, NAN]), QUEUE_MAX) == at_minute(1)
    assert patterns.onset(region_series(US, [NAN, NAN]), QUEUE_MAX) is None


def test_shares_ignore_nan_and_empty_frames():
    df = vector("reason", (US, "timeout", 3.0), (US, "conflict", NAN), (US, "internal", 1.0))
    share = patterns.shares(df, "reason")
    assert share["timeout"] == pytest.approx(0.75)
    assert share["internal"] == pytest.approx(0.25)
    assert share.get("conflict", 0.0) == 0.0
    assert patterns.shares(EMPTY, "reason").empty
    assert patterns.shares(vector("reason", (US, "timeout", 0.0)), "reason").empty


def test_shares_never_exceed_one_when_a_counter_reset_gives_a_negative_increase():
    df = vector("reason", (US, "timeout", 6.0), (US, "conflict", -2.0))
    share = patterns.shares(df, "reason")
    assert share.max() <= 1.0
    assert share.min() >= 0.0
    assert share["timeout"] == pytest.approx(1.0)
    assert patterns.shares(vector("reason", (US, "timeout", -1.0)), "reason").empty


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([40, 10, 9, 9, 9, 8, 8, 7], []),  # top three carry 59 %: spread out
        ([40, 10, 10, 9, 9, 9, 8, 5], ["a", "b", "c"]),  # exactly 60 %
        ([40, 11, 10, 9, 9, 9, 7, 5], ["a", "b", "c"]),  # 61 %
    ],
)
def test_concentrated_at_the_share_threshold(values, expected):
    assert sum(values) == 100
    df = vector("endpoint", *((US, "abcdefgh"[i], float(v)) for i, v in enumerate(values)))
    assert patterns.concentrated(patterns.shares(df, "endpoint")) == expected


@pytest.mark.parametrize(("third", "included"), [(9, False), (10, True), (11, True)])
def test_concentrated_names_offenders_from_a_tenth_of_the_failures(third, included):
    rows = [(US, "a", 60.0), (US, "b", 20.0), (US, "c", float(third))]
    rows += [(US, f"small-{i}", 1.0) for i in range(20 - third)]
    share = patterns.shares(vector("endpoint", *rows), "endpoint")
    assert ("c" in patterns.concentrated(share)) is included
    assert patterns.concentrated(pd.Series(dtype="float64")) == []


def test_failing_regions_leave_out_regions_without_data():
    rows = [
        SloRow("queue_depth", US, 150.0, QUEUE_MAX, "<"),
        SloRow("queue_depth", EU, None, QUEUE_MAX, "<"),
        SloRow("queue_depth", AP, NAN, QUEUE_MAX, "<"),
        SloRow("other", US, 150.0, QUEUE_MAX, "<"),
    ]
    assert patterns.failing_regions(rows, "queue_depth") == [US]


# -- reconcile_backlog ----------------------------------------------------------------------


def backlog(
    queue: pd.DataFrame,
    slo: Sequence[SloRow] = (),
    reasons: pd.DataFrame = EMPTY,
    growth: Mapping[str, int] | None = None,
) -> PatternMatch | None:
    return patterns.reconcile_backlog(queue, slo, reasons, growth or {}, QUEUE_MAX)


def success_row(region: str, value: float | None) -> SloRow:
    return SloRow("reconcile_success_ratio", region, value, SUCCESS_MIN, ">=", "ratio")


def high_queue(region: str = US, depth: float = 250.0) -> pd.DataFrame:
    return region_series(region, [10.0] * 10 + [depth] * 20)


@pytest.mark.parametrize(("fraction", "high"), EDGES)
def test_backlog_at_the_queue_depth_threshold(fraction, high):
    depth = near(QUEUE_MAX, fraction)
    match = backlog(high_queue(depth=depth))
    if not high:
        assert match is None
        return
    match = only(match)
    assert match.id == "reconcile_backlog"
    assert match.regions == (US,)
    assert match.confidence == pytest.approx(0.45)
    assert match.onset == at_minute(10)
    assert match.evidence[0].startswith(f"{US}: queue_depth {depth:.0f} ")
    assert "rising" not in match.evidence[0]


def test_backlog_is_not_reported_for_a_queue_that_drained_to_zero():
    assert backlog(region_series(US, [250.0] * 20 + [0.0])) is None


@pytest.mark.parametrize(("minutes_back", "rising"), [(14, False), (15, True), (16, True)])
def test_backlog_rising_compares_with_the_sample_15_minutes_back(minutes_back, rising):
    queue = points(US, {0: 150.0, minutes_back: 300.0})
    match = only(backlog(queue))
    assert match.confidence == pytest.approx(0.6 if rising else 0.45)
    assert ("rising over the last 15 min" in match.evidence[0]) is rising


@pytest.mark.parametrize(("last", "rising"), [(299.0, False), (300.0, False), (301.0, True)])
def test_backlog_rising_means_strictly_higher_than_15_minutes_ago(last, rising):
    queue = region_series(US, [300.0] * 20 + [last])
    assert has(only(backlog(queue)), "rising") is rising


@pytest.mark.parametrize("reason", ["policy_error", "throttled", "timeout"])
def test_backlog_corroborated_by_the_top_reconcile_failure_reason(reason):
    reasons = vector("reason", (US, reason, 3.0), (US, "conflict", 1.0))
    match = only(backlog(high_queue(), reasons=reasons))
    assert match.confidence == pytest.approx(0.6)
    assert f"{US}: 75% of reconcile failures are {reason}" in match.evidence


def test_backlog_not_corroborated_when_the_top_reason_is_another():
    reasons = vector("reason", (US, "conflict", 3.0), (US, "policy_error", 1.0))
    match = only(backlog(high_queue(), reasons=reasons))
    assert match.confidence == pytest.approx(0.45)
    assert not has(match, "of reconcile failures are")


def test_backlog_reads_reasons_of_the_backlogged_region_only():
    reasons = vector("reason", (EU, "policy_error", 5.0), (US, "conflict", 1.0))
    assert only(backlog(high_queue(), reasons=reasons)).confidence == pytest.approx(0.45)


@pytest.mark.parametrize(("growth", "counted"), [(0, False), (1, True), (2, True)])
def test_backlog_dlq_growth_counts_from_one_message(growth, counted):
    match = only(backlog(high_queue(), growth={US: growth, EU: 50}))
    assert match.confidence == pytest.approx(0.55 if counted else 0.45)
    assert (f"{US}: reconcile DLQ grew by {growth} messages" in match.evidence) is counted
    assert not has(match, EU)


@pytest.mark.parametrize(("fraction", "failing"), [(-0.001, True), (0.0, False), (0.001, False)])
def test_backlog_success_ratio_slo_at_its_minimum(fraction, failing):
    slo = [success_row(US, min(near(SUCCESS_MIN, fraction), 1.0))]
    match = only(backlog(high_queue(), slo))
    assert match.confidence == pytest.approx(0.6 if failing else 0.45)
    assert (f"reconcile success ratio below SLO in {US}" in match.evidence) is failing


def test_backlog_ignores_slo_failures_of_regions_without_a_backlog_and_missing_data():
    slo = [success_row(US, None), success_row(EU, 0.5)]
    match = only(backlog(high_queue(), slo))
    assert match.confidence == pytest.approx(0.45)
    assert not has(match, "success ratio")


def test_backlog_every_sign_is_capped_below_certainty():
    queue = region_series(US, [10.0] * 10 + [150.0] * 10 + [400.0] * 10)
    reasons = vector("reason", (US, "throttled", 9.0), (US, "internal", 1.0))
    match = only(backlog(queue, [success_row(US, 0.9)], reasons, {US: 12}))
    assert match.confidence == pytest.approx(patterns.MAX_CONFIDENCE)
    assert match.onset == at_minute(10)
    assert len(match.evidence) == 4


def test_backlog_in_two_regions_starts_at_the_earliest():
    queue = pd.concat(
        [
            region_series(EU, [10.0] * 12 + [500.0] * 18),
            region_series(US, [10.0] * 4 + [500.0] * 26),
            region_series(AP, [10.0] * 30),
        ],
        ignore_index=True,
    )
    match = only(backlog(queue))
    assert match.regions == (EU, US)
    assert match.onset == at_minute(4)
    assert [line.split(":")[0] for line in match.evidence] == [EU, US]


def test_backlog_with_only_one_region_in_the_queue_frame():
    slo = [success_row(r, 0.5) for r in (US, EU, AP)]
    match = only(backlog(high_queue(EU), slo))
    assert match.regions == (EU,)
    assert f"reconcile success ratio below SLO in {EU}" in match.evidence


@pytest.mark.parametrize("queue", [EMPTY, matrix(), pd.DataFrame()], ids=["steps", "frame", "bare"])
def test_backlog_empty_queue_is_no_match(queue):
    assert backlog(queue, [success_row(US, 0.5)], growth={US: 3}) is None


@pytest.mark.parametrize("reasons", [EMPTY, vector("reason"), pd.DataFrame()])
def test_backlog_empty_reasons_do_not_raise(reasons):
    assert only(backlog(high_queue(), reasons=reasons)).confidence == pytest.approx(0.45)


def test_backlog_latest_nan_sample_falls_back_to_the_last_known_depth():
    match = only(backlog(region_series(US, [10.0] * 5 + [250.0] * 10 + [NAN])))
    no_nan_text(match)
    assert match.evidence[0].startswith(f"{US}: queue_depth 250 ")
    assert match.onset == at_minute(5)


def test_backlog_all_nan_region_is_unknown_not_high():
    queue = pd.concat([region_series(US, [NAN] * 10), high_queue(EU)], ignore_index=True)
    match = only(backlog(queue))
    assert match.regions == (EU,)
    no_nan_text(match)
    assert backlog(region_series(US, [NAN] * 10)) is None


def test_backlog_nan_gap_does_not_move_the_onset():
    match = only(backlog(region_series(US, [10.0] * 5 + [250.0] * 5 + [NAN] + [250.0] * 5)))
    assert match.onset == at_minute(5)


def test_backlog_nan_reason_rate_counts_as_no_failures():
    reasons = vector("reason", (US, "policy_error", NAN), (US, "conflict", 2.0))
    assert only(backlog(high_queue(), reasons=reasons)).confidence == pytest.approx(0.45)
    reasons = vector("reason", (US, "policy_error", 2.0), (US, "conflict", NAN))
    assert (
        f"{US}: 100% of reconcile failures are policy_error"
        in only(backlog(high_queue(), reasons=reasons)).evidence
    )


def test_backlog_reason_shares_survive_a_counter_reset():
    reasons = vector("reason", (US, "policy_error", 6.0), (US, "conflict", -2.0))
    match = only(backlog(high_queue(), reasons=reasons))
    assert f"{US}: 100% of reconcile failures are policy_error" in match.evidence
    reset = vector("reason", (US, "policy_error", 0.0), (US, "conflict", 0.0))
    match = only(backlog(high_queue(), reasons=reset))
    assert match.confidence == pytest.approx(0.45)
    assert not has(match, "of reconcile failures are")


# -- webhook_storm ------------------------------------------------------------------------


def storm(
    slo: Sequence[SloRow],
    endpoints: pd.DataFrame = EMPTY,
    codes: pd.DataFrame = EMPTY,
    dlq: pd.Series | None = None,
    ratio: pd.DataFrame = EMPTY,
) -> tuple[PatternMatch | None, list[str]]:
    return patterns.webhook_storm(
        slo=slo,
        endpoints=endpoints,
        codes=codes,
        dlq_endpoints=pd.Series(dtype=float) if dlq is None else dlq,
        failure_ratio=ratio,
        failure_ratio_max=WEBHOOK_RATIO_MAX,
    )


def ratio_row(region: str, value: float | None) -> SloRow:
    return SloRow("failure_ratio", region, value, WEBHOOK_RATIO_MAX, "<", "ratio")


def hooks_p99_row(region: str, value: float | None) -> SloRow:
    return SloRow("latency_p99_ms", region, value, WEBHOOK_P99_MAX, "<", "ms")


def one_endpoint(region: str = US, name: str = "hooks.example.net") -> pd.DataFrame:
    return vector("endpoint", (region, name, 4.0), (region, "ok.example.org", 0.1))


@pytest.mark.parametrize(("fraction", "failing"), EDGES)
def test_storm_at_the_failure_ratio_threshold(fraction, failing):
    value = near(WEBHOOK_RATIO_MAX, fraction)
    ratio = region_series(US, [0.0] * 5 + [value] * 10)
    match, offenders = storm(
        [ratio_row(US, value), ratio_row(EU, 0.0)], one_endpoint(), ratio=ratio
    )
    if not failing:
        assert (match, offenders) == (None, [])
        return
    match = only(match)
    assert match.id == "webhook_storm"
    assert offenders == ["hooks.example.net"]
    assert match.regions == (US,)
    assert match.confidence == pytest.approx(0.5)
    assert match.onset == at_minute(5)
    assert match.evidence == (f"{US}: 98% of webhook failures hit hooks.example.net",)


@pytest.mark.parametrize(
    ("values", "storming"),
    [
        ([40, 10, 9, 9, 9, 8, 8, 7], False),
        ([40, 10, 10, 9, 9, 9, 8, 5], True),
        ([40, 11, 10, 9, 9, 9, 7, 5], True),
    ],
)
def test_storm_needs_the_top_three_endpoints_to_carry_the_concentration_share(values, storming):
    endpoints = vector("endpoint", *((US, f"e{i}", float(v)) for i, v in enumerate(values)))
    match, offenders = storm([ratio_row(US, 0.2)], endpoints)
    if not storming:
        assert (match, offenders) == (None, [])
        return
    assert offenders == ["e0", "e1", "e2"]
    assert only(match).evidence == (f"{US}: {sum(values[:3])}% of webhook failures hit e0, e1, e2",)


def test_storm_spread_failures_are_no_storm():
    endpoints = vector("endpoint", *((US, f"e{i}", 1.0) for i, _ in enumerate(range(10))))
    assert storm([ratio_row(US, 0.2)], endpoints) == (None, [])


@pytest.mark.parametrize(
    ("codes", "outage"),
    [
        ([("503", 5.0)], "503"),
        ([("timeout", 5.0)], "timeout"),
        ([("connection_refused", 5.0)], "connection_refused"),
        ([("tls", 5.0)], "tls"),
        ([("404", 5.0), ("410", 1.0)], None),
        ([("404", 50.0), ("400", 30.0), ("401", 15.0), ("503", 5.0)], None),  # 503 is fourth
    ],
)
def test_storm_failure_codes_that_mean_an_endpoint_outage(codes, outage):
    frame = vector("code", *((US, c, v) for c, v in codes))
    match = only(storm([ratio_row(US, 0.2)], one_endpoint(), frame)[0])
    assert match.confidence == pytest.approx(0.7 if outage else 0.5)
    assert (f"{US}: failing with {outage}" in match.evidence) is bool(outage)


def test_storm_codes_of_another_region_do_not_count():
    codes = vector("code", (EU, "503", 5.0), (US, "404", 1.0))
    match = only(storm([ratio_row(US, 0.2)], one_endpoint(), codes)[0])
    assert match.confidence == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("dlq", "counted"),
    [
        (pd.Series({"hooks.example.net": 0.8, "other.example": 0.2}), True),
        (pd.Series({"a": 0.4, "b": 0.3, "hooks.example.net": 0.3}), True),
        (pd.Series({"a": 0.4, "b": 0.3, "c": 0.2, "hooks.example.net": 0.1}), False),
        (pd.Series({"other.example": 1.0}), False),
        (pd.Series(dtype=float), False),
    ],
)
def test_storm_dlq_holding_the_offending_endpoint(dlq, counted):
    match = only(storm([ratio_row(US, 0.2)], one_endpoint(), dlq=dlq)[0])
    assert match.confidence == pytest.approx(0.65 if counted else 0.5)
    assert has(match, "webhook DLQ holds mostly") is counted


@pytest.mark.parametrize(("fraction", "over"), EDGES)
def test_storm_latency_slo_at_its_threshold(fraction, over):
    slo = [ratio_row(US, 0.2), hooks_p99_row(US, near(WEBHOOK_P99_MAX, fraction))]
    match = only(storm(slo, one_endpoint())[0])
    assert match.confidence == pytest.approx(0.65 if over else 0.5)
    assert ("p99 delivery latency over SLO" in match.evidence) is over


def test_storm_every_sign_is_capped_below_certainty():
    slo = [ratio_row(US, 0.3), hooks_p99_row(US, 9000.0)]
    codes = vector("code", (US, "502", 3.0))
    dlq = pd.Series({"hooks.example.net": 1.0})
    match, offenders = storm(slo, one_endpoint(), codes, dlq)
    assert only(match).confidence == pytest.approx(patterns.MAX_CONFIDENCE)
    assert offenders == ["hooks.example.net"]


def test_storm_same_endpoint_in_two_regions_is_one_offender():
    endpoints = pd.concat([one_endpoint(US), one_endpoint(EU)], ignore_index=True)
    match, offenders = storm([ratio_row(US, 0.2), ratio_row(EU, 0.2)], endpoints)
    assert offenders == ["hooks.example.net"]
    assert only(match).regions == (EU, US)


def test_storm_regions_are_those_where_failures_concentrate():
    spread = vector("endpoint", *((EU, f"e{i}", 1.0) for i in range(10)))
    endpoints = pd.concat([one_endpoint(US), spread], ignore_index=True)
    ratio = pd.concat(
        [region_series(US, [0.0] * 8 + [0.2] * 7), region_series(EU, [0.2] * 15)],
        ignore_index=True,
    )
    match, offenders = storm([ratio_row(US, 0.2), ratio_row(EU, 0.2)], endpoints, ratio=ratio)
    match = only(match)
    assert offenders == ["hooks.example.net"]
    assert match.regions == (US,)
    assert match.onset == at_minute(8)
    assert f"{EU}: failures spread over 10 endpoints (not a storm)" in match.evidence


def test_storm_region_without_endpoint_data_is_not_called_spread():
    slo = [ratio_row(US, 0.2), ratio_row(EU, 0.2)]
    match, _ = storm(slo, one_endpoint(US))
    match = only(match)
    assert match.regions == (US,)
    assert not has(match, "spread over 0 endpoints")
    assert has(match, f"{EU}: no per-endpoint failure data")


def test_storm_with_only_one_region_present():
    slo = [ratio_row(US, 0.0), ratio_row(EU, 0.2), ratio_row(AP, 0.0)]
    match, offenders = storm(slo, one_endpoint(EU), ratio=region_series(EU, [0.2] * 5))
    assert only(match).regions == (EU,)
    assert only(match).onset == START
    assert offenders == ["hooks.example.net"]


@pytest.mark.parametrize("endpoints", [EMPTY, vector("endpoint"), pd.DataFrame()])
def test_storm_without_endpoint_data_is_no_match(endpoints):
    assert storm([ratio_row(US, 0.2)], endpoints) == (None, [])


def test_storm_without_failing_slo_is_no_match():
    assert storm([], one_endpoint()) == (None, [])
    assert storm([ratio_row(US, 0.0)], one_endpoint()) == (None, [])


def test_storm_nan_failure_ratio_is_unknown_not_failing():
    assert storm([ratio_row(US, NAN), ratio_row(EU, None)], one_endpoint()) == (None, [])


def test_storm_nan_endpoint_rate_counts_as_no_failures():
    endpoints = vector("endpoint", (US, "a.example", NAN), (US, "b.example", 2.0))
    match, offenders = storm([ratio_row(US, 0.2)], endpoints)
    assert offenders == ["b.example"]
    no_nan_text(only(match))


def test_storm_nan_in_the_ratio_series_keeps_the_onset():
    ratio = region_series(US, [0.0] * 3 + [0.2] * 5 + [NAN])
    match, _ = storm([ratio_row(US, 0.2)], one_endpoint(), ratio=ratio)
    assert only(match).onset == at_minute(3)


def test_storm_endpoint_shares_survive_a_counter_reset():
    endpoints = vector("endpoint", (US, "a.example", 8.0), (US, "b.example", -4.0))
    match, offenders = storm([ratio_row(US, 0.2)], endpoints)
    assert offenders == ["a.example"]
    assert only(match).evidence == (f"{US}: 100% of webhook failures hit a.example",)
    reset = vector("endpoint", (US, "a.example", 0.0), (US, "b.example", 0.0))
    assert storm([ratio_row(US, 0.2)], reset) == (None, [])


# -- policy_timeout -----------------------------------------------------------------------


def timeout(
    slo: Sequence[SloRow],
    reasons: pd.DataFrame = EMPTY,
    up_changes: pd.DataFrame = EMPTY,
    up_min: pd.DataFrame = EMPTY,
    latency: pd.DataFrame = EMPTY,
) -> PatternMatch | None:
    return patterns.policy_timeout(
        slo=slo,
        reasons=reasons,
        up_changes=up_changes,
        up_min=up_min,
        latency=latency,
        latency_max=POLICY_P99_MAX,
    )


def policy_p99_row(region: str, value: float | None) -> SloRow:
    return SloRow("latency_p99_ms", region, value, POLICY_P99_MAX, "<", "ms")


def cache_row(region: str, value: float | None) -> SloRow:
    return SloRow("cache_hit_ratio", region, value, CACHE_MIN, ">=", "ratio")


def up(region: str, value: float) -> pd.DataFrame:
    return vector_frame(
        [{"metric": {"region": region}, "value": [NOW.timestamp(), _sample(value)]}]
    )


SLOW = [policy_p99_row(US, 900.0)]


@pytest.mark.parametrize(("fraction", "over"), EDGES)
def test_timeout_at_the_latency_threshold(fraction, over):
    value = near(POLICY_P99_MAX, fraction)
    latency = region_series(US, [50.0] * 6 + [value] * 6)
    match = timeout([policy_p99_row(US, value), policy_p99_row(EU, 10.0)], latency=latency)
    if not over:
        assert match is None
        return
    match = only(match)
    assert match.id == "policy_timeout"
    assert match.regions == (US,)
    assert match.confidence == pytest.approx(0.45)
    assert match.onset == at_minute(6)
    assert match.evidence == (f"policy p99 latency over {POLICY_P99_MAX:g} ms in {US}",)


@pytest.mark.parametrize(
    ("rows", "counted"),
    [
        ([("timeout", 49.0), ("invalid_policy", 51.0)], False),
        ([("timeout", 30.0), ("unavailable", 20.0), ("invalid_policy", 50.0)], True),
        ([("unavailable", 51.0), ("version_mismatch", 49.0)], True),
    ],
)
def test_timeout_reasons_count_from_half_timeouts_or_unavailable(rows, counted):
    reasons = vector("reason", *((US, r, v) for r, v in rows))
    match = only(timeout(SLOW, reasons))
    assert match.confidence == pytest.approx(0.65 if counted else 0.45)
    assert has(match, "of policy errors are timeout/unavailable") is counted


def test_timeout_reasons_of_a_healthy_region_do_not_count():
    reasons = vector("reason", (EU, "timeout", 9.0), (US, "invalid_policy", 1.0))
    assert only(timeout(SLOW, reasons)).confidence == pytest.approx(0.45)


@pytest.mark.parametrize(
    ("changes", "up_now", "text"),
    [
        (0.0, 1.0, None),
        (1.0, 1.0, f"{US}: policy-service `up` changed 1 times"),
        (4.0, 0.0, f"{US}: policy-service `up` changed 4 times and is down now"),
        (0.0, 0.0, f"{US}: policy-service `up` changed 0 times and is down now"),
    ],
)
def test_timeout_policy_service_flapping_or_down(changes, up_now, text):
    match = only(timeout(SLOW, up_changes=up(US, changes), up_min=up(US, up_now)))
    assert match.confidence == pytest.approx(0.65 if text else 0.45)
    assert (text in match.evidence) if text else not has(match, "policy-service")


def test_timeout_up_of_another_region_does_not_count():
    match = only(timeout(SLOW, up_changes=up(EU, 5.0), up_min=up(EU, 0.0)))
    assert match.confidence == pytest.approx(0.45)


@pytest.mark.parametrize(("fraction", "low"), [(-0.01, True), (0.0, False), (0.01, False)])
def test_timeout_cache_hit_ratio_at_its_minimum(fraction, low):
    match = only(timeout([*SLOW, cache_row(US, min(near(CACHE_MIN, fraction), 1.0))]))
    assert match.confidence == pytest.approx(0.6 if low else 0.45)
    assert (f"cache hit ratio below SLO in {US}" in match.evidence) is low


def test_timeout_every_sign_is_capped_below_certainty():
    reasons = vector("reason", (US, "timeout", 1.0))
    match = only(timeout([*SLOW, cache_row(US, 0.5)], reasons, up(US, 3.0), up(US, 0.0)))
    assert match.confidence == pytest.approx(patterns.MAX_CONFIDENCE)
    assert len(match.evidence) == 4


def test_timeout_with_only_one_region_of_data():
    slo = [policy_p99_row(US, 900.0), policy_p99_row(EU, 900.0), policy_p99_row(AP, 10.0)]
    reasons = vector("reason", (EU, "timeout", 2.0))
    latency = region_series(EU, [10.0] * 2 + [900.0] * 3)
    match = only(timeout(slo, reasons, latency=latency))
    assert match.regions == (EU, US)
    assert match.onset == at_minute(2)
    assert f"{EU}: 100% of policy errors are timeout/unavailable" in match.evidence
    assert not has(match, f"{US}:")


@pytest.mark.parametrize("empty", [EMPTY, vector("reason"), pd.DataFrame()])
def test_timeout_empty_frames_leave_the_latency_sign_alone(empty):
    match = only(timeout(SLOW, empty, empty, empty, empty))
    assert match.confidence == pytest.approx(0.45)
    assert match.onset is None


def test_timeout_without_failing_latency_is_no_match():
    assert timeout([]) is None
    assert timeout([policy_p99_row(US, 10.0), cache_row(US, 0.1)]) is None


def test_timeout_nan_latency_is_unknown_not_failing():
    assert timeout([policy_p99_row(US, NAN), policy_p99_row(EU, None)]) is None


def test_timeout_nan_up_and_reasons_are_not_evidence():
    reasons = vector("reason", (US, "timeout", NAN), (US, "invalid_policy", 1.0))
    match = only(timeout(SLOW, reasons, up(US, NAN), up(US, NAN)))
    assert match.confidence == pytest.approx(0.45)
    no_nan_text(match)


def test_timeout_reason_shares_survive_a_counter_reset():
    reasons = vector("reason", (US, "timeout", 6.0), (US, "invalid_policy", -4.0))
    match = only(timeout(SLOW, reasons))
    assert f"{US}: 100% of policy errors are timeout/unavailable" in match.evidence
    reset = vector("reason", (US, "timeout", 0.0), (US, "invalid_policy", 0.0))
    assert only(timeout(SLOW, reset)).confidence == pytest.approx(0.45)


# -- rate_limit_saturation ------------------------------------------------------------------


def saturation(
    slo: Sequence[SloRow], clients: pd.DataFrame = EMPTY, ratio: pd.DataFrame = EMPTY
) -> tuple[PatternMatch | None, list[str]]:
    return patterns.rate_limit_saturation(slo, clients, ratio, RATIO_429_MAX)


def r429_row(region: str, value: float | None) -> SloRow:
    return SloRow("ratio_429", region, value, RATIO_429_MAX, "<", "ratio")


def r5xx_row(region: str, value: float | None) -> SloRow:
    return SloRow("error_ratio_5xx", region, value, RATIO_5XX_MAX, "<", "ratio")


def one_client(region: str = US, name: str = "c-bulk-sync") -> pd.DataFrame:
    return vector("client_id", (region, name, 9.5), (region, "c-other", 0.5))


HEADLINE = f"429 ratio over {RATIO_429_MAX:.1%} in {US}"


@pytest.mark.parametrize(("fraction", "over"), EDGES)
def test_saturation_at_the_429_ratio_threshold(fraction, over):
    value = near(RATIO_429_MAX, fraction)
    ratio = region_series(US, [0.0] * 7 + [value] * 3)
    slo = [r429_row(US, value), r429_row(EU, 0.0), r5xx_row(US, 0.0), r5xx_row(EU, 0.0)]
    match, offenders = saturation(slo, one_client(), ratio)
    if not over:
        assert (match, offenders) == (None, [])
        return
    match = only(match)
    assert match.id == "rate_limit_saturation"
    assert match.regions == (US,)
    assert offenders == ["c-bulk-sync"]
    assert match.confidence == pytest.approx(patterns.MAX_CONFIDENCE)
    assert match.onset == at_minute(7)
    assert match.evidence == (
        HEADLINE,
        f"{US}: 95% of 429s go to c-bulk-sync",
        "5xx ratio within SLO: the backend is healthy, the gateway is shedding",
    )


@pytest.mark.parametrize(("fraction", "healthy"), [(-0.01, True), (0.0, False), (0.01, False)])
def test_saturation_backend_health_at_the_5xx_threshold(fraction, healthy):
    slo = [r429_row(US, 0.3), r5xx_row(US, near(RATIO_5XX_MAX, fraction))]
    match, offenders = saturation(slo)
    match = only(match)
    assert offenders == []
    assert match.confidence == pytest.approx(0.65 if healthy else 0.45)
    assert has(match, "the backend is healthy") is healthy


@pytest.mark.parametrize(
    "five", [[], [r5xx_row(US, None)], [r5xx_row(US, NAN)], [r5xx_row(EU, 0.0)]]
)
def test_saturation_does_not_call_an_unmeasured_backend_healthy(five):
    match = only(saturation([r429_row(US, 0.3), *five])[0])
    assert match.confidence == pytest.approx(0.45)
    assert not has(match, "the backend is healthy")


def test_saturation_backend_judged_where_the_gateway_sheds():
    slo = [r429_row(US, 0.3), r429_row(EU, 0.0), r5xx_row(US, 0.0), r5xx_row(EU, None)]
    assert has(only(saturation(slo)[0]), "the backend is healthy")
    slo = [r429_row(US, 0.3), r5xx_row(US, 0.0), r5xx_row(EU, 0.5)]
    assert not has(only(saturation(slo)[0]), "the backend is healthy")


def test_saturation_spread_over_many_clients_is_still_reported_without_offenders():
    clients = vector("client_id", *((US, f"c-{i}", 1.0) for i in range(10)))
    match, offenders = saturation([r429_row(US, 0.3), r5xx_row(US, 0.0)], clients)
    assert offenders == []
    assert only(match).confidence == pytest.approx(0.65)
    assert only(match).evidence[0] == HEADLINE


def test_saturation_with_only_one_region_present():
    slo = [r429_row(US, 0.0), r429_row(EU, 0.3), r429_row(AP, 0.0)]
    slo += [r5xx_row(r, 0.0) for r in (US, EU, AP)]
    clients = pd.concat([one_client(EU), one_client(US, "c-quiet")], ignore_index=True)
    match, offenders = saturation(slo, clients)
    assert only(match).regions == (EU,)
    assert offenders == ["c-bulk-sync"]


def test_saturation_without_failing_429_slo_is_no_match():
    assert saturation([], one_client()) == (None, [])
    assert saturation([r429_row(US, 0.0), r5xx_row(US, 0.5)], one_client()) == (None, [])


@pytest.mark.parametrize("empty", [EMPTY, vector("client_id"), pd.DataFrame()])
def test_saturation_empty_frames(empty):
    match, offenders = saturation([r429_row(US, 0.3), r5xx_row(US, 0.0)], empty, empty)
    assert offenders == []
    assert only(match).confidence == pytest.approx(0.65)
    assert only(match).onset is None


def test_saturation_nan_429_ratio_is_unknown_not_failing():
    assert saturation([r429_row(US, NAN), r429_row(EU, None)], one_client()) == (None, [])


def test_saturation_nan_client_rate_and_ratio_sample():
    clients = vector("client_id", (US, "c-nan", NAN), (US, "c-bulk-sync", 3.0))
    ratio = region_series(US, [0.0] * 2 + [0.3] * 4 + [NAN])
    match, offenders = saturation([r429_row(US, 0.3), r5xx_row(US, 0.0)], clients, ratio)
    assert offenders == ["c-bulk-sync"]
    assert only(match).onset == at_minute(2)
    no_nan_text(only(match))


def test_saturation_client_shares_survive_a_counter_reset():
    clients = vector("client_id", (US, "c-bulk-sync", 9.0), (US, "c-other", -3.0))
    match, offenders = saturation([r429_row(US, 0.3)], clients)
    assert offenders == ["c-bulk-sync"]
    assert f"{US}: 100% of 429s go to c-bulk-sync" in only(match).evidence
    reset = vector("client_id", (US, "c-bulk-sync", 0.0))
    assert saturation([r429_row(US, 0.3)], reset)[1] == []


# -- migration_hang -----------------------------------------------------------------------


def hang(
    stuck_jobs: pd.DataFrame,
    slo: Sequence[SloRow] = (),
    lag: pd.DataFrame = EMPTY,
    steps: pd.DataFrame = EMPTY,
) -> PatternMatch | None:
    return patterns.migration_hang(stuck_jobs, slo, lag, LAG_MAX, steps)


def lag_row(region: str, value: float | None) -> SloRow:
    return SloRow("replication_lag_s", region, value, LAG_MAX, "<", "s")


def job(tenant: str, region: str | None, step: str | None, updated_minute: int | None) -> dict:
    """A running migrate job as LifecycleDiagnosis.stuck() passes it, updated at a minute from
    START (negative: before it); its age is counted at NOW."""
    updated = None if updated_minute is None else at_minute(updated_minute).isoformat()
    age = NAN if updated_minute is None else float(30 - updated_minute)
    return {
        "tenant": tenant,
        "region": region,
        "job_id": f"j-{tenant}",
        "job_type": "migrate",
        "status": "running",
        "step": step,
        "started_at": at_minute(-120).isoformat(),
        "updated_at": updated,
        "attempts": 1,
        "error": None,
        "stuck_minutes": age,
    }


def jobs(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=JOB_COLUMNS)


NO_JOBS = jobs()
TWO_STUCK = jobs(job("t-1", US, "verify", -25), job("t-2", US, "verify", -10))


def flat(*rows: tuple[str | None, str]) -> pd.DataFrame:
    """lifecycle.flat_steps as an instant vector."""
    return vector_frame(
        {
            "metric": {"job_type": "migrate", "step": step}
            | ({"region": region} if region else {}),
            "value": [NOW.timestamp(), "3"],
        }
        for region, step in rows
    )


def test_hang_stuck_jobs_alone():
    match = only(hang(TWO_STUCK))
    assert match.id == "migration_hang"
    assert match.regions == (US,)
    assert match.confidence == pytest.approx(0.5)
    assert match.onset == at_minute(-25)
    assert match.evidence == (
        "2 migrate jobs stuck; step verify holds 2; oldest update 55 min ago",
    )


def test_hang_names_the_step_holding_most_jobs():
    stuck = jobs(
        job("t-1", US, "copy", -5), job("t-2", EU, "cutover", -3), job("t-3", EU, "cutover", -1)
    )
    match = only(hang(stuck))
    assert match.regions == (EU, US)
    assert match.evidence[0].startswith("3 migrate jobs stuck; step cutover holds 2;")


def test_hang_flat_step_gauge_alone():
    match = only(hang(NO_JOBS, steps=flat((EU, "cutover"))))
    assert match.regions == (EU,)
    assert match.confidence == pytest.approx(0.2)
    assert match.onset is None
    assert match.evidence == (
        "lifecycle_jobs_in_progress flat for migrate step cutover past the threshold",
    )


@pytest.mark.parametrize(("fraction", "lagging"), EDGES)
def test_hang_at_the_replication_lag_threshold(fraction, lagging):
    value = near(LAG_MAX, fraction)
    lag = region_series(US, [1.0] * 2 + [value] * 28)
    slo = [lag_row(US, value), lag_row(EU, 0.0)]
    match = only(hang(NO_JOBS, slo, lag, flat((US, "verify"))))
    assert match.confidence == pytest.approx(0.5 if lagging else 0.2)
    assert (f"replication lag over {LAG_MAX:g} s in {US}" in match.evidence) is lagging
    assert match.onset == (at_minute(2) if lagging else None)
    assert match.regions == (US,)


def test_hang_onset_is_the_earlier_of_lag_and_job_updates():
    lag = region_series(US, [1.0] * 2 + [90.0] * 28)
    assert only(hang(TWO_STUCK, [lag_row(US, 90.0)], lag)).onset == at_minute(-25)
    late = jobs(job("t-1", US, "verify", 10))
    assert only(hang(late, [lag_row(US, 90.0)], lag)).onset == at_minute(2)


def test_hang_lag_alone_is_no_match():
    lag = region_series(US, [500.0] * 10)
    assert hang(NO_JOBS, [lag_row(US, 500.0)], lag) is None


def test_hang_every_sign_is_capped_below_certainty():
    match = only(hang(TWO_STUCK, [lag_row(US, 500.0)], steps=flat((US, "verify"))))
    assert match.confidence == pytest.approx(patterns.MAX_CONFIDENCE)
    assert match.regions == (US,)
    assert len(match.evidence) == 3


def test_hang_regions_from_jobs_gauge_and_lag_with_one_region_each():
    stuck = jobs(job("t-1", AP, "copy", -10))
    match = only(hang(stuck, [lag_row(EU, 90.0), lag_row(US, 1.0)], steps=flat((US, "copy"))))
    assert match.regions == (AP, EU, US)


@pytest.mark.parametrize("empty_jobs", [NO_JOBS, pd.DataFrame()], ids=["columns", "bare"])
@pytest.mark.parametrize(
    "empty_steps", [EMPTY, flat(), pd.DataFrame()], ids=["steps", "frame", "bare"]
)
def test_hang_empty_frames_are_no_match(empty_jobs, empty_steps):
    assert hang(empty_jobs, [lag_row(US, 500.0)], EMPTY, empty_steps) is None


def test_hang_jobs_without_a_region_column():
    stuck = TWO_STUCK.drop(columns=["region"])
    match = only(hang(stuck, [lag_row(US, 90.0)]))
    assert match.regions == (US,)
    assert match.confidence == pytest.approx(0.8)


def test_hang_nan_lag_is_unknown_not_lagging():
    match = only(hang(TWO_STUCK, [lag_row(US, NAN), lag_row(EU, None)]))
    assert match.confidence == pytest.approx(0.5)
    assert not has(match, "replication lag")


def test_hang_nan_lag_sample_keeps_the_onset():
    lag = region_series(US, [1.0] + [90.0] * 5 + [NAN])
    match = only(hang(NO_JOBS, [lag_row(US, 90.0)], lag, flat((US, "verify"))))
    assert match.onset == at_minute(1)


def test_hang_job_without_update_time_or_step_or_region():
    stuck = jobs(job("t-1", None, None, None), job("t-2", US, "verify", -12))
    match = only(hang(stuck))
    assert match.onset == at_minute(-12)
    assert match.regions == (US,)
    assert (
        match.evidence[0] == "2 migrate jobs stuck; step verify holds 1; oldest update 42 min ago"
    )


def test_hang_jobs_all_missing_step_and_update_time_do_not_raise():
    match = only(hang(jobs(job("t-1", US, None, None))))
    assert match.onset is None
    assert match.confidence == pytest.approx(0.5)
    assert match.evidence[0].startswith("1 migrate jobs stuck")
    no_nan_text(match)
    assert match.to_json()["onset"] is None


def test_hang_flat_step_without_a_region_label():
    match = only(hang(NO_JOBS, steps=flat((None, "verify"), (EU, "verify"))))
    assert match.regions == (EU,)


def test_hang_lag_that_dropped_to_zero_gives_no_lag_onset():
    # A migration restarted from scratch resets the gauge to 0: the lag run is over.
    lag = region_series(US, [90.0] * 10 + [0.0])
    match = only(hang(NO_JOBS, [lag_row(US, 90.0)], lag, flat((US, "verify"))))
    assert match.onset is None
    assert match.confidence == pytest.approx(0.5)
