"""Reading and writing .ipynb files (nbformat ships no type hints, so they are confined here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

# On first use: nbformat pulls jsonschema, a cost `--help` should not pay.
from tenancy_diag.importing import import_nbformat

#: Output fields holding text a person reads; images and widget state are left alone.
_TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex")


def read_notebook(path: Path) -> Any:
    return import_nbformat().read(path, as_version=4)


def write_notebook(nb: Any, path: Path) -> None:
    import_nbformat().write(nb, path)


def strip_outputs(nb: Any) -> Any:
    """``nb`` without outputs, so cells a failed run never reached show nothing stale."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def redact_outputs(nb: Any, redact: Callable[[str], str]) -> int:
    """Pass every text output of ``nb`` through ``redact``; returns how many changed.

    A safety net under the library's own redaction: a notebook that prints a raw log line or
    a traceback quoting a URL password must not carry it into the bundle.
    """
    changed = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            for holder, key in _text_fields(output):
                before = holder[key]
                after = [redact(t) for t in before] if isinstance(before, list) else redact(before)
                if after != before:
                    holder[key] = after
                    changed += 1
    return changed


def _text_fields(output: Any) -> list[tuple[Any, Any]]:
    fields: list[tuple[Any, Any]] = []
    if output.get("output_type") == "stream":
        fields.append((output, "text"))
    if output.get("output_type") == "error":
        fields.append((output, "evalue"))
        fields.extend((output["traceback"], i) for i in range(len(output.get("traceback", []))))
    data = output.get("data", {})
    fields.extend((data, mime) for mime in _TEXT_MIMES if mime in data)
    return fields
