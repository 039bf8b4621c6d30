"""The server as a process: ``python -m tenancy_diag.sandbox.kube_api`` runs :func:`main`.

``--replicas tenancy-controller=1`` (repeatable) runs a Deployment with fewer replicas per
region than the scenario's default; ``--ready-delay-s`` is how long a replacement pod stays not
Ready after a delete. Both map onto :class:`~.workloads.WorkloadOptions`. ``--kubelet-dir DIR``
runs the pods of the Jobs clients create as processes on this machine, each in a folder under
DIR (:mod:`.kubelet`); they are stopped when the server is.
"""

from __future__ import annotations

import argparse
import json
import logging
from http.server import ThreadingHTTPServer
from pathlib import Path

from tenancy_diag.errors import ConfigError
from tenancy_diag.sandbox import serving
from tenancy_diag.sandbox.kube_api.handler import make_handler
from tenancy_diag.sandbox.kube_api.kubelet import KubeletOptions
from tenancy_diag.sandbox.kube_api.workloads import WorkloadOptions
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tenancy_diag.sandbox.kube_api",
        description="The sandbox's Kubernetes API server.",
    )
    parser.add_argument("--scenario-file", type=Path, required=True)
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--replicas",
        action="append",
        default=[],
        metavar="APP=N",
        help="replicas per region of one Deployment (repeatable)",
    )
    parser.add_argument("--ready-delay-s", type=float, default=WorkloadOptions.ready_delay_s)
    parser.add_argument(
        "--kubelet-dir", type=Path, default=None, help="run Jobs' pods here (default: never)"
    )
    args = parser.parse_args(argv)
    # The kubelet's events go beside the request log, one JSON object per line.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = ScenarioSpec.from_json(json.loads(args.scenario_file.read_text(encoding="utf-8")))
    token = args.token_file.read_text(encoding="utf-8").strip()
    options = WorkloadOptions(_replicas(args.replicas), args.ready_delay_s)
    kubelet = KubeletOptions(args.kubelet_dir.resolve()) if args.kubelet_dir else None
    handler = make_handler(
        Scenario(spec), token, log_requests=True, options=options, kubelet=kubelet
    )
    server = ThreadingHTTPServer((serving.HOST, args.port), handler)
    server.daemon_threads = True
    try:
        serving.serve_forever(server, args.ready_file)
    finally:
        handler.api.close()  # type: ignore[attr-defined]


def _replicas(pairs: list[str]) -> dict[str, int]:
    replicas = {}
    for pair in pairs:
        app, _, count = pair.partition("=")
        if not count.isdigit():
            raise ConfigError(f"--replicas {pair!r} must read APP=N, as in tenancy-controller=1")
        replicas[app] = int(count)
    return replicas
