"""The snapshot file format: how recorded source calls are keyed, laid out, sealed and checked.

::

    <folder>/index.json                          schema SNAPSHOT_SCHEMA
    <folder>/<source>/<method>-<key12>.json      schema CALL_SCHEMA

(both ids, and the index's name, are :mod:`tenancy_diag.evidence`'s).

A call's key is the sha256 of the canonical JSON of (source, method, request): every source
method takes one frozen request dataclass (see :mod:`tenancy_diag.sources.base`), so the
request alone identifies the answer and nothing here knows any particular source.

Three checksums guard a recording: the index holds each call file's sha256, each call file
holds the sha256 of its response (or error), and each file's name holds its call's key. They
let :func:`verify_snapshot` tell a tampered or half-written snapshot from a good one. Writing
and replaying live in :mod:`tenancy_diag.sources.recording`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path, PurePath
from typing import Any, Literal, cast

from tenancy_diag.errors import SnapshotError, shorten
from tenancy_diag.evidence import SNAPSHOT_CALL_SCHEMA as CALL_SCHEMA
from tenancy_diag.evidence import SNAPSHOT_INDEX_FILE as INDEX_FILE
from tenancy_diag.evidence import SNAPSHOT_SCHEMA, check_schema
from tenancy_diag.sources.base import JSON

__all__ = [
    "CALL_SCHEMA",
    "INDEX_FILE",
    "SNAPSHOT_SCHEMA",
    "Outcome",
    "call_file",
    "call_file_bytes",
    "call_key",
    "canonical",
    "check_source_name",
    "index_file_bytes",
    "load_call",
    "read_index",
    "request_json",
    "sha256",
    "verify_snapshot",
]

Outcome = Literal["response", "error"]
_KEY_CHARS = 12
_SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Index entries name files inside the folder only; anything else (absolute, "..") is refused.
_CALL_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z_][A-Za-z0-9_]*-[0-9a-f]{12}\.json")


# --- canonical JSON and keys ------------------------------------------------------------------


def request_json(request: object) -> dict[str, JSON]:
    """The request dataclass as JSON: datetimes as ISO-8601 UTC, tuples as lists."""
    if not is_dataclass(request) or isinstance(request, type):
        raise SnapshotError(
            f"cannot record request {shorten(repr(request), 120)}; a source method takes one "
            "frozen request dataclass (see tenancy_diag.sources.base)"
        )
    return {f.name: _to_json(getattr(request, f.name), f.name) for f in fields(request)}


def _to_json(value: object, where: str) -> JSON:  # noqa: PLR0911 - one return per JSON shape
    if isinstance(value, Enum):
        return _to_json(value.value, where)
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, datetime):
        return _utc_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, PurePath):
        return value.as_posix()
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _to_json(getattr(value, f.name), f"{where}.{f.name}") for f in fields(value)
        }
    if isinstance(value, Mapping):
        return {str(k): _to_json(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, set | frozenset):
        # Sets have no order of their own; sorting makes equal sets key the same.
        return sorted((_to_json(v, where) for v in value), key=canonical)
    raise SnapshotError(
        f"request field {where} holds a {type(value).__name__}, which a snapshot cannot key on; "
        "use str, numbers, datetimes, tuples or nested dataclasses"
    )


def _utc_iso(moment: datetime) -> str:
    # The request types document UTC, so a naive value is taken at its word: what matters is
    # that one instant always gives one key, whatever time zone the caller wrote it in.
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def canonical(data: JSON) -> str:
    """The one serialization keys and checksums are computed over."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256(text: str | bytes) -> str:
    """Hex sha256 of ``text`` (UTF-8 when a str)."""
    return hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()


def call_key(source: str, method: str, request: Mapping[str, JSON]) -> str:
    """sha256 of the canonical JSON of (source, method, request as JSON)."""
    return sha256(canonical({"source": source, "method": method, "request": dict(request)}))


def call_file(source: str, method: str, key: str) -> str:
    """The call file's path relative to the snapshot folder."""
    return f"{source}/{method}-{key[:_KEY_CHARS]}.json"


