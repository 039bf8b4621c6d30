"""Pod log lines as a DataFrame, and their ERROR lines grouped into failure signatures.

Pure: lines in, DataFrames out. The lines arrive already redacted by their source, so every
column here (the example line included) is safe to show.

A failure signature is what the runbook's ``kubectl logs ... | grep ERROR`` asks a person to
eyeball: the distinct kinds of error, how often each occurs, since when, and for which tenants.
``msg``, ``reason`` and ``code`` are enumerations by contract (reason and code are metric
labels too), so they split signatures outright; drain3 generalises only the rest (the ``err``
text, endpoints, ids), after masking what is always variable.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

#: The contract's logfmt field names (parameters/signals.yaml ``logs.fields``).
DEFAULT_FIELDS: Mapping[str, str] = {
    "time": "ts",
    "level": "level",
    "message": "msg",
    "tenant": "tenant",
    "region": "region",
    "error": "err",
}
COLUMNS = ("ts", "level", "msg", "tenant", "region", "pod", "container", "previous", "err", "line")
SIGNATURE_COLUMNS = (
    "signature",
    "count",
    "first_seen",
    "last_seen",
    "tenants",
    "top_tenants",
    "pods",
    "regions",
    "example",
)
#: Tenants listed per signature in ``top_tenants``.
TOP_TENANTS = 5

# A pair is key=value, key="quoted \"value\"" or a bare key. An unterminated quote runs to the
# end of the line; anything else that is not a pair (stray quotes, "=x") is skipped.
_PAIR = re.compile(
    r'(?P<key>[^\s="]+)(?:=(?:"(?P<quoted>(?:[^"\\]|\\.)*)(?:"|\\?$)|(?P<bare>[^\s"]*)))?'
)
_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
_FIELD_TOKEN = re.compile(r"^[\w.-]+=")

# Fields that differ on every line (or are columns of their own) stay out of the signature.
_VOLATILE = frozenset({"ts", "time", "level", "msg", "tenant", "region", "trace_id", "span_id"})
# Fields whose values are enumerations by contract: equal values or a different signature.
_KEYS = ("msg", "reason", "code")
# Order matters: the specific shapes first, so a uuid is not eaten as hex and numbers.
_MASKS = (
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "UUID"),
    (r"\bt-\d+\b", "TENANT"),
    (r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b", "IP"),
    (r"\b\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h)\b", "DURATION"),
    (r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", "HEX"),
    (r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w.])", "NUM"),
)


def parse_logfmt(line: str) -> dict[str, str]:
    """The fields of a logfmt line; the first occurrence of a key wins, a bare key maps to ''."""
    fields: dict[str, str] = {}
    # findall gives '' for a group that did not take part, which is the value wanted anyway.
    for key, quoted, bare in _PAIR.findall(line):
        if key not in fields:
            fields[key] = (_unescape(quoted) if "\\" in quoted else quoted) or bare
    return fields


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m[1], m[1]), text)


def frame(
    lines_with_meta: Iterable[Any], fields: Mapping[str, str] = DEFAULT_FIELDS
) -> pd.DataFrame:
    """One row per line: its parsed fields plus where it came from, oldest first.

    Each item is a mapping or a dataclass with ``line`` and optionally ``pod``, ``container``,
    ``previous`` and ``region`` (a :class:`~tenancy_diag.sources.pod_logs.LogLine` is one).
    The line's own ``region`` field wins over the item's.
    """
    rows = [_row(_as_mapping(item), fields) for item in lines_with_meta]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df["ts"] = pd.to_datetime(df["ts"], utc=True, errors="coerce", format="ISO8601")
    df["previous"] = df["previous"].astype(bool)
    return df.sort_values("ts", kind="stable", na_position="last").reset_index(drop=True)


def _as_mapping(item: Any) -> Mapping[str, Any]:
    if isinstance(item, Mapping):
        return item
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    raise TypeError(f"a log item must be a mapping or a dataclass with 'line', not {item!r}")


def _row(item: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    line = str(item["line"])
    parsed = parse_logfmt(line)
    return {
        "ts": parsed.get(names["time"]),
        "level": (parsed.get(names["level"]) or "").upper() or None,
        "msg": parsed.get(names["message"]),
        "tenant": parsed.get(names["tenant"]) or None,
        "region": parsed.get(names["region"]) or item.get("region"),
        "pod": item.get("pod"),
        "container": item.get("container"),
        "previous": bool(item.get("previous", False)),
        "err": parsed.get(names["error"]),
        "line": line,
    }


def failure_signatures(df: pd.DataFrame, level: str = "ERROR") -> pd.DataFrame:
    """The distinct errors among ``df``'s lines at ``level``, most frequent first."""
    errors = df[df["level"] == level]
    if errors.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in SIGNATURE_COLUMNS})
    signatures = _signatures(errors["line"].tolist())
    grouped = errors.assign(signature=signatures).groupby("signature", sort=False)
    out = pd.DataFrame(
        {
            "count": grouped.size(),
            "first_seen": grouped["ts"].min(),
            "last_seen": grouped["ts"].max(),
            "tenants": grouped["tenant"].nunique(),
            "top_tenants": grouped["tenant"].agg(_top),
            "pods": grouped["pod"].nunique(),
            "regions": grouped["region"].agg(lambda s: sorted(s.dropna().unique())),
            "example": grouped["line"].first(),
        }
    )
    out = out.reset_index().sort_values(["count", "signature"], ascending=[False, True])
    return out.reset_index(drop=True)[list(SIGNATURE_COLUMNS)]


