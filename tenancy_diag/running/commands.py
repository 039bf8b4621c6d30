"""``tenancy-diag run`` and ``tenancy-diag rerun``: the runner's command line.

Exit codes: 0 every notebook ran (whatever it found), 1 a notebook errored (or a rerun's
findings differ from the original's, or a remediation's step or check after it failed), 2 bad
input (raised as a ConfigError, which the CLI's ``main`` turns into one sentence).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tenancy_diag import resources, settings
from tenancy_diag.arguments import non_negative_int, positive_int
from tenancy_diag.errors import ConfigError, ExitCode, TenancyDiagError
from tenancy_diag.running import acting
from tenancy_diag.running.audit import AuditRecord, append_audit, redact_command
from tenancy_diag.running.bundles import INDEX, Bundle, read_manifest
from tenancy_diag.running.catalog import NotebookCatalog, default_catalog
from tenancy_diag.running.closing import add_close_command
from tenancy_diag.running.coercing import Given
from tenancy_diag.running.concluding import FAIL_ON, fail_on_problem, verdict_lines
from tenancy_diag.running.parameters import merge, parse_assignments, read_files
from tenancy_diag.running.progress import for_stream
from tenancy_diag.running.rerun import rerun
from tenancy_diag.running.runs import DEFAULT_CELL_TIMEOUT_S, RunResult, execute_run, plan_run
from tenancy_diag.running.sample import load_sample, with_replay
from tenancy_diag.running.warming import start_pool
from tenancy_diag.sources.registry import registry as source_kinds

if TYPE_CHECKING:
    from tenancy_diag.running.execution import KernelSupply


def add_commands(subparsers: Any, catalog: Callable[[], NotebookCatalog] = default_catalog) -> None:
    """Add ``run``, ``rerun`` and ``close`` to the CLI's subparsers; ``catalog`` lists notebooks."""
    run = subparsers.add_parser("run", help="run diagnostic notebooks into an evidence bundle")
    run.add_argument(
        "notebooks",
        nargs="+",
        metavar="SUBSYSTEM",
        help="notebooks or subsystems (controller, webhook, policy, api, lifecycle), or all",
    )
    run.add_argument("--incident", required=True, help="incident id; names the bundle folder")
    for kind in source_kinds:
        run.add_argument(
            kind.flag, dest=kind.parameter, default=None, help=f"{kind.help}; default: ${kind.env}"
        )
    run.add_argument(
        "--region",
        dest="regions",
        action="append",
        default=None,
        help="a region to look at (repeatable); default: all",
    )
    run.add_argument("--tenant", default=None, help="one tenant to focus on")
    run.add_argument(
        "--warm-kernels",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="start N kernels at once, libraries imported, while the run is planned; each runs "
        "one notebook and the next starts as it is taken (default: one per core; 0: start each "
        "kernel when its notebook does)",
    )
    run.add_argument(
        "--end",
        default=None,
        help=f"end of the window (ISO-8601, Unix s, now); default: ${settings.ENV_END} or now",
    )
    run.add_argument("--lookback", default=None, help="window length, e.g. 3h")
    run.add_argument(
        "--run-id",
        default=None,
        help="name the bundle folder; if that bundle already finished intact, reuse it",
    )
    _common(run)
    run.add_argument(
        "-p",
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a notebook parameter (repeatable; YAML value)",
    )
    run.add_argument(
        "-f",
        "--params-file",
        dest="params_files",
        action="append",
        default=[],
        type=Path,
        metavar="PARAMS.yaml",
        help="parameters file (repeatable)",
    )
    run.add_argument(
        "--replay",
        type=Path,
        default=None,
        metavar="DIR",
        help="answer every source call offline from DIR/<notebook>/ (a bundle's snapshots/)",
    )
    run.add_argument(
        "--sample",
        action="store_true",
        help="replay the recorded sample incident shipped with tenancy-diag (offline)",
    )
    run.add_argument(
        "--fail-on",
        choices=sorted(FAIL_ON),
        default=None,
        help="exit 1 when a subsystem is this bad or worse (unknown counts); for automation",
    )
    run.set_defaults(func=lambda args: _cmd_run(args, catalog))

    again = subparsers.add_parser("rerun", help="re-execute a bundle offline from its snapshots")
    again.add_argument("bundle", type=Path, help="a bundle folder OUT/<incident>/<run_id>")
    _common(again)
    again.set_defaults(func=_cmd_rerun)

    add_close_command(subparsers)


