"""Numbers as an on-call reader reads them, and what a query's value measures.

``10000.0`` is "10,000 ms", ``0.0123`` of a ratio is "1.2 %", ``0.00721`` per second stays
"0.0072 /s": two significant digits below one, thousands separators above. A value's measure
("webhook failures /s", "replication lag (s)") is read off the signals mapping's PromQL
template, so a table column or an axis never says only "value".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from tenancy_diag.analysis.frames import VALUE

#: ``DataFrame.attrs`` key holding what the frame's ``value`` column measures.
MEASURE = "measure"
#: Units whose values read better as percentages.
_PERCENT_UNITS = {"ratio"}
_UNIT_SUFFIXES = {"_ms": "ms", "_seconds": "s", "_bytes": "bytes"}
_METRIC = re.compile(r"\{\{(\w+)")


def number(value: float | None) -> str:
    """``value`` for a person: no trailing zeros, separators, two significant digits below 1."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "no data"
    if value == 0:
        return "0"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 1:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    digits = -math.floor(math.log10(size)) + 1
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


def quantity(value: float | None, unit: str = "") -> str:
    """``value`` with its unit: ratios as percentages, ``10,000 ms``, bare numbers bare."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "no data"
    if unit in _PERCENT_UNITS:
        return f"{number(value * 100)} %"
    return f"{number(value)} {unit}".rstrip()


def measure_of(template: str) -> str:
    """What a signals.yaml PromQL template's value measures, with its unit."""
    metrics = _METRIC.findall(template)
    if not metrics:
        return VALUE
    name, unit = _words(metrics[0])
    if template.lstrip().startswith("histogram_quantile"):
        return f"{name} ({unit})" if unit else name
    # A rate divided by a rate: a share of the events, whatever the metric's own unit.
    if re.search(r"\)\s*/\s*sum", template):
        return "ratio"
    if "rate(" in template:
        return f"{name} /s"
    if "changes(" in template:
        return f"{name} changes"
    return f"{name} ({unit})" if unit else name


def _words(metric: str) -> tuple[str, str]:
    base, unit = metric.split(":", 1)[0], ""
    base = base.removesuffix("_total")
    for suffix, name in _UNIT_SUFFIXES.items():
        if base.endswith(suffix):
            base, unit = base.removesuffix(suffix), name
    return base.replace("_", " "), unit


def measured(df: pd.DataFrame, measure: str) -> pd.DataFrame:
    """``df`` marked as measuring ``measure`` (kept in ``df.attrs``, read by tables and plots)."""
    df.attrs[MEASURE] = measure
    return df


def measure(df: pd.DataFrame) -> str:
    """What ``df``'s value column measures; "value" when nobody said."""
    return str(df.attrs.get(MEASURE) or VALUE)


def unit_of(measure_text: str) -> str:
    """The unit :func:`quantity` takes for a measure: ``"x (ms)"`` -> ms, ``"x /s"`` -> /s."""
    if measure_text == "ratio":
        return "ratio"
    found = re.search(r"\(([^)]+)\)$", measure_text)
    if found:
        return found.group(1)
    return "/s" if measure_text.endswith("/s") else ""


def reading(value: float | None, measure_text: str) -> str:
    """One value in words: "0.0072 reconcile failures/s", "replication lag 340 s", "1.2 %"."""
    if measure_text == "ratio":
        return quantity(value, "ratio")
    found = re.fullmatch(r"(.*) \(([^)]+)\)", measure_text)
    if found:
        return f"{found.group(1)} {quantity(value, found.group(2))}"
    if measure_text.endswith(" /s"):
        return f"{number(value)} {measure_text.removesuffix(' /s')}/s"
    return f"{measure_text} {number(value)}"


def figures(df: pd.DataFrame, key: str = "tenant") -> dict[str, str]:
    """``{key value: "0.0072 reconcile failures/s in us-east-1"}`` per row of a top-N frame,
    largest first; a key seen in several regions gets every region's figure."""
    if df.empty or key not in df.columns or VALUE not in df.columns:
        return {}
    what = measure(df)
    out: dict[str, list[str]] = {}
    for row in df.sort_values(VALUE, ascending=False).to_dict("records"):
        where = f" in {row['region']}" if row.get("region") else ""
        out.setdefault(str(row[key]), []).append(f"{reading(row[VALUE], what)}{where}")
    return {k: ", ".join(v) for k, v in out.items()}


def merge_figures(*found: Mapping[str, Any]) -> dict[str, str]:
    """Several :func:`figures` maps in one; a key in more than one keeps each figure."""
    out: dict[str, list[str]] = {}
    for mapping in found:
        for key, text in mapping.items():
            out.setdefault(str(key), []).append(str(text))
    return {k: "; ".join(dict.fromkeys(v)) for k, v in out.items()}
