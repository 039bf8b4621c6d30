from pathlib import Path

import promql_parser
import pytest
import yaml

from tenancy_diag import signals
from tenancy_diag.errors import SignalsError
from tenancy_diag.signals import Scope

SIGNALS = Path(signals.DEFAULT_PATH)


def _write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load(SIGNALS.read_text())
    mutate(raw)
    path = tmp_path / "signals.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_every_query_renders_to_valid_promql():
    mapping = signals.load()
    scope = Scope(regions=("us-east-1", "eu-west-1"), tenant="t-000042")
    for key in mapping.query_keys:
        promql = mapping.render(key, scope, window="5m", k=10, quantile=0.99)
        promql_parser.parse(promql)
        assert "{{" not in promql and "$" not in promql, key


def test_scope_applies_only_to_labels_a_metric_has():
    mapping = signals.load()
    scope = Scope(regions=("us-east-1",), tenant="t-000042")
    assert 'tenant="t-000042"' in mapping.selector("reconcile_total", scope)
    # queue_depth has no tenant label: narrowing by tenant would silently match nothing.
    assert "tenant" not in mapping.selector("queue_depth", scope)
    assert mapping.selector("policy_service_up", scope).startswith('up{job="policy-service"')


def test_region_values_are_regex_escaped():
    mapping = signals.load()
    sel = mapping.selector("queue_depth", Scope(regions=("a.b", "c|d")))
    assert r'region=~"a\\.b|c\\|d"' in sel


def test_unknown_key_is_named(tmp_path):
    path = _write(tmp_path, lambda raw: raw["metrics"]["queue_depth"].update(colour="blue"))
    with pytest.raises(SignalsError, match=r"metrics\.queue_depth\.colour is not a known key"):
        signals.load(path)


def test_missing_field_is_named(tmp_path):
    path = _write(tmp_path, lambda raw: raw["metrics"]["queue_depth"].pop("type"))
    with pytest.raises(SignalsError, match=r"metrics\.queue_depth\.type is missing"):
        signals.load(path)


def test_bad_promql_template_is_named(tmp_path):
    def mutate(raw):
        raw["queries"]["controller"]["queue_depth"] = "sum by ($region) ({{queue_depth}}"

    with pytest.raises(SignalsError, match=r"'controller\.queue_depth' does not render to valid"):
        signals.load(_write(tmp_path, mutate))


def test_template_with_unknown_metric_is_named(tmp_path):
    def mutate(raw):
        raw["queries"]["api"]["request_rate"] = "sum(rate({{http_requests}}[$window]))"

    with pytest.raises(SignalsError, match=r"unknown metric key 'http_requests'"):
        signals.load(_write(tmp_path, mutate))


def test_template_with_unknown_parameter_is_named(tmp_path):
    def mutate(raw):
        raw["queries"]["api"]["request_rate"] = "sum(rate({{http_requests_total}}[$windw]))"

    with pytest.raises(SignalsError, match=r"'api\.request_rate' uses \$windw"):
        signals.load(_write(tmp_path, mutate))


def test_wrong_schema_and_bad_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: other/v9\n")
    with pytest.raises(SignalsError, match="expected 'tenancy-diag/signals/v1'"):
        signals.load(bad)
    bad.write_text("schema: [unclosed\n")
    with pytest.raises(SignalsError, match="not valid YAML"):
        signals.load(bad)
    with pytest.raises(SignalsError, match="cannot read"):
        signals.load(tmp_path / "absent.yaml")


def test_render_rejects_bad_runtime_parameter():
    mapping = signals.load()
    with pytest.raises(SignalsError, match=r"window='5 minutes'"):
        mapping.render("controller.reconcile_rate", window="5 minutes")


def test_expected_series_cover_every_metric_and_histograms_use_buckets():
    mapping = signals.load()
    names = {s.name for s in mapping.expected_series()}
    assert "webhook_latency_ms_bucket" in names
    assert len(names) == len(mapping.doc.metrics)
