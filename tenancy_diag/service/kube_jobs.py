"""Each job as a Kubernetes Job: the :class:`~.executor.Executor` contract over the cluster's API.

One ``execute(job, run_id, timeout_s)``:

1. A bundle already fetched and intact at ``OUT/<incident>/<run_id>`` is the answer: the
   service died after fetching it and before the queue heard (the runner's ``--run-id`` reuse).
2. Create the Job (:mod:`.job_manifests`). On 409 AlreadyExists the Job already there is the one
   to follow, whoever created it: this service before a crash, or another replica that got the
   same alert. Its ``tenancy-diag/run-id`` annotation names the bundle to fetch.
3. Watch it until Complete or Failed, for at most the run timeout plus ``finish_grace_s``
   (:mod:`.job_calls`); past that the Job is deleted and the attempt timed out.
4. Read its pod: the container's exit code, the log's tail as the stderr tail. DeadlineExceeded
   (``activeDeadlineSeconds`` = the run timeout) is a timeout.
5. Fetch the bundle from S3 (:mod:`.sinks.handoff`), every file's sha256 checked against the
   manifest before it lands in ``OUT``; a bundle missing or differing leaves nothing there, and
   the reason is the stderr tail's last line, which the worker reports. The pod's audit lines
   for the run join this service's ``OUT/audit.jsonl``.
6. Delete the Job, its pods in the background. Deleting, rather than leaving it to
   ``ttlSecondsAfterFinished``, is what makes the worker's retry a new attempt: it retries under
   the same run id, and a finished Job still there would hand it the same result again. The TTL
   only cleans up after a service that never came back.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from tenancy_diag.errors import ExitCode, TenancyDiagError
from tenancy_diag.journaling import AUDIT_FILE, append_jsonl
from tenancy_diag.running.bundles import finished_bundle
from tenancy_diag.service.executor import Execution
from tenancy_diag.service.job_calls import JobGone, JobsApi, terminal_condition
from tenancy_diag.service.job_manifests import RUN_ID, JobSettings, evidence_location, job_manifest
from tenancy_diag.service.jobs import Job
from tenancy_diag.service.sinks.handoff import BundleNotFetched, S3Handoff

log = logging.getLogger(__name__)
_STDERR_TAIL_CHARS = 2000


class KubernetesJobExecutor:
    """Runs every job as one ``batch/v1`` Job in ``settings.namespace``, bundles via S3."""

    def __init__(
        self,
        out: Path,
        settings: JobSettings,
        *,
        extra_args: Sequence[str] = (),
        aws_endpoint_url: str | None = None,
        jobs: JobsApi | None = None,
        handoff: S3Handoff | None = None,
    ) -> None:
        self.out = out.resolve()
        self.settings = settings
        #: Passed to every run as they are (``--sample`` replays offline, e.g. in tests).
        self.extra_args = tuple(extra_args)
        self.jobs = jobs or JobsApi(settings)
        bucket, prefix = evidence_location(settings.evidence)
        self.handoff = handoff or S3Handoff(bucket, prefix, aws_endpoint_url)

    def execute(self, job: Job, run_id: str, timeout_s: float) -> Execution:
        started = time.monotonic()
        done = finished_bundle(self.out, job.incident_id, run_id)
        if done is not None:
            return self._execution(
                done.root, 0, False, "reusing the bundle fetched before", started
            )
        manifest = job_manifest(job, run_id, timeout_s, self.settings, self.extra_args)
        name = manifest["metadata"]["name"]
        found, created = self.jobs.create_or_find(manifest)
        bundle_run = str(found["metadata"].get("annotations", {}).get(RUN_ID) or run_id)
        _log("job created" if created else "job found", job=job.id, name=name, run_id=bundle_run)
        bundle = self.out / job.incident_id / bundle_run
        deadline = started + timeout_s + self.settings.finish_grace_s
        try:
            finished = self.jobs.wait_finished(name, deadline)
        except JobGone as e:
            # Another replica consumed the Job first; its bundle may well be in S3 already.
            return self._fetched(job, bundle_run, 0, f"{e}", started, gone=True)
        if finished is None:
            self.jobs.delete(name)
            grace = self.settings.finish_grace_s
            why = f"Job {name} did not finish within {timeout_s:g} s + {grace:g} s"
            return self._execution(bundle, -signal.SIGKILL, True, why, started)
        condition = terminal_condition(finished) or {}
        outcome = self.jobs.pod_outcome(name)
        if condition.get("reason") == "DeadlineExceeded":
            self.jobs.delete(name)
            tail = (
                f"{outcome.log_tail}\nJob {name}: {condition.get('message', 'deadline exceeded')}"
            )
            code = outcome.exit_code if outcome.exit_code is not None else -signal.SIGKILL
            return self._execution(bundle, code, True, tail, started)
        if condition.get("type") == "Complete":
            code = 0
        else:
            code = outcome.exit_code if outcome.exit_code is not None else ExitCode.FAILED
        execution = self._fetched(job, bundle_run, code, outcome.log_tail, started)
        self.jobs.delete(name)
        return execution

    def _fetched(
        self, job: Job, run_id: str, code: int, tail: str, started: float, *, gone: bool = False
    ) -> Execution:
        """The attempt's result once the bundle is fetched, or the reason it could not be."""
        bundle = self.out / job.incident_id / run_id
        if code == ExitCode.BAD_INPUT:
            return self._execution(bundle, code, False, tail, started)
        try:
            bundle = self.handoff.fetch(job.incident_id, run_id, self.out)
        except BundleNotFetched as e:
            code = -1 if gone else code
            return self._execution(bundle, code, False, f"{tail}\ntenancy-diag: {e}", started)
        except TenancyDiagError as e:
            return self._execution(bundle, -1 if gone else code, False, f"{tail}\n{e}", started)
        self._audit(job.incident_id, run_id)
        return self._execution(bundle, code, False, tail, started)

    def _audit(self, incident: str, run_id: str) -> None:
        """The pod's audit lines for the run, into this service's audit log (as a local run's)."""
        try:
            for record in self.handoff.audit_lines(incident, run_id):
                append_jsonl(self.out / AUDIT_FILE, record, "audit log", "check --out")
        except TenancyDiagError as e:
            # The evidence is verified and in place; a lost audit line must not fail the run.
            _log("audit lines not copied", incident=incident, run_id=run_id, error=str(e))

    def _execution(
        self, bundle: Path, code: int, timed_out: bool, tail: str, started: float
    ) -> Execution:
        return Execution(
            bundle=bundle,
            exit_code=int(code),
            timed_out=timed_out,
            stderr_tail=tail.strip()[-_STDERR_TAIL_CHARS:],
            seconds=time.monotonic() - started,
        )


def _log(event: str, **fields: object) -> None:
    log.info(json.dumps({"event": event, **fields}, default=str))
