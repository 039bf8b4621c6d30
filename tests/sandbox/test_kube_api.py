"""The sandbox's Kubernetes API, tested at the wire with the real kubernetes client."""

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tenancy_diag.errors import ConfigError
from tenancy_diag.sandbox import kube_api, pod_logs, serving
from tenancy_diag.sandbox.secrets import PLANTED
from tenancy_diag.sandbox.topology import PATTERNS, REPLICAS, Scenario, ScenarioSpec

pytestmark = pytest.mark.integration

END = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
TOKEN = "sandbox-test-token"
NS = "tenancy"


@pytest.fixture(scope="module")
def scenario():
    return Scenario(ScenarioSpec(name="policy_timeout", tenants=300, end=END))


@pytest.fixture(scope="module")
def server(scenario):
    httpd, thread = serving.serve_in_thread(kube_api.make_handler(scenario, TOKEN))
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def kubeconfig(server, tmp_path_factory):
    path = tmp_path_factory.mktemp("kube") / "kubeconfig"
    kube_api.write_kubeconfig(path, server, TOKEN, {"us-east-1": "sandbox-use1"})
    return path


@pytest.fixture(scope="module")
def core(kubeconfig):
    api_client = config.new_client_from_config(config_file=str(kubeconfig), persist_config=False)
    yield client.CoreV1Api(api_client)
    api_client.close()


def _names(pod_list):
    return sorted(p.metadata.name for p in pod_list.items)


def _expected(scenario, predicate):
    return sorted(p.name for p in scenario.pods if predicate(p))


# -- pods -----------------------------------------------------------------------------------
def test_pod_list_deserializes_with_every_field(core, scenario):
    pods = core.list_namespaced_pod(NS)
    assert pods.kind == "PodList" and pods.metadata.resource_version
    assert len(pods.items) == len(scenario.pods)
    restarted = next(p for p in pods.items if p.status.container_statuses[0].restart_count)
    assert restarted.metadata.labels["app"] == "tenancy-controller"
    assert set(restarted.metadata.labels) == {"app", "region", "pod-template-hash"}
    owner = restarted.metadata.owner_references[0]
    assert owner.kind == "ReplicaSet" and owner.controller
    assert restarted.spec.containers[0].name == "tenancy-controller"
    status = restarted.status
    assert status.phase == "Running" and {c.type for c in status.conditions} >= {"Ready"}
    terminated = status.container_statuses[0].last_state.terminated
    assert terminated.exit_code == 137 and terminated.finished_at < END
    assert status.container_statuses[0].state.running.started_at == terminated.finished_at
    assert isinstance(restarted.metadata.creation_timestamp, datetime)


@pytest.mark.parametrize(
    ("selector", "predicate"),
    [
        ("app=tenancy-api", lambda p: p.app == "tenancy-api"),
        (
            "app==tenancy-api,region=eu-west-1",
            lambda p: p.app == "tenancy-api" and p.region == "eu-west-1",
        ),
        ("app!=tenancy-api", lambda p: p.app != "tenancy-api"),
        (
            "region in (us-east-1, ap-southeast-2),app=tenancy-lifecycle",
            lambda p: p.region in ("us-east-1", "ap-southeast-2") and p.app == "tenancy-lifecycle",
        ),
        (
            "app notin (tenancy-api,tenancy-controller)",
            lambda p: p.app not in ("tenancy-api", "tenancy-controller"),
        ),
        ("region", lambda p: True),
        ("!region", lambda p: False),
        ("app=nothing-here", lambda p: False),
    ],
)
def test_pod_list_label_selectors(core, scenario, selector, predicate):
    assert _names(core.list_namespaced_pod(NS, label_selector=selector)) == _expected(
        scenario, predicate
    )


def test_bad_selector_is_a_400_status(core):
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod(NS, label_selector="app in (x")
    assert caught.value.status == 400
    assert json.loads(caught.value.body)["reason"] == "BadRequest"


def test_read_pod_and_404(core, scenario):
    name = scenario.pods[0].name
    assert core.read_namespaced_pod(name, NS).metadata.name == name
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod("no-such-pod", NS)
    body = json.loads(caught.value.body)
    assert caught.value.status == 404
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "no-such-pod" not found',
        "reason": "NotFound",
        "details": {"name": "no-such-pod", "kind": "pods"},
        "code": 404,
    }


