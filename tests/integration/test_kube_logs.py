"""KubeLogSource and collect_logs against the sandbox's Kubernetes API, over real HTTP."""

import json
import socket
from datetime import UTC, datetime, timedelta

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from tenancy_diag.analysis.logs import failure_signatures, frame
from tenancy_diag.errors import ConfigError, SourceRejected, SourceUnavailable, TenancyDiagError
from tenancy_diag.redacting import Redactor
from tenancy_diag.sandbox import kube_api, pod_logs, serving
from tenancy_diag.sandbox.secrets import PLANTED
from tenancy_diag.settings import KubeSettings
from tenancy_diag.sources.base import LogRequest, PodLogReader, PodQuery
from tenancy_diag.sources.kube_logs import KubeLogSource, since_seconds
from tenancy_diag.sources.pod_logs import LogBatch, collect_logs

pytestmark = pytest.mark.integration

END = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
TOKEN = "integration-token"
NS = "tenancy"
CONTROLLER = "tenancy-controller"
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")


@pytest.fixture(scope="module")
def scenario():
    from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec

    return Scenario(ScenarioSpec(name="reconcile_backlog", tenants=500, end=END))


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
    contexts = {region: f"sandbox-{region}" for region in REGIONS}
    kube_api.write_kubeconfig(path, server, TOKEN, contexts)
    return path


@pytest.fixture
def source(kubeconfig):
    with KubeLogSource(KubeSettings(kubeconfig=kubeconfig, timeout_s=5), Redactor()) as made:
        yield made


def _collect(source, scenario, since=None, until=END, app=CONTROLLER, regions=REGIONS):
    return collect_logs(
        source,
        NS,
        app,
        regions,
        since=since or scenario.start,
        until=until,
        tail_lines=10_000,
        max_concurrency=4,
    )


def test_is_a_log_source(source):
    assert isinstance(source, PodLogReader) and source.name == "kubernetes"


def test_list_pods_summaries(source, scenario):
    pods = source.list_pods(PodQuery(NS, f"app={CONTROLLER},region=us-east-1", "us-east-1"))
    assert sorted(p["name"] for p in pods) == sorted(
        p.name for p in scenario.pods if p.app == CONTROLLER and p.region == "us-east-1"
    )
    restarted = [p for p in pods if p["restart_count"]]
    assert len(restarted) == 1
    assert set(pods[0]) == {
        "name",
        "namespace",
        "labels",
        "containers",
        "restart_count",
        "phase",
        "node",
    }
    assert pods[0]["containers"] == [CONTROLLER] and pods[0]["phase"] == "Running"


def test_per_region_contexts_scope_the_listing(kubeconfig, scenario):
    contexts = {region: f"sandbox-{region}" for region in REGIONS}
    settings = KubeSettings(kubeconfig=kubeconfig, contexts_by_region=contexts)
    with KubeLogSource(settings, Redactor()) as per_region:
        # The selector names no region: the context alone picks the cluster.
        pods = per_region.list_pods(PodQuery(NS, f"app={CONTROLLER}", "eu-west-1"))
        assert {p["labels"]["region"] for p in pods} == {"eu-west-1"}
        with pytest.raises(ConfigError, match="region 'mars-1' has no kube context"):
            per_region.list_pods(PodQuery(NS, "app=x", "mars-1"))


def test_collect_all_controller_logs(source, scenario):
    batch = _collect(source, scenario)
    assert isinstance(batch, LogBatch) and batch.errors == ()
    controllers = [p for p in scenario.pods if p.app == CONTROLLER]
    assert len(batch.pods) == len(controllers)
    expected = sum(
        len(pod_logs.lines_for(scenario, p, previous))
        for p in controllers
        for previous in ((True, False) if p.restarts else (False,))
    )
    assert len(batch.lines) == expected
    previous = {line.pod for line in batch.lines if line.previous}
    assert previous == {p.name for p in controllers if p.restarts}
    assert {line.region for line in batch.lines} == set(REGIONS)
    assert all(line.container == CONTROLLER for line in batch.lines)


def test_collect_keeps_only_the_window(source, scenario):
    since = scenario.incident_start
    until = END - timedelta(minutes=5)
    batch = _collect(source, scenario, since=since, until=until)
    stamps = [datetime.fromisoformat(line.line.split()[0][3:]) for line in batch.lines]
    assert stamps and min(stamps) >= since and max(stamps) <= until


