"""The sandbox's metric history: strict OpenMetrics, every mapped metric, healthy SLOs, faults.

promtool 2.42 silently drops out-of-order and duplicate samples, so the format checks here are
stricter than promtool: they parse the file back and check what it would not.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from tenancy_diag import signals as signals_module
from tenancy_diag.errors import SandboxError
from tenancy_diag.sandbox.metric_history import BUCKETS_MS, write_openmetrics
from tenancy_diag.sandbox.topology import PATTERNS, SCENARIOS, Scenario, ScenarioSpec

END = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
STEP_S = 60
WINDOW = 15  # scrapes: the contract's 15 min SLO window
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+) (\S+)\n$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "unknown": ("",),
    "info": ("_info",),
    "histogram": ("_bucket", "_sum", "_count"),
}

Labels = tuple[tuple[str, str], ...]


@dataclass
class History:
    """A parsed OpenMetrics file: per sample name, per label set, values on the scrape grid."""

    ts: np.ndarray
    types: dict[str, str] = field(default_factory=dict)  # sample name -> family type
    series: dict[str, dict[Labels, np.ndarray]] = field(default_factory=dict)
    samples: int = 0

    def select(self, name: str, **match: str) -> dict[Labels, np.ndarray]:
        return {
            labels: v
            for labels, v in self.series.get(name, {}).items()
            if all(dict(labels).get(k) == want for k, want in match.items())
        }

    def total(self, name: str, by: str | None = None, **match: str) -> dict[str, np.ndarray]:
        """Sum of series (absent counts as 0, as for a counter not created yet) per ``by`` value."""
        out: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(self.ts)))
        for labels, values in self.select(name, **match).items():
            key = dict(labels)[by] if by else ""
            out[key] = out[key] + np.nan_to_num(values)
        return dict(out)

    def sum(self, name: str, **match: str) -> np.ndarray:
        """Sum of every matching series; zeros when none exists (no failure ever)."""
        return self.total(name, **match).get("", np.zeros(len(self.ts)))


def parse(path: Path, start: int, end: int) -> History:
    """Parse and check the strict format; every violation fails the test with its line."""
    ts = np.arange(start, end + 1, STEP_S)
    history = History(ts)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[-1] == "# EOF\n"
    families: set[str] = set()
    family, kind = "", ""
    known: dict[str, tuple[np.ndarray, list[int]]] = {}  # series text -> (values, [last index])
    for number, line in enumerate(lines[:-1], 1):
        if line.startswith("#"):
            if line.startswith("# TYPE "):
                _, _, family, kind = line.split()
                assert family not in families, f"line {number}: family {family} is not contiguous"
                families.add(family)
            else:
                assert line.startswith("# HELP "), f"line {number}: {line!r}"
            continue
        text, value, stamp = line.rsplit(" ", 2)
        if text not in known:
            known[text] = (_new_series(history, text, family, kind, number), [-1])
        row, last = known[text]
        assert len(stamp) == 11 and stamp[:-1].isdigit(), f"line {number}: {stamp!r} is not seconds"
        index, late = divmod(int(stamp) - start, STEP_S)
        assert not late and 0 <= index < len(ts), f"line {number}: time {stamp} is off the grid"
        assert index > last[0], f"line {number}: {text} is out of order or repeated"
        last[0] = index
        row[index] = float(value)
        history.samples += 1
    return history


def _new_series(history: History, text: str, family: str, kind: str, number: int) -> np.ndarray:
    m = _SAMPLE.match(text + " 0 0\n")
    assert m, f"line {number} is not a sample: {text!r}"
    name, raw_labels = m.group(1), m.group(2)
    assert any(name == family + s for s in _SUFFIXES[kind]), f"line {number}: {name} vs {family}"
    labels = tuple((k, v) for k, v, _ in _LABEL.findall(raw_labels or ""))
    by_labels = history.series.setdefault(name, {})
    assert labels not in by_labels, f"line {number}: {text} appears twice"
    history.types[name] = kind
    row = by_labels[labels] = np.full(len(history.ts), np.nan)
    return row


def scenario(name: str, tenants: int = 50, duration_s: int = 3600) -> Scenario:
    return Scenario(
        ScenarioSpec(name=name, tenants=tenants, duration_s=duration_s, end=END, step_s=STEP_S)
    )


@dataclass
class Generated:
    scenario: Scenario
    history: History
    stats: object
    path: Path


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Generated]:
    out = {}
    for name in SCENARIOS:
        sc = scenario(name)
        path = tmp_path_factory.mktemp("history") / f"{name}.om"
        stats = write_openmetrics(sc, path)
        start, end = int(sc.start.timestamp()), int(sc.end.timestamp())
        out[name] = Generated(sc, parse(path, start, end), stats, path)
    return out


@pytest.fixture(scope="module")
def names() -> signals_module.Signals:
    return signals_module.load()


# -- PromQL-like helpers on the parsed arrays ---------------------------------------------------
def increase(values: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Increase over each full window ending at each scrape from ``window`` on."""
    return values[window:] - values[:-window]


