"""The command line of the Kubernetes executor: ``serve``'s executor flags, and the pod's command.

``tenancy-diag run-and-upload --to s3://bucket/prefix <run arguments>`` is what a Job's pod
runs: ``tenancy-diag run <run arguments>``, then, when the run sealed its bundle, the bundle's
upload to ``<prefix>/<incident>/<run_id>/`` (and the run's audit lines beside it). One command,
so the image needs no shell. Its exit code is the run's (0 ran, 1 a notebook failed, 2
refused), but 1 when the run succeeded and the upload did not: the service then finds no
bundle in S3 and retries.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

from tenancy_diag.arguments import positive_int
from tenancy_diag.errors import ConfigError, ExitCode, TenancyDiagError
from tenancy_diag.journaling import AUDIT_FILE
from tenancy_diag.running.warming import PoolSettings
from tenancy_diag.service.job_manifests import JobSettings, evidence_location

#: The executors ``serve --executor`` offers; the first is the default.
EXECUTORS = ("subprocess", "pool", "kubernetes")


def add_executor_flags(parser: argparse.ArgumentParser) -> None:
    """``--executor`` and the Kubernetes executor's settings, on ``serve``."""
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=EXECUTORS[0],
        help="where runs happen: subprocess on this host (default, a process per run), pool "
        "(this process, on warm kernels: evidence in seconds), or one Kubernetes Job each",
    )
    pool = parser.add_argument_group(
        "Pool executor (--executor pool)",
        "Runs happen in the service's own threads, on kernels started and warmed ahead (pandas, "
        "matplotlib and the library imported); each kernel runs one notebook and is discarded, "
        "and the pool refills in the background. Kernels never see the service's tokens.",
    )
    pool.add_argument(
        "--warm-kernels",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"kernels kept warm (default {PoolSettings.size})",
    )
    pool.add_argument(
        "--kernel-memory-mb",
        type=positive_int,
        default=None,
        metavar="MB",
        help="a warmed kernel using more is discarded, and notebooks start cold (default "
        f"{PoolSettings.kernel_memory_mb})",
    )
    group = parser.add_argument_group(
        "Kubernetes executor (--executor kubernetes)",
        "Runs happen in Jobs of NAMESPACE; their pods take source endpoints from "
        "--job-config-map, tokens from --job-secret, and upload bundles to --evidence-bucket, "
        "from which the service fetches and verifies them. This service's source flags are not "
        "passed to the pods.",
    )
    add = group.add_argument
    add("--namespace", default=None, metavar="NS", help="namespace of the Jobs")
    add("--image", default=None, metavar="IMG", help="the tenancy-diag image the Jobs run")
    add("--service-account", default=None, metavar="SA", help="the Jobs' pods' service account")
    add(
        "--evidence-bucket", default=None, metavar="s3://BUCKET/PREFIX", help="the bundles' way out"
    )
    add(
        "--job-config-map", default=None, metavar="NAME", help="ConfigMap of TENANCY_DIAG_* sources"
    )
    add(
        "--job-secret",
        default=None,
        metavar="NAME",
        help="Secret mounted as files: tenancy-api-token, aws-credentials",
    )
    add(
        "--job-kubeconfig",
        type=Path,
        default=None,
        metavar="PATH",
        help="for the service's own API calls; default: in-cluster service account, else "
        "$KUBECONFIG",
    )


def job_settings(args: argparse.Namespace) -> JobSettings | None:
    """The Kubernetes executor's settings from ``serve``'s flags; None for another executor."""
    if args.executor != "kubernetes":
        given = [f for f in ("namespace", "image", "service_account") if getattr(args, f)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ConfigError(f"{flag} is for --executor kubernetes; add it or drop {flag}")
        return None
    return JobSettings(
        namespace=args.namespace or "",
        image=args.image or "",
        service_account=args.service_account or "",
        evidence=args.evidence_bucket or "",
        config_map=args.job_config_map,
        secret=args.job_secret,
        kubeconfig=args.job_kubeconfig.expanduser().resolve() if args.job_kubeconfig else None,
    )


def add_run_and_upload_command(subparsers: Any) -> None:
    """Add ``run-and-upload`` (after ``run``, whose parser it reuses) to the CLI's subparsers."""
    run_parser = subparsers.choices["run"]
    parser = subparsers.add_parser(
        "run-and-upload",
        help="run the notebooks, then upload the sealed bundle to S3 (what a Job's pod runs)",
    )
    parser.add_argument("--to", required=True, metavar="s3://BUCKET/PREFIX")
    parser.add_argument(
        "run_args",
        nargs=argparse.REMAINDER,
        metavar="RUN-ARGUMENTS",
        help="the arguments of `tenancy-diag run` (--run-id and --out required)",
    )
    parser.set_defaults(func=partial(_run_and_upload, run_parser))


def _run_and_upload(run_parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    bucket, prefix = evidence_location(args.to)
    run = run_parser.parse_args(args.run_args)
    if not run.run_id:
        raise ConfigError("run-and-upload needs --run-id: the service fetches the bundle by it")
    code: int = run.func(run)
    bundle = run.out / run.incident / run.run_id
    if not (bundle / "manifest.json").is_file():
        print(f"tenancy-diag: no sealed bundle at {bundle}; nothing uploaded", file=sys.stderr)
        return code
    from tenancy_diag.running.commands import named_parameters  # noqa: PLC0415
    from tenancy_diag.service.sinks.handoff import S3Handoff  # noqa: PLC0415 - boto3 on demand

    endpoint = named_parameters(run).get("aws_endpoint_url")
    url = str(endpoint.value) if endpoint is not None else None
    try:
        handoff = S3Handoff(bucket, prefix, None if url in (None, "aws") else url)
        uploaded = handoff.upload(bundle, audit=run.out / AUDIT_FILE)
    except TenancyDiagError as e:
        print(f"tenancy-diag: error: the bundle was not uploaded: {e}", file=sys.stderr)
        return code or ExitCode.FAILED
    print(f"tenancy-diag: {uploaded.detail}", file=sys.stderr)
    return code


def pool_settings(args: argparse.Namespace) -> PoolSettings:
    """The pool executor's settings from ``serve``'s flags; refused with another executor."""
    given = {"--warm-kernels": args.warm_kernels, "--kernel-memory-mb": args.kernel_memory_mb}
    for flag, value in given.items():
        if value is not None and args.executor != "pool":
            raise ConfigError(f"{flag} is for --executor pool; add --executor pool or drop {flag}")
    defaults = PoolSettings()
    return PoolSettings(
        size=args.warm_kernels or defaults.size,
        kernel_memory_mb=args.kernel_memory_mb or defaults.kernel_memory_mb,
    )
