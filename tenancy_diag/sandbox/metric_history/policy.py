"""The policy engine's metrics: evaluations per tenant and policy, latency, cache, service health.

A policy timeout slows the policy service of the incident region: the heaviest tenants' large
policies time out first and most, the cache misses more, and scrapes of the service flap.
"""

from __future__ import annotations

from typing import NamedTuple

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
from tenancy_diag.sandbox.metric_history.world import World, per_region, region_sums, stable_index
from tenancy_diag.sandbox.topology import POLICIES

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
        chosen = range(len(POLICIES)) if big[i] else [stable_index(tid, len(POLICIES))]
        tenants.extend([i] * len(chosen))
        policies.extend(chosen)
    return _PolicyRows(np.array(tenants, dtype=np.int64), np.array(policies, dtype=np.int64))


def metrics(world: World) -> dict[str, Family]:
    """The policy families, by metric key as in parameters/signals.yaml."""
    rng = world.rng("policy")
    slow = world.fault("policy_timeout")
    rows = _policy_rows(world)
    region = world.in_incident(world.tenant_region[rows.tenant])[:, None]
    evals = noisy_counts(rng, 0.25 * world.step_s * world.tenant_load()[rows.tenant])
    flaky = flakiness(rng, len(evals))
    background = rng.binomial(evals, 0.001 * flaky[:, None])
    # The heaviest tenants' large policies time out first and most.
    fault_p = slow * region * np.where(world.truth_tenant[rows.tenant], 0.35, 0.08)[:, None]
    from_fault = rng.binomial(evals, np.clip(fault_p, 0.0, 1.0))
    by_reason = split(rng, background, _BACKGROUND_POLICY_MIX) + split(
        rng, from_fault, _TIMEOUT_MIX
    )
    add_old_failures(rng, by_reason, flaky, _BACKGROUND_POLICY_MIX)
    labels = {
        "region": world.names(world.tenant_region[rows.tenant]),
        "tenant": [world.tenant_ids[i] for i in rows.tenant.tolist()],
        "policy_id": [POLICIES[p][0] for p in rows.policy.tolist()],
    }
    evals_by_region = region_sums(world, world.tenant_region[rows.tenant], evals)
    return {
        "policy_eval_total": Series(labels, counter(rng, evals)),
        "policy_eval_errors_total": sparse_counters(by_reason, labels, "reason", POLICY_REASONS),
        "policy_eval_latency_ms": _policy_latency(world, rng, rows, evals),
        "policy_cache_requests_total": _policy_cache(world, rng, evals_by_region),
        **_policy_service(world, rng),
    }


def _policy_latency(
    world: World, rng: np.random.Generator, rows: _PolicyRows, evals: IntArray
) -> Histogram:
    n_pol = len(POLICIES)
    region_idx = per_region(world, n_pol)
    pol_idx = np.tile(np.arange(n_pol), len(world.regions))
    observations = np.zeros((len(region_idx), world.steps), dtype=np.int64)
    np.add.at(observations, world.tenant_region[rows.tenant] * n_pol + rows.policy, evals)
    medians = np.array([_POLICY_MEDIAN_MS[POLICIES[p][1]] for p in pol_idx.tolist()])[:, None]
    slow_share = 0.6 * world.fault("policy_timeout") * world.in_incident(region_idx)[:, None]
    mixture = (
        Latency(1.0 - slow_share, medians, 0.6),
        # Calls queued behind the slow policy service, up to the client's 2 s timeout.
        Latency(slow_share, 450.0, 0.8),
    )
    labels = {
        "region": world.names(region_idx),
        "policy_id": [POLICIES[p][0] for p in pol_idx.tolist()],
    }
    return latency_histogram(rng, labels, observations, mixture)


def _policy_cache(world: World, rng: np.random.Generator, evals_by_region: IntArray) -> Series:
    incident = world.in_incident(np.arange(len(world.regions)))[:, None]
    requests = noisy_counts(rng, (1.2 * evals_by_region + 1.0).astype(np.float64))
    ratio = 0.96 + rng.normal(0.0, 0.005, requests.shape)
    ratio -= 0.3 * world.fault("policy_timeout") * incident
    hits = rng.binomial(requests, np.clip(ratio, 0.0, 1.0))
    cache = np.empty((2 * len(world.regions), world.steps), dtype=np.int64)
    cache[0::2], cache[1::2] = hits, requests - hits
    return Series(
        {
            "region": world.names(per_region(world, 2)),
            "result": ["hit", "miss"] * len(world.regions),
        },
        counter(rng, cache),
    )


def _policy_service(world: World, rng: np.random.Generator) -> dict[str, Family]:
    n_pol = len(POLICIES)
    info_rows = [POLICIES[i % n_pol] for i in range(n_pol * len(world.regions))]
    up_idx = per_region(world, _POLICY_INSTANCES)
    # Scrapes of an overloaded service time out now and then: `up` flaps rather than dropping.
    flapping = rng.random((len(up_idx), world.steps)) < (
        0.45 * world.fault("policy_timeout") * world.in_incident(up_idx)[:, None]
    )
    return {
        "policy_version_info": Series(
            {
                "region": world.names(per_region(world, n_pol)),
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