def test_redaction_proof(source, scenario, server):
    # The raw server text carries every planted secret...
    pod = next(p for p in scenario.pods if p.app == CONTROLLER and p.restarts)
    from kubernetes import client, config

    with config.new_client_from_config(
        config_file=str(source.settings.kubeconfig), persist_config=False
    ) as raw_client:
        core = client.CoreV1Api(raw_client)
        raw = core.read_namespaced_pod_log(pod.name, NS) + core.read_namespaced_pod_log(
            pod.name, NS, previous=True
        )
    for secret in PLANTED.values():
        assert secret in raw
    # ...and nothing the source returns, nor the frame, nor the signatures, carries any.
    batch = _collect(source, scenario)
    df = frame(batch.lines)
    signatures = failure_signatures(df)
    texts = [line.line for line in batch.lines]
    texts += [str(v) for v in df.astype(str).to_numpy().ravel()]
    texts += [str(v) for v in signatures.astype(str).to_numpy().ravel()]
    for secret in PLANTED.values():
        assert not [t for t in texts if secret in t], secret
    assert any("[REDACTED]" in t for t in signatures["example"])


def test_fetch_redacts_each_line(source, scenario):
    pod = next(p for p in scenario.pods if p.app == "tenancy-api")
    lines = source.fetch(
        LogRequest(NS, pod.name, pod.app, scenario.start, 10_000, region=pod.region)
    )
    assert len(lines) == len(pod_logs.lines_for(scenario, pod))
    assert any("Authorization: Bearer [REDACTED]" in line for line in lines)


def test_one_pod_failing_keeps_the_others(source, scenario):
    class FlakySource:
        name = "flaky"

        def list_pods(self, request):
            return source.list_pods(request)

        def fetch(self, request):
            if request.pod.endswith(broken):
                raise SourceRejected("kubernetes", f"pod {request.pod} is gone")
            return source.fetch(request)

    controllers = [p for p in scenario.pods if p.app == CONTROLLER]
    broken = controllers[-1].name
    batch = _collect(FlakySource(), scenario)
    assert [(e.pod, e.previous) for e in batch.errors] == [(broken, False)]
    assert broken in batch.errors[0].message
    assert {line.pod for line in batch.lines} == {p.name for p in controllers} - {broken}


def test_a_region_failing_to_list_keeps_the_others(source, scenario):
    class HalfSource:
        name = "half"

        def list_pods(self, request):
            if request.region == "eu-west-1":
                raise SourceUnavailable("kubernetes", "eu-west-1 did not answer")
            return source.list_pods(request)

        def fetch(self, request):
            return source.fetch(request)

    batch = _collect(HalfSource(), scenario)
    assert [(e.region, e.pod) for e in batch.errors] == [("eu-west-1", None)]
    assert {line.region for line in batch.lines} == {"us-east-1", "ap-southeast-2"}


def test_previous_of_a_never_restarted_container_is_rejected(source, scenario):
    pod = next(p for p in scenario.pods if not p.restarts)
    with pytest.raises(SourceRejected, match="previous terminated container") as caught:
        source.fetch(LogRequest(NS, pod.name, pod.app, scenario.start, 10, previous=True))
    assert isinstance(caught.value.__cause__, ApiException)


def test_missing_pod_is_rejected_naming_the_pod(source, scenario):
    with pytest.raises(
        SourceRejected, match="pod tenancy/gone-pod was not found in context 'tenancy-sandbox'"
    ) as caught:
        source.fetch(LogRequest(NS, "gone-pod", "c", scenario.start, 10))
    assert isinstance(caught.value.__cause__, ApiException)


def test_wrong_token_is_rejected_naming_the_context(server, tmp_path, scenario):
    kubeconfig = tmp_path / "kubeconfig"
    kube_api.write_kubeconfig(kubeconfig, server, "not-the-token", None)
    with KubeLogSource(KubeSettings(kubeconfig=kubeconfig), Redactor()) as wrong:
        with pytest.raises(SourceRejected, match="credentials of context 'tenancy-sandbox'"):
            wrong.list_pods(PodQuery(NS, "app=x"))
        # All regions failing to list is an error, not an empty batch.
        with pytest.raises(SourceRejected):
            _collect(wrong, scenario)


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_is_unavailable_and_wrapped(tmp_path, scenario):
    url = f"http://127.0.0.1:{_closed_port()}"
    kubeconfig = tmp_path / "kubeconfig"
    kube_api.write_kubeconfig(kubeconfig, url, TOKEN, None)
    with KubeLogSource(KubeSettings(kubeconfig=kubeconfig, timeout_s=2), Redactor()) as dead:
        for call in (
            lambda: dead.list_pods(PodQuery(NS, "app=x")),
            lambda: dead.fetch(LogRequest(NS, "p", "c", scenario.start, 10)),
        ):
            with pytest.raises(SourceUnavailable) as caught:
                call()
            assert str(caught.value) == (
                f"Kubernetes API at {url} did not answer (connection refused); check --kubeconfig"
            )
            assert isinstance(caught.value.__cause__, urllib3.exceptions.HTTPError)
            assert caught.value.source == "kubernetes"


