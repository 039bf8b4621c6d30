"""``tenancy-diag serve``: the command line of the alert-driven service.

The bearer token is never a flag (flags show in ``ps`` and shell history): it comes from
``TENANCY_DIAG_SERVICE_TOKEN`` or the file named by ``TENANCY_DIAG_SERVICE_TOKEN_FILE``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenancy_diag import resources
from tenancy_diag.arguments import positive_float, positive_int
from tenancy_diag.errors import TenancyDiagError
from tenancy_diag.service.job_commands import add_executor_flags, job_settings, pool_settings
from tenancy_diag.sources.registry import registry as source_kinds

if TYPE_CHECKING:
    from tenancy_diag.service.app import ServiceConfig


def add_serve_command(subparsers: Any) -> None:
    """Add ``serve`` to the CLI's subparsers."""
    serve_parser = subparsers.add_parser(
        "serve", help="receive alerts and incidents, run the notebooks, attach the evidence"
    )
    add = serve_parser.add_argument
    add(
        "--listen", default="127.0.0.1:9464", help="127.0.0.1:PORT (0.0.0.0:PORT with --in-cluster)"
    )
    add(
        "--in-cluster",
        action="store_true",
        help="running in a pod behind a Service and NetworkPolicy: allow --listen 0.0.0.0:PORT",
    )
    add("--state", type=Path, default=Path(".tenancy-diag"), help="folder of the durable queue")
    add("--out", type=Path, default=Path("outputs"), help="bundles folder (default: outputs/)")
    add("--workers", type=positive_int, default=2, help="runs at once")
    add("--run-timeout", type=positive_float, default=1800.0, help="seconds one run may take")
    add("--max-attempts", type=positive_int, default=3, help="tries per job")
    add("--retry-backoff", type=positive_float, default=30.0, help="seconds before 1st retry")
    add("--capacity", type=positive_int, default=100, help="queued+running jobs accepted")
    add(
        "--retain-days",
        type=positive_float,
        default=None,
        help="remove bundles attached to every sink, and moved-aside attempts, this many days "
        "after their last write (default: keep)",
    )
    add(
        "--retain-bytes",
        type=positive_int,
        default=None,
        help="keep OUT under this many bytes by removing such bundles, oldest first "
        "(never one still unattached; default: no bound)",
    )
    add(
        "--sink",
        dest="sinks",
        action="append",
        default=None,
        metavar="SPEC",
        help="local, file:///dir, s3://bucket/prefix, http(s)://url[#slack|#pagerduty] "
        "(repeatable; default: local)",
    )
    for kind in source_kinds:
        add(kind.flag, default=None, help=f"{kind.help}; passed to every run; default: ${kind.env}")
    add(
        "--runner-arg",
        dest="runner_args",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra argument for every run, e.g. --runner-arg=--sample (repeatable)",
    )
    resources.add_flags(serve_parser)
    add_executor_flags(serve_parser)
    serve_parser.set_defaults(func=_cmd_serve)


def config_from(args: argparse.Namespace, env: dict[str, str] | None = None) -> ServiceConfig:
    # Deferred: boto3 and the rest load only when the service starts, not for `--help`.
    from tenancy_diag.service.app import ServiceConfig  # noqa: PLC0415
    from tenancy_diag.service.http import read_token  # noqa: PLC0415
    from tenancy_diag.service.retention import Retention  # noqa: PLC0415

    env = dict(os.environ) if env is None else env
    sources = {}
    for kind in source_kinds:
        value = getattr(args, kind.parameter, None) or env.get(kind.env)
        if value:
            # Runs start in bundle folders, where a relative path means something else.
            sources[kind.flag] = kind.absolute(value)
    return ServiceConfig(
        listen=args.listen,
        in_cluster=args.in_cluster,
        state_dir=args.state.resolve(),
        out=args.out.resolve(),
        token=read_token(env),
        workers=args.workers,
        run_timeout_s=args.run_timeout,
        sinks=tuple(args.sinks or ("local",)),
        sources=sources,
        # Explicit, not only inherited: an executor may start runs where our environment is not.
        # Not to Job pods: a folder on this host means nothing there; they mount their own.
        runner_args=(
            *(resources.runner_args(args, env) if args.executor != "kubernetes" else ()),
            *args.runner_args,
        ),
        capacity=args.capacity,
        retention=Retention(max_age_days=args.retain_days, max_bytes=args.retain_bytes),
        max_attempts=args.max_attempts,
        backoff_s=args.retry_backoff,
        executor=args.executor,
        jobs=job_settings(args),
        pool=pool_settings(args),
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    from tenancy_diag.service.app import serve  # noqa: PLC0415

    return serve(config_from(args))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tenancy_diag.service.cli serve ...``: the service without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="tenancy-diag")
    add_serve_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        resources.apply_flags(args)
        code: int = args.func(args)
    except TenancyDiagError as e:
        print(f"tenancy-diag: error: {e}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