def ratio(part: np.ndarray, whole: np.ndarray, window: int = WINDOW) -> np.ndarray:
    return increase(part, window) / np.maximum(increase(whole, window), 1e-9)


def quantile(
    history: History, name: str, q: float, window: int = WINDOW, **match: str
) -> np.ndarray:
    """histogram_quantile(q, sum by (le) (increase(name_bucket[window]))) per window."""
    by_le = history.total(f"{name}_bucket", by="le", **match)
    if not by_le:
        return np.full(len(history.ts) - window, np.nan)  # a region without that traffic
    bounds = [*map(float, BUCKETS_MS), np.inf]
    counts = np.stack([increase(by_le[b], window) for b in [*map(str, BUCKETS_MS), "+Inf"]])
    out = np.full(counts.shape[1], np.nan)
    for i in range(counts.shape[1]):
        c = counts[:, i]
        if c[-1] <= 0:
            continue
        rank = q * c[-1]
        b = int(np.searchsorted(c, rank))
        if b == len(bounds) - 1:
            out[i] = bounds[-2]
            continue
        lower, below = (0.0, 0.0) if b == 0 else (bounds[b - 1], c[b - 1])
        out[i] = lower + (bounds[b] - lower) * (rank - below) / max(c[b] - below, 1e-9)
    return out


def worst(values: np.ndarray) -> float:
    """The largest value, ignoring windows without data."""
    return float(np.nanmax(np.append(values, 0.0)))


def stuck_minutes(values: np.ndarray) -> int:
    """Longest run of scrapes with a gauge above zero."""
    longest = run = 0
    for v in np.nan_to_num(values):
        run = run + 1 if v > 0 else 0
        longest = max(longest, run)
    return longest


def slo_breaches(g: Generated, names: signals_module.Signals, region: str) -> list[str]:
    """Which of the contract's SLOs a region breaches in any 15 min window of the history."""
    h, n = g.history, names.metric_name
    r = {"region": region}
    checks = {
        "controller success": ratio(
            h.sum(n("reconcile_failures_total"), **r), h.sum(n("reconcile_total"), **r)
        ).max()
        < 0.005,
        "queue depth": h.sum(n("queue_depth"), **r).max() < 100,
        "webhook p99": worst(quantile(h, n("webhook_latency_ms"), 0.99, **r)) < 2000,
        "webhook failures": ratio(
            h.sum(n("webhook_failures_total"), **r), h.sum(n("webhook_deliveries_total"), **r)
        ).max()
        < 0.01,
        "policy p99": worst(quantile(h, n("policy_eval_latency_ms"), 0.99, **r)) < 250,
        "policy errors": ratio(
            h.sum(n("policy_eval_errors_total"), **r), h.sum(n("policy_eval_total"), **r)
        ).max()
        < 0.005,
        "cache hit": ratio(
            h.sum(n("policy_cache_requests_total"), result="hit", **r),
            h.sum(n("policy_cache_requests_total"), **r),
        ).min()
        >= 0.9,
        "api 5xx": ratio(
            sum(
                (
                    v
                    for c, v in h.total(n("http_errors_total"), by="code", **r).items()
                    if c.startswith("5")
                ),
                np.zeros(len(h.ts)),
            ),
            h.sum(n("http_requests_total"), **r),
        ).max()
        < 0.005,
        "api 429": ratio(
            h.sum(n("http_errors_total"), code="429", **r), h.sum(n("http_requests_total"), **r)
        ).max()
        < 0.02,
        "api p99": worst(quantile(h, n("http_request_duration_ms"), 0.99, **r)) < 500,
        "lifecycle failures": ratio(
            h.sum(n("lifecycle_job_failures_total"), **r), h.sum(n("lifecycle_jobs_total"), **r)
        ).max()
        < 0.02,
        "replication lag": max(
            [worst(v) for v in h.select(n("migration_replication_lag_seconds"), **r).values()],
            default=0.0,
        )
        < 60,
        "stuck step": max(
            stuck_minutes(v) for v in h.select(n("lifecycle_jobs_in_progress"), **r).values()
        )
        < 30,
    }
    return [name for name, ok in checks.items() if not ok]


