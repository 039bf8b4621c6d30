"""The Tenancy alert rules in parameters/alerts/: promtool-valid, unit-tested, and consistent
with the signals contract (labels, annotations, metric names and SLO thresholds of
parameters/signals.yaml)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import promql_parser
import pytest
import yaml

from tenancy_diag import signals

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "parameters" / "alerts"
NOTEBOOKS = ROOT / "notebooks"
RULE_FILES = sorted(ALERTS.glob("*.yml")) + sorted(ALERTS.glob("*.yaml"))
TEST_FILES = sorted((ALERTS / "tests").glob("*.yml")) + sorted((ALERTS / "tests").glob("*.yaml"))
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool binary not found on PATH")

# Rules that exist only where signals.yaml has the metric; the webhook DLQ has none (the DLQs are
# read from SQS), so `slos.webhook.dlq_growth_max` has no rule.
SLOS_WITHOUT_RULE = {"webhook.dlq_growth_max", "controller.slo_window"}


def _rules() -> list[dict]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(r for r in group["rules"] if "alert" in r)
    return rules


def _ids(rules: list[dict]) -> list[str]:
    return [r["alert"] for r in rules]


RULES = _rules()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_rule_and_test_files_exist():
    assert RULE_FILES, f"no rule files in {ALERTS}"
    assert TEST_FILES, f"no promtool test files in {ALERTS / 'tests'}"
    assert RULES


@needs_promtool
@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path):
    result = _run("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(path: Path):
    result = _run("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_is_unit_tested_firing_and_not_firing():
    firing: set[str] = set()
    silent: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = set(_ids(RULES))
    assert names - firing == set(), "rules never tested firing"
    assert names - silent == set(), "rules never tested not firing (exp_alerts: [])"


@pytest.mark.parametrize("rule", RULES, ids=_ids(RULES))
def test_rule_carries_contract_labels_and_annotations(rule: dict):
    contract = signals.load().doc.alerts
    labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
    assert labels.get("subsystem") in contract.subsystems
    assert labels.get("severity") in contract.severities
    # region comes from the expression's `by (region)`; tenant does not apply (aggregated).
    assert re.search(r"by \([^)]*\bregion\b", rule["expr"]), "not aggregated by (region)"
    for key in contract.annotations:
        assert annotations.get(key), f"annotation {key!r} missing"
    assert "$value" in annotations["value"]
    assert annotations.get("summary")
    assert rule.get("for"), "no `for:` duration"


@pytest.mark.parametrize("rule", RULES, ids=_ids(RULES))
def test_runbook_url_names_the_subsystems_notebook(rule: dict):
    url = rule["annotations"]["runbook_url"]
    match = re.fullmatch(r"notebooks/([a-z_]+\.ipynb)", url)
    assert match, url
    assert (NOTEBOOKS / match.group(1)).is_file(), f"{url} does not exist"


def _signal_metric_names() -> set[str]:
    mapping = signals.load()
    names = set()
    for key, metric in mapping.doc.metrics.items():
        name = mapping.metric_name(key)
        names.add(name)
        if metric.type == "histogram":
            names.update(f"{name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
    return names


def _expr_metric_names(expr: str) -> set[str]:
    found: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


@pytest.mark.parametrize("rule", RULES, ids=_ids(RULES))
def test_expression_metrics_are_in_signals_yaml(rule: dict):
    used = _expr_metric_names(rule["expr"])
    assert used, "expression selects no metric"
    assert used - _signal_metric_names() == set()


@pytest.mark.parametrize("rule", RULES, ids=_ids(RULES))
def test_threshold_equals_signals_slo(rule: dict):
    slos = signals.load().doc.slos
    annotations = rule["annotations"]
    subsystem, key = annotations["slo"].split(".")
    assert subsystem == rule["labels"]["subsystem"]
    expected = float(slos[subsystem][key])
    threshold = float(annotations["threshold"])
    assert threshold == expected
    expr = " ".join(rule["expr"].split())
    if key.endswith("_minutes_max"):
        # a duration SLO: the expression's window is the threshold
        assert f"[{int(threshold)}m" in expr, expr
        return
    match = re.search(r"(>=|<)\s*([0-9.]+)$", expr)
    assert match, f"expression does not end in a threshold comparison: {expr}"
    op, literal = match.groups()
    assert float(literal) == expected
    assert op == ("<" if key.endswith("_min") else ">=")


def test_every_slo_with_a_metric_has_a_rule():
    slos = signals.load().doc.slos
    covered = {r["annotations"]["slo"] for r in RULES}
    wanted = {f"{sub}.{key}" for sub, values in slos.items() for key in values}
    assert wanted - covered - SLOS_WITHOUT_RULE == set()
