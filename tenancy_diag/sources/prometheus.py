"""Prometheus over its HTTP API, through prometheus-api-client."""

from __future__ import annotations

import json
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from tenancy_diag.errors import SourceRejected, SourceUnavailable, shorten
from tenancy_diag.settings import PrometheusSettings
from tenancy_diag.sources.base import InstantQuery, RangeQuery

# Retries only for a busy server; a wrong URL should fail in seconds, not minutes.
_RETRY = Retry(
    total=2, backoff_factor=0.2, status_forcelist=(502, 503, 504), allowed_methods=("GET", "POST")
)


class PrometheusSource:
    """A :class:`~tenancy_diag.sources.base.MetricSource` on a real Prometheus."""

    name = "prometheus"

    def __init__(
        self, settings: PrometheusSettings, session: requests.Session | None = None
    ) -> None:
        self.settings = settings
        self._client = PrometheusConnect(
            url=settings.url.rstrip("/"),
            retry=_RETRY,
            session=session,
            timeout=settings.timeout_s,
            method="POST",
        )

    def instant_query(self, request: InstantQuery) -> list[dict[str, Any]]:
        params = {"time": f"{request.at.timestamp():.3f}", **self._server_timeout()}
        return self._call(
            lambda: self._client.custom_query(request.promql, params=params), request.promql
        )

    def range_query(self, request: RangeQuery) -> list[dict[str, Any]]:
        def call() -> list[dict[str, Any]]:
            return self._client.custom_query_range(  # type: ignore[no-any-return]
                request.promql,
                start_time=request.start,
                end_time=request.end,
                step=f"{request.step_s}s",
                params=self._server_timeout(),
            )

        return self._call(call, request.promql)

    def _server_timeout(self) -> dict[str, str]:
        # The server gives up too, so an expensive query never outlives its caller.
        return {"timeout": f"{self.settings.timeout_s:g}s"}

    def _call(self, call: Any, promql: str) -> list[dict[str, Any]]:
        url = self.settings.url
        try:
            result = call()
        except requests.Timeout as e:
            raise SourceUnavailable(
                self.name,
                f"Prometheus at {url} did not answer in {self.settings.timeout_s:g} s; "
                "check --prometheus-url or raise the query timeout",
            ) from e
        except requests.RequestException as e:
            raise SourceUnavailable(
                self.name,
                f"Prometheus at {url} is unreachable ({_reason(e)}); check --prometheus-url",
            ) from e
        except PrometheusApiClientException as e:
            raise SourceRejected(
                self.name,
                f"Prometheus at {url} rejected the query {shorten(promql, 160)!r}: "
                f"{_server_error(str(e))}; fix the query in parameters/signals.yaml",
            ) from e
        except (ValueError, KeyError) as e:
            raise SourceRejected(
                self.name, f"Prometheus at {url} sent an unreadable answer; is it Prometheus? ({e})"
            ) from e
        return list(result)


def _reason(error: requests.RequestException) -> str:
    text = str(error)
    for marker in ("Connection refused", "Name or service not known", "No route to host"):
        if marker in text:
            return marker.lower()
    return shorten(type(error).__name__)


def _server_error(message: str) -> str:
    # The client embeds the raw body: b'{"status":"error","errorType":..,"error":".."}'.
    start, end = message.find("{"), message.rfind("}")
    if start >= 0 and end > start:
        try:
            body = json.loads(message[start : end + 1].encode().decode("unicode_escape"))
            return shorten(f"{body.get('errorType', 'error')}: {body.get('error', '')}")
        except (ValueError, UnicodeDecodeError):
            pass
    return shorten(message)
