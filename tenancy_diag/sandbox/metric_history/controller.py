"""The controller's metrics: reconciles per tenant and pod, queue depth, throttling.

A reconcile backlog shows on the truth tenants; a slow policy service reaches every tenant of
the incident region, later and weaker.
"""

from __future__ import annotations

import numpy as np

from tenancy_diag.sandbox.metric_history.families import Family, Series
from tenancy_diag.sandbox.metric_history.noise import (
    add_old_failures,
    counter,
    flakiness,
    noisy_counts,
    sparse_counters,
    split,
)
from tenancy_diag.sandbox.metric_history.world import World, pods_by_region, stable_index

RECONCILE_REASONS = ("policy_error", "timeout", "throttled", "conflict", "internal")
_BACKGROUND_RECONCILE_MIX = (0.03, 0.2, 0.07, 0.55, 0.15)
_BACKLOG_MIX = (0.5, 0.1, 0.35, 0.0, 0.05)
# The controller feels a slow policy service only once retries and timeouts pile up.
_DOWNSTREAM_DELAY_S = 180.0


def metrics(world: World) -> dict[str, Family]:
    """The controller families, by metric key as in parameters/signals.yaml."""
    rng = world.rng("controller")
    pods = pods_by_region(world, "tenancy-controller")
    tenant_pod = [
        pods[r][stable_index(t, len(pods[r]))]
        for t, r in zip(world.tenant_ids, world.tenant_region.tolist(), strict=True)
    ]
    backlog = world.fault("reconcile_backlog")
    # Policy slowness reaches the controller later and weaker than the policy signals.
    downstream = world.fault("policy_timeout", _DOWNSTREAM_DELAY_S, ramp_s=600.0)
    truth = world.truth_tenant[:, None]
    region = world.in_incident(world.tenant_region)[:, None]
    # Failed reconciles are retried, so a backlog also raises the attempt rate.
    mean = 0.08 * world.step_s * world.tenant_load() * (1.0 + 0.5 * backlog * truth)
    attempts = noisy_counts(rng, mean)
    flaky = flakiness(rng, len(attempts))
    background = rng.binomial(attempts, 0.0015 * flaky[:, None])
    from_backlog = rng.binomial(attempts, np.clip(0.25 * backlog * truth, 0.0, 1.0))
    from_policy = rng.binomial(attempts, np.clip(0.02 * downstream * region, 0.0, 1.0))
    by_reason = split(rng, background, _BACKGROUND_RECONCILE_MIX) + split(
        rng, from_backlog, _BACKLOG_MIX
    )
    add_old_failures(rng, by_reason, flaky, _BACKGROUND_RECONCILE_MIX)
    by_reason[..., RECONCILE_REASONS.index("policy_error")] += from_policy
    labels = {
        "region": world.names(world.tenant_region),
        "tenant": list(world.tenant_ids),
        "pod": tenant_pod,
    }
    return {
        "reconcile_total": Series(labels, counter(rng, attempts)),
        "reconcile_failures_total": sparse_counters(by_reason, labels, "reason", RECONCILE_REASONS),
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
    # A backlog keeps growing while its cause lasts. A slow policy service makes reconciles fail
    # and retry, so the queue builds up too, later and slower: the runbook's "transient policy
    # failures" cause of an excessive reconcile backlog.
    depth = (
        3.0 * world.diurnal[region_idx]
        + backlog * (120.0 + 8.0 * minutes)
        + downstream * (15.0 + 1.5 * minutes)
    )
    throttled = noisy_counts(
        rng, world.step_s * world.diurnal[region_idx] * (0.02 + 3.0 * backlog + 0.2 * downstream)
    )
    return {
        "queue_depth": Series(labels, noisy_counts(rng, depth, cv=0.1).astype(np.float64)),
        "controller_throttled_total": Series(labels, counter(rng, throttled)),
    }
