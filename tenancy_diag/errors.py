"""The package's one exception tree.

    TenancyDiagError                 base: every error the public API raises
    ├── ConfigError                  a file, option or parameter is wrong; the user fixes input
    │   ├── SignalsError             parameters/signals.yaml is malformed (names the key)
    │   └── ParameterError           a notebook/CLI parameter is unknown or of the wrong type
    ├── SourceError                  a data source failed; ``source`` names it
    │   ├── SourceUnavailable        the server did not answer (refused, DNS, timeout)
    │   ├── SourceRejected           the server answered with an error (bad query, 4xx/5xx)
    │   ├── SourceConfigError        unsafe or impossible request (e.g. peeking a redriven DLQ)
    │   └── ReplayMiss               a replay snapshot holds no answer for the call
    ├── RemediationRefused           a remediation will not act: not confirmed, or a
    │                                precondition of the runbook does not hold
    ├── RemediationFailed            a remediation step ran but did not have its effect
    ├── SnapshotError                a snapshot folder is unreadable or fails its checksums
    └── SandboxError                 the sandbox could not start, stop or find its state

Third-party errors (requests, botocore, urllib3, kubernetes) are wrapped with ``raise ... from``
so callers only ever catch this tree; the original stays on ``__cause__`` for debugging.
Messages are one sentence naming the bad value and the next step.
"""

from __future__ import annotations

from enum import IntEnum

_MAX_DETAIL_CHARS = 300


class ExitCode(IntEnum):
    """Every command's exit status, and what the service reads into a run's outcome."""

    #: Done: every notebook ran (whatever it found), every check passed.
    OK = 0
    #: Ran, and something needs a person: a notebook errored, a rerun's findings differ, a
    #: check found something missing.
    FAILED = 1
    #: Refused before doing anything: bad input (a :class:`ConfigError`), said in one sentence.
    BAD_INPUT = 2


def shorten(text: object, limit: int = _MAX_DETAIL_CHARS) -> str:
    """Cut a server's payload so an error message stays one readable line."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class TenancyDiagError(Exception):
    """Base of every error raised by tenancy_diag."""


class ConfigError(TenancyDiagError):
    """A configuration file, CLI option or parameter is invalid."""


class SignalsError(ConfigError):
    """The signals mapping (parameters/signals.yaml) is malformed."""


class ParameterError(ConfigError):
    """A parameter is unknown or has the wrong type."""


class SourceError(TenancyDiagError):
    """A data source failed; ``source`` names which one (prometheus, kubernetes, sqs, admin-api)."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message)
        self.source = source


class SourceUnavailable(SourceError):
    """The source's server could not be reached or did not answer in time."""


class SourceRejected(SourceError):
    """The source's server answered with an error."""


class SourceConfigError(SourceError):
    """The request is unsafe or impossible for this source as configured."""


class ReplayMiss(SourceError):
    """A replayed snapshot has no recorded answer for the call."""


class RemediationRefused(TenancyDiagError):
    """A remediation was asked to act but is not confirmed or its preconditions do not hold."""


class RemediationFailed(TenancyDiagError):
    """A remediation step ran but its effect is not there (e.g. checksums differ after it)."""


class SnapshotError(TenancyDiagError):
    """A snapshot folder is unreadable, of an unknown schema, or fails its checksums."""


class SandboxError(TenancyDiagError):
    """The sandbox stack could not start, stop, or find its state."""
