"""The sandbox's Prometheus history: hours of scrapes of the Tenancy fleet as one OpenMetrics file.

Everything is a seeded function of a :class:`Scenario`, so the history agrees with the pod logs,
DLQs and jobs the rest of the sandbox derives from the same scenario. Metric names and label
names come from the signals mapping (parameters/signals.yaml); this module refers to metric
*keys* only, so a metric renamed in the mapping is renamed in the history too.

The traffic looks like production on purpose, because the diagnostics must cope with it:
diurnal load by local hour, gamma-Poisson noise, heavy-tailed tenants (their Pareto weights),
rare background errors that still pass every SLO, and failure counters that exist only for
series that ever failed. A fault ramps in over minutes, inside the incident region only.

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

import math
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TextIO

import numpy as np
import numpy.typing as npt

from tenancy_diag import signals as signals_module
from tenancy_diag.errors import SandboxError
from tenancy_diag.sandbox.topology import CLIENT_IDS, POLICIES, ROUTES, SHARED_ENDPOINTS, Scenario
from tenancy_diag.signals import Signals

__all__ = ["BUCKETS_MS", "Histogram", "HistoryStats", "Series", "simulate", "write_openmetrics"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Labels = Mapping[str, Sequence[str]]

#: Bucket bounds of the millisecond latency histograms.
BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000)
# Real incidents build up over minutes; a step change at one scrape would flatter detectors.
_RAMP_S = 300.0
# The controller feels a slow policy service only once retries and timeouts pile up.
_DOWNSTREAM_DELAY_S = 180.0
# Dispatchers cap the endpoint label of their latency histogram, as real exporters must with one
# private endpoint per tenant; the long tail is reported as "other".
_ENDPOINT_LABEL_LIMIT = 12
# UTC offset of a region's working day, by name prefix, so each cell peaks in its own afternoon.
_REGION_UTC_OFFSETS = {
    "us-west": -8,
    "us-east": -5,
    "ca-": -5,
    "sa-": -3,
    "eu-": 1,
    "me-": 4,
    "ap-south-": 5,
    "ap-northeast": 9,
    "ap-southeast": 10,
}


@dataclass(frozen=True)
class HistoryStats:
    """What :func:`write_openmetrics` wrote."""

    series: int
    samples: int
    bytes: int
    #: Wall-clock seconds to simulate and write the file.
    seconds: float


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


# ---------------------------------------------------------------------------------------------
# The world the metrics describe
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class World:
    """A scenario as arrays: scrape times, tenants, daily load, and where the fault is."""

    scenario: Scenario
    ts: IntArray  # scrape times, seconds since the epoch, the last one at scenario.end
    regions: tuple[str, ...]
    tenant_ids: tuple[str, ...]
    tenant_endpoint: tuple[str, ...]
    tenant_region: IntArray  # index into regions
    weight: FloatArray  # relative traffic per tenant
    diurnal: FloatArray  # (regions, steps) load factor around 1
    truth_tenant: BoolArray
    incident: int  # index of the incident region; -1 when healthy

    @property
    def steps(self) -> int:
        return len(self.ts)

    @property
    def step_s(self) -> int:
        return self.scenario.spec.step_s

    def rng(self, *purpose: object) -> np.random.Generator:
        seed = self.scenario.rng("metric-history", *purpose).getrandbits(128)
        return np.random.default_rng(seed)

    def fault(self, pattern: str, delay_s: float = 0.0, ramp_s: float = _RAMP_S) -> FloatArray:
        """0 before the fault (or when another one is simulated), easing to 1 over ``ramp_s``."""
        start = self.scenario.truth.incident_start
        if self.scenario.truth.pattern != pattern or start is None:
            return np.zeros(self.steps)
        x = np.clip((self.ts - start.timestamp() - delay_s) / ramp_s, 0.0, 1.0)
        eased: FloatArray = x * x * (3.0 - 2.0 * x)
        return eased

    def elapsed_s(self) -> FloatArray:
        """Seconds since the incident started, 0 before it (and throughout when healthy)."""
        start = self.scenario.truth.incident_start
        if start is None:
            return np.zeros(self.steps)
        elapsed: FloatArray = np.clip(self.ts - start.timestamp(), 0.0, None).astype(np.float64)
        return elapsed

    def during_incident(self) -> BoolArray:
        """Scrapes at or after the incident start (none when healthy)."""
        start = self.scenario.truth.incident_start
        if start is None:
            return np.zeros(self.steps, dtype=np.bool_)
        return np.asarray(self.ts >= start.timestamp())

    def in_incident(self, region_index: IntArray) -> BoolArray:
        return np.asarray(region_index == self.incident)

    def tenant_load(self) -> FloatArray:
        """(tenants, steps): each tenant's weight times its region's daily curve."""
        load: FloatArray = self.weight[:, None] * self.diurnal[self.tenant_region]
        return load

    def region_weight(self) -> FloatArray:
        total: FloatArray = np.bincount(
            self.tenant_region, self.weight, minlength=len(self.regions)
        ).astype(np.float64)
        return total

    def names(self, region_index: IntArray) -> list[str]:
        return [self.regions[r] for r in region_index.tolist()]


def scrape_times(scenario: Scenario) -> IntArray:
    """Scrape times of the history, seconds since the epoch, the last one at ``scenario.end``."""
    spec = scenario.spec
    steps = spec.duration_s // spec.step_s + 1
    end = int(scenario.end.timestamp())
    return end - spec.step_s * np.arange(steps - 1, -1, -1, dtype=np.int64)


def build_world(scenario: Scenario) -> World:
    ts = scrape_times(scenario)
    regions = tuple(scenario.spec.regions)
    tenants = scenario.tenants
    truth = set(scenario.truth.tenants)
    return World(
        scenario=scenario,
        ts=ts,
        regions=regions,
        tenant_ids=tuple(t.id for t in tenants),
        tenant_endpoint=tuple(t.endpoint for t in tenants),
        tenant_region=np.array([regions.index(t.region) for t in tenants], dtype=np.int64),
        weight=np.array([t.weight for t in tenants], dtype=np.float64),
        diurnal=np.stack([_diurnal(ts, r) for r in regions]),
        truth_tenant=np.array([t.id in truth for t in tenants], dtype=np.bool_),
        incident=regions.index(scenario.truth.region) if scenario.truth.region else -1,
    )


def _diurnal(ts: IntArray, region: str) -> FloatArray:
    offset = next((h for p, h in _REGION_UTC_OFFSETS.items() if region.startswith(p)), 0)
    local_hour = (ts % 86400) / 3600.0 + offset
    # Busiest at 14:00 local (1.3), quietest at 02:00 (0.7).
    return np.asarray(1.0 + 0.3 * np.sin(2 * np.pi * (local_hour - 8.0) / 24.0))


# ---------------------------------------------------------------------------------------------
# Random building blocks
# ---------------------------------------------------------------------------------------------
def _noisy_counts(rng: np.random.Generator, mean: FloatArray, cv: float = 0.15) -> IntArray:
    """Poisson counts whose rate itself wobbles (gamma), as real traffic does."""
    shape = 1.0 / (cv * cv)
    rate = np.clip(mean, 0.0, None) * rng.gamma(shape, 1.0 / shape, size=mean.shape)
    return rng.poisson(rate).astype(np.int64)


def _split(rng: np.random.Generator, counts: IntArray, mix: Sequence[float]) -> IntArray:
    """Spread counts over categories; only the few non-zero cells are drawn (errors are rare)."""
    out = np.zeros((*counts.shape, len(mix)), dtype=np.int64)
    where = np.nonzero(counts)
    if where[0].size:
        out[where] = rng.multinomial(counts[where], np.asarray(mix, dtype=np.float64) / sum(mix))
    return out


def _flakiness(rng: np.random.Generator, n: int) -> FloatArray:
    """Per-tenant share of its subsystem's worst background error rate, 0 to 1.

    Most tenants never fail; a few (a bad config, a flaky endpoint) fail now and then. That
    keeps failure series few, and since the worst rate is below the SLO, no tenant, however
    heavy, can push a region over an SLO on a healthy day.
    """
    return np.where(rng.random(n) < 0.08, rng.uniform(0.2, 1.0, n), 0.0)


def _add_old_failures(
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


def _counter(rng: np.random.Generator, increments: IntArray) -> FloatArray:
    """Running totals, starting where days of uptime before the history would have left them."""
    uptime_steps = rng.uniform(300, 3000, size=(increments.shape[0],))
    start = np.round(increments.mean(axis=1) * uptime_steps)
    return np.asarray(start[:, None] + np.cumsum(increments, axis=1), dtype=np.float64)


def _with_uptime(rng: np.random.Generator, increments: IntArray) -> IntArray:
    """(rows, steps, categories) increments whose first step carries the pre-history total."""
    uptime_steps = rng.uniform(300, 3000, size=(increments.shape[0], 1))
    out = increments.copy()
    out[:, 0, :] += np.round(increments.mean(axis=1) * uptime_steps).astype(np.int64)
    return out


def _sparse_counters(
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
class _Latency:
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


def _latency_histogram(
    rng: np.random.Generator, labels: Labels, observations: IntArray, mixture: Sequence[_Latency]
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


def _stable_index(text: str, n: int) -> int:
    return zlib.crc32(text.encode()) % n


def _pods(world: World, app: str) -> dict[int, list[str]]:
    by_region: dict[int, list[str]] = {i: [] for i in range(len(world.regions))}
    for pod in world.scenario.pods:
        if pod.app == app:
            by_region[world.regions.index(pod.region)].append(pod.name)
    return by_region


def _per_region(world: World, n_per_region: int) -> IntArray:
    """Region index of each row when every region has ``n_per_region`` rows, region-major."""
    return np.repeat(np.arange(len(world.regions), dtype=np.int64), n_per_region)


def _region_sums(world: World, region_index: IntArray, values: IntArray) -> IntArray:
    out = np.zeros((len(world.regions), *values.shape[1:]), dtype=np.int64)
    np.add.at(out, region_index, values)
    return out


# ---------------------------------------------------------------------------------------------
# Controller
# ---------------------------------------------------------------------------------------------
RECONCILE_REASONS = ("policy_error", "timeout", "throttled", "conflict", "internal")
_BACKGROUND_RECONCILE_MIX = (0.03, 0.2, 0.07, 0.55, 0.15)
_BACKLOG_MIX = (0.5, 0.1, 0.35, 0.0, 0.05)


def controller(world: World) -> dict[str, Family]:
    rng = world.rng("controller")
    pods = _pods(world, "tenancy-controller")
    tenant_pod = [
        pods[r][_stable_index(t, len(pods[r]))]
        for t, r in zip(world.tenant_ids, world.tenant_region.tolist(), strict=True)
    ]
    backlog = world.fault("reconcile_backlog")
    # Policy slowness reaches the controller later and weaker than the policy signals.
    downstream = world.fault("policy_timeout", _DOWNSTREAM_DELAY_S, ramp_s=600.0)
    truth = world.truth_tenant[:, None]
    region = world.in_incident(world.tenant_region)[:, None]
    # Failed reconciles are retried, so a backlog also raises the attempt rate.
    mean = 0.08 * world.step_s * world.tenant_load() * (1.0 + 0.5 * backlog * truth)
    attempts = _noisy_counts(rng, mean)
    flaky = _flakiness(rng, len(attempts))
    background = rng.binomial(attempts, 0.0015 * flaky[:, None])
    from_backlog = rng.binomial(attempts, np.clip(0.25 * backlog * truth, 0.0, 1.0))
    from_policy = rng.binomial(attempts, np.clip(0.02 * downstream * region, 0.0, 1.0))
    by_reason = _split(rng, background, _BACKGROUND_RECONCILE_MIX) + _split(
        rng, from_backlog, _BACKLOG_MIX
    )
    _add_old_failures(rng, by_reason, flaky, _BACKGROUND_RECONCILE_MIX)
    by_reason[..., RECONCILE_REASONS.index("policy_error")] += from_policy
    labels = {
        "region": world.names(world.tenant_region),
        "tenant": list(world.tenant_ids),
        "pod": tenant_pod,
    }
    return {
        "reconcile_total": Series(labels, _counter(rng, attempts)),
        "reconcile_failures_total": _sparse_counters(
            by_reason, labels, "reason", RECONCILE_REASONS
        ),
        **_controller_pods(world, rng, pods),
    }


def _controller_pods(
    world: World, rng: np.random.Generator, pods: dict[int, list[str]]
) -> dict[str, Family]:
    region_idx = np.array([r for r, names in pods.items() for _ in names], dtype=np.int64)
    labels = {
        "region": world.names(region_idx),
        "pod": [name for names in pods.values() for name in names],
    }
    region = world.in_incident(region_idx)[:, None]
    backlog = world.fault("reconcile_backlog") * region
    downstream = world.fault("policy_timeout", _DOWNSTREAM_DELAY_S, ramp_s=600.0) * region
    minutes = world.elapsed_s() / 60.0
    # A backlog keeps growing while its cause lasts; a slow policy service only slows draining.
    depth = (
        3.0 * world.diurnal[region_idx]
        + backlog * (120.0 + 8.0 * minutes)
        + downstream * (8.0 + 0.4 * minutes)
    )
    throttled = _noisy_counts(
        rng, world.step_s * world.diurnal[region_idx] * (0.02 + 3.0 * backlog + 0.2 * downstream)
    )
    return {
        "queue_depth": Series(labels, _noisy_counts(rng, depth, cv=0.1).astype(np.float64)),
        "controller_throttled_total": Series(labels, _counter(rng, throttled)),
    }


# ---------------------------------------------------------------------------------------------
# Webhook
# ---------------------------------------------------------------------------------------------
WEBHOOK_CODES = ("500", "502", "503", "timeout", "connection_refused", "tls")
_BACKGROUND_WEBHOOK_MIX = (0.3, 0.2, 0.2, 0.2, 0.05, 0.05)
_STORM_MIX = (0.0, 0.0, 0.5, 0.35, 0.15, 0.0)
_STORM_FAILING = 0.55  # share of deliveries to a broken endpoint that fail at full storm


def webhook(world: World) -> dict[str, Family]:
    rng = world.rng("webhook")
    broken = set(world.scenario.truth.endpoints)
    storm = world.fault("webhook_storm")
    hit = (
        world.in_incident(world.tenant_region)
        & np.array([e in broken for e in world.tenant_endpoint], dtype=np.bool_)
    )[:, None]
    # Failed deliveries are retried, so a storm also raises the attempt rate.
    load = world.tenant_load() * (1.0 + 1.5 * storm * hit)
    attempts = _noisy_counts(rng, 0.1 * world.step_s * load)
    flaky = _flakiness(rng, len(attempts))
    background = rng.binomial(attempts, 0.004 * flaky[:, None])
    from_storm = rng.binomial(attempts, np.clip(_STORM_FAILING * storm * hit, 0.0, 1.0))
    by_code = _split(rng, background, _BACKGROUND_WEBHOOK_MIX) + _split(rng, from_storm, _STORM_MIX)
    _add_old_failures(rng, by_code, flaky, _BACKGROUND_WEBHOOK_MIX)
    labels = {
        "region": world.names(world.tenant_region),
        "tenant": list(world.tenant_ids),
        "endpoint": list(world.tenant_endpoint),
    }
    # The dispatcher doubles its base backoff every few minutes of failures, up to 64 s.
    doublings = np.minimum(6.0, 1.0 + world.elapsed_s() / 300.0)
    backoff = np.tile(1.0 + storm * (2.0**doublings - 1.0), (len(world.regions), 1))
    backoff[np.arange(len(world.regions)) != world.incident] = 1.0
    return {
        "webhook_deliveries_total": Series(labels, _counter(rng, attempts)),
        "webhook_failures_total": _sparse_counters(by_code, labels, "code", WEBHOOK_CODES),
        "webhook_latency_ms": _webhook_latency(world, rng, attempts),
        "webhook_retry_backoff_seconds": Series(
            {"region": list(world.regions)}, backoff, integer=False
        ),
    }


def _endpoint_groups(world: World) -> dict[tuple[int, str], list[int]]:
    """(region, endpoint label) -> tenant indexes, with the long tail of endpoints as "other"."""
    groups: dict[tuple[int, str], list[int]] = {}
    endpoints = world.tenant_endpoint
    for r in range(len(world.regions)):
        members = np.flatnonzero(world.tenant_region == r).tolist()
        traffic: dict[str, float] = {}
        for i in members:
            traffic[endpoints[i]] = traffic.get(endpoints[i], 0.0) + float(world.weight[i])
        named = set(SHARED_ENDPOINTS) | set(
            sorted(traffic, key=lambda e: -traffic[e])[:_ENDPOINT_LABEL_LIMIT]
        )
        for i in members:
            groups.setdefault((r, endpoints[i] if endpoints[i] in named else "other"), []).append(i)
    return groups


def _webhook_latency(world: World, rng: np.random.Generator, attempts: IntArray) -> Histogram:
    groups = sorted(_endpoint_groups(world).items())
    broken = set(world.scenario.truth.endpoints)
    storm = world.fault("webhook_storm")
    observations = np.stack([attempts[members].sum(axis=0) for _, members in groups])
    hit = np.array([r == world.incident and e in broken for (r, e), _ in groups])[:, None]
    median = rng.uniform(60.0, 250.0, size=(len(groups), 1))
    failing = _STORM_FAILING * storm * hit
    mixture = (
        _Latency(1.0 - failing, median * (1.0 + 0.5 * storm * hit), 0.6),
        # Timed-out and refused deliveries: seconds, up to the dispatcher's 10 s timeout.
        _Latency(failing, 5000.0, 0.5),
    )
    labels = {
        "region": [world.regions[r] for (r, _), _ in groups],
        "endpoint": [e for (_, e), _ in groups],
    }
    return _latency_histogram(rng, labels, observations, mixture)


# ---------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------
POLICY_REASONS = ("timeout", "unavailable", "invalid_policy", "version_mismatch")
_BACKGROUND_POLICY_MIX = (0.3, 0.1, 0.4, 0.2)
_TIMEOUT_MIX = (0.7, 0.3, 0.0, 0.0)
_POLICY_MEDIAN_MS = {"residency": 18.0, "encryption": 12.0, "access": 25.0}
_POLICY_INSTANCES = 2


class _PolicyRows(NamedTuple):
    """One row per (tenant, policy) evaluated: big tenants evaluate every policy, others one."""

    tenant: IntArray
    policy: IntArray


def _policy_rows(world: World) -> _PolicyRows:
    big = world.weight >= np.quantile(world.weight, 0.95)
    tenants: list[int] = []
    policies: list[int] = []
    for i, tid in enumerate(world.tenant_ids):
        chosen = range(len(POLICIES)) if big[i] else [_stable_index(tid, len(POLICIES))]
        tenants.extend([i] * len(chosen))
        policies.extend(chosen)
    return _PolicyRows(np.array(tenants, dtype=np.int64), np.array(policies, dtype=np.int64))


def policy(world: World) -> dict[str, Family]:
    rng = world.rng("policy")
    slow = world.fault("policy_timeout")
    rows = _policy_rows(world)
    region = world.in_incident(world.tenant_region[rows.tenant])[:, None]
    evals = _noisy_counts(rng, 0.25 * world.step_s * world.tenant_load()[rows.tenant])
    flaky = _flakiness(rng, len(evals))
    background = rng.binomial(evals, 0.001 * flaky[:, None])
    # The heaviest tenants' large policies time out first and most.
    fault_p = slow * region * np.where(world.truth_tenant[rows.tenant], 0.35, 0.08)[:, None]
    from_fault = rng.binomial(evals, np.clip(fault_p, 0.0, 1.0))
    by_reason = _split(rng, background, _BACKGROUND_POLICY_MIX) + _split(
        rng, from_fault, _TIMEOUT_MIX
    )
    _add_old_failures(rng, by_reason, flaky, _BACKGROUND_POLICY_MIX)
    labels = {
        "region": world.names(world.tenant_region[rows.tenant]),
        "tenant": [world.tenant_ids[i] for i in rows.tenant.tolist()],
        "policy_id": [POLICIES[p][0] for p in rows.policy.tolist()],
    }
    evals_by_region = _region_sums(world, world.tenant_region[rows.tenant], evals)
    return {
        "policy_eval_total": Series(labels, _counter(rng, evals)),
        "policy_eval_errors_total": _sparse_counters(by_reason, labels, "reason", POLICY_REASONS),
        "policy_eval_latency_ms": _policy_latency(world, rng, rows, evals),
        "policy_cache_requests_total": _policy_cache(world, rng, evals_by_region),
        **_policy_service(world, rng),
    }


def _policy_latency(
    world: World, rng: np.random.Generator, rows: _PolicyRows, evals: IntArray
) -> Histogram:
    n_pol = len(POLICIES)
    region_idx = _per_region(world, n_pol)
    pol_idx = np.tile(np.arange(n_pol), len(world.regions))
    observations = np.zeros((len(region_idx), world.steps), dtype=np.int64)
    np.add.at(observations, world.tenant_region[rows.tenant] * n_pol + rows.policy, evals)
    medians = np.array([_POLICY_MEDIAN_MS[POLICIES[p][1]] for p in pol_idx.tolist()])[:, None]
    slow_share = 0.6 * world.fault("policy_timeout") * world.in_incident(region_idx)[:, None]
    mixture = (
        _Latency(1.0 - slow_share, medians, 0.6),
        # Calls queued behind the slow policy service, up to the client's 2 s timeout.
        _Latency(slow_share, 450.0, 0.8),
    )
    labels = {
        "region": world.names(region_idx),
        "policy_id": [POLICIES[p][0] for p in pol_idx.tolist()],
    }
    return _latency_histogram(rng, labels, observations, mixture)


def _policy_cache(world: World, rng: np.random.Generator, evals_by_region: IntArray) -> Series:
    incident = world.in_incident(np.arange(len(world.regions)))[:, None]
    requests = _noisy_counts(rng, (1.2 * evals_by_region + 1.0).astype(np.float64))
    ratio = 0.96 + rng.normal(0.0, 0.005, requests.shape)
    ratio -= 0.3 * world.fault("policy_timeout") * incident
    hits = rng.binomial(requests, np.clip(ratio, 0.0, 1.0))
    cache = np.empty((2 * len(world.regions), world.steps), dtype=np.int64)
    cache[0::2], cache[1::2] = hits, requests - hits
    return Series(
        {
            "region": world.names(_per_region(world, 2)),
            "result": ["hit", "miss"] * len(world.regions),
        },
        _counter(rng, cache),
    )


def _policy_service(world: World, rng: np.random.Generator) -> dict[str, Family]:
    n_pol = len(POLICIES)
    info_rows = [POLICIES[i % n_pol] for i in range(n_pol * len(world.regions))]
    up_idx = _per_region(world, _POLICY_INSTANCES)
    # Scrapes of an overloaded service time out now and then: `up` flaps rather than dropping.
    flapping = rng.random((len(up_idx), world.steps)) < (
        0.45 * world.fault("policy_timeout") * world.in_incident(up_idx)[:, None]
    )
    return {
        "policy_version_info": Series(
            {
                "region": world.names(_per_region(world, n_pol)),
                "policy_id": [p for p, _, _ in info_rows],
                "kind": [k for _, k, _ in info_rows],
                "version": [v for _, _, v in info_rows],
            },
            np.ones((len(info_rows), world.steps)),
        ),
        "policy_service_up": Series(
            {
                "region": world.names(up_idx),
                "instance": [
                    f"policy-service-{i % _POLICY_INSTANCES}.policy.svc:8443"
                    for i in range(len(up_idx))
                ],
            },
            (~flapping).astype(np.float64),
        ),
    }


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------
HTTP_CODES = ("200", "201", "202", "400", "404", "409", "429", "500", "502", "503")
PATHS = tuple(sorted({path for path, _ in ROUTES}))
_ROUTE_SHARE = (0.25, 0.40, 0.15, 0.12, 0.08)
_ROUTE_MEDIAN_MS = (45.0, 20.0, 60.0, 70.0, 120.0)
_BULK_SYNC = 4  # index of the bulk sync route in ROUTES: the one a misbehaving client floods
_CLIENT_SHARE = (0.25, 0.15, 0.10, 0.10, 0.20, 0.10, 0.05, 0.05)
_ERROR_P = {
    "400": 0.004,
    "404": 0.01,
    "409": 0.002,
    "429": 0.003,
    "500": 0.0004,
    "502": 0.0002,
    "503": 0.0002,
}


class _RouteRows(NamedTuple):
    """One row per (region, route) of ROUTES, region-major."""

    region: IntArray
    route: IntArray


def _code_probabilities(route: int, extra_429: FloatArray) -> FloatArray:
    """(steps, codes) for one route; the success code depends on the method."""
    path, method = ROUTES[route]
    ok = {"GET": "200", "PATCH": "200"}.get(method, "202" if route == _BULK_SYNC else "201")
    probs = np.zeros((len(extra_429), len(HTTP_CODES)))
    for code, p in _ERROR_P.items():
        if (code == "404" and "{id}" not in path) or (code == "409" and method != "PATCH"):
            continue
        probs[:, HTTP_CODES.index(code)] = p
    probs[:, HTTP_CODES.index("429")] += extra_429
    probs[:, HTTP_CODES.index(ok)] = 1.0 - probs.sum(axis=1)
    return probs


def api(world: World) -> dict[str, Family]:
    rng = world.rng("api")
    saturation = world.fault("rate_limit_saturation")
    rows = _RouteRows(
        _per_region(world, len(ROUTES)), np.tile(np.arange(len(ROUTES)), len(world.regions))
    )
    incident = world.in_incident(rows.region)[:, None]
    base = (5.0 + 0.02 * world.region_weight())[rows.region][:, None] * world.diurnal[rows.region]
    mean = world.step_s * base * np.array(_ROUTE_SHARE)[rows.route][:, None]
    requests = _noisy_counts(rng, mean)
    by_code = np.zeros((*requests.shape, len(HTTP_CODES)), dtype=np.int64)
    for row, route in enumerate(rows.route.tolist()):
        # A saturated gateway also rejects some ordinary calls of the region.
        extra_429 = 0.02 * saturation * incident[row, 0]
        by_code[row] = rng.multinomial(requests[row], _code_probabilities(route, extra_429))
    # The misbehaving client's bulk sync: extra calls, most of them rejected by the gateway.
    flood = _noisy_counts(
        rng, mean * 4.0 * saturation * incident * (rows.route == _BULK_SYNC)[:, None]
    )
    flood_429 = rng.binomial(flood, 0.6)
    ordinary_429 = _region_sums(world, rows.region, by_code[..., HTTP_CODES.index("429")])
    ok_code = np.argmax(by_code.sum(axis=1), axis=1)
    by_code[np.arange(len(rows.route)), :, ok_code] += flood - flood_429
    by_code[..., HTTP_CODES.index("429")] += flood_429
    return {
        **_http_counters(world, rng, rows, by_code),
        "http_request_duration_ms": _api_latency(world, rng, rows, by_code),
        "gateway_throttled_total": _gateway(
            world, rng, ordinary_429, _region_sums(world, rows.region, flood_429)
        ),
        "gateway_rate_limit_burst_multiplier": Series(
            {"region": list(world.regions)},
            np.ones((len(world.regions), world.steps)),
            integer=False,
        ),
    }


def _by_path(world: World, rows: _RouteRows, values: IntArray) -> tuple[IntArray, Labels]:
    """Sum (region, route) rows into (region, path) rows: GET and PATCH of one path add up."""
    path = np.array([PATHS.index(ROUTES[r][0]) for r in rows.route.tolist()], dtype=np.int64)
    out = np.zeros((len(world.regions) * len(PATHS), *values.shape[1:]), dtype=np.int64)
    np.add.at(out, rows.region * len(PATHS) + path, values)
    labels = {
        "region": [r for r in world.regions for _ in PATHS],
        "route": list(PATHS) * len(world.regions),
    }
    return out, labels


def _http_counters(
    world: World, rng: np.random.Generator, rows: _RouteRows, by_code: IntArray
) -> dict[str, Family]:
    labels = {
        "region": world.names(rows.region),
        "route": [ROUTES[r][0] for r in rows.route.tolist()],
        "method": [ROUTES[r][1] for r in rows.route.tolist()],
    }
    requests = _with_uptime(rng, by_code)
    errors, error_labels = _by_path(world, rows, requests)
    errors[..., [i for i, c in enumerate(HTTP_CODES) if int(c) < 400]] = 0
    return {
        "http_requests_total": _sparse_counters(requests, labels, "code", HTTP_CODES),
        "http_errors_total": _sparse_counters(errors, error_labels, "code", HTTP_CODES),
    }


def _api_latency(
    world: World, rng: np.random.Generator, rows: _RouteRows, by_code: IntArray
) -> Histogram:
    # The gateway answers 429 itself, so the backend only times the rest.
    served = by_code.sum(axis=2) - by_code[..., HTTP_CODES.index("429")]
    observations, labels = _by_path(world, rows, served)
    path_region = np.arange(len(observations)) // len(PATHS)
    slower = (
        1.0 + 0.2 * world.fault("rate_limit_saturation") * world.in_incident(path_region)[:, None]
    )
    mixture = []
    for route, median in enumerate(_ROUTE_MEDIAN_MS):
        # Each method of a path is one component, weighted by its share of the path's calls.
        calls, _ = _by_path(world, rows, served * (rows.route == route)[:, None])
        mixture.append(_Latency(calls / np.maximum(observations, 1), median * slower, 0.6))
    return _latency_histogram(rng, labels, observations, mixture)


def _gateway(world: World, rng: np.random.Generator, ordinary: IntArray, flood: IntArray) -> Series:
    """429s by client: ordinary rejections spread over all clients, the flood on its culprits.

    Both arguments are (regions, steps) counts of rejected calls.
    """
    by_client = _with_uptime(rng, _split(rng, ordinary, _CLIENT_SHARE))
    culprits = [CLIENT_IDS.index(c) for c in world.scenario.truth.client_ids]
    if culprits:
        by_client[..., culprits] += _split(rng, flood, [1.0] * len(culprits))
    return _sparse_counters(by_client, {"region": list(world.regions)}, "client_id", CLIENT_IDS)


# ---------------------------------------------------------------------------------------------
# Lifecycle
# ---------------------------------------------------------------------------------------------
JOB_STEPS = {
    "provision": ("create_namespace", "apply_policies", "seed_data"),
    "migrate": ("snapshot", "copy_data", "verify_checksums", "cutover"),
    "suspend": ("drain", "revoke_access"),
    "delete": ("export", "purge"),
}
_JOB_SHARE = {"provision": 0.45, "migrate": 0.05, "suspend": 0.3, "delete": 0.2}
_STUCK_STEP = ("migrate", "verify_checksums")


class _JobRows(NamedTuple):
    """One row per (region, job type), region-major, with the type's start rate."""

    region: IntArray
    job_type: IntArray
    per_s: FloatArray


