"""What an install holds: the notebooks and parameters and where a replacement comes from,
the extras and the message when one is missing, and the image built from the same wheel.

The wheel itself is built, installed into a fresh venv and run from elsewhere by
``.ci/wheel-check.sh`` (the test job runs it after pytest)."""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.requirements import Requirement

from tenancy_diag import cli, resources, runbook, signals
from tenancy_diag.diagnosing import verification
from tenancy_diag.errors import ConfigError
from tenancy_diag.running.catalog import default_catalog
from tenancy_diag.service.cli import config_from
from tenancy_diag.service.executor import SubprocessExecutor
from tenancy_diag.settings import ENV_NOTEBOOKS, ENV_PARAMETERS

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    # setenv, not delenv: delenv of an unset variable records nothing to restore, and
    # apply_flags exports into os.environ. Empty means unset to the resolver.
    for variable in (ENV_NOTEBOOKS, ENV_PARAMETERS):
        monkeypatch.setenv(variable, "")


def _copy_parameters(tmp_path: Path, name: str = "params") -> Path:
    folder = tmp_path / name
    shutil.copytree(REPO / "parameters", folder)
    return folder


def _args(**given: Path | None) -> argparse.Namespace:
    return argparse.Namespace(**{f.dest: given.get(f.name) for f in resources.FOLDERS})


# -- where the files are -----------------------------------------------------------------------


def test_a_checkout_reads_its_own_top_level_folders():
    # An editable install must show an edit of notebooks/ or parameters/ at once: no copy.
    assert resources.NOTEBOOKS.path() == REPO / "notebooks"
    assert resources.PARAMETERS.path() == REPO / "parameters"
    assert signals.default_path() == REPO / "parameters" / "signals.yaml"
    assert runbook.default_path() == REPO / "parameters" / "runbook.yaml"
    assert not (REPO / "tenancy_diag" / "_shipped").exists()


def test_the_build_maps_the_top_level_folders_into_the_package():
    setup = (REPO / "setup.py").read_text(encoding="utf-8")
    mapped = dict(re.findall(r'"(tenancy_diag\._shipped\.\w+)": "(\w+)"', setup))
    assert mapped == {f"tenancy_diag._shipped.{f.name}": f.name for f in resources.FOLDERS}
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert package_data["tenancy_diag._shipped.notebooks"] == ["*.ipynb"]
    assert package_data["tenancy_diag._shipped.parameters"] == ["**/*"]


def test_precedence_is_flag_then_environment_then_shipped(tmp_path, monkeypatch):
    from_env, from_flag = _copy_parameters(tmp_path, "env"), _copy_parameters(tmp_path, "flag")
    assert resources.PARAMETERS.override() is None
    monkeypatch.setenv(ENV_PARAMETERS, str(from_env))
    assert resources.PARAMETERS.path() == from_env
    resources.apply_flags(_args(parameters=from_flag))
    assert resources.PARAMETERS.path() == from_flag
    # Exported, so the kernels papermill starts read the same folder.
    assert os.environ[ENV_PARAMETERS] == str(from_flag)


def test_every_loader_reads_the_replacement(tmp_path, monkeypatch):
    params = _copy_parameters(tmp_path)
    text = (params / "runbook.yaml").read_text(encoding="utf-8")
    (params / "runbook.yaml").write_text(
        text.replace("runbook_url:", "runbook_url: https://wiki.example/tenancy #", 1),
        encoding="utf-8",
    )
    (params / "alerts" / "tenancy.rules.yml").write_text("groups: []\n", encoding="utf-8")
    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    shutil.copy(REPO / "notebooks" / "webhook_delivery.ipynb", notebooks / "mine.ipynb")
    monkeypatch.setenv(ENV_PARAMETERS, str(params))
    monkeypatch.setenv(ENV_NOTEBOOKS, str(notebooks))

    assert signals.load().path == params / "signals.yaml"
    assert runbook.load().runbook_url == "https://wiki.example/tenancy"
    assert verification.load_rules() == []
    assert default_catalog().names() == ("mine",)
    with pytest.raises(ConfigError, match=rf"`all` needs .* missing in {notebooks}"):
        default_catalog().resolve(["all"])


def test_a_replacement_missing_a_file_is_refused_naming_the_folder_and_the_fix(tmp_path):
    params = _copy_parameters(tmp_path)
    (params / "runbook.yaml").unlink()
    with pytest.raises(ConfigError) as caught:
        resources.apply_flags(_args(parameters=params))
    message = str(caught.value)
    assert f"parameters folder {params} has no runbook.yaml" in message
    assert "--parameters" in message and "point it at a copy of" in message


