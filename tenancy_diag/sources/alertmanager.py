"""Which alerts fire now, from Alertmanager's API v2: the :class:`AlertSource` of role alerts."""

from __future__ import annotations

from typing import Any

import requests

from tenancy_diag.errors import SourceRejected, SourceUnavailable, shorten
from tenancy_diag.settings import AlertmanagerSettings
from tenancy_diag.sources.base import AlertsRequest

SOURCE = "alertmanager"


class AlertmanagerSource:
    """An :class:`~tenancy_diag.sources.base.AlertSource` on Alertmanager's API v2."""

    name = SOURCE

    def __init__(self, settings: AlertmanagerSettings) -> None:
        self.url = settings.url.rstrip("/")
        self.timeout_s = settings.timeout_s

    def alerts(self, request: AlertsRequest) -> list[dict[str, Any]]:
        params: list[tuple[str, str]] = [
            ("active", "true"),
            ("silenced", "false"),
            ("inhibited", "false"),
            *(("filter", f) for f in request.filters),
        ]
        try:
            response = requests.get(
                f"{self.url}/api/v2/alerts", params=params, timeout=self.timeout_s
            )
        except requests.Timeout as e:
            raise SourceUnavailable(
                self.name,
                f"Alertmanager at {self.url} did not answer in {self.timeout_s:g} s; "
                "check alertmanager_url",
            ) from e
        except requests.RequestException as e:
            raise SourceUnavailable(
                self.name,
                f"Alertmanager at {self.url} is unreachable ({shorten(type(e).__name__)}); "
                "check alertmanager_url",
            ) from e
        if response.status_code != 200:
            raise SourceRejected(
                self.name,
                f"Alertmanager at {self.url} answered {response.status_code} "
                f"({shorten(response.text, 160)}); check alertmanager_url and the filters",
            )
        try:
            alerts = response.json()
        except ValueError as e:
            raise SourceRejected(
                self.name, f"Alertmanager at {self.url} sent no JSON; is it Alertmanager?"
            ) from e
        if not isinstance(alerts, list):
            raise SourceRejected(self.name, f"Alertmanager at {self.url} sent no list of alerts")
        return alerts
