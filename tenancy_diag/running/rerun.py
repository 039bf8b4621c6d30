"""Re-executing a bundle from its own recording, offline, and comparing what it concludes.

A rerun reads the executed notebooks of the bundle (so the code is the code that ran, whatever
the repository holds today), strips their outputs, and runs them with the manifest's
parameters and ``replay_dir`` pointing at the bundle's snapshots: no source is contacted.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenancy_diag.errors import ConfigError
from tenancy_diag.running.bundles import open_bundle, verify_bundle
from tenancy_diag.running.catalog import NotebookEntry
from tenancy_diag.running.execution import KernelSupply, NotebookOutcome
from tenancy_diag.running.naming import check_name
from tenancy_diag.running.notebooks import read_notebook, strip_outputs, write_notebook
from tenancy_diag.running.parameters import declared_parameters
from tenancy_diag.running.progress import Progress
from tenancy_diag.running.results import load_findings
from tenancy_diag.running.runs import (
    DEFAULT_CELL_TIMEOUT_S,
    PlannedNotebook,
    RunPlan,
    RunResult,
    execute_run,
    require_declared,
)

#: Findings fields that legitimately differ between a run and its rerun: when they were
#: written, and where the answers came from (live servers then, the snapshot now).
RERUN_IGNORES = ("generated_at", "sources")
#: Parameters the runner sets afresh for the new bundle.
_BUNDLE_PATHS = {
    "findings_path",
    "snapshot_dir",
    "replay_dir",
    "audit_path",
    "evidence_dir",
    "bundle_dir",
}


@dataclass(frozen=True)
class RerunResult:
    run: RunResult
    #: Notebook -> differences between the original findings and the rerun's.
    differences: Mapping[str, list[str]]


def rerun(
    bundle_dir: Path,
    out: Path,
    *,
    command: Sequence[str] = (),
    progress: Progress | None = None,
    workers: int | None = None,
    cell_timeout_s: int | None = None,
    pool: KernelSupply | None = None,
) -> RerunResult:
    problems = verify_bundle(bundle_dir)
    if problems:
        raise ConfigError(
            f"bundle {bundle_dir} fails its manifest check ({problems[0]}; {len(problems)} "
            "problem(s) in all), so its recording cannot be trusted; rerun an intact bundle"
        )
    bundle, manifest = open_bundle(bundle_dir)
    with tempfile.TemporaryDirectory(prefix="tenancy-diag-rerun-") as scratch:
        notebooks = tuple(
            _planned(bundle.root, name, manifest, Path(scratch))
            for name in manifest.get("notebooks", {})
        )
        plan = RunPlan(
            incident=check_name(manifest["incident"], "incident id"),
            out=out,
            notebooks=notebooks,
            window=manifest.get("window") or {},
            command=tuple(command),
            cell_timeout_s=(
                cell_timeout_s or manifest.get("cell_timeout_s") or DEFAULT_CELL_TIMEOUT_S
            ),
            workers=workers,
            action="rerun",
            rerun_of=f"{manifest['incident']}/{manifest['run_id']}",
        )
        result = execute_run(plan, progress, pool)
    differences = {outcome.name: _differences(bundle.root, outcome) for outcome in result.outcomes}
    return RerunResult(result, {k: v for k, v in differences.items() if v})


def _planned(root: Path, name: str, manifest: Mapping[str, Any], scratch: Path) -> PlannedNotebook:
    check_name(name, "notebook name")
    executed = root / "notebooks" / f"{name}.ipynb"
    clean = scratch / f"{name}.ipynb"
    write_notebook(strip_outputs(read_notebook(executed)), clean)
    entry = NotebookEntry(name, executed, manifest["notebooks"][name]["subsystem"])
    parameters = {
        k: v
        for k, v in manifest.get("parameters", {}).get(name, {}).items()
        if k not in _BUNDLE_PATHS
    }
    declared = frozenset(declared_parameters(clean))
    if "dry_run" in declared:
        # Its calls changed live systems; replaying them would change them again.
        raise ConfigError(
            f"notebook {name} is a remediation: it acts, and a rerun would act again, so it is "
            f"not rerun; its bundle's actions.jsonl is the record, or run it anew with "
            f"`tenancy-diag run {name}`"
        )
    planned = PlannedNotebook(entry, parameters, declared, clean, root / "snapshots" / name)
    require_declared(planned, "replay_dir", "a rerun needs to answer source calls offline")
    return planned


def _differences(original_root: Path, outcome: NotebookOutcome) -> list[str]:
    before, problem = load_findings(original_root / "findings" / f"{outcome.name}.json")
    if before is None:
        return [f"the original findings are unusable: {problem}"]
    return compare_findings(before, outcome.findings, ignore=RERUN_IGNORES)


def compare_findings(
    a: Mapping[str, Any], b: Mapping[str, Any], ignore: Sequence[str] = ("generated_at",)
) -> list[str]:
    """Differences between two findings documents, one line each (``path: a != b``);
    top-level fields in ``ignore`` are skipped."""
    left = {k: v for k, v in a.items() if k not in ignore}
    right = {k: v for k, v in b.items() if k not in ignore}
    return _diff(left, right, "")


def _diff(a: Any, b: Any, where: str) -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        found = []
        for key in sorted({*a, *b}, key=str):
            path = f"{where}.{key}" if where else str(key)
            if key not in a or key not in b:
                found.append(f"{path}: only in {'second' if key not in a else 'first'}")
            else:
                found.extend(_diff(a[key], b[key], path))
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in _diff(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where or '(document)'}: {a!r} != {b!r}"]
