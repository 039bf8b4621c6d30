"""Plugins: modules that register subsystems and source kinds of their own.

A plugin is any importable module that calls ``tenancy_diag.subsystems.register`` or
``tenancy_diag.sources.registry.register`` at import. It is found either as an entry point in
the group ``tenancy_diag.plugins`` (an installed package) or by name in
``TENANCY_DIAG_PLUGINS`` (comma-separated). The variable is inherited by the kernels papermill
starts and by the service's runners, so a plugin is known in every process of a run.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from tenancy_diag.errors import ConfigError
from tenancy_diag.settings import ENV_PLUGINS, plugin_modules

GROUP = "tenancy_diag.plugins"
_loaded: set[str] = set()


def load() -> tuple[str, ...]:
    """Import every plugin once per process; returns the names imported so far."""
    for name in plugin_modules():
        if name in _loaded:
            continue
        _loaded.add(name)
        try:
            importlib.import_module(name)
        except ImportError as e:
            _loaded.discard(name)
            raise ConfigError(
                f"plugin module {name!r} (from {ENV_PLUGINS}) cannot be imported ({e}); "
                "check the name and PYTHONPATH"
            ) from e
    for point in entry_points(group=GROUP):
        if point.name in _loaded:
            continue
        _loaded.add(point.name)
        point.load()
    return tuple(sorted(_loaded))
