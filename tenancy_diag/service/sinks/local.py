"""The default sink: the bundle already lives under OUT, so attaching means checking it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tenancy_diag.running.bundles import INDEX, verify_bundle
from tenancy_diag.service.sinks.attachments import Attachment, SinkError


class LocalSink:
    """Verifies a bundle under ``root`` (OUT) against its manifest and links its files.

    It only reads: a damaged bundle is reported, never repaired, moved or deleted, because it
    may be the only evidence there is.
    """

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def attach(self, bundle: Path, summary: Mapping[str, Any]) -> Attachment:
        folder = bundle.resolve()
        root = self.root.resolve()
        if not folder.is_relative_to(root):
            raise SinkError(
                self.name,
                f"bundle {folder} is not under the output folder {root}; "
                "run with the same --out the bundle was written to",
                retryable=False,
            )
        problems = verify_bundle(folder)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise SinkError(
                self.name,
                f"bundle {folder} fails its manifest: {problems[0]}{more}; "
                "compare its files with manifest.json before trusting it",
                retryable=False,
            )
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        # The incident page first: a note or a log line showing one link shows that one.
        files.sort(key=lambda p: p != folder / INDEX)
        links = {p.relative_to(folder).as_posix(): p.as_uri() for p in files}
        return Attachment(self.name, links, f"verified {len(links)} files in {folder}")
