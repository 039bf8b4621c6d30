"""A run from plan to bundle: check everything, execute the notebooks, write the evidence.

:func:`plan_run` does every check that can fail on bad input (names, paths, parameters, the
window) and starts nothing; :func:`execute_run` then creates the bundle and runs the kernels.
"""

from __future__ import annotations

import ast
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenancy_diag import runbook, settings
from tenancy_diag.errors import ConfigError
from tenancy_diag.journaling import AUDIT_FILE
from tenancy_diag.running import acting
from tenancy_diag.running.bundles import (
    INDEX,
    SUMMARY,
    Bundle,
    create_bundle,
    sha256_file,
    write_json,
    write_manifest,
)
from tenancy_diag.running.catalog import NotebookEntry
from tenancy_diag.running.coercing import Given
from tenancy_diag.running.execution import NotebookJob, NotebookOutcome, execute_all
from tenancy_diag.running.naming import check_name, inside
from tenancy_diag.running.parameters import ParameterSpec, declared_parameters, resolve
from tenancy_diag.running.progress import Progress
from tenancy_diag.running.summary import NotebookReport, build_summary
from tenancy_diag.times import iso, parse_duration, parse_time

if TYPE_CHECKING:
    from tenancy_diag.running.execution import KernelSupply

#: Packages whose versions can change a diagnosis; recorded in every manifest.
KEY_PACKAGES = (
    "tenancy-diag",
    "papermill",
    "nbclient",
    "nbconvert",
    "nbformat",
    "ipykernel",
    "pandas",
    "kubernetes",
    "boto3",
    "prometheus-api-client",
)
DEFAULT_CELL_TIMEOUT_S = 600


@dataclass(frozen=True)
class PlannedNotebook:
    entry: NotebookEntry
    parameters: Mapping[str, Any]  # typed; the runner adds the bundle paths at run time
    declared: frozenset[str]
    #: What papermill reads; differs from ``entry.path`` when a rerun strips old outputs.
    execute_from: Path
    #: Rerun only: the snapshot folder whose recording answers this notebook's source calls.
    replay_from: Path | None = None


@dataclass(frozen=True)
class RunPlan:
    incident: str
    out: Path
    notebooks: tuple[PlannedNotebook, ...]
    window: Mapping[str, str | None]  # start, end (pinned), lookback
    command: tuple[str, ...]  # redacted argv
    cell_timeout_s: int = DEFAULT_CELL_TIMEOUT_S
    workers: int | None = None  # None: one per core
    action: str = "run"
    rerun_of: str | None = None
    warnings: tuple[str, ...] = ()
    #: A caller-chosen run id (the service's, stable across its retries); None draws a new one.
    run_id: str | None = None
    #: True when notebooks that act were strictly confirmed to act (see :mod:`.acting`).
    acting: bool = False


@dataclass(frozen=True)
class RunResult:
    bundle: Bundle
    outcomes: tuple[NotebookOutcome, ...]
    summary: Mapping[str, Any]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> list[str]:
        return [o.name for o in self.outcomes if not o.ran]

    @property
    def index(self) -> Path:
        return self.bundle.root / INDEX


def plan_run(
    entries: Sequence[NotebookEntry],
    *,
    incident: str,
    out: Path,
    given: Mapping[str, Given],
    command: Sequence[str] = (),
    cell_timeout_s: int = DEFAULT_CELL_TIMEOUT_S,
    workers: int | None = None,
    run_id: str | None = None,
) -> RunPlan:
    """Every check of a run, before anything is written or any kernel starts."""
    check_name(incident, "incident id")
    if run_id is not None:
        check_name(run_id, "run id")
    inside(out, out / incident, "incident id")
    declared = {e.name: declared_parameters(e.path) for e in entries}
    # Before the parameters are typed: `dry_run=0` must be refused with what to type instead.
    acts = any(acting.acts(specs) for specs in declared.values())
    confirmed = acts and acting.confirmed(given, incident)
    user = {name: value for name, value in given.items() if name != "end"}
    end = _pinned_end(given.get("end"))
    resolved = resolve(declared, user, runner={"incident_id": incident, "end": end})
    notebooks = tuple(
        PlannedNotebook(
            e,
            acting.pin(resolved.per_notebook[e.name], declared[e.name], confirmed, incident)
            if acting.acts(declared[e.name])
            else resolved.per_notebook[e.name],
            frozenset(declared[e.name]),
            e.path,
        )
        for e in entries
    )
    return RunPlan(
        incident,
        out,
        notebooks,
        _window(end, given.get("lookback"), declared),
        tuple(command),
        cell_timeout_s,
        workers,
        warnings=resolved.warnings,
        run_id=run_id,
        acting=confirmed,
    )


def _pinned_end(given: Given | None) -> str:
    """``end`` as an absolute time, fixed once so every notebook and a rerun see one window."""
    if given is None:
        return iso(datetime.now(UTC).replace(microsecond=0))
    value = given.value if isinstance(given.value, str | datetime) else given.text
    return iso(parse_time(value if value is not None else str(given.value), "end"))


def _window(
    end: str, lookback: Given | None, declared: Mapping[str, Mapping[str, ParameterSpec]]
) -> dict[str, str | None]:
    """The window every notebook looks at: the pinned end, and the lookback when one is known."""
    if lookback is not None:
        text: str | None = lookback.text or str(lookback.value)
    else:
        text = _common_default("lookback", declared)
    start = None
    if text:
        start = iso(parse_time(end) - parse_duration(text, "lookback"))
    return {"start": start, "end": end, "lookback": text}


