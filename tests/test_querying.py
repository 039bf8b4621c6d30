from datetime import UTC, datetime, timedelta

import pytest

from tenancy_diag.analysis.frames import matrix_frame, vector_frame, wide
from tenancy_diag.errors import ConfigError
from tenancy_diag.querying import choose_step

T0 = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.mark.parametrize(
    "span", [timedelta(minutes=5), timedelta(hours=3), timedelta(days=7), timedelta(days=400)]
)
def test_step_never_exceeds_prometheus_point_limit(span):
    step = choose_step(T0 - span, T0, target_points=100_000)
    assert span.total_seconds() / step + 1 <= 11_000


def test_step_is_readable_and_not_finer_than_minimum():
    assert choose_step(T0 - timedelta(hours=3), T0) == 15
    assert choose_step(T0 - timedelta(hours=12), T0) == 60
    assert choose_step(T0 - timedelta(minutes=1), T0, min_step_s=30) == 30


def test_step_rejects_empty_range():
    with pytest.raises(ConfigError, match="is not before end"):
        choose_step(T0, T0)


def test_matrix_frame_is_tidy_with_utc_times():
    result = [
        {"metric": {"region": "us-east-1", "tenant": "t-1"}, "values": [[1.0, "1"], [2.0, "NaN"]]},
        {"metric": {"region": "eu-west-1"}, "values": [[1.0, "+Inf"]]},
    ]
    df = matrix_frame(result)
    assert list(df.columns) == ["region", "tenant", "timestamp", "value"]
    assert str(df["timestamp"].dt.tz) == "UTC"
    assert len(df) == 3
    assert df["value"].isna().sum() == 1
    assert wide(df, "region").shape == (2, 2)


def test_vector_frame_and_empty_results():
    df = vector_frame([{"metric": {"region": "x"}, "value": [5.0, "3.5"]}])
    assert df.loc[0, "value"] == 3.5
    empty = matrix_frame([])
    assert list(empty.columns) == ["timestamp", "value"] and empty.empty
