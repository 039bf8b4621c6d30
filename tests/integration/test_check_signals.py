"""check-signals against the sandbox's real Prometheus, and against an empty one."""

from __future__ import annotations

import pytest

from tenancy_diag import cli
from tenancy_diag.sandbox import prometheus_proc

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sandbox-webhook_storm")]


def test_every_expected_series_present_on_the_sandbox(sandbox, capsys):
    env = sandbox("webhook_storm")
    code = cli.main(["check-signals", "--prometheus-url", env.prometheus_url, "--end", env.end])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "MISSING" not in out
    assert out.strip().endswith("0 missing")


def test_empty_prometheus_exits_1_and_names_what_is_missing(tmp_path, capsys):
    proc = prometheus_proc.start_empty_prometheus(tmp_path)
    try:
        code = cli.main(["check-signals", "--prometheus-url", proc.url])
    finally:
        proc.stop()
    out = capsys.readouterr().out
    assert code == 1
    assert "MISSING  reconcile_failures_total" in out
    assert "MISSING  webhook_latency_ms_bucket" in out
    assert "MISSING  up " in out


def test_missing_label_is_named(sandbox, capsys, tmp_path):
    import yaml

    from tenancy_diag import signals

    raw = yaml.safe_load(signals.DEFAULT_PATH.read_text())
    raw["metrics"]["queue_depth"]["labels"].append("shard")
    raw["labels"]["shard"] = "shard"
    path = tmp_path / "signals.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = sandbox("webhook_storm")
    code = cli.main(
        [
            "check-signals",
            "--prometheus-url",
            env.prometheus_url,
            "--end",
            env.end,
            "--signals",
            str(path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "queue_depth" in out and "lacking labels shard" in out


def test_unreachable_prometheus_is_one_sentence(capsys):
    code = cli.main(["check-signals", "--prometheus-url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "check --prometheus-url" in err and "Traceback" not in err
