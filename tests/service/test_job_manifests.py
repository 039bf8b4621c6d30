"""The Kubernetes Job a queued job becomes: its name, its pod's security, its time, its command."""

from __future__ import annotations

import argparse
import json
import re

import pytest
from kubernetes.client import V1Job

from tenancy_diag.cli import build_parser
from tenancy_diag.errors import ConfigError
from tenancy_diag.sandbox.kube_api.jobs import validate_job
from tenancy_diag.service.intake import parse_incident
from tenancy_diag.service.job_commands import job_settings
from tenancy_diag.service.job_manifests import (
    RUN_ID,
    JobSettings,
    job_manifest,
    job_name,
)
from tenancy_diag.service.store import Store

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
SETTINGS = JobSettings(
    namespace="tenancy-diag",
    image="registry.example.com/tenancy-diag:1.4.0",
    service_account="tenancy-diag-run",
    evidence="s3://evidence/bundles",
    config_map="tenancy-diag-sources",
    secret="tenancy-diag-tokens",
)


def _job(tmp_path, **fields):
    body = {
        "incident_id": "INC-7",
        "subsystem": ["webhook", "policy"],
        "region": "eu-west-1",
        "tenant": "t-000042",
        "time": "2026-11-27T03:00:00Z",
        **fields,
    }
    with Store(tmp_path / f"q-{len(list(tmp_path.iterdir()))}.sqlite") as store:
        store.enqueue(parse_incident(json.dumps(body).encode()))
        return store.claim("test")


def _pod(manifest):
    return manifest["spec"]["template"]["spec"]


def test_the_name_is_the_requests_not_the_attempts(tmp_path):
    job = _job(tmp_path)
    again = _job(tmp_path)  # the same request, received by another replica's queue
    other = _job(tmp_path, time="2026-11-27T03:05:00Z")
    assert job_name(job) == job_name(again) != job_name(other)
    assert job_name(job).startswith("tenancy-diag-inc-7-")
    one = job_manifest(job, "20261127T030000Z-aaaaaa", 600, SETTINGS)
    two = job_manifest(again, "20261127T030001Z-bbbbbb", 600, SETTINGS)
    assert one["metadata"]["name"] == two["metadata"]["name"]
    assert one["metadata"]["annotations"][RUN_ID] == "20261127T030000Z-aaaaaa"


@pytest.mark.parametrize("incident", ["INC_2026.11.27_X", "A" * 128, "x--y.z_", "0", "9-"])
def test_every_name_is_a_dns_label_of_at_most_63_characters(tmp_path, incident):
    name = job_name(_job(tmp_path, incident_id=incident))
    assert len(name) <= 63 and DNS_LABEL.fullmatch(name), name


def test_time_and_retries_belong_to_the_service(tmp_path):
    manifest = job_manifest(_job(tmp_path), "R-1", 1799.2, SETTINGS)
    spec = manifest["spec"]
    assert spec["activeDeadlineSeconds"] == 1800  # the run timeout, rounded up
    assert spec["backoffLimit"] == 0  # the worker owns retries
    assert spec["ttlSecondsAfterFinished"] == SETTINGS.ttl_after_finished_s
    assert _pod(manifest)["restartPolicy"] == "Never"


def test_the_pod_runs_as_a_locked_down_non_root_user(tmp_path):
    pod = _pod(job_manifest(_job(tmp_path), "R-1", 600, SETTINGS))
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # With a read-only root, everything written goes to an emptyDir of bounded size.
    assert volumes[mounts["/work"]["name"]]["emptyDir"] == {"sizeLimit": "2048Mi"}
    assert volumes[mounts["/tmp"]["name"]]["emptyDir"] == {"sizeLimit": "512Mi"}
    assert {"name": "HOME", "value": "/tmp"} in container["env"]
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1024Mi", "ephemeral-storage": "2560Mi"},
        "limits": {"cpu": "2000m", "memory": "2048Mi", "ephemeral-storage": "2560Mi"},
    }
    assert pod["serviceAccountName"] == "tenancy-diag-run"


