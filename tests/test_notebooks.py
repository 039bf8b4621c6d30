"""The committed notebooks: clean, parameterized from the one SLO mapping, and beside the runbook.

Reading the notebooks is fast (no kernel); the sample replay and the nbval runs at the end
start kernels.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

from tenancy_diag import cli, runbook
from tenancy_diag.running import (
    POSTMORTEM_NOTEBOOK,
    VERIFICATION_NOTEBOOK,
    declared_parameters,
    remediation_notebooks,
    subsystem_notebooks,
)
from tenancy_diag.running.sample import SAMPLE_DIR
from tenancy_diag.settings import ENV_LAB

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
#: The runbook is not in the repository: it sits beside the checkout (shared/runbook.md), so a
#: bare clone has none unless this variable points at it.
RUNBOOK_ENV = "TENANCY_DIAG_RUNBOOK"
DEFAULT_RUNBOOK = REPO.parent / "shared" / "runbook.md"
SIGNALS = REPO / "parameters" / "signals.yaml"
SUBSYSTEM_OF = {notebook: subsystem for subsystem, notebook in subsystem_notebooks().items()}

#: `name: type = value  # comment`, the one shape papermill reads without dropping the line.
PARAMETER_LINE = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*): (?P<type>\w+) = (?P<value>.+?)  # \S.*$")
SECRET_NAME = re.compile(r"token|secret|passw|credential|api_key|access_key|private|auth")
THRESHOLD_NAME = re.compile(r"_(max|min)$")
STEP_HEADING = re.compile(r"^## Step (\d+): (.+)$", re.MULTILINE)
TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "list": list, "dict": dict}


def _paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _source(cell: dict[str, Any]) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else str(source)


def _code_cells(nb: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _parameters(path: Path) -> dict[str, Any]:
    """The parameters cell's defaults, evaluated (every line is a literal)."""
    lines = _source(_code_cells(_load(path))[0]).splitlines()
    return {
        m["name"]: ast.literal_eval(m["value"])
        for m in map(PARAMETER_LINE.match, lines)
        if m is not None
    }


def _runbook() -> Path:
    """The runbook to compare with: ``$TENANCY_DIAG_RUNBOOK``, else the one beside the checkout.

    A path given in the variable must be there: a wrong path fails, it never turns into a skip.
    Without the variable, a clone that has no runbook beside it skips, saying how to supply one.
    """
    given = os.environ.get(RUNBOOK_ENV, "").strip()
    if given:
        if not Path(given).is_file():
            pytest.fail(f"{RUNBOOK_ENV}={given} is not a readable file; point it at runbook.md")
        return Path(given)
    if not DEFAULT_RUNBOOK.is_file():
        pytest.skip(f"no runbook at {DEFAULT_RUNBOOK}; set {RUNBOOK_ENV} to compare with one")
    return DEFAULT_RUNBOOK


def _runbook_steps(path: Path, subsystem_title: str) -> list[str]:
    text = path.read_text(encoding="utf-8")
    workflow = text.split("## Diagnostic Workflow", 1)[1].split("\n## ", 1)[0]
    section = workflow.split(f"### {subsystem_title}\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^\d+\. (.+)$", section, re.MULTILINE)


KNOWN = {
    *subsystem_notebooks().values(),
    *remediation_notebooks().values(),
    VERIFICATION_NOTEBOOK,
    POSTMORTEM_NOTEBOOK,
}
per_notebook = pytest.mark.parametrize("path", _paths(), ids=lambda p: p.stem)
per_subsystem_notebook = pytest.mark.parametrize(
    "path", [p for p in _paths() if p.stem in SUBSYSTEM_OF], ids=lambda p: p.stem
)


def test_every_subsystem_has_its_notebook_and_nothing_unknown_is_there() -> None:
    stems = {p.stem for p in _paths()}
    assert set(subsystem_notebooks().values()) <= stems
    assert stems <= KNOWN, f"unregistered notebooks: {sorted(stems - KNOWN)}"


