"""The runbook's Diagnostic Workflow as calls: one class per subsystem, one method per step.

Which class diagnoses a subsystem is its descriptor's business (``tenancy_diag.subsystems``):
:func:`diagnosis_class` imports it by name, so a plugin's subsystem needs no entry here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import import_module

from tenancy_diag.diagnosing.context import Context, Endpoints, connect
from tenancy_diag.diagnosing.judging import Basis, conclude
from tenancy_diag.diagnosing.steps import Diagnosis, StepResult
from tenancy_diag.diagnosing.verification import RecoveryVerification
from tenancy_diag.errors import ConfigError
from tenancy_diag.subsystems import registry

#: Not a subsystem: the runbook's Verification After Recovery, across all of them.
RECOVERY = "recovery"


def diagnosis_class(subsystem: str) -> type[Diagnosis]:
    """The diagnosis of ``subsystem`` (or ``recovery``), imported from its descriptor."""
    if subsystem == RECOVERY:
        return RecoveryVerification
    target = registry.get(subsystem).diagnosis
    module, _, name = target.partition(":")
    try:
        found = getattr(import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(
            f"subsystem {subsystem!r} names diagnosis {target!r}, which cannot be imported "
            f"({e}); fix its descriptor"
        ) from e
    if not (isinstance(found, type) and issubclass(found, Diagnosis)):
        raise ConfigError(f"{target} is not a Diagnosis; fix the descriptor of {subsystem!r}")
    return found


class _Diagnoses(Mapping[str, type[Diagnosis]]):
    """Subsystem -> diagnosis class, read from the descriptors each time (plugins included)."""

    def __getitem__(self, name: str) -> type[Diagnosis]:
        if name != RECOVERY and name not in registry:
            raise KeyError(name)
        return diagnosis_class(name)

    def __iter__(self) -> Iterator[str]:
        return iter((*registry.names(), RECOVERY))

    def __len__(self) -> int:
        return len(registry.names()) + 1


DIAGNOSES: Mapping[str, type[Diagnosis]] = _Diagnoses()

__all__ = [
    "DIAGNOSES",
    "RECOVERY",
    "Basis",
    "Context",
    "Diagnosis",
    "Endpoints",
    "RecoveryVerification",
    "StepResult",
    "conclude",
    "connect",
    "diagnosis_class",
]
