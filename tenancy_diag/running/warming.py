"""Kernels started before they are needed, each used for exactly one notebook.

A cold kernel spends a second or more importing pandas, matplotlib and the library before the
notebook's first cell does anything. :class:`KernelPool` starts ``size`` kernels ahead, runs a
warm-up cell in each (those imports, one frame, one figure), and hands each out once: after its
notebook the kernel is killed, never reused, so nothing an incident put in a kernel (variables,
monkeypatches, a half-open connection) can reach the next one. A thread of the pool starts
replacements in the background.

The notebook still goes through papermill, via the ``tenancy-warm`` engine registered in
papermill's engine registry: papermill injects the parameters cell, saves the partial notebook
after each cell and on failure, and nbclient enforces the cell timeout, exactly as on the cold
path. The kernel's own log is copied into the bundle when it is discarded.

Safety, as on the cold path: the pool's thread starts every kernel with ``PR_SET_PDEATHSIG``,
so a kill -9 of the runner (which ends that thread) kills every pool kernel, used or not; and a
pool kernel sees only an allowlisted environment (:func:`kernel_environment`), never a secret
of the process that owns the pool (the service's bearer token, a sink's routing key).
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenancy_diag import settings
from tenancy_diag.importing import import_papermill
from tenancy_diag.running.execution import KERNEL
from tenancy_diag.running.forking import Zygote, ZygoteError, starter
from tenancy_diag.sources.registry import registry as source_kinds

#: The name the pool's engine is registered under in papermill's engine registry.
ENGINE = "tenancy-warm"

#: Start failures kept in ``KernelPool.problems`` (a service's pool may fail for days).
_KEPT_PROBLEMS = 10

# In a function, then deleted: the notebook's namespace starts as empty as a cold kernel's.
_WARM_UP = """\
def _tenancy_warm_up():
    import matplotlib.pyplot as plt
    import pandas as pd

    import tenancy_diag.notebook  # noqa: F401

    pd.DataFrame({"a": [1.0, 2.0]}).describe()
    figure = plt.figure()
    figure.canvas.draw()
    plt.close(figure)


_tenancy_warm_up()
del _tenancy_warm_up
"""


@dataclass(frozen=True)
class PoolSettings:
    """How many kernels to keep warm, and what each may cost."""

    #: Kernels kept started and warmed, waiting for a notebook.
    size: int = 2
    #: Resident memory, in MB, a kernel may use after its warm-up; above it, it is discarded.
    kernel_memory_mb: int = 250
    #: Seconds a kernel may take to start and run the warm-up cell.
    start_timeout_s: int = 120
    #: Kernels started over the pool's life; None refills for ever (a service). A one-off
    #: ``run`` sets it to its number of notebooks: a kernel nobody takes would only cost CPU.
    max_kernels: int | None = None
    #: Seconds a refilling pool waits after a kernel failed to start before it tries again.
    retry_after_s: float = 30.0
    #: Fork kernels from one zygote that imported everything once (:mod:`.zygote`); False
    #: starts each kernel as a new interpreter.
    fork: bool = True


def kernel_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The allowlisted part of ``environ`` that a pool kernel is started with."""
    return settings.run_environment(environ, source_kinds.env_variables().values())


@dataclass
class WarmKernel:
    """A started, warmed kernel; good for one notebook."""

    manager: Any  # jupyter_client AsyncKernelManager, already started
    log: Path  # the kernel's stdout and stderr since it started
    pid: int
    rss_mb: float
    _used: bool = field(default=False, repr=False)

    def claim(self) -> None:
        if self._used:
            raise RuntimeError(f"kernel {self.pid} already ran a notebook; a kernel runs one")
        self._used = True

    def alive(self) -> bool:
        process = self._process()
        return process is not None and process.poll() is None

    def kill(self) -> None:
        """SIGKILL the kernel now (a stopped run); :meth:`discard` still cleans up after it."""
        process = self._process()
        if process is not None and process.poll() is None:
            process.kill()

    def discard(self, log_to: Path | None = None) -> None:
        """Kill the kernel and remove its files; its log is appended to ``log_to`` first."""
        self.kill()
        process = self._process()
        if process is not None:
            process.wait(timeout=10)
        self.manager.cleanup_connection_file()
        if log_to is not None and self.log.exists():
            with log_to.open("ab") as out, self.log.open("rb") as log:
                shutil.copyfileobj(log, out)
        self.log.unlink(missing_ok=True)

    def _process(self) -> Any:
        return getattr(self.manager.provisioner, "process", None)