def _top(tenants: pd.Series) -> list[str]:
    return [t for t, _ in Counter(tenants.dropna()).most_common(TOP_TENANTS)]


def _signatures(lines: list[str]) -> list[str]:
    """Each line's signature: its enumerated fields exactly, the rest as a drain3 template."""
    miners: dict[tuple[str, ...], TemplateMiner] = {}
    keyed: list[tuple[tuple[str, ...], int]] = []
    examples: dict[tuple[tuple[str, ...], int], str] = {}
    for line in lines:
        fields = parse_logfmt(line)
        key = tuple(fields.get(k, "") for k in _KEYS)
        miner = miners.get(key) or miners.setdefault(key, _miner())
        text = _event_text(fields) or "-"
        cluster_id = int(miner.add_log_message(text)["cluster_id"])
        keyed.append((key, cluster_id))
        examples.setdefault((key, cluster_id), text)
    # Templates are read at the end: a cluster keeps generalising as lines arrive.
    templates = {
        (key, cluster.cluster_id): _named(
            cluster.get_template(), examples.get((key, cluster.cluster_id), "")
        )
        for key, miner in miners.items()
        for cluster in miner.drain.clusters
    }
    prefixes = {key: _prefix(key) for key in miners}
    return [f"{prefixes[key]} {templates[(key, cid)]}" for key, cid in keyed]


def _prefix(key: tuple[str, ...]) -> str:
    # The enumerations are shown as they are, never masked: code=503 is not code=<NUM>.
    return " ".join(
        _pair(name, value) for name, value in zip(_KEYS, key, strict=True) if value or name == "msg"
    )


def _named(template: str, example: str) -> str:
    """``<*>`` -> ``key=<*>`` where the wildcard stands for a whole ``key=value`` field."""
    tokens, seen = template.split(), example.split()
    if len(tokens) != len(seen):
        return template
    return " ".join(
        f"{s.partition('=')[0]}=<*>" if t == "<*>" and _FIELD_TOKEN.match(s) else t
        for t, s in zip(tokens, seen, strict=True)
    )


def _event_text(fields: Mapping[str, str]) -> str:
    # The error text first: drain3 files a line in its tree by its first tokens, so those must
    # be the stable ones for endpoints and ids after them to generalise.
    order = ["err"] if "err" in fields else []
    order += [k for k in fields if k not in _VOLATILE and k not in _KEYS and k != "err"]
    return " ".join(_pair(k, fields[k]) for k in order)


def _pair(key: str, value: str) -> str:
    if value and not any(c in value for c in ' "='):
        return f"{key}={value}"
    return f'{key}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'


def _miner() -> TemplateMiner:
    # Configured here, never from a drain3.ini that happens to lie in the working directory.
    config = TemplateMinerConfig()
    config.drain_sim_th = 0.5
    config.drain_depth = 4
    config.drain_max_children = 100
    config.parametrize_numeric_tokens = True
    config.masking_instructions = [MaskingInstruction(p, name) for p, name in _MASKS]
    config.mask_prefix, config.mask_suffix = "<", ">"
    config.profiling_enabled = False
    return TemplateMiner(persistence_handler=None, config=config)


# drain3 logs at INFO on every miner it creates; a notebook cell should show findings, not that.
logging.getLogger("drain3").setLevel(logging.WARNING)


def tenants_where(df: pd.DataFrame, field: str, values: Iterable[str]) -> list[str]:
    """Tenants of the ERROR lines whose logfmt ``field`` is one of ``values``, most lines first.

    Metrics keyed by something other than tenant (the gateway's client_id) still leave the
    affected tenants in the logs.
    """
    wanted = set(values)
    if df.empty or not wanted or "line" not in df.columns:
        return []
    errors = df[df["level"] == "ERROR"] if "level" in df.columns else df
    fields = errors["line"].map(parse_logfmt)
    hits = fields[fields.map(lambda f: f.get(field) in wanted)]
    tenants = hits.map(lambda f: f.get("tenant") or None).dropna()
    return [str(t) for t in tenants.value_counts().index]
