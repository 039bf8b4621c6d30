"""Controller restart: replicas > 1 checked on the Deployment, one pod at a time, each
replacement Ready before the next, then the backlog confirmed draining."""

from __future__ import annotations

from functools import partial

from tenancy_diag.remediating.connecting import Session
from tenancy_diag.remediating.executing import Execution
from tenancy_diag.remediating.plans import Call, Check, Plan, Step
from tenancy_diag.remediating.procedures.checks import region_value, slo, threshold_check

PROCEDURE = "controller_restart"
GRACE_S = 30


def plan(session: Session, *, region: str, pods: int = 1) -> Plan:
    """Restart the ``pods`` oldest controller pods of ``region``, one at a time."""
    book = session.runbook.remediations[PROCEDURE]
    logs = session.signals.doc.logs
    app = logs.apps["controller"]
    selector = f"{logs.app_label}={app},{logs.region_label}={region}"
    kube = session.kube()
    deployment = kube.deployment(region, app)
    running = sorted(kube.pods(region, selector), key=lambda p: str(p["started"]))
    depth = region_value(session, "controller.queue_depth", region)
    result = Plan(PROCEDURE, book.title, session.incident, {"region": region, "deployment": app})
    result.preconditions = [
        Check(
            "replicas > 1 for redundancy",
            deployment["replicas"] > 1,
            f"{app}: spec.replicas = {deployment['replicas']}",
        ),
        Check(
            "every replica Ready before the first restart",
            deployment["ready"] >= deployment["replicas"] > 0,
            f"readyReplicas = {deployment['ready']} of {deployment['replicas']}",
        ),
        # One Deployment may serve several regions (one cluster for all): the redundancy
        # that matters is the region's own Ready pods.
        Check(
            f"more than one Ready controller pod in {region}",
            sum(p["ready"] for p in running) > 1,
            f"{sum(p['ready'] for p in running)} Ready of {len(running)} matching {selector}",
        ),
        threshold_check(
            "queue backlog before the restart (for comparison)",
            depth,
            slo(session, "controller", "queue_depth_max"),
            "<",
            " items",
            required=False,
        ),
    ]
    timeout = session.runbook.automation.pod_ready_timeout_s
    for pod in running[: max(0, pods)]:
        name = pod["name"]
        result.steps.append(
            Step(
                title=f"{book.steps[1]} ({name}), then wait for its replacement to be Ready",
                # The actuator's own namespace: the audit cannot name one place and act in another.
                call=Call(
                    "kubernetes",
                    "DELETE",
                    f"/api/v1/namespaces/{kube.namespace}/pods/{name}",
                    {"gracePeriodSeconds": GRACE_S},
                ),
                perform=partial(kube.delete_pod, region, name, GRACE_S),
                settle=partial(kube.wait_ready, region, selector, len(running), name, timeout),
                no_rollback=(
                    "a deleted pod cannot be restored; its Deployment replaces it, and stopping "
                    "here leaves the other pods untouched"
                ),
            )
        )
    result.followups = [
        f"{book.steps[2]} `queue_depth` in {region} was {_figure(depth)}; it should fall: "
        "see the post-checks below, or run controller_health again.",
        f"{book.steps[3]} Run verification_after_recovery five minutes after the restart.",
    ]
    return result


def post_checks(session: Session, plan: Plan, run: Execution) -> list[Check]:
    region = str(plan.scope["region"])
    trend = region_value(session, "controller.queue_depth", region)
    return [
        threshold_check(
            "queue backlog drained",
            trend,
            slo(session, "controller", "queue_depth_max"),
            "<",
            " items",
        ),
        threshold_check(
            "reconcile success ratio",
            region_value(session, "controller.reconcile_success_ratio", region, window="5m"),
            slo(session, "controller", "reconcile_success_ratio_min"),
            ">=",
            "",
        ),
    ]


def _figure(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f}"
