"""The evidence bundle on disk: ``OUT/<incident>/<run_id>/``, its manifest and its checks.

::

    notebooks/<name>.ipynb    executed notebooks (partial when one failed)
    html/<name>.html          the same, readable offline
    findings/<name>.json      FINDINGS_SCHEMA (the schemas and names are tenancy_diag.evidence's)
    snapshots/<name>/         every source call the notebook recorded
    logs/<name>.kernel.log    the kernel's own stderr, redacted
    summary.json              SUMMARY_SCHEMA
    index.html                the incident page
    manifest.json             MANIFEST_SCHEMA, with the sha256 of every other file
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from tenancy_diag.errors import ConfigError
from tenancy_diag.evidence import (
    FINDINGS_DIR,
    INDEX_PAGE,
    MANIFEST_FILE,
    MANIFEST_SCHEMA,
    SUMMARY_FILE,
    check_schema,
)
from tenancy_diag.running.naming import check_name, inside

# The runner's callers know the bundle's files by these names.
MANIFEST = MANIFEST_FILE
SUMMARY = SUMMARY_FILE
INDEX = INDEX_PAGE


@dataclass(frozen=True)
class Bundle:
    root: Path  # resolved, inside OUT
    incident: str
    run_id: str

    def notebook(self, name: str) -> Path:
        return self._file("notebooks", f"{check_name(name, 'notebook name')}.ipynb")

    def html(self, name: str) -> Path:
        return self._file("html", f"{check_name(name, 'notebook name')}.html")

    def findings(self, name: str) -> Path:
        return self._file(FINDINGS_DIR, f"{check_name(name, 'notebook name')}.json")

    def kernel_log(self, name: str) -> Path:
        return self._file("logs", f"{check_name(name, 'notebook name')}.kernel.log")

    def snapshots(self, name: str) -> Path:
        folder = self.root / "snapshots" / check_name(name, "notebook name")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _file(self, folder: str, name: str) -> Path:
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        return self.root / folder / name


def new_run_id(now: datetime | None = None) -> str:
    """``20261127T030000Z-3f9a1c``: sorts by start time; the suffix keeps parallel runs apart."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def create_bundle(
    out: Path, incident: str, now: datetime | None = None, run_id: str | None = None
) -> Bundle:
    """A new, empty bundle folder for ``incident`` under ``out``, named ``run_id`` when given.

    A given run id whose folder already exists holds an interrupted attempt (a finished one
    is found by :func:`finished_bundle` before any run starts): it is moved aside to
    ``<run_id>.partial-<n>``, kept as evidence of what happened, and the folder starts empty.
    """
    check_name(incident, "incident id")
    if run_id is not None:
        return _bundle_named(out, incident, check_name(run_id, "run id"))
    for _ in range(5):
        run_id = new_run_id(now)
        root = out / incident / run_id
        inside(out, root, "incident id")
        try:
            root.mkdir(parents=True)
        except FileExistsError:
            continue  # the same second and the same random suffix: draw again
        except OSError as e:
            raise ConfigError(
                f"cannot create bundle folder {root} ({e.strerror}); choose a writable --out"
            ) from e
        return Bundle(inside(out, root, "incident id"), incident, run_id)
    raise ConfigError(f"could not find a free run id under {out / incident}; retry")


def _bundle_named(out: Path, incident: str, run_id: str) -> Bundle:
    root = inside(out, out / incident / run_id, "run id")
    try:
        if root.exists():
            move_aside(root, "partial")
        root.mkdir(parents=True)
    except OSError as e:
        raise ConfigError(
            f"cannot create bundle folder {root} ({e.strerror}); choose a writable --out"
        ) from e
    return Bundle(root, incident, run_id)


def move_aside(root: Path, label: str) -> Path:
    """Rename ``root`` to ``<root>.<label>-<n>`` (the first free n) and return the new path."""
    n = 1
    while (target := root.with_name(f"{root.name}.{label}-{n}")).exists():
        n += 1
    root.rename(target)
    return target


def finished_bundle(out: Path, incident: str, run_id: str) -> Bundle | None:
    """The bundle ``OUT/<incident>/<run_id>`` when it exists and its manifest verifies."""
    root = inside(
        out, out / check_name(incident, "incident id") / check_name(run_id, "run id"), "run id"
    )
    if not (root / MANIFEST).is_file() or verify_bundle(root):
        return None
    return Bundle(root, incident, run_id)


def open_bundle(path: Path) -> tuple[Bundle, dict[str, Any]]:
    """An existing bundle and its manifest."""
    manifest = read_manifest(path)
    return Bundle(path.resolve(), manifest["incident"], manifest["run_id"]), manifest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_digests(root: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {sha256, size}}`` for every file under ``root`` but the manifest."""
    digests = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_file() and name != MANIFEST:
            digests[name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return digests


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_manifest(bundle: Bundle, manifest: dict[str, Any]) -> Path:
    """``manifest`` plus the digests of every file, written last so it covers them all."""
    path = bundle.root / MANIFEST
    write_json(path, {"schema": MANIFEST_SCHEMA, **manifest, "files": file_digests(bundle.root)})
    return path


def read_manifest(bundle_dir: Path) -> dict[str, Any]:
    path = bundle_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(
            f"cannot read {path} ({e.strerror}); point at a bundle folder OUT/<incident>/<run_id>"
        ) from e
    except ValueError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); the bundle is damaged") from e
    problem = check_schema(manifest, MANIFEST_SCHEMA, path)
    if problem:
        raise ConfigError(problem)
    return cast(dict[str, Any], manifest)


def verify_bundle(bundle_dir: Path) -> list[str]:
    """Every problem with the bundle's files against its manifest, one sentence each."""
    try:
        manifest = read_manifest(bundle_dir)
    except ConfigError as e:
        return [str(e)]
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        return [f"{bundle_dir / MANIFEST} lists no files; the bundle is damaged"]
    actual = file_digests(bundle_dir)
    problems = []
    for name, expected in sorted(listed.items()):
        found = actual.get(name)
        if found is None:
            problems.append(f"{name} is listed in the manifest but missing")
        elif found != expected:
            problems.append(f"{name} changed after the run (its sha256 or size differs)")
    problems.extend(
        f"{name} was added after the run (not in the manifest)"
        for name in sorted(set(actual) - set(listed))
    )
    return problems
