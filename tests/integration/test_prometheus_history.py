"""The sandbox's history in the real Prometheus: backfilled with promtool, queried over HTTP.

Queries run AT the scenario's end (the history stops there), through the same PromQL the
diagnostics render from parameters/signals.yaml. One Prometheus per scenario per session.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from prometheus_api_client import PrometheusConnect

from tenancy_diag import signals as signals_module
from tenancy_diag.errors import SandboxError
from tenancy_diag.sandbox import prometheus_proc
from tenancy_diag.sandbox.metric_history import HistoryStats, write_openmetrics
from tenancy_diag.sandbox.serving import pid_alive
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("prometheus-history")]

END = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
SIGNALS = signals_module.load()


@dataclass(frozen=True)
class Served:
    scenario: Scenario
    stats: HistoryStats
    process: prometheus_proc.PrometheusProcess
    client: PrometheusConnect

    def query(self, promql: str) -> list[dict[str, object]]:
        result: list[dict[str, object]] = self.client.custom_query(
            promql, params={"time": self.scenario.end.timestamp()}
        )
        return result

    def by_region(self, query_key: str, **params: str) -> dict[str, float]:
        rows = self.query(SIGNALS.render(query_key, **params))
        return {str(r["metric"]["region"]): float(r["value"][1]) for r in rows}  # type: ignore[index]


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Served]]:
    """``served("webhook_storm")``: that scenario's history in a running Prometheus."""
    running: dict[str, Served] = {}

    def serve(name: str) -> Served:
        if name not in running:
            scenario = Scenario(ScenarioSpec(name=name, tenants=50, duration_s=3 * 3600, end=END))
            folder = tmp_path_factory.mktemp(f"prometheus-{name}")
            stats = write_openmetrics(scenario, folder / "history.om", SIGNALS)
            prometheus_proc.backfill(folder / "history.om", folder / "data")
            process = prometheus_proc.start_prometheus(folder / "data", folder)
            running[name] = Served(
                scenario, stats, process, PrometheusConnect(url=process.url, disable_ssl=True)
            )
        return running[name]

    yield serve
    for each in running.values():
        each.process.stop()


def test_every_sample_survives_the_backfill(served: Callable[[str], Served]) -> None:
    history = served("healthy")
    span = history.scenario.spec.duration_s + history.scenario.spec.step_s
    # promtool drops out-of-order or repeated samples silently: count what arrived, by name
    # (count_over_time drops the name, so one query for all names would collide).
    total = 0
    for name in history.client.all_metrics():
        (row,) = history.query(f"sum(count_over_time({name}[{span}s]))")
        total += int(row["value"][1])  # type: ignore[index]
    assert total == history.stats.samples


def test_every_expected_series_exists_at_the_end(served: Callable[[str], Served]) -> None:
    history = served("healthy")
    for expected in SIGNALS.expected_series():
        assert history.query(f"count(last_over_time({expected.selector()}[1h]))"), expected.key


def test_healthy_meets_the_slos_at_the_end(served: Callable[[str], Served]) -> None:
    history = served("healthy")
    regions = set(history.scenario.spec.regions)
    window = {"window": "15m"}
    checks: list[tuple[str, dict[str, str], Callable[[float], bool]]] = [
        ("controller.reconcile_success_ratio", window, lambda v: v >= 0.995),
        ("controller.queue_depth", {}, lambda v: v < 100),
        ("webhook.failure_ratio", window, lambda v: v < 0.01),
        ("webhook.latency_quantile", {**window, "quantile": "0.99"}, lambda v: v < 2000),
        ("policy.error_ratio", window, lambda v: v < 0.005),
        ("policy.latency_quantile", {**window, "quantile": "0.99"}, lambda v: v < 250),
        ("policy.cache_hit_ratio", window, lambda v: v >= 0.9),
        ("api.error_ratio_5xx", window, lambda v: v < 0.005),
        ("api.ratio_429", window, lambda v: v < 0.02),
        ("api.latency_quantile", {**window, "quantile": "0.99"}, lambda v: v < 500),
        ("lifecycle.failure_ratio", window, lambda v: v < 0.02),
    ]
    for key, params, ok in checks:
        values = history.by_region(key, **params)
        assert set(values) == regions, key
        assert all(ok(v) for v in values.values()), (key, values)


def test_webhook_storm_top_endpoint_is_the_broken_one(served: Callable[[str], Served]) -> None:
    history = served("webhook_storm")
    truth = history.scenario.truth
    rows = history.query(SIGNALS.render("webhook.top_endpoints", window="5m", k="3"))
    top = max(rows, key=lambda r: float(r["value"][1]))  # type: ignore[index]
    assert top["metric"] == {"region": truth.region, "endpoint": truth.endpoints[0]}
    p99 = history.by_region("webhook.latency_quantile", window="5m", quantile="0.99")
    assert p99[str(truth.region)] > 2000
    assert all(v < 2000 for region, v in p99.items() if region != truth.region)
    backoff = history.by_region("webhook.retry_backoff")
    assert backoff[str(truth.region)] > 8


def test_empty_prometheus_has_no_series_and_loads_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "groups:\n- name: sandbox\n  rules:\n"
        "  - record: region:reconcile:rate5m\n"
        "    expr: sum by (region) (rate(reconcile_total[5m]))\n",
        encoding="utf-8",
    )
    with prometheus_proc.start_prometheus(tmp_path / "data", tmp_path, rule_files=[rules]) as p:
        client = PrometheusConnect(url=p.url, disable_ssl=True)
        assert client.custom_query('count({__name__=~"reconcile.*"})') == []
        groups = requests.get(f"{p.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        assert [r["name"] for g in groups for r in g["rules"]] == ["region:reconcile:rate5m"]
    assert not pid_alive(p.pid)
    with prometheus_proc.start_empty_prometheus(tmp_path / "empty") as empty:
        assert PrometheusConnect(url=empty.url, disable_ssl=True).custom_query("up") == []


def test_a_port_in_use_is_a_sandbox_error_naming_the_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SandboxError, match=r"prometheus\.log"):
            prometheus_proc.start_prometheus(
                tmp_path / "data", tmp_path, port=taken.getsockname()[1]
            )
    assert "address already in use" in (tmp_path / "prometheus.log").read_text()


def test_a_bad_file_is_a_sandbox_error_with_promtools_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.om"
    bad.write_text('# TYPE x gauge\nx{a="1"} 1 1700000000\n', encoding="utf-8")  # no # EOF
    with pytest.raises(SandboxError, match="does not end with # EOF"):
        prometheus_proc.backfill(bad, tmp_path / "data")


def test_backfill_refuses_a_folder_with_data(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "01BLOCK").mkdir()
    with pytest.raises(SandboxError, match="already holds data"):
        prometheus_proc.backfill(tmp_path / "missing.om", tmp_path / "data")
