"""A kubelet stand-in: runs a Job pod's container as a process on this machine.

One thread per pod prepares the container (:mod:`.containers`), retrying every ``retry_s`` while
a Secret or ConfigMap it needs is missing, starts it in a session of its own with stdout and
stderr merged into the pod's log, moves the pod's status along (:mod:`.job_pods`) and tells the
Job controller when the container exited. Stopping a pod is what a container runtime does:
SIGTERM, then SIGKILL after the pod's grace period, to every process the container started
(kernels included, which live in sessions of their own); when the container's main process
exits, whatever it left running is killed too, as a container's PID namespace would.

Not modelled: images (``programs`` names the local program for a command), resource limits,
user ids (the process runs as this user), restarts in place (``OnFailure`` acts as ``Never``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType

import psutil

from tenancy_diag.sandbox.kube_api import job_pods
from tenancy_diag.sandbox.kube_api.containers import Launch, describe, prepare
from tenancy_diag.sandbox.kube_api.errors import ContainerNotStarted
from tenancy_diag.sandbox.kube_api.resources import Body, Resources

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, pod name)


def _programs() -> Mapping[str, tuple[str, ...]]:
    python = (sys.executable,)
    return MappingProxyType(
        {"tenancy-diag": (*python, "-m", "tenancy_diag.cli"), "python": python, "python3": python}
    )


@dataclass(frozen=True)
class KubeletOptions:
    """How the sandbox runs Job pods: ``root`` holds one folder per pod (volumes, root
    filesystem); ``programs`` maps a container's command name to the local program standing in
    for it; ``retry_s`` is how often, in seconds, a container that could not start is retried."""

    root: Path
    programs: Mapping[str, tuple[str, ...]] = field(default_factory=_programs)
    retry_s: float = 1.0


class Kubelet:
    """Runs pods on this machine; ``on_exit(namespace, pod)`` is called once a container ends."""

    def __init__(
        self,
        options: KubeletOptions,
        resources: Resources,
        on_exit: Callable[[str, str], None],
        clock: Callable[[], str],
    ) -> None:
        self.options = options
        self.resources = resources
        self.on_exit = on_exit
        self.clock = clock
        self._processes: dict[Key, subprocess.Popen[bytes]] = {}
        self._seen: dict[Key, set[psutil.Process]] = {}
        self._logs: dict[Key, list[tuple[float, str]]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def start(self, namespace: str, name: str) -> None:
        thread = threading.Thread(target=self._run, args=((namespace, name),), daemon=True)
        thread.start()

    def stop(self, namespace: str, name: str, grace_s: float) -> bool:
        """Stop the pod's container in the background; False when none is running."""
        with self._lock:
            process = self._processes.get((namespace, name))
        if process is None or process.poll() is not None:
            return False
        threading.Thread(
            target=self._kill, args=((namespace, name), process, grace_s), daemon=True
        ).start()
        return True

    def log(self, namespace: str, name: str) -> list[tuple[float, str]] | None:
        """The container's output so far, one (epoch seconds, line) per line; None if never run."""
        with self._lock:
            lines = self._logs.get((namespace, name))
            return None if lines is None else list(lines)

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._logs.pop((namespace, name), None)

    def shutdown(self, grace_s: float = 2.0) -> None:
        """Stop every container (the node is going away) and wait for them."""
        self._stopping.set()
        with self._lock:
            running = list(self._processes.items())
        threads = [
            threading.Thread(target=self._kill, args=(key, process, grace_s), daemon=True)
            for key, process in running
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(grace_s + 5)

    def _run(self, key: Key) -> None:
        launch = self._prepared(key)
        if launch is None:
            return
        log.info(json.dumps({"event": "container starting", "pod": key[1], **describe(launch)}))
        try:
            process = subprocess.Popen(
                launch.argv,
                env=launch.env,
                cwd=launch.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            # As containerd reports a process that could not be started: exit 128, StartError.
            why = f"failed to start the container's process: {e}"
            self._finish(key, 128, StartFailure(why))
            return
        with self._lock:
            self._processes[key] = process
            self._logs[key] = []
            self._seen[key] = set()
        if not self._update(key, lambda pod: job_pods.running(pod, self.clock())):
            self._kill(key, process, 0)  # deleted while it started
        self._collect(key, process)
        code = process.wait()
        self._finish(key, 128 - code if code < 0 else code)

    def _prepared(self, key: Key) -> Launch | None:
        """The container's launch, once everything it needs exists; None if the pod went away."""
        last = None
        while not self._stopping.is_set():
            pod = self.resources.get("pods", *key)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                return None
            try:
                return prepare(
                    pod,
                    self.resources.get,
                    self.options.root / key[0] / key[1],
                    self.options.programs,
                )
            except ContainerNotStarted as e:
                if (e.reason, e.message) != last:
                    last = (e.reason, e.message)
                    self._update(key, partial(job_pods.waiting, reason=e.reason, message=e.message))
            time.sleep(self.options.retry_s)
        return None

    def _collect(self, key: Key, process: subprocess.Popen[bytes]) -> None:
        """Read the container's output into its log, noting every process it starts meanwhile."""
        assert process.stdout is not None
        watcher = threading.Thread(target=self._note_descendants, args=(key, process), daemon=True)
        watcher.start()
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._lock:
                self._logs[key].append((time.time(), line))
        process.stdout.close()

    def _note_descendants(self, key: Key, process: subprocess.Popen[bytes]) -> None:
        while process.poll() is None:
            with contextlib.suppress(psutil.Error):
                found = psutil.Process(process.pid).children(recursive=True)
                with self._lock:
                    self._seen[key].update(found)
            time.sleep(0.25)

    def _finish(self, key: Key, code: int, failure: StartFailure | None = None) -> None:
        with self._lock:
            self._processes.pop(key, None)
            leftovers = self._seen.pop(key, set())
        # The container is gone, and with it every process it left behind.
        _signal_all(leftovers, signal.SIGKILL)
        reason, message = ("StartError", str(failure)) if failure else (None, None)
        if self._update(
            key, lambda pod: job_pods.terminated(pod, code, self.clock(), reason, message)
        ):
            self.on_exit(*key)

    def _update(self, key: Key, change: Callable[[Body], object]) -> bool:
        return self.resources.update("pods", key[0], key[1], change) is not None

    def _kill(self, key: Key, process: subprocess.Popen[bytes], grace_s: float) -> None:
        with self._lock:
            seen = set(self._seen.get(key, set()))
        with contextlib.suppress(psutil.Error):
            seen.update(psutil.Process(process.pid).children(recursive=True))
        everyone = {p for p in seen if _alive(p)}
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        _signal_all(everyone, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        _signal_all({p for p in everyone if _alive(p)}, signal.SIGKILL)


class StartFailure(Exception):
    """The container's process could not be started (its program missing, not executable)."""


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _signal_all(processes: set[psutil.Process], signum: signal.Signals) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.is_running():
                process.send_signal(signum)
