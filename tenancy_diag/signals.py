"""The signals mapping: parameters/signals.yaml, loaded, validated and rendered into PromQL.

Every metric name, label and PromQL expression the diagnostics use lives in that one file, so
an operator whose deployment drifts from the contract edits YAML, not code.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import promql_parser
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tenancy_diag import plugins, resources
from tenancy_diag.errors import SignalsError
from tenancy_diag.subsystems import registry as subsystems

SCHEMA = "tenancy-diag/signals/v1"
#: The shipped mapping: what :func:`load` reads unless a folder replaces the parameters.
DEFAULT_PATH = resources.PARAMETERS.shipped() / resources.SIGNALS
HISTOGRAM_PARTS = ("bucket", "sum", "count")

_SELECTOR = re.compile(r"\{\{\s*(?P<key>\w+)(?::(?P<part>\w+))?\s*(?:\|(?P<extra>.*?))?\s*\}\}")
# The scope labels a run narrows every selector by, when the metric carries them.
_SCOPE_LABELS = ("region", "tenant")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metric(_Strict):
    subsystem: str
    type: Literal["counter", "gauge", "histogram"]
    labels: tuple[str, ...]
    name: str | None = None
    match: dict[str, str] = Field(default_factory=dict)


class TemplateParameter(_Strict):
    example: str
    pattern: str


class Logs(_Strict):
    namespace: str
    app_label: str
    region_label: str
    apps: dict[str, str]
    fields: dict[str, str]
    levels: tuple[str, ...]


class QueuePair(_Strict):
    dlq: str
    source: str
    archive: str


class Dlq(_Strict):
    queues: dict[str, QueuePair]
    body_fields: tuple[str, ...]


class AdminApi(_Strict):
    jobs: str
    retry_job: str
    requeue_webhooks: str
    invalidate_policy_cache: str
    override_rate_limit: str
    actor_header: str
    extensions: dict[str, str] = {}


class Alerts(_Strict):
    labels: tuple[str, ...]
    annotations: tuple[str, ...]
    subsystems: tuple[str, ...]
    severities: tuple[str, ...]


class Pattern(_Strict):
    subsystem: str
    title: str


class SignalsDocument(_Strict):
    schema_: str = Field(alias="schema")
    labels: dict[str, str]
    parameters: dict[str, TemplateParameter]
    metrics: dict[str, Metric]
    queries: dict[str, dict[str, str]]
    slos: dict[str, dict[str, float | int | str]]
    logs: Logs
    dlq: Dlq
    admin_api: AdminApi
    alerts: Alerts
    patterns: dict[str, Pattern]

    @model_validator(mode="after")
    def _known_subsystems(self) -> SignalsDocument:
        known = subsystems.names()
        named = [
            *((f"metrics.{m}.subsystem", metric.subsystem) for m, metric in self.metrics.items()),
            *((f"queries.{name}", name) for name in self.queries),
            *((f"slos.{name}", name) for name in self.slos),
        ]
        for where, name in named:
            if name not in known:
                raise ValueError(f"{where}: {name!r} is not a subsystem ({', '.join(known)})")
        return self


@dataclass(frozen=True)
class Scope:
    """Which part of the fleet a query looks at; empty means all of it."""

    regions: tuple[str, ...] = ()
    tenant: str | None = None


def _regex_literal(value: str) -> str:
    # re.escape also escapes '-', which RE2 accepts but which makes selectors hard to read.
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", value)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Signals:
    """A validated signals mapping that renders its PromQL templates."""

    def __init__(self, document: SignalsDocument, path: Path | None = None) -> None:
        self.doc = document
        self.path = path
        self._check_templates()

    # -- names ---------------------------------------------------------------------------
    def metric_name(self, key: str) -> str:
        metric = self._metric(key)
        return metric.name or key

    def label(self, key: str) -> str:
        try:
            return self.doc.labels[key]
        except KeyError:
            raise SignalsError(
                f"label {key!r} is not in the signals mapping's labels; add it under labels:"
            ) from None

    @cached_property
    def query_keys(self) -> tuple[str, ...]:
        return tuple(f"{sub}.{name}" for sub, qs in self.doc.queries.items() for name in qs)

    def _metric(self, key: str) -> Metric:
        try:
            return self.doc.metrics[key]
        except KeyError:
            known = ", ".join(sorted(self.doc.metrics))
            raise SignalsError(f"unknown metric key {key!r}; known keys: {known}") from None

    # -- rendering -----------------------------------------------------------------------
    def selector(self, key: str, scope: Scope = Scope(), extra: str = "", part: str = "") -> str:
        """``name{matchers}`` for a metric, narrowed by the scope labels it carries."""
        metric = self._metric(key)
        name = self.metric_name(key)
        if part:
            if metric.type != "histogram" or part not in HISTOGRAM_PARTS:
                raise SignalsError(f"metric {key!r} has no :{part} series; only histograms do")
            name = f"{name}_{part}"
        matchers = [f"{label}={_quote(value)}" for label, value in sorted(metric.match.items())]
        if scope.regions and "region" in metric.labels:
            alternatives = "|".join(_regex_literal(r) for r in scope.regions)
            matchers.append(f"{self.label('region')}=~{_quote(alternatives)}")
        if scope.tenant and "tenant" in metric.labels:
            matchers.append(f"{self.label('tenant')}={_quote(scope.tenant)}")
        if extra.strip():
            matchers.append(extra.strip())
        return f"{name}{{{', '.join(matchers)}}}"

    def render(self, query_key: str, scope: Scope = Scope(), **params: str | int | float) -> str:
        """Render ``subsystem.name`` into PromQL for a scope and run-time parameters."""
        template = self._template(query_key)
        for name, value in params.items():
            spec = self.doc.parameters.get(name)
            if spec is None or not re.fullmatch(spec.pattern, str(value)):
                raise SignalsError(
                    f"parameter {name}={value!r} for query {query_key!r} is not valid; "
                    "expected "
                    + (spec.pattern if spec else "one of " + ", ".join(self.doc.parameters))
                )
        return self._expand(query_key, template, scope, {k: str(v) for k, v in params.items()})

    def _template(self, query_key: str) -> str:
        subsystem, _, name = query_key.partition(".")
        try:
            return " ".join(self.doc.queries[subsystem][name].split())
        except KeyError:
            raise SignalsError(
                f"unknown query {query_key!r}; known: {', '.join(self.query_keys)}"
            ) from None

    def _expand(self, key: str, template: str, scope: Scope, params: Mapping[str, str]) -> str:
        def selector(match: re.Match[str]) -> str:
            return self.selector(
                match["key"], scope, extra=match["extra"] or "", part=match["part"] or ""
            )

        with_selectors = _SELECTOR.sub(selector, template)
        values = {**self.doc.labels, **params}
        try:
            return string.Template(with_selectors).substitute(values)
        except KeyError as e:
            raise SignalsError(
                f"query {key!r} uses ${e.args[0]}, which is neither a label nor a parameter given"
            ) from None
        except ValueError as e:
            raise SignalsError(f"query {key!r} is not a valid template: {e}") from None

    def _check_templates(self) -> None:
        examples = {name: p.example for name, p in self.doc.parameters.items()}
        sample = Scope(regions=("us-east-1", "eu-west-1"), tenant="t-000001")
        for key in self.query_keys:
            try:
                promql = self._expand(key, self._template(key), sample, examples)
                promql_parser.parse(promql)
            except SignalsError as e:
                raise SignalsError(f"signals mapping: {e}") from None
            except ValueError as e:
                raise SignalsError(
                    f"signals mapping: query {key!r} does not render to valid PromQL ({e}); "
                    "fix its template in parameters/signals.yaml"
                ) from None
        for key, metric in self.doc.metrics.items():
            missing = [label for label in metric.labels if label not in self.doc.labels]
            if missing:
                raise SignalsError(
                    f"signals mapping: metric {key!r} uses labels {missing} "
                    "not listed under labels:"
                )

    # -- series the diagnostics expect -----------------------------------------------------
    def expected_series(self) -> list[ExpectedSeries]:
        """One entry per series name (histograms expand to their _bucket series)."""
        out = []
        for key, metric in self.doc.metrics.items():
            name = self.metric_name(key)
            labels = tuple(self.label(label) for label in metric.labels)
            if metric.type == "histogram":
                out.append(ExpectedSeries(key, f"{name}_bucket", (*labels, "le"), metric.match))
            else:
                out.append(ExpectedSeries(key, name, labels, metric.match))
        return out


@dataclass(frozen=True)
class ExpectedSeries:
    key: str
    name: str
    labels: tuple[str, ...]
    match: Mapping[str, str]

    def selector(self, extra: Sequence[str] = ()) -> str:
        matchers = [f"{k}={_quote(v)}" for k, v in sorted(self.match.items())]
        return f"{self.name}{{{', '.join([*matchers, *extra])}}}"


def _location(error: Mapping[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(top level)"


def default_path() -> Path:
    """The mapping :func:`load` reads: the replacement folder's (``--parameters``,
    ``TENANCY_DIAG_PARAMETERS``), else :data:`DEFAULT_PATH`."""
    return resources.PARAMETERS.override_file(resources.SIGNALS) or DEFAULT_PATH


def load(path: Path | str | None = None) -> Signals:
    """Load and validate a signals mapping; every problem names the offending key."""
    # A plugin's subsystem may bring its own queries and SLOs: know it before validating.
    plugins.load()
    file = Path(path) if path is not None else default_path()
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as e:
        raise SignalsError(
            f"cannot read signals mapping {file}: {e.strerror}; check the path"
        ) from e
    except yaml.YAMLError as e:
        raise SignalsError(f"signals mapping {file} is not valid YAML ({e}); fix its syntax") from e
    if not isinstance(raw, dict):
        raise SignalsError(f"signals mapping {file} must be a YAML mapping at the top level")
    if raw.get("schema") != SCHEMA:
        raise SignalsError(
            f"signals mapping {file} has schema {raw.get('schema')!r}; expected {SCHEMA!r}"
        )
    try:
        document = SignalsDocument.model_validate(raw)
    except ValidationError as e:
        # An unknown key is usually a typo of the key reported missing; name it first.
        first = sorted(e.errors(), key=lambda err: err["type"] != "extra_forbidden")[0]
        what = {
            "extra_forbidden": "is not a known key",
            "missing": "is missing",
        }.get(first["type"], first["msg"])
        raise SignalsError(
            f"signals mapping {file}: {_location(first)} {what}; fix it in that file"
        ) from None
    return Signals(document, file)
