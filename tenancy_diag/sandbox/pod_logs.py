"""The sandbox fleet's pod logs: logfmt lines that tell the same story as its metrics.

Every container logs background noise (INFO/DEBUG/WARN, rare unrelated ERRORs) over its life;
in the incident region the apps the fault touches add its error lines from
``truth.incident_start`` on, naming ``truth``'s tenants, endpoints, clients and jobs. A few lines
leak the planted fake secrets (:mod:`tenancy_diag.sandbox.secrets`) the way careless code does,
so tests can prove nothing downstream carries them.

Everything is a pure function of the scenario and the pod (seeded by ``scenario.rng``), and the
volume per container is capped, so a 10,000-tenant fleet logs no more than a 200-tenant one.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from tenancy_diag.sandbox.secrets import PLANTED, carrier
from tenancy_diag.sandbox.topology import (
    CLIENT_IDS,
    POLICIES,
    ROUTES,
    SHARED_ENDPOINTS,
    Pod,
    Scenario,
)

#: Noise lines per container over its whole life, at most.
NOISE_BUDGET = 2_000
#: Fault lines per affected container, at most.
INCIDENT_BUDGET = 800
#: Seconds between two noise lines on average, before the budget caps them.
NOISE_INTERVAL_S = 5.0
#: Seconds between two fault lines on average, before the budget caps them.
INCIDENT_INTERVAL_S = 3.0
#: How often each planted secret leaks per container.
SECRET_REPEATS = 2

# (weight, level, msg, fields); fields is a str.format template over _Values' keys.
Template = tuple[float, str, str, str]

_NOISE: dict[str, tuple[Template, ...]] = {
    "tenancy-controller": (
        (50, "INFO", "reconcile succeeded", "tenant={tenant} generation={gen} duration_ms={ms}"),
        (25, "DEBUG", "reconcile started", "tenant={tenant} generation={gen}"),
        (8, "DEBUG", "work queue sampled", "queue_depth={small}"),
        (3, "INFO", "leader lease renewed", "lease=tenancy-controller holder={pod}"),
        (4, "WARN", "reconcile requeued", "tenant={tenant} reason=conflict backoff={backoff}"),
        (
            0.4,
            "ERROR",
            "reconcile failed",
            'tenant={tenant} reason=conflict err="Operation cannot be fulfilled on '
            'tenants.tenancy.io \\"{tenant}\\": the object has been modified"',
        ),
        (
            0.2,
            "ERROR",
            "reconcile failed",
            'tenant={tenant} reason=internal err="unexpected EOF reading from {ip}:6443"',
        ),
    ),
    "tenancy-webhook-dispatcher": (
        (
            50,
            "INFO",
            "webhook delivered",
            "tenant={tenant} endpoint={endpoint} event_type={event} code=200 latency_ms={ms}",
        ),
        (
            25,
            "DEBUG",
            "delivery scheduled",
            "tenant={tenant} endpoint={endpoint} event_type={event} sequence={seq}",
        ),
        (
            4,
            "WARN",
            "webhook retry scheduled",
            "tenant={tenant} endpoint={endpoint} attempt=2 backoff={backoff}",
        ),
        (
            0.5,
            "ERROR",
            "webhook delivery failed",
            "tenant={tenant} endpoint={endpoint} code=502 attempt=1 sequence={seq} "
            'err="upstream returned 502"',
        ),
    ),
    "tenancy-policy-client": (
        (
            50,
            "INFO",
            "policy evaluated",
            "tenant={tenant} policy_id={policy} decision=allow latency_ms={small}",
        ),
        (30, "DEBUG", "policy cache hit", "tenant={tenant} policy_id={policy}"),
        (4, "DEBUG", "policy cache miss", "tenant={tenant} policy_id={policy}"),
        (1, "INFO", "policy bundle loaded", "policy_id={policy} version={version}"),
        (2, "WARN", "policy evaluation slow", "tenant={tenant} policy_id={policy} latency_ms={ms}"),
        (
            0.3,
            "ERROR",
            "policy evaluation failed",
            "tenant={tenant} policy_id={policy} reason=invalid_policy "
            'err="rule {small} references unknown attribute"',
        ),
    ),
    "tenancy-api": (
        (
            60,
            "INFO",
            "request served",
            "tenant={tenant} client_id={client} method={method} route={route} code=200 "
            "duration_ms={ms}",
        ),
        (15, "DEBUG", "token validated", "client_id={client} scopes=tenants:read"),
        (
            3,
            "WARN",
            "request throttled",
            "tenant={tenant} client_id={client} method={method} route={route} code=429",
        ),
        (
            0.4,
            "ERROR",
            "request failed",
            "tenant={tenant} client_id={client} method={method} route={route} code=500 "
            'err="context deadline exceeded after {ms}ms"',
        ),
    ),
    "tenancy-lifecycle": (
        (
            40,
            "INFO",
            "job step completed",
            "tenant={tenant} job_id={job} job_type={job_type} step={step} duration_ms={ms}",
        ),
        (30, "DEBUG", "job heartbeat", "tenant={tenant} job_id={job} step={step}"),
        (8, "INFO", "job started", "tenant={tenant} job_id={job} job_type={job_type}"),
        (2, "WARN", "job step retried", "tenant={tenant} job_id={job} step={step} attempt=2"),
        (
            0.3,
            "ERROR",
            "job step failed",
            "tenant={tenant} job_id={job} job_type={job_type} step={step} "
            'err="lock held by another worker"',
        ),
    ),
}

# The fault's lines, per pattern and app; {tenant}, {endpoint}, {client} and {job} come from
# the scenario's truth so the logs name exactly what the metrics and the DLQs name.
_INCIDENT: dict[str, dict[str, tuple[Template, ...]]] = {
    "reconcile_backlog": {
        "tenancy-controller": (
            (
                40,
                "ERROR",
                "reconcile failed",
                'tenant={tenant} reason=throttled err="client-side rate limiter: wait of {ms}ms '
                'exceeds deadline"',
            ),
            (
                30,
                "ERROR",
                "reconcile failed",
                'tenant={tenant} reason=policy_error err="policy service timeout after 2000ms"',
            ),
            (10, "WARN", "work queue depth high", "queue_depth={deep} threshold=100"),
            (8, "WARN", "reconcile requeued", "tenant={tenant} reason=throttled backoff={backoff}"),
        ),
    },
    "webhook_storm": {
        "tenancy-webhook-dispatcher": (
            (
                50,
                "ERROR",
                "webhook delivery failed",
                "tenant={tenant} endpoint={endpoint} code=503 attempt={attempt} sequence={seq} "
                'err="upstream returned 503"',
            ),
            (
                25,
                "ERROR",
                "webhook delivery failed",
                "tenant={tenant} endpoint={endpoint} code=timeout attempt={attempt} sequence={seq} "
                'err="no response within 10000ms"',
            ),
            (
                10,
                "ERROR",
                "webhook delivery failed",
                "tenant={tenant} endpoint={endpoint} code=connection_refused attempt={attempt} "
                'sequence={seq} err="dial tcp {ip}:443: connect: connection refused"',
            ),
            (
                10,
                "WARN",
                "webhook moved to dead-letter queue",
                "tenant={tenant} endpoint={endpoint} sequence={seq} attempts=5",
            ),
        ),
    },
    "policy_timeout": {
        "tenancy-policy-client": (
            (
                50,
                "ERROR",
                "policy evaluation failed",
                "tenant={tenant} policy_id={policy} reason=timeout "
                'err="policy service timeout after 2000ms"',
            ),
            (
                15,
                "ERROR",
                "policy evaluation failed",
                "tenant={tenant} policy_id={policy} reason=unavailable "
                'err="dial tcp {ip}:8443: connect: connection refused"',
            ),
            (15, "WARN", "policy cache miss", "tenant={tenant} policy_id={policy}"),
        ),
        "tenancy-controller": (
            (
                50,
                "ERROR",
                "reconcile failed",
                'tenant={tenant} reason=policy_error err="policy service timeout after 2000ms"',
            ),
            (
                10,
                "WARN",
                "reconcile requeued",
                "tenant={tenant} reason=policy_error backoff={backoff}",
            ),
        ),
    },
    "rate_limit_saturation": {
        "tenancy-api": (
            (
                60,
                "ERROR",
                "request throttled",
                "tenant={tenant} client_id={client} method=POST route=/tenants:bulkSync code=429 "
                'err="rate limit exceeded: burst of {burst} requests used"',
            ),
            (
                15,
                "ERROR",
                "request throttled",
                "tenant={tenant} client_id={client} method=PATCH route=/tenants/{{id}} code=429 "
                'err="rate limit exceeded: burst of {burst} requests used"',
            ),
            (10, "WARN", "client over quota", "client_id={client} requests_per_s={deep}"),
        ),
    },
    "migration_hang": {
        "tenancy-lifecycle": (
            (
                40,
                "WARN",
                "step stuck",
                "tenant={tenant} job_id={job} job_type=migrate step=verify_checksums "
                "stuck_for={stuck}",
            ),
            (
                30,
                "WARN",
                "replication lag",
                "tenant={tenant} job_id={job} step=verify_checksums lag_s={lag}",
            ),
            (
                10,
                "ERROR",
                "job step failed",
                "tenant={tenant} job_id={job} job_type=migrate step=verify_checksums "
                'err="checksum verification made no progress for {stuck}"',
            ),
        ),
    },
}

# How careless code paths leak each planted secret (always at ERROR, where debugging happens).
_LEAKS: dict[str, tuple[str, str]] = {
    "bearer_token": ("upstream call failed", 'target=admin-api {carrier} err="401 Unauthorized"'),
    "aws_access_key_id": (
        "snapshot upload failed",
        '{carrier} bucket=tenancy-snapshots err="AccessDenied"',
    ),
    "aws_secret_access_key": (
        "credentials refresh failed",
        '{carrier} err="ExpiredToken (security token expired)"',
    ),
    "webhook_signing_secret": (
        "webhook signature mismatch",
        '{carrier} endpoint={endpoint} err="signature differs"',
    ),
    "url_password": ("database connection failed", '{carrier} err="connection reset by peer"'),
}


def restart_at(scenario: Scenario, pod: Pod) -> datetime | None:
    """When a restarted pod's container last restarted; None if it never did."""
    if not pod.restarts:
        return None
    # Half-way into the incident: the crash is a symptom, so the previous container's log
    # holds the fault's onset, which is what `kubectl logs --previous` is run for.
    return scenario.incident_start + (scenario.end - scenario.incident_start) / 2


