"""Latency histograms drawn from mixtures of lognormal components, one per way a call can go."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tenancy_diag.sandbox.metric_history.families import (
    BUCKETS_MS,
    FloatArray,
    Histogram,
    IntArray,
    Labels,
)


def _normal_cdf(z: FloatArray) -> FloatArray:
    # Abramowitz & Stegun 7.1.26 (error < 1.5e-7): numpy has no erf and scipy is no dependency.
    x = np.abs(z) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = 1.0 - poly * np.exp(-x * x)
    return np.asarray(0.5 * (1.0 + np.sign(z) * erf))


@dataclass(frozen=True)
class Latency:
    """One lognormal component of a latency mixture, in milliseconds."""

    share: FloatArray | float  # fraction of observations, per (row, step) or constant
    median_ms: FloatArray | float
    sigma: float

    def bucket_probabilities(self) -> FloatArray:
        """(..., buckets + 1): probability of landing in each bucket, +Inf last."""
        bounds = np.log(np.asarray(BUCKETS_MS, dtype=np.float64))
        median = np.log(np.asarray(self.median_ms, dtype=np.float64))[..., None]
        cdf = _normal_cdf((bounds - median) / self.sigma)
        edge = np.ones((*cdf.shape[:-1], 1))
        return np.asarray(np.diff(np.concatenate([0 * edge, cdf, edge], axis=-1), axis=-1))

    def mean_ms(self) -> FloatArray:
        return np.asarray(self.median_ms, dtype=np.float64) * math.exp(self.sigma**2 / 2.0)


def latency_histogram(
    rng: np.random.Generator, labels: Labels, observations: IntArray, mixture: Sequence[Latency]
) -> Histogram:
    """A histogram of ``observations`` (rows, steps) drawn from a latency mixture."""
    shape = observations.shape
    probs = np.zeros((*shape, len(BUCKETS_MS) + 1))
    mean = np.zeros(shape)
    for part in mixture:
        share = np.broadcast_to(np.asarray(part.share, dtype=np.float64), shape)
        probs += share[..., None] * np.broadcast_to(part.bucket_probabilities(), probs.shape)
        mean += share * np.broadcast_to(part.mean_ms(), shape)
    # Rows without observations have no mixture at all; they are never drawn from.
    probs /= np.maximum(probs.sum(axis=-1, keepdims=True), 1e-12)
    increments = np.zeros(probs.shape, dtype=np.int64)
    where = np.nonzero(observations)
    if where[0].size:
        increments[where] = rng.multinomial(observations[where], probs[where])
    sums = observations * mean * rng.gamma(50.0, 1.0 / 50.0, size=shape)
    uptime = rng.uniform(300, 3000, size=(shape[0],))
    start = np.round(increments.mean(axis=1) * uptime[:, None]).astype(np.int64)
    sum_start = sums.mean(axis=1) * uptime
    return Histogram(
        labels,
        start[:, None, :] + np.cumsum(increments, axis=1),
        np.round(sum_start[:, None] + np.cumsum(sums, axis=1), 3),
    )
