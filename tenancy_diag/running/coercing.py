"""Turning a value someone typed into the type a notebook's parameters cell declares.

Values from ``-p name=value`` keep the text as typed next to its YAML reading, because YAML
reads ``2026-11-27T03:00:00Z`` as a datetime and ``007`` as 7, while a ``str`` parameter wants
exactly what was typed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from tenancy_diag.errors import ParameterError, shorten

# Credentials come from the environment (TENANCY_API_TOKEN, AWS_*), never from parameters: a
# parameter lands in the executed notebook, the manifest and the audit log. A bare `key` is not
# one: the policy cache refresh takes a cache key (`residency/v7`) as its scope; only a key
# named for what it unlocks (`api_key`, `access_key`, `signing_key`, ...) is a credential.
_SECRET_NAME = re.compile(
    r"token|passw|passphrase|secret|credential|apikey"
    r"|(?:^|_)(?:api|access|private|signing|encryption|ssh)_?keys?(?:_|$)",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]*:[^@\s/]+@")


@dataclass(frozen=True)
class Given:
    """A parameter value and where it came from (``-p``, ``--tenant``, ``-f params.yaml``)."""

    value: Any
    origin: str
    #: The text as typed, for ``-p`` values; None for values that were already data.
    text: str | None = None
    #: False for named flags and their environment fallbacks: ignored, with a warning, when
    #: no selected notebook declares them, where a ``-p`` or ``-f`` name is an error.
    strict: bool = True


def looks_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def refuse_secrets(name: str, given: Given) -> None:
    """ParameterError when ``name`` or its value looks like it carries a credential."""
    if looks_secret(name):
        raise ParameterError(
            f"parameter {name!r} ({given.origin}) looks like a secret, and parameters are "
            "written into the evidence; pass credentials through the environment "
            "(TENANCY_API_TOKEN or TENANCY_API_TOKEN_FILE, AWS_*) instead"
        )
    values = given.value if isinstance(given.value, list) else [given.value]
    if any(isinstance(v, str) and _URL_PASSWORD.search(v) for v in values):
        raise ParameterError(
            f"parameter {name!r} ({given.origin}) holds a URL with a password; drop the "
            "user:password part and pass credentials through the environment"
        )


def base_type(type_name: str) -> str:
    """``list[str]`` -> ``list``; ``Optional[str]``, ``None`` (no annotation) -> ``any``."""
    head = type_name.split("[", 1)[0].strip()
    return head if head in {"str", "int", "float", "bool", "list", "dict"} else "any"


def coerce(name: str, given: Given, type_name: str, notebook: str) -> Any:
    """``given.value`` as ``type_name``, else ParameterError naming the value and the type."""
    converted = _CONVERTERS[base_type(type_name)](given)
    if converted is _WRONG:
        raise ParameterError(
            f"parameter {name!r} ({given.origin}) is {shorten(repr(given.value), 80)}, but "
            f"notebook {notebook} declares it {type_name}; give a {type_name} value"
        )
    try:
        json.dumps(converted)
    except (TypeError, ValueError):
        raise ParameterError(
            f"parameter {name!r} ({given.origin}) holds {type(converted).__name__} data that "
            "cannot be recorded; use strings, numbers, booleans, lists or mappings"
        ) from None
    return converted


_WRONG = object()


def _as_str(given: Given) -> Any:
    value = given.value
    if isinstance(value, str):
        return value
    if given.text is not None and not isinstance(value, list | dict):
        return given.text
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _WRONG


def _as_int(given: Given) -> Any:
    value = given.value
    if isinstance(value, bool):
        return _WRONG
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return _WRONG


def _as_float(given: Given) -> Any:
    value = given.value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return _WRONG


def _as_bool(given: Given) -> Any:
    return given.value if isinstance(given.value, bool) else _WRONG


def _as_list(given: Given) -> Any:
    value = given.value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        # `-p regions=us-east-1,eu-west-1` is how people write lists on a command line.
        return [part.strip() for part in value.split(",") if part.strip()]
    return _WRONG


def _as_dict(given: Given) -> Any:
    value = given.value
    return {str(k): _plain(v) for k, v in value.items()} if isinstance(value, dict) else _WRONG


def _as_any(given: Given) -> Any:
    return _plain(given.value)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


_CONVERTERS = {
    "str": _as_str,
    "int": _as_int,
    "float": _as_float,
    "bool": _as_bool,
    "list": _as_list,
    "dict": _as_dict,
    "any": _as_any,
}
