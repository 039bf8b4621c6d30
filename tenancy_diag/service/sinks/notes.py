"""A note to the incident tracker: one JSON POST saying what was found and where the evidence is.

Secrets never come from the sink spec or a parameter, which end up in logs and configs:
``TENANCY_DIAG_NOTE_TOKEN`` (a bearer token for a generic tracker) and
``TENANCY_DIAG_PAGERDUTY_ROUTING_KEY`` are read from the environment when the sink is made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from tenancy_diag.errors import ConfigError, shorten
from tenancy_diag.redacting import Redactor, default_redactor
from tenancy_diag.service.sinks.attachments import Attachment, SinkError
from tenancy_diag.service.sinks.payloads import (
    FORMATS,
    NoteFormat,
    generic_note,
    pagerduty_event,
    slack_note,
)

ENV_NOTE_TOKEN = "TENANCY_DIAG_NOTE_TOKEN"  # noqa: S105 - a variable name, not a secret
ENV_PAGERDUTY_ROUTING_KEY = "TENANCY_DIAG_PAGERDUTY_ROUTING_KEY"
# 408 and 429 are the receiver asking to be tried again later, unlike the rest of the 4xx.
_RETRYABLE_4XX = frozenset({408, 429})
_AUTH_HINTS: dict[NoteFormat, str] = {
    "generic": f"check {ENV_NOTE_TOKEN}",
    "slack": "check the webhook URL",
    "pagerduty": f"check {ENV_PAGERDUTY_ROUTING_KEY}",
}
_SINK_NAMES: dict[NoteFormat, str] = {"generic": "note", "slack": "slack", "pagerduty": "pagerduty"}


def where(url: str) -> str:
    """``https://hooks.slack.com/…``: the host only, since a webhook's path is its secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}/…"


class NoteSink:
    """POSTs a note built from ``summary`` and ``summary["links"]`` to ``url``.

    ``summary["links"]`` (name -> URL) is what the other sinks attached: ``attach_all`` fills
    it, since it runs every sink with ``needs_links`` last. Links a caller already put there
    (a dashboard, the runbook) are kept. The Authorization header is sent only in the generic
    format: a tracker's token must never reach Slack or PagerDuty.
    """

    needs_links = True

    def __init__(
        self,
        url: str,
        format: NoteFormat = "generic",
        timeout_s: float = 10.0,
        *,
        env: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        if format not in FORMATS:
            raise ConfigError(
                f"unknown note format {format!r}; valid formats: {', '.join(FORMATS)}"
            )
        env = os.environ if env is None else env
        self.name = _SINK_NAMES[format]
        self.format: NoteFormat = format
        self.timeout_s = timeout_s
        self._url = url
        self._token = env.get(ENV_NOTE_TOKEN, "").strip() or None
        self._routing_key = env.get(ENV_PAGERDUTY_ROUTING_KEY, "").strip() or None
        if format == "pagerduty" and not self._routing_key:
            raise ConfigError(
                f"a PagerDuty note needs a routing key: set {ENV_PAGERDUTY_ROUTING_KEY} in the "
                "environment (never in the sink URL)"
            )
        self._session = session or requests.Session()
        self._redactor = redactor or default_redactor()

    def __repr__(self) -> str:
        return f"NoteSink({where(self._url)!r}, format={self.format!r})"

    def payload(self, summary: Mapping[str, Any]) -> dict[str, Any]:
        links = summary.get("links") or {}
        note = generic_note(summary, {str(k): str(v) for k, v in dict(links).items()})
        if self.format == "slack":
            return slack_note(note)
        if self.format == "pagerduty":
            return pagerduty_event(note, self._routing_key or "")
        return note

    def attach(self, bundle: Path, summary: Mapping[str, Any]) -> Attachment:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._token and self.format == "generic":
            headers["Authorization"] = f"Bearer {self._token}"
        target = where(self._url)
        try:
            response = self._session.post(
                self._url,
                json=self.payload(summary),
                headers=headers,
                timeout=self.timeout_s,
                # A redirected POST turns into a GET in requests; better to fail and say so.
                allow_redirects=False,
            )
        except requests.Timeout as e:
            raise SinkError(
                self.name,
                f"{target} did not answer in {self.timeout_s:g} s; retry later",
                retryable=True,
            ) from e
        except requests.RequestException as e:
            raise SinkError(
                self.name,
                f"{target} is unreachable ({type(e).__name__}); check the note URL",
                retryable=True,
            ) from e
        self._check(response, target)
        detail = f"posted a {self.format} note to {target} (HTTP {response.status_code})"
        return Attachment(self.name, {}, detail)

    def _check(self, response: requests.Response, target: str) -> None:
        status = response.status_code
        if status < 300:
            return
        body = shorten(self._redactor.redact(response.text), 160)
        if status >= 500 or status in _RETRYABLE_4XX:
            raise SinkError(
                self.name, f"{target} answered HTTP {status} ({body}); retry later", retryable=True
            )
        if status < 400:
            hint = "configure the URL it redirects to"
        elif status in (401, 403):
            hint = _AUTH_HINTS[self.format]
        else:
            hint = f"check the note URL and that it takes {self.format} notes"
        raise SinkError(
            self.name, f"{target} answered HTTP {status} ({body}); {hint}", retryable=False
        )
