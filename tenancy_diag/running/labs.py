"""A lab: working copies of notebooks for a person to run in JupyterLab, wired to an incident's
live sources or to an evidence bundle's recording, writing only into ``OUT/INCIDENT/lab-<time>/``.

::

    notebooks/<name>.ipynb    the copies JupyterLab opens; an injected cell sets their parameters
    findings/<name>.json      what each copy concluded, the last time it ran
    snapshots/<name>/         every source call a live copy made (the last run's; earlier ones
                              moved aside to <name>.1, .2 ...)

Parameters are checked exactly as ``run`` checks them (:func:`~.runs.plan_run`), so a lab and
a headless run of the same flags see the same window and sources. A copy never acts: its
remediation notebooks are pinned to a dry run; acting goes through ``run``, confirmed and
audited. The repository's notebooks are only ever read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from papermill.parameterize import parameterize_notebook

from tenancy_diag.errors import ConfigError
from tenancy_diag.evidence import FINDINGS_DIR
from tenancy_diag.journaling import AUDIT_FILE
from tenancy_diag.running.bundles import open_bundle, verify_bundle
from tenancy_diag.running.catalog import NotebookEntry, subsystem_of
from tenancy_diag.running.coercing import Given
from tenancy_diag.running.naming import check_name, inside
from tenancy_diag.running.notebooks import read_notebook, write_notebook
from tenancy_diag.running.runs import PlannedNotebook, plan_run
from tenancy_diag.sources.registry import registry as source_kinds

#: Parameters the runner sets for each notebook; a bundle's values for them are its own paths.
_RUNNER_SET = (
    "incident_id",
    "findings_path",
    "snapshot_dir",
    "replay_dir",
    "audit_path",
    "evidence_dir",
    "bundle_dir",
)


@dataclass(frozen=True)
class Lab:
    """A prepared lab folder and what its copies are wired to."""

    root: Path  # OUT/<incident>/lab-<time>/
    incident: str
    notebooks: tuple[str, ...]
    #: "live" (the given sources, recorded into the copy) or "replay" (a bundle's recording).
    mode: str
    #: One line for the person starting it: what the copies answer from.
    wired_to: str
    #: Problems with the bundle's seal, when the lab replays one that fails its manifest.
    warnings: tuple[str, ...] = ()

    @property
    def notebook_dir(self) -> Path:
        return self.root / "notebooks"


def incident_lab(
    entries: Sequence[NotebookEntry],
    *,
    incident: str,
    out: Path,
    given: Mapping[str, Given],
    now: datetime | None = None,
) -> Lab:
    """Copies of ``entries`` for ``incident``, with the sources and window in ``given`` as
    ``run`` takes them; without an ``end``, each run of a copy looks up to its own now."""
    plan = plan_run(entries, incident=incident, out=out, given=given)
    root = _new_folder(out, incident, now)
    live = any(given.get(p) and given[p].value for p in source_kinds.parameters())
    for planned in plan.notebooks:
        parameters = dict(planned.parameters)
        if "end" not in given:
            # A lab is kept open while the incident goes on: "now" when a copy runs, not when
            # the lab started (the copy prints the window it used, its findings record it).
            parameters["end"] = "now"
        _write_copy(root, planned, parameters, out, recording=None)
    names = tuple(p.entry.name for p in plan.notebooks)
    wired = "the given sources" if live else "no source (every source parameter is empty)"
    return Lab(root, incident, names, "live", wired)


def bundle_lab(
    bundle_dir: Path,
    *,
    out: Path | None = None,
    given: Mapping[str, Given] | None = None,
    now: datetime | None = None,
) -> Lab:
    """Copies of a bundle's executed notebooks, outputs kept, answering from its snapshots; with
    a source in ``given`` they go live instead and record into the lab folder."""
    bundle, manifest = open_bundle(bundle_dir)
    out = out if out is not None else bundle.root.parent.parent
    given = dict(given or {})
    live = any(given.get(p) and given[p].value for p in source_kinds.parameters())
    recorded: Mapping[str, Mapping[str, Any]] = manifest.get("parameters") or {}
    executed = {name: bundle.root / "notebooks" / f"{name}.ipynb" for name in recorded}
    entries = [
        NotebookEntry(name, path, subsystem_of(name))
        for name, path in sorted(executed.items())
        if path.is_file()
    ]
    if not entries:
        raise ConfigError(
            f"bundle {bundle.root} holds no executed notebook its manifest names; point at a "
            "bundle folder OUT/<incident>/<run_id>"
        )
    if not live:
        # A replay contacts no source: endpoints exported in the shell must not leak in.
        given = {k: v for k, v in given.items() if k not in source_kinds.parameters()}
    # Checked as `run` checks them; each notebook then keeps its own recorded values (window,
    # thresholds, scope: two notebooks' thresholds may share a name), flags winning.
    plan = plan_run(entries, incident=bundle.incident, out=out, given=given)
    root = _new_folder(out, bundle.incident, now)
    for planned in plan.notebooks:
        parameters = _own(recorded.get(planned.entry.name) or {})
        parameters.update({k: v for k, v in planned.parameters.items() if k in given})
        if not live:
            parameters.update({p: "" for p in source_kinds.parameters() if p in planned.declared})
        # Read only: the bundle stays as its manifest sealed it.
        recording = None if live else bundle.root / "snapshots" / planned.entry.name
        _write_copy(root, planned, parameters, out, recording=recording)
    names = tuple(p.entry.name for p in plan.notebooks)
    wired = "the given sources (recorded into the lab)" if live else f"{bundle.root}'s snapshots"
    return Lab(
        root,
        bundle.incident,
        names,
        "live" if live else "replay",
        wired,
        tuple(verify_bundle(bundle.root)),
    )


def _own(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A notebook's recorded parameters that are its own (not the runner's paths)."""
    return {k: v for k, v in parameters.items() if k not in _RUNNER_SET}


