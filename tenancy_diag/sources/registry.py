"""One registry of data-source kinds: ``register(kind, factory)``, ``create(kind, settings)``.

The registry is filled at import with the built-in kinds; another package can register its
own (say, a Thanos metric source) without touching this one. The module-level registry is
only a default: anything that creates sources accepts ``registry=``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenancy_diag.errors import ConfigError

Factory = Callable[..., Any]


class SourceRegistry:
    def __init__(self) -> None:
        self._factories: dict[str, Factory] = {}

    def register(self, kind: str, factory: Factory) -> None:
        self._factories[kind] = factory

    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self._factories))

    def create(self, kind: str, *args: Any, **kwargs: Any) -> Any:
        try:
            factory = self._factories[kind]
        except KeyError:
            raise ConfigError(
                f"unknown source kind {kind!r}; valid kinds: {', '.join(self.kinds())}"
            ) from None
        return factory(*args, **kwargs)


def _prometheus(*args: Any, **kwargs: Any) -> Any:
    from tenancy_diag.sources.prometheus import PrometheusSource

    return PrometheusSource(*args, **kwargs)


def _kubernetes(*args: Any, **kwargs: Any) -> Any:
    from tenancy_diag.sources.kube_logs import KubeLogSource

    return KubeLogSource(*args, **kwargs)


def _sqs(*args: Any, **kwargs: Any) -> Any:
    from tenancy_diag.sources.sqs import SqsQueueSource

    return SqsQueueSource(*args, **kwargs)


def _admin_api(*args: Any, **kwargs: Any) -> Any:
    from tenancy_diag.sources.admin_api import AdminApiClient

    return AdminApiClient(*args, **kwargs)


# Imports are deferred so a notebook that needs only Prometheus never pays for boto3.
registry = SourceRegistry()
registry.register("prometheus", _prometheus)
registry.register("kubernetes", _kubernetes)
registry.register("sqs", _sqs)
registry.register("admin-api", _admin_api)