def at_end(values: np.ndarray, window: int = WINDOW) -> float:
    return float(values[-1] - values[-1 - window])


def since_incident(g: Generated) -> int:
    """Index of the first scrape at or after the incident start."""
    assert g.scenario.truth.incident_start is not None
    return int(np.searchsorted(g.history.ts, g.scenario.truth.incident_start.timestamp()))


# -- format ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SCENARIOS)
def test_stats_describe_the_file(generated: dict[str, Generated], name: str) -> None:
    g = generated[name]
    written = sum(len(by_labels) for by_labels in g.history.series.values())
    assert (g.stats.series, g.stats.samples) == (written, g.history.samples)
    assert g.stats.bytes == g.path.stat().st_size
    assert g.stats.seconds > 0


def test_every_mapped_metric_is_there_with_its_labels(
    generated: dict[str, Generated], names: signals_module.Signals
) -> None:
    h = generated["healthy"].history
    for expected in names.expected_series():
        assert expected.name in h.series, expected.key
        for labels in h.series[expected.name]:
            assert {k for k, _ in labels} == {*expected.labels, *expected.match}, expected.key
            assert {k: v for k, v in labels if k in expected.match} == dict(expected.match)


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_mapped_metric_has_recent_samples(
    generated: dict[str, Generated], names: signals_module.Signals, name: str
) -> None:
    # check-signals looks back from the end, so every series name must be alive lately.
    h = generated[name].history
    for expected in names.expected_series():
        latest = np.stack(list(h.series[expected.name].values()))[:, -30:]
        assert not np.isnan(latest).all(), (name, expected.key)


def test_histograms_are_whole(
    generated: dict[str, Generated], names: signals_module.Signals
) -> None:
    h = generated["webhook_storm"].history
    for key, metric in names.doc.metrics.items():
        if metric.type != "histogram":
            continue
        name = names.metric_name(key)
        for labels, count in h.series[f"{name}_count"].items():
            buckets = np.stack(
                [
                    h.series[f"{name}_bucket"][(*labels, ("le", le))]
                    for le in [*map(str, BUCKETS_MS), "+Inf"]
                ]
            )
            assert (np.diff(buckets, axis=0) >= 0).all(), f"{name}{labels} not cumulative in le"
            assert (buckets[-1] == count).all()
            assert not np.isnan(h.series[f"{name}_sum"][labels]).any()


@pytest.mark.parametrize("name", SCENARIOS)
def test_counters_never_decrease(generated: dict[str, Generated], name: str) -> None:
    h = generated[name].history
    for sample, kind in h.types.items():
        if kind not in ("counter", "histogram"):
            continue
        for labels, values in h.series[sample].items():
            present = values[~np.isnan(values)]
            assert (np.diff(present) >= 0).all(), f"{sample}{labels} decreases"
            assert present.min() >= 0


def test_failure_series_exist_only_once_failing(
    generated: dict[str, Generated], names: signals_module.Signals
) -> None:
    h = generated["healthy"].history
    failures = h.series[names.metric_name("reconcile_failures_total")]
    assert 0 < len(failures) < 50  # a few flaky tenants, not one series per tenant and reason
    for values in failures.values():
        present = values[~np.isnan(values)]
        assert present[0] > 0 and not np.isnan(values[-1])


def test_same_spec_same_file(tmp_path: Path, generated: dict[str, Generated]) -> None:
    again = tmp_path / "again.om"
    write_openmetrics(scenario("policy_timeout"), again)
    assert again.read_bytes() == generated["policy_timeout"].path.read_bytes()


def test_mapping_names_are_used(tmp_path: Path) -> None:
    raw = yaml.safe_load(signals_module.DEFAULT_PATH.read_text(encoding="utf-8"))
    raw["metrics"]["reconcile_total"]["name"] = "tenancy_reconcile_attempts_total"
    raw["labels"]["tenant"] = "tenant_id"
    mapping_file = tmp_path / "signals.yaml"
    mapping_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    out = tmp_path / "renamed.om"
    write_openmetrics(scenario("healthy", tenants=5), out, signals_module.load(mapping_file))
    text = out.read_text(encoding="utf-8")
    assert "# TYPE tenancy_reconcile_attempts counter" in text
    assert 'tenancy_reconcile_attempts_total{region="' in text
    assert "\nreconcile_total{" not in text
    assert 'tenant_id="t-000001"' in text and 'tenant="' not in text


