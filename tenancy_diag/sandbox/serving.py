"""Running the sandbox's small HTTP servers as background processes, and stopping them.

Each server binds 127.0.0.1 on a port the OS picks, then writes a ready file
(``{"pid", "port", "url"}``) atomically, so whoever started it learns the port without races.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tenancy_diag.errors import SandboxError

HOST = "127.0.0.1"


def write_ready(path: Path, port: int) -> None:
    info = {"pid": os.getpid(), "port": port, "url": f"http://{HOST}:{port}"}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info), encoding="utf-8")
    tmp.replace(path)


def wait_ready(path: Path, timeout_s: float = 30.0, pid: int | None = None) -> dict[str, Any]:
    """Wait for a server's ready file; fail early if its process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return data
        if pid is not None and not pid_alive(pid):
            raise SandboxError(f"the server that should write {path} exited; see its log beside it")
        time.sleep(0.05)
    raise SandboxError(f"no server wrote {path} within {timeout_s:.0f} s; see its log beside it")


def pid_alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid(pid: int, timeout_s: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout_s``; True when the process is gone."""
    if not pid_alive(pid):
        return True
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    return not pid_alive(pid)


def serve_in_thread(
    handler: type[BaseHTTPRequestHandler], port: int = 0
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start ``handler`` on 127.0.0.1 in a daemon thread (tests and in-process use)."""
    server = ThreadingHTTPServer((HOST, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=handler.__name__, daemon=True)
    thread.start()
    return server, thread


def serve_forever(server: ThreadingHTTPServer, ready_file: Path | None) -> None:
    """Run ``server`` in this process until SIGTERM, announcing its port first."""

    def _stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    if ready_file is not None:
        write_ready(ready_file, server.server_address[1])
    try:
        server.serve_forever()
    finally:
        server.server_close()
