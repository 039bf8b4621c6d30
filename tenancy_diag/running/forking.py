"""The runner's side of :mod:`.zygote`: start it, ask it for kernels, manage what it forks.

:class:`Zygote` starts ``python -m tenancy_diag.running.zygote`` with the kernels' environment
and talks to it over its stdin and stdout. :func:`forking_kernel_manager` is the
jupyter_client kernel manager whose kernel comes from the zygote instead of a new interpreter;
everything after the launch (connection file, channels, shutdown) is jupyter_client's own.
A forked kernel is not the runner's child, so :class:`ForkedProcess` stands in for the
``Popen`` jupyter_client keeps, by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenancy_diag.running.execution import die_with

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager


class ZygoteError(RuntimeError):
    """The zygote could not fork a kernel; the caller starts one the usual way."""


class Zygote:
    """One ``tenancy_diag.running.zygote`` process; :meth:`fork` gives a kernel's PID.

    Start it from the thread that will own the kernels: it dies when that thread ends
    (``PR_SET_PDEATHSIG``), and every kernel it forked dies with it.
    """

    def __init__(self, environ: Mapping[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tenancy_diag.running.zygote"],
                env=dict(environ),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                start_new_session=True,  # out of reach of a Ctrl-C meant for the runner
                preexec_fn=die_with(os.getpid()),  # noqa: PLW1509 (two syscalls, no locks)
            )
        self._lock = threading.Lock()

    def fork(self, connection_file: str, log: Path, cwd: str, env: Mapping[str, str]) -> int:
        """A new kernel for ``connection_file``; its stdout and stderr go to ``log``."""
        request = {"connection_file": connection_file, "log": str(log), "cwd": cwd, "env": env}
        with self._lock:
            stdin, stdout = self.process.stdin, self.process.stdout
            if stdin is None or stdout is None or self.process.poll() is not None:
                raise ZygoteError(f"the kernel zygote has exited; see {self.log}")
            try:
                stdin.write(json.dumps(dict(request)) + "\n")
                stdin.flush()
                line = stdout.readline()  # the first answer waits for its imports
            except OSError as e:
                raise ZygoteError(f"the kernel zygote did not answer ({e}); see {self.log}") from e
        if not line:
            raise ZygoteError(f"the kernel zygote has exited; see {self.log}")
        reply = json.loads(line)
        if "pid" not in reply:
            raise ZygoteError(f"the kernel zygote could not fork: {reply.get('error')}")
        return int(reply["pid"])

    def close(self) -> None:
        """End the zygote (its kernels die with it: kill them first if they must finish)."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class ForkedProcess:
    """What jupyter_client needs of a ``Popen``, for a kernel the zygote forked and reaps."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stdin = self.stdout = self.stderr = None

    def poll(self) -> int | None:
        if self.returncode is None and not _exists(self.pid):
            self.returncode = 0  # reaped by the zygote: its status is not ours to read
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0)
            time.sleep(0.02)
        return self.returncode or 0

    def send_signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _exists(pid: int) -> bool:
    """Running, and not a zombie: a kernel orphaned by its zygote's death waits as a zombie
    until whoever adopted it reaps it (not always promptly in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel, which counts a zombie as alive
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    state = stat.rsplit(")", 1)[-1].split()[0]  # the name, in parentheses, may hold spaces
    return state not in ("Z", "X")


def forking_kernel_manager(zygote: Zygote, log: Path) -> type[AsyncKernelManager]:
    """A kernel manager whose kernel the zygote forks, its output in ``log``."""
    from jupyter_client.manager import AsyncKernelManager  # noqa: PLC0415

    class ForkingKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            provisioner = self.provisioner
            if provisioner is None or not kernel_cmd or kernel_cmd[0] != sys.executable:
                raise ZygoteError("the kernel spec does not run this Python; cannot fork it")
            pid = zygote.fork(self.connection_file, log, str(kw.get("cwd") or "."), kw["env"])
            # What LocalProvisioner.launch_kernel records of a Popen it started.
            process = ForkedProcess(pid)
            provisioner.process = process  # type: ignore[attr-defined]
            provisioner.pid = pid  # type: ignore[attr-defined]
            provisioner.pgid = pid  # type: ignore[attr-defined]  # setsid: its own group
            provisioner.cwd = kw.get("cwd")  # type: ignore[attr-defined]
            self._reconcile_connection_info(provisioner.connection_info)

    return ForkingKernelManager


def starter(zygote: Zygote | None, log: Path) -> Callable[..., AsyncKernelManager]:
    """The kernel manager class for one pool kernel: forked when a zygote is up."""
    if zygote is None:
        from tenancy_diag.running.execution import kernel_manager_logging_to  # noqa: PLC0415

        return kernel_manager_logging_to(log)
    return forking_kernel_manager(zygote, log)