def test_silent_server_times_out_in_the_configured_time(tmp_path):
    # A listening socket nobody accepts from: the connection opens, no answer ever comes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        kubeconfig = tmp_path / "kubeconfig"
        kube_api.write_kubeconfig(kubeconfig, url, TOKEN, None)
        settings = KubeSettings(kubeconfig=kubeconfig, timeout_s=0.5)
        with KubeLogSource(settings, Redactor()) as silent:
            with pytest.raises(
                SourceUnavailable,
                match=rf"^Kubernetes API at {url} did not answer in 0.5 s; "
                "check --kubeconfig$",
            ):
                silent.list_pods(PodQuery(NS, "app=x"))


def test_bad_kubeconfig_is_a_config_error(tmp_path):
    settings = KubeSettings(kubeconfig=tmp_path / "missing", contexts_by_region={"r": "ctx"})
    with KubeLogSource(settings, Redactor()) as broken:
        with pytest.raises(ConfigError, match="cannot use kube context ctx") as caught:
            broken.list_pods(PodQuery(NS, "app=x", "r"))
    assert isinstance(caught.value, TenancyDiagError)


def test_since_seconds_rounds_up_and_stays_positive():
    now = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    assert since_seconds(now - timedelta(seconds=90.2), now) == 91
    assert since_seconds(now + timedelta(hours=1), now) == 1
    assert since_seconds(datetime(2026, 11, 27, 2, 0), now) == 3600  # naive means UTC


def test_max_concurrency_must_be_positive(source, scenario):
    with pytest.raises(ConfigError, match="max_concurrency 0"):
        collect_logs(
            source,
            NS,
            CONTROLLER,
            REGIONS,
            since=scenario.start,
            until=END,
            tail_lines=10,
            max_concurrency=0,
        )


def test_pod_logs_answer_the_backend_neutral_log_protocol(source, scenario):
    from tenancy_diag.sources.base import LogQuery, LogSource
    from tenancy_diag.sources.pod_logs import PodLogs

    logs = PodLogs(source, NS, max_concurrency=4)
    assert isinstance(logs, LogSource) and not isinstance(source, LogSource)
    query = LogQuery(CONTROLLER, ("us-east-1", "mars-1"), scenario.start, END, 10_000)
    answer = logs.lines(query)
    batch = _collect(source, scenario, regions=("us-east-1", "mars-1"))
    # The same lines collect_logs gives, as plain JSON a recording of any backend could hold.
    assert [line["line"] for line in answer["lines"]] == [line.line for line in batch.lines]
    assert {line["region"] for line in answer["lines"]} == {"us-east-1"}
    assert answer["errors"] == []  # a region with no pods is no error
    json.dumps(answer)


def test_in_cluster_uses_the_pods_service_account(server, monkeypatch):
    from kubernetes import config as kube_config

    from tenancy_diag.redacting import default_redactor
    from tenancy_diag.sources.registry import registry

    def mounted(client_configuration):
        # What the pod's mounted token and KUBERNETES_SERVICE_HOST would give.
        client_configuration.host = server
        client_configuration.api_key = {"authorization": f"Bearer {TOKEN}"}

    monkeypatch.setattr(kube_config, "load_incluster_config", mounted)
    kind = registry.get("kubernetes")
    assert kind.absolute("in-cluster") == "in-cluster"  # a word, not a path to resolve
    reader = kind.create("in-cluster", default_redactor())
    pods = reader.list_pods(PodQuery(NS, f"app={CONTROLLER},region=us-east-1", "us-east-1"))
    assert pods and all(p["labels"]["region"] == "us-east-1" for p in pods)


def test_in_cluster_outside_a_pod_says_what_to_pass_instead(monkeypatch):
    from tenancy_diag.errors import ConfigError

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    reader = KubeLogSource(KubeSettings(in_cluster=True), Redactor())
    with pytest.raises(ConfigError, match=r"not a pod with a service account.*kubeconfig path"):
        reader.list_pods(PodQuery(NS, "app=x", None))
