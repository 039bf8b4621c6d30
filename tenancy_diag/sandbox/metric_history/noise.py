"""Random building blocks: noisy traffic, rare failures, and counters that look days old.

Every function draws from the generator it is given, in a fixed order, so a simulator that calls
them in the same order writes the same history for the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tenancy_diag.sandbox.metric_history.families import FloatArray, IntArray, Labels, Series


def noisy_counts(rng: np.random.Generator, mean: FloatArray, cv: float = 0.15) -> IntArray:
    """Poisson counts whose rate itself wobbles (gamma), as real traffic does."""
    shape = 1.0 / (cv * cv)
    rate = np.clip(mean, 0.0, None) * rng.gamma(shape, 1.0 / shape, size=mean.shape)
    return rng.poisson(rate).astype(np.int64)


def split(rng: np.random.Generator, counts: IntArray, mix: Sequence[float]) -> IntArray:
    """Spread counts over categories; only the few non-zero cells are drawn (errors are rare)."""
    out = np.zeros((*counts.shape, len(mix)), dtype=np.int64)
    where = np.nonzero(counts)
    if where[0].size:
        out[where] = rng.multinomial(counts[where], np.asarray(mix, dtype=np.float64) / sum(mix))
    return out


def flakiness(rng: np.random.Generator, n: int) -> FloatArray:
    """Per-tenant share of its subsystem's worst background error rate, 0 to 1.

    Most tenants never fail; a few (a bad config, a flaky endpoint) fail now and then. That
    keeps failure series few, and since the worst rate is below the SLO, no tenant, however
    heavy, can push a region over an SLO on a healthy day.
    """
    return np.where(rng.random(n) < 0.08, rng.uniform(0.2, 1.0, n), 0.0)


def add_old_failures(
    rng: np.random.Generator, by_category: IntArray, propensity: FloatArray, mix: Sequence[float]
) -> None:
    """Add failures from before the history to a few rows, at the first scrape.

    A process up for days has some failure series already, so every failure counter exists on
    a healthy day too (and a check for expected series finds it).
    """
    weights = (propensity + 1e-9) / (propensity + 1e-9).sum()
    rows = rng.choice(len(propensity), size=min(3, len(propensity)), replace=False, p=weights)
    cats = rng.choice(len(mix), size=len(rows), p=np.asarray(mix) / sum(mix))
    by_category[rows, 0, cats] += rng.integers(1, 4, size=len(rows))


def counter(rng: np.random.Generator, increments: IntArray) -> FloatArray:
    """Running totals, starting where days of uptime before the history would have left them."""
    uptime_steps = rng.uniform(300, 3000, size=(increments.shape[0],))
    start = np.round(increments.mean(axis=1) * uptime_steps)
    return np.asarray(start[:, None] + np.cumsum(increments, axis=1), dtype=np.float64)


def with_uptime(rng: np.random.Generator, increments: IntArray) -> IntArray:
    """(rows, steps, categories) increments whose first step carries the pre-history total."""
    uptime_steps = rng.uniform(300, 3000, size=(increments.shape[0], 1))
    out = increments.copy()
    out[:, 0, :] += np.round(increments.mean(axis=1) * uptime_steps).astype(np.int64)
    return out


def sparse_counters(
    increments: IntArray, labels: Labels, category: str, values: Sequence[str]
) -> Series:
    """Counters per (row, category) that exist only from their first increment on.

    ``increments`` is (rows, steps, categories). Client libraries create a labelled child on
    first use, so a failure series appears with the first failure, never as a run of zeros.
    """
    cumulative = np.cumsum(increments, axis=1)
    rows, cats = np.nonzero(cumulative[:, -1, :] > 0)
    kept = cumulative[rows, :, cats].astype(np.float64)
    kept[kept == 0] = np.nan
    out = {key: [column[r] for r in rows.tolist()] for key, column in labels.items()}
    out[category] = [values[c] for c in cats.tolist()]
    return Series(out, kept)
