"""Copies a bundle to S3, one object per file, each checked by S3 against its sha256."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from tenancy_diag.errors import TenancyDiagError, shorten
from tenancy_diag.running.bundles import open_bundle, sha256_file
from tenancy_diag.service.sinks.attachments import Attachment, SinkError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Explicit rather than `mimetypes`, whose answers depend on the host's /etc/mime.types.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".ipynb": "application/x-ipynb+json",
    ".log": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# S3 answers these codes for load or hiccups that another attempt usually gets past.
_RETRYABLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeTooSkewed",
    }
)


def content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix.lower(), DEFAULT_CONTENT_TYPE)


class S3Sink:
    """Uploads every file of a bundle to ``s3://bucket/prefix/<incident>/<run_id>/<path>``.

    Each object carries the file's sha256 as metadata (``sha256``, hex, for people and tools
    comparing against manifest.json) and as ``ChecksumSHA256`` so S3 itself rejects a body that
    changed on the way. Keys are fixed by the bundle, so attaching again overwrites the same
    objects with the same bytes.
    """

    name = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: S3Client | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self._client = client or _client(self.endpoint_url)

    def attach(self, bundle: Path, summary: Mapping[str, Any]) -> Attachment:
        try:
            opened, _ = open_bundle(bundle)
        except TenancyDiagError as e:
            raise SinkError(self.name, f"cannot upload {bundle}: {e}", retryable=False) from e
        base = "/".join(p for p in (self.prefix, opened.incident, opened.run_id) if p)
        links: dict[str, str] = {}
        files = sorted(p for p in opened.root.rglob("*") if p.is_file())
        for path in files:
            relative = opened.relative(path)
            key = f"{base}/{relative}"
            self._put(path, key)
            links[relative] = f"s3://{self.bucket}/{key}"
            if self.endpoint_url:
                links[f"web:{relative}"] = f"{self.endpoint_url}/{self.bucket}/{quote(key)}"
        where = f"s3://{self.bucket}/{base}/"
        return Attachment(self.name, links, f"uploaded {len(files)} files to {where}")

    def _put(self, path: Path, key: str) -> None:
        try:
            digest = bytes.fromhex(sha256_file(path))
            with path.open("rb") as body:
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType=content_type(path),
                    Metadata={"sha256": digest.hex()},
                    # Naming the algorithm too makes S3 keep the sum for a later GetObject check.
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=base64.b64encode(digest).decode("ascii"),
                )
        except OSError as e:
            raise SinkError(
                self.name,
                f"cannot read {path} ({e.strerror}); is the bundle intact?",
                retryable=False,
            ) from e
        except (BotoCoreError, ClientError) as e:
            raise self._wrap(e, key) from e

    def _wrap(self, error: BotoCoreError | ClientError, key: str) -> SinkError:
        target = f"s3://{self.bucket}/{key}"
        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            retryable = status >= 500 or code in _RETRYABLE_CODES
            hint = "retry later" if retryable else "check the bucket name and credentials"
            return SinkError(
                self.name,
                f"S3 refused {target} ({code or status}: {shorten(error, 160)}); {hint}",
                retryable=retryable,
            )
        # Connection errors and timeouts are worth another try; the rest of botocore's errors
        # (no credentials, bad parameters) will fail the same way again.
        retryable = isinstance(error, BotoConnectionError)
        endpoint = self.endpoint_url or "AWS"
        return SinkError(
            self.name,
            f"uploading {target} via {endpoint} failed ({type(error).__name__}: "
            f"{shorten(error, 160)}); check --aws-endpoint-url and the AWS credentials",
            retryable=retryable,
        )


def _client(endpoint_url: str | None) -> S3Client:
    # Credentials come from boto3's own chain (environment, profile, instance role), never from
    # a sink spec that could end up in logs. botocore retries single requests itself, so one
    # slow PUT does not make attach_all re-upload the whole bundle.
    config = Config(
        connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3}
    )
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)
