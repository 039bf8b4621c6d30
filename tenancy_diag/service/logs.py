"""The service's log: one JSON object per line, whoever logs and whatever is raised.

The receiver and the worker already log JSON text; the HTTP server (uvicorn) and asyncio log
sentences, and ``log.exception`` would append a traceback over many lines. :class:`JsonLines`
makes each record one object: a JSON message is kept as it is, any other becomes ``event``, and
an exception becomes ``error`` (type and message) and ``at`` (the innermost frame), never a
multi-line traceback, so a log shipper's parser never meets a line it cannot read.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from typing import Any, TextIO

from tenancy_diag.errors import shorten

HANDLER_NAME = "tenancy-diag-service"
#: The loggers whose lines join the service's: ours, the HTTP server's and the event loop's.
LOGGERS = ("tenancy_diag.service", "uvicorn", "asyncio")


class JsonLines(logging.Formatter):
    """Formats every record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        fields: dict[str, Any]
        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = None
        fields = dict(parsed) if isinstance(parsed, dict) else {"event": shorten(message, 500)}
        if record.levelno >= logging.WARNING:
            fields.setdefault("level", record.levelname.lower())
        if not record.name.startswith("tenancy_diag"):
            fields.setdefault("logger", record.name)
        if record.exc_info and record.exc_info[1] is not None:
            fields |= describe(record.exc_info[1])
        return json.dumps(fields, default=str, ensure_ascii=True)


def describe(error: BaseException) -> dict[str, str]:
    """``error`` (its type and message) and ``at`` (file:line of the innermost frame)."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "unknown"
    return {"error": shorten(f"{type(error).__name__}: {error}", 300), "at": where}


def configure_logging(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send every service logger's records, as JSON lines, to ``stream`` (stderr); idempotent."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.name = HANDLER_NAME
    handler.setFormatter(JsonLines())
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(h.name == HANDLER_NAME for h in logger.handlers):
            logger.addHandler(handler)