def lifecycle(world: World) -> dict[str, Family]:
    rng = world.rng("lifecycle")
    types = tuple(JOB_STEPS)
    region_idx = _per_region(world, len(types))
    type_idx = np.tile(np.arange(len(types)), len(world.regions))
    tenants_in = np.bincount(world.tenant_region, minlength=len(world.regions))
    share = np.array([_JOB_SHARE[t] for t in types])[type_idx]
    rows = _JobRows(region_idx, type_idx, (0.2 + 0.0005 * tenants_in)[region_idx] * share)
    jobs = _noisy_counts(rng, world.step_s * rows.per_s[:, None] * world.diurnal[region_idx])
    return {
        "lifecycle_jobs_total": Series(
            {"region": world.names(region_idx), "job_type": [types[t] for t in type_idx.tolist()]},
            _counter(rng, jobs),
        ),
        "lifecycle_job_failures_total": _job_failures(world, rng, rows, jobs),
        "lifecycle_jobs_in_progress": _jobs_in_progress(world, rng, rows),
        "migration_replication_lag_seconds": _replication_lag(world, rng),
    }


def _background_job_failures(
    world: World, rng: np.random.Generator, rows: _JobRows, jobs: IntArray
) -> Iterator[tuple[tuple[int, str, str], int]]:
    """((tenant, job type, step), scrape) of each rare failure a healthy fleet has."""
    types = tuple(JOB_STEPS)
    failed = rng.binomial(jobs, 0.0003)
    # A few failed before the history began, so the counter exists on a healthy day too.
    populated = np.flatnonzero(
        np.bincount(world.tenant_region, minlength=len(world.regions))[rows.region] > 0
    )
    failed[rng.choice(populated, size=min(2, len(populated)), replace=False), 0] += 1
    for row, step in zip(*np.nonzero(failed), strict=True):
        members = np.flatnonzero(world.tenant_region == rows.region[row])
        job_type = types[int(rows.job_type[row])]
        for _ in range(int(failed[row, step]) if members.size else 0):
            weights = world.weight[members] / world.weight[members].sum()
            tenant = int(rng.choice(members, p=weights))
            yield (tenant, job_type, str(rng.choice(JOB_STEPS[job_type]))), int(step)


