"""Plots read at a glance: the threshold and the incident start always marked, every axis
labelled with its unit (what the frame measures, when the caller names none), bars sorted."""

from __future__ import annotations

from datetime import datetime

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from tenancy_diag.analysis.frames import TIME, VALUE
from tenancy_diag.analysis.quantities import measure

_MAX_LINES = 8


def timeseries(
    df: pd.DataFrame,
    by: str,
    title: str,
    *,
    threshold: float | None = None,
    incident_start: datetime | None = None,
    ylabel: str = "",
    logy: bool = False,
) -> Figure:
    """One line per value of ``by`` (the busiest first), threshold dashed, incident start dotted."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    if df.empty:
        ax.text(
            0.5, 0.5, "no data in this window", ha="center", va="center", transform=ax.transAxes
        )
    else:
        wide = df.pivot_table(index=TIME, columns=by, values=VALUE, aggfunc="sum").sort_index()
        order = wide.max().sort_values(ascending=False).index[:_MAX_LINES]
        for column in order:
            ax.plot(wide.index, wide[column], label=str(column), linewidth=1.4)
        if len(wide.columns) > _MAX_LINES:
            ax.set_title(f"{title} (top {_MAX_LINES} of {len(wide.columns)})", fontsize=10)
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    if threshold is not None:
        ax.axhline(threshold, color="crimson", linestyle="--", linewidth=1, label="threshold")
        ax.annotate(
            f"threshold {threshold:g}",
            xy=(1, threshold),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            fontsize=7,
            color="crimson",
        )
    if incident_start is not None:
        ax.axvline(mdates.date2num(incident_start), color="black", linestyle=":", linewidth=1)
        ax.annotate(
            "incident start",
            xy=(mdates.date2num(incident_start), 1),
            xycoords=("data", "axes fraction"),
            ha="left",
            va="top",
            fontsize=7,
        )
    if not ax.get_title():
        ax.set_title(title, fontsize=10)
    if logy:
        ax.set_yscale("symlog")
    ax.set_ylabel(ylabel or measure(df), fontsize=8)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz="UTC"))
    ax.set_xlabel("UTC", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    plt.close(fig)  # shown by the notebook's display, not by pyplot's global state
    return fig


def bars(
    df: pd.DataFrame, label: str, title: str, *, value: str = VALUE, top: int = 10, xlabel: str = ""
) -> Figure:
    """Horizontal bars of the top-N rows, largest on top; a label seen in several regions gets
    one bar per region (named so), never two bars drawn over each other."""
    fig, ax = plt.subplots(figsize=(9, 0.35 * min(top, max(len(df), 1)) + 1.2))
    if df.empty:
        ax.text(0.5, 0.5, "nothing to rank", ha="center", va="center", transform=ax.transAxes)
    else:
        rows = df.sort_values([value, label], ascending=[False, True]).head(top)
        names = rows[label].astype(str)
        if "region" in rows and names.duplicated().any():
            names = names + " (" + rows["region"].astype(str) + ")"
        ax.barh(names.iloc[::-1], rows[value].iloc[::-1], color="#4c72b0")
        ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel or measure(df), fontsize=8)
    ax.set_ylabel(label, fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    plt.close(fig)
    return fig