def _common_default(name: str, declared: Mapping[str, Mapping[str, ParameterSpec]]) -> str | None:
    defaults = set()
    for specs in declared.values():
        if name in specs:
            try:
                defaults.add(str(ast.literal_eval(specs[name].default)))
            except (ValueError, SyntaxError):
                return None
    return defaults.pop() if len(defaults) == 1 else None


def execute_run(
    plan: RunPlan, progress: Progress | None = None, pool: KernelSupply | None = None
) -> RunResult:
    """Create the bundle, run every notebook, and write summary, index and manifest.

    With a ``pool``, notebooks run on its warm kernels while it has some, then on cold ones.
    """
    # nbconvert is imported when a page is first rendered, not when a command is parsed.
    from tenancy_diag.running.rendering import render_index  # noqa: PLC0415

    started = datetime.now(UTC)
    bundle = create_bundle(plan.out, plan.incident, started, run_id=plan.run_id)
    jobs = [_job(bundle, plan, p) for p in plan.notebooks]
    outcomes = execute_all(jobs, plan.workers, progress, pool)
    finished = datetime.now(UTC)
    reports = [_report(bundle, outcome) for outcome in outcomes]
    summary = build_summary(
        incident=plan.incident,
        run_id=bundle.run_id,
        window=plan.window,
        started_at=started,
        finished_at=finished,
        reports=reports,
        book=runbook.default(),
    )
    write_json(bundle.root / SUMMARY, summary)
    (bundle.root / INDEX).write_text(render_index(summary), encoding="utf-8")
    manifest = _manifest(bundle, plan, jobs, outcomes, started=started, finished=finished)
    write_manifest(bundle, manifest)
    return RunResult(bundle, tuple(outcomes), summary, plan.warnings)


def _job(bundle: Bundle, plan: RunPlan, planned: PlannedNotebook) -> NotebookJob:
    name = planned.entry.name
    parameters = dict(planned.parameters)
    parameters["findings_path"] = str(bundle.findings(name))
    snapshots = bundle.snapshots(name)
    if planned.replay_from is not None:
        _copy_tree(planned.replay_from, snapshots)
    if "snapshot_dir" in planned.declared:
        parameters["snapshot_dir"] = "" if planned.replay_from else str(snapshots)
    if "replay_dir" in planned.declared:
        parameters["replay_dir"] = str(snapshots) if planned.replay_from else ""
    # Notebooks that act or look back need the shared audit log and the other bundles.
    if "audit_path" in planned.declared:
        parameters["audit_path"] = str(plan.out.resolve() / AUDIT_FILE)
    if "evidence_dir" in planned.declared:
        parameters["evidence_dir"] = str(plan.out.resolve())
    if "bundle_dir" in planned.declared:
        parameters["bundle_dir"] = str(bundle.root)
    window = {k: v for k, v in plan.window.items() if v is not None}
    return NotebookJob(
        name=name,
        subsystem=planned.entry.subsystem,
        incident=plan.incident,
        source=planned.execute_from,
        parameters=parameters,
        cwd=bundle.root,
        output=bundle.notebook(name),
        findings=bundle.findings(name),
        html=bundle.html(name),
        kernel_log=bundle.kernel_log(name),
        cell_timeout_s=plan.cell_timeout_s,
        window=window,
    )


def _copy_tree(source: Path, target: Path) -> None:
    # A rerun bundle carries the recording it replayed, so it can itself be rerun and verified.
    for path in sorted(source.rglob("*")):
        if path.is_file():
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(path.read_bytes())


def _report(bundle: Bundle, outcome: NotebookOutcome) -> NotebookReport:
    name = outcome.name
    files = {
        "notebook": bundle.relative(bundle.notebook(name)),
        "html": bundle.relative(bundle.html(name)),
        "findings": bundle.relative(bundle.findings(name)),
        "snapshots": bundle.relative(bundle.snapshots(name)),
    }
    return NotebookReport(
        name,
        outcome.subsystem,
        outcome.findings,
        outcome.ran,
        outcome.seconds,
        files,
        outcome.error,
    )


def _manifest(
    bundle: Bundle,
    plan: RunPlan,
    jobs: Sequence[NotebookJob],
    outcomes: Sequence[NotebookOutcome],
    *,
    started: datetime,
    finished: datetime,
) -> dict[str, Any]:
    notebooks = {
        p.entry.name: {
            "subsystem": p.entry.subsystem,
            "source": str(p.entry.path),
            "source_sha256": sha256_file(p.entry.path),
            "ran": o.ran,
            "status": o.status,
            "error": o.error,
            "started_at": iso(datetime.fromtimestamp(o.started_at, UTC)),
            "seconds": round(o.seconds, 3),
        }
        for p, o in zip(plan.notebooks, outcomes, strict=True)
    }
    return {
        "run_id": bundle.run_id,
        "incident": plan.incident,
        "action": plan.action,
        "rerun_of": plan.rerun_of,
        "actor": settings.actor(),
        "started_at": iso(started),
        "finished_at": iso(finished),
        "command": list(plan.command),
        "window": dict(plan.window),
        "cell_timeout_s": plan.cell_timeout_s,
        "parameters": {job.name: dict(job.parameters) for job in jobs},
        "notebooks": notebooks,
        "versions": versions(),
    }


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in KEY_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def require_declared(planned: PlannedNotebook, name: str, why: str) -> None:
    if name not in planned.declared:
        raise ConfigError(
            f"notebook {planned.entry.name} does not declare {name!r}, which {why}; add it to "
            "its parameters cell"
        )
