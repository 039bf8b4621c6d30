"""An executed notebook as a page to read at 3 a.m.: findings first, parameters as a table, and
a header naming the incident and linking its index and sibling pages.

The notebook itself keeps the runbook's order (its findings are computed from every step, so
they come last); only the page moves them up, because a reader wants the verdict before the
evidence. Everything here is about one notebook node and one bundle folder's files; the HTML
export itself is :mod:`tenancy_diag.running.rendering`'s.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from tenancy_diag.evidence import FINDINGS_DIR
from tenancy_diag.running.catalog import subsystem_notebooks
from tenancy_diag.subsystems import registry as subsystems

#: The first line of the heading under which every notebook states its findings.
_FINDINGS_HEADING = re.compile(r"^##\s+Findings\b", re.IGNORECASE)
#: `name: type = value  # meaning`, the parameters cell's one shape.
_PARAMETER = re.compile(
    r"^(?P<name>[A-Za-z_]\w*)\s*:\s*\w+\s*=\s*(?P<value>.+?)\s+#\s*(?P<doc>.*)$"
)
#: The page header is delimited so a later page can bring it up to date (see rendering).
NAV_START, NAV_END = "<!--tenancy-diag:nav-->", "<!--/tenancy-diag:nav-->"
NAV_BLOCK = re.compile(re.escape(NAV_START) + r".*?" + re.escape(NAV_END), re.DOTALL)


@dataclass(frozen=True)
class PageInfo:
    """What a page's title and header say about its notebook."""

    name: str
    title: str  # "Webhook delivery"
    incident: str
    status: str | None  # the findings' status; None when there are none

    @property
    def page_title(self) -> str:
        parts = [self.title, self.incident, (self.status or "").upper()]
        return " · ".join(p for p in parts if p)


def bundle_root(html: Path) -> Path | None:
    """The bundle a page at ``html/<name>.html`` belongs to, when it is in one."""
    root = html.parent.parent
    return root if html.parent.name == "html" and (root / "notebooks").is_dir() else None


def page_info(name: str, nb: Any | None, root: Path | None) -> PageInfo:
    """``nb`` may be None when the notebook cannot be read (yet): its name stands in."""
    findings = _findings(root, name)
    given = _parameters(nb)[1] if nb is not None else {}
    incident = str(findings.get("incident") or given.get("incident_id") or "")
    status = findings.get("status")
    return PageInfo(name, _title(name, nb), incident, str(status) if status else None)


def described(name: str) -> bool:
    """Whether notebook ``name`` diagnoses a subsystem, whose descriptor gives its title."""
    found = subsystems.by_notebook(name)
    return found is not None and found.notebook == name