def _job_failures(world: World, rng: np.random.Generator, rows: _JobRows, jobs: IntArray) -> Series:
    failures: dict[tuple[int, str, str], IntArray] = {}  # (tenant, type, step) -> increments
    for key, step in _background_job_failures(world, rng, rows, jobs):
        failures.setdefault(key, np.zeros(world.steps, dtype=np.int64))[step] += 1
    if world.scenario.truth.pattern == "migration_hang":
        # The stuck jobs retry their verification now and then, and fail each time.
        for tenant in np.flatnonzero(world.truth_tenant).tolist():
            tries = (rng.random(world.steps) < 0.1) & world.during_incident()
            failures.setdefault((tenant, *_STUCK_STEP), np.zeros(world.steps, dtype=np.int64))[
                tries
            ] += 1
    keys = sorted(failures)
    values = np.zeros((len(keys), world.steps))
    if keys:
        values = np.cumsum(np.stack([failures[k] for k in keys]), axis=1).astype(np.float64)
    values[values == 0] = np.nan
    labels = {
        "region": [world.regions[world.tenant_region[t]] for t, _, _ in keys],
        "tenant": [world.tenant_ids[t] for t, _, _ in keys],
        "job_type": [j for _, j, _ in keys],
        "step": [s for _, _, s in keys],
    }
    return Series(labels, values)


