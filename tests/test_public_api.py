"""The public surface: every exported name resolves, and raw third-party errors never leak."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

import tenancy_diag
from tenancy_diag.errors import SourceUnavailable, TenancyDiagError
from tenancy_diag.settings import AdminApiSettings, PrometheusSettings, SqsSettings
from tenancy_diag.sources.admin_api import AdminApiClient
from tenancy_diag.sources.base import InstantQuery, JobsRequest, QueueRef
from tenancy_diag.sources.prometheus import PrometheusSource
from tenancy_diag.sources.sqs import SqsQueueSource


def test_every_exported_name_resolves():
    for name in tenancy_diag.__all__:
        assert getattr(tenancy_diag, name) is not None, name


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tenancy_diag.nope  # noqa: B018


def test_error_tree_roots_in_one_base():
    for name in tenancy_diag.__all__:
        value = getattr(tenancy_diag, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, TenancyDiagError), name


DEAD = "http://127.0.0.1:9"  # port 9 (discard): nothing serves it here, so it refuses at once


def _prometheus() -> object:
    source = PrometheusSource(PrometheusSettings(DEAD, timeout_s=2))
    return source.instant_query(InstantQuery("up", datetime.now(UTC)))


def _admin_api() -> object:
    return AdminApiClient(AdminApiSettings(DEAD, token="x", timeout_s=2)).jobs(
        JobsRequest("t-000001")
    )


def _sqs() -> object:
    source = SqsQueueSource(SqsSettings(endpoint_url=DEAD, timeout_s=2), tenancy_diag.Redactor())
    return source.depth(QueueRef("us-east-1", "q"))


@pytest.mark.parametrize(
    ("call", "source", "message"),
    [
        (
            _prometheus,
            "prometheus",
            f"Prometheus at {DEAD} is unreachable (connection refused); check --prometheus-url",
        ),
        (
            _admin_api,
            "admin-api",
            f"the admin API at {DEAD} is unreachable (ConnectionError); check --tenancy-api-url",
        ),
        (
            _sqs,
            "sqs",
            f"SQS at {DEAD} did not answer (the connection failed) for region "
            "us-east-1; check --aws-endpoint-url",
        ),
    ],
    ids=["prometheus", "admin-api", "sqs"],
)
def test_unreachable_sources_raise_only_our_errors(
    call: Callable[[], object], source: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Credentials present (and fake), so SQS gets as far as the dead endpoint on any machine.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with pytest.raises(SourceUnavailable) as caught:
        call()
    assert caught.value.source == source
    assert str(caught.value) == message
    # The third-party error is kept for debugging, chained, never raised itself.
    assert caught.value.__cause__ is not None
    assert not isinstance(caught.value.__cause__, TenancyDiagError)


def test_all_lists_exactly_the_exports():
    assert set(tenancy_diag.__all__) == {*tenancy_diag._EXPORTS, "__version__"}
