"""Names that become paths (incident ids, notebook names, run ids), and keeping paths inside OUT.

An incident id arrives from a pager, a chat message or a script; whatever it holds must not be
able to write outside the evidence folder, so names are checked twice: by shape here, and by
where they land once resolved (symlinks included).
"""

from __future__ import annotations

import re
from pathlib import Path

from tenancy_diag.errors import ConfigError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_name(value: object, what: str) -> str:
    """``value`` when it can safely name one folder or file, else ConfigError naming it."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise ConfigError(
            f"{what} {value!r} cannot name a folder; use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit and without '..'"
        )
    return value


def inside(root: Path, path: Path, what: str) -> Path:
    """``path`` resolved, after checking it stays under ``root`` resolved, else ConfigError."""
    base = root.resolve()
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise ConfigError(
            f"{what} {path} resolves to {resolved}, outside {base}; choose a name without "
            "'..' or symlinks leading out of the output folder"
        )
    return resolved
