"""The controllers behind the sandbox's Jobs: the Job controller, TTL-after-finished, and the
garbage collector's part in deleting a Job.

- **Create.** The Job is stored as created (empty status), then picked up at once: ``startTime``
  and ``active: 1``, and its pod, which the kubelet (when there is one) starts.
- **Pod exits.** Exit 0 completes the Job. Any other exit counts a failure; past
  ``backoffLimit`` the Job fails with BackoffLimitExceeded, else a new pod follows after the
  controller's backoff (10 s, doubled per failure, at most 6 min).
- **activeDeadlineSeconds** from ``startTime``: FailureTarget (DeadlineExceeded), the pods are
  deleted (SIGTERM, the pod's grace period, SIGKILL), and once they are gone the Job is Failed.
- **ttlSecondsAfterFinished** after the terminal condition: the Job is deleted, foreground.
- **Delete** with ``propagationPolicy``: Orphan (what ``batch/v1`` does when none is given)
  leaves the pods running without an owner; Background removes the Job at once and deletes its
  pods after; Foreground marks the Job (``deletionTimestamp``, the ``foregroundDeletion``
  finalizer) and removes it once its pods are gone.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tenancy_diag.sandbox.kube_api import job_pods, jobs
from tenancy_diag.sandbox.kube_api.errors import already_exists, not_found_in
from tenancy_diag.sandbox.kube_api.identities import iso
from tenancy_diag.sandbox.kube_api.kubelet import Kubelet, KubeletOptions
from tenancy_diag.sandbox.kube_api.resources import Body, Resources

# The alphabet kube-controller-manager draws generated name suffixes from.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FOREGROUND = "foregroundDeletion"
_BACKOFF_S, _MAX_BACKOFF_S = 10.0, 360.0


def now_iso() -> str:
    return iso(datetime.now(UTC))


class JobController:
    """Jobs and their pods in ``resources``; pods run when ``kubelet`` options are given."""

    def __init__(
        self,
        resources: Resources,
        kubelet: KubeletOptions | None = None,
        clock: Callable[[], str] = now_iso,
    ) -> None:
        self.resources = resources
        self.clock = clock
        self.kubelet = Kubelet(kubelet, resources, self.pod_exited, clock) if kubelet else None
        self._lock = threading.RLock()
        self._timers: list[threading.Timer] = []
        #: How many creates succeeded, by Job name: what a test counts to prove "one Job".
        self.created: dict[str, int] = {}

    # -- the API's calls ------------------------------------------------------------------------
    def create(self, namespace: str, body: dict[str, Any]) -> Body:
        name = jobs.validate_job(body, namespace)
        with self._lock:
            job = jobs.defaulted(body, namespace, str(uuid.uuid4()), self.clock())
            stored = self.resources.add("jobs", job)
            if stored is None:
                raise already_exists(jobs.GROUP, "jobs", name)
            self.created[name] = self.created.get(name, 0) + 1
            self._start(namespace, name)
        return stored

    def delete(self, namespace: str, name: str, propagation: str | None) -> tuple[int, Body]:
        """(HTTP status, body): 200 and a Status when the Job is gone, 202 and the Job when a
        foreground delete waits for its pods."""
        with self._lock:
            job = self.resources.get("jobs", namespace, name)
            if job is None:
                raise not_found_in(jobs.GROUP, "jobs", name)
            pods = self._pods_of(job)
            policy = propagation or "Orphan"
            if policy == "Foreground" and pods:
                marked = self.resources.update("jobs", namespace, name, self._mark_foreground)
                for pod in pods:
                    self._delete_pod(pod)
                return 202, marked or job
            self.resources.remove("jobs", namespace, name)
            for pod in pods:
                if policy == "Orphan":
                    self._update_pod(pod, _orphan)
                else:
                    self._delete_pod(pod)
        uid = job["metadata"]["uid"]
        return 200, _success(name, uid)

    def pod_exited(self, namespace: str, pod_name: str) -> None:
        """The kubelet's report: the pod's container ended (its status says how)."""
        with self._lock:
            pod = self.resources.get("pods", namespace, pod_name)
            if pod is None:
                return
            job = self._owner(pod)
            if job is not None and not jobs.finished(job):
                self._count(job, pod)
            if pod["metadata"].get("deletionTimestamp") or job is None:
                self._remove_pod(pod)
            else:
                self._update_pod(pod, job_pods.untracked)

    def close(self) -> None:
        with self._lock:
            for timer in self._timers:
                timer.cancel()
        if self.kubelet is not None:
            self.kubelet.shutdown()
        self.resources.close()

    # -- the Job controller ---------------------------------------------------------------------
    def _start(self, namespace: str, name: str) -> None:
        job = self.resources.update(
            "jobs", namespace, name, lambda j: jobs.started(j, self.clock())
        )
        assert job is not None
        self._new_pod(job)
        deadline = job["spec"].get("activeDeadlineSeconds")
        if deadline is not None:
            self._later(float(deadline), self._deadline, job)

    def _new_pod(self, job: Body) -> None:
        meta = job["metadata"]
        taken = {p["metadata"]["name"] for p in self.resources.listed("pods", meta["namespace"])[0]}
        name = _fresh_name(meta["name"], taken)
        pod = job_pods.new_pod(job, name, str(uuid.uuid4()), self.clock())
        self.resources.add("pods", pod)
        if self.kubelet is not None:
            self.kubelet.start(meta["namespace"], name)

    def _count(self, job: Body, pod: Body) -> None:
        code = job_pods.exit_code(pod)
        now = self.clock()
        if jobs.has_condition(job, "FailureTarget"):
            # The exited pod is no longer active; the Job fails once none is.
            if not any(_active(p) for p in self._pods_of(job)):
                self._update_job(job, lambda j: jobs.failed(j, now, 1))
                self._expire_later(job)
        elif code == 0:
            self._update_job(job, lambda j: jobs.succeeded(j, now))
            self._expire_later(job)
        elif job["status"].get("failed", 0) + 1 > job["spec"]["backoffLimit"]:

            def fail(j: Body) -> None:
                jobs.failure_target(j, jobs.BACKOFF_LIMIT_EXCEEDED, now, terminating=0)
                jobs.failed(j, now, 1)

            self._update_job(job, fail)
            self._expire_later(job)
        else:
            self._update_job(job, jobs.pod_replaced)
            failures = job["status"].get("failed", 0) + 1
            delay = min(_BACKOFF_S * 2 ** (failures - 1), _MAX_BACKOFF_S)
            self._later(delay, self._replace, job)

    def _replace(self, job: Body) -> None:
        current = self._current(job)
        if current is not None and not jobs.finished(current):
            self._new_pod(current)

    def _deadline(self, job: Body) -> None:
        current = self._current(job)
        if (
            current is None
            or jobs.finished(current)
            or jobs.has_condition(current, "FailureTarget")
        ):
            return
        active = [p for p in self._pods_of(current) if _active(p)]
        now = self.clock()
        self._update_job(
            current, lambda j: jobs.failure_target(j, jobs.DEADLINE_EXCEEDED, now, len(active))
        )
        for pod in active:
            self._delete_pod(pod)
        if not active:
            self._update_job(current, lambda j: jobs.failed(j, now, 0))
            self._expire_later(current)

    def _expire_later(self, job: Body) -> None:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is not None:
            self._later(float(ttl), self._expire, job)

    def _expire(self, job: Body) -> None:
        current = self._current(job)
        if current is not None:
            self.delete(current["metadata"]["namespace"], current["metadata"]["name"], "Foreground")

    # -- pods and the garbage collector ---------------------------------------------------------
    def _delete_pod(self, pod: Body) -> None:
        meta = pod["metadata"]
        grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        self._update_pod(pod, lambda p: job_pods.marked_for_deletion(p, self.clock(), grace))
        running = self.kubelet is not None and self.kubelet.stop(
            meta["namespace"], meta["name"], grace
        )
        if not running:
            # Nothing to stop (never started, or already ended): counted now, gone now.
            job = self._owner(pod)
            if (
                job is not None
                and jobs.has_condition(job, "FailureTarget")
                and not jobs.finished(job)
            ):
                now = self.clock()
                self._update_job(job, lambda j: jobs.failed(j, now, 1))
                self._expire_later(job)
            self._remove_pod(pod)

    def _remove_pod(self, pod: Body) -> None:
        meta = pod["metadata"]
        self.resources.remove("pods", meta["namespace"], meta["name"])
        if self.kubelet is not None:
            self.kubelet.forget(meta["namespace"], meta["name"])
        owner = self._owner(pod)
        foreground = owner is not None and _FOREGROUND in owner["metadata"].get("finalizers", [])
        if owner is not None and foreground and not self._pods_of(owner):
            self.resources.remove("jobs", meta["namespace"], owner["metadata"]["name"])

    def _mark_foreground(self, job: Body) -> None:
        meta = job["metadata"]
        meta["deletionTimestamp"] = self.clock()
        meta["deletionGracePeriodSeconds"] = 0
        meta["finalizers"] = [*meta.get("finalizers", []), _FOREGROUND]

    # -- helpers --------------------------------------------------------------------------------
    def _pods_of(self, job: Body) -> list[Body]:
        uid = job["metadata"]["uid"]
        pods, _ = self.resources.listed("pods", job["metadata"]["namespace"])
        return [
            p
            for p in pods
            if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences", []))
        ]

    def _owner(self, pod: Body) -> Body | None:
        for owner in pod["metadata"].get("ownerReferences", []):
            if owner.get("kind") == "Job":
                job = self.resources.get("jobs", pod["metadata"]["namespace"], owner["name"])
                if job is not None and job["metadata"]["uid"] == owner["uid"]:
                    return job
        return None

    def _current(self, job: Body) -> Body | None:
        """``job`` as stored now, if it is still the same incarnation of its name."""
        meta = job["metadata"]
        current = self.resources.get("jobs", meta["namespace"], meta["name"])
        return current if current and current["metadata"]["uid"] == meta["uid"] else None

    def _update_job(self, job: Body, change: Callable[[Body], object]) -> None:
        meta = job["metadata"]
        self.resources.update("jobs", meta["namespace"], meta["name"], change)

    def _update_pod(self, pod: Body, change: Callable[[Body], object]) -> None:
        meta = pod["metadata"]
        self.resources.update("pods", meta["namespace"], meta["name"], change)

    def _later(self, delay_s: float, action: Callable[[Body], None], job: Body) -> None:
        def fire() -> None:
            with self._lock:
                action(job)

        timer = threading.Timer(delay_s, fire)
        timer.daemon = True
        with self._lock:
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()


def _active(pod: Body) -> bool:
    return pod["status"].get("phase") in ("Pending", "Running")


def _orphan(pod: Body) -> None:
    pod["metadata"]["ownerReferences"] = [
        o for o in pod["metadata"].get("ownerReferences", []) if o.get("kind") != "Job"
    ]


def _fresh_name(job: str, taken: set[str]) -> str:
    while True:
        suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
        if f"{job}-{suffix}" not in taken:
            return f"{job}-{suffix}"


def _success(name: str, uid: str) -> Body:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": jobs.GROUP, "kind": "jobs", "uid": uid},
    }
