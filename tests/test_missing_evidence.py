"""Missing evidence is never health (issue 9): each subsystem diagnosis, run in-process against
the recorded sample incident, with one metric family, one source or one step taken away.

A metric family is removed by rewriting, in a copy of the sample's snapshot, every recorded
Prometheus answer whose query names the family's series to an empty result; a source is made
unreachable by the real live source pointed at a closed port, or left unconfigured.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from urllib3.util.retry import Retry

import tenancy_diag
from tenancy_diag import signals as signals_mod
from tenancy_diag.analysis.findings import Findings
from tenancy_diag.diagnosing import Context, Diagnosis, connect, diagnosis_class
from tenancy_diag.errors import ConfigError, SourceUnavailable
from tenancy_diag.sources import prometheus
from tenancy_diag.sources.base import PeekRequest, QueueRef
from tenancy_diag.sources.registry import registry as source_kinds
from tenancy_diag.sources.snapshots import INDEX_FILE, canonical, sha256
from tenancy_diag.subsystems import BUILT_IN, SloSpec, Subsystem

SAMPLE = Path(tenancy_diag.__file__).parent / "data" / "sample"
SNAPSHOTS = SAMPLE / "snapshots"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
WINDOW = json.loads((SAMPLE / "sample.json").read_text(encoding="utf-8"))["parameters"]
SIGNALS = signals_mod.load()
SUBSYSTEMS: dict[str, Subsystem] = {s.name: s for s in BUILT_IN}
# What `run all --sample` concludes: the policy timeout and the reconcile backlog it causes.
SAMPLE_STATUS = {
    "controller": "failing",
    "webhook": "ok",
    "policy": "failing",
    "api": "ok",
    "lifecycle": "ok",
}
# A port nothing listens on: every connection is refused at once.
CLOSED = "http://127.0.0.1:9"
Alter = Callable[[Context], None]


# -- running a diagnosis as its notebook does ----------------------------------------------------
def notebook_thresholds(notebook: str) -> dict[str, float]:
    """The SLO thresholds a notebook's parameters cell declares (its defaults)."""
    cells = json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text(encoding="utf-8"))["cells"]
    cell = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    found: dict[str, float] = {}
    for node in ast.parse("".join(cell["source"])).body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id.endswith(("_min", "_max"))
            and node.value is not None
        ):
            found[node.target.id] = float(ast.literal_eval(node.value))
    return found


def step_names(kind: type[Diagnosis]) -> list[str]:
    return sorted(n for n in dir(kind) if n.startswith("step") and callable(getattr(kind, n)))


def diagnose(
    subsystem: str,
    folder: Path | None = None,
    *,
    alter: Alter | None = None,
    steps: list[str] | None = None,
) -> Diagnosis:
    """The subsystem's diagnosis replayed from ``folder``, ``steps`` run (all, in name order,
    unless given); ``alter`` changes the context's sources first."""
    described = SUBSYSTEMS[subsystem]
    ctx = connect(
        f"test-{subsystem}",
        end=WINDOW["end"],
        lookback=WINDOW["lookback"],
        incident_start=WINDOW["incident_start"],
        replay_dir=str(folder or SNAPSHOTS / described.notebook),
        thresholds=notebook_thresholds(described.notebook),
    )
    if alter is not None:
        alter(ctx)
    diagnosis = diagnosis_class(subsystem)(ctx)
    for name in step_names(type(diagnosis)) if steps is None else steps:
        getattr(diagnosis, name)()
    return diagnosis


def comparable(findings: Findings) -> dict[str, Any]:
    data = findings.to_json()
    data.pop("generated_at")
    return data


def assert_not_ok(findings: Findings, *named: str) -> None:
    """Not ok, and the findings say what was missing (each of ``named`` among it)."""
    assert findings.status != "ok", findings.summary
    assert findings.missing, findings.summary
    assert "Missing" in findings.summary, findings.summary
    for text in named:
        assert any(text in m for m in findings.missing), (text, findings.missing)


