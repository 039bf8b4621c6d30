"""The webhook dispatcher's metrics: deliveries and failures per tenant, latency per endpoint.

A webhook storm breaks the truth endpoints in the incident region; the dispatcher retries, so
attempts rise with the failures, and it backs off harder the longer the storm lasts.
"""

from __future__ import annotations

import numpy as np

from tenancy_diag.sandbox.metric_history.families import Family, Histogram, IntArray, Series
from tenancy_diag.sandbox.metric_history.latency import Latency, latency_histogram
from tenancy_diag.sandbox.metric_history.noise import (
    add_old_failures,
    counter,
    flakiness,
    noisy_counts,
    sparse_counters,
    split,
)
from tenancy_diag.sandbox.metric_history.world import World
from tenancy_diag.sandbox.topology import SHARED_ENDPOINTS

WEBHOOK_CODES = ("500", "502", "503", "timeout", "connection_refused", "tls")
_BACKGROUND_WEBHOOK_MIX = (0.3, 0.2, 0.2, 0.2, 0.05, 0.05)
_STORM_MIX = (0.0, 0.0, 0.5, 0.35, 0.15, 0.0)
_STORM_FAILING = 0.55  # share of deliveries to a broken endpoint that fail at full storm
# Dispatchers cap the endpoint label of their latency histogram, as real exporters must with one
# private endpoint per tenant; the long tail is reported as "other".
_ENDPOINT_LABEL_LIMIT = 12


def metrics(world: World) -> dict[str, Family]:
    """The webhook families, by metric key as in parameters/signals.yaml."""
    rng = world.rng("webhook")
    broken = set(world.scenario.truth.endpoints)
    storm = world.fault("webhook_storm")
    hit = (
        world.in_incident(world.tenant_region)
        & np.array([e in broken for e in world.tenant_endpoint], dtype=np.bool_)
    )[:, None]
    # Failed deliveries are retried, so a storm also raises the attempt rate.
    load = world.tenant_load() * (1.0 + 1.5 * storm * hit)
    attempts = noisy_counts(rng, 0.1 * world.step_s * load)
    flaky = flakiness(rng, len(attempts))
    background = rng.binomial(attempts, 0.004 * flaky[:, None])
    from_storm = rng.binomial(attempts, np.clip(_STORM_FAILING * storm * hit, 0.0, 1.0))
    by_code = split(rng, background, _BACKGROUND_WEBHOOK_MIX) + split(rng, from_storm, _STORM_MIX)
    add_old_failures(rng, by_code, flaky, _BACKGROUND_WEBHOOK_MIX)
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
        "webhook_deliveries_total": Series(labels, counter(rng, attempts)),
        "webhook_failures_total": sparse_counters(by_code, labels, "code", WEBHOOK_CODES),
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
        Latency(1.0 - failing, median * (1.0 + 0.5 * storm * hit), 0.6),
        # Timed-out and refused deliveries: seconds, up to the dispatcher's 10 s timeout.
        Latency(failing, 5000.0, 0.5),
    )
    labels = {
        "region": [world.regions[r] for (r, _), _ in groups],
        "endpoint": [e for (_, e), _ in groups],
    }
    return latency_histogram(rng, labels, observations, mixture)
