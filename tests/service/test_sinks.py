"""Evidence sinks at the wire: moto's real S3 server, and a real HTTP receiver for notes."""

import base64
import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tenancy_diag.errors import ConfigError
from tenancy_diag.running.bundles import (
    create_bundle,
    read_manifest,
    sha256_file,
    verify_bundle,
    write_json,
    write_manifest,
)
from tenancy_diag.sandbox import moto_proc
from tenancy_diag.service import sinks
from tenancy_diag.service.sinks import (
    ENV_NOTE_TOKEN,
    ENV_PAGERDUTY_ROUTING_KEY,
    Attachment,
    LocalSink,
    NoteSink,
    S3Sink,
    SinkError,
    SinkRegistry,
    attach_all,
    create_sink,
)

BUCKET = "incident-evidence"
PREFIX = "tenancy/evidence"
ROUTING_KEY = "R0UT1NGKEY0000000000000000000000"
TOKEN = "note-t0ken-for-tests"

SUMMARY = {
    "schema": "tenancy-diag/summary/v1",
    "incident": "INC-42",
    "run_id": "placeholder",
    "subsystems": [
        {"notebook": "controller_health", "subsystem": "controller", "status": "failing"},
        {"notebook": "webhook_delivery", "subsystem": "webhook", "status": "ok"},
        {"notebook": "policy_evaluation", "subsystem": "policy", "status": "degraded"},
    ],
    "root_cause": {
        "pattern": "policy_timeout",
        "subsystem": "policy",
        "confidence": 0.95,
        "explains": ["reconcile_backlog"],
    },
    "severity": "sev2",
    "escalation": {
        "severity": "sev2",
        "primary": "Platform SRE",
        "backup": "Tenancy Engineering",
        "path": "Engineering Manager",
        "must_include": ["timeline", "affected tenants", "mitigation summary"],
    },
}


# --- fixtures: a small real bundle, moto's server, a note receiver ------------------------------


@pytest.fixture
def out(tmp_path):
    return tmp_path / "out"


@pytest.fixture
def bundle(out):
    """A finished bundle written with the runner's own bundle functions."""
    made = create_bundle(out, "INC-42")
    made.notebook("controller_health").write_text('{"cells": []}', encoding="utf-8")
    made.html("controller_health").write_text("<html>controller</html>", encoding="utf-8")
    write_json(made.findings("controller_health"), {"status": "failing"})
    made.kernel_log("controller_health").write_text("kernel started\n", encoding="utf-8")
    (made.snapshots("controller_health") / "prometheus").mkdir()
    write_json(made.snapshots("controller_health") / "prometheus" / "q-1.json", {"data": []})
    write_json(made.root / "summary.json", {**SUMMARY, "run_id": made.run_id})
    (made.root / "index.html").write_text("<html>incident</html>", encoding="utf-8")
    write_manifest(made, {"incident": made.incident, "run_id": made.run_id})
    return made


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    proc = moto_proc.start_moto(tmp_path_factory.mktemp("moto"))
    try:
        _s3(proc.url).create_bucket(Bucket=BUCKET)
        yield proc
    finally:
        assert proc.stop()


def _s3(url):
    # Placeholder credentials: moto accepts anything, and real ones must never be needed.
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return session.client("s3", endpoint_url=url, config=Config(retries={"max_attempts": 1}))


class Receiver:
    """What the note receiver saw, and the statuses it answers with, in order (then 200)."""

    def __init__(self, statuses=(), delay_s=0.0):
        self.statuses = list(statuses)
        self.delay_s = delay_s
        self.requests = []  # (headers, json body)
        self.url = ""


@contextmanager
def receiver(statuses=(), delay_s=0.0):
    seen = Receiver(statuses, delay_s)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.requests.append((dict(self.headers), json.loads(body)))
            time.sleep(seen.delay_s)
            status = seen.statuses.pop(0) if seen.statuses else 200
            answer = b'{"ok": true}' if status < 300 else b'{"error": "nope"}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    seen.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-path"
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _note(url, fmt="generic", env=None, **kwargs):
    return NoteSink(url, fmt, env={} if env is None else env, **kwargs)


# --- local --------------------------------------------------------------------------------------


def test_local_sink_verifies_and_links_every_file(out, bundle):
    before = _files(bundle.root)
    attachment = LocalSink(out).attach(bundle.root, SUMMARY)
    assert attachment.sink == "local"
    assert next(iter(attachment.links)) == "index.html"
    assert sorted(attachment.links) == before
    assert attachment.links["index.html"] == (bundle.root / "index.html").as_uri()
    assert _files(bundle.root) == before