def test_other_namespace_lists_empty(core):
    assert core.list_namespaced_pod("default").items == []
    assert [n.metadata.name for n in core.list_namespace().items][-1] == NS
    assert core.read_namespace(NS).status.phase == "Active"


# -- auth and discovery ---------------------------------------------------------------------
def test_401_without_or_with_a_wrong_token(server):
    for token in (None, "wrong"):
        configuration = client.Configuration(host=server)
        if token:
            configuration.api_key = {"BearerToken": f"Bearer {token}"}
        with client.ApiClient(configuration) as api_client:
            with pytest.raises(ApiException) as caught:
                client.CoreV1Api(api_client).list_namespaced_pod(NS)
        assert caught.value.status == 401
        assert json.loads(caught.value.body)["reason"] == "Unauthorized"


def test_version_is_public_and_discovery_answers(server, core):
    with client.ApiClient(client.Configuration(host=server)) as anonymous:
        assert client.VersionApi(anonymous).get_code().major == "1"
    assert client.CoreApi(core.api_client).get_api_versions().versions == ["v1"]
    groups = client.ApisApi(core.api_client).get_api_versions().groups
    assert [g.name for g in groups] == ["apps", "batch"]


def test_unknown_path_is_the_real_404(server):
    import urllib.request

    request = urllib.request.Request(
        f"{server}/api/v1/nodes", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 404
    assert json.loads(caught.value.read())["message"] == (
        "the server could not find the requested resource"
    )


# -- logs -----------------------------------------------------------------------------------
def _restarted(scenario):
    return next(p for p in scenario.pods if p.restarts)


def test_log_tail_and_text(core, scenario):
    pod = _restarted(scenario)
    full = pod_logs.lines_for(scenario, pod)
    text = core.read_namespaced_pod_log(pod.name, NS, container=pod.app, tail_lines=5)
    assert text.splitlines() == full[-5:] and text.endswith("\n")


def test_log_since_seconds_counts_back_from_the_scenario_end(core, scenario):
    pod = scenario.pods[0]
    lines = core.read_namespaced_pod_log(pod.name, NS, since_seconds=300).splitlines()
    cutoff = END - timedelta(seconds=300)
    stamps = [datetime.fromisoformat(line.split()[0][3:]) for line in lines]
    assert lines and min(stamps) >= cutoff and max(stamps) <= END
    timed = pod_logs.timed_lines_for(scenario, pod)
    assert len(lines) == sum(1 for t, _ in timed if t >= cutoff.timestamp())


def test_log_previous_and_timestamps(core, scenario):
    pod = _restarted(scenario)
    restart = pod_logs.restart_at(scenario, pod)
    text = core.read_namespaced_pod_log(pod.name, NS, previous=True, timestamps=True, tail_lines=50)
    lines = text.splitlines()
    assert len(lines) == 50
    stamp, _, rest = lines[-1].partition(" ")
    assert stamp.endswith("000000Z") and rest.startswith("ts=")
    assert datetime.fromisoformat(stamp[:23] + "+00:00") <= restart
    current = core.read_namespaced_pod_log(pod.name, NS, tail_lines=100000).splitlines()
    assert datetime.fromisoformat(current[0].split()[0][3:]) >= restart


def test_log_previous_of_a_never_restarted_container_is_400(core, scenario):
    pod = next(p for p in scenario.pods if not p.restarts)
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod_log(pod.name, NS, previous=True)
    body = json.loads(caught.value.body)
    assert caught.value.status == 400 and body["reason"] == "BadRequest"
    assert body["message"] == (
        f'previous terminated container "{pod.app}" in pod "{pod.name}" not found'
    )


def test_log_bad_container_limit_bytes_and_invalid_options(core, scenario, server):
    pod = scenario.pods[0]
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod_log(pod.name, NS, container="sidecar")
    assert caught.value.status == 400
    assert len(core.read_namespaced_pod_log(pod.name, NS, limit_bytes=100).encode()) == 100
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod_log(pod.name, NS, tail_lines=-1)
    assert caught.value.status == 422
    assert json.loads(caught.value.body)["reason"] == "Invalid"


def test_log_since_time_query(server, scenario):
    import urllib.request

    pod = scenario.pods[0]
    since = "2026-11-27T02:55:00Z"
    request = urllib.request.Request(
        f"{server}/api/v1/namespaces/{NS}/pods/{pod.name}/log?sinceTime={since}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.headers["Content-Type"] == "text/plain"
        lines = answer.read().decode().splitlines()
    assert lines and all(line[3:27] >= "2026-11-27T02:55:00.000Z" for line in lines)


def test_planted_secrets_are_in_the_raw_logs(core, scenario):
    pod = scenario.pods[0]
    text = core.read_namespaced_pod_log(pod.name, NS)
    for secret in PLANTED.values():
        assert secret in text


# -- per-region contexts and deployments ----------------------------------------------------
def test_region_context_sees_only_its_region(kubeconfig, scenario):
    api_client = config.new_client_from_config(
        config_file=str(kubeconfig), context="sandbox-use1", persist_config=False
    )
    with api_client:
        pods = client.CoreV1Api(api_client).list_namespaced_pod(NS)
        assert _names(pods) == _expected(scenario, lambda p: p.region == "us-east-1")
        other = next(p for p in scenario.pods if p.region != "us-east-1")
        with pytest.raises(ApiException) as caught:
            client.CoreV1Api(api_client).read_namespaced_pod(other.name, NS)
        assert caught.value.status == 404
        deployment = client.AppsV1Api(api_client).read_namespaced_deployment(
            "tenancy-controller", NS
        )
        assert deployment.spec.replicas == REPLICAS["tenancy-controller"]


def test_deployments_list_and_read(core, scenario):
    apps = client.AppsV1Api(core.api_client)
    listed = apps.list_namespaced_deployment(NS)
    assert listed.kind == "DeploymentList"
    assert [d.metadata.name for d in listed.items] == list(REPLICAS)
    regions = len(scenario.spec.regions)
    for item in listed.items:
        assert (
            item.status.ready_replicas
            == item.spec.replicas
            == (REPLICAS[item.metadata.name] * regions)
        )
        assert item.spec.selector.match_labels == {"app": item.metadata.name}
    api = apps.read_namespaced_deployment("tenancy-api", NS)
    assert api.kind == "Deployment" and api.metadata.resource_version
    assert [
        d.metadata.name
        for d in apps.list_namespaced_deployment(NS, label_selector="app in (tenancy-api)").items
    ] == ["tenancy-api"]
    with pytest.raises(ApiException) as caught:
        apps.read_namespaced_deployment("nope", NS)
    assert caught.value.status == 404


def test_kubeconfig_is_private_and_complete(kubeconfig, server):
    assert kubeconfig.stat().st_mode & 0o077 == 0
    data = yaml.safe_load(kubeconfig.read_text())
    assert data["current-context"] == kube_api.CONTEXT
    assert {c["name"] for c in data["contexts"]} == {kube_api.CONTEXT, "sandbox-use1"}
    servers = {c["name"]: c["cluster"]["server"] for c in data["clusters"]}
    assert servers == {kube_api.CONTEXT: server, "sandbox-use1": f"{server}/clusters/us-east-1"}


# -- deleting a pod: the one write ----------------------------------------------------------
CONTROLLERS = "app=tenancy-controller,region=us-east-1"


@pytest.fixture
def cluster(scenario, tmp_path):
    """A fresh server per test, so deletions never leak into the read-only tests above."""
    servers = []

    def start(served=None, **options):
        options = kube_api.WorkloadOptions(**options)
        handler = kube_api.make_handler(served or scenario, TOKEN, options=options)
        httpd, thread = serving.serve_in_thread(handler)
        servers.append((httpd, thread))
        path = tmp_path / f"kubeconfig-{len(servers)}"
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        kube_api.write_kubeconfig(path, url, TOKEN, {"us-east-1": "sandbox-use1"})
        return path

    yield start
    for httpd, thread in servers:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _apis(kubeconfig, context=None):
    api_client = config.new_client_from_config(
        config_file=str(kubeconfig), context=context, persist_config=False
    )
    return client.CoreV1Api(api_client), client.AppsV1Api(api_client)


def _ready(pod):
    return next(c.status for c in pod.status.conditions if c.type == "Ready") == "True"


def _wait_ready(core, name, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, NS)
        if _ready(pod):
            return pod
        time.sleep(0.05)
    raise AssertionError(f"{name} did not become Ready within {timeout_s} s")


def test_delete_pod_marks_it_and_a_replacement_becomes_ready(cluster, scenario):
    core, apps = _apis(cluster(ready_delay_s=0.6))
    before = core.list_namespaced_pod(NS, label_selector=CONTROLLERS).items
    victim = before[1]
    requested = datetime.now(UTC).replace(microsecond=0)

    deleted = core.delete_namespaced_pod(victim.metadata.name, NS)

    assert deleted.kind == "Pod" and deleted.metadata.name == victim.metadata.name
    assert deleted.metadata.deletion_timestamp >= requested + timedelta(seconds=30)
    assert deleted.metadata.deletion_grace_period_seconds == 30
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod(victim.metadata.name, NS)
    assert caught.value.status == 404
    after = core.list_namespaced_pod(NS, label_selector=CONTROLLERS).items
    assert len(after) == len(before)
    names = {p.metadata.name for p in after}
    assert victim.metadata.name not in names
    (fresh,) = [p for p in after if p.metadata.name not in {b.metadata.name for b in before}]
    prefix = victim.metadata.name.rsplit("-", 1)[0]
    suffix = fresh.metadata.name.rsplit("-", 1)[1]
    assert fresh.metadata.name.startswith(prefix + "-") and len(suffix) == 5
    assert fresh.metadata.labels == victim.metadata.labels
    assert fresh.metadata.owner_references == victim.metadata.owner_references
    assert fresh.metadata.creation_timestamp >= requested > victim.metadata.creation_timestamp
    assert fresh.status.start_time >= requested and fresh.status.phase == "Running"
    assert not _ready(fresh) and not fresh.status.container_statuses[0].ready
    assert fresh.status.container_statuses[0].restart_count == 0

    deployment = apps.read_namespaced_deployment("tenancy-controller", NS)
    assert deployment.status.replicas == deployment.spec.replicas
    assert deployment.status.ready_replicas == deployment.spec.replicas - 1
    assert deployment.status.available_replicas == deployment.spec.replicas - 1
    assert deployment.status.unavailable_replicas == 1

    ready = _wait_ready(core, fresh.metadata.name)
    assert ready.status.container_statuses[0].ready
    deployment = apps.read_namespaced_deployment("tenancy-controller", NS)
    assert deployment.status.ready_replicas == deployment.spec.replicas
    assert deployment.status.unavailable_replicas is None
    log = core.read_namespaced_pod_log(fresh.metadata.name, NS, tail_lines=100)
    lines = log.splitlines()
    assert lines and all(" level=INFO " in line for line in lines)
    assert 'msg="ready"' in lines[-1] and f"pod={fresh.metadata.name}" in lines[-1]
    assert len(core.read_namespaced_pod_log(fresh.metadata.name, NS, since_seconds=60)) > 0


def test_deleting_an_unknown_pod_is_the_real_404(cluster):
    core, _ = _apis(cluster())
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_pod("no-such-pod", NS)
    assert caught.value.status == 404
    assert json.loads(caught.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "no-such-pod" not found',
        "reason": "NotFound",
        "details": {"name": "no-such-pod", "kind": "pods"},
        "code": 404,
    }
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_pod(core.list_namespaced_pod(NS).items[0].metadata.name, "default")
    assert caught.value.status == 404


def test_dry_run_delete_answers_the_same_and_changes_nothing(cluster):
    core, apps = _apis(cluster())
    before = _names(core.list_namespaced_pod(NS))
    answer = core.delete_namespaced_pod(before[0], NS, dry_run="All", grace_period_seconds=5)
    assert answer.metadata.name == before[0] and answer.metadata.deletion_timestamp
    assert answer.metadata.deletion_grace_period_seconds == 5
    assert _names(core.list_namespaced_pod(NS)) == before
    for item in apps.list_namespaced_deployment(NS).items:
        assert item.status.ready_replicas == item.spec.replicas
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_pod(before[0], NS, dry_run="Yes")
    assert caught.value.status == 422 and json.loads(caught.value.body)["reason"] == "Invalid"
    assert _names(core.list_namespaced_pod(NS)) == before


def test_delete_honours_a_uid_precondition(cluster):
    core, _ = _apis(cluster())
    pod = core.list_namespaced_pod(NS, label_selector=CONTROLLERS).items[0]
    stale = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-this-one"))
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_pod(pod.metadata.name, NS, body=stale)
    assert caught.value.status == 409 and json.loads(caught.value.body)["reason"] == "Conflict"
    assert core.read_namespaced_pod(pod.metadata.name, NS)
    current = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid=pod.metadata.uid), grace_period_seconds=0
    )
    answer = core.delete_namespaced_pod(pod.metadata.name, NS, body=current)
    assert answer.metadata.deletion_grace_period_seconds == 0


