"""`sandbox up` every day: after `down`, after a crash, and refused (saying how to stop it) while
one is up, all on the same state folder, through the command line as the README has it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tenancy_diag.sandbox import stack
from tenancy_diag.sandbox.serving import pid_alive

pytestmark = pytest.mark.integration

SMALL = ("--scenario", "webhook_storm", "--tenants", "10", "--duration", "1h")


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != stack.ENV_STATE_DIR}
    return subprocess.run(
        [sys.executable, "-m", "tenancy_diag.cli", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )


def _pids(state: Path) -> dict[str, int]:
    data = json.loads((state / "state.json").read_text(encoding="utf-8"))
    return {name: int(p["pid"]) for name, p in data["processes"].items()}


def test_up_down_up_and_up_after_a_crash_on_the_default_folder(tmp_path):
    state = tmp_path / ".sandbox"  # the default folder, relative to where the user stands
    try:
        first = _cli("sandbox", "up", *SMALL, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        first_pids = _pids(state)

        again = _cli("sandbox", "up", *SMALL, cwd=tmp_path)
        assert again.returncode == 2
        message = again.stderr.strip().splitlines()[-1]
        assert "already up" in message and "webhook_storm" in message
        assert "`tenancy-diag sandbox down`" in message, message  # the default needs no flag
        assert _pids(state) == first_pids and all(map(pid_alive, first_pids.values()))

        down = _cli("sandbox", "down", cwd=tmp_path)
        assert down.returncode == 0, down.stderr
        assert not any(map(pid_alive, first_pids.values()))

        second = _cli("sandbox", "up", *SMALL, cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert "replaced what the last sandbox left" in second.stderr
        second_pids = _pids(state)
        assert set(second_pids.values()).isdisjoint(first_pids.values())

        # A crash: Prometheus dies, the other servers live on.
        os.kill(second_pids["prometheus"], signal.SIGKILL)
        third = _cli("sandbox", "up", *SMALL, cwd=tmp_path)
        assert third.returncode == 0, third.stderr
        assert "stopped what the last sandbox left running" in third.stderr
        assert not any(map(pid_alive, second_pids.values()))
        status = _cli("sandbox", "status", cwd=tmp_path)
        assert status.returncode == 0, status.stdout
    finally:
        if (state / "state.json").exists():
            stack.down(state)


def test_a_custom_folder_is_named_in_the_way_to_stop_it(tmp_path):
    state = tmp_path / "elsewhere"
    try:
        assert (
            _cli("sandbox", "up", *SMALL, "--state-dir", str(state), cwd=tmp_path).returncode == 0
        )
        refused = _cli("sandbox", "up", *SMALL, "--state-dir", str(state), cwd=tmp_path)
        assert refused.returncode == 2
        assert f"tenancy-diag sandbox down --state-dir {state.resolve()}" in refused.stderr
    finally:
        if (state / "state.json").exists():
            stack.down(state)
