"""Warm kernels and lean imports, side by side: `run all --sample` cold, warm, and naive.

Cold:  tenancy-diag run all --sample --warm-kernels 0 (each notebook starts its own interpreter).
Warm:  the same with --warm-kernels 5 (five kernels forked and warmed while the run is planned).
(bench/evidence_in_seconds.py measures the shipped default and every goal of issue 13.)
Naive: per notebook, the papermill CLI then `jupyter nbconvert --to html` (bench/run_all.py).

Runs alternate (cold, warm, naive, cold...) to share the machine's noise; reported: median and
min wall time, peak RSS of each side's process tree, ratios, and same findings per notebook.

Then the import figures, from `python -X importtime` (the sum of top-level cumulative times):
`import tenancy_diag.cli; build_parser()` (what `tenancy-diag --help` imports), `import
tenancy_diag.running`, `import papermill` bare and through the runner, and `import
tenancy_diag.notebook` (what each kernel imports), at HEAD and at --before (default: the commit
before issue 13's first), the old code extracted with `git archive` into a temporary folder.
Timings are printed, never asserted. Exit 0 when every command ran, 1 when one failed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from run_all import SAMPLE, CommandFailed, Side, run_naive, run_ours

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "a462747"  # the commit before issue 13's first
WARM_KERNELS = 5

IMPORTS = {
    "cli + build_parser (--help)": "import tenancy_diag.cli as c; c.build_parser()",
    "tenancy_diag.running": "import tenancy_diag.running",
    "papermill (bare)": "import papermill",
    "papermill via the runner": (
        "from tenancy_diag.importing import import_papermill; import_papermill()"
    ),
    "tenancy_diag.notebook (kernel)": "import tenancy_diag.notebook",
}


def run_warm(out: Path, window: dict, timeout_s: float) -> tuple:
    return run_ours(out, window, timeout_s, extra=["--warm-kernels", str(WARM_KERNELS)])


def run_cold(out: Path, window: dict, timeout_s: float) -> tuple:
    return run_ours(out, window, timeout_s, extra=["--warm-kernels", "0"])


def import_ms(code: str, pythonpath: Path | None, repeat: int) -> float | None:
    """Median over ``repeat`` fresh interpreters of the top-level cumulative import time, ms."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    totals = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            capture_output=True,
            text=True,
            env=env,
            cwd=tempfile.gettempdir(),
            check=False,
        )
        if done.returncode != 0:
            return None  # the old code may lack the module (importing.py is new)
        totals.append(
            sum(
                int(line.split("|")[1])
                for line in done.stderr.splitlines()
                if line.startswith("import time:")
                and "|" in line
                and not line.split("|")[2].startswith("  ")
                and "cumulative" not in line
            )
        )
    return statistics.median(totals) / 1000


def old_code(commit: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "tenancy_diag"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def report_imports(before: str, repeat: int, work: Path) -> None:
    old = old_code(before, work / "before")
    check = "import tenancy_diag, sys; print(tenancy_diag.__file__)"
    where = subprocess.run(
        [sys.executable, "-c", check],
        env={**os.environ, "PYTHONPATH": str(old)},
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    ).stdout.strip()
    print(
        f"\npython -X importtime, median of {repeat} (old code from git archive {before}: {where})"
    )
    print(f"{'import':<34}{'before ms':>11}{'after ms':>10}")
    for label, code in IMPORTS.items():
        after = import_ms(code, None, repeat)
        previous = import_ms(code, old, repeat)
        show = [f"{v:>10.0f}" if v is not None else f"{'-':>10}" for v in (previous, after)]
        print(f"{label:<34} {show[0]}{show[1]}")


def report(sides: list[Side], repeat: int) -> None:
    print(f"\n`run all --sample`, {repeat} run(s) per side, alternated, {os.cpu_count()} cores")
    print(f"{'side':<44}{'median s':>10}{'min s':>9}{'peak RSS MiB':>14}")
    for side in sides:
        times = f"{statistics.median(side.seconds):>10.1f}{min(side.seconds):>9.1f}"
        print(f"{side.label:<44}{times}{max(side.peak_rss) / 2**20:>14.0f}")
    cold, warm, naive = (statistics.median(s.seconds) for s in sides)
    print(
        f"ratio naive/cold {naive / cold:.2f}x, naive/warm {naive / warm:.2f}x, "
        f"cold/warm {cold / warm:.2f}x (issue 13 goal: naive/ours >= 5x; before: 2.70x)"
    )
    for nb in sides[0].findings:
        same = all(s.findings.get(nb) == sides[0].findings[nb] for s in sides)
        print(f"  {nb:<26} findings {'same' if same else 'DIFFER'} on all three sides")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (default 3)")
    parser.add_argument("--before", default=BEFORE, help="commit to compare imports with")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per command")
    parser.add_argument("--imports-only", action="store_true", help="skip the runs")
    args = parser.parse_args(argv)
    sample = json.loads((SAMPLE / "sample.json").read_text(encoding="utf-8"))
    work = Path(tempfile.mkdtemp(prefix="tenancy-bench-warm-"))
    sides = [
        Side("cold", "cold: ... --warm-kernels 0", run_cold),
        Side("warm", f"warm: ... --warm-kernels {WARM_KERNELS}", run_warm),
        Side("naive", "naive: (papermill; nbconvert) x5", run_naive),
    ]
    try:
        if not args.imports_only:
            for i in range(1, args.repeat + 1):
                print(f"run {i}/{args.repeat} in {work}", file=sys.stderr)
                for side in sides:
                    side.measure(work / f"{side.name}-{i}", sample["parameters"], args.timeout)
            report(sides, args.repeat)
        report_imports(args.before, max(3, args.repeat), work)
    except (CommandFailed, subprocess.CalledProcessError) as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
