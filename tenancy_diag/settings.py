"""Typed settings for every source, and the one place the environment is read.

Secrets (the admin API token, AWS credentials) come from the environment or files, never from
notebook parameters or CLI values that would land in evidence.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from tenancy_diag.errors import ConfigError

ENV_API_TOKEN = "TENANCY_API_TOKEN"
ENV_API_TOKEN_FILE = "TENANCY_API_TOKEN_FILE"
ENV_ACTOR = "TENANCY_DIAG_ACTOR"
ENV_REDACT_PATTERNS = "TENANCY_DIAG_REDACT_PATTERNS"
ENV_PLUGINS = "TENANCY_DIAG_PLUGINS"
ENV_NOTEBOOKS = "TENANCY_DIAG_NOTEBOOKS"
ENV_PARAMETERS = "TENANCY_DIAG_PARAMETERS"

#: What a run and its kernels need from the environment: the process basics, proxies and CA
#: bundles, the package's own settings and the admin API token (read by the runs); the
#: callers add the sources' endpoint variables. Anything else (a service token, a pager key)
#: is withheld, whatever it is called: an allowlist.
_RUN_ENVIRONMENT = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
        "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED", "VIRTUAL_ENV",
        "KUBECONFIG", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
        "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "MPLBACKEND",
        "MPLCONFIGDIR", "IPYTHONDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_PATH",
        "JUPYTER_RUNTIME_DIR", "COVERAGE_PROCESS_START",
        ENV_API_TOKEN, ENV_API_TOKEN_FILE, ENV_ACTOR, ENV_REDACT_PATTERNS, ENV_PLUGINS,
        ENV_NOTEBOOKS, ENV_PARAMETERS,
    }
)  # fmt: skip
#: Passed whole: locale settings, and AWS_* (the SQS source reads its credentials there).
_RUN_ENVIRONMENT_PREFIXES = ("LC_", "AWS_")


def run_environment(environ: Mapping[str, str], sources: Iterable[str] = ()) -> dict[str, str]:
    """The allowlisted part of ``environ`` a run or a kernel may see; ``sources`` names the
    source kinds' endpoint variables, allowed too."""
    allowed = _RUN_ENVIRONMENT | set(sources)
    return {
        name: value
        for name, value in environ.items()
        if name in allowed or name.startswith(_RUN_ENVIRONMENT_PREFIXES)
    }


@dataclass(frozen=True)
class PrometheusSettings:
    """Where Prometheus answers and how long one query may take."""

    url: str
    #: Client-side and server-side (``timeout=``) limit per query, seconds.
    timeout_s: float = 10.0
    #: Prometheus refuses range queries returning more points per series than this.
    max_points_per_series: int = 11_000
    #: Smallest step a range query uses, seconds (finer than the scrape interval adds nothing).
    min_step_s: int = 15


@dataclass(frozen=True)
class KubeSettings:
    """How to reach the cluster(s) serving the Tenancy pods."""

    #: The endpoint that means "the pod's own service account" instead of a kubeconfig file.
    IN_CLUSTER: ClassVar[str] = "in-cluster"

    #: Path to a kubeconfig; None uses the client's default lookup.
    kubeconfig: Path | None = None
    #: Use the pod's service account (token and CA mounted by Kubernetes), not a kubeconfig.
    in_cluster: bool = False
    #: Region -> kube context; empty means the current context serves every region.
    contexts_by_region: Mapping[str, str] = field(default_factory=dict)
    namespace: str = "tenancy"
    #: Pod log requests in flight at once.
    max_concurrency: int = 8
    #: Lines kept per container (the API's tailLines).
    tail_lines: int = 5_000
    #: Per-request timeout, seconds.
    timeout_s: float = 10.0


@dataclass(frozen=True)
class SqsSettings:
    """How to read dead-letter queues."""

    #: The endpoint that means AWS itself (each region's own SQS endpoint), not an override.
    AWS_ITSELF: ClassVar[str] = "aws"

    #: Override for every region's SQS endpoint (a local SQS-compatible server).
    endpoint_url: str | None = None
    #: Messages sampled per queue at most.
    sample_size: int = 100
    #: Safety net while peeking: a message read but not yet handed back reappears on its own
    #: after this many seconds even if the peek dies half-way, so nothing is ever lost.
    peek_visibility_timeout_s: int = 5
    #: Per-call timeout, seconds.
    timeout_s: float = 10.0


