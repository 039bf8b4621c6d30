"""The bundle's way out of a Job's pod, at the wire (moto's S3 server): what the pod uploads the
service fetches back only when every file matches the manifest; a tampered, missing or foreign
object leaves nothing in OUT, and the executor reports the attempt unsealed, so nothing is
attached."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from tenancy_diag.running.bundles import create_bundle, verify_bundle, write_manifest
from tenancy_diag.sandbox import moto_proc
from tenancy_diag.service.job_calls import PodOutcome
from tenancy_diag.service.job_manifests import JobSettings
from tenancy_diag.service.jobs import Job
from tenancy_diag.service.kube_jobs import KubernetesJobExecutor
from tenancy_diag.service.sinks.handoff import BundleNotFetched, S3Handoff
from tenancy_diag.service.worker import judge

pytestmark = pytest.mark.integration
CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}
INCIDENT, RUN = "INC-9", "20261127T030000Z-abcdef"


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = moto_proc.start_moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture
def s3(moto, monkeypatch, request):
    # The handoff takes credentials from boto3's chain, as the pod and the service do.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", **CREDENTIALS)
    bucket = f"evidence-{abs(hash(request.node.name)) % 10**8}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


@pytest.fixture
def uploaded(tmp_path, moto, s3):
    """A sealed bundle, uploaded the way the pod uploads it."""
    client, bucket = s3
    bundle = create_bundle(tmp_path / "pod", INCIDENT, run_id=RUN)
    (bundle.root / "findings").mkdir()
    (bundle.root / "findings" / "webhook.json").write_text('{"status": "ok"}\n')
    (bundle.root / "summary.json").write_text('{"subsystems": []}\n')
    write_manifest(bundle, {"incident": INCIDENT, "run_id": RUN})
    audit = tmp_path / "pod" / "audit.jsonl"
    audit.write_text(json.dumps({"action": "run", "run_id": RUN, "exit_code": 0}) + "\n")
    handoff = S3Handoff(bucket, "bundles", moto.url)
    handoff.upload(bundle.root, audit=audit)
    return handoff, client, bucket


def test_what_the_pod_uploads_comes_back_intact(uploaded, tmp_path):
    handoff, _, _ = uploaded
    fetched = handoff.fetch(INCIDENT, RUN, tmp_path / "out")
    assert fetched == (tmp_path / "out" / INCIDENT / RUN).resolve()
    assert verify_bundle(fetched) == []
    assert (fetched / "findings" / "webhook.json").read_text() == '{"status": "ok"}\n'
    assert sorted(p.name for p in (tmp_path / "out" / INCIDENT).iterdir()) == [RUN]
    # The pod's audit line travels beside the bundle, outside it (the manifest covers the bundle).
    assert handoff.audit_lines(INCIDENT, RUN) == [{"action": "run", "run_id": RUN, "exit_code": 0}]
    assert handoff.audit_lines(INCIDENT, "20261127T030000Z-000000") == []


def test_a_tampered_object_is_refused_and_nothing_lands(uploaded, tmp_path):
    handoff, client, bucket = uploaded
    key = f"bundles/{INCIDENT}/{RUN}/findings/webhook.json"
    client.put_object(Bucket=bucket, Key=key, Body=b'{"status": "error"}\n')
    with pytest.raises(BundleNotFetched, match=r"findings/webhook\.json has sha256") as caught:
        handoff.fetch(INCIDENT, RUN, tmp_path / "out")
    assert "nothing attached" in str(caught.value)
    folder = tmp_path / "out" / INCIDENT
    assert list(folder.iterdir()) == [], "neither the bundle nor its staging folder stays"


def test_a_missing_object_or_manifest_is_refused(uploaded, tmp_path):
    handoff, client, bucket = uploaded
    client.delete_object(Bucket=bucket, Key=f"bundles/{INCIDENT}/{RUN}/summary.json")
    with pytest.raises(BundleNotFetched, match=r"summary\.json is missing"):
        handoff.fetch(INCIDENT, RUN, tmp_path / "out")
    with pytest.raises(BundleNotFetched, match=r"manifest\.json is missing"):
        handoff.fetch(INCIDENT, "20261127T030000Z-000000", tmp_path / "out")


def test_a_manifest_for_another_run_is_refused(uploaded, tmp_path):
    handoff, client, bucket = uploaded
    source = f"bundles/{INCIDENT}/{RUN}/manifest.json"
    body = client.get_object(Bucket=bucket, Key=source)["Body"].read()
    other = "20261127T030000Z-111111"
    client.put_object(Bucket=bucket, Key=f"bundles/{INCIDENT}/{other}/manifest.json", Body=body)
    with pytest.raises(BundleNotFetched, match="not 'INC-9' '20261127T030000Z-111111'"):
        handoff.fetch(INCIDENT, other, tmp_path / "out")


class _FinishedJobs:
    """The cluster's side, as a Job that completed: the executor's S3 half alone."""

    def create_or_find(self, manifest):
        return {**manifest, "metadata": {**manifest["metadata"]}}, True

    def wait_finished(self, name, deadline):
        return {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}

    def pod_outcome(self, name):
        return PodOutcome(0, "tenancy-diag: uploaded 4 files")

    def delete(self, name):
        self.deleted = name


def _job() -> Job:
    request = {"dedupe_key": "k" * 64, "subsystems": ["webhook"], "region": None}
    return Job(
        id=1,
        kind="incident",
        incident_id=INCIDENT,
        subsystems=("webhook",),
        region=None,
        tenant=None,
        severity=None,
        starts_at=None,
        status="running",
        attempts=1,
        run_id=RUN,
        bundle=None,
        exit_code=None,
        error=None,
        created_at="",
        updated_at="",
        request=request,
    )


def test_the_executor_attaches_nothing_from_a_tampered_bundle(uploaded, tmp_path):
    handoff, client, bucket = uploaded
    settings = JobSettings("ns", "img", "sa", f"s3://{bucket}/bundles")
    jobs = _FinishedJobs()
    executor = KubernetesJobExecutor(tmp_path / "out", settings, jobs=jobs, handoff=handoff)
    key = f"bundles/{INCIDENT}/{RUN}/summary.json"
    client.put_object(Bucket=bucket, Key=key, Body=b'{"subsystems": [], "forged": true}\n')
    execution = executor.execute(_job(), RUN, 60)
    assert not execution.complete and not execution.timed_out
    assert execution.stderr_tail.splitlines()[-1].startswith(
        f"tenancy-diag: s3://{bucket}/bundles/{INCIDENT}/{RUN}/summary.json has sha256"
    )
    verdict = judge(execution, 60)
    assert verdict.action == "retry" and "summary.json has sha256" in verdict.reason
    assert jobs.deleted  # the attempt is over: the next one is a new Job

    # The pod's upload again, intact: the same call now seals the bundle.
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=(Path(tmp_path / "pod" / INCIDENT / RUN / "summary.json")).read_bytes(),
    )
    execution = executor.execute(_job(), RUN, 60)
    assert execution.complete and execution.exit_code == 0 and verify_bundle(execution.bundle) == []
    assert json.loads((execution.bundle / "manifest.json").read_text())["run_id"] == RUN
