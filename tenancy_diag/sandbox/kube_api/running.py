"""The server as a process: ``python -m tenancy_diag.sandbox.kube_api`` runs :func:`main`."""

from __future__ import annotations

import argparse
import json
from http.server import ThreadingHTTPServer
from pathlib import Path

from tenancy_diag.sandbox import serving
from tenancy_diag.sandbox.kube_api.handler import make_handler
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
    args = parser.parse_args(argv)
    spec = ScenarioSpec.from_json(json.loads(args.scenario_file.read_text(encoding="utf-8")))
    token = args.token_file.read_text(encoding="utf-8").strip()
    handler = make_handler(Scenario(spec), token, log_requests=True)
    server = ThreadingHTTPServer((serving.HOST, args.port), handler)
    server.daemon_threads = True
    serving.serve_forever(server, args.ready_file)
