"""What a route is given and what it gives back: a request, and an answer or a reply."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tenancy_diag.sandbox.kube_api.errors import bad_request

JSON = "application/json"


@dataclass(frozen=True)
class Request:
    """What a route sees: the region the client's cluster serves (None: all) and the query."""

    region: str | None
    query: Mapping[str, str]
    match: re.Match[str]
    body: bytes = b""


Answer = tuple[str, bytes]  # (content type, body), sent with 200


@dataclass(frozen=True)
class Reply:
    """An answer with another status (201 Created, 202 Accepted), or one streamed as it is made
    (a watch: ``body`` is an iterator of chunks, sent chunked until it ends)."""

    code: int
    content_type: str
    body: bytes | Iterator[bytes]


def json_answer(body: Mapping[str, Any]) -> Answer:
    return JSON, json.dumps(body, separators=(",", ":")).encode()


def json_reply(code: int, body: Mapping[str, Any]) -> Reply:
    return Reply(code, *json_answer(body))


def read_body(raw: bytes) -> dict[str, Any]:
    """A create's JSON body; anything else is the 400 the API answers."""
    try:
        body = json.loads(raw or b"null")
    except ValueError as e:
        raise bad_request(f"couldn't get version/kind; json parse error: {e}") from None
    if not isinstance(body, dict):
        raise bad_request("Object 'Kind' is missing in the request body; send a JSON object")
    return body