def check_source_name(name: object) -> str:
    """``name`` if it can name a folder of the snapshot, else SnapshotError."""
    if not isinstance(name, str) or not _SOURCE_NAME.fullmatch(name):
        raise SnapshotError(
            f"source name {name!r} cannot name a snapshot folder; use letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return name


# --- encoding ---------------------------------------------------------------------------------


def call_file_bytes(
    source: str, method: str, request: Mapping[str, JSON], outcome: Outcome, value: JSON
) -> bytes:
    """A call file whose ``outcome`` is ``value``, sealed by the sha256 of ``value``."""
    envelope = {
        "schema": CALL_SCHEMA,
        "source": source,
        "method": method,
        "request": dict(request),
        outcome: value,
        f"{outcome}_sha256": sha256(canonical(value)),
        "recorded_at": _now_iso(),
    }
    return (json.dumps(envelope, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def index_file_bytes(calls: Iterable[Mapping[str, str]]) -> bytes:
    """``index.json`` listing ``calls`` (each with file, source, method and sha256)."""
    index = {"schema": SNAPSHOT_SCHEMA, "written_at": _now_iso(), "calls": [*calls]}
    return (json.dumps(index, indent=2) + "\n").encode()


def _now_iso() -> str:
    return _utc_iso(datetime.now(UTC))


# --- reading and checking ---------------------------------------------------------------------


def read_index(folder: Path) -> dict[str, str] | None:
    """``{file: sha256}`` from ``index.json``, or None when the recording has no index."""
    path = folder / INDEX_FILE
    if not path.exists():
        return None
    index = _parse(path, _read(path))
    problem = check_schema(index, SNAPSHOT_SCHEMA, path)
    if problem:
        raise SnapshotError(
            f"snapshot index {problem}; re-record it with this version of tenancy-diag"
        )
    listed: dict[str, str] = {}
    for entry in index.get("calls", []):
        file = entry.get("file") if isinstance(entry, dict) else None
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(file, str) or not _CALL_FILE.fullmatch(file) or not isinstance(sha, str):
            raise SnapshotError(
                f"snapshot index {path} has a malformed entry {shorten(entry, 120)}; re-record"
            )
        listed[file] = sha
    return listed


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SnapshotError(f"cannot read snapshot file {path} ({e.strerror}); re-record") from e


def _parse(path: Path, data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as e:
        raise SnapshotError(f"snapshot file {path} is not valid JSON ({e}); re-record") from e


def load_call(folder: Path, file: str, index: Mapping[str, str] | None) -> dict[str, Any]:
    """A call file's envelope, after every checksum that applies to it has passed."""
    path = folder / file
    data = _read(path)
    if index is not None:
        if file not in index:
            raise SnapshotError(
                f"snapshot file {path} is not listed in {folder / INDEX_FILE}, so it was added "
                "after recording; delete it or re-record"
            )
        if sha256(data) != index[file]:
            raise SnapshotError(
                f"snapshot file {path} does not match its sha256 in {folder / INDEX_FILE}, so it "
                "changed after recording; re-record"
            )
    envelope = _parse(path, data)
    _check_envelope(path, envelope)
    return cast(dict[str, Any], envelope)


def _check_envelope(path: Path, envelope: object) -> None:
    problem = check_schema(envelope, CALL_SCHEMA, path)
    if problem or not isinstance(envelope, dict):  # isinstance again only to narrow its type
        raise SnapshotError(
            f"snapshot file {problem}; re-record it with this version of tenancy-diag"
        )
    if not (
        isinstance(envelope.get("source"), str)
        and isinstance(envelope.get("method"), str)
        and isinstance(envelope.get("request"), dict)
    ):
        raise SnapshotError(f"snapshot file {path} lacks its source, method or request; re-record")
    field = "response" if "response" in envelope else "error"
    if field not in envelope or sha256(canonical(envelope[field])) != envelope.get(
        f"{field}_sha256"
    ):
        raise SnapshotError(
            f"snapshot file {path} fails its {field}_sha256 check, so its {field} changed after "
            "recording; re-record"
        )


def _check_file_name(folder: Path, file: str, envelope: Mapping[str, Any]) -> None:
    source, method = envelope["source"], envelope["method"]
    expected = call_file(source, method, call_key(source, method, envelope["request"]))
    if file != expected:
        raise SnapshotError(
            f"snapshot file {folder / file} holds the call that belongs in {expected}, so it was "
            "renamed or edited after recording; re-record"
        )


def verify_snapshot(folder: Path) -> list[str]:
    """Every problem found in the snapshot at ``folder`` (one sentence each); empty when good."""
    if not folder.is_dir():
        return [f"snapshot folder {folder} does not exist; record one first"]
    try:
        index = read_index(folder)
    except SnapshotError as e:
        return [str(e)]
    problems = []
    if index is None:
        problems.append(
            f"snapshot folder {folder} has no {INDEX_FILE}, so the recording was not closed; "
            "close the SnapshotWriter (or use it as a context manager) and re-record"
        )
    on_disk = {p.relative_to(folder).as_posix() for p in folder.glob("*/*.json")}
    problems.extend(
        f"snapshot file {folder / file} is listed in {INDEX_FILE} but missing; re-record"
        for file in sorted(set(index or {}) - on_disk)
    )
    for file in sorted(on_disk):
        try:
            _check_file_name(folder, file, load_call(folder, file, index))
        except SnapshotError as e:
            problems.append(str(e))
    return problems
