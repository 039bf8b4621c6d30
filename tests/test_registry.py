"""The two extension points: source kinds and subsystems, each a descriptor registered once."""

import pytest

from tenancy_diag.errors import ConfigError
from tenancy_diag.redacting import default_redactor
from tenancy_diag.sources.registry import SourceKind, SourceRegistry, registry
from tenancy_diag.subsystems import SloSpec, Subsystem, SubsystemRegistry
from tenancy_diag.subsystems import registry as subsystems


def test_unknown_kind_lists_valid_ones():
    with pytest.raises(ConfigError, match="unknown source kind 'graphite'; valid kinds: admin-api"):
        registry.create("graphite", "http://x", default_redactor())


def test_builtin_prometheus_is_made_from_its_endpoint():
    source = registry.create("prometheus", "http://127.0.0.1:9", default_redactor())
    assert source.name == "prometheus"


def test_flag_and_environment_are_derived_from_the_parameter():
    kind = registry.get("sqs")
    assert (kind.parameter, kind.flag, kind.env) == (
        "aws_endpoint_url",
        "--aws-endpoint-url",
        "TENANCY_DIAG_AWS_ENDPOINT_URL",
    )
    table = registry.env_variables()
    assert table["kubeconfig"] == "TENANCY_DIAG_KUBECONFIG"
    assert table["end"] == "TENANCY_DIAG_END"


def test_a_custom_registry_takes_a_kind_and_refuses_a_clash():
    local = SourceRegistry()
    local.register(SourceKind("loki", "logs", "loki_url", lambda url, redactor: ("loki", url)))
    assert local.create("loki", "http://l", default_redactor()) == ("loki", "http://l")
    with pytest.raises(ConfigError, match="reuses parameter 'loki_url' of 'loki'"):
        local.register(SourceKind("loki2", "logs", "loki_url", lambda u, r: None))
    with pytest.raises(ConfigError, match="unknown role 'traces'"):
        local.register(SourceKind("tempo", "traces", "tempo_url", lambda u, r: None))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="already registered"):
        local.register(SourceKind("loki", "logs", "loki_url", lambda u, r: None))


def test_subsystems_are_the_runbooks_five_in_workflow_order():
    assert subsystems.names() == ("controller", "webhook", "policy", "api", "lifecycle")
    assert subsystems.get("lifecycle").user_visible is False
    assert subsystems.by_notebook("remediation_webhook_requeue").name == "webhook"
    assert subsystems.by_notebook("postmortem") is None


def test_unknown_subsystem_lists_valid_ones():
    with pytest.raises(ConfigError, match="unknown subsystem 'quota'; valid: controller, webhook"):
        subsystems.get("quota")


def test_subsystem_registry_refuses_duplicates_and_shared_notebooks():
    local = SubsystemRegistry()
    toy = Subsystem("quota", "Quota", "quota_health", "x:Y", (SloSpec("a", "q.a", "a_max", "<"),))
    local.register(toy)
    with pytest.raises(ConfigError, match="already registered"):
        local.register(toy)
    with pytest.raises(ConfigError, match="notebook 'quota_health' already diagnoses 'quota'"):
        local.register(Subsystem("other", "Other", "quota_health", "x:Y", ()))
    with pytest.raises(ConfigError, match="has no SLO 'b'; valid: a"):
        toy.slo("b")