@dataclass(frozen=True)
class AdminApiSettings:
    """The Tenancy admin API; the token is read from the environment, never a parameter."""

    url: str
    token: str | None = field(default=None, repr=False)
    #: Per-request timeout, seconds.
    timeout_s: float = 10.0
    actor: str = "tenancy-diag"


@dataclass(frozen=True)
class AlertmanagerSettings:
    """Where Alertmanager answers (its API v2)."""

    url: str
    #: Per-request timeout, seconds.
    timeout_s: float = 10.0


def read_token(env: Mapping[str, str] | None = None) -> str | None:
    """The admin API token from ``TENANCY_API_TOKEN`` or the file ``TENANCY_API_TOKEN_FILE``."""
    env = os.environ if env is None else env
    if env.get(ENV_API_TOKEN):
        return env[ENV_API_TOKEN].strip()
    path = env.get(ENV_API_TOKEN_FILE)
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(
                f"cannot read {ENV_API_TOKEN_FILE}={path} ({e.strerror}); "
                "point it at a readable file"
            ) from e
    return None


def actor(env: Mapping[str, str] | None = None) -> str:
    """Who is acting, for audit trails: ``TENANCY_DIAG_ACTOR``, else the login name."""
    env = os.environ if env is None else env
    return env.get(ENV_ACTOR) or env.get("USER") or env.get("LOGNAME") or "unknown"


def extra_redaction_patterns(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Extra regexes to redact, one per line in ``TENANCY_DIAG_REDACT_PATTERNS``."""
    env = os.environ if env is None else env
    raw = env.get(ENV_REDACT_PATTERNS, "")
    return tuple(line for line in raw.splitlines() if line.strip())


def plugin_modules(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Modules to import for their registrations, comma-separated in ``TENANCY_DIAG_PLUGINS``."""
    env = os.environ if env is None else env
    return tuple(m.strip() for m in env.get(ENV_PLUGINS, "").split(",") if m.strip())


def folder_override(variable: str, env: Mapping[str, str] | None = None) -> Path | None:
    """The folder named by ``variable`` (``TENANCY_DIAG_NOTEBOOKS``, ``TENANCY_DIAG_PARAMETERS``)
    to use instead of the shipped one, made absolute; None when unset or empty."""
    env = os.environ if env is None else env
    value = env.get(variable, "").strip()
    return Path(value).expanduser().resolve() if value else None


def export_folder_override(variable: str, folder: Path) -> None:
    """Set ``variable`` for this process and every process it starts.

    A command-line flag is applied this way so that it beats an inherited value and reaches
    the kernels papermill starts and the runners the service starts, which inherit it.
    """
    os.environ[variable] = str(folder)


#: Notebook parameters that, left at their empty default, fall back to the environment, but only
#: under ``TENANCY_DIAG_LAB=1``: that is how `tenancy-diag lab` hands the sandbox's endpoints to
#: notebooks opened by hand. Headless runs never consult them, so a recorded run replays exactly.
#: Source endpoints add their own (``SourceKind.env``); these are the window's.
ENV_LAB = "TENANCY_DIAG_LAB"
ENV_END = "TENANCY_DIAG_END"
WINDOW_ENV_FALLBACKS = {"end": ENV_END, "incident_start": "TENANCY_DIAG_INCIDENT_START"}


def lab_mode(env: Mapping[str, str] | None = None) -> bool:
    """True in a kernel that `tenancy-diag lab` started (``TENANCY_DIAG_LAB=1``)."""
    env = os.environ if env is None else env
    return env.get(ENV_LAB) == "1"


def notebook_fallbacks(
    params: Mapping[str, object],
    variables: Mapping[str, str],
    env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Values for notebook parameters left empty (or ``end="now"``) from the environment;
    ``variables`` maps each parameter to its variable."""
    env = os.environ if env is None else env
    if not lab_mode(env):
        return {}
    out = {}
    for name, variable in variables.items():
        current = params.get(name)
        unset = current in ("", None) or (name == "end" and current == "now")
        if unset and env.get(variable):
            out[name] = env[variable]
    return out
