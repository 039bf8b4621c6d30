"""The worker pool: claim a job, run it once under a timeout, attach the evidence, settle it.

Each of N threads loops claim -> execute -> judge -> attach -> finish. A job keeps one run id
for its whole life (pinned in the store *before* the first execution), so whatever kills an
attempt, the next one writes the same bundle folder and the runner finds a finished bundle
instead of making a second. Transient failures (a timeout, a runner that died, a source that
did not answer) go back to the queue with exponential backoff; others fail at once.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tenancy_diag.errors import ExitCode, TenancyDiagError, shorten
from tenancy_diag.running.bundles import SUMMARY, move_aside, new_run_id
from tenancy_diag.service.executor import Execution, Executor
from tenancy_diag.service.jobs import Job
from tenancy_diag.service.sinks import Sink, attach_all
from tenancy_diag.service.store import Store
from tenancy_diag.service.telemetry import Telemetry

log = logging.getLogger(__name__)

#: The runner's exit code for bad input: running it again cannot help.
# The sentences the sources' SourceUnavailable errors use; a replay miss or a rejected query
# also reads "unavailable: ..." in findings, but trying again gives the same answer.
_UNANSWERED = re.compile(r"did not answer|unreachable")


@dataclass(frozen=True)
class Verdict:
    """What to do with an attempt: settle it as done, try again later, or give up."""

    action: Literal["done", "retry", "fail"]
    reason: str
    outcome: str = "ok"  # for runs_total when settled: ok, failed or error


def judge(execution: Execution, run_timeout_s: float) -> Verdict:
    """Sort one attempt by what it left: exit code, the bundle's seal, its summary."""
    if execution.timed_out:
        return Verdict("retry", f"the run exceeded its {run_timeout_s:g} s timeout", "error")
    last_line = _last_line(execution.stderr_tail)
    if execution.exit_code == ExitCode.BAD_INPUT:
        return Verdict("fail", f"the runner refused the job: {last_line}", "error")
    if not execution.complete:
        return Verdict(
            "retry",
            f"the runner exited with code {execution.exit_code} before sealing the bundle "
            f"({last_line})",
            "error",
        )
    unanswered = unanswered_sources(execution.bundle)
    if unanswered:
        return Verdict("retry", f"a source did not answer: {unanswered[0]}", "error")
    if execution.exit_code != 0:
        return Verdict("done", f"a notebook failed: {last_line}", "failed")
    return Verdict("done", "every notebook ran", "ok")


def unanswered_sources(bundle: Path) -> list[str]:
    """``<notebook>: <source> unavailable: ...`` for every notebook left without an answer."""
    summary = _read_json(bundle / SUMMARY)
    found = []
    for row in summary.get("subsystems") or []:
        if not isinstance(row, dict) or row.get("status") not in ("error", "unknown"):
            continue
        findings = _read_json(bundle / str((row.get("files") or {}).get("findings", "")))
        for source, state in (findings.get("sources") or {}).items():
            if str(state).startswith("unavailable") and _UNANSWERED.search(str(state)):
                found.append(f"{row.get('notebook')}: {source} {shorten(state, 200)}")
    return found


