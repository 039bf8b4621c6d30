"""Shared fixtures: the sandbox's real servers, started once per test session and stopped by PID."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tenancy_diag.sandbox import stack
from tenancy_diag.sandbox.topology import ScenarioSpec

SandboxFactory = Callable[..., stack.Endpoints]


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxFactory]:
    """``sandbox("webhook_storm", tenants=200)``: one running stack per distinct spec."""
    running: dict[ScenarioSpec, tuple[Path, stack.Endpoints]] = {}

    def start(name: str = "healthy", **options: object) -> stack.Endpoints:
        spec = ScenarioSpec(name=name, **options)  # type: ignore[arg-type]
        if spec not in running:
            state = tmp_path_factory.mktemp(f"sandbox-{name}")
            running[spec] = (state, stack.up(spec, state))
        return running[spec][1]

    yield start
    for state, _ in running.values():
        stack.down(state)
