"""``serve --executor pool``: runs in the service's threads, on one warm kernel pool."""

from __future__ import annotations

import argparse
import json

import pytest

from tenancy_diag.errors import ConfigError, TenancyDiagError
from tenancy_diag.running.bundles import verify_bundle
from tenancy_diag.running.warming import PoolSettings
from tenancy_diag.service.executor import WITHHELD
from tenancy_diag.service.intake import parse_alertmanager
from tenancy_diag.service.job_commands import add_executor_flags, pool_settings
from tenancy_diag.service.pooled import PooledExecutor
from tenancy_diag.service.store import Store


def _alert() -> bytes:
    # No region label: the shipped sample was recorded for every region at once.
    labels = {"alertname": "PolicyEvaluationSlow", "subsystem": "policy", "severity": "sev2"}
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {},
        "startsAt": "2026-11-27T04:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus",
        "fingerprint": "00000000000000a1",
    }
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="PolicyEvaluationSlow"}',
        "status": "firing",
        "receiver": "tenancy-diag",
        "groupLabels": {"alertname": "PolicyEvaluationSlow"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "truncatedAlerts": 0,
        "alerts": [alert],
    }
    return json.dumps(body).encode()


@pytest.fixture
def job(tmp_path):
    with Store(tmp_path / "q.sqlite") as store:
        store.enqueue(parse_alertmanager(_alert()))
        yield store.claim("test")


@pytest.fixture
def executor(tmp_path, monkeypatch):
    for name in WITHHELD:
        monkeypatch.setenv(name, "s3cret-of-the-service")
    monkeypatch.setenv("TENANCY_API_TOKEN", "the-runs-need-this")
    pooled = PooledExecutor(
        tmp_path / "out",
        {},
        extra_args=["--sample"],
        pool=PoolSettings(size=1),
        runtime_root=tmp_path / "runtime",
    ).start()
    yield pooled
    pooled.close()


def test_a_job_runs_on_a_warm_kernel_and_seals_its_bundle(executor, job, tmp_path):
    done = executor.execute(job, "R-1", timeout_s=300)
    assert (done.exit_code, done.timed_out, done.complete) == (0, False, True), done.stderr_tail
    assert verify_bundle(done.bundle) == []
    findings = json.loads((done.bundle / "findings" / "policy_evaluation.json").read_text())
    assert findings["status"] == "failing"  # the sample's policy timeout, found
    assert executor.pool.started >= 2  # the kernel it took was replaced
    # Connection files (HMAC keys) under the runtime folder, not /tmp.
    assert list((tmp_path / "runtime").glob("tenancy-diag-pool-*/kernel-*.json"))


def test_pool_kernels_get_no_service_secret(executor):
    assert not set(WITHHELD) & set(executor.pool.environ)
    assert executor.pool.environ["TENANCY_API_TOKEN"] == "the-runs-need-this"


def test_a_run_over_its_time_limit_is_stopped_and_its_bundle_still_sealed(executor, job):
    done = executor.execute(job, "R-2", timeout_s=0.3)
    assert done.timed_out and done.exit_code == 1 and done.complete, done.stderr_tail
    findings = json.loads((done.bundle / "findings" / "policy_evaluation.json").read_text())
    assert findings["status"] == "error"
    assert "the run exceeded its 0.3 s time limit" in findings["summary"]
    # The next run is not affected: it gets a kernel of its own.
    again = executor.execute(job, "R-3", timeout_s=300)
    assert (again.exit_code, again.timed_out) == (0, False), again.stderr_tail


def test_a_bad_runner_argument_is_refused_when_the_service_starts(tmp_path):
    with pytest.raises(TenancyDiagError, match="--no-such-flag"):
        PooledExecutor(tmp_path, {}, extra_args=["--no-such-flag"], pool=PoolSettings(size=1))


def _serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_executor_flags(parser)
    return parser.parse_args(argv)


def test_pool_flags_make_the_settings_and_are_refused_with_another_executor():
    settings = pool_settings(_serve_args("--executor", "pool", "--warm-kernels", "3"))
    assert (settings.size, settings.kernel_memory_mb) == (3, PoolSettings().kernel_memory_mb)
    with pytest.raises(ConfigError, match="--warm-kernels is for --executor pool"):
        pool_settings(_serve_args("--warm-kernels", "3"))
