"""One registry of sink schemes: ``register(scheme, factory)``, ``create(spec, context)``.

A spec is what an operator writes in the service's config: ``local``, ``file:///srv/out``,
``s3://bucket/prefix``, ``https://tracker/hook`` (``#slack`` or ``#pagerduty`` picks the note's
shape). The module-level registry is only a default: ``create_sink`` accepts ``registry=``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from tenancy_diag.errors import ConfigError
from tenancy_diag.service.sinks.attachments import Sink
from tenancy_diag.service.sinks.local import LocalSink
from tenancy_diag.service.sinks.notes import NoteSink, where
from tenancy_diag.service.sinks.payloads import FORMATS
from tenancy_diag.service.sinks.s3 import S3Sink


@dataclass(frozen=True)
class SinkContext:
    """What a factory may need beyond the spec itself."""

    out: Path  # the output folder bundles are written under
    aws_endpoint_url: str | None = None  # an S3-compatible endpoint (moto, MinIO); None is AWS
    env: Mapping[str, str] | None = None  # where secrets are read; None is os.environ


Factory = Callable[[SplitResult, SinkContext], Sink]


class SinkRegistry:
    def __init__(self) -> None:
        self._factories: dict[str, Factory] = {}

    def register(self, scheme: str, factory: Factory) -> None:
        self._factories[scheme] = factory

    def schemes(self) -> tuple[str, ...]:
        return tuple(sorted(self._factories))

    def create(self, spec: str, context: SinkContext) -> Sink:
        parts = urlsplit(spec.strip())
        # A bare word ("local") parses as a path, not a scheme; anything longer is not echoed.
        scheme = parts.scheme or (parts.path if parts.path.isalnum() else "")
        try:
            factory = self._factories[scheme]
        except KeyError:
            # Only the scheme is echoed: the rest of a spec may hold a webhook's secret path.
            raise ConfigError(
                f"unknown evidence sink scheme {scheme!r}; valid schemes: "
                f"{', '.join(self.schemes())}"
            ) from None
        return factory(parts, context)


def _local(parts: SplitResult, context: SinkContext) -> Sink:
    return LocalSink(context.out)


def _file(parts: SplitResult, context: SinkContext) -> Sink:
    if parts.netloc not in ("", "localhost") or not parts.path:
        raise ConfigError(
            f"file sink {parts.geturl()!r} names no local folder; write file:///absolute/path"
        )
    return LocalSink(Path(unquote(parts.path)))


def _s3(parts: SplitResult, context: SinkContext) -> Sink:
    if not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"S3 sink {parts.geturl()!r} is not s3://bucket/prefix; fix the spec")
    return S3Sink(parts.netloc, parts.path.strip("/"), context.aws_endpoint_url)


def _note(parts: SplitResult, context: SinkContext) -> Sink:
    if parts.username or parts.password:
        raise ConfigError(
            f"note URL {where(parts.geturl())} carries credentials; remove them and set "
            "TENANCY_DIAG_NOTE_TOKEN instead"
        )
    if not parts.hostname:
        raise ConfigError(f"note URL {parts.scheme}://… names no host; fix the spec")
    shape = parts.fragment or "generic"
    if shape not in FORMATS:
        raise ConfigError(
            f"unknown note format #{shape} in {where(parts.geturl())}; valid formats: "
            f"{', '.join(FORMATS)}"
        )
    url = parts._replace(fragment="").geturl()
    return NoteSink(url, shape, env=context.env)


registry = SinkRegistry()
registry.register("local", _local)
registry.register("file", _file)
registry.register("s3", _s3)
registry.register("http", _note)
registry.register("https", _note)


def create_sink(
    spec: str,
    *,
    out: Path,
    aws_endpoint_url: str | None = None,
    env: Mapping[str, str] | None = None,
    registry: SinkRegistry = registry,
) -> Sink:
    """The sink a spec names; an unknown scheme is a ConfigError listing the valid ones."""
    return registry.create(spec, SinkContext(out, aws_endpoint_url, env))
