"""Fake secrets the sandbox plants in pod logs and DLQ bodies, so tests can prove redaction.

They look like the real thing (same shapes the redactor must catch) and are worthless.
"""

from __future__ import annotations

# kind -> the secret value itself (what must never appear in evidence)
PLANTED: dict[str, str] = {
    "bearer_token": "eyJhbGciOiJIUzI1NiJ9.c2FuZGJveC10b2tlbg.Zm9yZ2VkLXNpZ25hdHVyZQ",
    "aws_access_key_id": "AKIASANDBOXPLANTED01",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSANDBOXKEY",
    "webhook_signing_secret": "whsec_SandboxPlantedSigningSecret42",
    "url_password": "s3cr3t-Plant3d-pw",
}

# How each secret is embedded in a line, as careless code would log it.
CARRIERS: dict[str, str] = {
    "bearer_token": 'headers="Authorization: Bearer {secret}"',
    "aws_access_key_id": "aws_access_key_id={secret}",
    "aws_secret_access_key": "aws_secret_access_key={secret}",
    "webhook_signing_secret": "signing_secret={secret}",
    "url_password": "dsn=postgres://tenancy:{secret}@db.internal:5432/tenancy",
}


def carrier(kind: str) -> str:
    """The logfmt fragment that leaks the planted secret of ``kind``."""
    return CARRIERS[kind].format(secret=PLANTED[kind])
