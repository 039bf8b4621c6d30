"""Controller restart's redundancy precondition against the sandbox's Kubernetes API, served
with a single controller replica: the dry run says it would refuse, acting refuses, no pod
is touched."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tenancy_diag.errors import RemediationRefused
from tenancy_diag.remediating import api as rm
from tenancy_diag.remediating.kube import KubeActions
from tenancy_diag.sandbox import kube_api, serving
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec
from tenancy_diag.settings import KubeSettings

pytestmark = pytest.mark.integration
TOKEN = "restart-test-token"
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
    pods = KubeActions(KubeSettings(kubeconfig=single_replica))
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
