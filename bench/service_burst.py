"""A burst of distinct alerts into `tenancy-diag serve`: runs per minute and peak memory.

    python bench/service_burst.py [--alerts 50] [--workers 2]

Starts `serve` on 127.0.0.1 with the recorded sample as every run's data (`--runner-arg=--sample`,
so no servers are needed), posts N distinct Alertmanager v4 notifications cycling the five
subsystems, samples the summed RSS of the service's process tree every 0.5 s, and waits until the
queue is empty. Prints one JSON line. Stops the service by its process group.
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

import psutil
import requests

SUBSYSTEMS = ("controller", "webhook", "policy", "api", "lifecycle")
TOKEN = "bench-token"


def _alert(i: int) -> dict[str, object]:
    labels = {
        "alertname": f"burst-{i}",
        "subsystem": SUBSYSTEMS[i % 5],
        "region": "us-east-1",
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


def _tree_rss(pid: int) -> int:
    try:
        top = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [top, *top.children(recursive=True)])
    except psutil.Error:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tenancy-burst-"))
    token = root / "token"
    token.write_text(TOKEN)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tenancy_diag.cli",
            "serve",
            f"--listen=127.0.0.1:{port}",
            f"--state={root / 'state'}",
            f"--out={root / 'out'}",
            f"--workers={args.workers}",
            "--run-timeout=300",
            f"--capacity={max(100, args.alerts)}",
            "--runner-arg=--sample",
        ],
        env={**os.environ, "TENANCY_DIAG_SERVICE_TOKEN_FILE": str(token)},
        stdout=(root / "serve.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if requests.get(f"{base}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        started = time.monotonic()
        for i in range(args.alerts):
            reply = requests.post(
                f"{base}/alerts",
                json=_alert(i),
                timeout=10,
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            reply.raise_for_status()
        accepted = time.monotonic() - started
        peak, queue = 0, {}
        while True:
            peak = max(peak, _tree_rss(proc.pid))
            queue = requests.get(f"{base}/healthz", timeout=5).json()["queue"]
            if not queue.get("queued") and not queue.get("running"):
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    print(
        json.dumps(
            {
                "alerts": args.alerts,
                "workers": args.workers,
                "accepted_s": round(accepted, 2),
                "all_done_s": round(elapsed, 1),
                "runs_per_min": round(args.alerts / elapsed * 60, 2),
                "peak_rss_mib_tree": round(peak / 2**20),
                "queue": queue,
                "folder": str(root),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
