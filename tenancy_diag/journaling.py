"""Appending JSON lines that several writers share: the audit log, move journals.

Runs of several people (or a service and a person) may share one file, so each line is
written under an exclusive ``flock`` and fsync'd before the call returns: lines never
interleave, whatever their length, and a line that was reported written survives a crash.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tenancy_diag.errors import ConfigError
from tenancy_diag.evidence import AUDIT_FILE, AUDIT_SCHEMA

# The audit log's name and schema are the evidence module's; named here too for the callers
# that read and append its lines.
__all__ = ["AUDIT_FILE", "AUDIT_SCHEMA", "append_jsonl", "parse_jsonl", "read_jsonl"]


def append_jsonl(
    path: Path, record: Mapping[str, Any], what: str = "journal", fix: str = "check the path"
) -> Path:
    """Append ``record`` as one JSON line to ``path`` (created with its folder); returns it."""
    line = json.dumps(dict(record), ensure_ascii=False, default=str) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: a journal replaced by a symlink must not have lines appended elsewhere.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise ConfigError(
                    f"{what} {path} is a symlink; refusing to write through it, replace it "
                    "with a regular file"
                ) from e
            raise
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
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


def read_jsonl(path: Path, schema: str | None = None) -> list[dict[str, Any]]:
    """Every JSON object line of ``path`` (of ``schema`` when given); none when it is missing."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ConfigError(f"cannot read {path} ({e.strerror}); check the path") from e
    return parse_jsonl(text.splitlines(), schema)


def parse_jsonl(lines: Iterable[str], schema: str | None = None) -> list[dict[str, Any]]:
    """The JSON objects among ``lines`` (of ``schema`` when given); a line that is not one,
    such as a torn last line after a crash mid-write, is skipped."""
    records = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and (schema is None or value.get("schema") == schema):
            records.append(value)
    return records
