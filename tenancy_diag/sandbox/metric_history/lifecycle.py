"""The lifecycle worker's metrics: jobs by type, failures by step, steps in progress, migration lag.

A migration hang holds the truth tenants' migrations in checksum verification: the step stays
occupied, its retries fail, and their replication lag grows for as long as the hang lasts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from tenancy_diag.sandbox.metric_history.families import Family, FloatArray, IntArray, Series
from tenancy_diag.sandbox.metric_history.noise import counter, noisy_counts
from tenancy_diag.sandbox.metric_history.world import World, per_region

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


def metrics(world: World) -> dict[str, Family]:
    """The lifecycle families, by metric key as in parameters/signals.yaml."""
    rng = world.rng("lifecycle")
    types = tuple(JOB_STEPS)
    region_idx = per_region(world, len(types))
    type_idx = np.tile(np.arange(len(types)), len(world.regions))
    tenants_in = np.bincount(world.tenant_region, minlength=len(world.regions))
    share = np.array([_JOB_SHARE[t] for t in types])[type_idx]
    rows = _JobRows(region_idx, type_idx, (0.2 + 0.0005 * tenants_in)[region_idx] * share)
    jobs = noisy_counts(rng, world.step_s * rows.per_s[:, None] * world.diurnal[region_idx])
    return {
        "lifecycle_jobs_total": Series(
            {"region": world.names(region_idx), "job_type": [types[t] for t in type_idx.tolist()]},
            counter(rng, jobs),
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