@pytest.fixture(scope="module")
def baseline() -> dict[str, Findings]:
    """Every subsystem's findings, its steps run in order on the unmodified sample."""
    return {name: diagnose(name).assess() for name in SUBSYSTEMS}


def test_helper_gives_the_sample_runs_verdicts(baseline):
    assert {name: f.status for name, f in baseline.items()} == SAMPLE_STATUS
    for name, findings in baseline.items():
        assert findings.missing == [], (name, findings.missing)
        assert set(findings.sources.values()) == {"ok"}, (name, findings.sources)


# -- 2. each metric family removed in turn ---------------------------------------------------------
def resealed(source: Path, target: Path, change: Callable[[dict[str, Any]], bool]) -> int:
    """Copy a snapshot, ``change`` applied to each call file (True: changed), checksums fixed;
    returns how many calls changed."""
    shutil.copytree(source, target)
    index_path = target / INDEX_FILE
    index = json.loads(index_path.read_text(encoding="utf-8"))
    changed = 0
    for entry in index["calls"]:
        path = target / entry["file"]
        call = json.loads(path.read_text(encoding="utf-8"))
        if "response" not in call or not change(call):
            continue
        call["response_sha256"] = sha256(canonical(call["response"]))
        data = (json.dumps(call, indent=2, sort_keys=True) + "\n").encode()
        path.write_bytes(data)
        entry["sha256"] = sha256(data)
        changed += 1
    index_path.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return changed


def series_pattern(metric: str) -> re.Pattern[str]:
    """Any selector of the metric's series (a histogram's _bucket, _sum and _count too)."""
    name = re.escape(SIGNALS.metric_name(metric))
    parts = "(?:_bucket|_sum|_count)?" if SIGNALS.doc.metrics[metric].type == "histogram" else ""
    return re.compile(rf"(?<![\w:]){name}{parts}\{{")


def without_families(source: Path, target: Path, *metrics: str) -> int:
    """A snapshot copy where Prometheus answers every query naming these families with nothing."""
    patterns = [series_pattern(m) for m in metrics]

    def empty(call: dict[str, Any]) -> bool:
        promql = call["request"].get("promql", "")
        if call["source"] != "prometheus" or not any(p.search(promql) for p in patterns):
            return False
        call["response"] = []
        return True

    return resealed(source, target, empty)


def slo_metrics(spec: SloSpec) -> set[str]:
    """Metric keys an SLO's query reads."""
    sub, _, key = spec.query.partition(".")
    template = SIGNALS.doc.queries[sub][key]
    return {m for m in SIGNALS.doc.metrics if re.search(r"\{\{\s*" + m + r"\b", template)}


METRIC_CASES = [
    pytest.param(metric, sub.name, id=f"{metric}-{sub.name}")
    for metric in SIGNALS.doc.metrics
    for sub in BUILT_IN
    if any(metric in slo_metrics(spec) for spec in sub.slos)
]
UNUSED_BY_SLOS = sorted(set(SIGNALS.doc.metrics) - {c.values[0] for c in METRIC_CASES})
# steps.Diagnosis.regions(): with no regions given, the fleet's are those reconcile_total names.
REGION_METRIC = "reconcile_total"
NO_REGIONS = "regions: none"
# Replication lag exists only while a migration runs (the contract's gauge per migrating tenant):
# where lifecycle_jobs_in_progress shows no migrate job, its absence is the normal and the SLO
# holds vacuously. The sample has none running at its end, so removing the lag family alone
# must leave the verdict as it was; removing the witness too must not read ok.
IDLE_WITNESS = {("migration_replication_lag_seconds", "lifecycle"): "lifecycle_jobs_in_progress"}