def container_window(scenario: Scenario, pod: Pod, previous: bool) -> tuple[datetime, datetime]:
    """The span a container's log covers (empty for the previous one of a never-restarted pod)."""
    restart = restart_at(scenario, pod)
    if previous:
        return (scenario.start, restart) if restart else (scenario.start, scenario.start)
    return (restart or scenario.start, scenario.end)


def lines_for(scenario: Scenario, pod: Pod, previous: bool = False) -> list[str]:
    """The container's log, oldest first, as the kubelet would return it."""
    return [line for _, line in timed_lines_for(scenario, pod, previous)]


def timed_lines_for(
    scenario: Scenario, pod: Pod, previous: bool = False
) -> list[tuple[float, str]]:
    """``(unix seconds, line)`` pairs, oldest first: the server filters on the number."""
    start, end = container_window(scenario, pod, previous)
    if end <= start:
        return []
    values = _Values(scenario, pod, scenario.rng("pod-logs", pod.name, previous))
    events = _noise(values, start, end)
    events += _incident(values, scenario, pod, start, end)
    events += _leaks(values, start, end)
    events.sort(key=lambda event: event[0])
    return events


def _noise(values: _Values, start: datetime, end: datetime) -> list[tuple[float, str]]:
    span = (end - start).total_seconds()
    count = min(NOISE_BUDGET, int(span / NOISE_INTERVAL_S))
    times = _uniform_times(values.rng, start, span, count)
    return _render(values, _NOISE[values.pod.app], times)


