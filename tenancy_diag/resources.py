"""What this installation holds: its notebooks, its parameters, and which extras it has.

Where the notebooks and the parameters (``signals.yaml``, ``runbook.yaml``, ``alerts/``) are;
the first that is given wins:

1. ``--notebooks DIR`` / ``--parameters DIR`` on the command line;
2. ``TENANCY_DIAG_NOTEBOOKS`` / ``TENANCY_DIAG_PARAMETERS``;
3. the shipped folders.

A flag takes effect by exporting its variable (:func:`apply_flags`): that is how it beats an
inherited value, and how it reaches the kernels papermill starts, which read the parameters too.

"Shipped" is ``tenancy_diag/_shipped/`` in an installed wheel (``setup.py`` maps the repository's
top-level ``notebooks/`` and ``parameters/`` there at build time, so the repository holds the one
copy); in a checkout or an editable install it is those top-level folders themselves, so an edit
shows at once. A replacement folder is checked exactly as the shipped one is.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tenancy_diag import settings
from tenancy_diag.errors import ConfigError

PACKAGE = Path(__file__).resolve().parent
_BUILT = PACKAGE / "_shipped"
_CHECKOUT = PACKAGE.parent

SIGNALS = "signals.yaml"
RUNBOOK = "runbook.yaml"
ALERT_RULES = "alerts/tenancy.rules.yml"


@dataclass(frozen=True)
class Folder:
    """A folder of files the diagnostics read, which an operator may replace with their own."""

    #: Its name in the repository and in the package; the flag is ``--<name>``.
    name: str
    #: The environment variable naming a replacement.
    variable: str
    #: Files (relative paths) any copy must hold, the shipped one included.
    required: tuple[str, ...]
    help: str

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def dest(self) -> str:
        # Not the name itself: `run` already has a positional called "notebooks".
        return f"{self.name}_dir"

    def shipped(self) -> Path:
        """The folder this installation ships (unchecked)."""
        built = _BUILT / self.name
        # Only our own checkout: a stray site-packages/notebooks/ from another package is not ours.
        if built.is_dir() or not (_CHECKOUT / "pyproject.toml").is_file():
            return built
        return _CHECKOUT / self.name

    def override(self, env: Mapping[str, str] | None = None) -> Path | None:
        """The replacement folder named by the flag or the variable; None to use the shipped."""
        return settings.folder_override(self.variable, env)

    def path(self, env: Mapping[str, str] | None = None) -> Path:
        """The folder to read, checked: it exists and holds every required file."""
        folder, overridden = self._chosen(env)
        if not folder.is_dir():
            raise ConfigError(self._missing(folder, "", overridden=overridden))
        for relative in self.required:
            self._check(folder, relative, overridden=overridden)
        return folder

    def file(self, relative: str, env: Mapping[str, str] | None = None) -> Path:
        """``relative`` in the folder to read, checked."""
        folder = self.path(env)
        return self._check(folder, relative, overridden=self.override(env) is not None)

    def override_file(self, relative: str, env: Mapping[str, str] | None = None) -> Path | None:
        """``relative`` in the replacement folder, checked; None when the shipped one is used."""
        return self.file(relative, env) if self.override(env) is not None else None

    def _chosen(self, env: Mapping[str, str] | None) -> tuple[Path, bool]:
        override = self.override(env)
        return (override, True) if override is not None else (self.shipped(), False)

    def _check(self, folder: Path, relative: str, *, overridden: bool) -> Path:
        if not (folder / relative).is_file():
            raise ConfigError(self._missing(folder, relative, overridden=overridden))
        return folder / relative

    def _missing(self, folder: Path, relative: str, *, overridden: bool) -> str:
        what = f"{self.name} folder {folder}"
        problem = f"{what} has no {relative}" if relative else f"{what} does not exist"
        if overridden:
            return (
                f"{problem} (from {self.flag} or ${self.variable}); point it at a copy of "
                f"{self.shipped()} with your changes"
            )
        return f"{problem}; reinstall tenancy-diag or pass {self.flag} DIR"


NOTEBOOKS = Folder(
    "notebooks", settings.ENV_NOTEBOOKS, (), "folder of the notebooks to run (*.ipynb)"
)
PARAMETERS = Folder(
    "parameters",
    settings.ENV_PARAMETERS,
    (SIGNALS, RUNBOOK, ALERT_RULES),
    f"folder holding {SIGNALS}, {RUNBOOK} and {ALERT_RULES}",
)
FOLDERS = (NOTEBOOKS, PARAMETERS)


def add_flags(parser: argparse.ArgumentParser, folders: tuple[Folder, ...] = FOLDERS) -> None:
    """``--notebooks DIR`` and ``--parameters DIR`` on a command that reads them."""
    for folder in folders:
        parser.add_argument(
            folder.flag,
            dest=folder.dest,
            type=Path,
            default=None,
            metavar="DIR",
            help=f"{folder.help}; default: ${folder.variable}, else the shipped one",
        )


def apply_flags(args: argparse.Namespace) -> None:
    """Export the folders the flags name, then check every replacement in effect: a wrong
    folder is refused before anything starts, not in the fifth kernel."""
    for folder, chosen in _chosen_by(args).items():
        if chosen is None:
            continue
        if getattr(args, folder.dest, None) is not None:
            settings.export_folder_override(folder.variable, chosen)
        folder.path()


def runner_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> list[str]:
    """The flags handing the replacement folders in effect (flag, else variable) to a runner."""
    out = []
    for folder, chosen in _chosen_by(args, env).items():
        if chosen is not None:
            out += [folder.flag, str(chosen)]
    return out


def _chosen_by(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> dict[Folder, Path | None]:
    chosen = {}
    for folder in FOLDERS:
        given = getattr(args, folder.dest, None)
        chosen[folder] = given.expanduser().resolve() if given is not None else folder.override(env)
    return chosen


# -- extras ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Extra:
    """An optional part of the install: ``pip install 'tenancy-diag[<name>]'``."""

    name: str
    #: Top-level modules it brings; checked without importing them (moto alone takes seconds).
    modules: tuple[str, ...]

    def require(self, what: str) -> None:
        """Refuse with the command to run when ``what`` needs a module this install lacks."""
        for module in self.modules:
            if importlib.util.find_spec(module) is None:
                raise ConfigError(f"{what} needs {module}; pip install 'tenancy-diag[{self.name}]'")


LAB = Extra("lab", ("jupyterlab",))
#: moto's server runs as a subprocess, so flask (what [server] adds) is checked as well.
SANDBOX = Extra("sandbox", ("moto", "flask"))
