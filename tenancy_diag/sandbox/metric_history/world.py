"""The world the metrics describe: a scenario as arrays of scrape times, tenants and daily load.

Also the few helpers that lay rows out by region, shared by every subsystem's simulator.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from tenancy_diag.sandbox.metric_history.families import BoolArray, FloatArray, IntArray
from tenancy_diag.sandbox.topology import Scenario

# Real incidents build up over minutes; a step change at one scrape would flatter detectors.
_RAMP_S = 300.0
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


def stable_index(text: str, n: int) -> int:
    # crc32, not hash(): str hashes are salted per process and the history must be reproducible.
    return zlib.crc32(text.encode()) % n


def pods_by_region(world: World, app: str) -> dict[int, list[str]]:
    """Region index -> names of the app's pods there, in the scenario's order."""
    by_region: dict[int, list[str]] = {i: [] for i in range(len(world.regions))}
    for pod in world.scenario.pods:
        if pod.app == app:
            by_region[world.regions.index(pod.region)].append(pod.name)
    return by_region


def per_region(world: World, n_per_region: int) -> IntArray:
    """Region index of each row when every region has ``n_per_region`` rows, region-major."""
    return np.repeat(np.arange(len(world.regions), dtype=np.int64), n_per_region)


def region_sums(world: World, region_index: IntArray, values: IntArray) -> IntArray:
    """Rows of ``values`` added up per region; ``region_index`` gives each row's region."""
    out = np.zeros((len(world.regions), *values.shape[1:]), dtype=np.int64)
    np.add.at(out, region_index, values)
    return out