def _incident(
    values: _Values, scenario: Scenario, pod: Pod, start: datetime, end: datetime
) -> list[tuple[float, str]]:
    truth = scenario.truth
    if truth.pattern is None or truth.incident_start is None or pod.region != truth.region:
        return []
    templates = _INCIDENT[truth.pattern].get(pod.app)
    begin = max(start, truth.incident_start)
    if not templates or end <= begin:
        return []
    span = (end - begin).total_seconds()
    count = min(INCIDENT_BUDGET, int(span / INCIDENT_INTERVAL_S))
    # Density grows with time (sqrt of a uniform), as a fault that gets worse does.
    offsets = sorted(span * math.sqrt(values.rng.random()) for _ in range(count))
    times = [begin.timestamp() + offset for offset in offsets]
    values.incident = True
    try:
        return _render(values, templates, times)
    finally:
        values.incident = False


def _leaks(values: _Values, start: datetime, end: datetime) -> list[tuple[float, str]]:
    span = (end - start).total_seconds()
    out = []
    for kind in sorted(PLANTED):
        msg, fields = _LEAKS[kind]
        for moment in _uniform_times(values.rng, start, span, SECRET_REPEATS):
            values.new_line(moment)
            text = fields.replace("{carrier}", carrier(kind)).format_map(values)
            out.append((moment, _line(moment, "ERROR", msg, text, values.trace_id())))
    return out


def _uniform_times(rng: random.Random, start: datetime, span: float, count: int) -> list[float]:
    base = start.timestamp()
    return sorted(base + rng.random() * span for _ in range(count))


def _render(
    values: _Values, templates: Sequence[Template], times: Sequence[float]
) -> list[tuple[float, str]]:
    cumulative = list(itertools.accumulate(weight for weight, *_ in templates))
    out = []
    for moment in times:
        _, level, msg, fields = templates[
            bisect.bisect_right(cumulative, values.rng.random() * cumulative[-1])
        ]
        values.new_line(moment)
        text = fields.format_map(values)
        out.append((moment, _line(moment, level, msg, text, values.trace_id())))
    return out


