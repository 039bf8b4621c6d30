"""Where a job's notebooks run: one small :class:`Executor` contract, and a local subprocess one.

The worker only ever calls ``execute(job, run_id, timeout_s)``; a Kubernetes Job executor would
keep the same contract (see the README's "Running past one machine").

:class:`SubprocessExecutor` starts ``tenancy-diag run`` in a session of its own. Two ways a run
must not outlive its owner:

- **Timeout.** The runner's kernels are started by jupyter_client in sessions of *their* own,
  so killing the runner's process group is not enough: every descendant is collected first
  and each one's group is signalled (SIGTERM, then SIGKILL after a grace period).
- **The service dies** (kill -9). A surviving runner would keep writing into the bundle folder
  the restarted service reruns into, so the runner asks the kernel (``PR_SET_PDEATHSIG``) to
  kill it with its parent; its kernels notice their parent is gone and exit within a second.

What a run may see: an allowlisted environment (:func:`runner_env`), never the service's
webhook token or the sinks' tokens, since notebook code runs in the kernels. Kernel connection
files (each holds the kernel's HMAC key) go to ``<runtime_root>/<run_id>`` instead of /tmp
(TMPDIR and JUPYTER_RUNTIME_DIR point there), and that folder is removed after the run; what
a ``kill -9`` left there the service removes at its next start.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from tenancy_diag import settings
from tenancy_diag.errors import ConfigError
from tenancy_diag.running.bundles import MANIFEST
from tenancy_diag.service.http import ENV_SERVICE_TOKEN, ENV_SERVICE_TOKEN_FILE
from tenancy_diag.service.jobs import Job
from tenancy_diag.service.sinks import ENV_NOTE_TOKEN, ENV_PAGERDUTY_ROUTING_KEY
from tenancy_diag.sources.registry import registry as source_kinds

#: Seconds between SIGTERM and SIGKILL when a run is stopped.
GRACE_S = 5.0
_STDERR_TAIL_CHARS = 2000
_PR_SET_PDEATHSIG = 1
#: The service's own secrets: never in a run's environment, whatever the allowlist says.
WITHHELD = frozenset(
    {ENV_SERVICE_TOKEN, ENV_SERVICE_TOKEN_FILE, ENV_NOTE_TOKEN, ENV_PAGERDUTY_ROUTING_KEY}
)
#: Where kernel connection files go: jupyter_client writes them with ``tempfile.mkstemp``
#: (so under TMPDIR) unless a file is named, and Jupyter's other runtime files under
#: JUPYTER_RUNTIME_DIR; both point at the run's own folder.
RUNTIME_VARIABLES = ("TMPDIR", "JUPYTER_RUNTIME_DIR")


def runner_env(environ: Mapping[str, str], runtime_dir: Path | None = None) -> dict[str, str]:
    """The allowlisted part of ``environ`` for a run, with its own kernel runtime folder."""
    allowed = settings.run_environment(environ, source_kinds.env_variables().values())
    env = {name: value for name, value in allowed.items() if name not in WITHHELD}
    if runtime_dir is not None:
        env |= dict.fromkeys(RUNTIME_VARIABLES, str(runtime_dir))
    return env


@dataclass(frozen=True)
class Execution:
    """What one attempt left behind."""

    #: ``OUT/<incident>/<run_id>``; it may be partial (no manifest) when the run was stopped.
    bundle: Path
    exit_code: int  # the runner's: 0 ran, 1 a notebook failed, 2 bad input; <0 killed by signal
    timed_out: bool
    stderr_tail: str
    seconds: float

    @property
    def complete(self) -> bool:
        """The runner sealed the bundle (wrote its manifest)."""
        return (self.bundle / MANIFEST).is_file()


class Executor(Protocol):
    """Runs one job's notebooks into the bundle named ``run_id``, within ``timeout_s`` seconds.

    Called again with the same ``run_id`` after a crash or a retry, it must leave exactly one
    finished bundle under that name (the runner's ``--run-id`` does this for the subprocess).
    """

    def execute(self, job: Job, run_id: str, timeout_s: float) -> Execution: ...


class SubprocessExecutor:
    """``python -m tenancy_diag.cli run ...`` on this machine, one process tree per run."""

    def __init__(
        self,
        out: Path,
        sources: Mapping[str, str],
        python: str = sys.executable,
        extra_args: Sequence[str] = (),
        grace_s: float = GRACE_S,
        *,
        runtime_root: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        flags = [kind.flag for kind in source_kinds]
        unknown = sorted(set(sources) - set(flags))
        if unknown:
            raise ConfigError(
                f"unknown source flag(s) {', '.join(unknown)}; use {', '.join(flags)}"
            )
        self.out = out.resolve()
        self.sources = {flag: value for flag, value in sources.items() if value}
        self.python = python
        #: Passed to every run as they are (``--sample`` replays offline, e.g. in tests).
        self.extra_args = tuple(extra_args)
        self.grace_s = grace_s
        #: Kernel connection files go to ``runtime_root/<run_id>``; None: Jupyter's default.
        self.runtime_root = runtime_root
        #: Read at each run (None: this process's environment), then allowlisted.
        self.environ = environ

    def command(self, job: Job, run_id: str) -> list[str]:
        return [self.python, "-m", "tenancy_diag.cli", *self.run_args(job, run_id)]

    def run_args(self, job: Job | None, run_id: str) -> list[str]:
        """``run ...`` for ``job`` (None: a stand-in, to check the arguments once)."""
        subsystems = (job.subsystems if job else ()) or ("all",)
        incident = job.incident_id if job else "check"
        args = ["run", *subsystems, "--incident", incident, "--out", str(self.out)]
        args += ["--run-id", run_id]
        if job and job.region:
            args += ["--region", job.region]
        if job and job.tenant:
            args += ["--tenant", job.tenant]
        for flag, value in sorted(self.sources.items()):
            args += [flag, value]
        return [*args, *self.extra_args]

    def execute(self, job: Job, run_id: str, timeout_s: float) -> Execution:
        runtime = None if self.runtime_root is None else self.runtime_root / run_id
        if runtime is not None:
            runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            return self._run(job, run_id, timeout_s, runtime)
        finally:
            if runtime is not None:
                shutil.rmtree(runtime, ignore_errors=True)

    def _run(self, job: Job, run_id: str, timeout_s: float, runtime: Path | None) -> Execution:
        started = time.monotonic()
        process = subprocess.Popen(
            self.command(job, run_id),
            env=runner_env(os.environ if self.environ is None else self.environ, runtime),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # the runner prints only the index path, known anyway
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with(os.getpid()),  # noqa: PLW1509 (two syscalls, no Python locks)
        )
        timed_out = False
        try:
            _, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            stop_tree(process, self.grace_s)
            _, stderr = process.communicate()
        except BaseException:
            # The worker is going down (Ctrl-C): a run nobody waits for must not linger.
            stop_tree(process, self.grace_s)
            process.wait()
            raise
        tail = stderr.decode("utf-8", errors="replace")[-_STDERR_TAIL_CHARS:]
        return Execution(
            bundle=self.out / job.incident_id / run_id,
            exit_code=process.returncode,
            timed_out=timed_out,
            stderr_tail=tail,
            seconds=time.monotonic() - started,
        )


def stop_tree(process: subprocess.Popen[bytes], grace_s: float = GRACE_S) -> None:
    """SIGTERM the runner's process group and the group of each descendant, then SIGKILL."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    groups = set()
    for pid in [process.pid, *(p.pid for p in descendants)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            groups.add(os.getpgid(pid))
    _signal_groups(groups, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    # The runner is waited for through Popen, which keeps its exit status for the caller.
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(grace_s)
    alive = _wait_gone(descendants, deadline)
    if alive or process.poll() is None:
        _signal_groups(groups, signal.SIGKILL)
        _wait_gone(alive, time.monotonic() + grace_s)


def _wait_gone(procs: Sequence[psutil.Process], deadline: float) -> list[psutil.Process]:
    """Those of ``procs`` still running at ``deadline``. Orphaned kernels are reaped by
    whoever adopted them (not always promptly in a container), so a zombie counts as gone."""
    alive = list(procs)
    while alive:
        alive = [p for p in alive if _running(p)]
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return alive


def _running(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _signal_groups(groups: set[int], signum: signal.Signals) -> None:
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)


# Resolved before any fork: between fork and exec only the call itself may run.
_PRCTL = (
    getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform == "linux" else None
)


def _die_with(parent: int) -> Callable[[], None]:
    def arrange() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            # The service died between fork and prctl: nobody would ever stop this run.
            os._exit(1)

    return arrange
