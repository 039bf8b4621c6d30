"""The bundle's way out of a Job's pod: the pod uploads it to S3, the service fetches it back.

The upload is :class:`~.s3.S3Sink`'s (one object per file under
``<prefix>/<incident>/<run_id>/``, each checked by S3 against its sha256), plus the run's lines
of the pod's audit log as ``<prefix>/<incident>/<run_id>.audit.jsonl``: the pod's ``OUT`` dies
with it, and the runbook wants every run in the service's audit log. The fetch trusts
nothing it reads: the manifest comes first, every file it lists is downloaded and its sha256
and size compared with the manifest's, and only a bundle that matches in full is moved into
``OUT/<incident>/<run_id>/`` (atomically, by rename, from a folder beside it). A missing object
or a digest that differs leaves nothing there, so nothing is attached.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from tenancy_diag.errors import ConfigError, TenancyDiagError, shorten
from tenancy_diag.running.bundles import MANIFEST, move_aside, read_manifest, verify_bundle
from tenancy_diag.running.naming import check_name, inside
from tenancy_diag.service.sinks.attachments import Attachment, SinkError
from tenancy_diag.service.sinks.s3 import S3Sink, _client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
AUDIT_SUFFIX = ".audit.jsonl"


class BundleNotFetched(TenancyDiagError):
    """The bundle in S3 is missing, incomplete or differs from its manifest (one sentence)."""


class S3Handoff:
    """``s3://bucket/prefix`` as the place a pod leaves bundles and the service picks them up."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: S3Client | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self._client = client or _client(endpoint_url)

    def upload(self, bundle: Path, audit: Path | None = None) -> Attachment:
        """The pod's half: every file of the sealed bundle, manifest included, and ``audit``."""
        sink = S3Sink(self.bucket, self.prefix, self.endpoint_url, client=self._client)
        uploaded = sink.attach(bundle, {})
        if audit is not None and audit.is_file():
            opened = read_manifest(bundle)
            key = self._base(opened["incident"], opened["run_id"]) + AUDIT_SUFFIX
            try:
                self._client.put_object(Bucket=self.bucket, Key=key, Body=audit.read_bytes())
            except (BotoCoreError, ClientError) as e:
                raise SinkError(
                    "s3",
                    f"uploading the audit log to s3://{self.bucket}/{key} failed "
                    f"({shorten(e, 160)}); retry later",
                    retryable=True,
                ) from e
        return uploaded

    def audit_lines(self, incident: str, run_id: str) -> list[dict[str, Any]]:
        """The pod's audit records for the run; none when it left none."""
        key = self._base(incident, run_id) + AUDIT_SUFFIX
        try:
            body = self._get(key, self.where(incident, run_id))
        except BundleNotFetched:
            return []
        records = []
        for line in body.decode("utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn line; the rest still counts
            if isinstance(record, dict):
                records.append(record)
        return records

    def where(self, incident: str, run_id: str) -> str:
        return f"s3://{self.bucket}/{self._base(incident, run_id)}/"

    def fetch(self, incident: str, run_id: str, out: Path) -> Path:
        """The service's half: ``OUT/<incident>/<run_id>``, verified file by file.

        Raises :class:`BundleNotFetched` (nothing written under ``out``) when the bundle is not
        there in full or any file differs from the manifest.
        """
        folder = out / check_name(incident, "incident id") / check_name(run_id, "run id")
        final = inside(out, folder, "run id")
        staging = final.with_name(f".{run_id}.fetching")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            self._download_verified(incident, run_id, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if final.exists():
            # An earlier attempt's leftovers; kept beside, as the runner keeps a partial run.
            move_aside(final, "partial")
        staging.rename(final)
        return final

    def _download_verified(self, incident: str, run_id: str, staging: Path) -> None:
        base = self._base(incident, run_id)
        where = f"s3://{self.bucket}/{base}/"
        (staging / MANIFEST).write_bytes(self._get(f"{base}/{MANIFEST}", where))
        try:
            manifest = read_manifest(staging)
        except ConfigError as e:
            raise BundleNotFetched(f"the manifest at {where}{MANIFEST} is unusable: {e}") from e
        if manifest.get("incident") != incident or manifest.get("run_id") != run_id:
            raise BundleNotFetched(
                f"the manifest at {where}{MANIFEST} names incident {manifest.get('incident')!r} "
                f"run {manifest.get('run_id')!r}, not {incident!r} {run_id!r}; nothing attached"
            )
        for name, expected in sorted(_files(manifest, where).items()):
            target = inside(staging, staging / name, "a file in the manifest")
            target.parent.mkdir(parents=True, exist_ok=True)
            body = self._get(f"{base}/{name}", where)
            target.write_bytes(body)
            _check(name, body, expected, where)
        problems = verify_bundle(staging)
        if problems:
            raise BundleNotFetched(f"the bundle from {where} fails its manifest: {problems[0]}")

    def _get(self, key: str, where: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            return response["Body"].read()
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise BundleNotFetched(
                    f"s3://{self.bucket}/{key} is missing; the pod did not upload the whole "
                    f"bundle to {where}"
                ) from e
            raise SinkError(
                "s3",
                f"S3 refused s3://{self.bucket}/{key} ({code}: {shorten(e, 160)}); check the "
                "bucket and the AWS credentials",
                retryable=True,
            ) from e
        except BotoCoreError as e:
            raise SinkError(
                "s3",
                f"reading s3://{self.bucket}/{key} failed ({type(e).__name__}: {shorten(e, 160)}); "
                "check --aws-endpoint-url and the AWS credentials",
                retryable=True,
            ) from e

    def _base(self, incident: str, run_id: str) -> str:
        return "/".join(p for p in (self.prefix, incident, run_id) if p)


def _files(manifest: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleNotFetched(
            f"the manifest at {where}{MANIFEST} lists no files; nothing attached"
        )
    return files


def _check(name: str, body: bytes, expected: Any, where: str) -> None:
    digest = hashlib.sha256(body).hexdigest()
    listed = str(expected.get("sha256")) if isinstance(expected, dict) else "?"
    if listed != digest:
        raise BundleNotFetched(
            f"{where}{name} has sha256 {digest[:12]}…, not the {listed[:12]}… its manifest "
            "lists; the object changed after the run, nothing attached"
        )
    if expected.get("size") != len(body):
        raise BundleNotFetched(
            f"{where}{name} is {len(body)} bytes, not the {expected.get('size')} its manifest "
            "lists; nothing attached"
        )
