"""A Kubernetes API server for the sandbox: the Tenancy pods, their Deployments and their logs.

It answers the read calls the diagnostics make, and the pod delete a remediation makes, with
the real API's JSON (kinds, apiVersions, metadata, Status objects for errors, worded as
kube-apiserver words them), so the real ``kubernetes`` client and kubectl work against it
unchanged. Everything is derived from the
scenario (:mod:`~tenancy_diag.sandbox.topology`, :mod:`~tenancy_diag.sandbox.pod_logs`).

Where things live, as in one of moto's backends: :mod:`.objects` and :mod:`.identities` (the
cluster's state as JSON), :mod:`.selectors` and :mod:`.logs` (what a query asks for),
:mod:`.routes` (the API's paths), :mod:`.handler` (HTTP), :mod:`.errors` (Status answers),
:mod:`.kubeconfig` and :mod:`.running` (how clients and the sandbox reach it). The one write,
deleting a pod, lives in :mod:`.workloads` (which pods are live, replacements, readiness) and
:mod:`.deletions` (the delete call's options).

What clients create lives in :mod:`.resources` (stored objects, one resourceVersion counter, the
event log :mod:`.watches` streams): ``batch/v1`` Jobs (:mod:`.jobs` validates, defaults and moves
their status, :mod:`.controlling` is the Job controller, :mod:`.batch_routes` their paths), the
Jobs' pods (:mod:`.job_pods`), run as local processes by a kubelet stand-in (:mod:`.kubelet`,
:mod:`.containers`), and the Secrets, ConfigMaps and Namespaces they use (:mod:`.configs`).
"""

from tenancy_diag.sandbox.kube_api.errors import ApiError
from tenancy_diag.sandbox.kube_api.handler import CLUSTER_PREFIX, make_handler
from tenancy_diag.sandbox.kube_api.identities import IMAGE_TAG
from tenancy_diag.sandbox.kube_api.kubeconfig import CONTEXT, write_kubeconfig
from tenancy_diag.sandbox.kube_api.kubelet import KubeletOptions
from tenancy_diag.sandbox.kube_api.logs import LogOptions, log_options, log_text
from tenancy_diag.sandbox.kube_api.objects import Fleet
from tenancy_diag.sandbox.kube_api.routes import VERSION, Answer, Api, Request
from tenancy_diag.sandbox.kube_api.running import main
from tenancy_diag.sandbox.kube_api.selectors import Requirement, parse_selector
from tenancy_diag.sandbox.kube_api.workloads import WorkloadOptions

__all__ = [
    "CLUSTER_PREFIX",
    "CONTEXT",
    "IMAGE_TAG",
    "VERSION",
    "Answer",
    "Api",
    "ApiError",
    "Fleet",
    "KubeletOptions",
    "LogOptions",
    "Request",
    "Requirement",
    "WorkloadOptions",
    "log_options",
    "log_text",
    "main",
    "make_handler",
    "parse_selector",
    "write_kubeconfig",
]
