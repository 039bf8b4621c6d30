"""The shapes a simulated metric takes before it is written: counter/gauge series and histograms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Labels = Mapping[str, Sequence[str]]

#: Bucket bounds of the millisecond latency histograms.
BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000)


@dataclass(frozen=True)
class Series:
    """Series of one counter or gauge: label values per row, one value per row and scrape."""

    labels: Labels  # label key -> one value per row
    values: FloatArray  # (rows, steps); NaN where the series does not exist (yet, or any more)
    integer: bool = True


@dataclass(frozen=True)
class Histogram:
    """Series of one histogram: per row and scrape, counts per bucket and the sum."""

    labels: Labels
    #: (rows, steps, len(BUCKETS_MS) + 1), cumulative over time but not over ``le``; +Inf last.
    counts: IntArray
    sums: FloatArray  # (rows, steps)


Family = Series | Histogram
