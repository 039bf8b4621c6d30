"""Parameters are merged, typed and checked against each notebook before any kernel starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenancy_diag.errors import ConfigError, ParameterError
from tenancy_diag.running.coercing import Given, coerce, looks_secret
from tenancy_diag.running.parameters import (
    declared_parameters,
    merge,
    parse_assignments,
    read_files,
    resolve,
)

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
RUNNER = {"incident_id": "INC-1", "end": "2026-11-27T03:00:00Z"}


@pytest.fixture(scope="module")
def declared():
    return {"ok": declared_parameters(FIXTURES / "ok.ipynb")}


def test_parameters_cell_is_read_with_types_defaults_and_help(declared):
    specs = declared["ok"]
    assert specs["latency_p99_ms_max"].type_name == "float"
    assert specs["latency_p99_ms_max"].default == "2000.0"
    assert specs["regions"].type_name == "list"
    assert specs["snapshot_dir"].help == "record every source call here"


def test_a_line_papermill_cannot_read_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"declares 'regions' on parameters line 2.*one '='"):
        declared_parameters(FIXTURES / "misdeclared.ipynb")


def test_values_are_typed_as_declared(declared):
    given = merge(
        parse_assignments(
            [
                "tenant=007",
                "latency_p99_ms_max=1500",
                "max_retries=5",
                "regions=us-east-1, eu-west-1",
                "end=2026-11-27T03:00:00Z",
            ]
        ),
    )
    params = resolve(declared, {k: v for k, v in given.items() if k != "end"}, RUNNER)
    ok = params.per_notebook["ok"]
    assert ok["tenant"] == "007"  # as typed, not YAML's integer 7
    assert ok["latency_p99_ms_max"] == 1500.0 and isinstance(ok["latency_p99_ms_max"], float)
    assert ok["max_retries"] == 5
    assert ok["regions"] == ["us-east-1", "eu-west-1"]
    assert ok["incident_id"] == "INC-1" and ok["end"] == RUNNER["end"]


def test_precedence_files_then_flags_then_p(tmp_path, declared):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("tenant: from-a\nmax_retries: 1\nregions: [us-east-1]\n")
    second.write_text("tenant: from-b\n")
    named = {"regions": Given(["eu-west-1"], "--region", strict=False)}
    given = merge(read_files([first, second]), named, parse_assignments(["max_retries=9"]))
    ok = resolve(declared, given, RUNNER).per_notebook["ok"]
    assert ok["tenant"] == "from-b" and ok["max_retries"] == 9 and ok["regions"] == ["eu-west-1"]


@pytest.mark.parametrize(
    "item,needle",
    [
        (
            "latency_p99_ms_max=fast",
            "'latency_p99_ms_max' (-p) is 'fast', but notebook ok declares it float",
        ),
        ("max_retries=2.5", "declares it int"),
        ("max_retries=true", "declares it int"),
        ("tenant=[a, b]", "declares it str"),
    ],
)
def test_wrong_type_names_parameter_value_and_type(declared, item, needle):
    with pytest.raises(ParameterError) as caught:
        resolve(declared, parse_assignments([item]), RUNNER)
    assert needle in str(caught.value)


def test_unknown_name_suggests_close_matches(declared):
    with pytest.raises(ParameterError) as caught:
        resolve(declared, parse_assignments(["latency_p99_max=1"]), RUNNER)
    assert "'latency_p99_max'" in str(caught.value)
    assert "did you mean 'latency_p99_ms_max'" in str(caught.value)


def test_named_flag_no_notebook_declares_is_only_a_warning(declared):
    named = {"kubeconfig": Given("/k", "--kubeconfig", strict=False)}
    resolved = resolve(declared, named, RUNNER)
    assert "kubeconfig" not in resolved.per_notebook["ok"]
    assert "no selected notebook declares 'kubeconfig' (--kubeconfig)" in resolved.warnings[0]


def test_a_parameter_goes_only_to_notebooks_declaring_it(declared):
    slim = {
        "incident_id": declared["ok"]["incident_id"],
        "findings_path": declared["ok"]["findings_path"],
    }
    resolved = resolve({**declared, "slim": slim}, parse_assignments(["tenant=t1"]), RUNNER)
    assert resolved.per_notebook["ok"]["tenant"] == "t1"
    assert resolved.per_notebook["slim"] == {"incident_id": "INC-1"}


@pytest.mark.parametrize(
    "name",
    [
        "api_token",
        "tenancy_api_token",
        "password",
        "db_passwd",
        "client_secret",
        "aws_secret_access_key",
        "access_key_id",
        "api_key",
        "apikey",
        "signing_key",
        "private_keys",
        "aws_credentials",
        "TOKEN",
    ],
)
def test_secret_looking_names_are_refused(declared, name):
    assert looks_secret(name)
    with pytest.raises(ParameterError, match=r"looks like a secret.*environment"):
        resolve(declared, parse_assignments([f"{name}=x"]), RUNNER)


# A bare `key` is the policy cache refresh's cache key (issue 12), not a credential.
@pytest.mark.parametrize(
    "name", ["kubeconfig", "monkey", "keyspace", "tenant", "lookback", "key", "cache_key", "keys"]
)
def test_ordinary_names_are_not_secrets(name):
    assert not looks_secret(name)


def test_url_with_password_is_refused(declared):
    with pytest.raises(ParameterError, match="URL with a password"):
        resolve(declared, parse_assignments(["prometheus_url=http://u:pw@prom:9090"]), RUNNER)


@pytest.mark.parametrize("name", ["incident_id", "findings_path", "snapshot_dir", "replay_dir"])
def test_runner_parameters_cannot_be_overridden(declared, name):
    with pytest.raises(ParameterError, match="set by the runner"):
        resolve(declared, parse_assignments([f"{name}=x"]), RUNNER)


def test_notebook_without_contract_parameters_is_refused():
    specs = declared_parameters(FIXTURES / "ok.ipynb")
    del specs["findings_path"]
    with pytest.raises(ConfigError, match="does not declare findings_path"):
        resolve({"bare": specs}, {}, RUNNER)


def test_bad_assignments_and_files(tmp_path):
    with pytest.raises(ParameterError, match="no '='"):
        parse_assignments(["tenant"])
    with pytest.raises(ParameterError, match="not a Python identifier"):
        parse_assignments(["my-tenant=x"])
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        read_files([listy])
    with pytest.raises(ConfigError, match="cannot read parameters file"):
        read_files([tmp_path / "missing.yaml"])


def test_yaml_dates_become_strings_for_str_parameters():
    given = Given(__import__("datetime").date(2026, 11, 27), "-f p.yaml")
    assert coerce("end", given, "str", "ok") == "2026-11-27"
