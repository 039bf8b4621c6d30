"""The server as a process: ``python -m tenancy_diag.sandbox.admin_api`` runs :func:`main`,
which is how the sandbox's stack starts it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from http.server import ThreadingHTTPServer
from pathlib import Path

from tenancy_diag.sandbox.admin_api.handler import make_handler
from tenancy_diag.sandbox.serving import HOST, serve_forever
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tenancy_diag.sandbox.admin_api",
        description="The Tenancy admin API of the sandbox: tenants' lifecycle jobs, and the "
        "audited admin overrides.",
    )
    parser.add_argument("--scenario-file", type=Path, required=True)
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    spec = ScenarioSpec.from_json(json.loads(args.scenario_file.read_text(encoding="utf-8")))
    token = args.token_file.read_text(encoding="utf-8").strip()
    server = ThreadingHTTPServer((HOST, args.port), make_handler(Scenario(spec), token))
    server.daemon_threads = True
    serve_forever(server, args.ready_file)
    return 0