def _jobs_in_progress(world: World, rng: np.random.Generator, rows: _JobRows) -> Series:
    types = tuple(JOB_STEPS)
    cells = [
        (r, types[t], step, rate)
        for r, t, rate in zip(
            rows.region.tolist(), rows.job_type.tolist(), rows.per_s.tolist(), strict=True
        )
        for step in JOB_STEPS[types[t]]
    ]
    # Steps take seconds, so a healthy step is mostly empty at a scrape: that keeps "in a step
    # for 30 min" meaning stuck rather than merely busy.
    means = np.array([min(0.6, rate * 3.0) for *_, rate in cells])[:, None]
    values = rng.poisson(np.broadcast_to(means, (len(cells), world.steps))).astype(np.float64)
    if world.scenario.truth.pattern == "migration_hang":
        stuck = [
            i
            for i, (r, t, s, _) in enumerate(cells)
            if r == world.incident and (t, s) == _STUCK_STEP
        ]
        held = world.during_incident()
        values[stuck, :] = np.where(held, len(world.scenario.truth.job_ids), values[stuck, :])
    labels = {
        "region": [world.regions[r] for r, *_ in cells],
        "job_type": [t for _, t, _, _ in cells],
        "step": [s for _, _, s, _ in cells],
    }
    return Series(labels, values)