@pytest.mark.parametrize(("metric", "subsystem"), METRIC_CASES)
def test_metric_family_absent_is_never_ok(metric, subsystem, tmp_path, baseline):
    described = SUBSYSTEMS[subsystem]
    folder = tmp_path / "snapshot"
    assert without_families(SNAPSHOTS / described.notebook, folder, metric) > 0
    findings = diagnose(subsystem, folder).assess()
    witness = IDLE_WITNESS.get((metric, subsystem))
    if witness is not None:
        assert comparable(findings) == comparable(baseline[subsystem])
        folder = tmp_path / "without-witness"
        without_families(SNAPSHOTS / described.notebook, folder, metric, witness)
        findings = diagnose(subsystem, folder).assess()
    assert_not_ok(findings)
    if metric == REGION_METRIC:
        assert any(m.startswith(NO_REGIONS) for m in findings.missing), findings.missing
        return
    for spec in described.slos:
        if metric in slo_metrics(spec):
            assert any(m.startswith(f"{spec.name} in ") for m in findings.missing), (
                spec.name,
                findings.missing,
            )


@pytest.mark.parametrize("subsystem", list(SUBSYSTEMS))
def test_no_region_to_judge_is_never_ok(subsystem, tmp_path):
    # Every subsystem finds its regions through the controller's metric; without it there are
    # no SLO rows at all, which must not read as every SLO met.
    folder = tmp_path / "snapshot"
    assert without_families(SNAPSHOTS / SUBSYSTEMS[subsystem].notebook, folder, REGION_METRIC)
    findings = diagnose(subsystem, folder).assess()
    assert findings.slo == []
    assert_not_ok(findings, NO_REGIONS)


def test_metrics_unused_by_slos_are_known():
    # Read by graphs, patterns or region discovery only; listed so a new one is noticed.
    assert UNUSED_BY_SLOS == [
        "controller_throttled_total",
        "gateway_rate_limit_burst_multiplier",
        "gateway_throttled_total",
        "lifecycle_jobs_in_progress",
        "policy_service_up",
        "policy_version_info",
        "webhook_retry_backoff_seconds",
    ]


# -- 3. each source unreachable, or not configured, in turn ----------------------------------------
@pytest.fixture
def live_env(monkeypatch, tmp_path) -> dict[str, str]:
    """Endpoints of every role's live source, each on a closed port; fake credentials."""
    # A refused connection is what is tested, not the retry policy: without this, each of a
    # diagnosis's fifteen queries waits out Prometheus's retry backoff.
    monkeypatch.setattr(prometheus, "_RETRY", Retry(total=0))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("TENANCY_API_TOKEN", "fake-token")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "closed",
                "clusters": [{"name": "closed", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "closed", "user": {"token": "fake-token"}}],
                "contexts": [
                    {"name": "closed", "context": {"cluster": "closed", "user": "closed"}}
                ],
            }
        ),
        encoding="utf-8",
    )
    return {"metrics": CLOSED, "logs": str(kubeconfig), "queues": CLOSED, "admin": CLOSED}


def unreachable(role: str, endpoint: str) -> Alter:
    def alter(ctx: Context) -> None:
        kind = ctx.kind_of(role)
        described = source_kinds.get(kind)
        # As connect() builds a live source: created, then lifted to its role's Protocol.
        live = described.for_role(described.create(endpoint, ctx.redactor), ctx.signals)
        ctx.by_role[role] = (kind, live)
        ctx.sources[kind] = "ok"

    return alter


def unconfigured(role: str) -> Alter:
    def alter(ctx: Context) -> None:
        kind = ctx.kind_of(role)
        ctx.by_role.pop(role, None)
        ctx.sources[kind] = "not configured"

    return alter


ROLE_CASES = [
    pytest.param(sub.name, role, how, id=f"{sub.name}-{role}-{how}")
    for sub in BUILT_IN
    for role in sub.roles
    for how in ("unreachable", "unconfigured")
]


@pytest.mark.parametrize(("subsystem", "role", "how"), ROLE_CASES)
def test_source_missing_is_never_ok(subsystem, role, how, live_env, baseline):
    alter = unreachable(role, live_env[role]) if how == "unreachable" else unconfigured(role)
    diagnosis = diagnose(subsystem, alter=alter)
    findings = diagnosis.assess()
    kind = diagnosis.ctx.kind_of(role)
    if kind not in diagnosis.ctx.needed:
        # Lifecycle lists jobs only for tenants that lag or fail; the sample has none, so the
        # admin API is not part of this verdict (the next test gives it such a tenant).
        assert (subsystem, role) == ("lifecycle", "admin")
        assert kind not in findings.sources
        assert comparable(findings) == comparable(baseline[subsystem])
        return
    state = "unavailable" if how == "unreachable" else "not configured"
    assert findings.sources[kind].startswith(state), findings.sources
    assert_not_ok(findings, f"{kind} {state}")


