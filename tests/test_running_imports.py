"""The cold path imports what a command needs when it needs it (figures: bench/warm_pool.py)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "papermill",
    "nbconvert",
    "nbformat",
    "jsonschema",
    "pandas",
    "matplotlib",
    "boto3",
    "kubernetes",
)


def loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return [m for m in json.loads(out.splitlines()[-1]) if m.split(".")[0] in HEAVY]


def test_importing_the_cli_and_building_its_parser_loads_no_heavy_library():
    assert loaded_after("import tenancy_diag.cli as c; c.build_parser()") == []


def test_importing_the_runner_loads_no_heavy_library():
    assert loaded_after("import tenancy_diag.running") == []


def test_papermill_comes_without_compiling_the_iri_grammar():
    code = (
        "from tenancy_diag.importing import import_papermill; import_papermill()\n"
        "import sys; assert 'rfc3987_syntax.syntax_helpers' not in sys.modules"
    )
    assert "papermill" in loaded_after(code)


def test_the_iri_format_is_still_checked_when_someone_asks():
    code = (
        "from tenancy_diag.importing import import_papermill; import_papermill()\n"
        "import jsonschema\n"
        "v = jsonschema.Draft7Validator({'format': 'iri'},"
        " format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)\n"
        "assert not v.is_valid('http://a b') and v.is_valid('http://a/b')\n"
        "import sys; assert 'rfc3987_syntax.syntax_helpers' in sys.modules"
    )
    loaded_after(code)
