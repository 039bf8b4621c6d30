"""Warm kernels: one notebook each, then discarded; papermill's behaviour kept; no secrets.

Timings are the bench's business (bench/warm_pool.py); nothing here asserts one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tenancy_diag.running.execution import NotebookJob, execute
from tenancy_diag.running.warming import KernelPool, PoolSettings, kernel_environment

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
SECRET = "TENANCY_DIAG_SERVICE_TOKEN"

PROBE = """\
import json as _json, os as _os, pathlib as _pathlib
import matplotlib.pyplot as _plt
_figure = _plt.figure()  # the backend resolves on the first figure, as in a notebook
_plt.close(_figure)
_pathlib.Path(findings_path).with_suffix(".probe.json").write_text(_json.dumps({
    "pid": _os.getpid(),
    "ppid": _os.getppid(),
    "sid": _os.getsid(0),
    "backend": _plt.get_backend(),
    "cwd": _os.getcwd(),
    "env": sorted(_os.environ),
    "names": sorted(n for n in globals() if not n.startswith("_")),
}))
"""


def job_for(source: Path, tmp_path: Path, **parameters: object) -> NotebookJob:
    root = tmp_path / "bundle"
    for folder in ("notebooks", "findings", "html", "logs"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    name = source.stem
    return NotebookJob(
        name=name,
        subsystem="fixture",
        incident="INC-1",
        source=source,
        parameters={"findings_path": str(root / "findings" / f"{name}.json"), **parameters},
        cwd=root,
        output=root / "notebooks" / f"{name}.ipynb",
        findings=root / "findings" / f"{name}.json",
        html=root / "html" / f"{name}.html",
        kernel_log=root / "logs" / f"{name}.log",
        cell_timeout_s=60,
    )


def probing(tmp_path: Path) -> Path:
    nb = nbformat.read(FIXTURES / "ok.ipynb", as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell(PROBE))
    path = tmp_path / "probing.ipynb"
    nbformat.write(nb, path)
    return path


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state


@pytest.fixture(params=[True, False], ids=["forked", "unforked"])
def pool(request):
    environ = {**os.environ, SECRET: "s3cr3t-service-token"}
    settings = PoolSettings(size=1, max_kernels=1, fork=request.param)
    with KernelPool(settings, environ=environ) as started:
        yield started


def test_a_pool_kernel_runs_one_notebook_with_papermill_and_is_then_discarded(pool, tmp_path):
    job = job_for(probing(tmp_path), tmp_path, tenant="t-000123")
    outcome = execute(job, pool=pool)
    assert outcome.ran, outcome.error
    probe = json.loads(job.findings.with_suffix(".probe.json").read_text())
    assert not alive(probe["pid"])
    assert pool.started == 1
    assert pool.take() is None  # its one kernel is spent, and a kernel never comes back
    executed = nbformat.read(job.output, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "t-000123" in injected[0].source
    assert probe["cwd"] == str(job.cwd)
    # Forked or not, a session of its own, and plots inline as in any kernel Jupyter starts.
    assert probe["sid"] == probe["pid"]
    assert probe["backend"] == "module://matplotlib_inline.backend_inline"
    zygote = pool._zygote
    if pool.config.fork:
        assert zygote is not None and probe["ppid"] == zygote.process.pid
    else:
        assert zygote is None and probe["ppid"] == os.getpid()
    # Nothing from the warm-up is left in the notebook's namespace.
    assert not {"pd", "plt", "pandas", "matplotlib"} & set(probe["names"])
    assert job.kernel_log.exists()


def test_pool_kernels_never_see_the_service_secret(pool, tmp_path):
    job = job_for(probing(tmp_path), tmp_path)
    assert execute(job, pool=pool).ran
    env = json.loads(job.findings.with_suffix(".probe.json").read_text())["env"]
    assert SECRET not in env
    assert "PATH" in env


def test_the_environment_is_an_allowlist():
    env = kernel_environment(
        {
            "PATH": "/bin",
            "AWS_REGION": "us-east-1",
            SECRET: "x",
            "PAGERDUTY_KEY": "y",
            "LC_ALL": "C",
        }
    )
    assert env == {"PATH": "/bin", "AWS_REGION": "us-east-1", "LC_ALL": "C"}


def test_a_kernel_is_handed_out_once():
    with KernelPool(PoolSettings(size=1, max_kernels=1)) as pool:
        kernel = pool.take()
        assert kernel is not None
        try:
            with pytest.raises(RuntimeError, match="already ran a notebook"):
                kernel.claim()
        finally:
            kernel.discard()


def test_a_notebook_failing_on_a_pool_kernel_leaves_its_partial_notebook_and_findings(
    pool, tmp_path
):
    job = job_for(FIXTURES / "raises.ipynb", tmp_path)
    outcome = execute(job, pool=pool)
    assert not outcome.ran
    assert "ValueError" in (outcome.error or "")
    executed = job.output.read_text()
    assert "before the failure" in executed
    assert "hunter2" not in executed
    findings = json.loads(job.findings.read_text())
    assert findings["status"] == "error"
    assert "ValueError" in json.dumps(findings)


RUNNER = """\
import sys, time
from tenancy_diag.running.warming import KernelPool, PoolSettings
pool = KernelPool(PoolSettings(size=2, max_kernels=2)).start()
pids = [pool.take().pid for _ in range(2)]
print(" ".join(map(str, pids)), flush=True)
time.sleep(120)
"""


def test_kill_9_of_the_runner_kills_its_pool_kernels():
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        pids = [int(p) for p in runner.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(p) for p in pids)
    finally:
        if runner.poll() is None:
            runner.kill()


def test_a_cell_over_the_timeout_on_a_pool_kernel_is_stopped_and_reported(pool, tmp_path):
    job = job_for(FIXTURES / "slow.ipynb", tmp_path)
    job = dataclasses.replace(job, cell_timeout_s=2)
    outcome = execute(job, pool=pool)
    assert not outcome.ran
    assert "CellTimeoutError" in (outcome.error or "")
    assert job.output.is_file()
    assert json.loads(job.findings.read_text())["status"] == "error"


def test_a_kernel_over_the_memory_ceiling_is_discarded_and_the_notebook_runs_cold(tmp_path):
    with KernelPool(PoolSettings(size=1, kernel_memory_mb=1)) as pool:
        job = job_for(probing(tmp_path), tmp_path)
        outcome = execute(job, pool=pool)
        assert outcome.ran, outcome.error
        assert any("over the pool's 1 MB" in p for p in pool.problems)
        probe = json.loads(job.findings.with_suffix(".probe.json").read_text())
        assert "pd" not in probe["names"]


def test_the_zygote_sees_no_secret_and_a_dead_one_is_replaced(tmp_path):
    environ = {**os.environ, SECRET: "s3cr3t-service-token"}
    with KernelPool(PoolSettings(size=1), environ=environ) as pool:
        first = pool.take()
        assert first is not None and pool._zygote is not None
        zygote = pool._zygote.process.pid
        assert SECRET not in Path(f"/proc/{zygote}/environ").read_text().split("\0")
        first.discard()
        # The replacement is forked at once; the zygote's death (OOM killer, an operator)
        # takes it too: it must be noticed when taken, and never run a notebook.
        deadline = time.monotonic() + 60
        while pool._ready.empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        waiting = pool._ready.queue[0]
        os.kill(zygote, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(waiting.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        job = job_for(probing(tmp_path), tmp_path)
        outcome = execute(job, pool=pool)
        assert outcome.ran, outcome.error
        problems = " ".join(pool.problems)
        assert "died before it was used" in problems, pool.problems
        assert "the kernel zygote exited" in problems, pool.problems
        probe = json.loads(job.findings.with_suffix(".probe.json").read_text())
        assert probe["ppid"] == pool._zygote.process.pid != zygote  # a new zygote forked it