def test_unknown_mapped_metric_is_a_sandbox_error(tmp_path: Path) -> None:
    raw = yaml.safe_load(signals_module.DEFAULT_PATH.read_text(encoding="utf-8"))
    raw["metrics"]["reconcile_lag_seconds"] = {
        "subsystem": "controller",
        "type": "gauge",
        "labels": ["region"],
    }
    mapping_file = tmp_path / "signals.yaml"
    mapping_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(SandboxError, match="reconcile_lag_seconds"):
        write_openmetrics(
            scenario("healthy", tenants=5), tmp_path / "x.om", signals_module.load(mapping_file)
        )
    assert not (tmp_path / "x.om").exists()


# -- healthy and unaffected regions pass every SLO ----------------------------------------------
def test_healthy_passes_every_slo_in_every_region(
    generated: dict[str, Generated], names: signals_module.Signals
) -> None:
    g = generated["healthy"]
    for region in g.scenario.spec.regions:
        assert slo_breaches(g, names, region) == [], region


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_healthy_passes_for_other_seeds_and_a_longer_history(
    tmp_path: Path, names: signals_module.Signals, seed: int
) -> None:
    sc = Scenario(
        ScenarioSpec(
            name="healthy", seed=seed, tenants=100, duration_s=3 * 3600, end=END, step_s=STEP_S
        )
    )
    path = tmp_path / "h.om"
    stats = write_openmetrics(sc, path)
    g = Generated(sc, parse(path, int(sc.start.timestamp()), int(sc.end.timestamp())), stats, path)
    for region in sc.spec.regions:
        assert slo_breaches(g, names, region) == [], (seed, region)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_faults_stay_in_their_region(
    generated: dict[str, Generated], names: signals_module.Signals, pattern: str
) -> None:
    g = generated[pattern]
    for region in g.scenario.spec.regions:
        if region != g.scenario.truth.region:
            assert slo_breaches(g, names, region) == [], region


# -- each fault's signature ---------------------------------------------------------------------
def test_reconcile_backlog(generated: dict[str, Generated], names: signals_module.Signals) -> None:
    g = generated["reconcile_backlog"]
    h, n, r = g.history, names.metric_name, {"region": g.scenario.truth.region}
    depth = h.sum(n("queue_depth"), **r)
    first = since_incident(g)
    assert depth[-1] > 300 and depth[-1] > depth[first + 10] > depth[first - 1]
    by_reason = {
        k: at_end(v) for k, v in h.total(n("reconcile_failures_total"), by="reason", **r).items()
    }
    assert (by_reason["policy_error"] + by_reason["throttled"]) / sum(by_reason.values()) > 0.7
    by_tenant = h.total(n("reconcile_failures_total"), by="tenant", **r)
    top = sorted(by_tenant, key=lambda t: -at_end(by_tenant[t]))[:3]
    assert set(top) <= set(g.scenario.truth.tenants)
    throttled = h.sum(n("controller_throttled_total"), **r)
    assert at_end(throttled) > 10 * (throttled[first - 1] - throttled[first - 1 - WINDOW])
    assert "controller success" in slo_breaches(g, names, g.scenario.truth.region)


def test_webhook_storm(generated: dict[str, Generated], names: signals_module.Signals) -> None:
    g = generated["webhook_storm"]
    h, n, truth = g.history, names.metric_name, g.scenario.truth
    r = {"region": truth.region}
    by_endpoint = {
        k: at_end(v) for k, v in h.total(n("webhook_failures_total"), by="endpoint", **r).items()
    }
    assert max(by_endpoint, key=by_endpoint.__getitem__) == truth.endpoints[0]
    assert by_endpoint[truth.endpoints[0]] > 0.9 * sum(by_endpoint.values())
    codes = {
        k: at_end(v)
        for k, v in h.total(
            n("webhook_failures_total"), by="code", endpoint=truth.endpoints[0], **r
        ).items()
    }
    assert set(codes) >= {"503", "timeout", "connection_refused"}
    for labels, count in h.select(f"{n('webhook_latency_ms')}_count", **r).items():
        if at_end(count) < 500:
            continue  # a p99 of a few deliveries is noise, in production too
        endpoint = dict(labels)["endpoint"]
        p99 = quantile(h, n("webhook_latency_ms"), 0.99, endpoint=endpoint, **r)[-1]
        assert (p99 > 2000) == (endpoint in truth.endpoints), endpoint
    backoff = h.total(n("webhook_retry_backoff_seconds"), by="region")
    assert backoff[truth.region][-1] > 8 and all(
        v[-1] < 2 for k, v in backoff.items() if k != truth.region
    )
    healthy_ratio = ratio(
        sum(
            (
                v
                for e, v in h.total(n("webhook_failures_total"), by="endpoint", **r).items()
                if e not in truth.endpoints
            ),
            np.zeros(len(h.ts)),
        ),
        sum(
            (
                v
                for e, v in h.total(n("webhook_deliveries_total"), by="endpoint", **r).items()
                if e not in truth.endpoints
            ),
            np.zeros(len(h.ts)),
        ),
    )
    assert healthy_ratio.max() < 0.01


