"""The sandbox's Prometheus history: hours of scrapes of the Tenancy fleet as one OpenMetrics file.

Everything is a seeded function of a :class:`Scenario`, so the history agrees with the pod logs,
DLQs and jobs the rest of the sandbox derives from the same scenario. Metric names and label
names come from the signals mapping (parameters/signals.yaml); this package refers to metric
*keys* only, so a metric renamed in the mapping is renamed in the history too.

The traffic looks like production on purpose, because the diagnostics must cope with it:
diurnal load by local hour, gamma-Poisson noise, heavy-tailed tenants (their Pareto weights),
rare background errors that still pass every SLO, and failure counters that exist only for
series that ever failed. A fault ramps in over minutes, inside the incident region only.

Where things live: :mod:`.families` (the shapes of a metric), :mod:`.world` (the scenario as
arrays), :mod:`.noise` and :mod:`.latency` (random building blocks), one module per subsystem
(:mod:`.controller`, :mod:`.webhook`, :mod:`.policy`, :mod:`.api`, :mod:`.lifecycle`), and
:mod:`.openmetrics` (the file format) driven by :mod:`.writing`.
"""

from tenancy_diag.sandbox.metric_history.families import BUCKETS_MS, Histogram, Series
from tenancy_diag.sandbox.metric_history.writing import HistoryStats, simulate, write_openmetrics

__all__ = ["BUCKETS_MS", "Histogram", "HistoryStats", "Series", "simulate", "write_openmetrics"]
