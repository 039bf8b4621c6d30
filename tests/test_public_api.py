"""The public surface: every exported name resolves, and raw third-party errors never leak."""

from __future__ import annotations

import pytest

import tenancy_diag
from tenancy_diag.errors import SourceUnavailable, TenancyDiagError


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


def test_unreachable_sources_raise_only_our_errors(tmp_path):
    from datetime import UTC, datetime

    from tenancy_diag.settings import AdminApiSettings, PrometheusSettings, SqsSettings
    from tenancy_diag.sources.admin_api import AdminApiClient
    from tenancy_diag.sources.base import InstantQuery, JobsRequest, QueueRef
    from tenancy_diag.sources.prometheus import PrometheusSource
    from tenancy_diag.sources.sqs import SqsQueueSource

    dead = "http://127.0.0.1:9"
    calls = [
        lambda: PrometheusSource(PrometheusSettings(dead, timeout_s=2)).instant_query(
            InstantQuery("up", datetime.now(UTC))
        ),
        lambda: AdminApiClient(AdminApiSettings(dead, token="x", timeout_s=2)).jobs(
            JobsRequest("t-000001")
        ),
        lambda: SqsQueueSource(
            SqsSettings(endpoint_url=dead, timeout_s=2), tenancy_diag.Redactor()
        ).depth(QueueRef("us-east-1", "q")),
    ]
    for call in calls:
        with pytest.raises(TenancyDiagError) as caught:
            call()
        assert isinstance(caught.value, SourceUnavailable | TenancyDiagError)
        assert "\n" not in str(caught.value)


def test_all_lists_exactly_the_exports():
    assert set(tenancy_diag.__all__) == {*tenancy_diag._EXPORTS, "__version__"}
