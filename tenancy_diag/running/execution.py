"""Executing notebooks with papermill, several at once, each leaving evidence even when it fails.

Two papermill behaviours matter in threads. ``execute_notebook(cwd=...)`` calls ``os.chdir``
for the whole process, so concurrent runs restore each other's directories and leave the
process in a bundle folder; the kernel's working directory is given to nbclient through
``resources`` instead, and every path handed to papermill is absolute. And a kernel's own
stderr (ipykernel's warnings, its traceback when killed on a timeout) would interleave with
the progress lines, so each kernel writes it to a log in the bundle.

A kernel dies with its runner. jupyter_client starts each kernel in a session of its own (so a
Ctrl-C meant for the runner does not interrupt a cell), which also puts it out of reach of any
signal sent to the runner's group, and ipykernel only notices a dead parent on its next
one-second poll: a remediation kernel would go on acting, unwatched, with no result line for
its call. So each kernel asks Linux (``PR_SET_PDEATHSIG``) to be killed when the thread that
started it ends, which a kill -9 of the runner ends too. That thread is the notebook's worker,
which outlives its kernel in every normal run (nbclient shuts the kernel down first).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tenancy_diag.errors import shorten
from tenancy_diag.importing import import_papermill
from tenancy_diag.redacting import default_redactor
from tenancy_diag.running.notebooks import read_notebook, redact_outputs, write_notebook
from tenancy_diag.running.progress import NullProgress, Progress
from tenancy_diag.running.results import load_findings, write_error_findings

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager

    from tenancy_diag.running.warming import WarmKernel


class KernelSupply(Protocol):
    """Where warm kernels come from: a :class:`~.warming.KernelPool` or a run's ``Lease``."""

    #: Why no more notebooks may start (the run was stopped); None while they may.
    stopped: str | None

    def take(self) -> WarmKernel | None: ...


KERNEL = "python3"
#: Seconds a kernel may take to start; two cores shared by five kernels start slowly.
KERNEL_START_TIMEOUT_S = 120
_PR_SET_PDEATHSIG = 1
# Resolved before any fork: between fork and exec only the call itself may run.
_PRCTL = (
    getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform == "linux" else None
)


@dataclass(frozen=True)
class NotebookJob:
    """Everything one execution needs; every path absolute."""

    name: str
    subsystem: str
    incident: str
    source: Path
    parameters: Mapping[str, Any]
    cwd: Path
    output: Path  # the executed notebook
    findings: Path
    html: Path
    kernel_log: Path
    cell_timeout_s: int
    window: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NotebookOutcome:
    name: str
    subsystem: str
    ran: bool  # executed to the end and wrote valid findings
    status: str  # the findings' status (``error`` when the runner wrote them)
    error: str | None
    started_at: float  # time.time()
    seconds: float
    findings: Mapping[str, Any]
    html_bytes: int = 0


def execute(
    job: NotebookJob,
    progress: Progress | None = None,
    pool: KernelSupply | None = None,
    renderer: PageRenderer | None = None,
    pages: list[Future[int]] | None = None,
) -> NotebookOutcome:
    """Run one notebook; never raises for the notebook's own failures, it reports them.

    With a ``pool``, the notebook runs on one of its warm kernels when it can supply one. With
    a ``renderer``, its page is rendered there (the future is appended to ``pages``) instead
    of here before returning.
    """
    if pages is None:
        pages = []
    progress = progress or NullProgress()
    stopped = pool.stopped if pool is not None else None
    kernel = pool.take() if pool is not None and stopped is None else None
    progress.started(job.name)
    started, clock = time.time(), time.monotonic()
    if stopped is None:
        error = _run_papermill(job, kernel)
        stopped = pool.stopped if pool is not None and error else None
        if stopped is not None:  # its kernel was killed under it: say why first
            error = f"stopped: {stopped} ({error})"
    else:
        error = f"not started: {stopped}"
    if not job.output.exists():
        # Failed before papermill wrote anything (unreadable source, no kernel): keep the
        # source so the bundle still shows what was meant to run.
        shutil.copyfile(job.source, job.output)
    findings, problem = load_findings(job.findings)
    if findings is None:
        error = error or f"notebook finished but {problem}"
        findings = write_error_findings(
            job.findings, job.subsystem, job.incident, error, job.window
        )
    _redact_file(job.kernel_log)
    _redact_notebook(job.output)
    if renderer is None:
        html_bytes = _render(job)
    else:
        # Rendered on the renderer's thread while this one takes the next notebook.
        pages.append(renderer.submit_job(job))
        html_bytes = 0
    seconds = time.monotonic() - clock
    outcome = NotebookOutcome(
        job.name,
        job.subsystem,
        error is None,
        str(findings["status"]),
        error,
        started,
        seconds,
        findings,
        html_bytes,
    )
    progress.finished(job.name, outcome.status if outcome.ran else "error", seconds)
    return outcome


def execute_all(
    jobs: Sequence[NotebookJob],
    workers: int | None = None,
    progress: Progress | None = None,
    pool: KernelSupply | None = None,
) -> list[NotebookOutcome]:
    """Run ``jobs`` in threads of this process, at most ``workers`` (default: the cores) at once.

    Each page is rendered on one thread, with one exporter, while the notebooks after it
    execute; every page is written when this returns. Outcomes come back in the order of
    ``jobs``; one notebook's failure never stops another.
    """
    if not jobs:
        return []
    _import_engines()
    rendering = PageRenderer()
    rendered: list[Future[int]] = []
    limit = max(1, min(len(jobs), workers or os.cpu_count() or 1))
    threads = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="notebook")
    try:
        futures = [
            threads.submit(execute, job, progress, pool, rendering, rendered) for job in jobs
        ]
        outcomes = [f.result() for f in futures]
    finally:
        # Not the context manager: on Ctrl-C it would wait for every queued notebook. Queued
        # ones are cancelled; running kernels end with their cell (or the cell timeout).
        threads.shutdown(wait=False, cancel_futures=True)
        rendering.close()
    for page in rendered:
        page.result()  # _render never raises: a failed page is a page saying why
    return outcomes


