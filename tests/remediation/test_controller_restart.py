"""Controller restart against the sandbox's Kubernetes API. Served with a single controller
replica: the dry run says it would refuse, acting refuses, no pod is touched. Served in the
namespace a changed signals mapping names: the audit and the DELETE name that namespace."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tenancy_diag import signals as signals_mod
from tenancy_diag.errors import RemediationRefused
from tenancy_diag.remediating import api as rm
from tenancy_diag.remediating.kube import KubeActions
from tenancy_diag.sandbox import kube_api, serving
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec
from tenancy_diag.settings import KubeSettings

pytestmark = pytest.mark.integration
TOKEN = "restart-test-token"
NAMESPACE = "tenancy-blue"  # not KubeSettings' default, so a fallback to it shows
REGION = "us-east-1"
END = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


@pytest.fixture
def single_replica(tmp_path: Path) -> Iterator[Path]:
    scenario = Scenario(
        ScenarioSpec(name="reconcile_backlog", tenants=30, regions=(REGION,), end=END)
    )
    options = kube_api.WorkloadOptions(replicas={"tenancy-controller": 1})
    httpd, thread = serving.serve_in_thread(kube_api.make_handler(scenario, TOKEN, options=options))
    path = tmp_path / "kubeconfig"
    kube_api.write_kubeconfig(path, f"http://127.0.0.1:{httpd.server_address[1]}", TOKEN, {})
    yield path
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _params(kubeconfig: Path, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "incident_id": "INC-1",
        "dry_run": True,
        "confirm": "",
        "end": "2026-11-27T03:00:00Z",
        "prometheus_url": "",
        "kubeconfig": str(kubeconfig),
        "aws_endpoint_url": "",
        "tenancy_api_url": "",
        "findings_path": str(tmp_path / "findings.json"),
        "audit_path": str(tmp_path / "audit.jsonl"),
        "bundle_dir": "",
        **extra,
    }


def test_a_single_replica_refuses_the_restart(
    single_replica: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENANCY_DIAG_ACTOR", "alice")
    namespace = signals_mod.load().doc.logs.namespace
    pods = KubeActions(KubeSettings(kubeconfig=single_replica), namespace=namespace)
    before = pods.pods(REGION, "app=tenancy-controller")
    session = rm.open_session("controller_restart", _params(single_replica, tmp_path))
    plan = rm.plan(session, region=REGION, pods=1)
    failed = {c.name for c in plan.blocking()}
    assert failed == {
        "replicas > 1 for redundancy",
        f"more than one Ready controller pod in {REGION}",
    }
    dry = rm.act(session, plan)
    assert rm.finish(session, dry, [], tmp_path / "f.json").status == "degraded"
    acting = _params(single_replica, tmp_path, dry_run=False, confirm="INC-1")
    session = rm.open_session("controller_restart", acting)
    with pytest.raises(RemediationRefused, match="replicas > 1"):
        rm.act(session, rm.plan(session, region=REGION, pods=1))
    assert pods.pods(REGION, "app=tenancy-controller") == before
    pods.close()


@pytest.fixture
def elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, list[tuple[str, str]]]]:
    """A signals.yaml whose ``logs.namespace`` is NAMESPACE, and a cluster serving the
    controller there; yields its kubeconfig and the (method, path) of every request."""
    raw = yaml.safe_load(signals_mod.DEFAULT_PATH.read_text(encoding="utf-8"))
    assert raw["logs"]["namespace"] != NAMESPACE
    raw["logs"]["namespace"] = NAMESPACE
    changed = tmp_path / "signals.yaml"
    changed.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    monkeypatch.setattr(signals_mod, "DEFAULT_PATH", changed)
    scenario = Scenario(
        ScenarioSpec(name="reconcile_backlog", tenants=30, regions=(REGION,), end=END)
    )
    options = kube_api.WorkloadOptions(ready_delay_s=0)
    served = kube_api.make_handler(scenario, TOKEN, options=options)
    seen: list[tuple[str, str]] = []

    class Recording(served):  # type: ignore[misc, valid-type]
        def _route(self, method: str, body: bytes) -> Any:
            seen.append((method, urlsplit(self.path).path))
            return super()._route(method, body)

    httpd, thread = serving.serve_in_thread(Recording)
    path = tmp_path / "kubeconfig"
    kube_api.write_kubeconfig(path, f"http://127.0.0.1:{httpd.server_address[1]}", TOKEN, {})
    yield path, seen
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_the_audit_and_the_delete_name_the_mappings_namespace(
    elsewhere: tuple[Path, list[tuple[str, str]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig, seen = elsewhere
    monkeypatch.setenv("TENANCY_DIAG_ACTOR", "alice")
    acting = _params(kubeconfig, tmp_path, dry_run=False, confirm="INC-1")
    session = rm.open_session("controller_restart", acting)
    run = rm.act(session, rm.plan(session, region=REGION, pods=1))
    assert [o.state for o in run.outcomes] == ["done"], run.frame()
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    deletes = [a["command"] for a in audit if a["command"][1:2] == ["DELETE"]]
    # Written ahead: the intent before the DELETE, its result after, one call.
    assert [a["phase"] for a in audit if a["command"][1:2] == ["DELETE"]] == ["intent", "result"]
    assert len({a["call_id"] for a in audit if a["command"][1:2] == ["DELETE"]}) == 1, audit
    assert deletes[0] == deletes[1]
    audited = deletes[0][2]
    assert audited.startswith(f"/api/v1/namespaces/{NAMESPACE}/pods/tenancy-controller-")
    # What was audited is what the cluster was asked to do, and nothing went elsewhere.
    assert [p for m, p in seen if m == "DELETE"] == [audited]
    assert all(f"/namespaces/{NAMESPACE}/" in p for _, p in seen if "/namespaces/" in p), seen