class Worker:
    """``workers`` threads draining ``store``; :meth:`start`, then :meth:`stop` to drain."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        sinks: Sequence[Sink],
        telemetry: Telemetry,
        *,
        workers: int,
        run_timeout_s: float,
        max_attempts: int = 3,
        backoff_s: float = 30.0,
        poll_s: float = 0.5,
        attach_retries: int = 3,
        attach_backoff_s: float = 1.0,
    ) -> None:
        self.store = store
        self.executor = executor
        self.sinks = tuple(sinks)
        self.telemetry = telemetry
        self.workers = workers
        self.run_timeout_s = run_timeout_s
        self.max_attempts = max_attempts
        #: Seconds before the first retry; doubled for each later one.
        self.backoff_s = backoff_s
        #: Seconds an idle thread waits before asking the queue again.
        self.poll_s = poll_s
        self.attach_retries = attach_retries
        self.attach_backoff_s = attach_backoff_s
        self._stopping = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.workers):
            # Daemons: a drain that times out must not keep the process alive; the runs it
            # leaves are requeued at the next start.
            thread = threading.Thread(target=self._loop, args=(f"worker-{n}",), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, drain_timeout_s: float | None = None) -> bool:
        """Claim nothing more and wait for running jobs; True when every thread finished."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        deadline = None if drain_timeout_s is None else time.monotonic() + drain_timeout_s
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _loop(self, name: str) -> None:
        while not self._stopping.is_set():
            try:
                job = self.store.claim(name)
            except TenancyDiagError as e:
                _log(logging.ERROR, "claim failed", worker=name, error=str(e))
                job = None
            if job is None:
                with self._wake:
                    self._wake.wait(self.poll_s)
                continue
            try:
                self.handle(job)
            except Exception:
                # A bug or a broken store must not kill the thread and shrink the pool; the job
                # stays running and is requeued at the next start.
                log.exception(json.dumps({"event": "job unsettled", "job": job.id}))

    def handle(self, job: Job) -> None:
        """Run one claimed job to a settled state (done, queued for retry, or failed)."""
        run_id = job.run_id or new_run_id()
        if job.run_id is None:
            self.store.set_run_id(job.id, run_id)
        context: dict[str, Any] = {"job": job.id, "incident": job.incident_id, "run_id": run_id}
        _log(logging.INFO, "run started", attempt=job.attempts, **context)
        started = time.monotonic()
        execution: Execution | None = None
        try:
            execution = self.executor.execute(job, run_id, self.run_timeout_s)
        except (OSError, TenancyDiagError) as e:
            verdict = Verdict("retry", f"the run could not start: {shorten(e)}", "error")
        else:
            verdict = judge(execution, self.run_timeout_s)
            context["exit_code"] = execution.exit_code
        seconds = time.monotonic() - started
        context["seconds"] = round(seconds, 2)
        if verdict.action == "done" and execution is not None:
            self._attach(job, execution.bundle)
            self.store.finish(job.id, str(execution.bundle), execution.exit_code)
            self.telemetry.run_finished(verdict.outcome, seconds)
            _log(logging.INFO, "run done", reason=verdict.reason, **context)
        elif verdict.action == "retry" and job.attempts < self.max_attempts:
            if execution is not None and execution.complete:
                # Sealed but unusable: kept beside, so the retry's bundle is the one finished.
                move_aside(execution.bundle, "attempt")
            delay = self.backoff_s * 2 ** (job.attempts - 1)
            self.store.retry_later(job.id, verdict.reason, delay)
            _log(logging.WARNING, "run retried", reason=verdict.reason, delay_s=delay, **context)
        else:
            self.store.fail(job.id, verdict.reason)
            self.telemetry.run_finished(verdict.outcome, seconds)
            _log(logging.ERROR, "run failed", reason=verdict.reason, **context)

    def _attach(self, job: Job, bundle: Path) -> None:
        summary = _read_json(bundle / SUMMARY)
        # The diagnosis judges severity from the evidence; when it found none, the note still
        # carries the severity the alert paged with.
        summary = {**summary, "severity": summary.get("severity") or job.severity}

        def record(sink: str, ok: bool, detail: str) -> None:
            self.store.record_attachment(job.id, sink, ok, detail)
            if not ok:
                self.telemetry.attachment_failed(sink)
                _log(logging.ERROR, "attachment failed", job=job.id, sink=sink, detail=detail)

        attach_all(
            self.sinks,
            bundle,
            summary,
            retries=self.attach_retries,
            backoff_s=self.attach_backoff_s,
            record=record,
        )


def _log(level: int, event: str, **fields: Any) -> None:
    # One JSON object per line, like the receiver's, so one parser reads the whole log.
    log.log(level, json.dumps({"event": event, **fields}, default=str))


def _read_json(path: Path) -> Mapping[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return shorten(lines[-1], 300) if lines else "no output"