def _replication_lag(world: World, rng: np.random.Generator) -> Series:
    """Lag of running migrations; a tenant's series exists only while it migrates."""
    rows: list[tuple[int, FloatArray]] = []
    recent = 1800 // world.step_s  # scrapes in the last 30 min
    for r in range(len(world.regions)):
        candidates = np.flatnonzero((world.tenant_region == r) & ~world.truth_tenant)
        chosen = rng.choice(candidates, size=min(len(candidates), 3), replace=False).tolist()
        for n, tenant in enumerate(chosen):
            length = int(rng.integers(10, 26)) * 60 // world.step_s + 2
            # Some migration is always running lately, so the series exists at the end too.
            earliest = 0 if n else max(0, world.steps - length - recent)
            begin = int(rng.integers(earliest, max(earliest + 1, world.steps - length)))
            lag = np.full(world.steps, np.nan)
            window = lag[begin : begin + length]
            window[:] = 2.0 + rng.gamma(2.0, 2.5, size=len(window))
            rows.append((tenant, lag))
    if world.scenario.truth.pattern == "migration_hang":
        rows.extend(_hung_lag(world, rng))
    labels = {
        "region": [world.regions[world.tenant_region[t]] for t, _ in rows],
        "tenant": [world.tenant_ids[t] for t, _ in rows],
    }
    values = np.stack([lag for _, lag in rows]) if rows else np.zeros((0, world.steps))
    return Series(labels, np.round(values, 2), integer=False)