def test_a_replacement_that_is_not_a_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_NOTEBOOKS, str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match=r"notebooks folder .*absent does not exist"):
        default_catalog()


def test_the_command_line_refuses_a_bad_folder_in_one_sentence(tmp_path, capsys):
    params = tmp_path / "empty"
    params.mkdir()
    argv = ["run", "all", "--sample", "--incident", "s", "--out", str(tmp_path / "out")]
    assert cli.main([*argv, "--parameters", str(params)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tenancy-diag: error: parameters folder") and "signals.yaml" in err
    assert "\n" not in err


@pytest.mark.parametrize(
    "command",
    [
        ["run", "all", "--incident", "i"],
        ["rerun", "bundle"],
        ["lab"],
        ["check-signals", "--prometheus-url", "http://x"],
        ["serve"],
    ],
)
def test_every_command_reading_the_files_takes_the_flags(command):
    args = cli.build_parser().parse_args([*command, "--parameters", "/p"])
    assert args.parameters_dir == Path("/p")
    if command[0] != "check-signals":  # it reads no notebooks
        args = cli.build_parser().parse_args([*command, "--notebooks", "/n"])
        assert args.notebooks_dir == Path("/n")


def test_serve_hands_the_folders_to_every_run(tmp_path):
    params, notebooks = _copy_parameters(tmp_path), tmp_path / "nb"
    args = cli.build_parser().parse_args(
        ["serve", "--parameters", str(params), "--runner-arg=--sample"]
    )
    env = {"TENANCY_DIAG_SERVICE_TOKEN": "t", ENV_NOTEBOOKS: str(notebooks)}
    config = config_from(args, env)
    assert config.runner_args == (
        "--notebooks",
        str(notebooks),
        "--parameters",
        str(params),
        "--sample",
    )
    executor = SubprocessExecutor(tmp_path / "out", {}, extra_args=config.runner_args)
    job = SimpleNamespace(incident_id="INC-1", subsystems=("webhook",), region=None, tenant=None)
    command = executor.command(job, "run-1")  # type: ignore[arg-type]
    assert command[command.index("--parameters") + 1] == str(params)


def test_job_pods_are_not_handed_this_hosts_folders(tmp_path):
    params = _copy_parameters(tmp_path)
    args = cli.build_parser().parse_args(
        [
            "serve", "--parameters", str(params), "--executor", "kubernetes", "--namespace", "ns",
            "--image", "img", "--service-account", "sa", "--evidence-bucket", "s3://b/p",
            "--runner-arg=--sample",
        ]
    )  # fmt: skip
    config = config_from(args, {"TENANCY_DIAG_SERVICE_TOKEN": "t"})
    assert config.runner_args == ("--sample",)


# -- extras ------------------------------------------------------------------------------------


def _one_sentence(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_the_sandbox_without_moto_names_its_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "moto", None)  # as if not installed
    assert cli.main(["sandbox", "up", "--state-dir", str(tmp_path)]) == 2
    assert _one_sentence(capsys) == (
        "tenancy-diag: error: the sandbox needs moto; pip install 'tenancy-diag[sandbox]'"
    )
    assert not any(tmp_path.iterdir()), "nothing may start"


def test_the_lab_without_jupyterlab_names_its_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "jupyterlab", None)
    assert cli.main(["lab", "--no-sandbox"]) == 2
    assert _one_sentence(capsys).endswith(
        "`tenancy-diag lab` needs jupyterlab; pip install 'tenancy-diag[lab]'"
    )


def _requirement_names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name.lower().replace("_", "-") for r in requirements}


def test_the_runtime_is_lean_and_each_extra_holds_its_part():
    project = PYPROJECT["project"]
    runtime = _requirement_names(project["dependencies"])
    extras = {k: _requirement_names(v) for k, v in project["optional-dependencies"].items()}
    assert not runtime & {"moto", "jupyterlab", "nbval", "pytest"}
    assert extras["lab"] == {"jupyterlab"}
    assert extras["sandbox"] == {"moto"}
    assert {"tenancy-diag", "nbval", "pytest"} <= extras["dev"]
    assert "tenancy-diag[lab,sandbox]" in project["optional-dependencies"]["dev"]
    modules = {m for e in (resources.LAB, resources.SANDBOX) for m in e.modules}
    assert modules == {"jupyterlab", "moto", "flask"}


