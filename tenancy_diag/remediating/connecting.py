"""A remediation's session, from a notebook's parameters: who acts, on which servers, under
which guard, audited where. Credentials never come from parameters: the admin API token from
``TENANCY_API_TOKEN(_FILE)``, AWS credentials from the usual AWS variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
from botocore.config import Config

from tenancy_diag import runbook as runbook_mod
from tenancy_diag import signals as signals_mod
from tenancy_diag.errors import ConfigError, ParameterError
from tenancy_diag.evidence import MOVES_DIR
from tenancy_diag.redacting import default_redactor
from tenancy_diag.remediating.auditing import AuditTrail
from tenancy_diag.remediating.guarding import UNKNOWN_ACTOR, Guard, check_actor
from tenancy_diag.remediating.kube import KubeActions
from tenancy_diag.remediating.plans import Call
from tenancy_diag.runbook import Runbook
from tenancy_diag.settings import (
    AdminApiSettings,
    KubeSettings,
    SqsSettings,
    actor,
    notebook_fallbacks,
    read_token,
)
from tenancy_diag.signals import Signals
from tenancy_diag.sources.admin_api import AdminApiClient
from tenancy_diag.sources.base import InstantQuery, MetricSource
from tenancy_diag.sources.registry import registry as source_kinds
from tenancy_diag.times import parse_time

#: Parameters every remediation notebook declares, beside the endpoints of the source kinds
#: it reads or acts through (each kind's ``parameter``).
COMMON = (
    "incident_id",
    "dry_run",
    "confirm",
    "end",
    "findings_path",
    "audit_path",
    "bundle_dir",
)


@dataclass
class Session:
    procedure: str
    incident: str
    guard: Guard
    trail: AuditTrail
    end: datetime
    signals: Signals
    runbook: Runbook
    params: Mapping[str, Any]
    # Clients made on first use and kept: a plan makes dozens of calls, each would otherwise
    # read the token and open a connection of its own.
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def admin(self) -> AdminApiClient:
        if "admin" not in self._clients:
            url = self.endpoint("admin-api")
            settings = AdminApiSettings(url=url, token=read_token())
            self._clients["admin"] = AdminApiClient(settings, default_redactor())
        client: AdminApiClient = self._clients["admin"]
        return client

    def admin_call(self, key: str, body: Mapping[str, Any] | None = None, **ids: str) -> Call:
        """The call named ``key`` in signals.yaml's admin_api (contract or extensions)."""
        api = self.signals.doc.admin_api
        spec = getattr(api, key, None) if key in type(api).model_fields else None
        spec = spec or api.extensions.get(key)
        if not isinstance(spec, str):
            raise ConfigError(
                f"admin API call {key!r} is not in parameters/signals.yaml admin_api (or its "
                "extensions); map it to your deployment's admin API"
            )
        method, _, template = spec.partition(" ")
        path = template.format(**{k: quote(v, safe="") for k, v in ids.items()})
        return Call("admin-api", method, path, dict(body or {}))

    def send(self, call: Call) -> Any:
        """Perform an admin-api call, as the session's actor."""
        body = dict(call.body) if call.method != "GET" else None
        return self.admin().request(call.method, call.path, body, actor=self.trail.actor)

    def journal_dir(self) -> Path:
        """Where move journals live: beside the incident's bundles, not inside one, so running
        the notebook again (a new bundle) finds and finishes an interrupted move."""
        if self.trail.audit_path is not None:
            return self.trail.audit_path.parent / self.incident / MOVES_DIR
        return (self.trail.bundle_dir or Path()) / MOVES_DIR

    def endpoint(self, kind: str, *, required: bool = True) -> str:
        """The endpoint given for source kind ``kind`` (its notebook parameter)."""
        described = source_kinds.get(kind)
        value = str(self.params.get(described.parameter) or "")
        if required and not value:
            raise ConfigError(
                f"{self.procedure} needs the {kind} source; pass {described.flag} (or -p "
                f"{described.parameter}=...)"
            )
        return value

    def kube(self) -> KubeActions:
        path = self.endpoint("kubernetes")
        namespace = self.signals.doc.logs.namespace
        return KubeActions(KubeSettings(kubeconfig=Path(path)), namespace=namespace)

    def prometheus(self) -> MetricSource | None:
        """The metrics source of whichever kind was given an endpoint; None when none was."""
        if "metrics" not in self._clients:
            given = [
                k for k in source_kinds if k.role == "metrics" and self.params.get(k.parameter)
            ]
            self._clients["metrics"] = (
                given[0].create(str(self.params[given[0].parameter]), default_redactor())
                if given
                else None
            )
        source: MetricSource | None = self._clients["metrics"]
        return source

    def instant(self, promql: str) -> list[dict[str, Any]] | None:
        """An instant query at ``end``; None when there is no Prometheus."""
        source = self.prometheus()
        return source.instant_query(InstantQuery(promql, self.end)) if source else None

    def sqs(self, region: str) -> Any:
        endpoint = self.endpoint("sqs")
        key = f"sqs:{region}"
        if key not in self._clients:
            self._clients[key] = boto3.client(
                "sqs",
                region_name=region,
                endpoint_url=None if endpoint == SqsSettings.AWS_ITSELF else endpoint,
                config=Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=10),
            )
        return self._clients[key]


def open_session(procedure: str, params: Mapping[str, Any]) -> Session:
    """The session for a remediation notebook's parameters (its ``globals()``)."""
    missing = [name for name in COMMON if name not in params]
    if missing:
        raise ConfigError(f"the parameters cell lacks {', '.join(missing)}; add them")
    params = {**params, **notebook_fallbacks(params, source_kinds.env_variables())}
    book = runbook_mod.default()
    if procedure not in book.remediations:
        raise ConfigError(
            f"unknown remediation {procedure!r}; valid: {', '.join(book.remediations)}"
        )
    incident = str(params["incident_id"])
    guard = Guard(incident, params["dry_run"], params["confirm"] or "")
    bundle = Path(params["bundle_dir"]) if params["bundle_dir"] else None
    who = actor()
    if guard.acting:
        check_actor(who)
    elif not who.strip():
        who = UNKNOWN_ACTOR  # a dry run changes nothing; its lines still name no one blank
    trail = AuditTrail(
        actor=who,
        incident=incident,
        procedure=procedure,
        audit_path=Path(params["audit_path"]) if params["audit_path"] else None,
        bundle_dir=bundle,
        run_id=bundle.name if bundle else None,
    )
    if guard.acting and trail.audit_path is None:
        raise ParameterError(
            "acting needs an audit log: run through `tenancy-diag run`, which sets audit_path, "
            "or pass -p audit_path=OUT/audit.jsonl"
        )
    return Session(
        procedure=procedure,
        incident=incident,
        guard=guard,
        trail=trail,
        end=parse_time(params["end"], "end"),
        signals=signals_mod.load(),
        runbook=book,
        params=params,
    )
