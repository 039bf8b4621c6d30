"""`serve`'s configuration: loopback only, the token never a flag, sources from flags or env."""

from __future__ import annotations

import argparse

import pytest

from tenancy_diag.errors import ConfigError
from tenancy_diag.service.app import parse_listen
from tenancy_diag.service.cli import add_serve_command, config_from


@pytest.mark.parametrize("listen", ["0.0.0.0:9464", "localhost:9464", "[::1]:9464", "10.0.0.5:80"])
def test_hosts_other_than_loopback_are_refused(listen):
    with pytest.raises(ConfigError, match=r"is not 127\.0\.0\.1"):
        parse_listen(listen)


@pytest.mark.parametrize("listen", ["localhost:9464", "[::1]:9464", "10.0.0.5:80"])
def test_in_cluster_opens_all_interfaces_only(listen):
    assert parse_listen("0.0.0.0:8080", in_cluster=True) == ("0.0.0.0", 8080)
    with pytest.raises(ConfigError, match=r"is not 127\.0\.0\.1"):
        parse_listen(listen, in_cluster=True)


@pytest.mark.parametrize("listen", ["127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", ""])
def test_a_listen_address_without_a_port_is_refused(listen):
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_listen(listen)


def _args(*argv):
    parser = argparse.ArgumentParser()
    add_serve_command(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_flags_env_and_token_file_make_the_config(tmp_path):
    token = tmp_path / "token"
    token.write_text("tok\n")
    env = {
        "TENANCY_DIAG_SERVICE_TOKEN_FILE": str(token),
        "TENANCY_DIAG_PROMETHEUS_URL": "http://127.0.0.1:9090",
        "TENANCY_DIAG_KUBECONFIG": "kube/config",
    }
    args = _args(
        "--listen=127.0.0.1:0",
        f"--state={tmp_path / 'state'}",
        "--sink=local",
        "--sink=s3://evidence/tenancy",
        "--aws-endpoint-url=http://127.0.0.1:5000",
        "--runner-arg=--sample",
        "--workers=3",
    )
    config = config_from(args, env)
    assert config.token == "tok" and config.workers == 3
    assert config.sinks == ("local", "s3://evidence/tenancy")
    assert config.runner_args == ("--sample",)
    assert config.sources["--prometheus-url"] == "http://127.0.0.1:9090"
    assert config.sources["--aws-endpoint-url"] == "http://127.0.0.1:5000"
    assert config.sources["--kubeconfig"].startswith("/")  # runs start in bundle folders
    assert "--tenancy-api-url" not in config.sources


def test_no_token_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="TENANCY_DIAG_SERVICE_TOKEN"):
        config_from(_args(f"--state={tmp_path}"), {})


def test_retention_flags_make_the_config(tmp_path):
    env = {"TENANCY_DIAG_SERVICE_TOKEN": "tok"}
    config = config_from(_args("--retain-days=14", "--retain-bytes=5000000000"), env)
    assert (config.retention.max_age_days, config.retention.max_bytes) == (14.0, 5_000_000_000)
    assert config_from(_args(), env).retention.bounded is False