def _imports(path: Path) -> set[str]:
    """Top-level modules a file imports, leaving out ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _closure(names: set[str]) -> set[str]:
    """Distributions ``names`` pull in (without extras), as installed here."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name.lower().replace("_", "-"))
    return seen


def test_every_runtime_import_comes_with_the_runtime_dependencies():
    modules = set()
    for path in (REPO / "tenancy_diag").rglob("*.py"):
        if "sandbox" not in path.relative_to(REPO).parts:
            modules |= _imports(path)
    third_party = sorted(modules - set(sys.stdlib_module_names) - {"tenancy_diag"})
    installed = _closure(_requirement_names(PYPROJECT["project"]["dependencies"]))
    providers = metadata.packages_distributions()
    missing = [
        m
        for m in third_party
        if not {d.lower().replace("_", "-") for d in providers.get(m, [])} & installed
    ]
    assert not missing, f"imported outside sandbox/ but not a runtime dependency: {missing}"
    assert not installed & {"moto", "jupyterlab", "pytest", "nbval"}


# -- the image ---------------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuations joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), " ".join(rest.split())))
    return out


def _stages(text: str) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions(text):
        if keyword == "FROM":
            stages.append([])
        stages[-1].append((keyword, rest))
    return stages


INSTALL_LINE = re.compile(r'python -m pip install [^\n;&|]*"\$WHEEL"')


def _install_line(text: str) -> str:
    [line] = {" ".join(m.split()) for m in INSTALL_LINE.findall(re.sub(r"\\\n", " ", text))}
    return line


DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")


def test_the_image_installs_the_wheel_exactly_as_ci_checks_it():
    check = (REPO / ".ci" / "wheel-check.sh").read_text(encoding="utf-8")
    line = _install_line(DOCKERFILE)
    assert line == _install_line(check)
    assert "--no-deps" not in line  # the wheel's dependencies come with it, as in CI
    _, final = _stages(DOCKERFILE)
    assert any(k == "RUN" and line in r for k, r in final), "the final stage installs it"


def test_the_image_is_two_slim_stages_and_the_final_one_has_no_build_tools():
    builder, final = _stages(DOCKERFILE)
    assert builder[0] == ("FROM", "python:3.11-slim AS builder")
    assert final[0] == ("FROM", "python:3.11-slim")
    assert any(k == "RUN" and "pip wheel" in r for k, r in builder)
    runs = " ".join(r for k, r in final if k == "RUN")
    assert "apt-get" not in runs and "apk " not in runs
    for tool in ("build-essential", "gcc", "g++", "make ", "-dev "):
        assert tool not in runs
    # Only the wheel comes over from the builder: not the sources, not a build tree.
    assert "from=builder,source=/dist" in runs
    assert not [r for k, r in final if k == "COPY"]


def test_the_image_runs_serve_as_a_fixed_non_root_user_with_a_health_check():
    _, final = _stages(DOCKERFILE)
    keywords = dict(final)
    user = keywords["USER"].split(":")[0]
    assert user.isdigit() and int(user) >= 10000
    assert f"--uid {user}" in " ".join(r for k, r in final if k == "RUN")
    assert keywords["WORKDIR"] == "/work"
    assert keywords["EXPOSE"] == "8080"
    assert keywords["ENTRYPOINT"] == '["tenancy-diag"]'
    cmd = json.loads(keywords["CMD"])
    assert cmd[0] == "serve" and cmd[cmd.index("--listen") + 1].endswith(":8080")
    for flag in ("--state", "--out"):
        assert cmd[cmd.index(flag) + 1].startswith("/work/")
    health = keywords["HEALTHCHECK"]
    assert "urllib.request" in health and "127.0.0.1:8080/healthz" in health
    assert "curl" not in health and "wget" not in health
    # USER comes after every RUN: nothing runs as root once the user is set.
    order = [k for k, _ in final]
    assert max(i for i, k in enumerate(order) if k == "RUN") < order.index("USER")


def test_the_build_context_is_what_the_wheel_is_built_from():
    text = (REPO / ".dockerignore").read_text(encoding="utf-8")
    patterns = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert patterns[0] == "*", "everything is left out unless named"
    allowed = {line[1:].rstrip("/") for line in patterns if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "setup.py",
        "README.md",
        "tenancy_diag",
        "notebooks",
        "parameters",
    }
