"""The runbook's judgement as data (parameters/runbook.yaml): patterns, actions, escalation."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tenancy_diag import resources
from tenancy_diag.errors import ConfigError

SCHEMA = "tenancy-diag/runbook/v1"
#: The shipped runbook mapping: what :func:`load` reads unless a folder replaces the parameters.
DEFAULT_PATH = resources.PARAMETERS.shipped() / resources.RUNBOOK


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubsystemText(_Strict):
    title: str
    section: str
    dashboard: str


class PatternText(_Strict):
    subsystem: str
    title: str
    causes: tuple[str, ...]
    actions: tuple[str, ...]
    remediation: str
    caused_by: tuple[str, ...] = ()


class Remediation(_Strict):
    title: str
    steps: tuple[str, ...]


class Automation(_Strict):
    retryable_codes: tuple[str, ...]
    max_burst_multiplier: float
    max_override_hours: float
    pod_ready_timeout_s: float


class Owners(_Strict):
    primary: str
    backup: str | None
    path: str


class Escalation(_Strict):
    sev1: Owners
    sev2: Owners
    sev3: Owners
    sev4: Owners
    must_include: tuple[str, ...]

    def for_severity(self, severity: str) -> Owners:
        owners: Owners = getattr(self, severity)
        return owners


class Runbook(_Strict):
    schema_: str = Field(alias="schema")
    runbook_url: str
    subsystems: dict[str, SubsystemText]
    patterns: dict[str, PatternText]
    remediations: dict[str, Remediation]
    automation: Automation
    severities: dict[str, str]
    escalation: Escalation


def default_path() -> Path:
    """The mapping :func:`load` reads: the replacement folder's (``--parameters``,
    ``TENANCY_DIAG_PARAMETERS``), else :data:`DEFAULT_PATH`."""
    return resources.PARAMETERS.override_file(resources.RUNBOOK) or DEFAULT_PATH


def load(path: Path | str | None = None) -> Runbook:
    file = Path(path) if path else default_path()
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
        book = Runbook.model_validate(raw)
    except OSError as e:
        raise ConfigError(
            f"cannot read runbook mapping {file} ({e.strerror}); check the path"
        ) from e
    except (yaml.YAMLError, ValidationError) as e:
        raise ConfigError(f"runbook mapping {file} is invalid: {str(e).splitlines()[0]}") from e
    if book.schema_ != SCHEMA:
        raise ConfigError(f"runbook mapping {file} has schema {book.schema_!r}; expected {SCHEMA}")
    for name, pattern in book.patterns.items():
        if pattern.remediation not in book.remediations:
            raise ConfigError(
                f"runbook pattern {name!r} names unknown remediation {pattern.remediation!r}"
            )
    return book


@lru_cache(maxsize=1)
def default() -> Runbook:
    return load()