def with_failing_tenant(source: Path, target: Path) -> None:
    """A copy of the lifecycle snapshot where the first tenant ranked by job failures fails."""

    def failing(call: dict[str, Any]) -> bool:
        promql = call["request"].get("promql", "")
        if not (promql.startswith("topk(") and "lifecycle_job_failures_total" in promql):
            return False
        call["response"][0]["value"][1] = "0.5"
        return True

    assert resealed(source, target, failing) == 1


@pytest.mark.parametrize("how", ["unreachable", "unconfigured"])
def test_lifecycle_needs_admin_api_for_a_failing_tenant(how, live_env, tmp_path):
    folder = tmp_path / "snapshot"
    with_failing_tenant(SNAPSHOTS / "lifecycle_orchestration", folder)
    alter = (
        unreachable("admin", live_env["admin"]) if how == "unreachable" else unconfigured("admin")
    )
    findings = diagnose("lifecycle", folder, alter=alter).assess()
    state = "unavailable" if how == "unreachable" else "not configured"
    assert_not_ok(findings, f"admin-api {state}", "stuck_step_minutes")


# -- 4. steps out of order, or skipped -------------------------------------------------------------
@pytest.mark.parametrize("subsystem", list(SUBSYSTEMS))
def test_steps_in_reverse_order_give_the_same_findings(subsystem, baseline):
    steps = step_names(diagnosis_class(subsystem))[::-1]
    findings = diagnose(subsystem, steps=steps).assess()
    assert comparable(findings) == comparable(baseline[subsystem])


SKIP_CASES = [
    pytest.param(sub.name, step, id=f"{sub.name}-{step}")
    for sub in BUILT_IN
    for step in diagnosis_class(sub.name).REQUIRES
]


@pytest.mark.parametrize(("subsystem", "skipped"), SKIP_CASES)
def test_skipped_step_is_named(subsystem, skipped):
    steps = [s for s in step_names(diagnosis_class(subsystem)) if s != skipped]
    diagnosis = diagnose(subsystem, steps=steps)
    with pytest.raises(ConfigError, match=re.escape(skipped)):
        diagnosis.assess()


# -- 5. one region's DLQ unreadable --------------------------------------------------------------
class _OneRegionDown:
    """A queue source whose calls for one region fail as an unreachable SQS would."""

    name = "sqs"

    def __init__(self, inner: Any, region: str) -> None:
        self._inner, self._region = inner, region

    def _check(self, region: str) -> None:
        if region == self._region:
            raise SourceUnavailable("sqs", f"SQS in {region} did not answer (test)")

    def depth(self, request: QueueRef) -> dict[str, Any]:
        self._check(request.region)
        return self._inner.depth(request)

    def source_queues(self, request: QueueRef) -> list[str]:
        self._check(request.region)
        return self._inner.source_queues(request)

    def peek(self, request: PeekRequest) -> list[dict[str, Any]]:
        self._check(request.region)
        return self._inner.peek(request)


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_webhook_dlq_unreadable_in_one_region_has_no_data(region):
    def alter(ctx: Context) -> None:
        kind, inner = ctx.by_role["queues"]
        ctx.by_role["queues"] = (kind, _OneRegionDown(inner, region))

    findings = diagnose("webhook", alter=alter).assess()
    rows = {row.region: row for row in findings.slo if row.name == "dlq_growth"}
    assert rows[region].value is None and rows[region].passed is None
    (other,) = set(rows) - {region}
    assert rows[other].passed is True
    assert_not_ok(findings, f"dlq_growth in {region}: no data", "sqs unavailable")
