"""A bundle of the shipped sample incident, run once per test session (per xdist worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenancy_diag import cli


@pytest.fixture(scope="session")
def sample_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``OUT/sample/<run_id>/`` of `run all --sample`, two notebooks at a time (as CI runs)."""
    out = tmp_path_factory.mktemp("sample-out")
    code = cli.main(
        ["run", "all", "--sample", "--incident", "sample", "--out", str(out), "--workers", "2"]
    )
    assert code == 0, f"run all --sample exited {code}"
    (bundle,) = (out / "sample").iterdir()
    return bundle
