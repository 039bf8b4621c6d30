"""`tenancy-diag`: the command line. Every error the package raises becomes one sentence."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tenancy_diag import plugins, resources
from tenancy_diag import signals as signals_mod
from tenancy_diag.arguments import positive_int
from tenancy_diag.checking import check_signals, report_lines
from tenancy_diag.errors import ConfigError, ExitCode, TenancyDiagError
from tenancy_diag.settings import PrometheusSettings
from tenancy_diag.times import parse_duration, parse_time

if TYPE_CHECKING:
    from tenancy_diag.running.labs import Lab


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's usage dump buries the one line that matters at 3 a.m.
        raise ConfigError(f"{message}; see `{self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tenancy-diag", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    check = sub.add_parser("check-signals", help="report which expected series Prometheus lacks")
    check.add_argument("--prometheus-url", required=True)
    check.add_argument("--end", default="now", help="time to check at (ISO-8601, Unix s, now)")
    check.add_argument("--lookback", default="1h", help="how far back a series may last appear")
    check.add_argument(
        "--signals", type=Path, default=None, help="signals mapping YAML (beats --parameters)"
    )
    resources.add_flags(check, (resources.PARAMETERS,))
    check.add_argument("--timeout", type=float, default=10.0, help="seconds per query")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(func=_cmd_check_signals)

    sandbox = sub.add_parser("sandbox", help="a local Tenancy stack for tests and practice")
    sandbox_sub = sandbox.add_subparsers(
        dest="sandbox_command", required=True, parser_class=_Parser
    )
    up = sandbox_sub.add_parser("up", help="start the sandbox in the background")
    up.add_argument("--scenario", default="healthy")
    up.add_argument("--seed", type=int, default=7)
    up.add_argument("--tenants", type=positive_int, default=200)
    up.add_argument("--regions", default="us-east-1,eu-west-1,ap-southeast-2")
    up.add_argument("--duration", default="3h", help="history length, e.g. 3h")
    up.add_argument("--incident-age", default="40m", help="how long before the end the fault began")
    up.add_argument("--end", default="now", help="time of the last sample")
    up.add_argument("--state-dir", type=Path, default=None)
    up.add_argument("--json", action="store_true")
    up.set_defaults(func=_cmd_sandbox_up)
    down = sandbox_sub.add_parser("down", help="stop exactly what `sandbox up` started")
    down.add_argument("--state-dir", type=Path, default=None)
    down.set_defaults(func=_cmd_sandbox_down)
    stat = sandbox_sub.add_parser("status", help="show endpoints and which processes are alive")
    stat.add_argument("--state-dir", type=Path, default=None)
    stat.set_defaults(func=_cmd_sandbox_status)
    env = sandbox_sub.add_parser("env", help="print shell exports for the running sandbox")
    env.add_argument("--state-dir", type=Path, default=None)
    env.set_defaults(func=_cmd_sandbox_env)

    _add_lab(sub)

    from tenancy_diag.running.commands import add_commands

    add_commands(sub)

    from tenancy_diag.service.cli import add_serve_command

    add_serve_command(sub)
    _add_run_and_upload(sub)
    return parser


def _add_lab(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from tenancy_diag.sources.registry import registry as source_kinds

    lab = sub.add_parser(
        "lab",
        help="JupyterLab on working copies of the notebooks: an incident's, a bundle's, or the "
        "sandbox's",
        description="Copies the notebooks into OUT/INCIDENT/lab-<time>/ (never into notebooks/), "
        "wired to the given sources (`--incident ID --prometheus-url ...`, as `run` takes them), "
        "to a bundle's recording (`lab BUNDLE`; with source flags it goes live instead), or to "
        "the running sandbox (no source given), and opens JupyterLab on them.",
    )
    lab.add_argument(
        "bundle", nargs="?", type=Path, default=None, help="a bundle folder OUT/<incident>/<run_id>"
    )
    lab.add_argument("--incident", default=None, help="incident id (default: practice)")
    for kind in source_kinds:
        lab.add_argument(
            kind.flag, dest=kind.parameter, default=None, help=f"{kind.help}; default: ${kind.env}"
        )
    lab.add_argument("--region", dest="regions", action="append", default=None)
    lab.add_argument("--tenant", default=None)
    lab.add_argument("--end", default=None, help="end of the window (default: now, at each run)")
    lab.add_argument("--lookback", default=None, help="window length, e.g. 3h")
    lab.add_argument("--out", type=Path, default=None, help="default: outputs/, or the bundle's")
    lab.add_argument("--state-dir", type=Path, default=None, help="the sandbox to use")
    lab.add_argument("--port", type=int, default=8888)
    lab.add_argument("--no-sandbox", action="store_true", help="never use the sandbox's settings")
    resources.add_flags(lab)
    lab.set_defaults(func=_cmd_lab)


def _add_run_and_upload(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``run-and-upload``: a Kubernetes Job's pod runs the notebooks and hands the bundle over."""
    from tenancy_diag.service.job_commands import add_run_and_upload_command

    add_run_and_upload_command(sub)


def _cmd_check_signals(args: argparse.Namespace) -> int:
    from tenancy_diag.sources.prometheus import PrometheusSource

    mapping = signals_mod.load(args.signals)
    at = parse_time(args.end, "--end")
    parse_duration(args.lookback, "--lookback")
    source = PrometheusSource(PrometheusSettings(url=args.prometheus_url, timeout_s=args.timeout))
    checks = check_signals(source, mapping, at, args.lookback)
    missing = [c for c in checks if not c.present]
    if args.json:
        print(
            json.dumps(
                {
                    "at": at.isoformat(),
                    "prometheus_url": args.prometheus_url,
                    "series": [
                        {
                            "key": c.key,
                            "name": c.name,
                            "present": c.present,
                            "series": c.series,
                            "missing_labels": list(c.missing_labels),
                        }
                        for c in checks
                    ],
                    "missing": len(missing),
                },
                indent=2,
            )
        )
    else:
        print("\n".join(report_lines(checks)))
    return ExitCode.FAILED if missing else ExitCode.OK


