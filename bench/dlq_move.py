"""What the DLQ move's guarantees cost: the journaled move against a bare receive/send/delete
loop, side by side on the same messages in moto's real server.

    python bench/dlq_move.py --messages 60 --repeat 3

The bare loop is what one would write by hand (and what loses or duplicates messages when it
dies between send and delete); the journaled move fsyncs a journal line before and after each
send and checks the target on resume. Prints seconds per run and the ratio of medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tenancy_diag.remediating.moving import MoveRequest, move_messages
from tenancy_diag.sandbox import moto_proc

REGION = "us-east-1"
CODES = ("503", "timeout", "400")


def _fill(client: Any, url: str, count: int) -> None:
    for start in range(0, count, 10):
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps(
                    {
                        "tenant_id": f"t-{i % 7:06d}",
                        "region": REGION,
                        "kind": "webhook",
                        "sequence": i,
                        "error_code": CODES[i % len(CODES)],
                    }
                ),
            }
            for i in range(start, min(count, start + 10))
        ]
        client.send_message_batch(QueueUrl=url, Entries=entries)


def _bare(client: Any, source: str, target: str) -> int:
    moved = 0
    while True:
        got = client.receive_message(QueueUrl=source, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = got.get("Messages", [])
        if not messages:
            return moved
        for message in messages:
            client.send_message(QueueUrl=target, MessageBody=message["Body"])
            client.delete_message(QueueUrl=source, ReceiptHandle=message["ReceiptHandle"])
            moved += 1


def _queues(client: Any, tag: str) -> tuple[str, str]:
    source = client.create_queue(QueueName=f"bench-src-{tag}")["QueueUrl"]
    target = client.create_queue(QueueName=f"bench-dst-{tag}")["QueueUrl"]
    return source, target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-move-") as scratch:
        moto = moto_proc.start_moto(Path(scratch))
        try:
            client = moto_proc.sqs_client(moto.url, REGION)
            bare, ours = [], []
            for run in range(args.repeat):
                source, target = _queues(client, f"bare-{run}")
                _fill(client, source, args.messages)
                started = time.perf_counter()
                count = _bare(client, source, target)
                bare.append(time.perf_counter() - started)
                source, target = _queues(client, f"ours-{run}")
                _fill(client, source, args.messages)
                request = MoveRequest(
                    REGION,
                    f"bench-src-ours-{run}",
                    f"bench-dst-ours-{run}",
                    from_sequence=0,
                    max_messages=args.messages,
                    receive_wait_s=0,
                )
                started = time.perf_counter()
                report = move_messages(client, request, Path(scratch) / f"journal-{run}.jsonl")
                ours.append(time.perf_counter() - started)
                assert count == len(report.moved) == args.messages, (count, len(report.moved))
        finally:
            moto.stop()
    print(f"{args.messages} messages, {args.repeat} runs each (moto server, one client)")
    print(f"bare loop       {' '.join(f'{t:.2f}s' for t in bare)}")
    print(f"journaled move  {' '.join(f'{t:.2f}s' for t in ours)}")
    ratio = statistics.median(ours) / statistics.median(bare)
    print(f"ratio (journaled / bare, medians): {ratio:.2f}x")


if __name__ == "__main__":
    main()
