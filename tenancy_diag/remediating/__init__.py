"""Guarded remediation: the runbook's Remediation Procedures as planned, audited calls.

Every procedure is a plan of steps, each a call with its rollback. A plan is shown in full
first (dry run, the default); it acts only when told to and confirmed with the incident id,
after the runbook's preconditions hold, and every call lands in the audit log with its actor,
time and result.
"""