def _cmd_sandbox_up(args: argparse.Namespace) -> int:
    from tenancy_diag.sandbox.topology import ScenarioSpec

    end = None if args.end == "now" else parse_time(args.end, "--end")
    spec = ScenarioSpec(
        name=args.scenario,
        seed=args.seed,
        tenants=args.tenants,
        regions=tuple(r.strip() for r in args.regions.split(",") if r.strip()),
        duration_s=int(parse_duration(args.duration, "--duration").total_seconds()),
        incident_age_s=int(parse_duration(args.incident_age, "--incident-age").total_seconds()),
        end=end,
    )
    resources.SANDBOX.require("the sandbox")
    # Imported after the spec is validated: a typo should not wait for heavy imports.
    from tenancy_diag.sandbox import stack

    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr)

    endpoints = stack.up(spec, args.state_dir, progress)
    progress("sandbox up")
    if args.json:
        print(json.dumps(endpoints.__dict__, indent=2))
    else:
        for key, value in endpoints.__dict__.items():
            print(f"{key:24} {value}")
        print('\nexport the settings with: eval "$(tenancy-diag sandbox env)"')
    return ExitCode.OK


def _cmd_sandbox_down(args: argparse.Namespace) -> int:
    from tenancy_diag.sandbox import stack

    stopped = stack.down(args.state_dir)
    print(f"stopped: {', '.join(stopped) or 'nothing (already stopped)'}")
    return ExitCode.OK


def _cmd_sandbox_status(args: argparse.Namespace) -> int:
    from tenancy_diag.sandbox import stack

    state = stack.status(args.state_dir)
    # No endpoints yet: `up` is starting, or was stopped half-way (the next `up` replaces it).
    print(json.dumps({"endpoints": state.get("endpoints"), "alive": state["alive"]}, indent=2))
    return ExitCode.OK if all(state["alive"].values()) else ExitCode.FAILED


def _cmd_sandbox_env(args: argparse.Namespace) -> int:
    import shlex

    from tenancy_diag.sandbox import stack

    for key, value in stack.endpoints(args.state_dir).env().items():
        print(f"export {key}={shlex.quote(value)}")
    return ExitCode.OK


def _cmd_lab(args: argparse.Namespace) -> int:
    import os
    import subprocess

    resources.LAB.require("`tenancy-diag lab`")
    env = {**os.environ, **_lab_environment(args)}
    lab = _prepare_lab(args, env)
    for warning in lab.warnings:
        print(f"tenancy-diag: warning: {warning}", file=sys.stderr)
    print(
        f"lab for {lab.incident} in {lab.root}: {len(lab.notebooks)} notebooks wired to "
        f"{lab.wired_to}",
        file=sys.stderr,
    )
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--notebook-dir={lab.root}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={args.port}",
        "--no-browser",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")  # CI and sandboxes run as root; Jupyter refuses otherwise
    # Jupyter owns the terminal until Ctrl-C; its exit code is ours.
    return subprocess.call(command, env=env)


def _lab_environment(args: argparse.Namespace) -> dict[str, str]:
    """What the lab's kernels see beside this shell's environment: the lab flag, and the
    sandbox's endpoints when no bundle and no source is given."""
    from tenancy_diag.running.commands import named_parameters
    from tenancy_diag.settings import ENV_LAB
    from tenancy_diag.sources.registry import registry as source_kinds

    extra = {ENV_LAB: "1"}
    given = named_parameters(args)
    sourced = any(given.get(p) for p in source_kinds.parameters())
    if args.bundle is None and not args.no_sandbox and not sourced:
        from tenancy_diag.errors import SandboxError
        from tenancy_diag.sandbox import stack

        try:
            endpoints = stack.endpoints(args.state_dir)
        except SandboxError as e:
            flags = ", ".join(kind.flag for kind in source_kinds)
            raise ConfigError(
                f"no source given ({flags}, as for run) and no sandbox to use: {e}; or pass "
                "--no-sandbox for copies with no source"
            ) from e
        extra.update(endpoints.env())
        print(
            f"notebooks wired to the {endpoints.scenario} sandbox (history ends {endpoints.end})",
            file=sys.stderr,
        )
    return extra


def _prepare_lab(args: argparse.Namespace, env: dict[str, str]) -> Lab:
    """The lab folder: copies of a bundle's notebooks, or of every notebook for an incident."""
    from tenancy_diag.running import default_catalog
    from tenancy_diag.running.commands import named_parameters
    from tenancy_diag.running.labs import bundle_lab, incident_lab

    if args.bundle is not None:
        if args.incident is not None:
            raise ConfigError("a bundle names its incident; leave out --incident with BUNDLE")
        # Only flags take a bundle live: endpoints exported in the shell do not.
        return bundle_lab(args.bundle, out=args.out, given=named_parameters(args, env={}))
    catalog = default_catalog()
    return incident_lab(
        [catalog.entry(name) for name in catalog.names()],
        incident=args.incident or "practice",
        out=args.out or Path("outputs"),
        given=named_parameters(args, env),
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # Flags, subsystems and notebooks derive from the registries: fill them first.
        plugins.load()
        args = build_parser().parse_args(argv)
        resources.apply_flags(args)
        code: int = args.func(args)
        return code
    except TenancyDiagError as e:
        print(f"tenancy-diag: error: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except KeyboardInterrupt:
        print("tenancy-diag: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
