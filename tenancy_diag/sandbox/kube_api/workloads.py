"""Which pods exist now: deletions, and the replacements their ReplicaSets start at once.

The scenario's pods are where the cluster starts. Deleting one removes it and, as its
ReplicaSet would, starts a replacement with the same labels and owner, a new name suffix and a
fresh start time; the replacement is Running but not Ready for ``ready_delay_s`` (its readiness
probe has not passed yet), so a caller can wait for it as it would on a real cluster.

Births are stamped with the wall clock, not the scenario's end: a replacement is created by the
caller's action, now, and readiness is judged against the same clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from tenancy_diag.errors import ConfigError
from tenancy_diag.sandbox.kube_api.identities import digest
from tenancy_diag.sandbox.topology import REPLICAS, Pod, Scenario

# The alphabet kube-controller-manager draws generated name suffixes from (no vowels, no 0/1/3).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SUFFIX_LENGTH = 5


@dataclass(frozen=True)
class WorkloadOptions:
    """How the sandbox cluster's workloads differ from the scenario's defaults.

    ``replicas`` maps a Deployment (``app``) to its replicas per region, to run fewer than
    :data:`~tenancy_diag.sandbox.topology.REPLICAS` (from 1 up to that default): a test of the
    "replicas > 1" precondition passes ``{"tenancy-controller": 1}``. The default context shows
    each Deployment once over every region (replicas = per-region count x regions), so such a
    test uses a one-region scenario or a per-region context. ``ready_delay_s`` is how
    long, in seconds, a replacement pod stays not Ready after it is created.
    """

    replicas: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    ready_delay_s: float = 1.0

    def __post_init__(self) -> None:
        for app, count in self.replicas.items():
            if app not in REPLICAS:
                raise ConfigError(
                    f"unknown Deployment {app!r} in replicas; choose from: {', '.join(REPLICAS)}"
                )
            if not 1 <= count <= REPLICAS[app]:
                raise ConfigError(
                    f"replicas {count} for {app} is out of range; use 1 to {REPLICAS[app]}"
                )
        if not 0 <= self.ready_delay_s <= 3600:
            raise ConfigError(
                f"ready_delay_s {self.ready_delay_s} is out of range; use 0 to 3600 seconds"
            )

    def per_region(self, app: str) -> int:
        return self.replicas.get(app, REPLICAS[app])


@dataclass(frozen=True)
class Birth:
    """When a replacement pod was created and when its readiness probe first passes."""

    created: datetime
    ready_at: datetime

    def ready(self, now: datetime) -> bool:
        return now >= self.ready_at


class Workloads:
    """The live pods, in a stable order, behind one lock (the server is threaded)."""

    def __init__(
        self,
        scenario: Scenario,
        options: WorkloadOptions,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.options, self.clock = options, clock
        kept: dict[tuple[str, str], int] = {}
        self._live: dict[str, Pod] = {}
        for pod in scenario.pods:
            key = (pod.region, pod.app)
            kept[key] = kept.get(key, 0) + 1
            if kept[key] <= options.per_region(pod.app):
                self._live[pod.name] = pod
        self._births: dict[str, Birth] = {}
        # Every name ever used, so a replacement never takes a deleted pod's name.
        self._used = {pod.name for pod in scenario.pods}
        self._deletions = 0
        self._lock = threading.Lock()

    def live(self, region: str | None = None) -> list[Pod]:
        with self._lock:
            return [p for p in self._live.values() if region in (None, p.region)]

    def find(self, name: str) -> Pod | None:
        with self._lock:
            return self._live.get(name)

    def birth(self, name: str) -> Birth | None:
        with self._lock:
            return self._births.get(name)

    def ready(self, pod: Pod) -> bool:
        birth = self.birth(pod.name)
        return birth is None or birth.ready(self.clock())

    def delete(self, pod: Pod) -> Pod | None:
        """Remove ``pod`` and start its replacement; None if it was already gone."""
        with self._lock:
            if self._live.pop(pod.name, None) is None:
                return None
            self._births.pop(pod.name, None)
            self._deletions += 1
            replica_set = pod.name.rsplit("-", 1)[0]
            name = self._fresh_name(replica_set)
            replacement = Pod(name, pod.app, pod.region, pod.deployment)
            created = self.clock()
            self._births[name] = Birth(
                created, created + timedelta(seconds=self.options.ready_delay_s)
            )
            self._live[name] = replacement
            self._used.add(name)
            return replacement

    def _fresh_name(self, replica_set: str) -> str:
        attempt = 0
        while True:
            value = int(digest(replica_set, "replacement", self._deletions, attempt), 16)
            suffix = ""
            for _ in range(_SUFFIX_LENGTH):
                value, index = divmod(value, len(_SUFFIX_ALPHABET))
                suffix += _SUFFIX_ALPHABET[index]
            name = f"{replica_set}-{suffix}"
            if name not in self._used:
                return name
            attempt += 1