class KernelPool:
    """``size`` warm kernels, refilled in the background; each :meth:`take` is one notebook.

    Use as a context manager, or call :meth:`start` and :meth:`close`. When the pool cannot
    supply a kernel (closed, broken, over its memory ceiling), :meth:`take` returns None and
    the caller starts a cold kernel as before.
    """

    def __init__(
        self,
        config: PoolSettings,
        environ: Mapping[str, str] | None = None,
        *,
        scratch_root: Path | None = None,
    ) -> None:
        self.config = config
        self.environ = kernel_environment(os.environ if environ is None else environ)
        self.problems: list[str] = []  # why the pool stopped supplying kernels, if it did
        self.started = 0  # kernels whose start began, for the bench and the tests
        self._starting = 0
        self._ready: queue.Queue[WarmKernel] = queue.Queue()
        self._wanted = threading.Semaphore(0)
        self._closed = threading.Event()
        self._failing = threading.Event()  # the last start failed; cleared by a good one
        self._retry = 0  # kernels whose start failed, wanted again after retry_after_s
        self._zygote: Zygote | None = None  # started by the pool's thread, which owns it
        # Connection files (each holds its kernel's HMAC key) and the kernels' logs.
        if scratch_root is not None:
            scratch_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._scratch = Path(tempfile.mkdtemp(prefix="tenancy-diag-pool-", dir=scratch_root))
        self._thread = threading.Thread(target=self._refill, name="kernel-pool", daemon=True)

    def __enter__(self) -> KernelPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> KernelPool:
        register_engine()
        for _ in range(self.config.size):
            self._wanted.release()
        self._thread.start()
        return self

    #: Why notebooks may not start any more; a pool never stops a run (see :class:`Lease`).
    stopped: str | None = None

    def lease(self) -> Lease:
        """One run's share of this pool, which can be stopped on its own."""
        return Lease(self)

    def take(self) -> WarmKernel | None:
        """A warm kernel for one notebook, waiting for one that is starting; None: go cold."""
        while not self._closed.is_set():
            try:
                kernel = self._ready.get(timeout=0.2)
            except queue.Empty:
                # A kernel that failed to start (or went over the ceiling) pauses the refills:
                # the kernels already warm are still handed out, then notebooks go cold until
                # a later start succeeds (a pool with no max_kernels tries again, see _refill).
                if self._failing.is_set() or (self._exhausted() and self._ready.empty()):
                    return None
                continue
            self._wanted.release()  # its replacement starts now, while it runs
            if not kernel.alive():  # killed while it waited (its zygote died, the OOM killer)
                self._problem(f"warm kernel {kernel.pid} died before it was used")
                kernel.discard()
                continue
            kernel.claim()
            return kernel
        return None

    def _problem(self, text: str) -> None:
        self.problems.append(text)
        del self.problems[:-_KEPT_PROBLEMS]

    def _exhausted(self) -> bool:
        limit = self.config.max_kernels
        return limit is not None and self.started >= limit and not self._starting

    def close(self) -> None:
        """Kill every kernel not handed out; call it after the notebooks have finished.

        Ending the pool's thread kills, through PR_SET_PDEATHSIG, any kernel still running.
        """
        self._closed.set()
        self._wanted.release()
        self._thread.join(timeout=self.config.start_timeout_s)
        while not self._ready.empty():
            self._ready.get_nowait().discard()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _refill(self) -> None:
        # Every kernel is forked from this thread, which lives as long as the pool: the kernels'
        # PR_SET_PDEATHSIG is tied to it, so it must not end while one of them runs.
        loop = asyncio.new_event_loop()
        if self.config.fork:
            self._zygote = Zygote(self.environ, self._scratch / "zygote.log")
        try:
            while True:
                self._wanted.acquire()
                if self._closed.is_set():
                    break
                more = 1
                while self._wanted.acquire(blocking=False):
                    more += 1
                if self.config.max_kernels is not None:
                    more = min(more, self.config.max_kernels - self.started)
                if more > 0:
                    self.started += more
                    self._starting += more
                    loop.run_until_complete(self._start_several(more))
                if self._failing.is_set():
                    if self.config.max_kernels is not None:
                        break  # a one-off run: its notebooks go cold
                    # A service's pool: the kernels not started are wanted still; try again
                    # after a pause, so a broken kernel spec costs a log line, not a busy loop.
                    if self._closed.wait(self.config.retry_after_s):
                        break
                    retry, self._retry = self._retry, 0
                    for _ in range(retry):
                        self._wanted.release()
        finally:
            loop.close()
            # Refills may have stopped, but kernels handed out may still run: this thread (and
            # the zygote) must outlive them, so it ends only when the pool is closed.
            self._closed.wait()
            if self._zygote is not None:
                self._zygote.close()  # whatever it forked dies with it

    async def _start_several(self, count: int) -> None:
        results = await asyncio.gather(
            *(self._start_one() for _ in range(count)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                self._retry += 1
                self._problem(f"a pool kernel did not start: {result}")
                self._failing.set()
            elif self._closed.is_set():
                result.discard()
            else:
                self._failing.clear()
                self._ready.put(result)
            # After the put: a taker that sees nothing starting must find the kernel queued.
            self._starting -= 1

    async def _start_one(self) -> WarmKernel:
        log = Path(tempfile.mkstemp(prefix="kernel-", suffix=".log", dir=self._scratch)[1])
        # The connection file (the kernel's HMAC key) beside it, not in Jupyter's runtime dir.
        connection = str(log.with_suffix(".json"))
        if self._zygote is not None and self._zygote.process.poll() is not None:
            # Killed (the OOM killer, an operator): one new zygote, from this thread.
            code = self._zygote.process.returncode
            self._problem(f"the kernel zygote exited ({code}); restarted")
            self._zygote = Zygote(self.environ, self._scratch / "zygote.log")
        manager = starter(self._zygote, log)(kernel_name=KERNEL, connection_file=connection)
        try:
            await manager.start_kernel(env=dict(self.environ), cwd=str(self._scratch))
        except ZygoteError as e:
            # Forking is an optimisation: say why once, then start kernels the usual way.
            self._problem(f"kernels start unforked: {e}")
            self._zygote = None
            manager = starter(None, log)(kernel_name=KERNEL, connection_file=connection)
            await manager.start_kernel(env=dict(self.environ), cwd=str(self._scratch))
        process = getattr(manager.provisioner, "process", None)
        if process is None:
            raise RuntimeError("the kernel provisioner started no local process")
        pid = int(process.pid)
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=self.config.start_timeout_s)
            reply = await client.execute_interactive(
                _WARM_UP, silent=True, store_history=False, timeout=self.config.start_timeout_s
            )
        finally:
            client.stop_channels()
        kernel = WarmKernel(manager, log, pid, _rss_mb(pid))
        if reply["content"].get("status") != "ok":
            kernel.discard()
            raise RuntimeError(f"the warm-up cell failed; see {log}")
        if kernel.rss_mb > self.config.kernel_memory_mb:
            kernel.discard()
            raise RuntimeError(
                f"a warmed kernel uses {kernel.rss_mb:.0f} MB, over the pool's "
                f"{self.config.kernel_memory_mb} MB per kernel; raise kernel_memory_mb"
            )
        return kernel


class Lease:
    """The kernels one run takes from a shared pool, so that run alone can be stopped.

    :meth:`stop` (a run over its time limit) kills the kernels the run holds, so their cells
    end with a dead kernel, and makes the run's notebooks not yet started end at once: each
    still leaves its notebook and a findings file saying why, and the bundle is sealed.
    """

    def __init__(self, pool: KernelPool) -> None:
        self.pool = pool
        self.stopped: str | None = None
        self._held: list[WarmKernel] = []
        self._lock = threading.Lock()

    def take(self) -> WarmKernel | None:
        kernel = self.pool.take()
        with self._lock:
            if kernel is not None:
                self._held.append(kernel)
                if self.stopped is not None:
                    kernel.kill()
        return kernel

    def stop(self, reason: str) -> None:
        with self._lock:
            self.stopped = reason
            held = list(self._held)
        for kernel in held:
            kernel.kill()


def start_pool(size: int | None, notebooks: int, workers: int | None = None) -> KernelPool | None:
    """``run``'s kernels, started before its plan is checked: ``size`` at once (None: one per
    notebook running at once, ``workers`` or one per core), ``notebooks`` in all, none after;
    None when ``size`` is 0."""
    if size == 0 or notebooks < 1:
        return None
    at_once = min(size or workers or os.cpu_count() or 1, notebooks)
    return KernelPool(PoolSettings(size=at_once, max_kernels=notebooks)).start()


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


_registered = threading.Lock()


def register_engine() -> None:
    """Register ``tenancy-warm`` in papermill's engine registry (once per process)."""
    with _registered:
        engines = import_papermill().engines.papermill_engines
        if ENGINE not in engines._engines:
            engines.register(ENGINE, _warm_engine_class())


def _warm_engine_class() -> type:
    # Built on first use: papermill and nbclient are not imported until a pool starts.
    from jupyter_core.utils import run_sync  # noqa: PLC0415
    from papermill.clientwrap import PapermillNotebookClient  # noqa: PLC0415
    from papermill.engines import NBClientEngine  # noqa: PLC0415
    from papermill.log import logger  # noqa: PLC0415
    from papermill.utils import merge_kwargs, remove_args  # noqa: PLC0415

    class InDirectoryClient(PapermillNotebookClient):  # type: ignore[misc]
        """Moves the already-started kernel into the notebook's folder before its first cell."""

        def __init__(self, nb_man: Any, cwd: str | None, **kw: Any) -> None:
            super().__init__(nb_man, **kw)
            self._cwd = cwd

        async def async_start_new_kernel_client(self) -> Any:
            kc = await super().async_start_new_kernel_client()
            if self._cwd:
                await kc.execute_interactive(
                    f"__import__('os').chdir({self._cwd!r})",
                    silent=True,
                    store_history=False,
                    timeout=self.startup_timeout,
                )
            return kc

        start_new_kernel_client = run_sync(async_start_new_kernel_client)

    class WarmEngine(NBClientEngine):  # type: ignore[misc]
        """papermill's nbclient engine, on a kernel the pool already started."""

        @classmethod
        def execute_managed_notebook(
            cls,
            nb_man: Any,
            kernel_name: str,
            *,
            warm_kernel: WarmKernel,
            log_output: bool = False,
            stdout_file: Any = None,
            stderr_file: Any = None,
            start_timeout: int = 60,
            execution_timeout: int | None = None,
            **kwargs: Any,
        ) -> Any:
            kwargs = remove_args(["input_path", "kernel_manager_class"], **kwargs)
            safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
            cwd = kwargs.get("resources", {}).get("metadata", {}).get("path")
            final_kwargs = merge_kwargs(
                safe_kwargs,
                timeout=execution_timeout or kwargs.get("timeout"),
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log=logger,
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
            )
            client = InDirectoryClient(nb_man, cwd, km=warm_kernel.manager, **final_kwargs)
            try:
                return client.execute()
            finally:
                # Not owning the manager, nbclient leaves the client's channels open.
                if client.kc is not None:
                    client.kc.stop_channels()

    return WarmEngine
