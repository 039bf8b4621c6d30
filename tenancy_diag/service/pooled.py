"""``serve --executor pool``: runs in the service's own threads, on one warm kernel pool.

The subprocess executor pays, for every alert, a new runner process (importing papermill,
nbconvert and the library) and a new kernel per notebook (importing pandas, matplotlib and the
library again). Here the service has paid both before the alert arrives: papermill and
nbconvert are imported and a page rendered once when the executor starts, and
:class:`~tenancy_diag.running.warming.KernelPool` keeps ``size`` kernels started and warmed,
refilling in the background as runs take them.

What does not change:

- **One kernel, one notebook.** A pool kernel runs exactly one notebook and is then killed;
  nothing an incident put in a kernel reaches the next incident.
- **The same run.** Each job is parsed and run by ``tenancy-diag run``'s own code
  (:func:`~tenancy_diag.running.commands.run_command`): the same checks, parameters, bundle,
  audit lines and exit codes, the same ``--run-id`` reuse after a crash.
- **No service secret in a kernel.** The pool's kernels get :func:`.executor.runner_env`
  (the service's tokens withheld) narrowed by the kernels' own allowlist; only papermill's
  client side runs in the service, and it reads no secret.
- **A time limit.** When a run is over ``timeout_s``, its kernels are killed and its notebooks
  not yet started end at once, each leaving its notebook and a findings file saying why; the
  bundle is still sealed, so the timeout is on the record and in the evidence.
- **The service dies, the kernels die.** Pool kernels are started by the pool's thread with
  ``PR_SET_PDEATHSIG``; a run that a kill -9 interrupted is requeued and rerun into the same
  bundle folder, as with the subprocess executor.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

from tenancy_diag.errors import ExitCode, TenancyDiagError
from tenancy_diag.running.audit import redact_command
from tenancy_diag.running.catalog import default_catalog
from tenancy_diag.running.commands import add_commands, run_command
from tenancy_diag.running.warming import KernelPool, Lease, PoolSettings
from tenancy_diag.service.executor import Execution, SubprocessExecutor, runner_env
from tenancy_diag.service.jobs import Job

_STDERR_TAIL_CHARS = 2000
#: What the manifest records as the run's command line.
_PROGRAM = "tenancy-diag"


class PooledExecutor:
    """Runs each job in the calling thread, on kernels of a pool shared by every job."""

    def __init__(
        self,
        out: Path,
        sources: Mapping[str, str],
        extra_args: Sequence[str] = (),
        *,
        pool: PoolSettings,
        runtime_root: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        # The subprocess executor's checks and command line, so both run exactly one command.
        self._commands = SubprocessExecutor(out, sources, extra_args=extra_args)
        self.out = self._commands.out
        self._parser = _run_parser()
        self._parse(self._commands.run_args(None, "check"))  # a bad runner argument fails now
        env = runner_env(os.environ if environ is None else environ)
        self.pool = KernelPool(pool, env, scratch_root=runtime_root)

    def start(self) -> PooledExecutor:
        """Start the kernels, and import and warm the renderer in the background."""
        self.pool.start()
        threading.Thread(target=_warm_this_process, name="warm-renderer", daemon=True).start()
        return self

    def close(self) -> None:
        """Kill the kernels not handed out; call it after the last run has returned."""
        self.pool.close()

    def execute(self, job: Job, run_id: str, timeout_s: float) -> Execution:
        started = time.monotonic()
        argv = self._commands.run_args(job, run_id)
        lease = self.pool.lease()
        limit = threading.Timer(
            timeout_s, lease.stop, args=(f"the run exceeded its {timeout_s:g} s time limit",)
        )
        limit.daemon = True
        err = io.StringIO()
        limit.start()
        try:
            code = self._run(argv, lease, err)
        finally:
            limit.cancel()
        return Execution(
            bundle=self.out / job.incident_id / run_id,
            exit_code=code,
            timed_out=lease.stopped is not None,
            stderr_tail=err.getvalue()[-_STDERR_TAIL_CHARS:],
            seconds=time.monotonic() - started,
        )

    def _run(self, argv: list[str], lease: Lease, err: io.StringIO) -> int:
        try:
            args = self._parse(argv)
            return run_command(
                args,
                default_catalog,
                command=redact_command([_PROGRAM, *argv]),
                pool=lease,
                err=err,
                out=io.StringIO(),
            )
        except TenancyDiagError as e:
            print(f"tenancy-diag: error: {e}", file=err)
            return ExitCode.BAD_INPUT
        except Exception:  # a bug must fail this run, not the worker thread
            err.write(traceback.format_exc())
            return ExitCode.FAILED

    def _parse(self, argv: list[str]) -> argparse.Namespace:
        try:
            return self._parser.parse_args(argv)
        except SystemExit:  # argparse has printed why to stderr; say it once more, whole
            raise TenancyDiagError(
                f"the runner arguments {' '.join(argv[1:])!r} are not valid for `run`; see "
                "`tenancy-diag run --help`"
            ) from None


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_PROGRAM, exit_on_error=False)
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def _warm_this_process() -> None:
    """papermill, nbclient and nbconvert imported, and one page rendered, before any alert."""
    with contextlib.suppress(Exception):  # warming is an optimisation, never a failure
        from tenancy_diag.importing import import_nbformat, import_papermill  # noqa: PLC0415

        import_papermill()
        nbformat = import_nbformat()
        from tenancy_diag.running.rendering import render_notebook  # noqa: PLC0415

        with tempfile.TemporaryDirectory(prefix="tenancy-diag-warm-") as folder:
            notebook = Path(folder) / "warm.ipynb"
            nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
            nbformat.write(nb, str(notebook))
            render_notebook(notebook, Path(folder) / "warm.html")