def test_concurrent_deletes_of_one_pod_replace_it_once(cluster):
    core, _ = _apis(cluster())
    before = _names(core.list_namespaced_pod(NS))
    victim = before[0]

    def attempt(_):
        try:
            core.delete_namespaced_pod(victim, NS)
        except ApiException as e:
            return e.status
        return 200

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = sorted(pool.map(attempt, range(8)))
    assert outcomes == [200] + [404] * 7
    after = _names(core.list_namespaced_pod(NS))
    assert len(after) == len(before) and victim not in after


def test_concurrent_deletes_of_every_pod_keep_the_count(cluster):
    core, apps = _apis(cluster(ready_delay_s=30))
    pods = _names(core.list_namespaced_pod(NS, label_selector="app=tenancy-api"))
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda name: core.delete_namespaced_pod(name, NS), pods))
    assert sorted(a.metadata.name for a in answers) == pods
    after = _names(core.list_namespaced_pod(NS, label_selector="app=tenancy-api"))
    assert len(after) == len(pods) and not set(after) & set(pods)
    deployment = apps.read_namespaced_deployment("tenancy-api", NS)
    assert deployment.status.ready_replicas == 0
    available = next(c for c in deployment.status.conditions if c.type == "Available")
    assert available.status == "False"


def test_region_context_cannot_delete_another_regions_pod(cluster, scenario):
    kubeconfig = cluster()
    regional, _ = _apis(kubeconfig, context="sandbox-use1")
    other = next(p for p in scenario.pods if p.region != "us-east-1")
    with pytest.raises(ApiException) as caught:
        regional.delete_namespaced_pod(other.name, NS)
    assert caught.value.status == 404
    core, _ = _apis(kubeconfig)
    assert core.read_namespaced_pod(other.name, NS).metadata.name == other.name


