"""The papermill runner and the evidence bundle.

``run`` turns a selection of notebooks and parameters into ``OUT/<incident>/<run_id>/``:
executed notebooks, offline HTML, findings, source snapshots, summary, index page and a
manifest sealing every file; ``rerun`` re-executes a bundle offline from its snapshots.

    plan = plan_run(default_catalog().resolve(["all"]), incident="INC-1", out=Path("outputs"),
                    given={})
    result = execute_run(plan)
    verify_bundle(result.bundle.root)   # [] when intact
"""

from tenancy_diag.evidence import MANIFEST_SCHEMA, SUMMARY_SCHEMA
from tenancy_diag.running.audit import AuditRecord, append_audit, redact_command
from tenancy_diag.running.bundles import (
    Bundle,
    create_bundle,
    read_manifest,
    verify_bundle,
)
from tenancy_diag.running.catalog import (
    POSTMORTEM_NOTEBOOK,
    VERIFICATION_NOTEBOOK,
    NotebookCatalog,
    NotebookEntry,
    catalog_from,
    default_catalog,
    remediation_notebooks,
    subsystem_notebooks,
)
from tenancy_diag.running.coercing import Given
from tenancy_diag.running.commands import add_commands
from tenancy_diag.running.execution import NotebookJob, NotebookOutcome, execute, execute_all
from tenancy_diag.running.parameters import declared_parameters, parse_assignments, read_files
from tenancy_diag.running.rerun import RerunResult, compare_findings, rerun
from tenancy_diag.running.runs import RunPlan, RunResult, execute_run, plan_run
from tenancy_diag.running.summary import build_summary

__all__ = [
    "MANIFEST_SCHEMA",
    "POSTMORTEM_NOTEBOOK",
    "SUMMARY_SCHEMA",
    "VERIFICATION_NOTEBOOK",
    "AuditRecord",
    "Bundle",
    "Given",
    "NotebookCatalog",
    "NotebookEntry",
    "NotebookJob",
    "NotebookOutcome",
    "RerunResult",
    "RunPlan",
    "RunResult",
    "add_commands",
    "append_audit",
    "build_summary",
    "catalog_from",
    "compare_findings",
    "create_bundle",
    "declared_parameters",
    "default_catalog",
    "execute",
    "execute_all",
    "execute_run",
    "parse_assignments",
    "plan_run",
    "read_files",
    "read_manifest",
    "redact_command",
    "remediation_notebooks",
    "rerun",
    "subsystem_notebooks",
    "verify_bundle",
]
