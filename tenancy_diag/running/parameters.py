"""Which parameters each notebook gets: read, merged, checked and typed before any kernel starts.

Precedence, lowest first: ``-f params.yaml`` files in the order given, the named flags
(``--tenant``, ``--region``, ... and their environment fallbacks), then ``-p name=value``.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tenancy_diag.errors import ConfigError, ParameterError
from tenancy_diag.importing import import_papermill
from tenancy_diag.running.coercing import Given, coerce, refuse_secrets
from tenancy_diag.running.notebooks import read_notebook

#: Set by the runner for every notebook; a user value would point evidence elsewhere.
RUNNER_PARAMETERS = {
    "incident_id": "--incident",
    "findings_path": "the bundle layout",
    "snapshot_dir": "the bundle layout",
    "replay_dir": "`tenancy-diag rerun`",
    "audit_path": "--out (OUT/audit.jsonl)",
    "evidence_dir": "--out",
    "bundle_dir": "the bundle layout",
}
#: What a notebook must declare for the runner to drive it.
REQUIRED_PARAMETERS = ("incident_id", "findings_path")


@dataclass(frozen=True)
class ParameterSpec:
    """One line of a parameters cell, as papermill reads it."""

    name: str
    type_name: str  # the annotation as written; "None" without one
    default: str  # Python source
    help: str


def declared_parameters(notebook: Path) -> dict[str, ParameterSpec]:
    """The parameters cell of ``notebook``; ConfigError when papermill misreads a line of it."""
    try:
        found = import_papermill().inspect_notebook(str(notebook))
        cell = _parameters_cell(read_notebook(notebook))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read notebook {notebook} ({e}); check the file") from e
    if cell is None:
        raise ConfigError(
            f"notebook {notebook} has no code cell tagged 'parameters'; tag its first code cell"
        )
    specs = {
        name: ParameterSpec(name, str(p["inferred_type_name"]), str(p["default"]), str(p["help"]))
        for name, p in found.items()
    }
    _check_papermill_saw_all(notebook, cell, specs)
    return specs


def _parameters_cell(nb: Any) -> str | None:
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return str(cell.source)
    return None


def _check_papermill_saw_all(notebook: Path, source: str, specs: Mapping[str, Any]) -> None:
    # papermill skips, with a mere log line, any line holding two '=' (a comment such as
    # "# empty = all" is enough); the runner would then refuse that parameter as unknown.
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ConfigError(
            f"notebook {notebook} has a parameters cell that is not valid Python (line "
            f"{e.lineno}: {e.msg}); fix the cell"
        ) from e
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id not in specs:
                raise ConfigError(
                    f"notebook {notebook} declares {target.id!r} on parameters line "
                    f"{node.lineno}, which papermill cannot read; keep one '=' per line "
                    "(reword the comment) and one name per assignment"
                )


def read_files(paths: Iterable[Path]) -> dict[str, Given]:
    """Parameters from ``-f`` YAML files, later files overriding earlier ones."""
    merged: dict[str, Given] = {}
    for path in paths:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read parameters file {path} ({e.strerror}); check -f") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"parameters file {path} is not YAML ({e}); fix the file") from e
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ConfigError(f"parameters file {path} must hold a mapping of name: value")
        for name, value in data.items():
            merged[_checked_name(name, f"-f {path}")] = Given(value, f"-f {path}")
    return merged


def parse_assignments(items: Iterable[str]) -> dict[str, Given]:
    """``-p name=value`` items; the value is read as YAML (a scalar or a [list])."""
    parsed: dict[str, Given] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ParameterError(f"-p {item!r} has no '='; write it as -p name=value")
        name = _checked_name(name.strip(), f"-p {item}")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text  # not YAML (say, "a: b: c"): the text as typed is the value
        parsed[name] = Given(value, "-p", text)
    return parsed


def _checked_name(name: object, origin: str) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ParameterError(f"parameter name {name!r} ({origin}) is not a Python identifier")
    return name


def merge(*layers: Mapping[str, Given]) -> dict[str, Given]:
    """Layers lowest precedence first: files, named flags, ``-p``."""
    merged: dict[str, Given] = {}
    for layer in layers:
        merged.update(layer)
    return merged


@dataclass(frozen=True)
class Resolved:
    """Per notebook, the typed parameters it declares; warnings for ignored optional ones."""

    per_notebook: dict[str, dict[str, Any]]
    warnings: tuple[str, ...] = ()


def resolve(
    declared: Mapping[str, Mapping[str, ParameterSpec]],
    given: Mapping[str, Given],
    runner: Mapping[str, Any],
) -> Resolved:
    """Check ``given`` against every notebook's ``declared`` parameters and type them.

    A strict name (``-p``, ``-f``) that no notebook declares is an error, likely a typo; an
    optional one (a named flag or its environment fallback) is only a warning, since
    ``--kubeconfig`` means nothing to a Prometheus-only notebook. Each notebook receives only
    the names it declares, plus the ``runner`` values (incident id, pinned end) it declares.
    """
    for name, value in given.items():
        refuse_secrets(name, value)
        if name in RUNNER_PARAMETERS:
            raise ParameterError(
                f"parameter {name!r} ({value.origin}) is set by the runner from "
                f"{RUNNER_PARAMETERS[name]}; do not pass it"
            )
    for notebook, specs in declared.items():
        missing = [n for n in REQUIRED_PARAMETERS if n not in specs]
        if missing:
            raise ConfigError(
                f"notebook {notebook} does not declare {', '.join(missing)} in its parameters "
                "cell; add them so the runner can tell it where to write findings"
            )
    known = {name for specs in declared.values() for name in specs}
    warnings = []
    for name, value in given.items():
        if name in known:
            continue
        if not value.strict:
            warnings.append(f"no selected notebook declares {name!r} ({value.origin}); ignored")
            continue
        raise ParameterError(_unknown_message(name, value, known))
    per_notebook = {
        notebook: {
            **{
                name: coerce(name, value, specs[name].type_name, notebook)
                for name, value in given.items()
                if name in specs
            },
            **{name: value for name, value in runner.items() if name in specs},
        }
        for notebook, specs in declared.items()
    }
    return Resolved(per_notebook, tuple(warnings))


def _unknown_message(name: str, given: Given, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    if close:
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?"
    else:
        hint = f"declared names: {', '.join(sorted(known))}"
    return f"no selected notebook declares parameter {name!r} ({given.origin}); {hint}"