@per_notebook
def test_committed_without_outputs_or_execution_counts(path: Path) -> None:
    dirty = [
        i
        for i, cell in enumerate(_load(path)["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert dirty == [], f"{path.name}: cells {dirty} hold outputs; strip them before committing"


@per_notebook
def test_first_code_cell_is_the_parameters_cell_papermill_reads_whole(path: Path) -> None:
    first = _code_cells(_load(path))[0]
    assert "parameters" in first.get("metadata", {}).get("tags", [])
    lines = [line for line in _source(first).splitlines() if line.strip()]
    for line in lines:
        assert line.count("=") == 1, f"{path.name}: papermill drops {line!r} (two '=')"
        match = PARAMETER_LINE.match(line)
        assert match, f"{path.name}: {line!r} is not `name: type = value  # comment`"
        value = ast.literal_eval(match["value"])
        assert isinstance(value, TYPES[match["type"]]), line
        assert not SECRET_NAME.search(match["name"]), f"{path.name}: {match['name']} is a secret"
    # What the runner checks parameters against is exactly what the cell declares.
    assert set(declared_parameters(path)) == {PARAMETER_LINE.match(ln)["name"] for ln in lines}


@per_subsystem_notebook
def test_threshold_defaults_come_from_the_slo_table(path: Path) -> None:
    slos = yaml.safe_load(SIGNALS.read_text(encoding="utf-8"))["slos"][SUBSYSTEM_OF[path.stem]]
    params = _parameters(path)
    missing = sorted(set(slos) - set(params))
    assert missing == [], f"{path.name} lacks SLO parameters {missing}"
    for name, default in slos.items():
        if isinstance(default, str):
            assert params[name] == default, name
        else:
            assert params[name] == pytest.approx(float(default)), name
    unknown = sorted(n for n in params if THRESHOLD_NAME.search(n) and n not in slos)
    assert unknown == [], f"{path.name}: thresholds {unknown} are not in signals.yaml's slos"


def _step_headings(path: Path) -> list[tuple[str, str]]:
    nb = _load(path)
    markdown = "\n".join(_source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    headings: list[tuple[str, str]] = STEP_HEADING.findall(markdown)
    return headings


@per_subsystem_notebook
def test_step_headings_are_numbered_from_one(path: Path) -> None:
    headings = _step_headings(path)
    assert headings, f"{path.name} has no '## Step N:' heading"
    assert [int(n) for n, _ in headings] == list(range(1, len(headings) + 1)), headings


@per_subsystem_notebook
def test_step_headings_follow_the_runbook(path: Path) -> None:
    book = _runbook()
    headings = _step_headings(path)
    title = runbook.default().subsystems[SUBSYSTEM_OF[path.stem]].title
    steps = _runbook_steps(book, title)
    assert len(headings) == len(steps), f"{path.name} vs runbook section {title!r}"
    for (n, heading), step in zip(headings, steps, strict=True):
        # A heading may shorten its step, but every word it uses is the runbook's own.
        extra = _words(heading) - _words(step)
        assert not extra, f"{path.name} step {n} {heading!r}: {sorted(extra)} not in {step!r}"


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9_]+", text.lower()) if len(w) > 3}


@per_subsystem_notebook
def test_last_code_cell_finishes_with_findings(path: Path) -> None:
    assert "nb.finish(" in _source(_code_cells(_load(path))[-1])


@pytest.mark.integration
def test_sample_replay_runs_offline_and_names_its_root_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not (SAMPLE_DIR / "sample.json").is_file():
        pytest.skip(f"no recorded sample at {SAMPLE_DIR} yet (the lead is recording it)")
    scenario = json.loads((SAMPLE_DIR / "sample.json").read_text(encoding="utf-8"))["scenario"]
    code = cli.main(["run", "all", "--sample", "--incident", "sample", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    index = Path(captured.out.strip().splitlines()[-1])
    assert index.name == "index.html" and index.is_file()
    summary = json.loads((index.parent / "summary.json").read_text(encoding="utf-8"))
    assert summary["root_cause"] is not None, summary["candidates"]
    assert summary["root_cause"]["pattern"] == scenario


# --- nbval: every notebook top to bottom on the sample, findings against golden copies ----------

GOLDEN = REPO / "tests" / "fixtures" / "golden"


def _golden() -> Any:
    spec = importlib.util.spec_from_file_location("tenancy_diag_golden", GOLDEN / "golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@per_subsystem_notebook
def test_golden_copy_is_the_committed_notebook_executed(path: Path) -> None:
    golden = _golden()
    stored = nbformat.read(GOLDEN / path.name, as_version=4)
    committed = nbformat.read(path, as_version=4)
    assert golden.code_sources(stored) == golden.code_sources(committed), (
        f"{path.name} changed since its golden copy; run `python tests/fixtures/golden/golden.py`"
    )
    checked = [c for c in stored.cells if golden.CHECK in c.metadata.get("tags", [])]
    assert checked and all(c.outputs for c in checked), "the findings cells hold their outputs"
    indexes = golden.findings_cells(stored)
    assert {i for i, c in enumerate(stored.cells) if c in checked} == indexes


def _pytest(*argv: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV_LAB and not k.startswith("PYTEST_")}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rootdir", str(cwd),
         "--nbval-kernel-name", "python3", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


@pytest.mark.integration
def test_every_subsystem_notebook_passes_nbval_on_the_sample(tmp_path: Path) -> None:
    """``--nbval-lax``: the committed notebooks run top to bottom against the shipped sample
    (its parameters injected, as `run --sample` injects them). ``--nbval``: the golden copies'
    findings cells give the same outputs, times and run ids sanitized."""
    golden = _golden()
    lax, strict = tmp_path / "lax", tmp_path / "golden"
    lax.mkdir()
    strict.mkdir()
    for name in golden.SUBSYSTEM_NOTEBOOKS:
        committed = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        params = golden.sample_parameters(
            name, str(lax / f"{name}.json"), str(SAMPLE_DIR / "snapshots" / name)
        )
        nbformat.write(golden.parameterized(committed, params), lax / f"{name}.ipynb")
        stored = nbformat.read(GOLDEN / f"{name}.ipynb", as_version=4)
        nbformat.write(
            golden.runnable(stored, name, strict / f"{name}.json"), strict / f"{name}.ipynb"
        )
    runs = {
        "--nbval-lax": _pytest("--nbval-lax", str(lax), cwd=tmp_path),
        "--nbval": _pytest(
            "--nbval", "--nbval-sanitize-with", str(golden.SANITIZE), str(strict), cwd=tmp_path
        ),
    }
    for mode, process in runs.items():
        output, _ = process.communicate(timeout=900)
        assert process.returncode == 0, f"pytest {mode} failed:\n{output[-6000:]}"
        assert " passed" in output and "error" not in output.splitlines()[-1], output[-2000:]
    for name in golden.SUBSYSTEM_NOTEBOOKS:
        assert (lax / f"{name}.json").is_file() and (strict / f"{name}.json").is_file()
