"""Evidence sinks: where a finished bundle is attached for responders.

    local            LocalSink   verifies the bundle under OUT and links its files (default)
    file:///path     LocalSink   the same, for an explicit OUT
    s3://b/prefix    S3Sink      one object per file, sha256-checked by S3, a link per file
    http(s)://url    NoteSink    a JSON note to the incident tracker; #slack / #pagerduty shapes

``create_sink(spec, out=..., aws_endpoint_url=...)`` turns a spec into a sink through the
registry; ``attach_all(sinks, bundle, summary)`` attaches, retries and records, and never raises.
"""

from tenancy_diag.service.sinks.attaching import NOTE_LINK_FILES, Record, attach_all
from tenancy_diag.service.sinks.attachments import Attachment, AttachmentResult, Sink, SinkError
from tenancy_diag.service.sinks.local import LocalSink
from tenancy_diag.service.sinks.notes import (
    ENV_NOTE_TOKEN,
    ENV_PAGERDUTY_ROUTING_KEY,
    NoteSink,
)
from tenancy_diag.service.sinks.payloads import NOTE_SCHEMA, NoteFormat
from tenancy_diag.service.sinks.registry import (
    SinkContext,
    SinkRegistry,
    create_sink,
    registry,
)
from tenancy_diag.service.sinks.s3 import S3Sink

__all__ = [
    "ENV_NOTE_TOKEN",
    "ENV_PAGERDUTY_ROUTING_KEY",
    "NOTE_LINK_FILES",
    "NOTE_SCHEMA",
    "Attachment",
    "AttachmentResult",
    "LocalSink",
    "NoteFormat",
    "NoteSink",
    "Record",
    "S3Sink",
    "Sink",
    "SinkContext",
    "SinkError",
    "SinkRegistry",
    "attach_all",
    "create_sink",
    "registry",
]
