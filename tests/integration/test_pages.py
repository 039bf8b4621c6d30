"""The evidence pages and index.html as a person reads them, checked by parsing the HTML.

Every page: titled "Subsystem · incident · STATUS", a header linking the index and every
sibling page, findings before the steps, code hidden behind a switch with the parameters as a
table, tables left-aligned and wrapped, units on every column, numbers people read, nothing
loaded from the network. The index: root cause with region and onset, failing subsystems
first, tenants with their figures.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from tenancy_diag.running import verify_bundle

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sample-bundle")]

TITLES = {
    "controller_health": "Controller health",
    "webhook_delivery": "Webhook delivery",
    "policy_evaluation": "Policy evaluation",
    "api_health": "API health",
    "lifecycle_orchestration": "Lifecycle orchestration",
}


def _soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _findings(bundle: Path, name: str) -> dict:
    return json.loads((bundle / "findings" / f"{name}.json").read_text(encoding="utf-8"))


def _pages(bundle: Path) -> list[Path]:
    return sorted((bundle / "html").glob("*.html"))


def test_each_page_is_titled_subsystem_incident_status(sample_bundle):
    for page in _pages(sample_bundle):
        status = _findings(sample_bundle, page.stem)["status"].upper()
        title = _soup(page).title.get_text()
        assert title == f"{TITLES[page.stem]} · sample · {status}", page.name


def test_each_header_links_the_index_and_every_sibling_with_its_status(sample_bundle):
    # Two notebooks at a time: the first pages were written before the last notebooks began,
    # so this holds only because later pages bring earlier headers up to date.
    pages = _pages(sample_bundle)
    assert len(pages) == 5
    for page in pages:
        nav = _soup(page).find("nav", class_="td-nav")
        assert nav is not None, page.name
        hrefs = [a["href"] for a in nav.find_all("a")]
        assert hrefs[0] == "../index.html"
        siblings = {p.name for p in pages} - {page.name}
        assert set(hrefs[1:]) == siblings, page.name
        for link in hrefs:
            assert (page.parent / link).resolve().is_file(), link
        for other in pages:
            status = _findings(sample_bundle, other.stem)["status"].upper()
            assert f"{TITLES[other.stem]}: {status}" in nav.get_text(), (page.name, other.name)
    assert verify_bundle(sample_bundle) == [], "pages changed after the manifest sealed them"


def test_findings_come_before_the_first_step(sample_bundle):
    for page in _pages(sample_bundle):
        text = _soup(page).find("main").get_text(" ")
        findings, step1 = text.find("Findings"), text.find("Step 1:")
        assert -1 < findings < step1, page.name
        assert text.find("Status") < step1, page.name
        assert text.find("Whom to page") < step1 or page.stem in {
            "webhook_delivery",
            "api_health",
            "lifecycle_orchestration",
        }


def test_code_is_hidden_behind_a_switch_and_parameters_are_a_table(sample_bundle):
    page = sample_bundle / "html" / "controller_health.html"
    soup = _soup(page)
    switch = soup.find("input", id="td-show-code")
    assert (
        switch is not None and switch.get("type") == "checkbox" and not switch.has_attr("checked")
    )
    assert soup.find("label", attrs={"for": "td-show-code"}) is not None
    css = " ".join(s.get_text() for s in soup.find_all("style"))
    assert (
        "#td-show-code:not(:checked) ~ main .jp-CodeCell .jp-Cell-inputWrapper{display:none}" in css
    )
    assert "#td-show-code:checked ~ nav .td-code-switch::after" in css
    table = soup.find("table", class_="td-parameters")
    assert table is not None
    rows = {tr.find("td").get_text(): tr for tr in table.find_all("tr") if tr.find("td")}
    assert {"incident_id", "end", "replay_dir", "queue_depth_max"} <= set(rows)
    assert (
        '"sample"' in rows["incident_id"].get_text() and "given" in rows["incident_id"].get_text()
    )
    assert "default" in rows["queue_depth_max"].get_text()


def test_tables_are_left_aligned_wrapped_with_units_and_readable_numbers(sample_bundle):
    for page in _pages(sample_bundle):
        soup = _soup(page)
        css = " ".join(s.get_text() for s in soup.find_all("style"))
        assert "text-align:left!important" in css and "white-space:normal!important" in css
        main = soup.find("main")
        headers = [th.get_text(strip=True) for th in main.find_all("th")]
        assert "value" not in headers, (page.name, headers)
        text = main.get_text(" ")
        assert not re.search(r"\d\.\d{4}\s*(ms|items)", text), page.name
        assert "…" not in " ".join(td.get_text() for td in main.find_all("td")), page.name
    slo = _soup(sample_bundle / "html" / "policy_evaluation.html").find("main").get_text(" ")
    assert re.search(r"< 1,000 ms|< 2,000 ms|< [\d,]+ ms", slo), "SLO targets carry their unit"
    assert "%" in slo
    endpoints = _soup(sample_bundle / "html" / "webhook_delivery.html")
    assert "webhook failures /s" in [th.get_text(strip=True) for th in endpoints.find_all("th")]


def test_log_signatures_are_never_cut(sample_bundle):
    soup = _soup(sample_bundle / "html" / "controller_health.html")
    longest = max(len(td.get_text()) for td in soup.find("main").find_all("td"))
    assert longest > 80, "log lines are shown whole"


def test_pages_and_index_load_nothing_from_the_network(sample_bundle):
    for page in [*_pages(sample_bundle), sample_bundle / "index.html"]:
        soup = _soup(page)
        for tag, attr in (("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src")):
            for element in soup.find_all(tag):
                value = element.get(attr)
                assert not value or value.startswith("data:"), (page.name, tag, value)
        assert "cdnjs" not in page.read_text(encoding="utf-8")


def test_index_names_region_and_onset_puts_failing_first_and_gives_tenant_figures(sample_bundle):
    summary = json.loads((sample_bundle / "summary.json").read_text(encoding="utf-8"))
    soup = _soup(sample_bundle / "index.html")
    assert soup.title.get_text() == "Incident sample · FAILING"
    box = soup.find("div", class_="box").get_text(" ")
    cause = summary["root_cause"]
    assert cause["regions"] == ["us-east-1"] and cause["onset"]
    assert "Policy evaluation timeout" in box and "us-east-1" in box
    assert f"since {cause['onset']}" in box
    tables = soup.find_all("table")
    statuses = [tr.find_all("td")[1].get_text() for tr in tables[0].find_all("tr")[1:]]
    assert statuses == sorted(statuses, key=["FAILING", "ERROR", "DEGRADED", "UNKNOWN", "OK"].index)
    assert statuses[0] == "FAILING"
    tenants = [[td.get_text() for td in tr.find_all("td")] for tr in tables[1].find_all("tr")[1:]]
    assert [t for t, _ in tenants] == summary["escalation_must_include"]["affected_tenants"]
    assert all(re.search(r"[\d.]+ [a-z ]+/s in us-east-1", figure) for _, figure in tenants)
