"""An unreachable source yields status `unknown` and a sentence saying which source."""

from __future__ import annotations

import json
from pathlib import Path

import papermill
import pytest

pytestmark = pytest.mark.integration
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_unreachable_prometheus_gives_unknown_naming_it(tmp_path):
    findings = tmp_path / "findings.json"
    papermill.execute_notebook(
        str(NOTEBOOKS / "controller_health.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters={
            "findings_path": str(findings),
            "prometheus_url": "http://127.0.0.1:9",
            "regions": ["us-east-1"],
            "end": "2026-11-27T03:00:00Z",
        },
        progress_bar=False,
        kernel_name="python3",
    )
    data = json.loads(findings.read_text())
    assert data["status"] == "unknown"
    assert data["severity"] is None and data["patterns"] == []
    assert data["sources"]["prometheus"].startswith("unavailable: Prometheus at http://127.0.0.1:9")
    assert "prometheus unavailable" in data["summary"]
