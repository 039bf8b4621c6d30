"""Simulating every subsystem and writing the result as one OpenMetrics file."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tenancy_diag import signals as signals_module
from tenancy_diag.errors import SandboxError
from tenancy_diag.sandbox.metric_history import api, controller, lifecycle, policy, webhook
from tenancy_diag.sandbox.metric_history.families import Family
from tenancy_diag.sandbox.metric_history.openmetrics import Writer
from tenancy_diag.sandbox.metric_history.world import World, build_world, scrape_times
from tenancy_diag.sandbox.topology import Scenario
from tenancy_diag.signals import Signals


@dataclass(frozen=True)
class HistoryStats:
    """What :func:`write_openmetrics` wrote."""

    series: int
    samples: int
    bytes: int
    #: Wall-clock seconds to simulate and write the file.
    seconds: float


# Each draws from its own seeded generator, so adding a subsystem leaves the others unchanged.
SIMULATORS: tuple[Callable[[World], dict[str, Family]], ...] = (
    controller.metrics,
    webhook.metrics,
    policy.metrics,
    api.metrics,
    lifecycle.metrics,
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
    writer = Writer(mapping, scrape_times(scenario))
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