class PageRenderer:
    """One run's pages: rendered one at a time on a thread of their own, by one
    :class:`~.rendering.Renderer` (built there, so nbconvert loads with the first page)."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
        self._renderer: Any = None  # a rendering.Renderer, touched by that thread only

    def submit_job(self, job: NotebookJob) -> Future[int]:
        return self._thread.submit(self._render, job)

    def _render(self, job: NotebookJob) -> int:
        if self._renderer is None:
            from tenancy_diag.running.rendering import Renderer  # noqa: PLC0415

            self._renderer = Renderer()
        return _render(job, self._renderer.render)

    def close(self) -> None:
        """Wait for the pages submitted, then end the thread."""
        self._thread.shutdown(wait=True)


def _import_engines() -> None:
    # Once, before the threads: a module imported by several threads at once can be seen
    # half-initialised by one of them.
    import_papermill()
    import tenancy_diag.running.rendering  # noqa: F401, PLC0415


def _run_papermill(job: NotebookJob, kernel: WarmKernel | None = None) -> str | None:
    """None when the notebook ran to its end, else one line saying what stopped it.

    ``kernel``, a warm one from a pool, runs this notebook only and is discarded here.
    """
    # Imported here, not at the top: papermill, nbclient and nbformat cost seconds, and most
    # commands (`--help`, `close`, `check-signals`) never start a kernel.
    papermill = import_papermill()
    from nbclient.exceptions import CellTimeoutError, DeadKernelError  # noqa: PLC0415
    from papermill.exceptions import PapermillExecutionError  # noqa: PLC0415

    if kernel is None:
        engine: dict[str, Any] = {"kernel_manager_class": kernel_manager_logging_to(job.kernel_log)}
    else:
        from tenancy_diag.running.warming import ENGINE  # noqa: PLC0415

        engine = {"engine_name": ENGINE, "warm_kernel": kernel}
    try:
        papermill.execute_notebook(
            str(job.source),
            str(job.output),
            parameters=dict(job.parameters),
            kernel_name=KERNEL,
            progress_bar=False,
            request_save_on_cell_execute=True,
            execution_timeout=job.cell_timeout_s,
            start_timeout=KERNEL_START_TIMEOUT_S,
            resources={"metadata": {"path": str(job.cwd)}},
            **engine,
        )
    except PapermillExecutionError as e:
        return _clean(f"{e.ename}: {e.evalue} (cell {e.exec_count})")
    except CellTimeoutError:
        return f"CellTimeoutError: a cell ran longer than the {job.cell_timeout_s} s cell timeout"
    except DeadKernelError as e:
        return _clean(f"DeadKernelError: {e}; see {job.kernel_log.name}")
    except Exception as e:  # whatever broke, the other notebooks must finish
        return _clean(f"{type(e).__name__}: {e}")
    finally:
        if kernel is not None:
            kernel.discard(log_to=job.kernel_log)
    return None


def _clean(message: str) -> str:
    # Exception messages quote URLs and server payloads; better be safe before they land in
    # findings, the summary and the terminal.
    return shorten(default_redactor().redact(message), 500)


def kernel_manager_logging_to(log: Path) -> type[AsyncKernelManager]:
    from jupyter_client.manager import AsyncKernelManager  # noqa: PLC0415

    # nbclient builds its kernel manager from a class, so the log path rides on a subclass.
    class LoggingKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            with log.open("ab") as stream:  # the kernel inherits the descriptor
                kw.setdefault("stdout", stream)
                kw.setdefault("stderr", stream)
                kw.setdefault("preexec_fn", die_with(os.getpid()))
                await super()._async_launch_kernel(kernel_cmd, **kw)

    return LoggingKernelManager


def die_with(parent: int) -> Callable[[], None]:
    """Run in the kernel between fork and exec: SIGKILL it when its starting thread ends."""

    def arrange() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            # The runner died between fork and prctl: nobody would ever stop this kernel.
            os._exit(1)

    return arrange


def _redact_file(path: Path) -> None:
    if path.exists():
        text = path.read_text(encoding="utf-8", errors="replace")
        path.write_text(default_redactor().redact(text), encoding="utf-8")


def _redact_notebook(path: Path) -> None:
    try:
        nb = read_notebook(path)
    except Exception:  # unreadable: rendering says so, and there is nothing to redact in
        return
    if redact_outputs(nb, default_redactor().redact):
        write_notebook(nb, path)


def _render(job: NotebookJob, render: Callable[[Path, Path], int] | None = None) -> int:
    import_papermill()  # nbconvert reads notebooks through nbformat: the same slow import
    from tenancy_diag.running.rendering import render_failure, render_notebook  # noqa: PLC0415

    try:
        return (render or render_notebook)(job.output, job.html)
    except Exception as e:  # an unrenderable notebook must not lose the run
        render_failure(job.name, job.html, _clean(f"{type(e).__name__}: {e}"))
        return job.html.stat().st_size
