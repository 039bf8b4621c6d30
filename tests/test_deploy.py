"""deploy/: every kustomization renders with `kubectl kustomize`, every rendered object passes
`kubernetes-validate --strict` for one named Kubernetes version, and the properties the manifests
promise (locked-down containers, least-privilege RBAC, no secret values, the alert rules as
generated) are checked on the rendered objects, where a patch or an overlay could have undone
them.

kubectl and kubernetes-validate are tools of the machine, not of the package: missing, these tests
skip with the install command, except under CI=true, where a skip would hide that deploy/ went
unchecked, so they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
#: The Kubernetes version the manifests are validated against (kubernetes-validate bundles
#: schemas from 1.25 on); raise it when the oldest cluster we support moves.
KUBERNETES_VERSION = "1.30.0"
#: Kustomizations rendered straight from the repository; the example overlay needs its token
#: files, so it renders from a copy (``rendered``).
KUSTOMIZATIONS = ("base", "tenancy", "remediation", "overlays/example")
#: Custom resources kubernetes-validate has no schema for: its CLI would only WARN and pass
#: them, so they are left out of that run on purpose and checked by the test named here.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "PrometheusRule"): "test_prometheus_rule_schema"}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
SERVE_ROLE = {
    ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
    ("", "pods"): {"get", "list"},
    ("", "pods/log"): {"get"},
}
RUNNER_LOGS_ROLE = {("", "pods"): {"get", "list"}, ("", "pods/log"): {"get"}}
REMEDIATION_ROLE = "tenancy-diag-remediation"
RUNNER_ACCOUNT = "tenancy-diag-runner"
RUN_AS_USER = 10001


def _tool(found: bool, name: str, install: str) -> None:
    if found:
        return
    message = f"{name} is not installed; {install}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: deploy/ must not go unchecked)")
    pytest.skip(message)


def _kubectl() -> str:
    path = shutil.which("kubectl")
    _tool(bool(path), "kubectl", "apt-get install kubernetes-client")
    return str(path)


def _kustomize(kubectl: str, folder: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [kubectl, "kustomize", str(folder)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # kustomize v5 warns on stderr about the v2-compatible fields; only the exit code counts.
    assert done.returncode == 0, f"kubectl kustomize {folder} failed:\n{done.stderr}"
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert docs, f"kubectl kustomize {folder} rendered nothing"
    return docs


def _with_token_files(copy: Path) -> Path:
    """Write placeholder files for every secretGenerator of the example overlay's copy."""
    for kustomization in copy.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text(encoding="utf-8")) or {}
        for generator in spec.get("secretGenerator") or []:
            for entry in generator.get("files") or []:
                target = kustomization.parent / entry.rpartition("=")[2]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("placeholder-not-a-secret\n", encoding="utf-8")
    return copy


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    kubectl = _kubectl()
    copy = _with_token_files(
        Path(shutil.copytree(DEPLOY, tmp_path_factory.mktemp("deploy") / "deploy"))
    )
    return {name: _kustomize(kubectl, copy / name) for name in KUSTOMIZATIONS}


