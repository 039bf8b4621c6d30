"""`tenancy-diag sandbox up|down|status`: a whole Tenancy stack on 127.0.0.1, in the background.

Up starts, in this order of cost: a real Prometheus holding the scenario's history (promtool
backfill), moto's server with the DLQs filled, an HTTP server answering the Kubernetes API, and
the Tenancy admin API. Each process's PID goes into ``state.json`` so `down` stops exactly what
`up` started and nothing else. A failure half-way stops what had started.

The state is written as each process starts, so even a `up` killed half-way leaves the PIDs
behind. The next `up` on the same folder replaces whatever the last one left (after `down`, a
crash, or a reboot): it stops the last sandbox's survivors, checked by command line, and clears
the files it wrote (a second promtool backfill into old blocks would be refused). Only a
sandbox that is wholly alive is left alone, with a sentence saying how to stop it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from threading import Lock
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
#: Everything `up` writes in its state folder, and so everything the next `up` replaces; the
#: folder itself may be the user's and hold other files.
_WRITTEN = ("prometheus", "moto", "kube", "admin", "scenario.json", "truth.json", "state.json")


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
    def __init__(
        self, state_dir: Path, spec: ScenarioSpec, progress: Callable[[str], None]
    ) -> None:
        self.dir = state_dir
        self.spec = spec
        self.progress = progress
        self.started: list[_Started] = []
        self._lock = Lock()  # Prometheus and moto start in threads of their own

    def add(self, started: _Started) -> None:
        """Remember a started process, on disk at once: a `up` killed later leaves its PID."""
        with self._lock:
            self.started.append(started)
            _write_state(self.dir, self.state())

    def state(self, endpoints: Endpoints | None = None) -> dict[str, Any]:
        state: dict[str, Any] = {
            "schema": STATE_SCHEMA,
            "created_at": _iso(datetime.now(UTC)),
            "spec": self.spec.to_json(),
            # Who is starting it: while it lives, a second `up` must not take the folder over.
            "starter": {"pid": os.getpid(), "cmdline": _cmdline(os.getpid())},
            "processes": {
                p.name: {"pid": p.pid, "url": p.url, "cmdline": _cmdline(p.pid)}
                for p in self.started
            },
        }
        if endpoints is not None:
            state["endpoints"] = asdict(endpoints)
        return state

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
        self.add(started)
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
    stack.add(started)
    return started


def _start_moto(stack: _Stack, scenario: Scenario) -> _Started:
    folder = stack.dir / "moto"
    folder.mkdir(parents=True, exist_ok=True)
    proc = moto_proc.start_moto(folder)
    started = _Started("moto", proc.pid, proc.url)
    stack.add(started)
    moto_proc.fill_queues(proc.url, scenario, signals_mod.load())
    return started


def up(
    spec: ScenarioSpec,
    state_dir: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Endpoints:
    """Start the sandbox for ``spec``, replacing what a stopped or crashed one left in
    ``state_dir``; raises SandboxError if one is wholly up (or starting) there."""
    state_dir = (state_dir or default_state_dir()).resolve()
    _replace_leftovers(state_dir, progress)
    state_dir.mkdir(parents=True, exist_ok=True)
    scenario = Scenario(spec)
    scenario_file = state_dir / "scenario.json"
    scenario_file.write_text(json.dumps(scenario.spec.to_json(), indent=2), encoding="utf-8")
    (state_dir / "truth.json").write_text(scenario.dumps(), encoding="utf-8")
    stack = _Stack(state_dir, scenario.spec, progress)
    try:
        return _bring_up(stack, scenario, scenario_file)
    except BaseException:
        stack.stop_all()
        # Nothing it names runs any more: `down` would only say so.
        (state_dir / "state.json").unlink(missing_ok=True)
        raise


def _replace_leftovers(state_dir: Path, progress: Callable[[str], None]) -> None:
    """Refuse a folder whose sandbox is up or starting; otherwise stop the last one's
    survivors and clear what it wrote."""
    state = _read_state(state_dir)
    if state is not None:
        processes = state["processes"]
        alive = [name for name, proc in processes.items() if _same_process(proc)]
        starter = state.get("starter")
        if "endpoints" not in state and starter and _same_process(starter):
            raise SandboxError(
                f"a sandbox is starting in {state_dir} (`sandbox up`, pid {starter['pid']}); "
                f"wait for it, or stop it with `{_down_command(state_dir)}`"
            )
        if "endpoints" in state and processes and len(alive) == len(processes):
            endpoints = state["endpoints"]
            raise SandboxError(
                f"a sandbox ({endpoints.get('scenario')}) is already up in {state_dir}, "
                f"Prometheus at {endpoints.get('prometheus_url')}; use it, or stop it with "
                f"`{_down_command(state_dir)}` and run `sandbox up` again"
            )
        for name in alive:
            stop_pid(int(processes[name]["pid"]))
        if alive:
            progress(f"stopped what the last sandbox left running: {', '.join(alive)}")
    cleared = [name for name in _WRITTEN if (state_dir / name).exists()]
    for name in cleared:
        path = state_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    if cleared:
        progress(f"replaced what the last sandbox left in {state_dir}")


def _down_command(state_dir: Path) -> str:
    if state_dir == default_state_dir().resolve():
        return "tenancy-diag sandbox down"
    return f"tenancy-diag sandbox down --state-dir {state_dir}"


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
    _write_state(state_dir, stack.state(endpoints))
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
    state = status(state_dir)
    if "endpoints" not in state:
        folder = (state_dir or default_state_dir()).resolve()
        raise SandboxError(
            f"the sandbox in {folder} is starting or stopped while starting; wait for "
            "`sandbox up` to finish, or run it again to replace it"
        )
    return Endpoints(**state["endpoints"])


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
