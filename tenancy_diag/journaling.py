"""Appending JSON lines that several writers share: the audit log, move journals.

Runs of several people (or a service and a person) may share one file, so each line is
written under an exclusive ``flock`` and fsync'd before the call returns: lines never
interleave, whatever their length, and a line that was reported written survives a crash.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tenancy_diag.errors import ConfigError


def append_jsonl(
    path: Path, record: Mapping[str, Any], what: str = "journal", fix: str = "check the path"
) -> Path:
    """Append ``record`` as one JSON line to ``path`` (created with its folder); returns it."""
    line = json.dumps(dict(record), ensure_ascii=False, default=str) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    except OSError as e:
        raise ConfigError(f"cannot append to {what} {path} ({e.strerror}); {fix}") from e
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every JSON object line of ``path``; a torn last line (a crash mid-write) is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records
