"""The sandbox's real Prometheus: history backfilled with promtool, served on 127.0.0.1.

The diagnostics are tested at the wire, so the sandbox runs the Prometheus binary itself
(Debian's 2.42 in /usr/bin) over TSDB blocks made from :mod:`metric_history`'s OpenMetrics
file. It scrapes nothing: the history is all it knows, which is what makes answers repeatable.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import requests
import yaml

from tenancy_diag.errors import SandboxError, shorten
from tenancy_diag.sandbox.serving import HOST, pid_alive, stop_pid

#: Keep everything: a history that ends "now" may start weeks ago, and a shorter retention
#: would make Prometheus delete backfilled blocks at its first compaction.
RETENTION = "100y"
# Prometheus sizes its own blocks up to 10 % of the retention, never above 31 days, so blocks
# up to 31 days are ones it compacts as its own. Long blocks also make backfilling faster:
# promtool re-reads the whole input once per block. (Go durations have no "d" unit.)
MAX_BLOCK_DURATION = "744h"
BACKFILL_TIMEOUT_S = 900.0
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PrometheusProcess:
    """A running Prometheus this process started; stop it with :meth:`stop`."""

    pid: int
    url: str
    data_dir: Path
    #: Where its output goes (None when the process was adopted from elsewhere).
    log: Path | None = None

    def stop(self) -> None:
        if not stop_pid(self.pid):
            raise SandboxError(f"Prometheus (pid {self.pid}) did not exit; kill it by that pid")

    def __enter__(self) -> PrometheusProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SandboxError(
            f"{name} is not on PATH; install it (Debian: apt-get install prometheus) "
            "to run the sandbox"
        )
    return path


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return shorten(lines[-1]) if lines else "no output"


def backfill(openmetrics: Path, data_dir: Path) -> None:
    """Turn an OpenMetrics file into TSDB blocks in ``data_dir`` (created if needed)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if any(data_dir.iterdir()):
        # A second backfill would add overlapping blocks: every sample twice on disk.
        raise SandboxError(f"{data_dir} already holds data; backfill into an empty folder")
    command = [
        _binary("promtool"),
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        f"--max-block-duration={MAX_BLOCK_DURATION}",
        "--quiet",
        str(openmetrics),
        str(data_dir),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=BACKFILL_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as e:
        raise SandboxError(
            f"promtool did not finish backfilling {openmetrics} in {BACKFILL_TIMEOUT_S:.0f} s; "
            "simulate fewer tenants or a shorter history"
        ) from e
    if done.returncode != 0:
        raise SandboxError(
            f"promtool could not backfill {openmetrics}: {_last_line(done.stderr or done.stdout)}; "
            "fix the file or regenerate it"
        )


def _free_port() -> int:
    # Another process could take the port before Prometheus binds it; startup then fails loudly
    # (the log says "address already in use") rather than serving the wrong thing.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _write_config(
    workdir: Path,
    rule_files: Sequence[Path],
    alertmanager_url: str | None = None,
    evaluation_interval: str = "1m",
) -> Path:
    config: dict[str, object] = {
        "global": {"scrape_interval": "1m", "evaluation_interval": evaluation_interval},
        "rule_files": [str(Path(f).resolve()) for f in rule_files],
        "scrape_configs": [],
    }
    if alertmanager_url:
        target = urlsplit(alertmanager_url)
        config["alerting"] = {
            "alertmanagers": [
                {
                    "scheme": target.scheme or "http",
                    "path_prefix": target.path or "/",
                    "static_configs": [{"targets": [target.netloc]}],
                }
            ]
        }
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def start_prometheus(
    data_dir: Path,
    workdir: Path,
    rule_files: Sequence[Path] = (),
    port: int = 0,
    *,
    alertmanager_url: str | None = None,
    evaluation_interval: str = "1m",
    extra_args: Sequence[str] = (),
) -> PrometheusProcess:
    """Serve ``data_dir`` on 127.0.0.1 (a free port when ``port`` is 0) once it is ready.

    With ``rule_files`` it evaluates them every ``evaluation_interval`` (a Go duration) at
    wall-clock time, and sends firing alerts to the Alertmanager at ``alertmanager_url``.
    ``extra_args`` go to the binary as they are (e.g. ``--rules.alert.resend-delay=2s``: the
    first notification is dropped when it precedes Alertmanager discovery, and the default
    resend waits a minute).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    config = _write_config(workdir, rule_files, alertmanager_url, evaluation_interval)
    port = port or _free_port()
    log = workdir / "prometheus.log"
    command = [
        _binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        f"--storage.tsdb.retention.time={RETENTION}",
        f"--web.listen-address={HOST}:{port}",
        *extra_args,
    ]
    with log.open("ab") as out:
        # A session of its own, so a Ctrl-C meant for the caller does not kill it half-way.
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            start_new_session=True,
        )
    prometheus = PrometheusProcess(process.pid, f"http://{HOST}:{port}", data_dir, log)
    try:
        _wait_ready(prometheus, log)
    except BaseException:
        stop_pid(process.pid)
        raise
    return prometheus


def _wait_ready(
    prometheus: PrometheusProcess, log: Path, timeout_s: float = READY_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(prometheus.pid):
            tail = _last_line(log.read_text(encoding="utf-8", errors="replace"))
            raise SandboxError(f"Prometheus exited while starting ({tail}); see {log}")
        try:
            if requests.get(f"{prometheus.url}/-/ready", timeout=1.0).status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening yet
        time.sleep(0.1)
    raise SandboxError(
        f"Prometheus at {prometheus.url} was not ready within {timeout_s:.0f} s; see {log}"
    )


def start_empty_prometheus(workdir: Path, port: int = 0) -> PrometheusProcess:
    """A Prometheus with no data at all, for testing how the diagnostics report missing series."""
    return start_prometheus(workdir / "data", workdir, port=port)