def test_policy_timeout(generated: dict[str, Generated], names: signals_module.Signals) -> None:
    g = generated["policy_timeout"]
    h, n, region = g.history, names.metric_name, g.scenario.truth.region
    r = {"region": region}
    p99 = quantile(h, n("policy_eval_latency_ms"), 0.99, window=5, **r)
    assert p99[-1] > 250
    reasons = {
        k: at_end(v) for k, v in h.total(n("policy_eval_errors_total"), by="reason", **r).items()
    }
    assert (reasons["timeout"] + reasons["unavailable"]) / sum(reasons.values()) > 0.9
    hits = h.total(n("policy_cache_requests_total"), by="result", **r)
    assert at_end(hits["hit"]) / (at_end(hits["hit"]) + at_end(hits["miss"])) < 0.9
    up = np.stack(list(h.select(n("policy_service_up"), **r).values()))
    assert set(np.unique(up[:, since_incident(g) :])) == {0.0, 1.0}
    assert (np.abs(np.diff(up[:, -30:], axis=1)).sum(axis=1) >= 3).all()  # flapping, not down
    # Downstream: the controller suffers too, but later and less than the policy service.
    policy_errors = ratio(
        h.sum(n("policy_eval_errors_total"), **r), h.sum(n("policy_eval_total"), **r), window=5
    )
    reconcile_errors = ratio(
        h.sum(n("reconcile_failures_total"), reason="policy_error", **r),
        h.sum(n("reconcile_total"), **r),
        window=5,
    )
    assert reconcile_errors[-1] > 0.005 and policy_errors[-1] > 5 * reconcile_errors[-1]
    assert np.argmax(p99 > 250) < np.argmax(reconcile_errors > 0.005)
    assert np.argmax(policy_errors > 0.005) < np.argmax(reconcile_errors > 0.005)
    depth = h.sum(n("queue_depth"), **r)
    assert depth[-5:].mean() > 3 * depth[: since_incident(g)].mean()
    assert depth.max() < generated["reconcile_backlog"].history.sum(n("queue_depth"), **r).max()


def test_rate_limit_saturation(
    generated: dict[str, Generated], names: signals_module.Signals
) -> None:
    g = generated["rate_limit_saturation"]
    h, n, truth = g.history, names.metric_name, g.scenario.truth
    r = {"region": truth.region}
    requests = h.sum(n("http_requests_total"), **r)
    errors = h.total(n("http_errors_total"), by="code", **r)
    assert ratio(errors["429"], requests)[-1] > 0.02
    five_xx = sum((v for c, v in errors.items() if c.startswith("5")), np.zeros(len(h.ts)))
    assert ratio(five_xx, requests).max() < 0.005
    by_client = {
        k: at_end(v) for k, v in h.total(n("gateway_throttled_total"), by="client_id", **r).items()
    }
    culprits = sum(by_client[c] for c in truth.client_ids)
    assert culprits > 0.7 * sum(by_client.values())
    assert max(by_client, key=by_client.__getitem__) in truth.client_ids


def test_migration_hang(generated: dict[str, Generated], names: signals_module.Signals) -> None:
    g = generated["migration_hang"]
    h, n, truth = g.history, names.metric_name, g.scenario.truth
    r = {"region": truth.region}
    stuck = h.sum(n("lifecycle_jobs_in_progress"), job_type="migrate", step="verify_checksums", **r)
    first = since_incident(g)
    assert (stuck[first:] == len(truth.job_ids)).all()
    assert stuck_minutes(stuck) * STEP_S / 60 > 30
    lag = h.select(n("migration_replication_lag_seconds"), **r)
    for tenant in truth.tenants:
        (series,) = [v for labels, v in lag.items() if dict(labels)["tenant"] == tenant]
        assert series[-1] > 60 and series[-1] > series[first + 10]
    failures = h.total(n("lifecycle_job_failures_total"), by="tenant", step="verify_checksums", **r)
    assert any(failures.get(t, np.zeros(1))[-1] > 0 for t in truth.tenants)
    assert "stuck step" in slo_breaches(g, names, truth.region)