def test_other_methods_are_refused_with_405(server):
    import urllib.request

    pods = f"{server}/api/v1/namespaces/{NS}/pods"
    for method, url in (("POST", pods), ("DELETE", pods), ("PATCH", f"{pods}/x/log")):
        request = urllib.request.Request(
            url, data=b"{}", method=method, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 405, method
        assert json.loads(caught.value.read())["reason"] == "MethodNotAllowed"


def test_single_replica_option(cluster, scenario):
    kubeconfig = cluster(replicas={"tenancy-controller": 1})
    core, apps = _apis(kubeconfig)
    controllers = core.list_namespaced_pod(NS, label_selector="app=tenancy-controller").items
    assert sorted(p.metadata.labels["region"] for p in controllers) == sorted(scenario.spec.regions)
    _, regional = _apis(kubeconfig, context="sandbox-use1")
    deployment = regional.read_namespaced_deployment("tenancy-controller", NS)
    assert deployment.spec.replicas == deployment.status.ready_replicas == 1
    api = apps.read_namespaced_deployment("tenancy-api", NS)
    assert api.spec.replicas == REPLICAS["tenancy-api"] * len(scenario.spec.regions)
    # The default context shows one Deployment over every region: one region, one replica.
    single = Scenario(ScenarioSpec(name="healthy", tenants=20, end=END, regions=("eu-west-1",)))
    core, apps = _apis(cluster(single, replicas={"tenancy-controller": 1}))
    deployment = apps.read_namespaced_deployment("tenancy-controller", NS)
    assert deployment.spec.replicas == deployment.status.ready_replicas == 1
    (pod,) = core.list_namespaced_pod(NS, label_selector="app=tenancy-controller").items
    core.delete_namespaced_pod(pod.metadata.name, NS)
    deployment = apps.read_namespaced_deployment("tenancy-controller", NS)
    assert deployment.status.ready_replicas == 0
    for bad in ({"tenancy-nope": 1}, {"tenancy-controller": 0}, {"tenancy-controller": 9}):
        with pytest.raises(ConfigError):
            kube_api.WorkloadOptions(replicas=bad)


# -- the generator behind the logs ----------------------------------------------------------
def test_logs_are_deterministic_bounded_and_ordered(scenario):
    pod = next(p for p in scenario.pods if not p.restarts)
    first = pod_logs.lines_for(scenario, pod)
    again = pod_logs.lines_for(
        Scenario(ScenarioSpec(name="policy_timeout", tenants=300, end=END)), pod
    )
    assert first == again
    assert 0 < len(first) <= pod_logs.NOISE_BUDGET + pod_logs.INCIDENT_BUDGET + 20
    stamps = [line.split()[0] for line in first]
    assert stamps == sorted(stamps)
    assert pod_logs.lines_for(scenario, pod, previous=True) == []


@pytest.mark.parametrize("pattern", PATTERNS)
def test_incident_lines_name_the_truth(pattern):
    scenario = Scenario(ScenarioSpec(name=pattern, tenants=400, end=END))
    truth = scenario.truth
    apps = {
        "reconcile_backlog": ["tenancy-controller"],
        "webhook_storm": ["tenancy-webhook-dispatcher"],
        "policy_timeout": ["tenancy-policy-client", "tenancy-controller"],
        "rate_limit_saturation": ["tenancy-api"],
        "migration_hang": ["tenancy-lifecycle"],
    }[pattern]
    for app in apps:
        pod = next(p for p in scenario.pods if p.app == app and p.region == truth.region)
        lines = [
            line
            for line in pod_logs.lines_for(scenario, pod)
            if line[3:27] >= truth.incident_start.strftime("%Y-%m-%dT%H:%M:%S")
        ]
        named = [line for line in lines if any(f"tenant={t} " in line for t in truth.tenants)]
        assert len(named) > 100, (pattern, app)
        for value in (*truth.endpoints, *truth.client_ids, *truth.job_ids[:1]):
            assert any(value in line for line in named), (pattern, value)
    if pattern == "migration_hang":
        assert any("step=verify_checksums" in line and 'msg="step stuck"' in line for line in named)
    if pattern == "policy_timeout":
        controller = next(
            p for p in scenario.pods if p.app == "tenancy-controller" and p.region == truth.region
        )
        assert any(
            "reason=policy_error" in line for line in pod_logs.lines_for(scenario, controller)
        )
    # Elsewhere the same app only logs its rare background errors.
    quiet = next(p for p in scenario.pods if p.app == apps[0] and p.region != truth.region)
    loud = next(p for p in scenario.pods if p.app == apps[0] and p.region == truth.region)
    errors = [
        sum(" level=ERROR " in line for line in pod_logs.lines_for(scenario, p))
        for p in (quiet, loud)
    ]
    assert errors[0] < 40 < 100 < errors[1], errors


def test_volume_is_bounded_at_ten_thousand_tenants():
    scenario = Scenario(ScenarioSpec(name="reconcile_backlog", tenants=10_000, end=END))
    started = time.perf_counter()
    counts = [len(pod_logs.lines_for(scenario, p)) for p in scenario.pods]
    assert max(counts) <= pod_logs.NOISE_BUDGET + pod_logs.INCIDENT_BUDGET + 20
    assert time.perf_counter() - started < 20


# -- the process, as `sandbox up` starts it -------------------------------------------------
def test_main_serves_until_sigterm(tmp_path):
    spec = ScenarioSpec(name="webhook_storm", tenants=50, end=END)
    (tmp_path / "scenario.json").write_text(json.dumps(spec.to_json()))
    (tmp_path / "token").write_text(TOKEN + "\n")
    ready = tmp_path / "ready.json"
    with (tmp_path / "kube.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tenancy_diag.sandbox.kube_api",
                "--scenario-file",
                str(tmp_path / "scenario.json"),
                "--token-file",
                str(tmp_path / "token"),
                "--ready-file",
                str(ready),
                "--replicas",
                "tenancy-webhook-dispatcher=1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        info = serving.wait_ready(ready, timeout_s=30, pid=proc.pid)
        kubeconfig = tmp_path / "kubeconfig"
        kube_api.write_kubeconfig(kubeconfig, info["url"], TOKEN, None)
        with config.new_client_from_config(
            config_file=str(kubeconfig), persist_config=False
        ) as api_client:
            pods = client.CoreV1Api(api_client).list_namespaced_pod(
                NS, label_selector="app=tenancy-webhook-dispatcher"
            )
        assert len(pods.items) == 3  # --replicas: one per region
    finally:
        assert serving.stop_pid(proc.pid)
        proc.wait(5)
