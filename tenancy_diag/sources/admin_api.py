"""The Tenancy admin API's read calls over HTTP, with the bearer token from the environment.

Diagnostics only read (``jobs``). The mutating calls (retry, requeue, invalidate, overrides)
go through :meth:`AdminApiClient.request`, used only by the guarded remediations, which name
the person acting in ``X-Actor``.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from tenancy_diag.errors import (
    ConfigError,
    ParameterError,
    SourceRejected,
    SourceUnavailable,
    shorten,
)
from tenancy_diag.redacting import Redactor, default_redactor
from tenancy_diag.settings import ENV_API_TOKEN, ENV_API_TOKEN_FILE, AdminApiSettings, read_token
from tenancy_diag.sources.base import JobsRequest

_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Retries only for a busy server; a wrong URL should fail in seconds, not minutes.
# raise_on_status=False: after the last retry the 503 itself is reported, not a RetryError.
_RETRY = Retry(
    total=2,
    backoff_factor=0.2,
    status_forcelist=(502, 503, 504),
    allowed_methods=("GET",),
    raise_on_status=False,
)
JOB_FIELDS = (
    "job_id",
    "job_type",
    "status",
    "step",
    "started_at",
    "updated_at",
    "attempts",
    "error",
)


class AdminApiClient:
    """An :class:`~tenancy_diag.sources.base.AdminSource` on the Tenancy admin API.

    The token is ``settings.token`` if set (filled by whoever reads the environment), else
    ``TENANCY_API_TOKEN`` / ``TENANCY_API_TOKEN_FILE``, looked up on the first call so that a
    run which never asks for jobs does not need one.
    """

    name = "admin-api"

    def __init__(
        self,
        settings: AdminApiSettings,
        redactor: Redactor | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self.redactor = redactor or default_redactor()
        self._session = session or _session()
        self._token: str | None = settings.token

    def jobs(self, request: JobsRequest) -> list[dict[str, Any]]:
        """The tenant's lifecycle jobs; the free-text ``error`` field comes back redacted."""
        tenant = _tenant_path(request.tenant_id)
        answer = self._get(f"/tenants/{tenant}/jobs", request.tenant_id)
        if not isinstance(answer, list) or not all(isinstance(j, dict) for j in answer):
            raise SourceRejected(
                self.name,
                f"the admin API at {self.settings.url} sent jobs for "
                f"{request.tenant_id} that are not a JSON list of objects; is the URL right?",
            )
        return [self._job(j) for j in answer]

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, actor: str = ""
    ) -> Any:
        """One admin call (``path`` already quoted) and its JSON answer, redacted.

        A mutating call carries ``actor`` in the contract's ``X-Actor`` header, so the admin
        API's own audit names the person, not the tool.
        """
        if method != "GET" and not actor.strip():
            raise ConfigError(
                f"{method} {path} needs an actor for the admin API's audit; set TENANCY_DIAG_ACTOR"
            )
        headers = {"X-Actor": actor} if actor else {}
        answer = self._send(method, path, f"{method} {path}", body, headers)
        return json.loads(self.redactor.redact(json.dumps(answer)))

    def _job(self, job: dict[str, Any]) -> dict[str, Any]:
        out = {key: job.get(key) for key in JOB_FIELDS}
        if isinstance(out["error"], str):
            out["error"] = self.redactor.redact(out["error"])
        return out

    def _bearer(self) -> str:
        if not self._token:
            self._token = read_token()
        if not self._token:
            raise ConfigError(
                f"no admin API token: set {ENV_API_TOKEN} or {ENV_API_TOKEN_FILE} in the "
                "environment (never pass it as a parameter)"
            )
        return self._token

    def _get(self, path: str, tenant_id: str) -> Any:
        return self._send("GET", path, f"tenant {tenant_id}")

    def _send(
        self,
        method: str,
        path: str,
        subject: str,
        body: dict[str, Any] | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Any:
        url = self.settings.url.rstrip("/") + path
        headers = {"Authorization": f"Bearer {self._bearer()}", "Accept": "application/json"}
        headers |= extra_headers or {}
        try:
            response = self._session.request(
                method, url, headers=headers, json=body, timeout=self.settings.timeout_s
            )
        except requests.Timeout as e:
            raise SourceUnavailable(
                self.name,
                f"the admin API at {self.settings.url} did not answer in "
                f"{self.settings.timeout_s:g} s; check --tenancy-api-url",
            ) from e
        except requests.RequestException as e:
            raise SourceUnavailable(
                self.name,
                f"the admin API at {self.settings.url} is unreachable "
                f"({type(e).__name__}); check --tenancy-api-url",
            ) from e
        self._check(response, subject)
        try:
            return response.json()
        except ValueError as e:
            raise SourceRejected(
                self.name,
                f"the admin API at {self.settings.url} sent a body that is not JSON; "
                "check --tenancy-api-url",
            ) from e

    def _check(self, response: requests.Response, subject: str) -> None:
        status = response.status_code
        if status < 400:
            return
        if status in (401, 403):
            raise SourceRejected(
                self.name,
                f"the admin API at {self.settings.url} refused the token "
                f"(HTTP {status}); check {ENV_API_TOKEN} or {ENV_API_TOKEN_FILE}",
            )
        if status == 404:
            raise SourceRejected(
                self.name,
                f"{subject} is unknown to the admin API at {self.settings.url}; check the "
                + ("tenant id" if subject.startswith("tenant ") else "ids in the path"),
            )
        detail = shorten(self.redactor.redact(response.text), 160)
        raise SourceRejected(
            self.name,
            f"the admin API at {self.settings.url} answered HTTP {status} "
            f"for {subject} ({detail}); retry later or check the service",
        )


def _session() -> requests.Session:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=_RETRY))
    session.mount("https://", HTTPAdapter(max_retries=_RETRY))
    return session


def _tenant_path(tenant_id: str) -> str:
    if not isinstance(tenant_id, str) or not _TENANT_ID.fullmatch(tenant_id):
        raise ParameterError(
            f"tenant id {tenant_id!r} is not valid; use the id as the API shows it, e.g. t-000123"
        )
    # The pattern already excludes '/', but quoting keeps the path safe if it ever widens.
    return quote(tenant_id, safe="")
