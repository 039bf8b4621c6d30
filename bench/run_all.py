"""Time `tenancy-diag run all` against the naive way: papermill then nbconvert, one by one.

Ours:  tenancy-diag run all --sample --incident bench --out DIR (five notebooks, one per core
       at once, each rendered to offline HTML; then summary, index and manifest).
Naive: per notebook in notebooks/, the papermill CLI with the parameters the runner passes for
       the sample replay (-p end, lookback, incident_start, replay_dir, findings_path, ...),
       then `jupyter nbconvert --to html`, one command after the other.

Both replay the recorded sample (tenancy_diag/data/sample/): same data, no servers. Runs
alternate (ours, naive, ours...) to share the machine's noise. Reported: median and min wall
time, peak RSS summed over each side's process tree (sampled every 0.1 s), HTML size and same
findings per notebook, and the ratio naive/ours; timings are never asserted.
Exit 0 when every command ran, 1 when one failed (its folder is kept), 2 without the sample.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tenancy_diag.running.catalog import subsystem_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SAMPLE = ROOT / "tenancy_diag" / "data" / "sample"
BIN = Path(sys.executable).parent  # the venv's console scripts: tenancy-diag, papermill, jupyter
INCIDENT = "bench"
#: Seconds between memory samples; short runs (nbconvert) may peak between two samples.
SAMPLE_EVERY_S = 0.1
# The five that `run all` runs; notebooks/ also holds the remediation and postmortem ones.
NAMES = sorted(subsystem_notebooks().values())

#: What one side's run leaves: its peak RSS, and per notebook its HTML and findings files.
Outcome = tuple[int, dict[str, tuple[Path, Path]]]


@dataclass
class Side:
    name: str
    label: str
    run: Callable[[Path, dict, float], Outcome]
    seconds: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)  # bytes, summed over the process tree
    html: dict[str, int] = field(default_factory=dict)  # notebook -> bytes, from the last run
    findings: dict[str, dict] = field(default_factory=dict)  # notebook -> verdict, last run

    def measure(self, out: Path, window: dict, timeout_s: float) -> None:
        out.mkdir()
        started = time.perf_counter()
        peak, files = self.run(out, window, timeout_s)
        seconds = time.perf_counter() - started
        self.seconds.append(seconds)
        self.peak_rss.append(peak)
        for nb, (html, findings) in files.items():
            self.html[nb] = html.stat().st_size
            self.findings[nb] = verdict(findings)
        print(f"  {self.name:<6} {seconds:7.1f} s  peak {peak / 2**20:6.0f} MiB", file=sys.stderr)


class CommandFailed(Exception):
    pass


def run_tree(command: list[str], log: Path, timeout_s: float) -> int:
    """Run ``command`` to its end; returns the peak RSS (bytes) of it and its descendants."""
    with log.open("ab") as out:
        out.write(f"$ {' '.join(command)}\n".encode())
        out.flush()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline, peak = time.monotonic() + timeout_s, 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            if time.monotonic() > deadline:
                kill_tree(proc)
                raise CommandFailed(f"{command[0]} ran longer than {timeout_s:.0f} s; see {log}")
            time.sleep(SAMPLE_EVERY_S)
    if proc.returncode != 0:
        raise CommandFailed(f"{Path(command[0]).name} exited {proc.returncode}; see {log}")
    return peak


def tree_rss(pid: int) -> int:
    # Summed RSS counts shared pages once per process, so it overstates a little on both sides.
    total = 0
    with contextlib.suppress(psutil.Error):
        parent = psutil.Process(pid)
        for p in (parent, *parent.children(recursive=True)):
            with contextlib.suppress(psutil.Error):  # ended between listing and reading
                total += p.memory_info().rss
    return total


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    # Only the processes this bench started: the command and its descendants, by PID.
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
    proc.kill()
    proc.wait()


def run_ours(out: Path, window: dict, timeout_s: float, extra: Sequence[str] = ()) -> Outcome:
    # The runner reads the window from the sample itself; naive needs it spelled out.
    command = [str(BIN / "tenancy-diag"), "run", "all", "--sample", "--incident", INCIDENT]
    command += ["--out", str(out), *extra]
    peak = run_tree(command, out / "bench.log", timeout_s)
    bundle = next((out / INCIDENT).iterdir())  # one run, one bundle
    return peak, {
        nb: (bundle / "html" / f"{nb}.html", bundle / "findings" / f"{nb}.json") for nb in NAMES
    }


def run_naive(out: Path, window: dict, timeout_s: float) -> Outcome:
    peak, files, log = 0, {}, out / "bench.log"
    for nb in NAMES:
        executed, findings = out / f"{nb}.ipynb", out / f"{nb}.findings.json"
        papermill = [str(BIN / "papermill"), str(NOTEBOOKS / f"{nb}.ipynb"), str(executed)]
        params = {**window, "incident_id": INCIDENT, "findings_path": str(findings)}
        params["replay_dir"] = str(SAMPLE / "snapshots" / nb)
        for key, value in params.items():  # the sample's window: end, lookback, incident_start
            papermill += ["-p", key, str(value)]
        peak = max(peak, run_tree(papermill, log, timeout_s))
        nbconvert = [str(BIN / "jupyter"), "nbconvert", "--to", "html", str(executed)]
        nbconvert += ["--output-dir", str(out)]
        peak = max(peak, run_tree(nbconvert, log, timeout_s))
        files[nb] = (out / f"{nb}.html", findings)
    return peak, files


def verdict(path: Path) -> dict:
    """The findings without the one field that differs between two runs of the same data."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("generated_at", None)
    return data


def report(ours: Side, naive: Side, sample: dict, repeat: int) -> None:
    cores = os.cpu_count()
    print(f"\nsample {sample['incident']}, {repeat} run(s) per side, alternated, {cores} cores")
    print(f"{'side':<38}{'median s':>10}{'min s':>9}{'peak RSS MiB':>14}")
    for side in (ours, naive):
        times = f"{statistics.median(side.seconds):>10.1f}{min(side.seconds):>9.1f}"
        print(f"{side.label:<38}{times}{max(side.peak_rss) / 2**20:>14.0f}")
    median = statistics.median(naive.seconds) / statistics.median(ours.seconds)
    fastest = min(naive.seconds) / min(ours.seconds)
    print(f"ratio naive/ours: median {median:.2f}x, min {fastest:.2f}x")
    print(f"\n{'notebook':<26}{'ours HTML KiB':>14}{'naive HTML KiB':>16}  findings")
    for nb in ours.html:
        same = "same" if ours.findings[nb] == naive.findings.get(nb) else "DIFFER"
        print(f"{nb:<26}{ours.html[nb] / 1024:>14.0f}{naive.html[nb] / 1024:>16.0f}  {same}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (default 3)")
    parser.add_argument("--out", type=Path, help="keep the runs in a new folder under OUT")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per command")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        sample = json.loads((SAMPLE / "sample.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        parser.exit(2, f"bench: the sample at {SAMPLE} is unreadable ({e}); record it\n")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tenancy-bench-", dir=args.out))
    ours = Side("ours", "ours: tenancy-diag run all --sample", run_ours)
    naive = Side("naive", "naive: (papermill; nbconvert) x5", run_naive)
    try:
        for i in range(1, args.repeat + 1):
            print(f"run {i}/{args.repeat} in {work}", file=sys.stderr)
            for side in (ours, naive):
                side.measure(work / f"{side.name}-{i}", sample["parameters"], args.timeout)
    except CommandFailed as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    report(ours, naive, sample, args.repeat)
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