def test_local_sink_reports_a_damaged_bundle_and_leaves_it(out, bundle):
    (bundle.root / "index.html").write_text("tampered", encoding="utf-8")
    with pytest.raises(SinkError, match=r"index\.html changed after the run") as caught:
        LocalSink(out).attach(bundle.root, SUMMARY)
    assert caught.value.retryable is False
    assert (bundle.root / "index.html").read_text(encoding="utf-8") == "tampered"


def test_local_sink_refuses_a_bundle_outside_out(tmp_path, bundle):
    with pytest.raises(SinkError, match="is not under the output folder"):
        LocalSink(tmp_path / "elsewhere").attach(bundle.root, SUMMARY)


def test_exported_members():
    assert sorted(sinks.__all__) == sorted(set(sinks.__all__))
    assert all(hasattr(sinks, name) for name in sinks.__all__)


# --- registry -----------------------------------------------------------------------------------


def test_unknown_scheme_lists_valid_ones(out):
    with pytest.raises(
        ConfigError,
        match=r"unknown evidence sink scheme 'ftp'; valid schemes: file, http, https, "
        r"local, s3$",
    ):
        create_sink("ftp://user:pw@host/x", out=out)


def test_a_scheme_less_spec_is_not_echoed(out):
    with pytest.raises(ConfigError) as caught:
        create_sink("hooks.example.com/services/SECRET", out=out)
    assert "SECRET" not in str(caught.value)


def test_specs_make_the_right_sinks(out, tmp_path):
    env = {ENV_PAGERDUTY_ROUTING_KEY: ROUTING_KEY}
    local = create_sink("local", out=out)
    assert isinstance(local, LocalSink) and local.root == out
    folder = create_sink(f"file://{tmp_path}/srv", out=out)
    assert isinstance(folder, LocalSink) and folder.root == tmp_path / "srv"
    s3 = create_sink("s3://bkt/a/b/", out=out, aws_endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, S3Sink)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("bkt", "a/b", "http://127.0.0.1:9")
    generic = create_sink("https://tracker.example/notes", out=out, env={})
    slack = create_sink("https://hooks.slack.example/services/T/B/X#slack", out=out, env={})
    pager = create_sink("https://events.pagerduty.example/v2/enqueue#pagerduty", out=out, env=env)
    assert [(s.name, s.format) for s in (generic, slack, pager)] == [
        ("note", "generic"),
        ("slack", "slack"),
        ("pagerduty", "pagerduty"),
    ]
    assert "services/T/B/X" not in repr(slack)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("https://tracker.example/x#teams", "unknown note format #teams"),
        ("https://me:pw@tracker.example/x", "carries credentials"),
        ("https://tracker.example/x#pagerduty", ENV_PAGERDUTY_ROUTING_KEY),
        ("s3:///no-bucket", "is not s3://bucket/prefix"),
        ("file://host/x", "names no local folder"),
    ],
)
def test_bad_specs_say_what_to_fix(out, spec, message):
    with pytest.raises(ConfigError, match=message) as caught:
        create_sink(spec, out=out, env={})
    assert "pw" not in str(caught.value)


def test_own_registry_takes_new_schemes(out):
    own = SinkRegistry()
    own.register("null", lambda parts, context: LocalSink(context.out))
    assert own.schemes() == ("null",)
    assert isinstance(create_sink("null://", out=out, registry=own), LocalSink)


