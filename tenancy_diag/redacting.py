"""Redaction of secrets from free text before it reaches a DataFrame, a snapshot or a notebook.

Log lines and DLQ bodies are written by people and programs that sometimes log what they
should not. Better be safe: every free-text field a source returns passes through here first.

A pattern may name a group ``keep``: everything from the start of the match to the end of that
group stays, the rest of the match becomes ``[REDACTED]``, so a reader still sees *what* was
there (``Authorization: Bearer [REDACTED]``). Without ``keep`` the whole match is masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tenancy_diag.errors import ConfigError
from tenancy_diag.settings import extra_redaction_patterns

MASK = "[REDACTED]"

# Never mask a mask again, so redacting twice gives the same text as redacting once.
_NOT_MASKED = r"(?!\[REDACTED\])"

# Key names whose value is a secret, by kind. A key must end exactly before the separator, so
# `token=` and `access_token=` match while `tokens=`, `token_count=` or `secret_name=` do not.
_AWS_KEY_NAMES = r"secret[_-]?access[_-]?key"
_SIGNING_KEY_NAMES = r"(?:signing|webhook|hmac)[_-]?secret"
_OTHER_KEY_NAMES = (
    r"password|passwd|passphrase|pwd|secret[_-]?key|secret|token|bearer|api[_-]?key"
    r"|private[_-]?key"
)

# The separator between a key and its value in the shapes careless code logs:
# logfmt and env (`k=v`, `K="v"`), JSON (`"k": "v"`, also escaped inside a JSON string as
# `\"k\": \"v\"`), YAML and headers (`k: v`), Python reprs (`'k': 'v'`).
_KEY_END = r"\\?[\"']?\s*[:=]\s*"
_OPEN_QUOTE = r"(?:(?P<esc>\\)?(?P<q>[\"']))?"

# A quoted value runs to its closing quote (escapes included); an escaped-quoted one stops at
# the first backslash, since its closing quote is itself escaped. Unquoted values stop where
# logfmt, query strings and JSON end a value. JSON literals are left so JSON stays parseable.
_VALUE = (
    _NOT_MASKED + r"(?(q)(?(esc)[^\"'\\]+|(?:(?!(?P=q))[^\\]|\\.)+)"
    r"|(?!(?:null|true|false)\b)[^\s,;&\"'{}\[\]\\]+)"
)


def _key_value(keys: str) -> str:
    """A pattern masking the value of any of ``keys`` (an alternation) in any shape above."""
    return r"(?i)(?P<keep>(?:" + keys + r")" + _KEY_END + _OPEN_QUOTE + r")" + _VALUE


# The credential after an optional scheme word: with an Authorization header whatever follows
# is a secret, whatever its length or alphabet. The scheme is possessive (`?+`) so that a
# second pass over "Bearer [REDACTED]" cannot take "Bearer" itself for the credential.
_AUTH_HEADER = (
    r"(?i)(?P<keep>\bauthorization" + _KEY_END + r"\\?[\"']?\s*"
    r"(?:(?:bearer|basic|token|digest|negotiate)\s+)?+)" + _NOT_MASKED + r"[^\s\"'\\,}]+"
)

# Outside a header, "bearer" is followed by a secret only if it looks like one (a digit or a
# dot, as in a JWT, or long), so prose such as "bearer authentication failed" survives.
_BEARER_PROSE = (
    r"(?i)(?P<keep>\bbearer\s+)"
    + _NOT_MASKED
    + r"(?:(?=[\w\-.~+/]*[\d.])[\w\-.~+/]{8,}|[\w\-.~+/]{20,})=*"
)

# (kind, pattern), applied in order.
BUILTIN_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "url_password",
        r"(?P<keep>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@\"']*:)" + _NOT_MASKED + r"[^@\s/\"']+(?=@)",
    ),
    ("authorization_header", _AUTH_HEADER),
    ("bearer_token", _BEARER_PROSE),
    ("aws_access_key_id", r"\b(?:AKIA|ASIA|AIDA|AROA|ANPA|AGPA)[A-Z0-9]{16}\b"),
    ("webhook_signing_secret", r"\bwhsec_[A-Za-z0-9+/=_\-]{8,}"),
    ("aws_secret_access_key", _key_value(_AWS_KEY_NAMES)),
    ("webhook_signing_secret", _key_value(_SIGNING_KEY_NAMES)),
    ("secret_field", _key_value(_OTHER_KEY_NAMES)),
)


@dataclass(frozen=True)
class Redactor:
    """Replaces every match of the built-in and extra patterns with ``[REDACTED]``.

    ``extra_patterns`` are regular expressions (Python syntax) whose whole match is masked,
    or only what follows a ``(?P<keep>...)`` group when they name one.
    """

    extra_patterns: tuple[str, ...] = ()
    _compiled: tuple[re.Pattern[str], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        compiled = [re.compile(p) for _, p in BUILTIN_PATTERNS]
        compiled.extend(_compile_extra(p) for p in self.extra_patterns)
        object.__setattr__(self, "_compiled", tuple(compiled))

    def redact(self, text: str) -> str:
        for pattern in self._compiled:
            text = pattern.sub(_replacement, text)
        return text

    def redact_all(self, texts: Iterable[str]) -> list[str]:
        return [self.redact(t) for t in texts]

    def redact_data(self, value: Any) -> Any:
        """``value`` (JSON-like data) with every string in it redacted, keys kept: a record
        whose every field passed through here can be written wherever its fields go."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {key: self.redact_data(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_data(item) for item in value]
        return value


def _compile_extra(pattern: str) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise ConfigError(
            f"redaction pattern {pattern!r} is not a valid regular expression ({e}); fix it "
            "where it was configured (TENANCY_DIAG_REDACT_PATTERNS or extra_patterns)"
        ) from None
    # A pattern matching the empty string would splice the mask between every character.
    if compiled.fullmatch(""):
        raise ConfigError(
            f"redaction pattern {pattern!r} matches empty text; make it require at least one "
            "character"
        )
    return compiled


def _replacement(match: re.Match[str]) -> str:
    # Context-only patterns (a bare `\b`) can still match empty text inside a line.
    if match.start() == match.end():
        return ""
    if "keep" in match.re.groupindex and match.group("keep") is not None:
        return match.string[match.start() : match.end("keep")] + MASK
    return MASK


def default_redactor() -> Redactor:
    """The redactor with extra patterns from the environment (``TENANCY_DIAG_REDACT_PATTERNS``)."""
    return Redactor(extra_redaction_patterns())
