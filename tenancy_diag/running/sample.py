"""The recorded sample incident shipped with tenancy-diag, and replaying any recording in a run.

The sample is what `run all --sample` (the README's main command) diagnoses on a fresh machine
with no network: every source call the five notebooks make is answered from its snapshots.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenancy_diag.errors import ConfigError
from tenancy_diag.evidence import SAMPLE_FILE, SAMPLE_SCHEMA, check_schema
from tenancy_diag.running.runs import RunPlan, require_declared

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"


@dataclass(frozen=True)
class Sample:
    incident: str
    scenario: str
    parameters: dict[str, Any]  # end, lookback, incident_start: the recorded window
    snapshots: Path  # one folder per notebook


def load_sample(folder: Path = SAMPLE_DIR) -> Sample:
    path = folder / SAMPLE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"the sample incident at {path} is unreadable ({e}); reinstall tenancy-diag"
        ) from e
    problem = check_schema(data, SAMPLE_SCHEMA, path)
    if problem:
        raise ConfigError(f"{problem}; reinstall tenancy-diag")
    return Sample(
        data["incident"], data["scenario"], dict(data["parameters"]), folder / "snapshots"
    )


def with_replay(plan: RunPlan, recording: Path) -> RunPlan:
    """The same plan with every notebook answering its source calls from ``recording/<name>``."""
    planned = []
    for notebook in plan.notebooks:
        folder = recording / notebook.entry.name
        if not folder.is_dir():
            raise ConfigError(
                f"{recording} holds no recording for notebook {notebook.entry.name}; "
                "pass a bundle's snapshots/ folder, recorded by `tenancy-diag run`"
            )
        require_declared(notebook, "replay_dir", "replaying a recording needs")
        planned.append(dataclasses.replace(notebook, replay_from=folder.resolve()))
    return dataclasses.replace(plan, notebooks=tuple(planned))
