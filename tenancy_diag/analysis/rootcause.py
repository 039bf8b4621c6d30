"""The probable root cause across subsystems, by the runbook's causes.

A pattern that the runbook names as a cause of another present pattern ranks above it (policy
timeouts drive reconcile backlogs); otherwise the earliest onset, then the highest confidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tenancy_diag.analysis.findings import PatternMatch
from tenancy_diag.analysis.verdicts import MIN_CONFIDENCE
from tenancy_diag.runbook import Runbook

_LATE = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Candidate:
    pattern: str
    subsystem: str
    confidence: float
    onset: datetime | None
    explains: tuple[str, ...]  # other present patterns this one causes
    regions: tuple[str, ...] = ()  # where the pattern was seen

    def to_json(self) -> dict[str, object]:
        return {
            "pattern": self.pattern,
            "subsystem": self.subsystem,
            "confidence": round(self.confidence, 3),
            "explains": list(self.explains),
            "regions": list(self.regions),
            "onset": _iso(self.onset) if self.onset else None,
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rank(matches: Sequence[tuple[str, PatternMatch]], book: Runbook) -> list[Candidate]:
    """``matches`` are (subsystem, match) pairs from every notebook; best cause first."""
    diagnosed = [(sub, m) for sub, m in matches if m.confidence >= MIN_CONFIDENCE]
    present = {m.id for _, m in diagnosed}
    candidates = []
    for subsystem, match in diagnosed:
        explains = tuple(
            sorted(
                other
                for other in present
                if other in book.patterns and match.id in book.patterns[other].caused_by
            )
        )
        candidates.append(
            Candidate(
                match.id, subsystem, match.confidence, match.onset, explains, tuple(match.regions)
            )
        )
    caused = {
        c.pattern for c in candidates if any(c.pattern in other.explains for other in candidates)
    }
    return sorted(
        candidates,
        key=lambda c: (c.pattern in caused, -len(c.explains), c.onset or _LATE, -c.confidence),
    )


def root_cause(matches: Sequence[tuple[str, PatternMatch]], book: Runbook) -> Candidate | None:
    ranked = rank(matches, book)
    return ranked[0] if ranked else None
