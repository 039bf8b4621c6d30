"""tenancy-diag: incident diagnostics for the Tenancy module.

The public surface, for notebooks and other programs; everything else is internal. Heavy
modules (papermill, boto3, kubernetes) load only when the names that need them are used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "TenancyDiagError": "tenancy_diag.errors",
    "ConfigError": "tenancy_diag.errors",
    "SignalsError": "tenancy_diag.errors",
    "ParameterError": "tenancy_diag.errors",
    "SourceError": "tenancy_diag.errors",
    "SourceUnavailable": "tenancy_diag.errors",
    "SourceRejected": "tenancy_diag.errors",
    "SourceConfigError": "tenancy_diag.errors",
    "ReplayMiss": "tenancy_diag.errors",
    "SnapshotError": "tenancy_diag.errors",
    "SandboxError": "tenancy_diag.errors",
    "Scope": "tenancy_diag.signals",
    "load_signals": "tenancy_diag.signals",
    "Redactor": "tenancy_diag.redacting",
    "Metrics": "tenancy_diag.querying",
    "Findings": "tenancy_diag.analysis.findings",
    "PatternMatch": "tenancy_diag.analysis.findings",
    "SloRow": "tenancy_diag.analysis.findings",
    "connect": "tenancy_diag.diagnosing",
    "Endpoints": "tenancy_diag.diagnosing",
    "DIAGNOSES": "tenancy_diag.diagnosing",
    "record": "tenancy_diag.sources.recording",
    "replay": "tenancy_diag.sources.recording",
    "SnapshotWriter": "tenancy_diag.sources.recording",
    "verify_snapshot": "tenancy_diag.sources.recording",
}
_ALIASES = {"load_signals": "load"}

__all__ = [
    "DIAGNOSES",
    "ConfigError",
    "Endpoints",
    "Findings",
    "Metrics",
    "ParameterError",
    "PatternMatch",
    "Redactor",
    "ReplayMiss",
    "SandboxError",
    "Scope",
    "SignalsError",
    "SloRow",
    "SnapshotError",
    "SnapshotWriter",
    "SourceConfigError",
    "SourceError",
    "SourceRejected",
    "SourceUnavailable",
    "TenancyDiagError",
    "__version__",
    "connect",
    "load_signals",
    "record",
    "replay",
    "verify_snapshot",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tenancy_diag' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), _ALIASES.get(name, name))
    globals()[name] = value
    return value
