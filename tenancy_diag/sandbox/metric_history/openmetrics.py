"""The OpenMetrics text format, as promtool reads it into TSDB blocks.

What promtool 2.42's OpenMetrics parser (``tsdb create-blocks-from openmetrics``) requires, as
probed with the installed binary: every sample carries a timestamp in seconds and the file ends
with ``# EOF``; a ``# UNIT`` must be a suffix of the family name. It is lenient elsewhere (a
counter family named with or without ``_total``, histograms without ``+Inf``) and, worse, it
*silently drops* some samples that are out of time order or repeated within a series (others
fail the run), and reads millisecond timestamps as seconds. So this writer owns correctness:
it writes the strict form (counter family ``x`` with samples ``x_total``, a histogram as whole
MetricPoints, each series in time order) and its tests check what promtool would not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

import numpy as np

from tenancy_diag.errors import SandboxError
from tenancy_diag.sandbox.metric_history.families import (
    BUCKETS_MS,
    Family,
    Histogram,
    IntArray,
    Labels,
    Series,
)
from tenancy_diag.signals import Signals


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family_header(name: str, metric_type: str) -> tuple[str, str]:
    """OpenMetrics family name and type for a metric's sample name."""
    if metric_type == "counter":
        # OpenMetrics counters are family ``x`` with samples ``x_total``; a counter the mapping
        # names without ``_total`` can only be written as ``unknown`` without renaming it.
        return (
            (name.removesuffix("_total"), "counter")
            if name.endswith("_total")
            else (name, "unknown")
        )
    if metric_type == "gauge" and name.endswith("_info"):
        # A constant-1 gauge named ``*_info`` is what OpenMetrics calls an info metric.
        return name.removesuffix("_info"), "info"
    return name, metric_type


class Writer:
    """Renders families with the mapping's names and counts what it wrote."""

    def __init__(self, mapping: Signals, ts: IntArray) -> None:
        self.mapping = mapping
        self.suffixes = [f" {t}\n" for t in ts.tolist()]
        self.series = 0
        self.samples = 0

    def family(self, f: TextIO, key: str, data: Family) -> None:
        metric = self.mapping.doc.metrics[key]
        if (metric.type == "histogram") != isinstance(data, Histogram):
            raise SandboxError(
                f"metric {key!r} is a {metric.type} in {self.mapping.path} but the sandbox "
                "simulates it as another type; fix its type: in the mapping"
            )
        if set(data.labels) != set(metric.labels):
            raise SandboxError(
                f"metric {key!r} has labels {list(metric.labels)} in {self.mapping.path} but the "
                f"sandbox simulates {sorted(data.labels)}; align its labels: in the mapping"
            )
        name = self.mapping.metric_name(key)
        family_name, type_name = _family_header(name, metric.type)
        f.write(f"# HELP {family_name} Tenancy {metric.subsystem} signal {key} (sandbox).\n")
        f.write(f"# TYPE {family_name} {type_name}\n")
        label_sets = self._label_sets(key, data.labels)
        if isinstance(data, Histogram):
            self._histogram(f, name, label_sets, data)
        else:
            self._series(f, name, label_sets, data)

    def _label_sets(self, key: str, labels: Labels) -> list[str]:
        metric = self.mapping.doc.metrics[key]
        fixed = [f'{k}="{_escape(v)}"' for k, v in sorted(metric.match.items())]
        names = [self.mapping.label(k) for k in metric.labels]
        columns = [labels[k] for k in metric.labels]
        rows = len(columns[0]) if columns else 0
        return [
            ",".join(
                [
                    *fixed,
                    *(f'{n}="{_escape(col[i])}"' for n, col in zip(names, columns, strict=True)),
                ]
            )
            for i in range(rows)
        ]

    def _series(self, f: TextIO, name: str, label_sets: Sequence[str], data: Series) -> None:
        for labels, row in zip(label_sets, data.values, strict=True):
            present = ~np.isnan(row)
            if not present.any():
                continue
            values = (
                row[present].astype(np.int64).tolist()
                if data.integer
                else np.round(row[present], 6).tolist()
            )
            suffixes = [s for s, p in zip(self.suffixes, present.tolist(), strict=True) if p]
            head = f"{name}{{{labels}}} "
            # Whole rows at once: formatting is most of the cost at 10,000 tenants.
            f.write("".join(map(str.__add__, map(head.__add__, map(str, values)), suffixes)))
            self.series += 1
            self.samples += len(values)

    def _histogram(self, f: TextIO, name: str, label_sets: Sequence[str], data: Histogram) -> None:
        bounds = [*map(str, BUCKETS_MS), "+Inf"]
        for labels, counts, sums in zip(label_sets, data.counts, data.sums, strict=True):
            sep = "," if labels else ""
            heads = [f'{name}_bucket{{{labels}{sep}le="{b}"}} ' for b in bounds]
            sum_head, count_head = f"{name}_sum{{{labels}}} ", f"{name}_count{{{labels}}} "
            cumulative = np.cumsum(counts, axis=1).tolist()
            lines: list[str] = []
            # One MetricPoint (every bucket, the sum, the count) per scrape, in time order.
            for by_le, total, suffix in zip(cumulative, sums.tolist(), self.suffixes, strict=True):
                lines.extend(h + str(v) + suffix for h, v in zip(heads, by_le, strict=True))
                lines.append(sum_head + repr(total) + suffix)
                lines.append(count_head + str(by_le[-1]) + suffix)
            f.write("".join(lines))
            self.series += len(bounds) + 2
            self.samples += len(self.suffixes) * (len(bounds) + 2)
