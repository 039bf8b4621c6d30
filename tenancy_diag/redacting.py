"""Redaction of secrets from free text before it reaches a DataFrame, a snapshot or a notebook.

Log lines and DLQ bodies are written by people and programs that sometimes log what they
should not. Better be safe: every free-text field a source returns passes through here first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MASK = "[REDACTED]"

# (kind, pattern). Patterns keep a non-secret prefix in group 1 so a reader still sees *what*
# was there ("Authorization: Bearer [REDACTED]"); the secret is always the rest of the match.
BUILTIN_PATTERNS: tuple[tuple[str, str], ...] = (
    ("bearer_token", r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]{8,}=*"),
    ("aws_access_key_id", r"()\b(?:AKIA|ASIA|AIDA|AROA|ANPA|AGPA)[A-Z0-9]{16}\b"),
    (
        "aws_secret_access_key",
        r"(?i)((?:aws_?secret_?access_?key|secret_?access_?key|aws_?secret)\"?\s*[:=]\s*\"?)"
        r"[A-Za-z0-9/+=]{30,}",
    ),
    ("webhook_signing_secret", r"()\bwhsec_[A-Za-z0-9+/=_\-]{8,}"),
    (
        "webhook_signing_secret",
        r"(?i)((?:signing_?secret|webhook_?secret|hmac_?secret)\"?\s*[:=]\s*\"?)[^\s\",}]{6,}",
    ),
    ("url_password", r"([a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]+:)[^@\s/]+(?=@)"),
    (
        "password_field",
        r"(?i)((?:password|passwd|pwd|api_?key|client_?secret|token)\"?\s*[:=]\s*\"?)"
        r"(?!\[REDACTED\])[^\s\",}]{4,}",
    ),
)


@dataclass(frozen=True)
class Redactor:
    """Replaces every match of the built-in and extra patterns with ``[REDACTED]``."""

    extra_patterns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        compiled = [re.compile(p) for _, p in BUILTIN_PATTERNS]
        for pattern in self.extra_patterns:
            try:
                compiled.append(re.compile(pattern))
            except re.error as e:
                from tenancy_diag.errors import ConfigError

                raise ConfigError(
                    f"redaction pattern {pattern!r} is not a valid regular expression ({e}); fix it"
                ) from None
        object.__setattr__(self, "_compiled", tuple(compiled))

    def redact(self, text: str) -> str:
        for pattern in self._compiled:  # type: ignore[attr-defined]
            text = pattern.sub(_replacement, text)
        return text

    def redact_all(self, texts: Iterable[str]) -> list[str]:
        return [self.redact(t) for t in texts]


def _replacement(match: re.Match[str]) -> str:
    prefix = match.group(1) if match.re.groups >= 1 and match.group(1) else ""
    return prefix + MASK


def default_redactor() -> Redactor:
    """The redactor with extra patterns from the environment (``TENANCY_DIAG_REDACT_PATTERNS``)."""
    from tenancy_diag.settings import extra_redaction_patterns

    return Redactor(extra_redaction_patterns())
