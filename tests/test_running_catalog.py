"""The notebook registry: names, subsystem aliases, `all` in runbook order, helpful errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenancy_diag.errors import ConfigError
from tenancy_diag.running.catalog import NotebookCatalog, catalog_from, subsystem_notebooks

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
OK = FIXTURES / "ok.ipynb"


def _five() -> NotebookCatalog:
    catalog = NotebookCatalog()
    for name in reversed(list(subsystem_notebooks().values())):
        catalog.register(name, OK)
    return catalog


def test_folder_catalog_names_notebooks_by_stem():
    catalog = catalog_from(FIXTURES)
    assert {"ok", "raises", "silent", "slow"} <= set(catalog.names())
    assert catalog.entry("ok").path == OK.resolve()
    assert catalog.entry("ok").subsystem == "ok"


def test_all_expands_to_the_five_in_runbook_order_and_aliases_resolve():
    catalog = _five()
    names = [e.name for e in catalog.resolve(["all"])]
    assert names == [
        "controller_health",
        "webhook_delivery",
        "policy_evaluation",
        "api_health",
        "lifecycle_orchestration",
    ]
    assert catalog.entry("api_health").subsystem == "api"
    picked = catalog.resolve(["policy", "controller_health", "policy_evaluation"])
    assert [e.name for e in picked] == ["policy_evaluation", "controller_health"]


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ConfigError) as caught:
        _five().resolve(["controler"])
    message = str(caught.value)
    assert "unknown notebook 'controler'" in message
    assert "controller_health" in message and "controller" in message and "all" in message


def test_all_names_missing_notebooks():
    catalog = NotebookCatalog(Path("/somewhere/notebooks"))
    catalog.register("controller_health", OK)
    with pytest.raises(ConfigError, match=r"webhook_delivery.*missing in /somewhere/notebooks"):
        catalog.resolve(["all"])


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "x" * 129])
def test_register_refuses_names_that_are_not_safe_file_names(name):
    with pytest.raises(ConfigError, match="cannot name a folder"):
        NotebookCatalog().register(name, OK)


def test_register_refuses_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not a file"):
        NotebookCatalog().register("ghost", tmp_path / "ghost.ipynb")
