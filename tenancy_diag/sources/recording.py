"""Recording source calls into a snapshot folder, and answering them again offline.

A snapshot is what makes evidence reproducible: a diagnosis run against live sources through
:func:`record` can be re-run later, anywhere, through :func:`replay`, and sees the same answers
(errors included, so an unreachable source stays unreachable). The files themselves, their
keys and checksums are defined in :mod:`tenancy_diag.sources.snapshots`; its public names are
re-exported here.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import json
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, is_dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

from tenancy_diag.errors import (
    ConfigError,
    ReplayMiss,
    SnapshotError,
    SourceError,
    TenancyDiagError,
    shorten,
)
from tenancy_diag.redacting import Redactor, default_redactor
from tenancy_diag.sources.base import JSON
from tenancy_diag.sources.snapshots import (
    CALL_SCHEMA,
    INDEX_FILE,
    SNAPSHOT_SCHEMA,
    Outcome,
    call_file,
    call_file_bytes,
    call_key,
    canonical,
    check_source_name,
    index_file_bytes,
    load_call,
    read_index,
    request_json,
    sha256,
    verify_snapshot,
)

__all__ = [
    "CALL_SCHEMA",
    "INDEX_FILE",
    "SNAPSHOT_SCHEMA",
    "Recorder",
    "Replayer",
    "SnapshotWriter",
    "call_key",
    "canonical",
    "record",
    "replay",
    "request_json",
    "verify_snapshot",
]

T = TypeVar("T")


# --- writing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stored:
    source: str
    method: str
    request: str  # canonical, to tell a key collision from a repeated call
    sha256: str  # of the call file's bytes
    failed: bool


class SnapshotWriter:
    """Writes one file per distinct call under ``folder``, and ``index.json`` on :meth:`close`.

    Thread-safe, since sources are called from thread pools. Repeated identical calls are
    stored once (the first answer), except that a success replaces a recorded failure, so a
    retried call replays as the answer the run finally got.
    """

    def __init__(self, folder: Path, redactor: Redactor | None = None) -> None:
        self.folder = folder
        self._redactor = default_redactor() if redactor is None else redactor
        self._lock = threading.Lock()
        self._stored: dict[str, _Stored] = {}
        self._closed = False
        _refuse_existing_snapshot(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SnapshotError(
                f"cannot create snapshot folder {folder} ({e.strerror}); choose a writable path"
            ) from e

    def write_response(self, source: str, method: str, request: object, response: JSON) -> None:
        """Record a call that answered ``response`` (JSON-able data)."""
        try:
            normalized = json.loads(canonical(response))
        except (TypeError, ValueError) as e:
            raise SnapshotError(
                f"{source}.{method} answered data that is not JSON ({e}); a source must return "
                "plain str, numbers, lists and dicts"
            ) from e
        self._write(source, method, request, "response", normalized)

    def write_error(self, source: str, method: str, request: object, error: BaseException) -> None:
        """Record a call that failed with ``error`` so a replay raises it again."""
        # Error messages quote servers and URLs; better be safe before they land on disk.
        recorded = {
            "type": type(error).__qualname__,
            "module": type(error).__module__,
            "message": self._redactor.redact(str(error)),
        }
        if isinstance(error, SourceError):
            recorded["source"] = error.source
        self._write(source, method, request, "error", recorded)

    def _write(
        self, source: str, method: str, request: object, outcome: Outcome, value: JSON
    ) -> None:
        check_source_name(source)
        if not method.isidentifier():
            raise SnapshotError(f"method name {method!r} is not an identifier; cannot record it")
        request_data = request_json(request)
        data = call_file_bytes(source, method, request_data, outcome, value)
        stored = _Stored(source, method, canonical(request_data), sha256(data), outcome == "error")
        file = call_file(source, method, call_key(source, method, request_data))
        with self._lock:
            if self._closed:
                raise SnapshotError(
                    f"snapshot writer for {self.folder} is closed; record into a new writer"
                )
            if not self._should_store(file, stored):
                return
            _write_atomically(self.folder / file, data)
            self._stored[file] = stored

    def _should_store(self, file: str, new: _Stored) -> bool:
        old = self._stored.get(file)
        if old is None:
            return True
        if old.request != new.request:
            raise SnapshotError(
                f"two different {new.source}.{new.method} requests share the key prefix of "
                f"{self.folder / file}; record the second into another folder"
            )
        return old.failed and not new.failed

    def close(self) -> Path:
        """Write ``index.json`` listing every call file and its sha256; returns its path."""
        path = self.folder / INDEX_FILE
        with self._lock:
            if not self._closed:
                calls = [
                    {"file": file, "source": s.source, "method": s.method, "sha256": s.sha256}
                    for file, s in sorted(self._stored.items())
                ]
                _write_atomically(path, index_file_bytes(calls))
                self._closed = True
        return path

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Index even a run that failed half-way: what it did record is still evidence.
        self.close()


def _refuse_existing_snapshot(folder: Path) -> None:
    # Mixing two recordings in one folder would leave the index of one blind to the other.
    if (folder / INDEX_FILE).exists() or any(folder.glob("*/*.json")):
        raise SnapshotError(
            f"snapshot folder {folder} already holds a recording; record into a new folder or "
            "delete this one"
        )


def _write_atomically(path: Path, data: bytes) -> None:
    # Readers (a replay, a verify) see the old file or the new one, never half of one.
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as handle:
            tmp = Path(handle.name)
            handle.write(data)
        tmp.replace(path)
    except OSError as e:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise SnapshotError(
            f"cannot write snapshot file {path} ({e.strerror}); check the folder is writable"
        ) from e


# --- recording --------------------------------------------------------------------------------


class Recorder:
    """Wraps any source: same ``name``; every public method is forwarded and its call recorded.

    A call failing with an error of the tenancy_diag tree is recorded too, then re-raised.
    Calls without arguments (``close()``) are forwarded unrecorded: they answer no request.
    """

    def __init__(self, inner: object, writer: SnapshotWriter) -> None:
        self.name = check_source_name(getattr(inner, "name", None))
        self._inner = inner
        self._writer = writer
        # Bound per instance rather than found by __getattr__, so isinstance() against the
        # runtime-checkable protocols sees the methods (it looks them up statically).
        for method in _public_methods(inner):
            setattr(self, method, self._recording(method, getattr(inner, method)))

    def _recording(self, method: str, call: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(call)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            request = _the_request(self.name, method, args, kwargs)
            if request is None:
                return call(*args, **kwargs)
            try:
                response = call(*args, **kwargs)
            except TenancyDiagError as e:
                self._writer.write_error(self.name, method, request, e)
                raise
            self._writer.write_response(self.name, method, request, response)
            return response

        return recorded

    def __repr__(self) -> str:
        return f"Recorder({self._inner!r})"


def _public_methods(source: object) -> list[str]:
    found = []
    for attr in dir(source):
        if attr.startswith("_") or attr == "name":
            continue
        # Looked up statically so that properties are not run just to be inspected.
        value = inspect.getattr_static(source, attr, None)
        if callable(value) and not isinstance(value, type):
            found.append(attr)
    return found


def _the_request(source: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    given = [*args, *kwargs.values()]
    if not given:
        return None
    if len(given) == 1 and is_dataclass(given[0]) and not isinstance(given[0], type):
        return given[0]
    raise SnapshotError(
        f"cannot record {source}.{method} called with {len(given)} argument(s); a source method "
        "takes exactly one request dataclass"
    )


def record(source: T, writer: SnapshotWriter) -> T:
    """``source`` wrapped so every call is recorded into ``writer``, typed as ``source`` is."""
    return cast(T, Recorder(source, writer))


# --- replaying --------------------------------------------------------------------------------


class Replayer:
    """Answers a source's calls from a snapshot folder, with no network.

    Has the recorded source's ``name`` and one method per recorded method (plus ``methods``),
    each taking the same request dataclass as the live source.
    """

    def __init__(self, source_name: str, folder: Path, methods: Iterable[str] = ()) -> None:
        self.name = check_source_name(source_name)
        if not folder.is_dir():
            raise SnapshotError(
                f"replay snapshot {folder} does not exist; record one first or fix the path"
            )
        self._folder = folder
        self._index = read_index(folder)
        recorded = {p.name.rsplit("-", 1)[0] for p in (folder / source_name).glob("*-*.json")}
        for method in sorted({*recorded, *methods}):
            if method.isidentifier() and not method.startswith("_"):
                setattr(self, method, self._answering(method))

    def _answering(self, method: str) -> Callable[[Any], Any]:
        def answer(request: Any) -> Any:
            return self._answer(method, request)

        answer.__name__ = answer.__qualname__ = method
        return answer

    def _answer(self, method: str, request: object) -> Any:
        request_data = request_json(request)
        file = call_file(self.name, method, call_key(self.name, method, request_data))
        if not (self._folder / file).exists():
            raise ReplayMiss(self.name, self._miss_message(method, request_data))
        envelope = load_call(self._folder, file, self._index)
        if canonical(envelope.get("request")) != canonical(request_data):
            raise ReplayMiss(self.name, self._miss_message(method, request_data))
        if "error" in envelope:
            raise _rebuild_error(envelope["error"], self._folder / file)
        return envelope["response"]

    def _miss_message(self, method: str, request_data: Mapping[str, JSON]) -> str:
        wanted = f"{self.name}.{method}({_render(request_data)})"
        nearest = _nearest(self._folder / self.name, method, request_data)
        hint = f"; nearest recorded is {self.name}.{method}({_render(nearest)})" if nearest else ""
        return (
            f"replay snapshot {self._folder} has no answer for {wanted}{hint}; "
            "re-record with a live source"
        )

    def __repr__(self) -> str:
        return f"Replayer({self.name!r}, {str(self._folder)!r})"


def _render(request_data: Mapping[str, JSON]) -> str:
    return shorten(", ".join(f"{k}={v!r}" for k, v in request_data.items()), 200)


def _nearest(
    source_folder: Path, method: str, wanted: Mapping[str, JSON]
) -> Mapping[str, JSON] | None:
    """The recorded request of ``method`` sharing most fields with ``wanted``."""
    best: tuple[int, float] | None = None
    nearest = None
    wanted_text = canonical(dict(wanted))
    for path in source_folder.glob(f"{method}-*.json"):
        try:
            recorded = json.loads(path.read_bytes()).get("request")
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(recorded, dict):
            continue
        same = sum(1 for k, v in wanted.items() if recorded.get(k) == v)
        ratio = difflib.SequenceMatcher(None, wanted_text, canonical(recorded)).ratio()
        if best is None or (same, ratio) > best:
            best, nearest = (same, ratio), recorded
    if nearest is None:
        return None
    # Files store keys sorted; show them in the request's own field order, as the miss is.
    return {k: nearest[k] for k in wanted if k in nearest} | nearest


def _rebuild_error(recorded: Mapping[str, Any], path: Path) -> TenancyDiagError:
    cls = _error_class(recorded.get("module"), recorded.get("type"), path)
    message = str(recorded.get("message", ""))
    source = recorded.get("source")
    try:
        return cls(str(source), message) if issubclass(cls, SourceError) else cls(message)
    except TypeError:
        # A subclass with its own constructor: build it bare, as the original reads.
        error = cls.__new__(cls)
        Exception.__init__(error, message)
        if source is not None:
            error.source = source  # type: ignore[attr-defined]
        return error


def _error_class(module: object, qualname: object, path: Path) -> type[TenancyDiagError]:
    unknown = SnapshotError(
        f"snapshot file {path} records error type {module}.{qualname}, which is not a "
        "tenancy_diag error; re-record with this version of tenancy-diag"
    )
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise unknown
    # Only the package's own modules are imported, whatever a snapshot file claims.
    if module != "tenancy_diag" and not module.startswith("tenancy_diag."):
        raise unknown
    try:
        found: object = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as e:
        raise unknown from e
    if not isinstance(found, type) or not issubclass(found, TenancyDiagError):
        raise unknown
    return found


def _protocol_methods(protocol_type: object) -> list[str]:
    if not isinstance(protocol_type, type):
        raise ConfigError(
            f"replay needs a source protocol class such as MetricSource, got {protocol_type!r}; "
            "pass one from tenancy_diag.sources.base"
        )
    methods: set[str] = set()
    for klass in protocol_type.__mro__:
        if klass.__module__ in {"typing", "builtins"}:
            continue
        methods.update(n for n, v in vars(klass).items() if not n.startswith("_") and callable(v))
    return sorted(methods)


def replay(source_name: str, folder: Path, protocol_type: Callable[..., T]) -> T:
    """A :class:`Replayer` for ``source_name``, typed as ``protocol_type`` (e.g. MetricSource).

    ``protocol_type`` is typed as a callable only because mypy refuses protocol classes where
    ``type[T]`` is expected; pass the Protocol class itself.
    """
    return cast(T, Replayer(source_name, folder, _protocol_methods(protocol_type)))