def _find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = _find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for d in docs:
        name = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] in POD_TEMPLATE_KINDS:
            specs.append((name, d["spec"]["template"]["spec"]))
        elif d["kind"] == "CronJob":
            specs.append((name, d["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
        elif d["kind"] == "Pod":
            specs.append((name, d["spec"]))
    return specs


def _serve(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = _one(docs, "Deployment", "tenancy-diag")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "serve"]
    return deployment, container


def _flags(container: dict[str, Any]) -> dict[str, str]:
    return dict(a.partition("=")[::2] for a in container.get("args", []) if a.startswith("--"))


def _built_in(api_version: str) -> bool:
    """Core (``v1``), ``apps/v1``, ``rbac.authorization.k8s.io/v1``: not a custom resource."""
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def _grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role.get("rules", []):
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                grants.setdefault((group, resource), set()).update(rule.get("verbs", []))
    return grants


def _bindings_to(docs: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    return [
        d
        for d in docs
        if d["kind"] in {"RoleBinding", "ClusterRoleBinding"} and d["roleRef"]["name"] == role
    ]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_renders(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    for doc in rendered[name]:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        assert doc["metadata"].get("name"), doc


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_validates_strictly(
    rendered: dict[str, list[dict[str, Any]]], name: str, tmp_path: Path
) -> None:
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        _tool(False, "kubernetes-validate", "pip install -e .[dev]")
    undecided = {
        (d["apiVersion"], d["kind"]) for d in rendered[name] if not _built_in(d["apiVersion"])
    } - CUSTOM_KINDS.keys()
    assert not undecided, f"kinds without a schema decision (add them to CUSTOM_KINDS): {undecided}"
    docs = [d for d in rendered[name] if _built_in(d["apiVersion"])]
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubernetes_validate",
            "--strict",
            "-k",
            KUBERNETES_VERSION,
            "--no-warn",
            str(manifest),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    problems = [line for line in done.stdout.splitlines() if " passed for resource " not in line]
    assert done.returncode == 0, "\n".join(problems) + done.stderr
    # --no-warn hides "no schema": every object must have passed, not just not failed.
    passed = [line for line in done.stdout.splitlines() if " passed for resource " in line]
    assert len(passed) == len(docs), done.stdout


def test_prometheus_rule_schema(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The small part of the operator's CRD schema that a typo would break."""
    (rule,) = _find(rendered["base"], "PrometheusRule")
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"]["groups"], "no rule groups"
    group_keys = {"name", "interval", "rules", "limit", "partial_response_strategy"}
    rule_keys = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
    for group in rule["spec"]["groups"]:
        assert set(group) <= group_keys and isinstance(group["name"], str), group
        for r in group["rules"]:
            assert set(r) <= rule_keys, f"unknown keys {set(r) - rule_keys} in {r}"
            assert ("alert" in r) != ("record" in r), r
            assert isinstance(r["expr"], str | int) and str(r["expr"]).strip(), r
            for field in ("labels", "annotations"):
                assert all(isinstance(v, str) for v in r.get(field, {}).values()), (field, r)


def test_prometheus_rule_is_generated() -> None:
    """The committed PrometheusRule is the generator's output: no second, hand-kept copy."""
    done = subprocess.run(
        [sys.executable, str(DEPLOY / "render_rules.py")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    committed = (DEPLOY / "base" / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert committed == done.stdout, (
        "deploy/base/prometheusrule.yaml differs from parameters/alerts/; "
        "run `python deploy/render_rules.py --write`"
    )


def test_rendered_rules_are_the_alert_rules(rendered: dict[str, list[dict[str, Any]]]) -> None:
    groups = []
    for path in sorted((ROOT / "parameters" / "alerts").glob("*.rules.yml")):
        groups += yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    (rule,) = _find(rendered["overlays/example"], "PrometheusRule")
    assert rule["spec"]["groups"] == groups


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_containers_are_locked_down(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    for where, pod in _pod_specs(rendered[name]):
        pod_sc = pod.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, where
        assert pod_sc.get("runAsUser") == RUN_AS_USER, where
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod.get("initContainers", []) + pod["containers"]:
            at = f"{where} container {c['name']}"
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot") is True, at
            assert sc.get("runAsUser") == RUN_AS_USER, at
            assert sc.get("allowPrivilegeEscalation") is False, at
            assert sc.get("readOnlyRootFilesystem") is True, at
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], at
            assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", at
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= c.get("resources", {}).get(kind, {}).keys(), (at, kind)
            # A read-only root needs somewhere to write.
            mounts = {m["mountPath"]: volumes[m["name"]] for m in c.get("volumeMounts", [])}
            for path in ("/tmp", "/work"):
                assert path in mounts, f"{at}: nothing writable at {path}"
                assert {"emptyDir", "persistentVolumeClaim"} & mounts[path].keys(), (at, path)


def test_serve_role_grants_exactly_what_it_needs(rendered: dict[str, list[dict[str, Any]]]) -> None:
    base = rendered["base"]
    assert _grants(_one(base, "Role", "tenancy-diag-serve")) == SERVE_ROLE
    (binding,) = _bindings_to(base, "tenancy-diag-serve")
    assert binding["kind"] == "RoleBinding"
    _, container = _serve(base)
    pod = _one(base, "Deployment", "tenancy-diag")["spec"]["template"]["spec"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": pod["serviceAccountName"]}]
    assert _flags(container)["--service-account"] == RUNNER_ACCOUNT


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_no_wildcards_and_no_cluster_roles(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    for d in rendered[name]:
        assert d["kind"] not in {"ClusterRole", "ClusterRoleBinding"}, d["metadata"]["name"]
        for rule in d.get("rules", []) if d["kind"] == "Role" else []:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), (d["metadata"]["name"], rule)


def test_runner_reads_logs_in_the_tenancy_namespace(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    signals = yaml.safe_load((ROOT / "parameters" / "signals.yaml").read_text(encoding="utf-8"))
    logs_namespace = signals["logs"]["namespace"]
    docs = rendered["overlays/example"]
    role = _one(docs, "Role", "tenancy-diag-runner-logs")
    assert role["metadata"]["namespace"] == logs_namespace
    assert _grants(role) == RUNNER_LOGS_ROLE
    (binding,) = _bindings_to(docs, "tenancy-diag-runner-logs")
    assert binding["metadata"]["namespace"] == logs_namespace
    deployment, container = _serve(docs)
    # The subject is the account serve starts Jobs with, in the namespace serve runs in.
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": _flags(container)["--service-account"],
            "namespace": deployment["metadata"]["namespace"],
        }
    ]
    _one(docs, "ServiceAccount", RUNNER_ACCOUNT)


def test_remediation_role_is_not_bound(rendered: dict[str, list[dict[str, Any]]]) -> None:
    role = _one(rendered["overlays/example"], "Role", REMEDIATION_ROLE)
    assert _grants(role) == {("apps", "deployments"): {"get"}, ("", "pods"): {"list", "delete"}}
    for name in ("base", "tenancy", "overlays/example"):
        assert _bindings_to(rendered[name], REMEDIATION_ROLE) == [], name
    # The opt-in binds people, never the accounts alerts start work with.
    (binding,) = _bindings_to(rendered["remediation"], REMEDIATION_ROLE)
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]
    assert all(s["kind"] != "ServiceAccount" for s in binding["subjects"]), binding["subjects"]


@pytest.mark.parametrize("name", ("base", "tenancy", "remediation"))
def test_no_secret_values_in_the_base(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    for secret in _find(rendered[name], "Secret"):
        assert not secret.get("data") and not secret.get("stringData"), secret["metadata"]["name"]


def test_secret_files_are_git_ignored() -> None:
    overlay = DEPLOY / "overlays" / "example"
    files = []
    for kustomization in overlay.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text(encoding="utf-8")) or {}
        for generator in spec.get("secretGenerator") or []:
            files += [kustomization.parent / e.rpartition("=")[2] for e in generator["files"]]
    assert files, "the example overlay generates no Secret: update this test"
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *map(str, files)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
    )
    ignored = {Path(line).resolve() for line in done.stdout.splitlines()}
    assert ignored == {f.resolve() for f in files}, f"not git-ignored: {set(files) - ignored}"


def test_probes_hit_healthz_on_the_container_port(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["base"]
    _, container = _serve(docs)
    listen_port = int(_flags(container)["--listen"].rpartition(":")[2])
    ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
    assert listen_port in ports.values(), (listen_port, ports)

    def resolve(port: int | str) -> int:
        return ports[port] if isinstance(port, str) else port

    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz", probe
        assert resolve(get["port"]) == listen_port, probe
    service = _one(docs, "Service", "tenancy-diag")
    assert [resolve(p["targetPort"]) for p in service["spec"]["ports"]] == [listen_port]


def test_serve_deployment(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["base"]
    deployment, container = _serve(docs)
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1, "the SQLite queue wants exactly one owner"
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert container["args"][0] == "serve"
    flags = _flags(container)
    assert flags["--executor"] == "kubernetes"
    assert flags["--state"] == "/work/state" and flags["--out"] == "/work/out"
    env = {e["name"]: e for e in container["env"]}
    assert flags["--namespace"] == "$(POD_NAMESPACE)"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    # Tokens are files on Secret volumes, never values in the environment.
    volumes = {v["name"]: v for v in pod["volumes"]}
    secret_mounts = [
        m["mountPath"] for m in container["volumeMounts"] if "secret" in volumes[m["name"]]
    ]
    for name in ("TENANCY_DIAG_SERVICE_TOKEN_FILE", "TENANCY_API_TOKEN_FILE"):
        path = env[name]["value"]
        assert any(path.startswith(m + "/") for m in secret_mounts), (name, path)
    assert not {"TENANCY_DIAG_SERVICE_TOKEN", "TENANCY_API_TOKEN"} & env.keys()
    (state,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/work/state"]
    claim = volumes[state["name"]]["persistentVolumeClaim"]["claimName"]
    _one(docs, "PersistentVolumeClaim", claim)
    sources = _one(docs, "ConfigMap", container["envFrom"][0]["configMapRef"]["name"])
    assert sources["data"]["TENANCY_DIAG_KUBECONFIG"] == "in-cluster", "the service account"
    # The token only where it is used.
    assert pod["automountServiceAccountToken"] is True
    account = _one(docs, "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False


def test_selectors_pick_the_serve_pod(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["base"]
    deployment, _ = _serve(docs)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = _one(docs, "Service", "tenancy-diag")
    assert service["spec"]["selector"].items() <= labels.items()
    (pdb,) = _find(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # One replica: a budget of one available pod would block every node drain.
    assert pdb["spec"].get("maxUnavailable", 0) >= 1 or pdb["spec"].get("minAvailable") == 0
    for policy in _find(docs, "NetworkPolicy"):
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()


def test_network_policy(rendered: dict[str, list[dict[str, Any]]]) -> None:
    policies = _find(rendered["base"], "NetworkPolicy")
    ingress = [r for p in policies for r in p["spec"].get("ingress", [])]
    assert ingress and all(r["ports"] == [{"port": 8080, "protocol": "TCP"}] for r in ingress)
    assert all(r.get("from") for r in ingress), "an ingress rule without `from` admits anyone"
    assert all("Egress" in p["spec"]["policyTypes"] for p in policies if "egress" in p["spec"])
    egress_ports = {
        (port["protocol"], port["port"])
        for p in policies
        for r in p["spec"].get("egress", [])
        for port in r["ports"]
    }
    assert {("UDP", 53), ("TCP", 53), ("TCP", 9090), ("TCP", 443)} <= egress_ports


def test_runner_image_is_the_serve_image(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name in ("base", "overlays/example"):
        docs = rendered[name]
        _, container = _serve(docs)
        assert _flags(container)["--image"] == "$(TENANCY_DIAG_IMAGE)"
        sources = _one(docs, "ConfigMap", container["envFrom"][0]["configMapRef"]["name"])
        assert sources["data"]["TENANCY_DIAG_IMAGE"] == container["image"], name


def test_alertmanager_receiver(rendered: dict[str, list[dict[str, Any]]]) -> None:
    path = DEPLOY / "alertmanager-receiver.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    (receiver,) = [r for r in config["receivers"] if r["name"] == "tenancy-diag"]
    (webhook,) = receiver["webhook_configs"]
    docs = rendered["overlays/example"]
    service = _one(docs, "Service", "tenancy-diag")
    namespace, port = service["metadata"]["namespace"], service["spec"]["ports"][0]["port"]
    assert webhook["url"] == f"http://tenancy-diag.{namespace}.svc:{port}/alerts"
    assert webhook["send_resolved"] is True
    assert isinstance(webhook["max_alerts"], int) and webhook["max_alerts"] > 0
    assert webhook["http_config"]["authorization"]["credentials_file"].startswith("/")
    (route,) = [r for r in config["route"]["routes"] if r["receiver"] == "tenancy-diag"]
    assert "region" in route["group_by"] and "alertname" not in route["group_by"]
    amtool = shutil.which("amtool")
    _tool(bool(amtool), "amtool", "apt-get install prometheus-alertmanager")
    done = subprocess.run(
        [str(amtool), "check-config", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