def _new_folder(out: Path, incident: str, now: datetime | None) -> Path:
    check_name(incident, "incident id")
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    base = inside(out, out / incident / f"lab-{moment:%Y%m%dT%H%M%SZ}", "incident id")
    root, n = base, 1
    while True:
        try:
            root.mkdir(parents=True)
        except FileExistsError:
            n += 1
            root = base.with_name(f"{base.name}-{n}")
            continue
        except OSError as e:
            raise ConfigError(
                f"cannot create lab folder {root} ({e.strerror}); choose a writable --out"
            ) from e
        return root


def _write_copy(
    root: Path,
    planned: PlannedNotebook,
    parameters: dict[str, Any],
    out: Path,
    recording: Path | None,
) -> None:
    name = planned.entry.name
    declared = planned.declared
    parameters["incident_id"] = planned.parameters["incident_id"]
    parameters["findings_path"] = str(root / FINDINGS_DIR / f"{name}.json")
    if "snapshot_dir" in declared:
        parameters["snapshot_dir"] = "" if recording else str(root / "snapshots" / name)
    if "replay_dir" in declared:
        parameters["replay_dir"] = str(recording) if recording else ""
    if "audit_path" in declared:
        parameters["audit_path"] = str(out.resolve() / AUDIT_FILE)
    if "evidence_dir" in declared:
        parameters["evidence_dir"] = str(out.resolve())
    if "bundle_dir" in declared:
        parameters["bundle_dir"] = str(root)
    if "dry_run" in declared:
        # Acting is `run`'s, confirmed and audited; a copy shows what would be done.
        parameters["dry_run"] = True
        parameters["confirm"] = ""
    nb = read_notebook(planned.execute_from)
    # What papermill's own run prepares: it looks for the parameters cell by its tags.
    nb.metadata.setdefault("papermill", {})
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
    nb = parameterize_notebook(
        nb, parameters, comment="Parameters from `tenancy-diag lab`", kernel_name="python3"
    )
    target = root / "notebooks" / f"{name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    (root / FINDINGS_DIR).mkdir(exist_ok=True)
    write_notebook(nb, target)