# --- S3, against moto's real server -------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.xdist_group("moto-s3")
def test_s3_uploads_every_file_with_its_sha256(moto, bundle):
    client = _s3(moto.url)
    attachment = S3Sink(BUCKET, PREFIX, moto.url, client=client).attach(bundle.root, SUMMARY)

    base = f"{PREFIX}/INC-42/{bundle.run_id}"
    files = _files(bundle.root)
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{base}/")["Contents"]
    assert sorted(o["Key"] for o in listed) == [f"{base}/{name}" for name in files]
    digests = {name: d["sha256"] for name, d in read_manifest(bundle.root)["files"].items()}
    digests["manifest.json"] = sha256_file(bundle.root / "manifest.json")
    for name in files:
        got = client.get_object(Bucket=BUCKET, Key=f"{base}/{name}", ChecksumMode="ENABLED")
        assert got["Metadata"]["sha256"] == digests[name]
        assert got["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(digests[name])).decode()
        assert got["Body"].read() == (bundle.root / name).read_bytes()
        assert attachment.links[name] == f"s3://{BUCKET}/{base}/{name}"
        assert attachment.links[f"web:{name}"] == f"{moto.url}/{BUCKET}/{base}/{name}"
    types = {
        name: client.head_object(Bucket=BUCKET, Key=f"{base}/{name}")["ContentType"]
        for name in ("index.html", "summary.json", "notebooks/controller_health.ipynb")
    }
    assert types == {
        "index.html": "text/html; charset=utf-8",
        "summary.json": "application/json",
        "notebooks/controller_health.ipynb": "application/x-ipynb+json",
    }
    assert verify_bundle(bundle.root) == []


@pytest.mark.integration
@pytest.mark.xdist_group("moto-s3")
def test_s3_attaching_again_overwrites_the_same_objects(moto, bundle):
    client = _s3(moto.url)
    sink = S3Sink(BUCKET, "again", None, client=client)
    first = sink.attach(bundle.root, SUMMARY)
    etags = {o["Key"]: o["ETag"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]}
    second = sink.attach(bundle.root, SUMMARY)
    again = {o["Key"]: o["ETag"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert first == second and etags == again
    assert not any(k.startswith("web:") for k in first.links)  # no endpoint, no web links


@pytest.mark.integration
@pytest.mark.xdist_group("moto-s3")
def test_s3_missing_bucket_is_a_final_sink_error(moto, bundle):
    sink = S3Sink("no-such-bucket", "", moto.url, client=_s3(moto.url))
    with pytest.raises(SinkError, match=r"S3 refused s3://no-such-bucket/.*NoSuchBucket") as caught:
        sink.attach(bundle.root, SUMMARY)
    assert caught.value.retryable is False
    assert isinstance(caught.value.__cause__, ClientError)


def test_s3_unreachable_endpoint_is_retryable(bundle):
    url = "http://127.0.0.1:9"
    client = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("s3", endpoint_url=url, config=Config(retries={"max_attempts": 1}))
    with pytest.raises(SinkError, match=r"failed .*EndpointConnectionError") as caught:
        S3Sink(BUCKET, "", url, client=client).attach(bundle.root, SUMMARY)
    assert caught.value.retryable is True
    assert isinstance(caught.value.__cause__, BotoCoreError)


# --- notes, against a real HTTP receiver --------------------------------------------------------

LINKS = {
    "s3:index.html": "s3://b/INC-42/r/index.html",
    "s3:web:index.html": "http://s3.example/b/INC-42/r/index.html",
    "local:index.html": "file:///out/INC-42/r/index.html",
}


def test_generic_note_carries_the_findings_and_token(bundle):
    with receiver() as seen:
        sink = _note(seen.url, env={ENV_NOTE_TOKEN: TOKEN})
        attachment = sink.attach(bundle.root, {**SUMMARY, "links": LINKS})
    headers, body = seen.requests[0]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert body == {
        "schema": "tenancy-diag/note/v1",
        "incident": "INC-42",
        "run_id": "placeholder",
        "status": "failing",
        "root_cause": SUMMARY["root_cause"],
        "severity": "sev2",
        "escalation": {
            "owners": {"primary": "Platform SRE", "backup": "Tenancy Engineering"},
            "path": "Engineering Manager",
            "must_include": ["timeline", "affected tenants", "mitigation summary"],
        },
        "links": LINKS,
    }
    assert attachment.sink == "note" and "HTTP 200" in attachment.detail
    assert "secret-path" not in attachment.detail


def test_slack_note_has_text_blocks_and_a_web_link(bundle):
    with receiver() as seen:
        _note(seen.url, "slack", env={ENV_NOTE_TOKEN: TOKEN}).attach(
            bundle.root, {**SUMMARY, "links": LINKS}
        )
    headers, body = seen.requests[0]
    assert "Authorization" not in headers  # the tracker's token never goes to Slack
    assert body["text"] == (
        "Incident INC-42: policy_timeout in policy (sev2, failing): "
        "http://s3.example/b/INC-42/r/index.html"
    )
    assert body["blocks"][0]["type"] == "header"
    text = json.dumps(body["blocks"])
    assert "policy_timeout in policy (confidence 0.95)" in text
    assert "*Severity:*\\nsev2" in text
    assert "<http://s3.example/b/INC-42/r/index.html|s3:web:index.html>" in text


def test_pagerduty_event_takes_its_routing_key_from_the_environment(bundle):
    with receiver() as seen:
        sink = _note(seen.url, "pagerduty", env={ENV_PAGERDUTY_ROUTING_KEY: ROUTING_KEY})
        sink.attach(bundle.root, {**SUMMARY, "links": LINKS})
    headers, body = seen.requests[0]
    assert "Authorization" not in headers
    assert body["routing_key"] == ROUTING_KEY
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "INC-42"
    payload = body["payload"]
    assert payload["summary"] == "Incident INC-42: policy_timeout in policy (sev2, failing)"
    assert (payload["source"], payload["severity"]) == ("tenancy/policy", "error")
    assert payload["custom_details"]["escalation"]["path"] == "Engineering Manager"
    assert payload["custom_details"]["links"] == LINKS
    assert body["links"] == [
        {"href": "http://s3.example/b/INC-42/r/index.html", "text": "s3:web:index.html"}
    ]


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("sev1", "critical"), ("sev3", "warning"), ("sev4", "info"), (None, "info")],
)
def test_pagerduty_severity_follows_the_runbook(severity, expected):
    sink = _note("http://127.0.0.1:9/", "pagerduty", env={ENV_PAGERDUTY_ROUTING_KEY: ROUTING_KEY})
    assert sink.payload({**SUMMARY, "severity": severity})["payload"]["severity"] == expected


def test_note_timeout_is_retryable(bundle):
    with receiver(delay_s=1.0) as seen:
        with pytest.raises(SinkError, match=r"did not answer in 0.2 s") as caught:
            _note(seen.url, timeout_s=0.2).attach(bundle.root, SUMMARY)
    assert caught.value.retryable is True
    assert "secret-path" not in str(caught.value)


# --- attach_all: retries, records, never raises --------------------------------------------------


def test_503_twice_then_accepted_is_one_success_after_three_attempts(out, bundle):
    recorded = []
    with receiver([503, 503]) as seen:
        results = attach_all(
            [_note(seen.url)],
            bundle.root,
            SUMMARY,
            retries=3,
            backoff_s=0.01,
            record=lambda *args: recorded.append(args),
        )
    assert len(seen.requests) == 3
    assert [(r.sink, r.ok, r.attempts) for r in results] == [("note", True, 3)]
    assert recorded == [("note", True, results[0].detail)]


def test_a_400_is_not_retried_and_the_local_bundle_survives(out, bundle):
    recorded = []
    with receiver([400]) as seen:
        results = attach_all(
            [_note(seen.url), LocalSink(out)],
            bundle.root,
            SUMMARY,
            backoff_s=0.01,
            record=lambda *args: recorded.append(args),
        )
    assert len(seen.requests) == 1
    note, local = results
    assert (note.ok, note.attempts, note.retryable) == (False, 1, False)
    assert "answered HTTP 400" in note.error and "secret-path" not in note.error
    assert local.ok
    assert recorded == [("local", True, local.detail), ("note", False, note.detail)]
    assert verify_bundle(bundle.root) == []


def test_retryable_failures_stop_after_the_retries(bundle):
    with receiver([503] * 10) as seen:
        [result] = attach_all([_note(seen.url)], bundle.root, SUMMARY, retries=2, backoff_s=0.01)
    assert (result.ok, result.attempts, result.retryable) == (False, 3, True)
    assert len(seen.requests) == 3 and result.error.endswith("after 3 attempts")


class _Crashing:
    name = "crashing"

    def attach(self, bundle, summary):
        raise RuntimeError("plugin bug")


class _Fixed:
    name = "dashboards"

    def attach(self, bundle, summary):
        return Attachment(self.name, {"index.html": "https://dash.example/d/1"}, "linked")


def test_a_crashing_sink_does_not_stop_the_others(out, bundle):
    results = attach_all([_Crashing(), LocalSink(out)], bundle.root, SUMMARY)
    assert [(r.sink, r.ok) for r in results] == [("crashing", False), ("local", True)]
    assert results[0].error == "RuntimeError: plugin bug"


def test_notes_run_last_and_carry_the_other_sinks_headline_links(out, bundle):
    with receiver() as seen:
        results = attach_all(
            [_note(seen.url), LocalSink(out), _Fixed()],
            bundle.root,
            {**SUMMARY, "links": {"runbook": "https://wiki.example/runbook"}},
        )
    assert [r.sink for r in results] == ["note", "local", "dashboards"]
    links = seen.requests[0][1]["links"]
    assert links == {
        "runbook": "https://wiki.example/runbook",
        "local:index.html": (bundle.root / "index.html").as_uri(),
        "local:summary.json": (bundle.root / "summary.json").as_uri(),
        "dashboards:index.html": "https://dash.example/d/1",
    }


@pytest.mark.integration
@pytest.mark.xdist_group("moto-s3")
def test_end_to_end_local_s3_and_slack(moto, out, bundle):
    recorded = []
    with receiver() as seen:
        sinks = [
            create_sink(seen.url + "#slack", out=out, env={}),
            create_sink("local", out=out),
            S3Sink(BUCKET, "e2e", moto.url, client=_s3(moto.url)),
        ]
        results = attach_all(sinks, bundle.root, SUMMARY, record=lambda *a: recorded.append(a))
    assert all(r.ok for r in results), [r.error for r in results]
    assert [name for name, _, _ in recorded] == ["local", "s3", "slack"]
    web = f"{moto.url}/{BUCKET}/e2e/INC-42/{bundle.run_id}/index.html"
    assert seen.requests[0][1]["text"].endswith(web)
