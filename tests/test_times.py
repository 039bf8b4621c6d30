from datetime import UTC, datetime, timedelta

import pytest

from tenancy_diag.errors import ConfigError
from tenancy_diag.times import parse_duration, parse_time


def test_parse_time_forms():
    assert parse_time("2026-11-27T03:00:00Z") == datetime(2026, 11, 27, 3, tzinfo=UTC)
    assert parse_time("2026-11-27T04:00:00+01:00") == datetime(2026, 11, 27, 3, tzinfo=UTC)
    assert parse_time("0") == datetime(1970, 1, 1, tzinfo=UTC)
    assert abs(parse_time("now") - datetime.now(UTC)) < timedelta(seconds=5)


def test_parse_time_error_names_value():
    with pytest.raises(ConfigError, match="'yesterday' is not a time"):
        parse_time("yesterday")


def test_parse_duration():
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    with pytest.raises(ConfigError, match="'15 minutes'"):
        parse_duration("15 minutes")
    with pytest.raises(ConfigError, match="must be positive"):
        parse_duration("0s")
