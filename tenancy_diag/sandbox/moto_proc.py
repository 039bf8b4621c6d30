"""moto's real SQS server as a background process, filled with the scenario's dead-letter queues.

The server is the same one a team would run locally (`moto_server`), so the SQS source is tested
over the wire with the real boto3 client, exactly as it talks to AWS.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tenancy_diag.errors import SandboxError
from tenancy_diag.sandbox.dlq_content import KINDS, MAX_RECEIVE_COUNT, dlq_messages
from tenancy_diag.sandbox.serving import HOST, pid_alive, stop_pid
from tenancy_diag.sandbox.topology import Scenario
from tenancy_diag.signals import Signals

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

# moto accepts any credentials; fixed placeholders keep real ones out of the sandbox entirely.
_DUMMY_KEY = "sandbox"
_RUNNING = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")
_BATCH = 10  # SendMessageBatch takes at most ten entries


@dataclass(frozen=True)
class MotoProcess:
    """A moto server this process started; ``stop()`` ends exactly that PID."""

    pid: int
    url: str
    log: Path | None = None

    def stop(self) -> bool:
        return stop_pid(self.pid)


def start_moto(folder: Path, timeout_s: float = 60.0) -> MotoProcess:
    """Start ``moto.server`` on 127.0.0.1 and a port the OS picks; return once it answers."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "moto.log"
    # Port 0 avoids racing other processes for a "free" port; the server logs the one it got.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    try:
        url = _wait_for_url(proc.pid, log, timeout_s)
    except BaseException:
        stop_pid(proc.pid)
        raise
    return MotoProcess(proc.pid, url, log)


def _wait_for_url(pid: int, log: Path, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    url = None
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise SandboxError(f"moto's server exited while starting; see {log}")
        if url is None:
            found = _RUNNING.search(log.read_text(encoding="utf-8", errors="replace"))
            url = f"http://{HOST}:{found.group(1)}" if found else None
        if url is not None and _answers(url):
            return url
        time.sleep(0.05)
    raise SandboxError(f"moto's server did not answer within {timeout_s:.0f} s; see {log}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):  # noqa: S310 - our own URL
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False


def sqs_client(endpoint_url: str, region: str) -> SQSClient:
    """A boto3 SQS client for moto with placeholder credentials."""
    session = boto3.session.Session(
        aws_access_key_id=_DUMMY_KEY, aws_secret_access_key=_DUMMY_KEY, region_name=region
    )
    config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2})
    return session.client("sqs", endpoint_url=endpoint_url, config=config)


def fill_queues(endpoint_url: str, scenario: Scenario, signals: Signals) -> dict[str, int]:
    """Create every region's source queues and DLQs and send the DLQ messages.

    Returns messages sent per DLQ name.
    """
    messages = dlq_messages(scenario)
    sent: dict[str, int] = {}
    try:
        for region in scenario.spec.regions:
            client = sqs_client(endpoint_url, region)
            for kind in KINDS:
                names = signals.doc.dlq.queues[kind]
                dlq = names.dlq.format(region=region)
                dlq_url = _create_pair(client, dlq, names.source.format(region=region))
                client.create_queue(QueueName=names.archive.format(region=region))
                _send_all(client, dlq_url, messages[(region, kind)])
                sent[dlq] = len(messages[(region, kind)])
    except (BotoCoreError, ClientError) as e:
        raise SandboxError(
            f"filling the DLQs in moto at {endpoint_url} failed ({e}); see moto's log"
        ) from e
    return sent


def _create_pair(client: SQSClient, dlq: str, source: str) -> str:
    dlq_url = client.create_queue(QueueName=dlq)["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = {"deadLetterTargetArn": arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
    client.create_queue(QueueName=source, Attributes={"RedrivePolicy": json.dumps(redrive)})
    return dlq_url


def _send_all(client: SQSClient, queue_url: str, bodies: Sequence[dict[str, Any]]) -> None:
    for offset, chunk in _chunks(bodies):
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {"Id": str(offset + i), "MessageBody": json.dumps(body)} for i, body in enumerate(chunk)
        ]
        failed = client.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed")
        if failed:
            reason = failed[0].get("Message")
            raise SandboxError(f"moto refused {len(failed)} messages for {queue_url}: {reason}")


def _chunks(items: Sequence[dict[str, Any]]) -> Iterator[tuple[int, Sequence[dict[str, Any]]]]:
    for start in range(0, len(items), _BATCH):
        yield start, items[start : start + _BATCH]
