"""Issue 13's goals, each measured beside the figure the issue started from, in one run.

    python bench/evidence_in_seconds.py                 # about 6 min on 2 cores
    python bench/evidence_in_seconds.py --burst-baseline --scale   # + the subprocess burst
                                                                    # and 200 vs 10,000 tenants

1. Alert to sealed bundle, one subsystem: `serve --executor subprocess` and `serve --executor
   pool` side by side, each sent --alerts-each alerts one after another (a policy alert, no
   region label, replaying the shipped sample); the time from the POST to the bundle's
   manifest.json. A pause between alerts lets the pool refill, as between real incidents.
2. `run all --sample` against the naive loop (papermill CLI, then `jupyter nbconvert`, per
   notebook; bench/run_all.py): ours cold (`--warm-kernels 0`), ours as shipped (kernels started
   first), naive; alternated, --repeat times; the same findings on every side are checked.
3. A burst of --alerts distinct alerts into `serve --executor pool` (bench/service_burst.py):
   runs per minute; with --burst-baseline the subprocess executor too.
4. Memory: the RSS of each warm kernel of an idle pool of --warm-kernels, against N x 250 MB.
5. Imports (`python -X importtime`), at HEAD and before issue 13 (bench/warm_pool.py).
6. With --scale: bench/scale_tenants.py at 200 and 10,000 tenants (minutes: the sandbox
   backfills 10,000 tenants' history).

Timings are printed, never asserted. Exit 0 when every command ran, 1 when one failed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from run_all import SAMPLE, CommandFailed, Side, run_naive, run_ours
from service_burst import Serve, alert, burst
from warm_pool import BEFORE, report_imports, run_cold

HERE = Path(__file__).resolve().parent
#: The figures the issue measured before any of its work (2 cores, machine otherwise idle).
TODAY = {
    "alert_to_bundle_s": 11.0,
    "naive_ratio": 2.70,
    "burst_runs_per_min": 10.4,
    "tenants_ratio": 1.26,
    "peak_mb_per_process": 219,
}
GOALS = {
    "alert_to_bundle_s": 3.0,
    "naive_ratio": 5.0,
    "burst_runs_per_min": 30.0,
    "kernel_mb": 250,
    "tenants_ratio": 1.5,
    "peak_mb_per_process": 500,
}
#: Seconds between two alerts of section 1: the pool refills one kernel in about two.
PAUSE_S = 4.0


def alert_to_bundle(root: Path, executor: str, alerts: int) -> list[float]:
    """Seconds from each alert's POST to its bundle's manifest, one alert at a time."""
    serve = Serve(root, workers=2, executor=executor)
    seconds = []
    try:
        time.sleep(PAUSE_S)  # the pool's first kernels; the subprocess side waits the same
        for i in range(alerts):
            before = set(serve.out.glob("*/*/manifest.json"))
            started = time.monotonic()
            serve.post(alert(1000 + i, subsystem="policy"))
            while not set(serve.out.glob("*/*/manifest.json")) - before:
                if time.monotonic() - started > 300:
                    raise CommandFailed(f"no bundle after 300 s; see {root / 'serve.log'}")
                time.sleep(0.02)
            seconds.append(time.monotonic() - started)
            print(f"  {executor:<10} alert {i + 1}: {seconds[-1]:.2f} s", file=sys.stderr)
            time.sleep(PAUSE_S)
    finally:
        serve.stop()
    return seconds


def pool_memory(root: Path, kernels: int) -> dict[str, list[float]]:
    """Memory (MB) of each kernel, and of the zygote, of an idle `serve --executor pool` once
    its kernels are warm: RSS (counting the pages a forked kernel shares with its zygote), PSS
    (shared pages split between their sharers) and USS (its own pages)."""
    serve = Serve(root, workers=2, executor="pool")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len(_processes(serve.proc.pid, "ipykernel_launcher")) >= kernels:
                time.sleep(3.0)  # the warm-up cell ends after the process appears
                found = {
                    "kernel": _processes(serve.proc.pid, "ipykernel_launcher"),
                    "zygote": _processes(serve.proc.pid, "running.zygote"),
                }
                return {
                    f"{what}_{kind}": [getattr(p.memory_full_info(), kind) / 1e6 for p in procs]
                    for what, procs in found.items()
                    for kind in ("rss", "pss", "uss")
                }
            time.sleep(0.2)
        raise CommandFailed(f"the pool did not start {kernels} kernels in 120 s")
    finally:
        serve.stop()


def _processes(pid: int, marker: str) -> list[psutil.Process]:
    try:
        tree = psutil.Process(pid).children(recursive=True)
        return [p for p in tree if marker in " ".join(p.cmdline())]
    except psutil.Error:
        return []


def _line(name: str, today: str, now: str, goal: str, met: bool | None) -> None:
    mark = "-" if met is None else ("met" if met else "NOT met")
    print(f"{name:<44}{today:>12}{now:>12}{goal:>12}  {mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="run-all runs per side (3)")
    parser.add_argument("--alerts-each", type=int, default=5, help="section 1 alerts (5)")
    parser.add_argument("--alerts", type=int, default=50, help="burst size (50)")
    parser.add_argument("--warm-kernels", type=int, default=2, help="the pool's size (2)")
    parser.add_argument("--burst-baseline", action="store_true", help="burst subprocess too")
    parser.add_argument("--scale", action="store_true", help="run bench/scale_tenants.py")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per command")
    args = parser.parse_args(argv)
    sample = json.loads((SAMPLE / "sample.json").read_text(encoding="utf-8"))
    work = Path(tempfile.mkdtemp(prefix="tenancy-bench-seconds-"))
    now: dict[str, Any] = {}
    try:
        print("1. alert to sealed bundle", file=sys.stderr)
        latency = {
            ex: alert_to_bundle(work / f"latency-{ex}", ex, args.alerts_each)
            for ex in ("subprocess", "pool")
        }
        print("2. run all --sample", file=sys.stderr)
        sides = [
            Side("cold", "ours, --warm-kernels 0", run_cold),
            Side("ours", "ours, as shipped", run_ours),
            Side("naive", "naive: (papermill; nbconvert) x5", run_naive),
        ]
        for i in range(1, args.repeat + 1):
            for side in sides:
                side.measure(work / f"{side.name}-{i}", sample["parameters"], args.timeout)
        print("3. burst", file=sys.stderr)
        bursts = {"pool": _burst(work / "burst-pool", "pool", args.alerts)}
        print(f"  pool: {json.dumps(bursts['pool'])}", file=sys.stderr)
        if args.burst_baseline:
            bursts["subprocess"] = _burst(work / "burst-subprocess", "subprocess", args.alerts)
            print(f"  subprocess: {json.dumps(bursts['subprocess'])}", file=sys.stderr)
        print("4. memory", file=sys.stderr)
        memory = pool_memory(work / "memory", args.warm_kernels)
        print(f"  {json.dumps(memory)}", file=sys.stderr)
        kernels_mb = memory["kernel_pss"]
        scale = _scale(work) if args.scale else None
    except (CommandFailed, subprocess.CalledProcessError, RuntimeError) as e:
        print(f"bench: {e}; kept {work}", file=sys.stderr)
        return 1

    print("\n1. Alert to sealed bundle, one subsystem (s), one alert at a time")
    for ex, seconds in latency.items():
        print(
            f"  serve --executor {ex:<11} median {statistics.median(seconds):5.2f}"
            f"  min {min(seconds):5.2f}  max {max(seconds):5.2f}  (n={len(seconds)})"
        )
    print(f"\n2. run all --sample, {args.repeat} run(s) per side, alternated")
    for side in sides:
        print(
            f"  {side.label:<36} median {statistics.median(side.seconds):5.1f} s"
            f"  min {min(side.seconds):5.1f} s  peak tree {max(side.peak_rss) / 2**20:5.0f} MiB"
        )
    cold, ours, naive = (statistics.median(s.seconds) for s in sides)
    same = all(s.findings == sides[0].findings for s in sides)
    print(
        f"  naive/ours {naive / ours:.2f}x, naive/cold {naive / cold:.2f}x, findings "
        f"{'the same on every side' if same else 'DIFFER'}"
    )
    print("\n3. Burst")
    for ex, result in bursts.items():
        print(f"  serve --executor {ex:<11} {json.dumps(result)}")
    print(f"\n4. Idle pool of {args.warm_kernels} kernels, MB (10^6 bytes) per process:")
    for name, values in memory.items():
        print(f"  {name:<12} {', '.join(f'{mb:.0f}' for mb in values)}")
    print(
        f"  kernels' PSS sum {sum(kernels_mb):.0f} MB (limit "
        f"{args.warm_kernels * GOALS['kernel_mb']} MB); with the zygote's "
        f"{sum(kernels_mb) + sum(memory['zygote_pss']):.0f} MB"
    )
    if scale:
        print(f"\n6. Scale: {json.dumps(scale)}")

    now["alert_to_bundle_s"] = statistics.median(latency["pool"])
    now["naive_ratio"] = naive / ours
    now["burst_runs_per_min"] = bursts["pool"]["runs_per_min"]
    print(f"\n{'goal':<44}{'today':>12}{'now':>12}{'goal':>12}")
    _line(
        "alert to bundle, warm pool (s)",
        f"{TODAY['alert_to_bundle_s']:.1f}",
        f"{now['alert_to_bundle_s']:.2f}",
        f"<= {GOALS['alert_to_bundle_s']:.0f}",
        now["alert_to_bundle_s"] <= GOALS["alert_to_bundle_s"],
    )
    _line(
        "run all --sample, naive/ours",
        f"{TODAY['naive_ratio']:.2f}x",
        f"{now['naive_ratio']:.2f}x",
        f">= {GOALS['naive_ratio']:.0f}x",
        now["naive_ratio"] >= GOALS["naive_ratio"],
    )
    _line(
        f"burst of {args.alerts} alerts (runs/min)",
        f"{TODAY['burst_runs_per_min']:.1f}",
        f"{now['burst_runs_per_min']:.1f}",
        f">= {GOALS['burst_runs_per_min']:.0f}",
        now["burst_runs_per_min"] >= GOALS["burst_runs_per_min"],
    )
    _line(
        f"pool of {args.warm_kernels} kernels, PSS (MB)",
        "-",
        f"{sum(kernels_mb):.0f}",
        f"<= {args.warm_kernels * GOALS['kernel_mb']}",
        sum(kernels_mb) <= args.warm_kernels * GOALS["kernel_mb"],
    )
    if scale:
        ratio, peak = scale.get("ratio"), scale.get("peak_mb_per_process")
        _line(
            "10,000 vs 200 tenants, time",
            f"{TODAY['tenants_ratio']:.2f}x",
            f"{ratio:.2f}x" if ratio else "?",
            f"<= {GOALS['tenants_ratio']}x",
            ratio <= GOALS["tenants_ratio"] if ratio else None,
        )
        _line(
            "10,000 tenants, peak per process (MB)",
            f"{TODAY['peak_mb_per_process']}",
            f"{peak:.0f}" if peak else "?",
            f"< {GOALS['peak_mb_per_process']}",
            peak < GOALS["peak_mb_per_process"] if peak else None,
        )
    print()
    report_imports(BEFORE, 3, work)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _burst(root: Path, executor: str, alerts: int) -> dict[str, Any]:
    serve = Serve(root, workers=2, executor=executor, capacity=max(100, alerts))
    try:
        time.sleep(PAUSE_S)
        return burst(serve, alerts)
    finally:
        serve.stop()


def _scale(work: Path) -> dict[str, Any]:
    """The last JSON line of bench/scale_tenants.py (200 and 10,000 tenants)."""
    done = subprocess.run(
        [sys.executable, str(HERE / "scale_tenants.py"), "--tenants", "200,10000"],
        capture_output=True,
        text=True,
        check=True,
        cwd=work,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {}
    found = json.loads(lines[-1])
    return {
        "ratio": found.get("ratio_median"),
        "peak_mb_per_process": found.get("peak_process_mb"),
        "storm_found": all(c.get("storm_found") for c in found.get("counts", [])),
        "counts": found.get("counts"),
    }


if __name__ == "__main__":
    sys.exit(main())
