"""A burst of distinct alerts into `tenancy-diag serve`: runs per minute and peak memory.

    python bench/service_burst.py [--alerts 50] [--workers 2] [--executor pool]

Starts `serve` on 127.0.0.1 with the recorded sample as every run's data (`--runner-arg=--sample`,
so no servers are needed), posts N distinct Alertmanager v4 notifications cycling the five
subsystems, samples the summed RSS of the service's process tree every 0.5 s, and waits until the
queue is empty. Prints one JSON line. Stops the service by its process group.

The alerts carry no region label, so each run replays the whole sample (it was recorded for every
region at once) and finds what the sample holds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import requests

SUBSYSTEMS = ("controller", "webhook", "policy", "api", "lifecycle")
TOKEN = "bench-token"


def alert(i: int, subsystem: str | None = None) -> dict[str, object]:
    labels = {
        "alertname": f"burst-{i}",
        "subsystem": subsystem or SUBSYSTEMS[i % 5],
        "severity": "sev2",
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="burst-{i}"}}',
        "status": "firing",
        "receiver": "tenancy-diag",
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://am",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {},
                "startsAt": "2026-11-27T04:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus",
                "fingerprint": f"{i:016x}",
            }
        ],
    }


def tree_rss(pid: int) -> int:
    try:
        top = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [top, *top.children(recursive=True)])
    except psutil.Error:
        return 0


class Serve:
    """`tenancy-diag serve` in a session of its own, on a free loopback port, on the sample."""

    def __init__(self, root: Path, *, workers: int, executor: str, capacity: int = 100) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.out = root / "out"
        token = root / "token"
        token.write_text(TOKEN)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tenancy_diag.cli",
                "serve",
                f"--listen=127.0.0.1:{port}",
                f"--state={root / 'state'}",
                f"--out={self.out}",
                f"--workers={workers}",
                "--run-timeout=300",
                f"--capacity={capacity}",
                "--runner-arg=--sample",
                f"--executor={executor}",
            ],
            env={**os.environ, "TENANCY_DIAG_SERVICE_TOKEN_FILE": str(token)},
            stdout=(root / "serve.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for _ in range(300):
            try:
                if requests.get(f"{self.base}/healthz", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"serve did not answer on {self.base}; see {root / 'serve.log'}")

    def post(self, body: dict[str, object]) -> None:
        reply = requests.post(
            f"{self.base}/alerts",
            json=body,
            timeout=10,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        reply.raise_for_status()

    def queue(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.base}/healthz", timeout=5).json()["queue"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=60)


def burst(serve: Serve, alerts: int) -> dict[str, Any]:
    """Post ``alerts`` distinct alerts at once; wait for the queue to empty."""
    started = time.monotonic()
    for i in range(alerts):
        serve.post(alert(i))
    accepted = time.monotonic() - started
    peak, queue = 0, {}
    while True:
        peak = max(peak, tree_rss(serve.proc.pid))
        queue = serve.queue()
        if not queue.get("queued") and not queue.get("running"):
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    return {
        "alerts": alerts,
        "accepted_s": round(accepted, 2),
        "all_done_s": round(elapsed, 1),
        "runs_per_min": round(alerts / elapsed * 60, 2),
        "peak_rss_mib_tree": round(peak / 2**20),
        "queue": queue,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executor", default="subprocess", help="serve --executor")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tenancy-burst-"))
    serve = Serve(
        root, workers=args.workers, executor=args.executor, capacity=max(100, args.alerts)
    )
    try:
        result = burst(serve, args.alerts)
    finally:
        serve.stop()
    print(
        json.dumps(
            {**result, "workers": args.workers, "executor": args.executor, "folder": str(root)}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
