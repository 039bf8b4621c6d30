import pytest

from tenancy_diag.errors import ConfigError
from tenancy_diag.settings import PrometheusSettings
from tenancy_diag.sources.registry import SourceRegistry, registry


def test_unknown_kind_lists_valid_ones():
    with pytest.raises(ConfigError, match="unknown source kind 'graphite'; valid kinds: admin-api"):
        registry.create("graphite")


def test_builtin_prometheus_and_custom_registration():
    assert (
        registry.create("prometheus", PrometheusSettings(url="http://127.0.0.1:9")).name
        == "prometheus"
    )
    local = SourceRegistry()
    local.register("fake", lambda: "made")
    assert local.create("fake") == "made" and local.kinds() == ("fake",)
