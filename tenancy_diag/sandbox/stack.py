"""`tenancy-diag sandbox up|down|status`: a whole Tenancy stack on 127.0.0.1, in the background.

Up starts, in this order of cost: a real Prometheus holding the scenario's history (promtool
backfill), moto's server with the DLQs filled, an HTTP server answering the Kubernetes API, and
the Tenancy admin API. Each process's PID goes into ``state.json`` so `down` stops exactly what
`up` started and nothing else. A failure half-way stops what had started.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenancy_diag import signals as signals_mod
from tenancy_diag.errors import SandboxError, TenancyDiagError
from tenancy_diag.sandbox import metric_history, moto_proc, prometheus_proc
from tenancy_diag.sandbox.kube_api import write_kubeconfig
from tenancy_diag.sandbox.serving import pid_alive, stop_pid, wait_ready
from tenancy_diag.sandbox.topology import Scenario, ScenarioSpec

STATE_SCHEMA = "tenancy-diag/sandbox-state/v1"
ENV_STATE_DIR = "TENANCY_DIAG_SANDBOX_DIR"
# moto accepts any credentials; these make boto3 sign requests without touching real ones.
SANDBOX_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def default_state_dir() -> Path:
    return Path(os.environ.get(ENV_STATE_DIR) or Path.cwd() / ".sandbox")


@dataclass(frozen=True)
class Endpoints:
    """What the runner's flags take, as `sandbox up --json` prints it."""

    prometheus_url: str
    aws_endpoint_url: str
    kubeconfig: str
    tenancy_api_url: str
    tenancy_api_token_file: str
    scenario: str
    end: str
    incident_start: str | None
    regions: list[str]
    state_dir: str

    def env(self) -> dict[str, str]:
        """Environment a shell or notebook kernel needs to use the sandbox (no secret values)."""
        return {
            **SANDBOX_AWS_ENV,
            "TENANCY_API_TOKEN_FILE": self.tenancy_api_token_file,
            "TENANCY_DIAG_PROMETHEUS_URL": self.prometheus_url,
            "TENANCY_DIAG_AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "TENANCY_DIAG_KUBECONFIG": self.kubeconfig,
            "TENANCY_DIAG_TENANCY_API_URL": self.tenancy_api_url,
            "TENANCY_DIAG_END": self.end,
            **({"TENANCY_DIAG_INCIDENT_START": self.incident_start} if self.incident_start else {}),
        }


@dataclass
class _Started:
    name: str
    pid: int
    url: str


