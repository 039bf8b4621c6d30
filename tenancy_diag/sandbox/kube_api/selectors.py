"""Label selectors as the API parses them, and filtering objects by them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tenancy_diag.sandbox.kube_api.errors import bad_request


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector: ``key op values``."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "exists":
            return value is not None
        if self.op == "!":
            return value is None
        if self.op in ("=", "in"):
            return value in self.values
        return value not in self.values  # "!=" and "notin" match a missing label too


_SET_CLAUSE = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^()]*)\)\s*$")
_EQ_CLAUSE = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)\s*$")
_KEY_CLAUSE = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """Equality (``=``, ``==``, ``!=``), set (``in``, ``notin``) and existence clauses."""
    return tuple(_clause(c) for c in _split_clauses(text) if c.strip())


def _split_clauses(text: str) -> list[str]:
    clauses: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            clauses.append("".join(current))
            current = []
        else:
            current.append(char)
    clauses.append("".join(current))
    return clauses


def _clause(text: str) -> Requirement:
    if match := _SET_CLAUSE.match(text):
        values = frozenset(v.strip() for v in match[3].split(",") if v.strip())
        return Requirement(match[1], match[2], values)
    if match := _EQ_CLAUSE.match(text):
        return Requirement(match[1], "!=" if match[2] == "!=" else "=", frozenset({match[3]}))
    if match := _KEY_CLAUSE.match(text):
        return Requirement(match[2], "!" if match[1] else "exists")
    raise bad_request(
        f"unable to parse requirement: found '{text.strip()}', expected: "
        "'=', '!=', '==', 'in', 'notin'"
    )


def select(bodies: list[dict[str, Any]], selector: tuple[Requirement, ...]) -> list[dict[str, Any]]:
    """The objects whose labels meet every requirement; an empty selector keeps them all."""
    return [b for b in bodies if all(r.matches(b["metadata"]["labels"]) for r in selector)]


#: The fields every resource can be selected by, and the few more some allow.
_FIELDS = {
    "*": ("metadata.name", "metadata.namespace"),
    "pods": ("spec.nodeName", "spec.serviceAccountName", "status.phase"),
    "jobs": ("status.successful",),
    "secrets": ("type",),
}


@dataclass(frozen=True)
class FieldRequirement:
    """One clause of a field selector: ``path op value`` (``=``/``==`` or ``!=``)."""

    path: str
    equal: bool
    value: str

    def matches(self, body: Mapping[str, Any]) -> bool:
        return (_field_value(body, self.path) == self.value) == self.equal


def parse_fields(text: str, resource: str) -> tuple[FieldRequirement, ...]:
    """A field selector, refused as the API refuses it when it names a field it cannot select."""
    allowed = (*_FIELDS["*"], *_FIELDS.get(resource, ()))
    found = []
    for clause in (c.strip() for c in text.split(",")):
        if not clause:
            continue
        parts = re.split(r"(==|!=|=)", clause, maxsplit=1)
        if len(parts) != 3:
            raise bad_request(f"invalid selector: '{clause}'; can't understand '{clause}'")
        path, op, value = parts
        if path.strip() not in allowed:
            raise bad_request(f"field label not supported: {path.strip()}")
        found.append(FieldRequirement(path.strip(), op != "!=", value.strip()))
    return tuple(found)


def select_fields(
    bodies: list[dict[str, Any]], selector: tuple[FieldRequirement, ...]
) -> list[dict[str, Any]]:
    return [b for b in bodies if all(r.matches(b) for r in selector)]


def _field_value(body: Mapping[str, Any], path: str) -> str:
    if path == "status.successful":
        return str((body.get("status") or {}).get("succeeded", 0))
    value: Any = body
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)
