"""The sandbox's Tenancy fleet: tenants, regions, pods, endpoints and clients, plus the fault.

Everything here is a pure function of a :class:`ScenarioSpec` (seeded), so the Prometheus
history, the pod logs, the DLQ messages and the admin API's jobs all tell the same story, and
every process of the sandbox can rebuild it from the spec alone.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from tenancy_diag.errors import ConfigError

BASELINE = "healthy"
PATTERNS = (
    "reconcile_backlog",
    "webhook_storm",
    "policy_timeout",
    "rate_limit_saturation",
    "migration_hang",
)
SCENARIOS = (BASELINE, *PATTERNS)
DEFAULT_REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
# Replicas per Deployment and region; the controller runs three so a restart keeps redundancy.
REPLICAS = {
    "tenancy-controller": 3,
    "tenancy-webhook-dispatcher": 2,
    "tenancy-policy-client": 2,
    "tenancy-api": 3,
    "tenancy-lifecycle": 2,
}
POLICIES = (
    ("pol-residency", "residency", "v14"),
    ("pol-encryption", "encryption", "v9"),
    ("pol-access", "access", "v31"),
)
ROUTES = (
    ("/tenants", "GET"),
    ("/tenants/{id}", "GET"),
    ("/tenants/{id}", "PATCH"),
    ("/tenants/{id}/members", "POST"),
    ("/tenants:bulkSync", "POST"),
)
SHARED_ENDPOINTS = (
    "hooks.example.net",
    "events.partner-crm.example.com",
    "ingest.auditlake.example.org",
)
CLIENT_IDS = tuple(
    f"cli-{name}"
    for name in (
        "console",
        "terraform",
        "billing-sync",
        "crm-connector",
        "mobile",
        "reporting",
        "provisioner",
        "scim-bridge",
    )
)


@dataclass(frozen=True)
class ScenarioSpec:
    """What to simulate. Times are UTC; durations in seconds."""

    name: str = BASELINE
    seed: int = 7
    tenants: int = 200
    regions: tuple[str, ...] = DEFAULT_REGIONS
    duration_s: int = 3 * 3600
    # Seconds before ``end`` at which the fault starts (ignored for the healthy baseline).
    incident_age_s: int = 40 * 60
    # The last sample's time; None means "now" rounded down to the scrape step.
    end: datetime | None = None
    # Scrape interval of the simulated Prometheus, seconds.
    step_s: int = 60

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise ConfigError(
                f"unknown scenario {self.name!r}; choose one of: {', '.join(SCENARIOS)}"
            )
        if not 1 <= self.tenants <= 100_000:
            raise ConfigError(f"--tenants {self.tenants} is out of range; use 1 to 100000")
        if not self.regions:
            raise ConfigError("at least one region is needed; pass --region")
        if self.duration_s < 30 * 60 or self.duration_s > 14 * 86400:
            raise ConfigError(f"duration {self.duration_s}s is out of range; use 30 min to 14 days")
        if not 0 < self.incident_age_s < self.duration_s:
            raise ConfigError(
                f"incident start {self.incident_age_s}s before end must fall inside the "
                f"{self.duration_s}s history"
            )

    def resolved(self) -> ScenarioSpec:
        """The same spec with ``end`` pinned, so every process sees the same clock."""
        if self.end is not None:
            return self
        now = datetime.now(UTC)
        end = datetime.fromtimestamp(int(now.timestamp()) // self.step_s * self.step_s, UTC)
        return ScenarioSpec(**{**asdict(self), "end": end, "regions": self.regions})

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["regions"] = list(self.regions)
        data["end"] = self.end.isoformat() if self.end else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScenarioSpec:
        end = datetime.fromisoformat(data["end"]) if data.get("end") else None
        return cls(**{**data, "regions": tuple(data["regions"]), "end": end})


@dataclass(frozen=True)
class Tenant:
    id: str
    region: str
    endpoint: str
    weight: float  # relative traffic, heavy-tailed like real fleets


@dataclass(frozen=True)
class Pod:
    name: str
    app: str
    region: str
    deployment: str
    restarts: int = 0


@dataclass(frozen=True)
class Truth:
    """What the fault is, for tests to compare the diagnostics against."""

    pattern: str | None
    region: str | None
    incident_start: datetime | None
    tenants: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    client_ids: tuple[str, ...] = ()
    job_ids: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _hash(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


class Scenario:
    """A resolved spec and the fleet and fault it implies."""

    def __init__(self, spec: ScenarioSpec) -> None:
        self.spec = spec.resolved()

    @property
    def end(self) -> datetime:
        assert self.spec.end is not None
        return self.spec.end

    @property
    def start(self) -> datetime:
        return self.end - timedelta(seconds=self.spec.duration_s)

    @property
    def incident_start(self) -> datetime:
        return self.end - timedelta(seconds=self.spec.incident_age_s)

    def rng(self, *purpose: object) -> random.Random:
        """A generator seeded by the spec and a purpose, independent of call order."""
        return random.Random(int(_hash(self.spec.seed, self.spec.name, *purpose)[:16], 16))

    @cached_property
    def tenants(self) -> tuple[Tenant, ...]:
        rng = self.rng("tenants")
        regions = self.spec.regions
        # The first region is the largest cell, as a primary region usually is.
        region_weights = [3.0 if i == 0 else 1.5 if i == 1 else 1.0 for i in range(len(regions))]
        out = []
        for n in range(1, self.spec.tenants + 1):
            tid = f"t-{n:06d}"
            region = rng.choices(regions, region_weights)[0]
            if rng.random() < 0.6:
                endpoint = rng.choice(SHARED_ENDPOINTS)
            else:
                endpoint = f"hooks.{_hash(tid)[:6]}.example.com"
            out.append(Tenant(tid, region, endpoint, weight=rng.paretovariate(1.6)))
        return tuple(out)

    @cached_property
    def tenants_by_region(self) -> dict[str, tuple[Tenant, ...]]:
        return {r: tuple(t for t in self.tenants if t.region == r) for r in self.spec.regions}

    @cached_property
    def incident_region(self) -> str | None:
        if self.spec.name == BASELINE:
            return None
        populated = [r for r in self.spec.regions if self.tenants_by_region[r]]
        return populated[0] if populated else self.spec.regions[0]

    @cached_property
    def pods(self) -> tuple[Pod, ...]:
        out = []
        for region in self.spec.regions:
            for app, replicas in REPLICAS.items():
                template = _hash(region, app, "rs")[:10]
                for i in range(replicas):
                    suffix = _hash(region, app, i)[:5]
                    # One controller pod restarted during the incident, so previous logs exist.
                    restarts = int(
                        app == "tenancy-controller" and i == 0 and region == self.incident_region
                    )
                    out.append(Pod(f"{app}-{template}-{suffix}", app, region, app, restarts))
        return tuple(out)

    @cached_property
    def truth(self) -> Truth:
        name = self.spec.name
        if name == BASELINE:
            return Truth(None, None, None)
        region = self.incident_region
        rng = self.rng("truth")
        local = list(self.tenants_by_region.get(region or "", ()))
        heavy = sorted(local, key=lambda t: -t.weight)
        count = max(1, min(len(local), max(3, len(local) // 20)))
        tenants = tuple(t.id for t in heavy[:count])
        endpoints: tuple[str, ...] = ()
        clients: tuple[str, ...] = ()
        jobs: tuple[str, ...] = ()
        if name == "webhook_storm":
            endpoints = (SHARED_ENDPOINTS[1],)
            tenants = tuple(t.id for t in heavy if t.endpoint in endpoints)
        elif name == "rate_limit_saturation":
            clients = (CLIENT_IDS[2],)
        elif name == "migration_hang":
            migrating = rng.sample(local, k=min(len(local), max(2, min(8, len(local) // 25))))
            tenants = tuple(t.id for t in migrating)
            jobs = tuple(f"job-{_hash(t, 'migrate')[:8]}" for t in tenants)
        return Truth(name, region, self.incident_start, tenants, endpoints, clients, jobs)

    def describe(self) -> dict[str, Any]:
        truth = asdict(self.truth)
        truth["incident_start"] = (
            self.truth.incident_start.isoformat() if self.truth.incident_start else None
        )
        return {"spec": self.spec.to_json(), "truth": truth, "pods": len(self.pods)}

    def dumps(self) -> str:
        return json.dumps(self.describe(), indent=2, sort_keys=True)
