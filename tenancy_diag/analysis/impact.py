"""An incident's impact across findings documents: who is affected, how severe it is.

One home for the judgement the run summary and the postmortem both make.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tenancy_diag.analysis.findings import SEVERITIES


def affected_tenants(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Tenants across findings: seen in more documents first, then by best rank in any list."""
    seen: dict[str, list[int]] = {}
    for doc in docs:
        tenants = [t for t in doc.get("tenants") or [] if isinstance(t, str)]
        for position, tenant in enumerate(dict.fromkeys(tenants)):
            seen.setdefault(tenant, []).append(position)
    return sorted(seen, key=lambda t: (-len(seen[t]), min(seen[t]), sum(seen[t]), t))


def worst_severity(severities: Sequence[object]) -> str | None:
    """The most severe of ``severities`` (sev1 worst); None when none is a known severity."""
    known = [s for s in severities if isinstance(s, str) and s in SEVERITIES]
    return min(known, key=SEVERITIES.index) if known else None
