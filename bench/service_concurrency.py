"""1,000 concurrent valid alerts into the receiver on loopback: all answered? p50 and p99.

    python bench/service_concurrency.py [--requests 1000] [--old-commit 48c5815]

Starts the receiver (queue and listener, no workers, so no run competes for the CPU) in a
child process, opens N connections at once, each POSTing one distinct Alertmanager v4
notification, and times each from connect to the whole answer. Then reads the queue: every
answered alert must be there exactly once. With ``--old-commit``, the hand-written
``http.server`` receiver of that commit (``git show <commit>:tenancy_diag/service/http.py``,
on today's queue) gets the same burst, and the ratio of the figures is printed. Never asserted
in tests: the figures depend on the machine. Prints one JSON line per receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

from tenancy_diag.service.app import Service, ServiceConfig
from tenancy_diag.service.store import Store
from tenancy_diag.service.telemetry import Telemetry

TOKEN = "bench-token"
SUBSYSTEMS = ("controller", "webhook", "policy", "api", "lifecycle")
ROOT = Path(__file__).resolve().parents[1]


def _alert(i: int) -> bytes:
    labels = {
        "alertname": f"burst-{i}",
        "subsystem": SUBSYSTEMS[i % 5],
        "region": "us-east-1",
        "severity": "sev2",
    }
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {},
        "startsAt": "2026-11-27T04:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"{i:016x}",
    }
    payload = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="burst-{i}"}}',
        "status": "firing",
        "receiver": "tenancy-diag",
        "commonLabels": labels,
        "alerts": [alert],
    }
    return json.dumps(payload).encode()


# The child: one receiver, serving until SIGTERM.


def _serve(kind: str, state: Path, port_file: Path, old_http: Path | None) -> None:

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if kind == "new":
        service = Service(
            ServiceConfig(
                listen="127.0.0.1:0",
                state_dir=state,
                out=state / "out",
                token=TOKEN,
                workers=0,
                capacity=1_000_000,
            )
        )
        service.start()
        port_file.write_text(str(service.listener.port))
        stop.wait()
        service.stop()
        return
    assert old_http is not None
    spec = importlib.util.spec_from_file_location("old_receiver", old_http)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    store = Store(state / "queue.sqlite", capacity=1_000_000)
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), module.make_handler(store, TOKEN, Telemetry(), 1_000_000)
    )
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port_file.write_text(str(server.server_address[1]))
    stop.wait()
    server.shutdown()
    store.close()


# The parent: start a receiver, burst, measure, check the queue.


async def _one(port: int, i: int, timeout_s: float) -> tuple[int | None, float]:
    body = _alert(i)
    head = (
        "POST /alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head.encode() + body)
            await writer.drain()
            answer = await reader.read()
            writer.close()
    except (TimeoutError, OSError):
        return None, time.monotonic() - started
    try:
        return int(answer.split(b" ", 2)[1]), time.monotonic() - started
    except (IndexError, ValueError):
        return None, time.monotonic() - started


async def _burst(port: int, n: int, timeout_s: float) -> list[tuple[int | None, float]]:
    return await asyncio.gather(*(_one(port, i, timeout_s) for i in range(n)))


def _measure(kind: str, n: int, timeout_s: float, old_http: Path | None) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix=f"tenancy-concurrency-{kind}-"))
    port_file = folder / "port"
    argv = [sys.executable, __file__, "--serve", kind, "--state", str(folder)]
    argv += ["--port-file", str(port_file)]
    if old_http is not None:
        argv += ["--old-http", str(old_http)]
    child = subprocess.Popen(argv, cwd=ROOT, stderr=(folder / "serve.log").open("w"))
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {kind} receiver did not start; see {folder}/serve.log")
            time.sleep(0.05)
        port = int(port_file.read_text())
        started = time.monotonic()
        answers = asyncio.run(_burst(port, n, timeout_s))
        wall = time.monotonic() - started
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(60)
    ok = sorted(seconds for status, seconds in answers if status == 200)
    statuses: dict[str, int] = {}
    for status, _ in answers:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    with sqlite3.connect(f"file:{folder / 'queue.sqlite'}?mode=ro", uri=True) as db:
        (rows,) = db.execute("SELECT COUNT(*) FROM jobs").fetchone()
        (keys,) = db.execute("SELECT COUNT(DISTINCT dedupe_key) FROM jobs").fetchone()
    return {
        "receiver": kind,
        "requests": n,
        "statuses": statuses,
        "unanswered": statuses.get("None", 0),
        "stored": rows,
        "stored_once": rows == keys == len(ok),
        "p50_ms": round(statistics.median(ok) * 1000, 1) if ok else None,
        "p99_ms": round(ok[max(0, int(len(ok) * 0.99) - 1)] * 1000, 1) if ok else None,
        "wall_s": round(wall, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--old-commit", help="also measure the http.server receiver of this commit")
    parser.add_argument("--serve", choices=["new", "old"], help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--old-http", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.state, args.port_file, args.old_http)
        return 0
    new = _measure("new", args.requests, args.timeout, None)
    print(json.dumps(new))
    if args.old_commit:
        source = subprocess.run(
            ["git", "show", f"{args.old_commit}:tenancy_diag/service/http.py"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        ).stdout
        old_http = Path(tempfile.mkdtemp(prefix="tenancy-old-http-")) / "old_http.py"
        old_http.write_bytes(source)
        old = _measure("old", args.requests, args.timeout, old_http)
        print(json.dumps(old))
        ratio = {
            key: round(old[key] / new[key], 1)  # type: ignore[operator]
            for key in ("p50_ms", "p99_ms", "wall_s")
            if old.get(key) and new.get(key)
        }
        print(json.dumps({"old_over_new": ratio, "old_commit": args.old_commit}))
    return 0 if new["unanswered"] == 0 and new["stored_once"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