def test_sources_come_from_a_config_map_and_tokens_from_files(tmp_path):
    pod = _pod(job_manifest(_job(tmp_path), "R-1", 600, SETTINGS))
    (container,) = pod["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": "tenancy-diag-sources"}}]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["TENANCY_API_TOKEN_FILE"] == "/etc/tenancy-diag/secrets/tenancy-api-token"
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/etc/tenancy-diag/secrets/aws-credentials"
    assert not any("valueFrom" in e for e in container["env"])  # no secret in the environment
    assert env["TENANCY_DIAG_ACTOR"] == "system:serviceaccount:tenancy-diag:tenancy-diag-run"
    secrets = next(v for v in pod["volumes"] if "secret" in v)
    assert secrets["secret"] == {"secretName": "tenancy-diag-tokens", "defaultMode": 0o440}
    bare = JobSettings(SETTINGS.namespace, SETTINGS.image, SETTINGS.service_account, "s3://b")
    pod = _pod(job_manifest(_job(tmp_path), "R-1", 600, bare))
    assert not any("secret" in v for v in pod["volumes"])
    assert "envFrom" not in pod["containers"][0]


def test_the_pod_runs_the_runners_command_then_uploads(tmp_path):
    job = _job(tmp_path)
    (container,) = _pod(job_manifest(job, "R-1", 600, SETTINGS, ["--sample"]))["containers"]
    assert container["command"] == ["tenancy-diag"]
    assert container["args"] == [
        "run-and-upload",
        "--to",
        "s3://evidence/bundles",
        "webhook",
        "policy",
        "--incident",
        "INC-7",
        "--out",
        "/work/out",
        "--run-id",
        "R-1",
        "--region",
        "eu-west-1",
        "--tenant",
        "t-000042",
        "--sample",
    ]
    # The command line parses as the CLI will parse it in the pod.
    parsed = build_parser().parse_args([*container["command"][1:], *container["args"]])
    run = build_parser().parse_args(["run", *parsed.run_args])
    assert (run.incident, run.run_id, run.sample) == ("INC-7", "R-1", True)


def test_the_manifest_passes_the_clients_model_and_the_apis_validation(tmp_path):
    manifest = job_manifest(_job(tmp_path), "R-1", 600, SETTINGS)
    model = V1Job.from_dict(manifest)
    assert model is not None and model.spec.backoff_limit == 0
    assert validate_job(manifest, "tenancy-diag") == manifest["metadata"]["name"]


def test_missing_settings_name_their_flags():
    with pytest.raises(ConfigError, match="--image, --service-account, --evidence-bucket"):
        JobSettings(namespace="ns", image="", service_account="", evidence="")
    with pytest.raises(ConfigError, match="not s3://bucket/prefix"):
        JobSettings("ns", "img", "sa", "https://bucket/prefix")


def _serve(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def test_serve_offers_the_kubernetes_executor(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = capsys.readouterr().out
    for flag in ("--executor {subprocess,pool,kubernetes}", "--namespace NS", "--image IMG"):
        assert flag in text
    for flag in ("--service-account SA", "--evidence-bucket", "--job-config-map", "--job-secret"):
        assert flag in text
    assert job_settings(_serve()) is None
    settings = job_settings(
        _serve(
            "--executor=kubernetes",
            "--namespace=ns",
            "--image=img:1",
            "--service-account=sa",
            "--evidence-bucket=s3://b/p",
        )
    )
    assert settings is not None and (settings.namespace, settings.evidence) == ("ns", "s3://b/p")
    with pytest.raises(ConfigError, match="--namespace is for --executor kubernetes"):
        job_settings(_serve("--namespace=ns"))


def test_the_pod_carries_no_service_or_sink_token(tmp_path, monkeypatch):
    # Issue 11: the pod's environment is written out name by name, never inherited from the
    # service, so its own secrets cannot reach a Job even when they are set here.
    from tenancy_diag.service.executor import WITHHELD

    for name in WITHHELD:
        monkeypatch.setenv(name, "secret-value")
    manifest = job_manifest(_job(tmp_path), "R-1", 600, SETTINGS)
    (container,) = _pod(manifest)["containers"]
    names = {variable["name"] for variable in container["env"]}
    assert not names & WITHHELD
    assert "secret-value" not in json.dumps(manifest)
    assert container["envFrom"] == [{"configMapRef": {"name": "tenancy-diag-sources"}}]