def _findings(root: Path | None, name: str) -> dict[str, Any]:
    if root is None:
        return {}
    try:
        data = json.loads((root / FINDINGS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _title(name: str, nb: Any | None) -> str:
    found = subsystems.by_notebook(name)
    if found is not None and found.notebook == name:
        return found.title
    for cell in nb.cells if nb is not None else []:
        source = str(cell.source)
        if cell.cell_type == "markdown" and source.startswith("# "):
            return source.splitlines()[0][2:].split(":", 1)[0].strip()
    return name.replace("_", " ").capitalize()


def for_reading(nb: Any) -> Any:
    """A copy of ``nb`` with its findings right after its title and its parameters as a table."""
    nb = copy.deepcopy(nb)
    _parameters_as_table(nb)
    cells = list(nb.cells)
    start = next(
        (
            i
            for i, c in enumerate(cells)
            if c.cell_type == "markdown" and _FINDINGS_HEADING.match(c.source)
        ),
        None,
    )
    if start is None:
        return nb
    findings, rest = cells[start:], cells[:start]
    title = 1 if rest and rest[0].cell_type == "markdown" else 0
    nb.cells = [*rest[:title], *findings, *rest[title:]]
    return nb


def _parameters(nb: Any) -> tuple[dict[str, tuple[str, str]], dict[str, Any]]:
    """The parameters cell's ``{name: (default, meaning)}`` and the values the run gave."""
    declared: dict[str, tuple[str, str]] = {}
    given: dict[str, Any] = {}
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type != "code":
            continue
        if "parameters" in tags:
            for line in cell.source.splitlines():
                found = _PARAMETER.match(line.strip())
                if found:
                    declared[found["name"]] = (found["value"], found["doc"])
        elif "injected-parameters" in tags:
            given.update(_assignments(cell.source))
    return declared, given


def _assignments(source: str) -> dict[str, Any]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    found[target.id] = ast.unparse(node.value)
    return found


def _parameters_as_table(nb: Any) -> None:
    declared, given = _parameters(nb)
    if not declared:
        return
    rows = []
    for name, (default, meaning) in declared.items():
        value = json.dumps(given[name], default=str) if name in given else default
        origin = "given" if name in given else "default"
        rows.append(
            f"<tr><td><code>{escape(name)}</code></td><td><code>{escape(value)}</code></td>"
            f"<td>{origin}</td><td>{escape(meaning)}</td></tr>"
        )
    html = (
        "<table class='td-parameters'><thead><tr><th>Parameter</th><th>Value</th>"
        "<th>Set by</th><th>Meaning</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            cell.outputs = [
                {
                    "output_type": "display_data",
                    "metadata": {},
                    "data": {
                        "text/html": f"<details><summary>Parameters</summary>{html}</details>"
                    },
                }
            ]
            return


def sibling_names(root: Path) -> list[str]:
    """The bundle's notebooks, in the runbook's order (others after, by name)."""
    present = {p.stem for p in (root / "notebooks").glob("*.ipynb")}
    order = [n for n in subsystem_notebooks().values() if n in present]
    return [*order, *sorted(present - set(order))]


def nav(here: str, infos: Sequence[PageInfo], incident: str, index: bool) -> str:
    """The page header: the index, each sibling page with its status, the code switch."""
    links = []
    if index:
        links.append(
            f'<a class="td-index" href="../index.html">&#8593; Incident {escape(incident)}</a>'
        )
    for info in infos:
        status = info.status or "running"
        text = f"{escape(info.title)}: {escape(status.upper())}"
        if info.name == here:
            links.append(f'<span class="td-here td-{escape(status)}">{text}</span>')
        else:
            links.append(
                f'<a class="td-{escape(status)}" href="{escape(info.name)}.html">{text}</a>'
            )
    switch = '<label for="td-show-code" class="td-code-switch" tabindex="0"></label>'
    return f'{NAV_START}<nav class="td-nav">{"".join(links)}{switch}</nav>{NAV_END}'


def infos_of(root: Path, read: Mapping[str, Any]) -> list[PageInfo]:
    """A :class:`PageInfo` per sibling; ``read`` maps a notebook name to its node."""
    return [page_info(name, read[name], root) for name in sibling_names(root) if name in read]


#: The page's own style, after nbconvert's: tables left-aligned and wrapped, code hidden until
#: the reader asks for it (a checkbox, so it works with scripts off).
CSS = """
.td-toggle{position:absolute;left:-9999px}
.td-nav{position:sticky;top:0;z-index:10;display:flex;flex-wrap:wrap;gap:.3rem 1.1rem;
align-items:center;padding:.5rem 1rem;background:#f4f5f9;border-bottom:1px solid #ccd;
font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif}
.td-nav a{color:#1a4d8f;text-decoration:none}.td-nav a:hover{text-decoration:underline}
.td-here{font-weight:700}.td-index{font-weight:600}
.td-failing,.td-error{color:#a11d1d!important}.td-degraded{color:#8a5a00!important}
.td-ok{color:#17612b!important}.td-unknown{color:#555!important}
.td-code-switch{margin-left:auto;cursor:pointer;border:1px solid #99a;border-radius:4px;
padding:.05rem .55rem;background:#fff}
.td-code-switch::after{content:"Show code"}
#td-show-code:checked ~ nav .td-code-switch::after{content:"Hide code"}
#td-show-code:not(:checked) ~ main .jp-CodeCell .jp-Cell-inputWrapper{display:none}
#td-show-code:not(:checked) ~ main .jp-CodeCell.jp-mod-noOutputs{display:none}
#td-show-code:not(:checked) ~ main .jp-OutputPrompt{display:none}
.jp-RenderedHTMLCommon table{table-layout:auto;margin-left:0;max-width:100%}
.jp-RenderedHTMLCommon td,.jp-RenderedHTMLCommon th{text-align:left!important;
white-space:normal!important;overflow-wrap:break-word;vertical-align:top!important}
.jp-OutputArea-output pre{white-space:pre-wrap;overflow-wrap:break-word}
.jp-RenderedHTMLCommon details>summary{cursor:pointer;font-weight:600}
"""