def _line(moment: float, level: str, msg: str, fields: str, trace_id: str) -> str:
    return f'ts={_timestamp(moment)} level={level} msg="{msg}" {fields} trace_id={trace_id}'


def _timestamp(moment: float) -> str:
    millis = round(moment * 1000)
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000))
    return f"{whole}.{millis % 1000:03d}Z"


class _Values:
    """Random field values for one container, drawn lazily by ``str.format_map``.

    Incident lines pick one "subject" per line (a truth tenant, and its job when the fault is a
    migration hang) so a line's tenant and job_id always belong together.
    """

    def __init__(self, scenario: Scenario, pod: Pod, rng: random.Random) -> None:
        self.scenario = scenario
        self.pod = pod
        self.rng = rng
        self.incident = False
        self.moment = 0.0
        self.subject: int | None = None
        self._drawn: dict[str, object] = {}
        self._tenants = scenario.tenants_by_region.get(pod.region, ())
        truth = scenario.truth
        self._truth_tenants = truth.tenants or tuple(t.id for t in self._tenants[:5]) or ("-",)
        # The heaviest truth tenants fail most, as a heavy-tailed fleet does.
        self._truth_weights = list(
            itertools.accumulate(1 / math.sqrt(i + 1) for i in range(len(self._truth_tenants)))
        )
        self._getters: dict[str, Callable[[], object]] = {
            "tenant": self._tenant,
            "endpoint": self._endpoint,
            "client": self._client,
            "job": self._job,
            "pod": lambda: pod.name,
            "ip": self._ip,
            "ms": lambda: int(rng.lognormvariate(4.0, 0.8)) + 1,
            "small": lambda: rng.randint(1, 40),
            "deep": lambda: rng.randint(150, 5000),
            "gen": lambda: rng.randint(1, 300),
            "seq": lambda: rng.randint(10_000, 99_999),
            "attempt": lambda: rng.randint(1, 5),
            "burst": lambda: rng.choice((200, 400)),
            "backoff": lambda: f"{rng.choice((1, 2, 4, 8, 16))}s",
            "event": lambda: rng.choice(("tenant.updated", "tenant.created", "member.added")),
            "policy": lambda: rng.choice(POLICIES)[0],
            "version": lambda: rng.choice(POLICIES)[2],
            "method": lambda: rng.choice(ROUTES)[1],
            "route": lambda: rng.choice(ROUTES)[0],
            "job_type": lambda: rng.choice(("provision", "migrate", "suspend", "delete")),
            "step": lambda: rng.choice(("allocate", "copy_data", "switch_dns", "cleanup")),
            "stuck": self._stuck,
            "lag": lambda: rng.randint(90, 2400),
        }

    def __getitem__(self, key: str) -> object:
        # A placeholder used twice in one line means the same thing twice (one tenant).
        if key not in self._drawn:
            self._drawn[key] = self._getters[key]()
        return self._drawn[key]

    def new_line(self, moment: float) -> None:
        self.moment = moment
        self.subject = None
        self._drawn = {}

    def trace_id(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def _pick_subject(self) -> int:
        if self.subject is None:
            point = self.rng.random() * self._truth_weights[-1]
            self.subject = bisect.bisect_right(self._truth_weights, point)
        return self.subject

    def _tenant(self) -> str:
        if self.incident:
            return self._truth_tenants[self._pick_subject()]
        return self.rng.choice(self._tenants).id if self._tenants else "-"

    def _endpoint(self) -> str:
        truth = self.scenario.truth
        if self.incident and truth.endpoints:
            return self.rng.choice(truth.endpoints)
        if self._tenants and self.rng.random() < 0.4:
            return self.rng.choice(self._tenants).endpoint
        return self.rng.choice(SHARED_ENDPOINTS)

    def _client(self) -> str:
        truth = self.scenario.truth
        if self.incident and truth.client_ids:
            return self.rng.choice(truth.client_ids)
        return self.rng.choice(CLIENT_IDS)

    def _job(self) -> str:
        jobs = self.scenario.truth.job_ids
        if self.incident and jobs:
            return jobs[self._pick_subject() % len(jobs)]
        return f"job-{self.rng.getrandbits(32):08x}"

    def _ip(self) -> str:
        a, b, c = (self.rng.randint(0, 255), self.rng.randint(0, 255), self.rng.randint(2, 254))
        return f"10.{a}.{b}.{c}"

    def _stuck(self) -> str:
        start = self.scenario.truth.incident_start or self.scenario.start
        minutes = max(1, int((self.moment - start.timestamp()) // 60))
        return f"{minutes}m"
