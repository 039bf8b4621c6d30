"""The subsystems the runbook diagnoses: one :class:`Subsystem` descriptor each, registered once.

Everything that varies by subsystem is derived from its descriptor: the notebook catalog and
what ``all`` runs, the service's accepted ``subsystem`` labels, the diagnosis a notebook opens,
the SLOs that recovery verification re-judges, the remediations offered, the severity rule, and
which source roles a verdict depends on. Adding a subsystem is a descriptor, a notebook and its
queries in ``parameters/signals.yaml``; nothing else names it.

Another package registers its own with :func:`register` from a module named in
``TENANCY_DIAG_PLUGINS`` or an entry point in the ``tenancy_diag.plugins`` group (see
:mod:`tenancy_diag.plugins`), so the kernels papermill starts see it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from tenancy_diag.errors import ConfigError

#: Source roles a verdict can depend on; a source kind plays one (see ``tenancy_diag.sourcing``).
Role = Literal["metrics", "logs", "queues", "admin", "alerts"]
ROLES: tuple[Role, ...] = ("metrics", "logs", "queues", "admin", "alerts")


@dataclass(frozen=True)
class SloSpec:
    """One SLO as a diagnosis judges it: ``<query> <op> <threshold>`` per region."""

    name: str  # row name in the findings
    query: str  # signals.yaml query key, ``subsystem.query``
    threshold: str  # thresholds key (a notebook parameter ending in _min or _max)
    op: Literal["<", "<=", ">", ">="]
    unit: str = ""
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Subsystem:
    """What the runbook says of one subsystem, as the code needs it."""

    name: str
    title: str
    #: Notebook (file stem) that diagnoses it; ``run <name>`` is an alias for it.
    notebook: str
    #: ``"module:Class"`` of its diagnosis, imported when a notebook opens it, so this module
    #: stays at the bottom of the layers.
    diagnosis: str
    slos: tuple[SloSpec, ...]
    #: signals.yaml ``logs.apps`` key of its pods; None when it has no log step.
    log_app: str | None = None
    #: signals.yaml ``dlq.queues`` key of its dead-letter queue; None when it has none.
    dlq_kind: str | None = None
    #: runbook.yaml ``remediations`` keys that act on it; each is notebook ``remediation_<key>``.
    remediations: tuple[str, ...] = ()
    #: Severity rule: a diagnosed failure of a user-visible subsystem is sev2, else sev3.
    user_visible: bool = True
    #: Source roles its verdict reads; one missing makes the verdict unknown, never ok.
    roles: tuple[Role, ...] = ("metrics",)
    #: Where its notebook lives when not among the shipped ones (a plugin's own file).
    notebook_path: str | None = None

    def slo(self, name: str) -> SloSpec:
        for spec in self.slos:
            if spec.name == name:
                return spec
        raise ConfigError(
            f"subsystem {self.name!r} has no SLO {name!r}; valid: "
            + ", ".join(s.name for s in self.slos)
        )


def remediation_notebook(procedure: str) -> str:
    """The notebook of a runbook Remediation Procedure."""
    return f"remediation_{procedure}"


class SubsystemRegistry:
    """Subsystems by name, in registration order (the runbook's Diagnostic Workflow order)."""

    def __init__(self) -> None:
        self._items: dict[str, Subsystem] = {}

    def register(self, subsystem: Subsystem, *, replace: bool = False) -> Subsystem:
        if subsystem.name in self._items and not replace:
            raise ConfigError(
                f"subsystem {subsystem.name!r} is already registered; pass replace=True to "
                "override it"
            )
        taken = {s.notebook: s.name for s in self._items.values() if s.name != subsystem.name}
        if subsystem.notebook in taken:
            raise ConfigError(
                f"notebook {subsystem.notebook!r} already diagnoses {taken[subsystem.notebook]!r}"
            )
        unknown = set(subsystem.roles) - set(ROLES)
        if unknown:
            raise ConfigError(
                f"subsystem {subsystem.name!r} names unknown source roles {sorted(unknown)}; "
                f"valid: {', '.join(ROLES)}"
            )
        self._items[subsystem.name] = subsystem
        return subsystem

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str) -> Subsystem:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown subsystem {name!r}; valid: {', '.join(self._items) or '(none)'}"
            ) from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def __iter__(self) -> Iterator[Subsystem]:
        return iter(tuple(self._items.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def by_notebook(self, notebook: str) -> Subsystem | None:
        """The subsystem a notebook diagnoses or remediates, if any."""
        for subsystem in self._items.values():
            if notebook == subsystem.notebook or notebook in {
                remediation_notebook(p) for p in subsystem.remediations
            }:
                return subsystem
        return None


def _quantile(name: str, query: str, threshold: str) -> SloSpec:
    return SloSpec(name, query, threshold, "<", "ms", (("quantile", "0.99"),))


BUILT_IN = (
    Subsystem(
        name="controller",
        title="Controller health",
        notebook="controller_health",
        diagnosis="tenancy_diag.diagnosing.controller:ControllerDiagnosis",
        slos=(
            SloSpec(
                "reconcile_success_ratio",
                "controller.reconcile_success_ratio",
                "reconcile_success_ratio_min",
                ">=",
                "ratio",
            ),
            SloSpec("queue_depth", "controller.queue_depth", "queue_depth_max", "<", "items"),
        ),
        log_app="controller",
        dlq_kind="reconcile",
        remediations=("controller_restart",),
        roles=("metrics", "logs", "queues"),
    ),
    Subsystem(
        name="webhook",
        title="Webhook delivery",
        notebook="webhook_delivery",
        diagnosis="tenancy_diag.diagnosing.webhook:WebhookDiagnosis",
        slos=(
            _quantile("latency_p99_ms", "webhook.latency_quantile", "latency_p99_ms_max"),
            SloSpec("failure_ratio", "webhook.failure_ratio", "failure_ratio_max", "<", "ratio"),
        ),
        log_app="webhook",
        dlq_kind="webhook",
        remediations=("webhook_requeue",),
        roles=("metrics", "logs", "queues"),
    ),
    Subsystem(
        name="policy",
        title="Policy evaluation",
        notebook="policy_evaluation",
        diagnosis="tenancy_diag.diagnosing.policy:PolicyDiagnosis",
        slos=(
            _quantile("latency_p99_ms", "policy.latency_quantile", "latency_p99_ms_max"),
            SloSpec("error_ratio", "policy.error_ratio", "error_ratio_max", "<", "ratio"),
            SloSpec(
                "cache_hit_ratio", "policy.cache_hit_ratio", "cache_hit_ratio_min", ">=", "ratio"
            ),
        ),
        log_app="policy",
        remediations=("policy_cache_refresh",),
        roles=("metrics", "logs"),
    ),
    Subsystem(
        name="api",
        title="API health",
        notebook="api_health",
        diagnosis="tenancy_diag.diagnosing.api:ApiDiagnosis",
        slos=(
            SloSpec("error_ratio_5xx", "api.error_ratio_5xx", "error_ratio_5xx_max", "<", "ratio"),
            SloSpec("ratio_429", "api.ratio_429", "ratio_429_max", "<", "ratio"),
            _quantile("latency_p99_ms", "api.latency_quantile", "latency_p99_ms_max"),
        ),
        log_app="api",
        remediations=("api_rate_limit_adjustment",),
        roles=("metrics", "logs"),
    ),
    Subsystem(
        name="lifecycle",
        title="Lifecycle orchestration",
        notebook="lifecycle_orchestration",
        diagnosis="tenancy_diag.diagnosing.lifecycle:LifecycleDiagnosis",
        slos=(
            SloSpec("failure_ratio", "lifecycle.failure_ratio", "failure_ratio_max", "<", "ratio"),
            SloSpec(
                "replication_lag_s",
                "lifecycle.replication_lag_max",
                "replication_lag_seconds_max",
                "<",
                "s",
            ),
        ),
        log_app="lifecycle",
        remediations=("migration_rollback",),
        # Stuck jobs hurt the tenants being moved, not every client: the runbook's sev3.
        user_visible=False,
        roles=("metrics", "logs", "admin"),
    ),
)

#: The default registry: the runbook's five subsystems, then any plugin's.
registry = SubsystemRegistry()
for _subsystem in BUILT_IN:
    registry.register(_subsystem)


def register(subsystem: Subsystem, *, replace: bool = False) -> Subsystem:
    """Add a subsystem to the default registry (what a plugin module calls at import)."""
    return registry.register(subsystem, replace=replace)