def _hung_lag(world: World, rng: np.random.Generator) -> Iterator[tuple[int, FloatArray]]:
    growth = world.fault("migration_hang") * (40.0 + 0.45 * world.elapsed_s())
    first = int(np.argmax(world.during_incident()))
    for tenant in np.flatnonzero(world.truth_tenant).tolist():
        # The migration was copying for a while before verification stalled replication.
        began = max(0, first - int(rng.integers(5, 16)) * 60 // world.step_s)
        lag = np.full(world.steps, np.nan)
        noise = rng.gamma(4.0, 1.0, size=world.steps)
        lag[began:] = (3.0 + growth * rng.uniform(0.8, 1.3) + noise)[began:]
        yield tenant, lag


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------
SIMULATORS: tuple[Callable[[World], dict[str, Family]], ...] = (
    controller,
    webhook,
    policy,
    api,
    lifecycle,
)


def simulate(scenario: Scenario) -> dict[str, Family]:
    """Every metric the sandbox knows, by metric key (as in parameters/signals.yaml)."""
    world = build_world(scenario)
    families: dict[str, Family] = {}
    for simulator in SIMULATORS:
        families.update(simulator(world))
    return families


def write_openmetrics(
    scenario: Scenario, out: Path, signals: Signals | None = None
) -> HistoryStats:
    """Write the scenario's Prometheus history for ``promtool tsdb create-blocks-from``."""
    began = time.perf_counter()
    mapping = signals if signals is not None else signals_module.load()
    families = simulate(scenario)
    missing = [key for key in mapping.doc.metrics if key not in families]
    if missing:
        raise SandboxError(
            f"the signals mapping has metrics {missing} the sandbox cannot simulate; remove "
            f"them from {mapping.path} or teach tenancy_diag.sandbox.metric_history about them"
        )
    writer = _Writer(mapping, scrape_times(scenario))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as f:
            for key in mapping.doc.metrics:
                writer.family(f, key, families[key])
            f.write("# EOF\n")
        partial.replace(out)
    except OSError as e:
        raise SandboxError(
            f"cannot write the metric history {out} ({e.strerror}); "
            "check that its directory is writable and has space"
        ) from e
    finally:
        partial.unlink(missing_ok=True)
    return HistoryStats(
        writer.series, writer.samples, out.stat().st_size, time.perf_counter() - began
    )


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


class _Writer:
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
