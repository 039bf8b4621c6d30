"""The registry of notebooks the runner knows: ``register(name, path)``, ``resolve([...])``.

Filled from the notebooks folder (:data:`tenancy_diag.resources.NOTEBOOKS`: the shipped one or
``--notebooks``) by :func:`default_catalog`; tests and other packages build
their own :class:`NotebookCatalog`, so nothing depends on the module-level default.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tenancy_diag import resources
from tenancy_diag.errors import ConfigError
from tenancy_diag.running.naming import check_name
from tenancy_diag.subsystems import registry as subsystems
from tenancy_diag.subsystems import remediation_notebook

#: After the diagnosis: the runbook's Verification After Recovery and its postmortem.
VERIFICATION_NOTEBOOK = "verification_after_recovery"
POSTMORTEM_NOTEBOOK = "postmortem"
ALL = "all"
_NOT_SUBSYSTEMS = {VERIFICATION_NOTEBOOK: "recovery", POSTMORTEM_NOTEBOOK: "postmortem"}


def subsystem_notebooks() -> dict[str, str]:
    """Subsystem -> its notebook, in the runbook's Diagnostic Workflow order (what ``all``
    runs), from the subsystem descriptors."""
    return {s.name: s.notebook for s in subsystems}


def remediation_notebooks() -> dict[str, str]:
    """Runbook Remediation Procedure -> its notebook, from the subsystem descriptors."""
    return {p: remediation_notebook(p) for s in subsystems for p in s.remediations}


def subsystem_of(notebook: str) -> str:
    """The subsystem a notebook diagnoses or remediates (its own name when none)."""
    found = subsystems.by_notebook(notebook)
    return found.name if found else _NOT_SUBSYSTEMS.get(notebook, notebook)


@dataclass(frozen=True)
class NotebookEntry:
    name: str
    path: Path
    subsystem: str


class NotebookCatalog:
    def __init__(self, folder: Path | None = None) -> None:
        #: Where the notebooks came from, for error messages; None for a hand-filled catalog.
        self.folder = folder
        self._entries: dict[str, NotebookEntry] = {}

    def register(self, name: str, path: Path, subsystem: str | None = None) -> NotebookEntry:
        """Add (or replace) notebook ``name``; its subsystem defaults to the runbook's."""
        check_name(name, "notebook name")
        if not path.is_file():
            raise ConfigError(
                f"notebook {name!r} points at {path}, which is not a file; fix the path"
            )
        entry = NotebookEntry(name, path.resolve(), subsystem or subsystem_of(name))
        self._entries[name] = entry
        return entry

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def entry(self, name: str) -> NotebookEntry:
        if name not in self._entries:
            raise ConfigError(f"unknown notebook {name!r}; valid names: {self._valid()}")
        return self._entries[name]

    def resolve(self, selection: Sequence[str]) -> list[NotebookEntry]:
        """Notebooks for names, subsystem aliases and ``all``, in order, each once."""
        if not selection:
            raise ConfigError(f"no notebook selected; name one or more of: {self._valid()}")
        wanted: list[str] = []
        for item in selection:
            if item == ALL:
                wanted.extend(self._all())
            else:
                wanted.append(subsystem_notebooks().get(item, item))
        return [self.entry(name) for name in dict.fromkeys(wanted)]

    def _all(self) -> list[str]:
        notebooks = list(subsystem_notebooks().values())
        missing = [n for n in notebooks if n not in self._entries]
        if missing:
            where = f" in {self.folder}" if self.folder else ""
            raise ConfigError(
                f"`all` needs the notebooks {', '.join(missing)}, missing{where}; add them or "
                "name the notebooks to run"
            )
        return notebooks

    def _valid(self) -> str:
        aliases = [a for a, n in subsystem_notebooks().items() if n in self._entries]
        return ", ".join([*self.names(), *aliases, ALL]) if self._entries else "(none registered)"


def catalog_from(folder: Path, extra: Iterable[tuple[str, Path]] = ()) -> NotebookCatalog:
    """A catalog of every ``*.ipynb`` in ``folder`` (by file stem), plus ``extra`` ones."""
    catalog = NotebookCatalog(folder)
    for path in sorted(folder.glob("*.ipynb")):
        catalog.register(path.stem, path)
    for name, path in extra:
        catalog.register(name, path)
    return catalog


def default_catalog() -> NotebookCatalog:
    """The notebooks folder (the shipped one, or its replacement), plus every plugin
    subsystem's own notebook."""
    extra = [(s.notebook, Path(s.notebook_path)) for s in subsystems if s.notebook_path]
    return catalog_from(resources.NOTEBOOKS.path(), extra)
