"""Kernels forked from one process that has already imported what every notebook imports.

A kernel started the usual way is a new interpreter: about 0.4 s to start ipykernel, then
another second or more for pandas, matplotlib and the library, on every notebook, every run.
The zygote pays that once. It is started with the kernels' environment, imports ipykernel,
pandas, matplotlib and ``tenancy_diag.notebook``, draws one figure off-screen (font caches),
and then only forks: each child becomes a brand-new ipykernel for one connection file. A child
shares the zygote's imported modules copy-on-write and starts in about a tenth of the time.

What a forked kernel shares with a cold one, and why it is safe:

- **Nothing of another notebook.** The zygote never runs notebook code; each child starts from
  the zygote's state (imports only), and is killed after its one notebook like any pool kernel.
- **No threads at fork.** The zygote imports modules and draws with the Agg canvas; it starts no
  thread (it checks, and refuses to fork if one exists), so a child holds no lock another thread
  held. matplotlib's backend is left unresolved: ipykernel's inline backend is chosen in the
  child, by the child's shell, exactly as in a cold kernel.
- **A session, a log and a death of its own.** Each child calls ``setsid`` (a Ctrl-C meant for
  the runner does not interrupt its cells), writes stdout and stderr to the log it is given,
  and asks Linux to SIGKILL it when the zygote dies; the zygote is killed, the same way, when the
  thread that started it ends. The zygote reaps its children as they exit.

Protocol, one JSON object per line: the runner writes ``{"connection_file", "log", "cwd",
"env"}`` on the zygote's stdin; the zygote answers ``{"pid": N}`` or ``{"error": "..."}`` on its
stdout. End of stdin ends the zygote.

Run as ``python -m tenancy_diag.running.zygote``; only :mod:`.forking` starts it.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
from typing import Any

import setproctitle

_PR_SET_PDEATHSIG = 1
#: The backend ipykernel sets when none is chosen; set before matplotlib is imported, since
#: matplotlib reads it at import, and a child's shell resolves it on its first figure.
_INLINE = "module://matplotlib_inline.backend_inline"


def preload() -> None:
    """Import what every notebook imports, and warm the caches a first figure fills."""
    os.environ.setdefault("MPLBACKEND", _INLINE)
    import ipykernel.kernelapp  # noqa: F401, PLC0415
    import matplotlib.pyplot  # noqa: F401, PLC0415
    import pandas as pd  # noqa: PLC0415
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    import tenancy_diag.notebook  # noqa: F401, PLC0415

    pd.DataFrame({"a": [1.0, 2.0]}).describe()
    figure = Figure()
    figure.add_subplot().plot([0, 1], [0, 1], label="warm")
    FigureCanvasAgg(figure).draw()  # type: ignore[no-untyped-call]


def main() -> int:
    # setproctitle finds the process's argv memory on its first call, which must come before
    # a child clears its environment (the title may then grow into the old environment).
    setproctitle.getproctitle()
    preload()
    # Children are reaped by the kernel as they exit: the runner is not their parent and
    # never waits for them, and a zombie would look alive to it.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner stops it by closing stdin
    me = os.getpid()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            if threading.active_count() > 1:
                raise RuntimeError("the zygote has started a thread; forking it is unsafe")
            pid = os.fork()
        except Exception as e:  # the runner starts that kernel the usual way instead
            _answer({"error": f"{type(e).__name__}: {e}"})
            continue
        if pid == 0:
            _become_kernel(request, me)  # never returns
        _answer({"pid": pid})
    return 0


def _answer(reply: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


def _become_kernel(request: dict[str, Any], zygote: int) -> None:
    try:
        os.setsid()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != zygote:
            os._exit(1)  # the zygote died before prctl: nobody would stop this kernel
        for signum in (signal.SIGCHLD, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.setdefault("MPLBACKEND", _INLINE)
        # ipykernel read JPY_PARENT_PID when the zygote imported it: its parent is named here,
        # so it polls the zygote as a cold kernel polls the runner that launched it.
        os.environ["JPY_PARENT_PID"] = str(zygote)
        parent = f"--IPKernelApp.parent_handle={zygote}"
        sys.argv = ["ipykernel_launcher", "-f", request["connection_file"], parent]
        # What `ps` shows: a kernel, as a cold one's command line reads, not the zygote's.
        setproctitle.setproctitle(" ".join([sys.executable, "-m", *sys.argv]))
        from ipykernel.kernelapp import IPKernelApp  # noqa: PLC0415

        IPKernelApp.launch_instance()
    except BaseException:
        import traceback  # noqa: PLC0415

        traceback.print_exc()
        os._exit(1)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