class _Stack:
    def __init__(self, state_dir: Path, progress: Callable[[str], None]) -> None:
        self.dir = state_dir
        self.progress = progress
        self.started: list[_Started] = []

    def spawn_http(self, name: str, module: str, scenario_file: Path, token_file: Path) -> _Started:
        folder = self.dir / name
        folder.mkdir(parents=True, exist_ok=True)
        ready = folder / "ready.json"
        ready.unlink(missing_ok=True)
        with (folder / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    module,
                    "--scenario-file",
                    str(scenario_file),
                    "--token-file",
                    str(token_file),
                    "--ready-file",
                    str(ready),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        started = _Started(name, proc.pid, "")
        self.started.append(started)
        info = wait_ready(ready, timeout_s=60, pid=proc.pid)
        started.url = str(info["url"])
        return started

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            stop_pid(proc.pid)


def _write_secret(path: Path) -> str:
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(token, encoding="utf-8")
    return token


def _start_prometheus(stack: _Stack, scenario: Scenario) -> _Started:
    folder = stack.dir / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    history = folder / "history.om"
    t0 = time.monotonic()
    stats = metric_history.write_openmetrics(scenario, history, signals_mod.load())
    stack.progress(
        f"history: {stats.series} series, {stats.samples} samples in {time.monotonic() - t0:.1f} s"
    )
    t0 = time.monotonic()
    data = folder / "data"
    prometheus_proc.backfill(history, data)
    history.unlink()  # gigabytes at 10,000 tenants; the blocks hold it now
    stack.progress(f"backfill: {time.monotonic() - t0:.1f} s")
    proc = prometheus_proc.start_prometheus(data, folder)
    started = _Started("prometheus", proc.pid, proc.url)
    stack.started.append(started)
    return started


def _start_moto(stack: _Stack, scenario: Scenario) -> _Started:
    folder = stack.dir / "moto"
    folder.mkdir(parents=True, exist_ok=True)
    proc = moto_proc.start_moto(folder)
    started = _Started("moto", proc.pid, proc.url)
    stack.started.append(started)
    moto_proc.fill_queues(proc.url, scenario, signals_mod.load())
    return started


def up(
    spec: ScenarioSpec,
    state_dir: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Endpoints:
    """Start the sandbox for ``spec``; raises SandboxError if one is already up there."""
    state_dir = (state_dir or default_state_dir()).resolve()
    existing = _read_state(state_dir)
    if existing and any(_same_process(p) for p in existing["processes"].values()):
        raise SandboxError(
            f"a sandbox is already up in {state_dir}; run `tenancy-diag sandbox down` first"
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    scenario = Scenario(spec)
    scenario_file = state_dir / "scenario.json"
    scenario_file.write_text(json.dumps(scenario.spec.to_json(), indent=2), encoding="utf-8")
    (state_dir / "truth.json").write_text(scenario.dumps(), encoding="utf-8")
    stack = _Stack(state_dir, progress)
    try:
        return _bring_up(stack, scenario, scenario_file)
    except BaseException:
        stack.stop_all()
        raise


def _bring_up(stack: _Stack, scenario: Scenario, scenario_file: Path) -> Endpoints:
    state_dir = stack.dir
    kube_token_file, api_token_file = state_dir / "kube" / "token", state_dir / "admin" / "token"
    kube_token = _write_secret(kube_token_file)
    _write_secret(api_token_file)
    # The history is the long pole; everything else starts while it is written.
    with ThreadPoolExecutor(max_workers=2) as pool:
        prometheus = pool.submit(_start_prometheus, stack, scenario)
        moto = pool.submit(_start_moto, stack, scenario)
        kube = stack.spawn_http(
            "kube", "tenancy_diag.sandbox.kube_api", scenario_file, kube_token_file
        )
        admin = stack.spawn_http(
            "admin", "tenancy_diag.sandbox.admin_api", scenario_file, api_token_file
        )
        try:
            prom, aws = prometheus.result(), moto.result()
        except TenancyDiagError:
            raise
        except Exception as e:
            raise SandboxError(f"the sandbox failed to start: {e}") from e
    kubeconfig = state_dir / "kube" / "kubeconfig"
    write_kubeconfig(kubeconfig, kube.url, kube_token, None)
    kubeconfig.chmod(0o600)
    truth = scenario.truth
    endpoints = Endpoints(
        prometheus_url=prom.url,
        aws_endpoint_url=aws.url,
        kubeconfig=str(kubeconfig),
        tenancy_api_url=admin.url,
        tenancy_api_token_file=str(api_token_file),
        scenario=scenario.spec.name,
        end=_iso(scenario.end),
        incident_start=_iso(truth.incident_start) if truth.incident_start else None,
        regions=list(scenario.spec.regions),
        state_dir=str(state_dir),
    )
    state = {
        "schema": STATE_SCHEMA,
        "created_at": _iso(datetime.now(UTC)),
        "spec": scenario.spec.to_json(),
        "processes": {
            p.name: {"pid": p.pid, "url": p.url, "cmdline": _cmdline(p.pid)} for p in stack.started
        },
        "endpoints": asdict(endpoints),
    }
    _write_state(state_dir, state)
    return endpoints


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _same_process(proc: dict[str, Any]) -> bool:
    # A PID can be reused after a reboot or a crash: only stop it if it is still our server.
    recorded = proc.get("cmdline", "")
    return pid_alive(int(proc["pid"])) and (not recorded or _cmdline(int(proc["pid"])) == recorded)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / "state.json"
    if not path.exists():
        return None
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise SandboxError(f"{path} is not valid JSON; remove it after stopping its servers") from e
    if state.get("schema") != STATE_SCHEMA:
        raise SandboxError(f"{path} has schema {state.get('schema')!r}; expected {STATE_SCHEMA}")
    return state


def _write_state(state_dir: Path, state: dict[str, Any]) -> None:
    tmp = state_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    tmp.replace(state_dir / "state.json")


def status(state_dir: Path | None = None) -> dict[str, Any]:
    """The recorded endpoints and whether each process is still alive."""
    state_dir = (state_dir or default_state_dir()).resolve()
    state = _read_state(state_dir)
    if state is None:
        raise SandboxError(
            f"no sandbox state in {state_dir}; start one with `tenancy-diag sandbox up`"
        )
    alive = {name: _same_process(p) for name, p in state["processes"].items()}
    return {**state, "alive": alive}


def endpoints(state_dir: Path | None = None) -> Endpoints:
    return Endpoints(**status(state_dir)["endpoints"])


def down(state_dir: Path | None = None) -> list[str]:
    """Stop exactly the processes `up` recorded; returns their names."""
    state_dir = (state_dir or default_state_dir()).resolve()
    state = _read_state(state_dir)
    if state is None:
        raise SandboxError(f"no sandbox is up in {state_dir} (no state.json); nothing to stop")
    stopped = []
    for name, proc in state["processes"].items():
        if _same_process(proc) and stop_pid(int(proc["pid"])):
            stopped.append(name)
    (state_dir / "state.json").unlink()
    return stopped
