"""The runbook's Diagnostic Workflow as calls: one class per subsystem, one method per step."""

from tenancy_diag.diagnosing.api import ApiDiagnosis
from tenancy_diag.diagnosing.context import Context, Endpoints, connect
from tenancy_diag.diagnosing.controller import ControllerDiagnosis
from tenancy_diag.diagnosing.lifecycle import LifecycleDiagnosis
from tenancy_diag.diagnosing.policy import PolicyDiagnosis
from tenancy_diag.diagnosing.verification import RecoveryVerification
from tenancy_diag.diagnosing.webhook import WebhookDiagnosis

DIAGNOSES = {
    "controller": ControllerDiagnosis,
    "webhook": WebhookDiagnosis,
    "policy": PolicyDiagnosis,
    "api": ApiDiagnosis,
    "lifecycle": LifecycleDiagnosis,
    # Not a subsystem: the runbook's Verification After Recovery, across all five.
    "recovery": RecoveryVerification,
}

__all__ = [
    "DIAGNOSES",
    "ApiDiagnosis",
    "Context",
    "ControllerDiagnosis",
    "Endpoints",
    "LifecycleDiagnosis",
    "PolicyDiagnosis",
    "RecoveryVerification",
    "WebhookDiagnosis",
    "connect",
]