def _common(parser: argparse.ArgumentParser) -> None:
    # The kernels read the parameters; the command line's main() exports both for them.
    resources.add_flags(parser)
    parser.add_argument("--out", type=Path, default=Path("outputs"), help="default: outputs/")
    parser.add_argument(
        "--timeout",
        type=positive_int,
        default=None,
        help=f"seconds one cell may run (default {DEFAULT_CELL_TIMEOUT_S})",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="notebooks at once (default: one per core)",
    )


def named_parameters(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> dict[str, Given]:
    """The named flags as parameters, each falling back to its environment variable."""
    env = os.environ if env is None else env
    named: dict[str, Given] = {}
    for name in [*source_kinds.parameters(), "end"]:
        variable = source_kinds.env_variables()[name]
        flag = f"--{name.replace('_', '-')}"
        if getattr(args, name, None) is not None:
            named[name] = Given(getattr(args, name), flag, strict=False)
        elif env.get(variable):
            named[name] = Given(env[variable], f"${variable}", strict=False)
    for kind in source_kinds:
        given = named.get(kind.parameter)
        if given is not None and given.value:
            # Kernels run inside the bundle folder, where a relative path means something else.
            named[kind.parameter] = Given(kind.absolute(given.value), given.origin, strict=False)
    for name in ("regions", "tenant", "lookback"):
        if getattr(args, name) is not None:
            flag = "--region" if name == "regions" else f"--{name}"
            named[name] = Given(getattr(args, name), flag, strict=False)
    return named


def _cmd_run(args: argparse.Namespace, catalog: Callable[[], NotebookCatalog]) -> int:
    entries = catalog().resolve(args.notebooks)  # an unknown name is refused before any kernel
    # The kernels start first, and warm up while the plan is checked and papermill imported.
    pool = start_pool(args.warm_kernels, len(entries), args.workers)
    try:
        return run_command(args, catalog, command=redact_command(sys.argv), pool=pool)
    finally:
        if pool is not None:
            pool.close()


def run_command(
    args: argparse.Namespace,
    catalog: Callable[[], NotebookCatalog],
    *,
    command: list[str],
    pool: KernelSupply | None = None,
    err: TextIO | None = None,
    out: TextIO | None = None,
) -> int:
    """``run`` with ``args`` parsed, on ``pool``'s kernels; what it prints goes to ``err``
    (progress, warnings, the verdict) and ``out`` (the index path), default stderr and stdout.

    The service calls it in its own threads (``serve --executor pool``), one call per alert.
    """
    err = err or sys.stderr
    out = out or sys.stdout
    try:
        replay_dir, sample_given = _replay_source(args)
        named = named_parameters(args)
        if replay_dir is not None:
            # A replay contacts no source: live endpoints (say, exported for a sandbox) would
            # only land in the manifest as if they had been used.
            named = {k: v for k, v in named.items() if k not in source_kinds.parameters()}
        # The sample's recorded window comes last: any other window would miss its recording.
        given = merge(
            read_files(args.params_files), named, parse_assignments(args.params), sample_given
        )
        plan = plan_run(
            catalog().resolve(args.notebooks),
            incident=args.incident,
            out=args.out,
            given=given,
            command=command,
            cell_timeout_s=args.timeout or DEFAULT_CELL_TIMEOUT_S,
            workers=args.workers,
            run_id=args.run_id,
        )
        acts = any(acting.acts(p.declared) for p in plan.notebooks)
        done = (
            acting.reusable_bundle(
                args.out, args.incident, args.run_id, acts=acts, acting=plan.acting
            )
            if args.run_id
            else None
        )
        if done is not None:
            return _skip(args.out, command, done, err, out)
        if replay_dir is not None:
            plan = with_replay(plan, replay_dir)
        for warning in plan.warnings:
            print(f"tenancy-diag: warning: {warning}", file=err)
        result = execute_run(plan, for_stream(err, len(plan.notebooks)), pool)
    except TenancyDiagError as e:
        _audit_refusal(args.out, "run", command, args.incident, e)
        raise
    return _finish(
        args.out,
        "run",
        command,
        result,
        extra_failure=None,
        fail_on=args.fail_on,
        err=err,
        out_stream=out,
    )


def _skip(out: Path, command: list[str], bundle: Bundle, err: TextIO, stdout: TextIO) -> int:
    # A retry after a crash: the run this id names already finished, so a second copy of the
    # evidence would only make "which bundle is the incident's?" ambiguous.
    append_audit(
        out,
        AuditRecord(
            actor=settings.actor(),
            action="run",
            command=command,
            incident=bundle.incident,
            run_id=bundle.run_id,
            result="skipped: this run id already has an intact bundle",
            exit_code=ExitCode.OK,
        ),
    )
    print(f"tenancy-diag: run {bundle.run_id} already finished; reusing it", file=err)
    print(bundle.root / INDEX, file=stdout)
    return ExitCode.OK


def _replay_source(args: argparse.Namespace) -> tuple[Path | None, dict[str, Given]]:
    if args.sample and args.replay:
        raise ConfigError("--sample and --replay both name a recording; pass one of them")
    if args.sample:
        sample = load_sample()
        return sample.snapshots, {
            k: Given(v, "the sample incident") for k, v in sample.parameters.items()
        }
    return args.replay, {}


def _cmd_rerun(args: argparse.Namespace) -> int:
    command = redact_command(sys.argv)
    # Forked kernels, as for run: one per notebook the bundle holds (none for a bad bundle,
    # which rerun refuses before any kernel would be used).
    try:
        listed = read_manifest(args.bundle).get("notebooks")
    except TenancyDiagError:
        listed = None  # rerun refuses the bundle below, saying why
    pool = start_pool(None, len(listed) if isinstance(listed, dict) else 0, args.workers)
    try:
        outcome = rerun(
            args.bundle,
            args.out,
            command=command,
            progress=for_stream(sys.stderr),
            workers=args.workers,
            cell_timeout_s=args.timeout,
            pool=pool,
        )
    except TenancyDiagError as e:
        _audit_refusal(args.out, "rerun", command, None, e)
        raise
    finally:
        if pool is not None:
            pool.close()
    differing = None
    if outcome.differences:
        for notebook, lines in outcome.differences.items():
            for line in lines[:10]:
                print(f"tenancy-diag: {notebook}: {line}", file=sys.stderr)
        differing = f"findings differ from the original for {', '.join(outcome.differences)}"
    return _finish(args.out, "rerun", command, outcome.run, extra_failure=differing)


def _finish(
    out: Path,
    action: str,
    command: list[str],
    result: RunResult,
    extra_failure: str | None,
    *,
    fail_on: str | None = None,
    err: TextIO | None = None,
    out_stream: TextIO | None = None,
) -> int:
    problems = []
    if result.failed:
        details = "; ".join(f"{o.name} ({o.error})" for o in result.outcomes if not o.ran)
        problems.append(f"{len(result.failed)} notebook(s) failed: {details}")
    if extra_failure:
        problems.append(extra_failure)
    problems.extend(acting.problems(result.outcomes))
    gate = fail_on_problem(result.summary, fail_on)
    code = ExitCode.FAILED if problems or gate else ExitCode.OK
    append_audit(
        out,
        AuditRecord(
            actor=settings.actor(),
            action=action,
            command=command,
            incident=result.bundle.incident,
            run_id=result.bundle.run_id,
            result="; ".join([*problems, *filter(None, [gate])]) or "ok",
            exit_code=code,
        ),
    )
    err = err or sys.stderr
    # The verdict before the errors: the service reads the last line of stderr as the reason.
    print("\n".join(verdict_lines(result.summary, result.index)), file=err)
    for problem in problems:
        print(f"tenancy-diag: error: {problem}", file=err)
    if gate:
        print(f"tenancy-diag: {gate}", file=err)
    print(result.index, file=out_stream or sys.stdout)
    return code


def _audit_refusal(
    out: Path, action: str, command: list[str], incident: str | None, error: TenancyDiagError
) -> None:
    # If even the audit log cannot be written, the refusal is still what the user must fix.
    with contextlib.suppress(TenancyDiagError):
        append_audit(
            out,
            AuditRecord(
                actor=settings.actor(),
                action=action,
                command=command,
                incident=incident,
                run_id=None,
                result=f"refused: {error}",
                exit_code=ExitCode.BAD_INPUT,
            ),
        )
