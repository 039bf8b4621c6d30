"""Numbers, units and measures as a reader sees them in tables, axes and the index."""

from __future__ import annotations

import pandas as pd
import pytest

from tenancy_diag import plots
from tenancy_diag.analysis.quantities import (
    figures,
    measure,
    measure_of,
    measured,
    number,
    quantity,
    reading,
)
from tenancy_diag.signals import load


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (10000.0, "10,000"),
        (2000.0, "2,000"),
        (1234.5, "1,234"),
        (2.5, "2.5"),
        (1.0, "1"),
        (0.00721, "0.0072"),
        (0.000012, "0.000012"),
        (0.0, "0"),
        (float("nan"), "no data"),
        (None, "no data"),
    ],
)
def test_numbers_read_without_trailing_zeros(value, text):
    assert number(value) == text


def test_quantities_carry_units_and_ratios_read_as_percentages():
    assert quantity(10000.0, "ms") == "10,000 ms"
    assert quantity(0.0123, "ratio") == "1.23 %"
    assert quantity(0.995, "ratio") == "99.5 %"
    assert quantity(3.0, "") == "3"


def test_every_query_of_the_mapping_measures_something_named():
    for group, queries in load().doc.queries.items():
        for name, template in queries.items():
            assert measure_of(template) != "value", f"{group}.{name}"
    queries = load().doc.queries
    assert measure_of(queries["webhook"]["top_endpoints"]) == "webhook failures /s"
    assert measure_of(queries["webhook"]["failure_ratio"]) == "ratio"
    assert measure_of(queries["policy"]["latency_quantile"]) == "policy eval latency (ms)"
    assert (
        measure_of(queries["lifecycle"]["replication_lag_max"]) == "migration replication lag (s)"
    )


def test_readings_and_tenant_figures():
    assert reading(0.0072, "reconcile failures /s") == "0.0072 reconcile failures/s"
    assert reading(340.0, "migration replication lag (s)") == "migration replication lag 340 s"
    top = measured(
        pd.DataFrame(
            {
                "region": ["us-east-1", "eu-west-1", "us-east-1"],
                "tenant": ["a", "a", "b"],
                "value": [0.5, 0.25, 0.01],
            }
        ),
        "webhook failures /s",
    )
    assert figures(top) == {
        "a": "0.5 webhook failures/s in us-east-1, 0.25 webhook failures/s in eu-west-1",
        "b": "0.01 webhook failures/s in us-east-1",
    }


def test_bars_are_sorted_largest_on_top_labelled_and_split_by_region():
    df = measured(
        pd.DataFrame(
            {
                "region": ["us-east-1", "eu-west-1", "us-east-1", "us-east-1"],
                "endpoint": ["b.example", "b.example", "a.example", "c.example"],
                "value": [0.2, 0.9, 0.5, 0.2],
            }
        ),
        "webhook failures /s",
    )
    axis = plots.bars(df, "endpoint", "Endpoints").axes[0]
    labels = [t.get_text() for t in axis.get_yticklabels()]
    # barh draws bottom-up: the last label is the top bar.
    assert labels[::-1] == [
        "b.example (eu-west-1)",
        "a.example (us-east-1)",
        "b.example (us-east-1)",
        "c.example (us-east-1)",
    ]
    widths = [p.get_width() for p in axis.patches][::-1]
    assert widths == sorted(widths, reverse=True)
    assert axis.get_xlabel() == "webhook failures /s" and axis.get_ylabel() == "endpoint"


def test_time_series_axes_say_what_they_measure():
    df = measured(
        pd.DataFrame(
            {"region": ["a"], "timestamp": pd.to_datetime([0], unit="s", utc=True), "value": [1.0]}
        ),
        "policy eval latency (ms)",
    )
    axis = plots.timeseries(df, "region", "Latency").axes[0]
    assert axis.get_ylabel() == "policy eval latency (ms)"
    assert measure(pd.DataFrame()) == "value"
